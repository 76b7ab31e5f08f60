"""Where the models run: CUDA when present, the CPU otherwise, overridable by FACELAB_DEVICE."""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Iterator

import torch

from .errors import FaceLabError


def select_device(preference: str | None = None) -> torch.device:
    """Pick the torch device. `preference` (or env FACELAB_DEVICE) is 'auto', 'cpu' or 'cuda'."""
    choice = (preference or os.environ.get("FACELAB_DEVICE") or "auto").strip().lower()
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cpu":
        return torch.device("cpu")
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise FaceLabError(f"FACELAB_DEVICE={choice} was asked for, but no CUDA device is available.")
        return torch.device(choice)
    raise FaceLabError(f"FACELAB_DEVICE must be 'auto', 'cpu' or 'cuda', not {choice!r}.")


def configure_cpu_threads(threads: int | None = None) -> int:
    """Set the most torch intra-op threads one model call may use (env FACELAB_THREADS, default: the
    cores, at most 4) and return it; see `model_call` for how calls share them.

    Measured on this 2-core machine: one call alone runs 1.3x faster with 2 threads than with 1
    (mask + emotion on 640x480: 51 vs 66 ms, benchmarks/speed.py); calls that overlap serve as many
    frames per second in total with 1 thread each as with 2. When other processes keep a core busy,
    2 threads are 2x slower than 1 (their team waits for the busy core): set FACELAB_THREADS=1 there.
    """
    wanted = threads or int(os.environ.get("FACELAB_THREADS", "0") or 0) or min(os.cpu_count() or 1, 4)
    _budget.most = max(1, wanted)
    torch.set_num_threads(_budget.most)
    limit_numpy_blas_threads()
    return _budget.most


class _ThreadBudget:
    def __init__(self) -> None:
        self.most: int | None = None  # None until configure_cpu_threads: model_call leaves threads alone
        self.active = 0
        self.lock = threading.Lock()


_budget = _ThreadBudget()


@contextmanager
def model_call() -> Iterator[None]:
    """Wrap each model call: a call that runs alone gets all the configured threads, calls that
    overlap get one each, so visitors share the cores without oversubscribing them. torch's thread
    count is per calling thread, so each call sets its own on entry."""
    if _budget.most is None:  # not configured (training scripts set their own threads)
        yield
        return
    with _budget.lock:
        _budget.active += 1
        threads = _budget.most if _budget.active == 1 else 1
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
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
