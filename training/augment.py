"""Batched augmentation on tensors (no per-image PIL work): random affine (rotation, scale,
shift, horizontal flip) via one grid_sample, brightness/contrast, occlusion and blur."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(x: torch.Tensor, out_size: int, g: torch.Generator, rot_deg: float = 10.0,
                  scale: tuple[float, float] = (0.9, 1.1), shift: float = 0.06, base: float = 1.0,
                  flip: bool = True) -> torch.Tensor:
    """Resample each image of x (N,C,H,W float) into (N,C,out,out).

    ``base`` is the fraction of the source side the output covers without augmentation
    (e.g. 44/48 for a centre crop), ``shift`` is in units of the half-side."""
    n = x.shape[0]
    ang = (torch.rand(n, generator=g) * 2 - 1) * math.radians(rot_deg)
    s = base / (scale[0] + torch.rand(n, generator=g) * (scale[1] - scale[0]))
    fx = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0) if flip else torch.ones(n)
    t = (torch.rand(n, 2, generator=g) * 2 - 1) * shift
    cos, sin = torch.cos(ang) * s, torch.sin(ang) * s
    theta = torch.stack([torch.stack([cos * fx, -sin, t[:, 0]], 1),
                         torch.stack([sin * fx, cos, t[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, [n, x.shape[1], out_size, out_size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def center_crop(x: torch.Tensor, out_size: int) -> torch.Tensor:
    top = (x.shape[-2] - out_size) // 2
    left = (x.shape[-1] - out_size) // 2
    return x[..., top:top + out_size, left:left + out_size]


def center_crop_and_mirror(x: torch.Tensor, out_size: int) -> torch.Tensor:
    """(N,C,H,W) -> (2,N,C,out,out): the centre crop and its mirror, the flip TTA the heads (pipeline.heads)
    use at serve time, so that validation and the benchmarks score the views the app scores."""
    x = center_crop(x, out_size)
    return torch.stack([x, x.flip(-1)])


def brightness_contrast(x: torch.Tensor, g: torch.Generator, b: float = 0.25, c: float = 0.3) -> torch.Tensor:
    """x in [-1,1]: contrast scales around each image's mean, brightness shifts."""
    n = x.shape[0]
    cf = (1 + (torch.rand(n, 1, 1, 1, generator=g) * 2 - 1) * c)
    bf = (torch.rand(n, 1, 1, 1, generator=g) * 2 - 1) * b
    m = x.mean((1, 2, 3), keepdim=True)
    return ((x - m) * cf + m + bf).clamp(-1, 1)


def random_erase(x: torch.Tensor, g: torch.Generator, p: float = 0.5, area: tuple[float, float] = (0.02, 0.15)) -> torch.Tensor:
    """Occlude one random rectangle (noise-filled) per selected image."""
    n, _, h, w = x.shape
    x = x.clone()
    sel = torch.rand(n, generator=g) < p
    for i in torch.nonzero(sel).flatten().tolist():
        a = (area[0] + torch.rand(1, generator=g).item() * (area[1] - area[0])) * h * w
        r = math.exp((torch.rand(1, generator=g).item() * 2 - 1) * math.log(2))  # aspect in [1/2, 2]
        eh, ew = min(h, int(round(math.sqrt(a * r)))), min(w, int(round(math.sqrt(a / r))))
        y0 = int(torch.randint(0, h - eh + 1, (1,), generator=g))
        x0 = int(torch.randint(0, w - ew + 1, (1,), generator=g))
        x[i, :, y0:y0 + eh, x0:x0 + ew] = torch.rand(x.shape[1], eh, ew, generator=g) * 2 - 1
    return x


def random_blur(x: torch.Tensor, g: torch.Generator, p: float = 0.3) -> torch.Tensor:
    """Gaussian blur (sigma 0.5-1.5) on a random subset; mimics low-resolution webcam faces."""
    n, c = x.shape[:2]
    sel = torch.nonzero(torch.rand(n, generator=g) < p).flatten()
    if len(sel) == 0:
        return x
    x = x.clone()
    sigma = 0.5 + torch.rand(1, generator=g).item()
    k = torch.arange(-3, 4, dtype=x.dtype)
    k = torch.exp(-(k ** 2) / (2 * sigma ** 2))
    k = k / k.sum()
    sub = x[sel]
    sub = F.conv2d(F.pad(sub, (3, 3, 0, 0), mode="replicate"), k.view(1, 1, 1, 7).repeat(c, 1, 1, 1), groups=c)
    sub = F.conv2d(F.pad(sub, (0, 0, 3, 3), mode="replicate"), k.view(1, 1, 7, 1).repeat(c, 1, 1, 1), groups=c)
    x[sel] = sub
    return x


def colour_cast(x: torch.Tensor, g: torch.Generator, gain: float = 0.3) -> torch.Tensor:
    """Independent per-channel gains (coloured stage lights, white balance) on RGB in [-1,1]."""
    gains = 1 + (torch.rand(x.shape[0], x.shape[1], 1, 1, generator=g) * 2 - 1) * gain
    return ((x + 1) * gains - 1).clamp(-1, 1)


def random_pixelate(x: torch.Tensor, g: torch.Generator, p: float = 0.15, sizes: tuple[int, int] = (8, 20)) -> torch.Tensor:
    """Blocky low-resolution copies (the source's pixelated 'Augmented_*' pictures, tiny web images)."""
    sel = torch.nonzero(torch.rand(x.shape[0], generator=g) < p).flatten()
    if len(sel) == 0:
        return x
    x = x.clone()
    size = int(torch.randint(sizes[0], sizes[1] + 1, (1,), generator=g))
    small = F.interpolate(x[sel], size=(size, size), mode="area")
    x[sel] = F.interpolate(small, size=x.shape[-2:], mode="nearest")
    return x
