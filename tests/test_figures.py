"""The measured figures in plain words (serving/figures.py): what the README's headline table and the About
tab show, read from benchmarks/results/*.json."""

from __future__ import annotations

import json
import shutil

import pytest

from serving.figures import RESULTS, headline_figures, markdown_table


def test_every_tab_has_figures_and_each_says_what_it_was_measured_on() -> None:
    figures = headline_figures()
    assert {f.task for f in figures} >= {"Mask check", "Emotion", "Enroll & identify", "Verify"}
    for figure in figures:
        assert figure.value and figure.measured_on and (RESULTS / figure.source).is_file()
    # Both populations are named where identity is measured.
    identity = [f.measured_on for f in figures if f.task in ("Enroll & identify", "Verify")]
    assert any("LFW" in text for text in identity) and any("rmfd_dev" in text for text in identity)


def test_a_figure_comes_from_its_json_and_a_missing_one_is_left_out(tmp_path) -> None:
    shutil.copy(RESULTS / "mask.json", tmp_path / "mask.json")
    data = json.loads((tmp_path / "mask.json").read_text())
    data["accuracy"] = 0.5
    (tmp_path / "mask.json").write_text(json.dumps(data))
    figures = headline_figures(tmp_path)
    assert {f.source for f in figures} == {"mask.json"}  # the other benchmarks' files are absent: no row
    assert "| Mask check | mask / no mask called correctly | 50.0\u00a0% |" in markdown_table(figures)  # never wrapped


def test_about_shows_the_figures_in_words_not_json_keys() -> None:
    import app

    text = app.about()
    assert markdown_table(headline_figures()) in text
    for raw_key in ("pipeline_consistency", "accuracy_mean", " / 0 / ", ".json**"):
        assert raw_key not in text


def test_about_names_the_repo_the_weights_really_come_from(monkeypatch) -> None:
    """FACELAB_HUB_REPO moves the project's own weights to the operator's mirror; About named the manifest's repo
    anyway (it read weights/manifest.json itself), so a visitor was told the files came from elsewhere."""
    import app
    from pipeline import settings

    def models_table() -> str:
        return app.about().split("## Models", 1)[1].split("## Limits", 1)[0]

    assert "`facelab/face-lab-weights` / `mask_head.safetensors`" in models_table()
    monkeypatch.setenv("FACELAB_HUB_REPO", "school-it/face-lab-mirror")
    settings.reload()  # as a server started with it reads it
    table = models_table()
    assert "`school-it/face-lab-mirror` / `mask_head.safetensors`" in table
    assert "facelab/face-lab-weights" not in table  # every project-hosted file moved
    assert "`py-feat/facenet`" in table and "`timesler/facenet-pytorch`" in table  # third-party entries stay


@pytest.mark.shared_data
def test_about_names_the_backbone_that_actually_answers(monkeypatch) -> None:
    import app

    monkeypatch.setitem(app.STATUS, "face embedder", "ready")
    lab = app.get_facelab()
    embedder = lab.embedder  # casia-webface here
    # as on a server without the preferred backbone's weights: that is the operator's to read, in the log
    monkeypatch.setattr(lab, "preferred_backbone", next(b for b in ("vggface2", "casia-webface") if b != embedder.backbone))
    import html

    # as the browser shows it: the page's Markdown carries punctuation as character references (app.literal)
    line = html.unescape(next(l for l in app.running_now().splitlines() if "face embedder" in l))
    assert embedder.backbone in line and embedder.precision in line
    assert lab.preferred_backbone not in line and "preferred" not in line and "not on this server" not in line
