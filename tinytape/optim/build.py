"""The one optimizer and schedule construction the trainers and experiments share: the
warm-up rule, AdamW/Adam/SGD from a module or param groups, warm-up then cosine decay.

    opt = make_optimizer(model, "adamw", lr=3e-4, weight_decay=0.1)
    sched = make_schedule(opt, total_steps=5000, warmup=0.1, min_lr_ratio=0.1)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .adam import Adam, AdamW, param_groups_for_weight_decay
from .lr_scheduler import WarmupCosineLR
from .optimizer import Optimizer
from .sgd import SGD


def warmup_steps(warmup: int | float, total_steps: int) -> int:
    """The one warm-up rule: an int is a number of steps, a float in (0, 1) a fraction of
    total_steps (rounded down, at least 1); either way at most total_steps - 1."""
    if total_steps < 1:
        raise ValueError(f"warmup_steps: total_steps must be >= 1, got {total_steps}")
    if isinstance(warmup, float) and 0.0 < warmup < 1.0:
        n = max(1, math.floor(warmup * total_steps))
    elif isinstance(warmup, (int, np.integer)) and not isinstance(warmup, bool) and warmup >= 0:
        n = int(warmup)
    else:
        raise ValueError(
            f"warm-up must be a number of steps >= 0 or a fraction in (0, 1), got {warmup!r}"
        )
    return max(0, min(n, total_steps - 1))


def make_optimizer(
    params: Any,
    kind: str = "adamw",
    *,
    lr: float,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    momentum: float = 0.9,
) -> Optimizer:
    """The one optimizer construction: kind "adamw" (params: a Module, whose matrices are
    decayed and the rest not, or param groups), "adam" or "sgd" (with momentum); weight
    decay is decoupled for adamw, L2 for adam and sgd."""
    if not lr > 0:
        raise ValueError(f"make_optimizer: lr must be > 0, got {lr}")
    if hasattr(params, "named_parameters"):
        params = (
            param_groups_for_weight_decay(params.named_parameters(), weight_decay)
            if kind == "adamw"
            else [p for p in params.parameters() if p.requires_grad]
        )
    if kind == "adamw":
        return AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay)
    if kind == "adam":
        return Adam(params, lr=lr, betas=betas, weight_decay=weight_decay)
    if kind == "sgd":
        return SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {kind!r}: 'adamw', 'adam' or 'sgd'")


def make_schedule(
    optimizer: Optimizer, total_steps: int, warmup: int | float = 0, min_lr_ratio: float = 0.0
) -> WarmupCosineLR:
    """The one schedule: linear warm-up (see `warmup_steps`) then cosine decay to
    min_lr_ratio times each group's lr."""
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"make_schedule: min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
    total_steps = max(int(total_steps), 1)
    warm = warmup_steps(warmup, total_steps)
    return WarmupCosineLR(
        optimizer,
        warmup_steps=warm,
        total_steps=max(total_steps, warm + 1),
        min_lr=[g["lr"] * min_lr_ratio for g in optimizer.param_groups],
    )
