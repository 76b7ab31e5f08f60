"""Shared training loop: time-budgeted warmup+cosine schedule, early stopping on
validation accuracy, temperature scaling and safetensors export."""
from __future__ import annotations

import copy
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm import tqdm

from pipeline.device import configure_cpu_threads, select_device

from .calibration import expected_calibration_error, fit_temperature, softmax

Batch = Callable[[torch.Tensor, torch.Generator], torch.Tensor]  # uint8 batch -> model input


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    # Torch threads as the app sets them (FACELAB_THREADS: a number or "auto"; default 1, the machine is shared).
    configure_cpu_threads()
    g = torch.Generator()
    g.manual_seed(seed)
    return g


@dataclass
class FitConfig:
    budget_s: float             # wall-clock budget of the whole fit; the LR schedule spans it
    max_epochs: int = 200
    patience: int = 8           # epochs without a val improvement before stopping
    batch_size: int = 128
    lr: float = 0.05
    weight_decay: float = 5e-4
    warmup: float = 0.08        # fraction of the budget
    label_smoothing: float = 0.1
    checkpoint: Path | None = None


def predict_logits(model: nn.Module, images: torch.Tensor, prepare_eval: Callable[[torch.Tensor], torch.Tensor],
                   batch_size: int = 512) -> np.ndarray:
    """Eval-mode logits, on the model's device; ``prepare_eval`` maps a uint8 batch to one or more model inputs
    stacked on dim 0 (test-time augmentation views), whose logits are averaged."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            views = prepare_eval(images[i:i + batch_size])  # (V,B,C,H,W)
            v, b = views.shape[:2]
            z = model(views.flatten(0, 1).to(device).contiguous(memory_format=torch.channels_last))
            out.append(z.view(v, b, -1).mean(0).cpu())
    return torch.cat(out).numpy()


def fit(model: nn.Module, train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor,
        prepare_train: Batch, prepare_eval: Callable[[torch.Tensor], torch.Tensor], cfg: FitConfig,
        g: torch.Generator, class_weights: torch.Tensor | None = None,
        device: torch.device | None = None) -> tuple[nn.Module, list[dict]]:
    """Train with SGD+Nesterov; the LR follows warmup then cosine over ``cfg.budget_s`` of wall time
    (robust to a shared, busy CPU). Returns the model with the best validation accuracy, on `device`
    (default: the app's choice, pipeline.device.select_device: CUDA when present). The data and its
    augmentation stay on the CPU (the generator `g` fixes them); each batch is moved to the device."""
    device = device or select_device()
    model = model.to(device, memory_format=torch.channels_last)
    if class_weights is not None:
        class_weights = class_weights.to(device)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, momentum=0.9, nesterov=True)

    def lr_at(frac: float) -> float:
        if frac < cfg.warmup:
            return cfg.lr * max(frac / cfg.warmup, 0.02)
        p = min((frac - cfg.warmup) / (1 - cfg.warmup), 1.0)
        return cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * p)))

    best_key, best_state, history, bad = (-1.0, 0.0), None, [], 0
    start = time.time()
    n = len(train_x)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    for epoch in range(cfg.max_epochs):
        model.train()
        perm = torch.randperm(n, generator=g)
        tot_loss, tot_ok, seen = 0.0, 0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}", leave=False, mininterval=10)
        out_of_time = False
        for s in bar:
            frac = (time.time() - start) / cfg.budget_s
            if frac >= 1.0:
                out_of_time = True
                break
            for group in opt.param_groups:
                group["lr"] = lr_at(frac)
            idx = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            x = prepare_train(train_x[idx], g).to(device).contiguous(memory_format=torch.channels_last)
            y = train_y[idx].to(device)
            logits = model(x)
            loss = F.cross_entropy(logits, y, weight=class_weights, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot_loss += loss.item() * len(y)
            tot_ok += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            bar.set_postfix(loss=f"{tot_loss / seen:.3f}", lr=f"{lr_at(frac):.4f}")
        bar.close()
        if seen == 0:
            break
        val_logits = predict_logits(model, val_x, prepare_eval)
        val_acc = float((val_logits.argmax(1) == val_y.numpy()).mean())
        val_nll = float(F.cross_entropy(torch.from_numpy(val_logits), val_y))
        rec = {"epoch": epoch + 1, "train_loss": tot_loss / seen, "train_acc": tot_ok / seen, "val_acc": val_acc,
               "val_nll": round(val_nll, 4),
               "elapsed_s": round(time.time() - start, 1), "lr": lr_at(min((time.time() - start) / cfg.budget_s, 1.0)),
               "partial_epoch": out_of_time}
        history.append(rec)
        print(json.dumps(rec), flush=True)
        # Best = highest val accuracy, ties broken by lower val NLL (the mask set saturates accuracy).
        if (val_acc, -val_nll) > best_key:
            best_key, best_state, bad = (val_acc, -val_nll), copy.deepcopy(model.state_dict()), 0
            if cfg.checkpoint is not None:
                torch.save({k: v.cpu() for k, v in best_state.items()}, cfg.checkpoint)  # loadable without a GPU
        else:
            bad += 1
        if out_of_time or bad >= cfg.patience:
            print(f"stopping after epoch {epoch + 1}: {'time budget reached' if out_of_time else 'early stopping'}", flush=True)
            break
    model.load_state_dict(best_state)
    return model.eval(), history


def calibrate(val_logits: np.ndarray, val_y: np.ndarray) -> dict:
    """Fit the temperature on validation logits and report ECE before/after on validation."""
    t = fit_temperature(val_logits, val_y)
    return {"temperature": t,
            "val_ece_before": expected_calibration_error(softmax(val_logits), val_y),
            "val_ece_after": expected_calibration_error(softmax(val_logits, t), val_y)}


def export(model: nn.Module, temperature: float, path: Path, metadata: dict[str, str]) -> None:
    """One safetensors file per head: the weights plus a scalar ``temperature`` tensor."""
    sd = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    sd["temperature"] = torch.tensor([temperature], dtype=torch.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path), metadata=metadata)


def write_metrics(metrics: dict, weights_path: Path, continued: bool) -> None:
    """Write ``metrics`` beside the weights (``.metrics.json``) and print them without the epochs. A run that
    continued from earlier weights keeps the record it replaces, under ``previous_stage``."""
    path = weights_path.with_suffix(".metrics.json")
    if continued and path.exists():
        metrics["previous_stage"] = json.loads(path.read_text())
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps({k: v for k, v in metrics.items() if k != "epochs"}, indent=2))
