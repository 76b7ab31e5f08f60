"""Where the labelled data and reference weights live (../shared), and readers for them: the bottom layer,
shared by training scripts, benchmarks and tests (never by pipeline/ or the app)."""

from __future__ import annotations

import os

from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent
# The one root of the shared data and weights: ../shared beside the checkout (FACELAB_SHARED_DIR elsewhere,
# e.g. to check what a plain clone without it can run).
SHARED_DIR = Path(os.environ.get("FACELAB_SHARED_DIR") or REPO_ROOT.parent / "shared")
DATA_DIR = SHARED_DIR / "data"
SHARED_WEIGHTS_DIR = SHARED_DIR / "weights"
LFW_DIR = DATA_DIR / "identity" / "lfw"
MISC_DIR = DATA_DIR / "misc"


@dataclass(frozen=True)
class Pair:
    first: Path
    second: Path
    same: bool
    fold: int


def lfw_image(name: str, index: int) -> Path:
    return LFW_DIR / name / f"{name}_{index:04d}.jpg"


def lfw_pairs(path: Path = LFW_DIR / "pairs.txt") -> list[Pair]:
    """LFW View 2: 10 folds of 300 matched then 300 mismatched pairs."""
    lines = path.read_text().split("\n")
    folds, per_fold = (int(v) for v in lines[0].split())
    pairs = []
    for row, line in enumerate(line for line in lines[1:] if line.strip()):
        fields = line.split()
        fold = row // (2 * per_fold)
        if len(fields) == 3:
            pairs.append(Pair(lfw_image(fields[0], int(fields[1])), lfw_image(fields[0], int(fields[2])), True, fold))
        else:
            pairs.append(Pair(lfw_image(fields[0], int(fields[1])), lfw_image(fields[2], int(fields[3])), False, fold))
    assert len(pairs) == folds * per_fold * 2, "pairs.txt is incomplete"
    return pairs


def lfw_people(min_images: int = 2) -> dict[str, list[Path]]:
    """People with at least `min_images` images, each with their images in file order."""
    people = {}
    for folder in sorted(p for p in LFW_DIR.iterdir() if p.is_dir()):
        images = sorted(folder.glob("*.jpg"))
        if len(images) >= min_images:
            people[folder.name] = images
    return people


def distinct_people(count: int) -> list[tuple[str, Path, Path]]:
    """`count` different LFW people, each with two photos of them (a matched pair): (name, first, second)."""
    chosen: dict[str, tuple[Path, Path]] = {}
    for pair in lfw_pairs():
        name = pair.first.parent.name.replace("_", " ")
        if pair.same and name not in chosen:
            chosen[name] = (pair.first, pair.second)
        if len(chosen) == count:
            break
    return [(name, first, second) for name, (first, second) in chosen.items()]


def central_face(analysis):
    """The face nearest the picture's centre: LFW's subject (a bystander can be larger)."""
    if not analysis.faces:
        return None
    height, width = analysis.image.shape[:2]
    centre = (width / 2, height / 2)

    def distance(face):
        x, y = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
        return (x - centre[0]) ** 2 + (y - centre[1]) ** 2

    return min(analysis.faces, key=distance)
