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
    from benchmarks.app_server import launch_app, stop_app

    log_path = tmp_path_factory.mktemp("app") / "app.log"
    process, url = launch_app(log_path)
    yield url
    stop_app(process)
    print(log_path.read_text()[-3000:])
