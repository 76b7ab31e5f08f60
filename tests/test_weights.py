"""Weight resolution: local folder, then the Hub (a stand-in on 127.0.0.1), hash checks, clear errors.

huggingface_hub reads HF_HOME / HF_HUB_OFFLINE at import time, so each Hub scenario runs in a fresh
subprocess with its own environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared_data import REPO_ROOT, SHARED_WEIGHTS_DIR
from pipeline import weights
from pipeline.errors import WeightsError
from tests.fake_hub import FakeHub

CASIA = "facenet-casia-webface"
CASIA_FILE = SHARED_WEIGHTS_DIR / weights.spec(CASIA).filename
RESOLVE = (
    "import json, sys\n"
    "from pipeline import weights\n"
    "from pipeline.errors import WeightsError\n"
    "try:\n"
    "    path = weights.resolve(sys.argv[1])\n"
    "    print(json.dumps({'path': str(path)}))\n"
    "except WeightsError as exc:\n"
    "    print(json.dumps({'error': str(exc)}))\n"
)


def resolve_in_subprocess(tmp_path: Path, hub_url: str | None, offline: bool = False) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "FACELAB_"))}
    env.update(HF_HOME=str(tmp_path / "hf_home"), FACELAB_WEIGHTS_DIR=str(tmp_path / "no_local_weights"))
    if hub_url:
        env["HF_ENDPOINT"] = hub_url
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", RESOLVE, CASIA], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def casia_hub_key() -> str:
    entry = weights.spec(CASIA)
    return f"{entry.repo_id}/{entry.filename}"


def test_manifest_entries_are_complete() -> None:
    for name, entry in weights.manifest().items():
        assert entry.filename and entry.repo_id and entry.revision and entry.license, name
        assert entry.sha256 is None or len(entry.sha256) == 64, name
        if entry.sha256 is None:
            assert "sha256_note" in entry.extra, f"{name}: say why the hash is missing"


@pytest.mark.shared_data
def test_local_folder_is_used_first(monkeypatch) -> None:
    monkeypatch.setenv("FACELAB_WEIGHTS_DIR", str(SHARED_WEIGHTS_DIR))
    assert weights.resolve(CASIA) == CASIA_FILE


@pytest.mark.shared_data
def test_altered_local_file_is_refused(tmp_path, monkeypatch) -> None:
    altered = tmp_path / CASIA_FILE.name
    shutil.copyfile(CASIA_FILE, altered)
    with altered.open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00\x01\x02\x03")
    monkeypatch.setenv("FACELAB_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(WeightsError, match="sha256"):
        weights.resolve(CASIA)


def test_unknown_model_name_is_a_clear_error() -> None:
    with pytest.raises(WeightsError, match="Unknown model"):
        weights.resolve("no-such-model")


@pytest.mark.shared_data
@pytest.mark.slow
def test_hub_download_then_cache_hit_then_tampered_cache_refused(tmp_path) -> None:
    with FakeHub({casia_hub_key(): CASIA_FILE}) as hub:
        first = resolve_in_subprocess(tmp_path, hub.url)
        assert "path" in first, first
        assert Path(first["path"]).read_bytes()[:64] == CASIA_FILE.read_bytes()[:64]
        assert len(hub.downloads) == 1
        second = resolve_in_subprocess(tmp_path, hub.url)
        assert second["path"] == first["path"] and len(hub.downloads) == 1  # no new download
        # Tamper with the cached copy: it must be refused even though it sits in the cache already.
        cached = Path(first["path"]).resolve()
        with cached.open("r+b") as handle:
            handle.seek(5000)
            handle.write(b"tampered")
        third = resolve_in_subprocess(tmp_path, hub.url)
        assert "sha256" in third.get("error", ""), third


@pytest.mark.shared_data
@pytest.mark.slow
def test_hub_serving_an_altered_file_is_refused(tmp_path) -> None:
    altered = tmp_path / CASIA_FILE.name
    shutil.copyfile(CASIA_FILE, altered)
    with altered.open("r+b") as handle:
        handle.seek(2000)
        handle.write(b"evil")
    with FakeHub({casia_hub_key(): altered}) as hub:
        result = resolve_in_subprocess(tmp_path, hub.url)
    assert "Refusing to load" in result.get("error", ""), result


def test_hub_404_gives_the_clear_error(tmp_path) -> None:
    with FakeHub({}) as hub:
        result = resolve_in_subprocess(tmp_path, hub.url)
    message = result.get("error", "")
    assert CASIA_FILE.name in message and "FACELAB_WEIGHTS_DIR" in message, result


def test_offline_with_empty_cache_gives_the_clear_error(tmp_path) -> None:
    result = resolve_in_subprocess(tmp_path, None, offline=True)
    message = result.get("error", "")
    assert "could not be reached" in message and "FACELAB_WEIGHTS_DIR" in message, result


def closed_port_url() -> str:
    """A Hub endpoint nothing listens on (the port was free a moment ago)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_unreachable_hub_gives_the_clear_error_without_retrying(tmp_path) -> None:
    import time

    started = time.monotonic()
    result = resolve_in_subprocess(tmp_path, closed_port_url())
    message = result.get("error", "")
    assert "could not be reached" in message and "FACELAB_WEIGHTS_DIR" in message, result
    # huggingface_hub alone retries for about 30 s before it gives up; the user waits seconds at most.
    assert time.monotonic() - started < 20


@pytest.mark.shared_data
def test_weights_downloaded_once_still_load_when_the_hub_is_gone(tmp_path) -> None:
    with FakeHub({casia_hub_key(): CASIA_FILE}) as hub:
        first = resolve_in_subprocess(tmp_path, hub.url)
    later = resolve_in_subprocess(tmp_path, closed_port_url())
    assert "path" in first and later.get("path") == first["path"], (first, later)


def test_mtcnn_weights_come_from_the_wheel_and_are_sha256_checked() -> None:
    """MTCNN's nets go through the same door as every other model: the manifest names their sha256."""
    import dataclasses

    for net in ("pnet", "rnet", "onet"):
        entry = weights.spec(f"mtcnn-{net}")
        path = weights.resolve(entry.name)
        assert path.parent.name == "data" and path.parent.parent.name == "facenet_pytorch"
        assert weights.file_sha256(path) == entry.sha256
    wrong = dataclasses.replace(weights.spec("mtcnn-pnet"), sha256="0" * 64)
    with pytest.raises(WeightsError, match="sha256"):
        weights.verify_sha256(weights.resolve("mtcnn-pnet"), wrong)


@pytest.mark.shared_data  # the start-up loads the real models
def test_what_is_not_sha256_checked_is_said_in_the_log_and_the_readme(caplog) -> None:
    """The start-up log and the README name every weights file loaded without a sha256 check (the manifest's
    default backbone, whose sha256 could not be read from the Hub), instead of claiming every file is checked."""
    import logging

    import app

    missing = weights.unchecked()
    assert [entry.name for entry in missing] == ["facenet-vggface2"]  # what the manifest holds today
    with caplog.at_level(logging.INFO, logger="facelab.app"):
        app._warm_up()
    startup = "\n".join(r.getMessage() for r in caplog.records if r.name == "facelab.app")
    assert "sha256 checked" in startup and "NOT checked" in startup
    unchecked_part = startup.split("NOT checked", 1)[1].splitlines()[0]
    assert all(entry.filename in unchecked_part for entry in missing)
    assert CASIA in startup.split("NOT checked", 1)[0] and CASIA not in unchecked_part
    readme = " ".join((REPO_ROOT / "README.md").read_text(encoding="utf-8").split())
    for entry in missing:
        assert f"`{entry.filename}` (`{entry.repo_id}`, revision `{entry.revision}`" in readme
        assert "loaded unchecked" in readme
