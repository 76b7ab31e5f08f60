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
