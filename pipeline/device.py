"""Where the models run: CUDA when present, the CPU otherwise, overridable by FACELAB_DEVICE."""

from __future__ import annotations

import os

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
    """Set torch's intra-op threads (env FACELAB_THREADS, default 1) and return the count.

    Default 1: MTCNN is many small ops that gain little from threads, and when anything else uses the
    cores (a second request, another process) a 2-thread pool was 15x slower here (80 ms vs 1.2 s for
    a 250 px picture on 2 busy cores). Concurrency comes from Gradio's worker threads instead.
    """
    wanted = threads or int(os.environ.get("FACELAB_THREADS", "0") or 0) or 1
    torch.set_num_threads(max(1, wanted))
    return torch.get_num_threads()
