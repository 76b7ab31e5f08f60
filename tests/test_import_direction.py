"""Imports go one way: shared_data < pipeline < serving, training < app, examples < benchmarks < tests.

A module may import its own package and any package of a lower layer, never one of its own layer or above:
the library never reaches for training code, training never for a benchmark, a benchmark never for a test
(what benchmarks and tests share lives in benchmarks/). And the library never imports Gradio.
"""

from __future__ import annotations

import ast
from pathlib import Path

from shared_data import REPO_ROOT

LAYERS = {"shared_data": 0, "pipeline": 1, "serving": 2, "training": 2, "app": 3, "examples": 3, "benchmarks": 4,
          "tests": 5}


def project_imports(path: Path) -> set[str]:
    """The project's top-level packages and modules that a file imports (anywhere in it)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def python_files() -> list[tuple[str, Path]]:
    files = []
    for top in LAYERS:
        target = REPO_ROOT / f"{top}.py"
        paths = [target] if target.is_file() else sorted((REPO_ROOT / top).rglob("*.py"))
        files += [(top, path) for path in paths]
    return files


def test_every_import_goes_down_the_layers() -> None:
    wrong = []
    for owner, path in python_files():
        for imported in project_imports(path) & LAYERS.keys():
            if imported != owner and LAYERS[imported] >= LAYERS[owner]:
                wrong.append(f"{path.relative_to(REPO_ROOT)} imports {imported}")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_the_pipeline_library_never_imports_gradio() -> None:
    offenders = [str(path.relative_to(REPO_ROOT)) for owner, path in python_files()
                 if owner == "pipeline" and "gradio" in project_imports(path)]
    assert not offenders, offenders


def test_the_check_sees_a_wrong_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nfrom benchmarks.security import ATTACKS\n\ndef f():\n    import training.common\n")
    assert project_imports(sample) & LAYERS.keys() == {"benchmarks", "training"}
