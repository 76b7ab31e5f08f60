"""What the README's table renderers share (benchmarks/readme_tables.py, benchmarks/identity_tables.py): reading a
benchmark's figures back from benchmarks/results/<name>.json, and the line a table shows until that benchmark has
run here."""

from __future__ import annotations

import functools
import json
from typing import Callable

from shared_data import REPO_ROOT

RESULTS = REPO_ROOT / "benchmarks" / "results"


def load(name: str) -> dict | None:
    """The figures of benchmarks/results/<name>.json, or None if that benchmark has not been run."""
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def not_measured(*benchmarks: str) -> str:
    """The line shown in place of a table whose figures are missing: which benchmark module(s) to run."""
    return "_not measured yet: run " + " and ".join(f"`python -m benchmarks.{name}`" for name in benchmarks) + "_"


def from_results(name: str) -> Callable[[Callable[[dict], str]], Callable[[], str]]:
    """Make a renderer of benchmarks/results/<name>.json out of `table(figures) -> str`: it is called with the
    file's figures, or, when the file is missing, the renderer returns `not_measured(name)` (the benchmark that
    writes <name>.json is benchmarks/<name>.py)."""
    def decorate(table: Callable[[dict], str]) -> Callable[[], str]:
        @functools.wraps(table)
        def render() -> str:
            data = load(name)
            return not_measured(name) if data is None else table(data)
        return render
    return decorate
