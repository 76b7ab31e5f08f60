"""Shared fixtures. Tests read real data from ../shared (beside the repo) and never need the internet."""

from __future__ import annotations

import os

import pytest

from benchmarks.datasets import DATA_DIR, SHARED_WEIGHTS_DIR

# The real casia-webface weights lie in ../shared/weights; the vggface2 ones need the Hub.
os.environ.setdefault("FACELAB_WEIGHTS_DIR", str(SHARED_WEIGHTS_DIR))
os.environ.setdefault("FACELAB_BACKBONE", "casia-webface")


@pytest.fixture(scope="session", autouse=True)
def shared_data_present() -> None:
    if not DATA_DIR.is_dir():
        pytest.exit(f"Test data not found at {DATA_DIR}: the repo must sit beside shared/.", returncode=2)


@pytest.fixture(scope="session")
def lab():
    from pipeline import FaceLab

    return FaceLab(backbone="casia-webface", device="cpu")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """A fresh `python app.py` per test module; its log tail is printed when the module is done."""
    from tests.app_server import launch_app, stop_app

    log_path = tmp_path_factory.mktemp("app") / "app.log"
    process, url = launch_app(log_path)
    yield url
    stop_app(process)
    print(log_path.read_text()[-3000:])


@pytest.fixture(scope="session")
def postgres_server():
    """A private PostgreSQL cluster for this test run (tests/postgres_server.py), stopped at the end.
    Skips, with the reason, only where PostgreSQL or psycopg cannot be had."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (python -m pip install -r requirements.txt)")
    from tests.postgres_server import PostgresServer, find_binaries

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
