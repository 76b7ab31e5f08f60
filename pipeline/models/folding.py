"""Inference-time rewrite shared by the project's networks: batch norms folded into their convolutions."""

from __future__ import annotations

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batch_norms(model: nn.Module) -> None:
    """Fold every BatchNorm2d that directly follows a Conv2d among a module's children (registration
    order is data-flow order in every network here) into that convolution's weights and bias, and
    replace it by Identity: exact up to float rounding (~1e-6), one pass less over each activation map."""
    for parent in model.modules():
        children = list(parent.named_children())
        for (conv_name, conv), (norm_name, norm) in zip(children, children[1:]):
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                setattr(parent, conv_name, fuse_conv_bn_eval(conv.eval(), norm.eval()))
                setattr(parent, norm_name, nn.Identity())
