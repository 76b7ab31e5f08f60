"""pipeline.models re-declares facenet-pytorch's networks so that running them needs only torch: they
must compute what facenet-pytorch computes, with the same weights, on real faces."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from shared_data import LFW_DIR, REPO_ROOT
from pipeline.mtcnn import nms
from pipeline.weights import load_named


def real_faces(count: int, size: int, region: tuple[int, int, int, int] = (70, 70, 180, 180)) -> torch.Tensor:
    """`region` of LFW photos (by default the centre, which the face fills) at size x size, standardised
    as all these networks expect: (x - 127.5) / 128."""
    paths = sorted(LFW_DIR.glob("*/*_0001.jpg"))[:count]
    crops = [np.asarray(Image.open(path).convert("RGB").crop(region).resize((size, size))) for path in paths]
    return (torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() - 127.5) / 128.0


@pytest.mark.shared_data
def test_embedding_network_matches_facenet_pytorch_with_the_real_weights() -> None:
    from facenet_pytorch import InceptionResnetV1 as Reference

    from pipeline.models.inception_resnet_v1 import InceptionResnetV1

    weights = load_named("facenet-casia-webface")
    ours, reference = InceptionResnetV1().eval(), Reference(pretrained=None).eval()
    ours.load_state_dict(weights)
    reference.load_state_dict(weights)
    faces = real_faces(6, 160)
    with torch.inference_mode():
        np.testing.assert_allclose(ours(faces).numpy(), reference(faces).numpy(), atol=1e-5)


@pytest.mark.shared_data
def test_mtcnn_networks_match_facenet_pytorch_with_the_shipped_weights() -> None:
    from facenet_pytorch import MTCNN

    from pipeline.mtcnn import mtcnn_nets

    pnet, rnet, onet = mtcnn_nets()
    reference = MTCNN(device="cpu").eval()
    with torch.inference_mode():
        picture = real_faces(1, 36, region=(0, 0, 250, 250))  # the whole photo: a face about P-Net's 12 px
        regression, probability = pnet(picture)
        expected_regression, expected_probabilities = reference.pnet(picture)
        np.testing.assert_allclose(regression.numpy(), expected_regression.numpy(), atol=1e-5)
        np.testing.assert_allclose(probability.numpy(), expected_probabilities[:, 1].numpy(), atol=1e-5)
        assert probability.max() > 0.9, "P-Net should see a face somewhere in a face photo"
        for ours, theirs, size in ((rnet, reference.rnet, 24), (onet, reference.onet, 48)):
            crops = real_faces(8, size)
            *outputs, probability = ours(crops)
            *expected, expected_probabilities = theirs(crops)
            for mine, reference_output in zip(outputs, expected):
                np.testing.assert_allclose(mine.numpy(), reference_output.numpy(), atol=1e-5)
            np.testing.assert_allclose(probability.numpy(), expected_probabilities[:, 1].numpy(), atol=1e-5)
            assert (probability > 0.5).sum() >= 6, "most face crops should score as faces"


@pytest.mark.parametrize("threshold,count", [(0.3, 400), (0.5, 5), (0.7, 400), (0.5, 3000)])
def test_nms_keeps_what_torchvision_keeps(threshold: float, count: int) -> None:
    """Including more boxes than one block of the overlap matrix (NMS_BLOCK), as busy pictures give."""
    from torchvision.ops import nms as reference_nms

    rng = np.random.default_rng(count)
    corners = rng.uniform(0, 200, size=(count, 2)).astype(np.float32)
    boxes = np.concatenate([corners, corners + rng.uniform(10, 60, size=(count, 2)).astype(np.float32)], axis=1)
    scores = rng.uniform(size=count).astype(np.float32)
    expected = reference_nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold).numpy()
    np.testing.assert_array_equal(nms(boxes, scores, threshold), expected)
    assert nms(boxes[:0], scores[:0], threshold).shape == (0,)


def test_min_mode_nms_keeps_what_facenet_pytorch_keeps() -> None:
    from facenet_pytorch.models.utils.detect_face import nms_numpy

    rng = np.random.default_rng(7)
    corners = rng.uniform(0, 100, size=(300, 2)).astype(np.float32)
    boxes = np.concatenate([corners, corners + rng.uniform(5, 40, size=(300, 2)).astype(np.float32)], axis=1)
    scores = rng.uniform(size=300).astype(np.float32)
    np.testing.assert_array_equal(nms(boxes, scores, 0.7, "min"), nms_numpy(boxes, scores, 0.7, "Min"))


@pytest.mark.shared_data
def test_the_app_pipeline_runs_without_importing_torchvision() -> None:
    """torchvision's import (torch._dynamo with it) cost 2-4 s of cold start: the pipeline, int8 embedder
    included (eager-mode quantization, no tracing), must need neither."""
    script = (
        "import sys; from pipeline import get_facelab; from benchmarks.latency import test_pictures\n"
        "lab = get_facelab(); analysis = lab.analyze(test_pictures()['640x480_one_face'], embed=True, mask=True, emotion=True)\n"
        "assert len(analysis.faces) == 1, analysis.faces\n"
        "from pipeline.models import int8; assert lab.embedder.precision == ('int8' if int8.available() else 'float32')\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] in ('torchvision', 'facenet_pytorch')\n"
        "             or name.startswith('torch._dynamo')))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]", result.stdout


@pytest.mark.parametrize("height,width", [(12, 12), (13, 12), (12, 15), (287, 383)])
def test_pnet_pooling_matches_torch_max_pool_with_ceil_mode(height: int, width: int) -> None:
    from pipeline.models.mtcnn_nets import _max_pool_2x2

    x = torch.randn(1, 10, height, width).contiguous(memory_format=torch.channels_last)
    expected = torch.nn.functional.max_pool2d(x, 2, 2, ceil_mode=True)
    assert torch.equal(_max_pool_2x2(x), expected)


def test_crop_batches_are_padded_to_few_sizes_and_never_shrunk() -> None:
    """oneDNN rebuilds its kernels for each new batch size: R-Net and O-Net chunks (at most NET_CHUNK crops) are
    zero-padded to a handful of sizes, the smallest that holds them."""
    from pipeline.mtcnn import NET_CHUNK, padded_batch_size

    sizes = [padded_batch_size(count) for count in range(1, NET_CHUNK + 1)]
    assert all(size >= count for count, size in zip(range(1, NET_CHUNK + 1), sizes))
    assert sorted(set(sizes)) == [1, 2, 4, 8, 16, 24, 32]
    assert padded_batch_size(23) == 24 and padded_batch_size(5) == 8
