"""What every benchmark run shares: the CPU threads it measures with, and how its figures are written.

Each benchmark prints its figures and writes them with `write_results` to benchmarks/results/<name>.json, the
files the README's tables are made from (benchmarks/readme_tables.py)."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from pipeline.device import configure_cpu_threads
from pipeline.settings import reload as reload_settings

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """--threads: a number or 'auto'; the default is FACELAB_THREADS, else the app's 1."""
    parser.add_argument("--threads", default=os.environ.get("FACELAB_THREADS", "1"),
                        help="torch threads, a number or 'auto' (the app's default is 1)")


def use_threads(threads: str | int) -> int:
    """Run this process's models on `threads` CPU threads, as the app would with FACELAB_THREADS set so;
    returns the number it resolved to. The pipeline read its settings when it was imported, so they are
    read again."""
    os.environ["FACELAB_THREADS"] = str(threads)  # the knob FaceLab reads too
    reload_settings()
    return configure_cpu_threads()


def write_results(path: Path, document: Any) -> None:
    """Write a benchmark's figures to `path` as indented JSON (folders made as needed) and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path}")
