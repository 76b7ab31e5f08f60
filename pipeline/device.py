"""Where the models run: CUDA when present, the CPU otherwise, overridable by FACELAB_DEVICE (settings.py)."""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Iterator

import torch

from .errors import FaceLabError
from .settings import current as current_settings


def select_device(preference: str | None = None) -> torch.device:
    """Pick the torch device. `preference` (or env FACELAB_DEVICE) is 'auto', 'cpu' or 'cuda'."""
    choice = (preference or current_settings().device).strip().lower()
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cpu":
        return torch.device("cpu")
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise FaceLabError(f"FACELAB_DEVICE={choice} was asked for, but no CUDA device is available.")
        return torch.device(choice)
    raise FaceLabError(f"FACELAB_DEVICE must be 'auto', 'cpu' or 'cuda', not {choice!r}.")


def configure_cpu_threads(threads: int | str | None = None) -> int:
    """Set the most torch intra-op threads one model call may use (env FACELAB_THREADS: a number, or
    "auto" for this process's cores; default 1) and return it; see `model_call` for how calls share them.

    Default 1 because of what was measured on this 2-core machine (benchmarks/speed.py): one call
    alone runs only 1.0-1.3x faster with 2 threads than with 1 (mask + emotion on 640x480: 51 vs 66 ms
    on an idle machine), but when any other process keeps a core busy, 2-thread calls become up to 8x
    slower (656 vs 86 ms), their team waiting on the busy core. Where the cores are the app's alone,
    FACELAB_THREADS=auto gives a lone call every core.
    """
    setting = str(threads or current_settings().threads).strip().lower()
    if setting == "auto":
        wanted = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    elif setting.isdigit() and int(setting) > 0:
        wanted = int(setting)
    else:
        raise FaceLabError(f"FACELAB_THREADS must be a positive number or 'auto', not {setting!r}.")
    _budget.most = wanted
    torch.set_num_threads(wanted)
    limit_numpy_blas_threads()
    return wanted


class _ThreadBudget:
    def __init__(self) -> None:
        self.most: int | None = None  # None until configure_cpu_threads: model_call leaves threads alone
        self.active = 0
        self.lock = threading.Lock()
        self.depth = threading.local()  # per thread: model calls entered and not yet left


_budget = _ThreadBudget()


@contextmanager
def model_call() -> Iterator[None]:
    """Wrap each model call: a call that starts while no other runs gets all the configured threads,
    a call that starts while another runs gets one, so visitors share the cores without piling up
    threads. torch's thread count is per calling thread, so each call sets its own on entry; a call
    nested in another (same thread) keeps the outer call's setting."""
    depth = getattr(_budget.depth, "value", 0)
    if _budget.most is None or depth:  # not configured (training sets its own threads), or nested
        _budget.depth.value = depth + 1
        try:
            yield
        finally:
            _budget.depth.value = depth
        return
    counted = False
    try:
        with _budget.lock:
            _budget.active += 1
            counted = True
            threads = _budget.most if _budget.active == 1 else 1
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        _budget.depth.value = 1
        yield
    finally:
        _budget.depth.value = 0
        if counted:
            with _budget.lock:
                _budget.active -= 1


def limit_numpy_blas_threads() -> None:
    """numpy's BLAS (OpenBLAS) to one thread. Its products here are small (gallery search, alignment),
    and after each call its idle workers keep spinning on the other cores, where they slowed the next
    torch call: identify on a 640x480 frame took 157 ms instead of 87 with 2 torch threads."""
    global _blas_limited
    if not _blas_limited:  # once: threadpoolctl scans the loaded libraries, a few ms
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")
        _blas_limited = True


_blas_limited = False
