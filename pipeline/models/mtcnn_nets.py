"""MTCNN's three networks (P-Net, R-Net, O-Net), as in facenet-pytorch 2.5.3's models/mtcnn.py.

The weights are the ones facenet-pytorch's wheel ships (`facenet_pytorch/data/{pnet,rnet,onet}.pt`), read
and sha256-checked through pipeline/weights.py (manifest entries mtcnn-pnet, -rnet, -onet). Each forward returns
(box regression, [landmarks,] face probability); the probability is softmax's face column.
"""

from __future__ import annotations

import torch
from torch import nn


def _max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """MaxPool2d(2, 2, ceil_mode=True) as maxima of strided views (rows, then columns; an odd last
    row or column is its own window): on channels-last tensors with P-Net's 10 channels this is
    about 2.4x faster than torch's pooling kernel."""
    height, width = x.shape[-2:]
    rows = torch.maximum(x[..., 0:height - 1:2, :], x[..., 1:height:2, :])
    if height % 2:
        rows = torch.cat([rows, x[..., height - 1:, :]], dim=-2)
    out = torch.maximum(rows[..., 0:width - 1:2], rows[..., 1:width:2])
    if width % 2:
        out = torch.cat([out, rows[..., width - 1:]], dim=-1)
    return out


# P-Net runs its first layer and its two 1x1 heads this wide, zero-padded: on CPU, channels-last tensors
# with 10 channels (conv1) or 2 and 4 (the heads) fall to slow kernels. On the first pyramid level of a
# 640x480 frame the 10-channel PReLU took 2.2 ms against 0.5 ms at 16, the heads 1.7 ms against 0.5 ms.
PNET_WIDE_CHANNELS = 16


class PNet(nn.Module):
    """Proposal network: fully convolutional, run over the image pyramid."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)
        # The padded copies the forward runs (derived, not saved): rebuilt whenever weights are loaded.
        wide = PNET_WIDE_CHANNELS
        for name, shape in (("wide_conv1_weight", (wide, 3, 3, 3)), ("wide_conv1_bias", (wide,)),
                            ("wide_prelu1_weight", (wide,)), ("wide_conv2_weight", (16, wide, 3, 3)),
                            ("heads_weight", (wide, 32, 1, 1)), ("heads_bias", (wide,))):
            self.register_buffer(name, torch.zeros(shape), persistent=False)
        self._widen()
        self.register_load_state_dict_post_hook(lambda net, _: net._widen())

    @torch.no_grad()
    def _widen(self) -> None:
        """Copy the weights into the padded buffers; the extra channels are zero in and out, so the outputs
        are the same."""
        for buffer in (self.wide_conv1_weight, self.wide_conv1_bias, self.wide_prelu1_weight,
                       self.wide_conv2_weight, self.heads_weight, self.heads_bias):
            buffer.zero_()
        self.wide_conv1_weight[:10] = self.conv1.weight
        self.wide_conv1_bias[:10] = self.conv1.bias
        self.wide_prelu1_weight[:10] = self.prelu1.weight
        self.wide_conv2_weight[:, :10] = self.conv2.weight
        self.heads_weight[:6] = torch.cat((self.conv4_1.weight, self.conv4_2.weight))
        self.heads_bias[:6] = torch.cat((self.conv4_1.bias, self.conv4_2.bias))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, H, W) -> regression (N, 4, h, w), face probability (N, h, w)."""
        x = nn.functional.prelu(nn.functional.conv2d(x, self.wide_conv1_weight, self.wide_conv1_bias),
                                self.wide_prelu1_weight)
        x = self.prelu2(nn.functional.conv2d(_max_pool_2x2(x), self.wide_conv2_weight, self.conv2.bias))
        heads = nn.functional.conv2d(self.prelu3(self.conv3(x)), self.heads_weight, self.heads_bias)
        face_probability = torch.sigmoid(heads[:, 1] - heads[:, 0])  # = softmax over the 2 face logits
        return heads[:, 2:6], face_probability


class RNet(nn.Module):
    """Refinement network: 24x24 crops."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, 24, 24) -> regression (N, 4), face probability (N,)."""
        x = self.pool2(self.prelu2(self.conv2(self.pool1(self.prelu1(self.conv1(x))))))
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.dense4(x.permute(0, 3, 2, 1).reshape(len(x), -1)))  # the original's (W, H, C) order
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)[:, 1]


class ONet(nn.Module):
    """Output network: 48x48 crops, with the 5 landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, 3, 48, 48) -> regression (N, 4), landmarks (N, 10: five x then five y), face probability (N,)."""
        x = self.pool2(self.prelu2(self.conv2(self.pool1(self.prelu1(self.conv1(x))))))
        x = self.prelu4(self.conv4(self.pool3(self.prelu3(self.conv3(x)))))
        x = self.prelu5(self.dense5(x.permute(0, 3, 2, 1).reshape(len(x), -1)))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)[:, 1]


def load_mtcnn_nets(state_dicts: tuple[dict, dict, dict], device: torch.device | str = "cpu") -> tuple[PNet, RNet, ONet]:
    """The three networks with the given (P, R, O) weights, in eval mode on `device`."""
    nets = (PNet(), RNet(), ONet())
    for net, state_dict in zip(nets, state_dicts):
        net.load_state_dict(state_dict)
        net.eval().requires_grad_(False).to(device)
    return nets
