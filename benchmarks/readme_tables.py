"""Write the README's figure tables from benchmarks/results/*.json, so the README never drifts from them.

Each table sits between `<!-- table:NAME -->` and `<!-- /table:NAME -->` in README.md; NAME is a renderer
below. Run after any benchmark:  python -m benchmarks.readme_tables
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

from benchmarks.datasets import REPO_ROOT

RESULTS = REPO_ROOT / "benchmarks" / "results"
README = REPO_ROOT / "README.md"


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def latency_table() -> str:
    data = _load("latency")
    if data is None:
        return "_not measured yet: run `python -m benchmarks.latency`_"
    rows = ["| picture | faces | pipeline ms | naive ms | speed-up |", "| --- | --- | --- | --- | --- |"]
    for name, case in data["cases"].items():
        rows.append(
            f"| {name} ({case['size']}) | {case['faces_found']} | {case['pipeline_ms']} | {case['naive_ms']} "
            f"| {case['ratio_vs_naive']}x |"
        )
    rows.append("")
    rows.append(
        f"Median of {data['runs']} warm runs each, alternating, {data['torch_threads']} torch thread(s), "
        f"{data['machine']}. Cold start (fresh interpreter to first embedding, weights on disk): "
        f"{data['cold_start_s']} s; peak RSS {data['peak_rss_mb']} MB."
    )
    return "\n".join(rows)


def speed_table() -> str:
    data = _load("speed")
    if data is None:
        return "_not measured yet: run `python -m benchmarks.speed`_"
    embedding = data["embedding"]
    peaks = {k: v for k, v in embedding.items() if k.startswith("matmul_peak")}
    rows = [
        "| measure | measured | target |",
        "| --- | --- | --- |",
        f"| 640x480 frame, one face, mask + emotion (warm median) | {data['mask_emotion_640_ms']} ms | <= 60 ms |",
        f"| identify on that frame: detect + embed + search a 1k gallery | {data['identify_640_ms']} ms | <= 100 ms |",
        f"| 1920x1080 frame vs naive facenet-pytorch | {data['ratio_1080_vs_naive']}x faster | >= 3x |",
        f"| live stream through the app's handler, mask | {data['stream_fps']} frames/s | >= 10 |",
        f"| live stream, emotion / identify | {data['stream_fps_emotion']} / {data['stream_fps_identify']} frames/s | |",
        f"| `python app.py` to the first answer (weights on disk) | {data['cold_start_s']} s | <= 10 s |",
        f"| serving RSS after warm-up | {data['rss_mb']} MB | <= 1500 MB |",
        f"| embedder | {embedding['ms_per_face']} ms/face = {embedding['achieved_gflops']} GFLOP/s "
        f"({embedding['gflops_per_face']} GFLOPs/face) | matmul peak here: "
        + ", ".join(f"{v} GFLOP/s ({k.split('_', 3)[-1].replace('_', ' ')})" for k, v in peaks.items())
        + " |",
    ]
    rows.append("")
    rows.append(f"{data['torch_threads']} torch thread(s), {data['cores']} cores, CPU only.")
    return "\n".join(rows)


RENDERERS: dict[str, Callable[[], str]] = {"latency": latency_table, "speed": speed_table}
RENDERERS.update(__import__("benchmarks.identity_tables", fromlist=["RENDERERS"]).RENDERERS)  # lfw, identification, ...


def render(readme: str) -> str:
    for name, renderer in RENDERERS.items():
        pattern = re.compile(rf"(<!-- table:{name} -->\n).*?(<!-- /table:{name} -->)", re.S)
        readme = pattern.sub(lambda match: match.group(1) + renderer() + "\n" + match.group(2), readme)
    return readme


def main() -> None:
    README.write_text(render(README.read_text()))
    print(f"updated {README}")


if __name__ == "__main__":
    main()
