"""Face embeddings with InceptionResnetV1 (facenet-pytorch's architecture, pipeline.models): 512-d, L2-normalised.

Where the manifest has an embedding centre for the backbone (the mean embedding of one picture per LFW
person, made by training/embedding_centre.py), embeddings are centred on it and normalised again:
FaceNet embeddings share a common component, and removing it separates people better (Sandberg's
--subtract_mean; LFW 10-fold 0.9873 -> 0.9888 here, benchmarks/results/lfw_crop_ablation.json).

Precision (`FACELAB_PRECISION`, default "auto"): on CUDA float16; on a CPU int8 (pipeline.models.int8)
where the manifest has the backbone's activation ranges, float32 otherwise. "float32" forces full
precision. benchmarks/lfw.py measures each precision's LFW accuracy; int8 embeddings keep a cosine
similarity of 0.9986 on average to float32 ones (weights/facenet-casia-webface_int8.metrics.json).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from .device import model_call
from .errors import FaceLabError, WeightsError
from .settings import current as current_settings
from .models import int8
from .models.folding import fold_batch_norms
from .models.inception_resnet_v1 import InceptionResnetV1, ResidualBlock
from .weights import load_named, manifest

BACKBONES = {
    "vggface2": "facenet-vggface2",
    "casia-webface": "facenet-casia-webface",
}
# Manifest names of the backbones' embedding centres; a backbone without one gives uncentred embeddings.
CENTRES = {"casia-webface": "facenet-casia-webface-centre"}
# Manifest names of the backbones' int8 activation ranges (training/calibrate_int8.py).
INT8_RANGES = {"casia-webface": "facenet-casia-webface-int8"}
EMBEDDING_SIZE = 512
# Where Why? covers parts of a face (FaceEmbedder.embed_covered): the 8x8 maps after repeat_2. Covering
# there costs the last stages only, about a seventh of a face, and the maps it gives are more faithful
# than covering pixels (benchmarks/results/explain.json, verify methods).
OCCLUSION_STAGE = "repeat_2"
Precision = Literal["float32", "float16", "int8"]
PRECISIONS = ("auto", "float32", "float16", "int8")


class FaceEmbedder:
    """Embeds aligned 160x160 RGB uint8 crops. Safe to call from several threads (forward only)."""

    def __init__(
        self,
        state_dict: dict[str, torch.Tensor],
        device: torch.device | str = "cpu",
        precision: Precision = "float32",
        batch_size: int = 32,
        backbone: str = "custom",
        centre: np.ndarray | None = None,
        int8_ranges: dict[str, torch.Tensor] | None = None,
    ) -> None:
        self.backbone = backbone
        self.device = torch.device(device)
        if precision not in PRECISIONS[1:]:
            raise ValueError(f"precision must be one of {PRECISIONS[1:]}, not {precision!r}")
        self.precision = precision
        _check_precision(precision, self.device, int8_ranges is not None)
        # float16 only on CUDA, where it is fast and was checked against float32 (tests/test_device.py).
        self.dtype = torch.float16 if precision == "float16" else torch.float32
        self.batch_size = batch_size
        self.centre = None if centre is None else torch.as_tensor(centre, dtype=torch.float32).reshape(1, -1)
        model = float_model(state_dict)
        if precision == "int8":
            try:
                model = int8.from_qparams(model.eval(), int8_ranges)
            except ValueError as exc:  # ranges calibrated for another version of the model
                raise WeightsError(f"The int8 activation ranges of {backbone} do not fit this model ({exc}): recalibrate "
                                   "them (python -m training.calibrate_int8) or set FACELAB_PRECISION=float32.") from exc
        # Channels-last lets oneDNN (CPU) and cuDNN pick faster convolution kernels: 1.35x per face here.
        self.model = model.eval().to(self.device, self.dtype, memory_format=torch.channels_last)

    @classmethod
    def from_backbone(cls, backbone: str, device: torch.device | str = "cpu", precision: str | None = None,
                      centred: bool = True) -> "FaceEmbedder":
        """Build from a backbone name ('vggface2' or 'casia-webface'), resolving weights via the manifest.
        `precision` (default: env FACELAB_PRECISION, else "auto") as in the module's docstring.
        `centred=False` ignores the backbone's embedding centre (to compute one)."""
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; choose one of {sorted(BACKBONES)}")
        device = torch.device(device)
        chosen = choose_precision(backbone, device, precision)
        centre = load_named(CENTRES[backbone])["centre"].numpy() if centred and backbone in CENTRES else None
        ranges = load_named(INT8_RANGES[backbone]) if chosen == "int8" else None
        return cls(load_named(BACKBONES[backbone]), device=device, precision=chosen, backbone=backbone,
                   centre=centre, int8_ranges=ranges)

    @model_call()
    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(N, 160, 160, 3) uint8 crops -> (N, 512) float32 unit vectors."""
        if len(crops) == 0:
            return np.zeros((0, EMBEDDING_SIZE), dtype=np.float32)
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(crops), self.batch_size):
                outputs.append(self._unit_vectors(self.model(self._inputs(crops[start : start + self.batch_size]))))
        return np.concatenate(outputs)

    @model_call()
    def embed_covered(self, crops: np.ndarray, grid: int) -> np.ndarray:
        """(N, 160, 160, 3) uint8 crops -> (N, 1 + grid^2, 512) unit vectors: each crop's embedding, then its
        embeddings with one block of the 8x8 feature maps after OCCLUSION_STAGE covered (blocks row by row;
        covered = set to that face's mean activation, the feature-map analogue of a patch of mean colour).
        The stages before OCCLUSION_STAGE run once per crop, not once per block (pipeline.explain)."""
        with torch.inference_mode():
            maps = self.model.feature_maps(self._inputs(crops), OCCLUSION_STAGE)
            vectors = self._unit_vectors(self.model.from_feature_maps(covered_blocks(maps, grid), OCCLUSION_STAGE))
        return vectors.reshape(len(crops), 1 + grid * grid, -1)

    def _inputs(self, crops: np.ndarray) -> torch.Tensor:
        batch = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device)
        return standardise(batch.permute(0, 3, 1, 2).to(self.dtype, memory_format=torch.channels_last))

    def _unit_vectors(self, outputs: torch.Tensor) -> np.ndarray:
        embeddings = torch.nn.functional.normalize(outputs.float().cpu(), dim=1)
        if self.centre is not None:
            embeddings = torch.nn.functional.normalize(embeddings - self.centre, dim=1)
        return embeddings.numpy()


def covered_blocks(maps: torch.Tensor, grid: int) -> torch.Tensor:
    """(N,C,H,W) feature maps (float or int8) -> (N * (1 + grid^2),C,H,W): per face its maps, then one copy
    per block of a grid x grid tiling (row by row) with that block set to the face's mean activation."""
    values = maps.dequantize() if maps.is_quantized else maps
    n, c, h, w = values.shape
    rows, cols = np.linspace(0, h, grid + 1).round().astype(int), np.linspace(0, w, grid + 1).round().astype(int)
    fill = values.mean((2, 3), keepdim=True)
    copies = values.unsqueeze(1).repeat(1, 1 + grid * grid, 1, 1, 1)
    for i in range(grid):
        for j in range(grid):
            copies[:, 1 + i * grid + j, :, rows[i]:rows[i + 1], cols[j]:cols[j + 1]] = fill
    copies = copies.reshape(-1, c, h, w).contiguous(memory_format=torch.channels_last)
    if maps.is_quantized:  # back to int8 with the same range: the next stage expects it
        return torch.quantize_per_tensor(copies, maps.q_scale(), maps.q_zero_point(), maps.dtype)
    return copies


def choose_precision(backbone: str, device: torch.device, requested: str | None = None) -> Precision:
    """The precision `requested` (default: env FACELAB_PRECISION, else "auto") resolves to; "auto" is
    float16 on CUDA, int8 on a CPU where the backbone has int8 ranges and PyTorch int8 kernels, else float32."""
    setting = (requested or current_settings().precision).strip().lower()
    if setting not in PRECISIONS:
        raise FaceLabError(f"FACELAB_PRECISION must be one of {', '.join(PRECISIONS)}, not {setting!r}.")
    int8_ready = backbone in INT8_RANGES and INT8_RANGES[backbone] in manifest() and int8.available()
    if setting != "auto":
        _check_precision(setting, device, int8_ready)
        return setting  # type: ignore[return-value]
    if device.type == "cuda":
        return "float16"
    return "int8" if int8_ready else "float32"


def _check_precision(precision: str, device: torch.device, int8_ready: bool) -> None:
    if precision == "float16" and device.type != "cuda":
        raise FaceLabError("Precision float16 needs a CUDA device; on a CPU use float32 or int8.")
    if precision == "int8" and (device.type != "cpu" or not int8_ready):
        raise FaceLabError("Precision int8 needs a CPU, PyTorch's int8 kernels and the backbone's int8 "
                           "activation ranges (see weights/manifest.json); use float32 instead.")


def float_model(state_dict: dict[str, torch.Tensor]) -> InceptionResnetV1:
    """The network with these weights, in eval mode, constants folded (what every precision starts from)."""
    model = InceptionResnetV1()
    # Classification layers are not needed for embeddings; some checkpoints (vggface2) carry them.
    model.load_state_dict({key: value for key, value in state_dict.items() if not key.startswith("logits.")})
    fold_constants(model.eval())
    return model


def standardise(batch: torch.Tensor) -> torch.Tensor:
    """(N, 3, 160, 160) pixel values 0..255 -> facenet's fixed image standardisation."""
    return (batch - 127.5) / 128.0


def fold_constants(model: InceptionResnetV1) -> None:
    """Fold each conv's inference-time BatchNorm, and each residual block's scale, into the conv's weights
    and bias (exact up to float rounding, ~1e-7): one pass over the activations less per layer, 15-20 %
    faster per face on CPU; int8 needs it (pipeline.models.int8)."""
    fold_batch_norms(model)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, ResidualBlock) and module.scale != 1.0:
                module.conv2d.weight.mul_(module.scale)
                module.conv2d.bias.mul_(module.scale)
                module.scale = 1.0
