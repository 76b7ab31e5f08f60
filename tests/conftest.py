"""Shared fixtures. Tests read real data from ../shared (beside the repo) and never need the internet.

Tests that need the shared data or weights carry the `shared_data` marker (a module's `pytestmark`, or a
test's own), and so does every test that uses the `lab` or `app_url` fixture (the real casia-webface weights
lie in ../shared/weights). Where ../shared is missing (a plain clone) those are skipped with the reason and
the rest run; in CI (CI=true) a missing ../shared is an error instead, so nothing is skipped silently there.
"""

from __future__ import annotations

import os

import pytest

from shared_data import DATA_DIR, SHARED_WEIGHTS_DIR
from tests.shared import PRESENT as SHARED_PRESENT
from tests.shared import REASON as SHARED_MISSING

# The real casia-webface weights lie in ../shared/weights; the vggface2 ones need the Hub.
os.environ.setdefault("FACELAB_WEIGHTS_DIR", str(SHARED_WEIGHTS_DIR))
os.environ.setdefault("FACELAB_BACKBONE", "casia-webface")

NEEDS_SHARED_FIXTURES = {"lab", "app_url"}


def needs_shared(item: pytest.Item) -> bool:
    return item.get_closest_marker("shared_data") is not None or bool(NEEDS_SHARED_FIXTURES & set(item.fixturenames))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SHARED_PRESENT:
        return
    if os.environ.get("CI"):  # CI has ../shared: its absence there is a broken set-up, not a skip
        raise pytest.UsageError(f"CI needs the shared data at {DATA_DIR.parent} (the repo must sit beside shared/).")
    skip = pytest.mark.skip(reason=SHARED_MISSING)
    for item in items:
        if needs_shared(item):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def settings_from_this_tests_environment():
    """Settings are read once per process; a test that sets a variable (monkeypatch.setenv) gets them
    read again, and the next test does not inherit them."""
    from pipeline.settings import current

    current.cache_clear()
    yield
    current.cache_clear()


@pytest.fixture(scope="session")
def lab():
    from pipeline import FaceLab

    return FaceLab(backbone="casia-webface", device="cpu")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """A fresh `python app.py` per test module; its log tail is printed when the module is done."""
    from benchmarks.app_server import launch_app, stop_app

    log_path = tmp_path_factory.mktemp("app") / "app.log"
    process, url = launch_app(log_path)
    yield url
    stop_app(process)
    print(log_path.read_text()[-3000:])


@pytest.fixture(scope="session")
def postgres_server():
    """A private PostgreSQL cluster for this test run (benchmarks/postgres_server.py), stopped at the end.
    Skips, with the reason, only where PostgreSQL or psycopg cannot be had."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (python -m pip install -r requirements.txt)")
    from benchmarks.postgres_server import PostgresServer, find_binaries

    if find_binaries() is None:
        pytest.skip("PostgreSQL is not installed and tests/install_postgres.sh could not install it "
                    "(no apt-get or no root/sudo here)")
    server = PostgresServer.start()
    yield server
    server.destroy()


@pytest.fixture()
def postgres_url(postgres_server) -> str:
    """A fresh, empty database on the test cluster."""
    return postgres_server.create_database()
