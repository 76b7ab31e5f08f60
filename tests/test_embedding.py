"""Embeddings with the real casia-webface weights from ../shared/weights."""

from __future__ import annotations

import numpy as np
import pytest

from shared_data import central_face, lfw_pairs
from pipeline.identity import thresholds
from pipeline.models.int8 import available as int8_available
from tests.shared import skip_module_without_shared_data

skip_module_without_shared_data()  # the pairs and people below are read while collecting

# 300 pairs: 15 matched and 15 mismatched from each of the 10 folds, a fixed sample.
PAIRS = [pair for fold in range(10) for same in (True, False) for pair in
         [p for p in lfw_pairs() if p.fold == fold and p.same == same][:15]]
# The calibrated "balanced" threshold of the casia backbone from weights/manifest.json (set on all 6,000
# LFW View 2 pairs by training/calibrate_thresholds.py, so this sample is part of what it was set on).
FIXED_THRESHOLD = thresholds("casia-webface")["balanced"]


def test_embeddings_are_unit_length_and_batched_equals_single(lab) -> None:
    analysis = lab.analyze(PAIRS[0].first, embed=True)
    crops = np.stack([analysis.faces[0].crop] * 3)
    batched = lab.embedder.embed(crops)
    single = lab.embedder.embed(crops[:1])
    assert batched.shape == (3, 512) and batched.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(batched[0], single[0], atol=1e-4)


@pytest.mark.parametrize("precision", ["default", "float32"])
def test_covering_feature_map_blocks_starts_from_the_plain_embedding_and_moves_it_a_little(lab, precision) -> None:
    """Why?'s verify map (FaceEmbedder.embed_covered): the first vector is the face's own embedding (the
    stages before the covered maps ran once), every block covered moves it, none turns it into another face."""
    from pipeline.embedding import FaceEmbedder

    embedder = lab.embedder if precision == "default" else FaceEmbedder.from_backbone("casia-webface", precision="float32")
    crops = np.stack([central_face(lab.analyze(path, embed=True)).crop for path in (PAIRS[0].first, PAIRS[0].second)])
    vectors = embedder.embed_covered(crops, 4)
    assert vectors.shape == (2, 17, 512)
    np.testing.assert_allclose(vectors[:, 0], embedder.embed(crops), atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=2), 1.0, atol=1e-5)
    moved = np.einsum("nkd,nd->nk", vectors[:, 1:], vectors[:, 0])
    assert (moved < 0.9999).all() and (moved > 0.7).all(), moved.round(3)


def test_casia_embeddings_are_centred_on_the_manifest_centre(lab) -> None:
    from pipeline.embedding import FaceEmbedder

    crops = np.stack([central_face(lab.analyze(path, embed=True)).crop for path in (PAIRS[0].first, PAIRS[0].second)])
    assert lab.embedder.backbone == "casia-webface" and lab.embedder.centre is not None
    raw = FaceEmbedder.from_backbone("casia-webface", centred=False).embed(crops)
    expected = raw - lab.embedder.centre.numpy()
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(lab.embedder.embed(crops), expected, atol=1e-5)


def test_no_face_gives_no_embedding_and_no_error(lab) -> None:
    from shared_data import MISC_DIR

    analysis = lab.analyze(MISC_DIR / "no_face_coffee_cup.png", embed=True)
    assert analysis.faces == [] and analysis.largest is None


@pytest.mark.slow
def test_lfw_pairs_accuracy_at_a_fixed_threshold(lab) -> None:
    cache: dict = {}

    def embedding(path):
        if path not in cache:
            cache[path] = central_face(lab.analyze(path, embed=True)).embedding
        return cache[path]

    correct = 0
    for pair in PAIRS:
        similarity = float(embedding(pair.first) @ embedding(pair.second))
        correct += (similarity >= FIXED_THRESHOLD) == pair.same
    accuracy = correct / len(PAIRS)
    assert len(PAIRS) == 300
    assert accuracy >= 0.97, f"LFW pair accuracy {accuracy:.3f}"


@pytest.mark.skipif(not int8_available(), reason="this PyTorch build has no int8 CPU kernels")
def test_the_cpu_default_is_int8_and_agrees_with_float32_on_real_pairs(lab) -> None:
    from pipeline.embedding import FaceEmbedder

    assert lab.embedder.precision == "int8"
    pictures = [path for pair in PAIRS[:: len(PAIRS) // 12] for path in (pair.first, pair.second)]
    crops = np.stack([central_face(lab.analyze(path)).crop for path in pictures])
    fast = lab.embedder.embed(crops)
    full = FaceEmbedder.from_backbone("casia-webface", precision="float32").embed(crops)
    cosine = np.einsum("ij,ij->i", fast, full)
    assert cosine.min() >= 0.99 and cosine.mean() >= 0.995, cosine
    # What a visitor sees: a pair's similarity, the number compared with the threshold (about 0.4), moves
    # by about 0.01 (benchmarks/results/lfw.json has the change over all 6,000 LFW pairs).
    pair_change = np.abs(np.einsum("ij,ij->i", fast[0::2], fast[1::2]) - np.einsum("ij,ij->i", full[0::2], full[1::2]))
    assert pair_change.max() < 0.05 and pair_change.mean() < 0.015, pair_change


def test_precision_settings(monkeypatch) -> None:
    import torch

    from pipeline.embedding import choose_precision
    from pipeline.errors import FaceLabError
    from pipeline.settings import SettingsError, current

    cpu = torch.device("cpu")
    monkeypatch.delenv("FACELAB_PRECISION", raising=False)
    assert choose_precision("casia-webface", cpu) == "int8"
    assert choose_precision("vggface2", cpu) == "float32"  # no int8 activation ranges for it (yet)
    assert choose_precision("casia-webface", torch.device("cuda")) == "float16"
    monkeypatch.setenv("FACELAB_PRECISION", "float32")
    current.cache_clear()  # settings are read once per process: this stands for a new one
    assert choose_precision("casia-webface", cpu) == "float32"
    monkeypatch.setenv("FACELAB_PRECISION", "int4")  # refused where the settings are read, naming what may be
    current.cache_clear()
    with pytest.raises(SettingsError, match="FACELAB_PRECISION='int4' is not allowed: use one of auto, float32, int8"):
        choose_precision("casia-webface", cpu)
    monkeypatch.delenv("FACELAB_PRECISION")
    current.cache_clear()
    with pytest.raises(FaceLabError, match="FACELAB_PRECISION must be one of"):  # a caller's own bad argument
        choose_precision("casia-webface", cpu, "int4")
    with pytest.raises(FaceLabError, match="needs a CUDA device"):
        choose_precision("casia-webface", cpu, "float16")
    with pytest.raises(FaceLabError, match="int8 activation ranges"):
        choose_precision("vggface2", cpu, "int8")


def test_int8_ranges_that_do_not_fit_the_model_are_refused_with_a_message() -> None:
    from pipeline.embedding import FaceEmbedder
    from pipeline.errors import WeightsError
    from pipeline.weights import load_named

    ranges = dict(load_named("facenet-casia-webface-int8"))
    ranges.pop(next(iter(ranges)))
    with pytest.raises(WeightsError, match="do not fit this model.*FACELAB_PRECISION=float32"):
        FaceEmbedder(load_named("facenet-casia-webface"), precision="int8", backbone="casia-webface", int8_ranges=ranges)


@pytest.mark.skipif(not int8_available(), reason="this PyTorch build has no int8 CPU kernels")
def test_an_explicit_int8_setting_falls_back_to_the_backbone_that_has_it(monkeypatch) -> None:
    """FACELAB_PRECISION=int8 with vggface2 preferred (no int8 ranges, and no weights here): the identity
    tabs still get an embedder, casia-webface in int8."""
    from pipeline import FaceLab

    monkeypatch.setenv("FACELAB_PRECISION", "int8")
    lab = FaceLab(backbone="vggface2", device="cpu")
    assert (lab.embedder.backbone, lab.embedder.precision) == ("casia-webface", "int8")
