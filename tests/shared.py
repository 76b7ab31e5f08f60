"""For test modules that read ../shared while they are collected (parametrised pairs, people lists)."""

from __future__ import annotations

import pytest

from shared_data import DATA_DIR, SHARED_WEIGHTS_DIR

PRESENT = DATA_DIR.is_dir() and SHARED_WEIGHTS_DIR.is_dir()
REASON = f"needs the shared data and weights at {DATA_DIR.parent}, absent here"


def skip_module_without_shared_data() -> None:
    """Skip the calling module when ../shared is missing (CI fails instead: see conftest.py)."""
    if not PRESENT:
        pytest.skip(REASON, allow_module_level=True)
