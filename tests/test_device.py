"""Device choice, and (on a CUDA machine) that the half-precision GPU path agrees with float32 on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shared_data import MISC_DIR
from pipeline.device import select_device
from pipeline.embedding import FaceEmbedder
from pipeline.errors import FaceLabError
from pipeline.weights import load_named


def test_a_model_call_alone_gets_every_configured_thread_and_overlapping_calls_one_each() -> None:
    import threading

    from pipeline.device import configure_cpu_threads, model_call

    configure_cpu_threads(2)
    inside, leave, seen = threading.Event(), threading.Event(), {}

    def call(label: str, hold: bool = False) -> None:
        with model_call():
            seen[label] = torch.get_num_threads()
            if hold:
                inside.set()
                leave.wait(10)

    def in_thread(label: str, hold: bool = False) -> threading.Thread:
        thread = threading.Thread(target=call, args=(label, hold))
        thread.start()
        return thread

    try:
        first = in_thread("alone", hold=True)
        assert inside.wait(10)
        in_thread("while another runs").join(10)
        leave.set()
        first.join(10)
        in_thread("alone again").join(10)
    finally:
        leave.set()
        configure_cpu_threads()  # back to the environment's setting
    assert seen == {"alone": 2, "while another runs": 1, "alone again": 2}


def test_a_failed_model_call_does_not_hold_on_to_its_share_of_the_threads() -> None:
    from pipeline.device import configure_cpu_threads, model_call

    configure_cpu_threads(2)
    try:
        with pytest.raises(ValueError), model_call():
            raise ValueError("a bad picture")
        with model_call():
            assert torch.get_num_threads() == 2, "a call alone after the failure should get every thread"
    finally:
        configure_cpu_threads()


def test_thread_setting_is_checked(monkeypatch) -> None:
    from pipeline.device import configure_cpu_threads
    from pipeline.settings import SettingsError, current

    try:
        monkeypatch.setenv("FACELAB_THREADS", "auto")
        assert configure_cpu_threads() >= 1
        monkeypatch.setenv("FACELAB_THREADS", "many")
        current.cache_clear()  # settings are read once per process: this stands for a new one
        with pytest.raises(SettingsError, match="FACELAB_THREADS='many' is not allowed: use one of auto, a whole"):
            configure_cpu_threads()
        with pytest.raises(FaceLabError, match="FACELAB_THREADS must be a positive number or 'auto'"):
            configure_cpu_threads("many")  # a caller's own bad argument
    finally:
        monkeypatch.delenv("FACELAB_THREADS")
        current.cache_clear()
        configure_cpu_threads()


def test_numpy_blas_runs_one_thread_once_threads_are_configured() -> None:
    from threadpoolctl import threadpool_info

    from pipeline.device import configure_cpu_threads

    configure_cpu_threads()
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas, "numpy's BLAS was not found"
    assert all(pool["num_threads"] == 1 for pool in blas)


def test_cpu_is_chosen_when_asked(monkeypatch) -> None:
    monkeypatch.setenv("FACELAB_DEVICE", "cpu")
    assert select_device().type == "cpu"


def test_auto_follows_cuda_availability(monkeypatch) -> None:
    monkeypatch.delenv("FACELAB_DEVICE", raising=False)
    assert select_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_bad_device_settings_get_clear_messages(monkeypatch) -> None:
    from pipeline.settings import SettingsError

    monkeypatch.setenv("FACELAB_DEVICE", "tpu")  # refused where the settings are read
    with pytest.raises(SettingsError, match="FACELAB_DEVICE='tpu' is not allowed: use one of auto, cpu, cuda"):
        select_device()
    with pytest.raises(FaceLabError, match="must be 'auto', 'cpu' or 'cuda'"):
        select_device("tpu")  # a caller's own bad argument
    if not torch.cuda.is_available():
        with pytest.raises(FaceLabError, match="no CUDA device"):
            select_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_half_embeddings_match_cpu_float32(lab) -> None:
    crops = np.stack([face.crop for face in lab.analyze(MISC_DIR / "multiple_faces_group_photo.jpg").faces])
    state = load_named("facenet-casia-webface")
    cpu = FaceEmbedder(state, device="cpu").embed(crops)
    gpu = FaceEmbedder(state, device="cuda", precision="float16").embed(crops)
    cosine = (cpu * gpu).sum(axis=1)
    assert cosine.min() >= 0.999, cosine
