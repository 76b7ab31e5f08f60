"""One way in for settings: pipeline/settings.py reads every variable; nothing else in the app reads os.environ."""

from __future__ import annotations

import re

import pytest

from pipeline.settings import Settings, documented
from shared_data import REPO_ROOT


def test_variables_are_parsed_and_unset_ones_keep_their_defaults() -> None:
    settings = Settings.from_env({"FACELAB_MAX_FACES": "12", "FACELAB_WEIGHTS_DIR": "/a:/b", "HF_HUB_OFFLINE": "1",
                                  "FACELAB_GALLERY": "  ", "FACELAB_THREADS": "auto"})
    assert settings.max_faces == 12 and settings.weights_dirs == ("/a", "/b") and settings.hf_offline
    assert settings.gallery == "" and not settings.shared_gallery and settings.threads == "auto"
    assert settings.max_pixels == Settings().max_pixels


def test_a_bad_number_names_its_variable() -> None:
    with pytest.raises(ValueError, match="FACELAB_QUEUE_SIZE='lots' is not a whole number"):
        Settings.from_env({"FACELAB_QUEUE_SIZE": "lots"})


def test_no_module_of_the_app_reads_the_environment_itself() -> None:
    readers = [path for path in [REPO_ROOT / "app.py", *(REPO_ROOT / "pipeline").rglob("*.py"),
                                 *(REPO_ROOT / "serving").rglob("*.py")]
               if path.name != "settings.py" and re.search(r"os\.environ(?!\.setdefault\(\"GRADIO_ANALYTICS)",
                                                             path.read_text())]
    assert not readers, [str(p.relative_to(REPO_ROOT)) for p in readers]


def test_the_readme_lists_every_setting() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    for variable, _, _ in documented():
        assert f"| `{variable}` |" in readme, f"{variable} is missing from the README's configuration table"


def test_a_script_that_sets_a_variable_after_importing_pipeline_reloads_them(monkeypatch) -> None:
    """Benchmarks and training scripts set FACELAB_WEIGHTS_DIR and friends in main(), after pipeline read the
    settings at import; without reload() they ran with the old ones (speed.py found no weights)."""
    from pipeline import settings

    settings.current()  # read once, as importing pipeline does
    monkeypatch.setenv("FACELAB_MAX_FACES", "7")
    assert settings.current().max_faces != 7
    assert settings.reload().max_faces == 7 and settings.current().max_faces == 7


@pytest.mark.parametrize("typed", ["closed", "tokens", "yes"])
def test_a_mistyped_shared_enroll_is_refused_not_left_open(monkeypatch, typed) -> None:
    """FACELAB_SHARED_ENROLL=closed (or tokens, yes) used to leave enrolling in the shared gallery open to anyone."""
    from pipeline.settings import SettingsError, current

    monkeypatch.setenv("FACELAB_SHARED_ENROLL", typed)
    with pytest.raises(SettingsError, match=f"FACELAB_SHARED_ENROLL='{typed}' is not allowed: use one of open, token"):
        current()


def test_the_shared_enroll_words_are_read_whatever_their_case(monkeypatch) -> None:
    from pipeline.settings import current
    from serving.access import OperatorGate

    monkeypatch.setenv("FACELAB_GALLERY", "/srv/gallery.db")
    monkeypatch.setenv("FACELAB_SHARED_ENROLL", " Token ")
    assert OperatorGate.from_settings(current()).needs_token("enroll")
    monkeypatch.setenv("FACELAB_SHARED_ENROLL", "OPEN")
    current.cache_clear()
    assert not OperatorGate.from_settings(current()).needs_token("enroll")


@pytest.mark.parametrize("variable, value, says", [
    ("FACELAB_MAX_FACES", "0", "FACELAB_MAX_FACES=0 is out of range: it must be at least 1"),
    ("FACELAB_MAX_FACES", "-3", "FACELAB_MAX_FACES=-3 is out of range: it must be at least 1"),
    ("FACELAB_SESSION_SECONDS", "0", "FACELAB_SESSION_SECONDS=0 is out of range: it must be at least 1"),
    ("FACELAB_UPLOAD_CONCURRENCY", "0", "FACELAB_UPLOAD_CONCURRENCY=0 is out of range: it must be at least 1"),
    ("FACELAB_QUEUE_POLL_SECONDS", "0", "FACELAB_QUEUE_POLL_SECONDS=0.0 is out of range: it must be from 0.001 to 1"),
    ("GRADIO_SERVER_PORT", "70000", "GRADIO_SERVER_PORT=70000 is out of range: it must be from 1 to 65535"),
    ("FACELAB_DEVICE", "gpu", "FACELAB_DEVICE='gpu' is not allowed: use one of auto, cpu, cuda, cuda:N"),
    ("FACELAB_PRECISION", "fp16", "FACELAB_PRECISION='fp16' is not allowed: use one of auto, float32, int8, float16"),
    ("FACELAB_THREADS", "0", "FACELAB_THREADS='0' is not allowed: use one of auto, a whole number from 1"),
    ("FACELAB_BACKBONE", "casia", "FACELAB_BACKBONE='casia' is not allowed: use one of vggface2, casia-webface"),
    ("HF_HUB_OFFLINE", "ture", "HF_HUB_OFFLINE='ture' is neither on"),
])
def test_a_value_the_app_cannot_run_with_names_its_variable_and_what_it_may_be(monkeypatch, variable, value, says) -> None:
    from pipeline.settings import SettingsError, current

    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as refused:
        current()
    assert str(refused.value).startswith(says)


def test_values_in_range_are_taken(monkeypatch) -> None:
    from pipeline.settings import current

    for variable, value in {"FACELAB_MAX_FACES": "1", "FACELAB_DEVICE": "CUDA:1", "FACELAB_THREADS": "4",
                            "GRADIO_SERVER_PORT": "65535", "HF_HUB_OFFLINE": "off"}.items():
        monkeypatch.setenv(variable, value)
    settings = current()
    assert (settings.max_faces, settings.device, settings.threads, settings.server_port, settings.hf_offline) == \
        (1, "cuda:1", "4", 65535, False)


def test_the_app_refuses_to_start_with_a_bad_value_and_says_why() -> None:
    """`python app.py` with a mistyped variable stops at once with one line, not a traceback, and serves nothing."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "FACELAB_SHARED_ENROLL": "closed", "GRADIO_SERVER_PORT": "1"}
    done = subprocess.run([sys.executable, "app.py"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == ("Face Lab will not start: FACELAB_SHARED_ENROLL='closed' is not "
                                                   "allowed: use one of open, token.")
    assert "Traceback" not in done.stderr and "Running on" not in done.stdout
