"""Detect + embed latency of the pipeline beside naive facenet-pytorch use, in the same run.

Naive use is what a facenet-pytorch tutorial does: `MTCNN(keep_all=True)` on the full picture, then
`InceptionResnetV1` on the crops it returns. Runs alternate between the two so both see the same
machine noise; the figure that matters is the ratio.

    python -m benchmarks.latency [--runs 20]   # writes benchmarks/results/latency.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from typing import Callable, Hashable

import numpy as np
import torch
from PIL import Image

from shared_data import DATA_DIR, MISC_DIR, REPO_ROOT, SHARED_WEIGHTS_DIR
from pipeline import FaceLab, load_rgb
from pipeline.device import configure_cpu_threads
from pipeline.weights import load_named
from pipeline.settings import reload as reload_settings
from benchmarks import machine
from benchmarks.harness import write_results

RESULTS = REPO_ROOT / "benchmarks" / "results" / "latency.json"


def letterbox(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to fit width x height and pad with grey: the shape a webcam or a screenshot has."""
    scale = min(width / image.shape[1], height / image.shape[0])
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    canvas = Image.new("RGB", (width, height), (128, 128, 128))
    canvas.paste(Image.fromarray(image).resize(size, Image.BILINEAR), ((width - size[0]) // 2, (height - size[1]) // 2))
    return np.asarray(canvas)


def test_pictures() -> dict[str, np.ndarray]:
    portrait = load_rgb(DATA_DIR / "identity" / "celebs" / "paul_rudd" / "1.jpg")
    group = load_rgb(MISC_DIR / "multiple_faces_group_photo.jpg")
    return {
        "640x480_one_face": letterbox(portrait, 640, 480),
        "group_photo_1200x630": group,
        "1920x1080_group": letterbox(load_rgb(MISC_DIR / "large_4800px_multiple_faces_upscaled.jpg"), 1920, 1080),
    }


class NaiveFacenet:
    """facenet-pytorch as its README shows it, with the same casia weights."""

    def __init__(self) -> None:
        from facenet_pytorch import MTCNN, InceptionResnetV1

        self.mtcnn = MTCNN(keep_all=True, device="cpu")
        self.resnet = InceptionResnetV1(pretrained=None).eval()
        self.resnet.load_state_dict(load_named("facenet-casia-webface"))

    def __call__(self, image: np.ndarray) -> int:
        with torch.no_grad():
            faces = self.mtcnn(Image.fromarray(image))
            if faces is None:
                return 0
            return len(self.resnet(faces))


def with_threads(threads: int, task: Callable[[], object]) -> Callable[[], object]:
    """`task` run under FACELAB_THREADS=`threads` (pipeline.device), for alternating thread settings."""
    return lambda: (configure_cpu_threads(threads), task())


def alternating_ms(functions: dict[Hashable, Callable[[], object]], runs: int) -> dict[Hashable, list[float]]:
    """Milliseconds per call of each function, called once per round for `runs` rounds after one
    warm-up call each: every case sees the same machine noise, so their ratios hold even when this
    shared machine's speed drifts during the run."""
    for function in functions.values():
        function()
    times: dict[Hashable, list[float]] = {name: [] for name in functions}
    for _ in range(runs):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append((time.perf_counter() - start) * 1000)
    return times


def cold_start() -> dict[str, float]:
    """Seconds from a fresh interpreter to the first embedding (weights cached locally), and peak RSS."""
    code = (
        "import time, resource; t0 = time.perf_counter()\n"
        "from pipeline import FaceLab\n"
        "from shared_data import MISC_DIR\n"
        "lab = FaceLab(backbone='casia-webface')\n"
        "lab.analyze(MISC_DIR / 'single_face_astronaut.png', embed=True)\n"
        "print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    env = {**os.environ, "FACELAB_WEIGHTS_DIR": str(SHARED_WEIGHTS_DIR)}
    output = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True)
    seconds, rss_mb = (float(v) for v in output.stdout.split())
    return {"cold_start_s": round(seconds, 2), "peak_rss_mb": round(rss_mb, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("FACELAB_WEIGHTS_DIR", str(SHARED_WEIGHTS_DIR))
    reload_settings()  # pipeline read the settings when it was imported
    threads = configure_cpu_threads()
    lab = FaceLab(backbone="casia-webface", device="cpu")
    naive = NaiveFacenet()
    ours = lambda picture: len(lab.analyze(picture, embed=True).faces)  # noqa: E731
    cases = {}
    for name, picture in test_pictures().items():
        times = alternating_ms({"ours": lambda: ours(picture), "naive": lambda: naive(picture)}, args.runs)
        ours_ms, naive_ms = times["ours"], times["naive"]
        cases[name] = {
            "size": f"{picture.shape[1]}x{picture.shape[0]}",
            "faces_found": ours(picture),
            "faces_found_naive": naive(picture),
            "pipeline_ms": round(statistics.median(ours_ms), 1),
            "naive_ms": round(statistics.median(naive_ms), 1),
            "ratio_vs_naive": round(statistics.median(naive_ms) / statistics.median(ours_ms), 2),
        }
        print(f"{name:24s} {cases[name]}")
    result = {
        "what": "median warm latency of detect + align + embed, ms; ratio_vs_naive = naive / pipeline",
        "runs": args.runs,
        "torch_threads": threads,
        "machine": machine.description(),
        "cases": cases,
        **cold_start(),
    }
    print(f"cold start {result['cold_start_s']} s, peak RSS {result['peak_rss_mb']} MB")
    write_results(RESULTS, result)


if __name__ == "__main__":
    main()
