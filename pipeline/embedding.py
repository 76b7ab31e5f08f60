"""Face embeddings with InceptionResnetV1 (facenet-pytorch's architecture, pipeline.models): 512-d, L2-normalised.

Where the manifest has an embedding centre for the backbone (the mean embedding of one picture per LFW
person, made by training/embedding_centre.py), embeddings are centred on it and normalised again:
FaceNet embeddings share a common component, and removing it separates people better (Sandberg's
--subtract_mean; LFW 10-fold 0.9873 -> 0.9888 here, benchmarks/results/lfw_crop_ablation.json).
"""

from __future__ import annotations

import numpy as np
import torch

from .device import model_call
from .models.inception_resnet_v1 import BasicConv2d, InceptionResnetV1
from .weights import load_named

BACKBONES = {
    "vggface2": "facenet-vggface2",
    "casia-webface": "facenet-casia-webface",
}
# Manifest names of the backbones' embedding centres; a backbone without one gives uncentred embeddings.
CENTRES = {"casia-webface": "facenet-casia-webface-centre"}
EMBEDDING_SIZE = 512


class FaceEmbedder:
    """Embeds aligned 160x160 RGB uint8 crops. Safe to call from several threads (forward only)."""

    def __init__(
        self,
        state_dict: dict[str, torch.Tensor],
        device: torch.device | str = "cpu",
        half: bool = False,
        batch_size: int = 32,
        backbone: str = "custom",
        centre: np.ndarray | None = None,
    ) -> None:
        self.backbone = backbone
        self.device = torch.device(device)
        # Half precision only on CUDA, where it is fast and was checked against float32 (benchmarks).
        self.dtype = torch.float16 if half and self.device.type == "cuda" else torch.float32
        self.batch_size = batch_size
        self.centre = None if centre is None else torch.as_tensor(centre, dtype=torch.float32).reshape(1, -1)
        model = InceptionResnetV1()
        # Classification layers are not needed for embeddings; some checkpoints (vggface2) carry them.
        weights = {key: value for key, value in state_dict.items() if not key.startswith("logits.")}
        model.load_state_dict(weights)
        _fold_batch_norms(model)
        # Channels-last lets oneDNN (CPU) and cuDNN pick faster convolution kernels: 1.35x per face here.
        self.model = model.eval().to(self.device, self.dtype, memory_format=torch.channels_last)

    @classmethod
    def from_backbone(cls, backbone: str, device: torch.device | str = "cpu", half: bool = False,
                      centred: bool = True) -> "FaceEmbedder":
        """Build from a backbone name ('vggface2' or 'casia-webface'), resolving weights via the manifest.
        `centred=False` ignores the backbone's embedding centre (to compute one)."""
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; choose one of {sorted(BACKBONES)}")
        centre = load_named(CENTRES[backbone])["centre"].numpy() if centred and backbone in CENTRES else None
        return cls(load_named(BACKBONES[backbone]), device=device, half=half, backbone=backbone, centre=centre)

    @model_call()
    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(N, 160, 160, 3) uint8 crops -> (N, 512) float32 unit vectors."""
        if len(crops) == 0:
            return np.zeros((0, EMBEDDING_SIZE), dtype=np.float32)
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(crops), self.batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(crops[start : start + self.batch_size]))
                batch = batch.to(self.device).permute(0, 3, 1, 2).to(self.dtype, memory_format=torch.channels_last)
                batch = (batch - 127.5) / 128.0  # facenet's fixed image standardisation
                embeddings = torch.nn.functional.normalize(self.model(batch).float().cpu(), dim=1)
                if self.centre is not None:
                    embeddings = torch.nn.functional.normalize(embeddings - self.centre, dim=1)
                outputs.append(embeddings.numpy())
        return np.concatenate(outputs)


def _fold_batch_norms(model: torch.nn.Module) -> None:
    """Fold each conv's inference-time BatchNorm into the conv's weights and bias (exact up to float
    rounding, ~1e-7): one pass over the activations less per layer, 15-20 % faster per face on CPU."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for module in model.modules():
        if isinstance(module, BasicConv2d):
            module.conv = fuse_conv_bn_eval(module.conv.eval(), module.bn.eval())
            module.bn = torch.nn.Identity()
