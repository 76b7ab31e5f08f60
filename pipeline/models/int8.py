"""InceptionResnetV1 with an int8 convolution trunk, for CPUs (fbgemm through PyTorch's eager-mode quantization).

Weights are quantised per output channel (symmetric int8) from the float model when it is built; each
activation's range (scale and zero point, unsigned 7-bit: without VNNI, AVX2's 8-bit multiply-adds
saturate at full range) is fixed, read from a calibration file that training/calibrate_int8.py made on
face crops. The final linear layer, its batch norm and the normalisation stay float32. Eager mode needs
no tracing, so building the model takes well under a second.

Expects a float model whose batch norms and residual scales were folded into the convolutions
(pipeline.embedding does that first).
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch
from torch import nn
from torch.ao import quantization as quant

from .inception_resnet_v1 import BasicConv2d, InceptionResnetV1

ENGINE = "x86"  # fbgemm kernels; on by default in PyTorch's x86 builds
ACTIVATION_MIN, ACTIVATION_MAX = 0, 127  # reduce_range: see above
OBSERVER_SUFFIXES = ("activation_post_process.scale", "activation_post_process.zero_point")


class Int8InceptionResnetV1(nn.Module):
    """Float in, float unit embeddings out; the trunk between the stubs runs in int8 once converted."""

    def __init__(self, model: InceptionResnetV1) -> None:
        super().__init__()
        self.quant, self.model, self.dequant = quant.QuantStub(), model, quant.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.head(self.dequant(self.model.trunk(self.quant(x))))

    def feature_maps(self, x: torch.Tensor, stage: str) -> torch.Tensor:
        """The activations after `stage`, as the int8 tensor the next stage reads."""
        return self.model.trunk(self.quant(x), until=stage)

    def from_feature_maps(self, maps: torch.Tensor, stage: str) -> torch.Tensor:
        return self.model.head(self.dequant(self.model.trunk(maps, after=stage)))


def available() -> bool:
    """Whether this PyTorch build has the int8 CPU kernels."""
    return ENGINE in torch.backends.quantized.supported_engines


def observed(model: InceptionResnetV1, observer: Callable[[], quant.ObserverBase]) -> Int8InceptionResnetV1:
    """The model with each convolution fused with its ReLU and an activation observer after every int8
    step (calibration: run face crops through it, then read `activation_qparams`)."""
    wrapper = Int8InceptionResnetV1(model)
    for module in model.modules():
        if isinstance(module, BasicConv2d):
            if not isinstance(module.bn, nn.Identity):
                raise ValueError("fold the batch norms into the convolutions first (pipeline.embedding)")
            quant.fuse_modules(module, [["conv", "relu"]], inplace=True)
    wrapper.qconfig = quant.QConfig(activation=observer, weight=quant.default_per_channel_weight_observer)
    model.last_linear.qconfig = model.last_bn.qconfig = None  # float head
    torch.backends.quantized.engine = ENGINE
    return quant.prepare(wrapper.eval(), inplace=True)


def activation_qparams(prepared: Int8InceptionResnetV1) -> dict[str, torch.Tensor]:
    """Scale and zero point of every observer, under the names `from_qparams` expects."""
    qparams = {}
    for name, module in prepared.named_modules():
        if isinstance(module, quant.ObserverBase) and name.endswith("activation_post_process"):
            scale, zero_point = module.calculate_qparams()
            qparams[f"{name}.scale"] = scale.float().reshape(1)
            qparams[f"{name}.zero_point"] = zero_point.to(torch.int32).reshape(1)
    return qparams


def from_qparams(model: InceptionResnetV1, qparams: dict[str, torch.Tensor]) -> Int8InceptionResnetV1:
    """The int8 model, with activation ranges from a calibration file (ValueError if it does not fit)."""
    fixed = quant.FixedQParamsObserver.with_args(scale=1.0, zero_point=0, dtype=torch.quint8,
                                                 quant_min=ACTIVATION_MIN, quant_max=ACTIVATION_MAX)
    prepared = observed(model, fixed)
    expected = {key for key in prepared.state_dict() if key.endswith(OBSERVER_SUFFIXES)}
    if set(qparams) != expected:
        raise ValueError(f"the calibration file does not fit this model ({len(set(qparams) ^ expected)} "
                         "activation ranges missing or unknown)")
    prepared.load_state_dict(qparams, strict=False)
    with warnings.catch_warnings():  # PyTorch warns that quantised tensors are deprecated in later releases
        warnings.simplefilter("ignore", UserWarning)
        return quant.convert(prepared, inplace=True)
