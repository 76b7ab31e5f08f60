"""InceptionResnetV1 as in facenet-pytorch 2.5.3's models/inception_resnet_v1.py, embeddings only.

The layer names match facenet-pytorch's state dicts (Sandberg's 20180402-114759 vggface2 and
20180408-102900 casia-webface), so their weights load unchanged; a checkpoint's `logits.*`
classifier keys are not part of this model (pipeline.embedding drops them).

Concatenations and residual additions go through `FloatFunctional` (plain torch.cat / add in float) so
that pipeline.models.int8 can swap them for their int8 versions; they hold no weights.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.ao.nn.quantized import FloatFunctional


class BasicConv2d(nn.Module):
    """Convolution without bias, BatchNorm (TensorFlow's eps), ReLU."""

    def __init__(self, in_planes: int, out_planes: int, kernel_size: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_planes, out_planes, kernel_size=kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_planes, eps=0.001, momentum=0.1, affine=True)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class ResidualBlock(nn.Module):
    """Inception-ResNet block: branches concatenated, projected by a 1x1 conv, scaled, added back."""

    def __init__(self, branches: list[nn.Module], concat_channels: int, channels: int, scale: float,
                 relu: bool = True) -> None:
        super().__init__()
        self.scale = scale
        for index, branch in enumerate(branches):
            self.add_module(f"branch{index}", branch)
        self.branches = len(branches)
        self.conv2d = nn.Conv2d(concat_channels, channels, kernel_size=1, stride=1)
        self.relu = relu
        self.concat, self.residual = FloatFunctional(), FloatFunctional()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.concat.cat([getattr(self, f"branch{index}")(x) for index in range(self.branches)], 1)
        out = self.conv2d(out)
        if self.scale != 1.0:  # pipeline.embedding folds the scale into conv2d (int8 has no float multiply)
            out = out * self.scale
        return self.residual.add_relu(out, x) if self.relu else self.residual.add(out, x)


def _chain(*layers: nn.Module) -> nn.Sequential:
    return nn.Sequential(*layers)


def block35(scale: float) -> ResidualBlock:
    return ResidualBlock([
        BasicConv2d(256, 32, 1),
        _chain(BasicConv2d(256, 32, 1), BasicConv2d(32, 32, 3, padding=1)),
        _chain(BasicConv2d(256, 32, 1), BasicConv2d(32, 32, 3, padding=1), BasicConv2d(32, 32, 3, padding=1)),
    ], 96, 256, scale)


def block17(scale: float) -> ResidualBlock:
    return ResidualBlock([
        BasicConv2d(896, 128, 1),
        _chain(BasicConv2d(896, 128, 1), BasicConv2d(128, 128, (1, 7), padding=(0, 3)),
               BasicConv2d(128, 128, (7, 1), padding=(3, 0))),
    ], 256, 896, scale)


def block8(scale: float, relu: bool = True) -> ResidualBlock:
    return ResidualBlock([
        BasicConv2d(1792, 192, 1),
        _chain(BasicConv2d(1792, 192, 1), BasicConv2d(192, 192, (1, 3), padding=(0, 1)),
               BasicConv2d(192, 192, (3, 1), padding=(1, 0))),
    ], 384, 1792, scale, relu)


class _Concat(nn.Module):
    """Reduction block: branches side by side, concatenated."""

    def __init__(self, branches: list[nn.Module]) -> None:
        super().__init__()
        for index, branch in enumerate(branches):
            self.add_module(f"branch{index}", branch)
        self.branches = len(branches)
        self.concat = FloatFunctional()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.concat.cat([getattr(self, f"branch{index}")(x) for index in range(self.branches)], 1)


def mixed_6a() -> _Concat:
    return _Concat([
        BasicConv2d(256, 384, 3, stride=2),
        _chain(BasicConv2d(256, 192, 1), BasicConv2d(192, 192, 3, padding=1), BasicConv2d(192, 256, 3, stride=2)),
        nn.MaxPool2d(3, stride=2),
    ])


def mixed_7a() -> _Concat:
    return _Concat([
        _chain(BasicConv2d(896, 256, 1), BasicConv2d(256, 384, 3, stride=2)),
        _chain(BasicConv2d(896, 256, 1), BasicConv2d(256, 256, 3, stride=2)),
        _chain(BasicConv2d(896, 256, 1), BasicConv2d(256, 256, 3, padding=1), BasicConv2d(256, 256, 3, stride=2)),
        nn.MaxPool2d(3, stride=2),
    ])


# The trunk's stages in order: `InceptionResnetV1.trunk` can run any consecutive part of it.
STAGES = ("conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b", "conv2d_4a", "conv2d_4b", "repeat_1",
          "mixed_6a", "repeat_2", "mixed_7a", "repeat_3", "block8", "avgpool_1a")
# From mixed_6a to repeat_2 the feature maps are 8x8; cell j is centred on pixel 16 j + 21 of the 160 px
# input (the strides and unpadded kernels of the stages before it), so the 8 cells tile pixels 13..141.
CELLS_8_STRIDE, CELLS_8_FIRST_CENTRE = 16, 21


class InceptionResnetV1(nn.Module):
    """160x160 standardised RGB faces -> 512-d L2-normalised embeddings."""

    def __init__(self) -> None:
        super().__init__()
        self.conv2d_1a = BasicConv2d(3, 32, 3, stride=2)
        self.conv2d_2a = BasicConv2d(32, 32, 3)
        self.conv2d_2b = BasicConv2d(32, 64, 3, padding=1)
        self.maxpool_3a = nn.MaxPool2d(3, stride=2)
        self.conv2d_3b = BasicConv2d(64, 80, 1)
        self.conv2d_4a = BasicConv2d(80, 192, 3)
        self.conv2d_4b = BasicConv2d(192, 256, 3, stride=2)
        self.repeat_1 = nn.Sequential(*[block35(0.17) for _ in range(5)])
        self.mixed_6a = mixed_6a()
        self.repeat_2 = nn.Sequential(*[block17(0.10) for _ in range(10)])
        self.mixed_7a = mixed_7a()
        self.repeat_3 = nn.Sequential(*[block8(0.20) for _ in range(5)])
        self.block8 = block8(1.0, relu=False)
        self.avgpool_1a = nn.AdaptiveAvgPool2d(1)
        self.last_linear = nn.Linear(1792, 512, bias=False)
        self.last_bn = nn.BatchNorm1d(512, eps=0.001, momentum=0.1, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))

    def trunk(self, x: torch.Tensor, after: str | None = None, until: str | None = None) -> torch.Tensor:
        """The convolutions (what int8 runs): by default all of them, down to the pooled (N, 1792, 1, 1)
        features; `after` / `until` name the STAGES to start after and to stop after."""
        first = STAGES.index(after) + 1 if after else 0
        last = STAGES.index(until) + 1 if until else len(STAGES)
        for name in STAGES[first:last]:
            x = getattr(self, name)(x)
        return x

    def feature_maps(self, x: torch.Tensor, stage: str) -> torch.Tensor:
        """The activations after `stage` (one of STAGES)."""
        return self.trunk(x, until=stage)

    def from_feature_maps(self, maps: torch.Tensor, stage: str) -> torch.Tensor:
        """Embeddings from the activations after `stage`: the rest of `forward`."""
        return self.head(self.trunk(maps, after=stage))

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Pooled features -> unit embeddings (always float)."""
        x = self.last_bn(self.last_linear(features.flatten(1)))
        return nn.functional.normalize(x, p=2, dim=1)
