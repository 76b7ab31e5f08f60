"""The measured figures in plain words: one builder for the README's headline table and the About tab.

Each figure is read from its benchmark's JSON in benchmarks/results/ (a figure whose file or key is missing
is left out, never guessed) and says what it was measured on, so a student can read it without the
write-up (docs/benchmarks.md has the full tables).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


@dataclass(frozen=True)
class Figure:
    task: str  # the tab it belongs to
    says: str  # what the figure means, in plain words
    value: str
    measured_on: str
    source: str  # the JSON it was read from


# A figure and its unit are joined by a no-break space: About's narrow "measured" column wrapped "14.1 %" into
# "14.1" over "%".
UNIT_SPACE = "\u00a0"


def _pct(value: float) -> str:
    return f"{100 * value:.{2 if 0 < value < 0.01 else 1}f}{UNIT_SPACE}%"


def _load(results: Path, name: str) -> dict:
    return json.loads((results / f"{name}.json").read_text(encoding="utf-8"))


def _speed(results: Path) -> list[Figure]:
    speed = _load(results, "speed")
    return [Figure("all", "time to check one webcam frame for mask and emotion / to identify it",
                   f"{speed['mask_emotion_640_ms']:.0f} / {speed['identify_640_ms']:.0f}{UNIT_SPACE}ms",
                   "640x480, one CPU thread" + (f" ({speed['machine']})" if "machine" in speed else ""), "speed.json")]


POPULATIONS = (("lfw", "LFW: mostly Western celebrities"), ("rmfd_dev", "rmfd_dev: East Asian public figures"))


def _identify(results: Path) -> list[Figure]:
    domains = _load(results, "identity_domains")
    point = domains["default_operating_point"]
    # Which embedder the figures belong to: the app may run another one (About's "Running now" says which).
    measured_with = f" ({domains['backbone']} embedder)" if "backbone" in domains else ""
    figures = []
    for domain, population in POPULATIONS:
        rows = [r for r in domains["identify"] if r["domain"] == domain and r["operating_point"] == point]
        if rows:
            strangers = max(r["stranger_named_rate"] for r in rows)
            right = min(r["right_name_rate"] for r in rows)
            figures.append(Figure("Enroll & identify", "strangers given a name / enrolled people named (worst "
                                  "gallery size)", f"{_pct(strangers)} / {_pct(right)}", population + measured_with,
                                  "identity_domains.json"))
    for domain, population in POPULATIONS:
        row = next((r for r in domains["verify"] if r["domain"] == domain and r["operating_point"] == point), None)
        if row:
            figures.append(Figure("Verify", "\"same person\" for two different people / not for the same person",
                                  f"{_pct(row['far'])} / {_pct(row['frr'])}", f"{population}, photo pairs{measured_with}",
                                  "identity_domains.json"))
    return figures


def _emotion(results: Path) -> list[Figure]:
    emotion = _load(results, "emotion")
    figures = [Figure("Emotion", "the top emotion is the labelled one", _pct(emotion["accuracy"]),
                      "FER2013 test faces (small grey web photos)", "emotion.json")]
    if "ckplus_accuracy" in emotion:
        figures.append(Figure("Emotion", "the top emotion is the posed one", _pct(emotion["ckplus_accuracy"]),
                              "CK+ posed faces of people the model never saw", "emotion.json"))
    return figures


def _mask(results: Path) -> list[Figure]:
    mask = _load(results, "mask")
    figures = [Figure("Mask check", "mask / no mask called correctly", _pct(mask["accuracy"]),
                      "Face Mask 12K test faces", "mask.json")]
    if "no_face_rate" in mask:
        figures.append(Figure("Mask check", "masked close-ups where no face is found", _pct(mask["no_face_rate"]),
                              "masked test faces of every shape and size", "mask.json"))
    return figures


def _security(results: Path) -> list[Figure]:
    security = _load(results, "security")
    return [Figure("all", "attacks on the server refused", f"{security['attacks_blocked']} / {security['attacks_tried']}",
                   "requests trying to read server files or exhaust memory",
                   "security.json")]


def _replicas(results: Path) -> list[Figure]:
    scale = _load(results, "scale")
    return [Figure("Enroll & identify", "a person enrolled on one server is found on another within (95 %)",
                   f"{scale['cross_replica_visible_ms']['p95']:.0f}{UNIT_SPACE}ms", "two servers, one PostgreSQL gallery", "scale.json")]


FIGURES: tuple[Callable[[Path], list[Figure]], ...] = (_mask, _emotion, _identify, _speed, _security, _replicas)


def headline_figures(results: Path = RESULTS) -> list[Figure]:
    """Every figure whose benchmark has run, in the tabs' order."""
    figures = []
    for build in FIGURES:
        try:
            figures += build(results)
        except (OSError, ValueError, KeyError):  # not measured yet, or an older JSON without the key
            continue
    return figures


def markdown_table(figures: list[Figure]) -> str:
    rows = ["| tab | what it says | measured | on |", "| --- | --- | --- | --- |"]
    rows += [f"| {f.task} | {f.says} | {f.value} | {f.measured_on} |" for f in figures]
    return "\n".join(rows)
