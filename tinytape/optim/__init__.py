"""Optimizers, learning-rate schedules and gradient clipping.

    from tinytape import optim
    opt = optim.AdamW(optim.param_groups_for_weight_decay(model.named_parameters(), 0.1),
                      lr=3e-4)
    sched = optim.lr_scheduler.WarmupCosineLR(opt, warmup_steps=100, total_steps=5000)
    ...
    loss.backward()
    optim.clip_grad_norm_(model.parameters(), 1.0)
    opt.step(); sched.step(); opt.zero_grad()

Every update follows PyTorch's documented algorithm, on numpy arrays in the
parameter's dtype, in place (bumping the parameter's version counter).
"""

from . import lr_scheduler
from .adam import Adam, AdamW, param_groups_for_weight_decay
from .build import make_optimizer, make_schedule, warmup_steps
from .clip import clip_grad_norm_
from .lr_scheduler import LambdaLR, LRScheduler, StepLR, WarmupCosineLR
from .optimizer import Optimizer
from .sgd import SGD

__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW", "param_groups_for_weight_decay",
    "lr_scheduler", "LRScheduler", "LambdaLR", "StepLR", "WarmupCosineLR",
    "clip_grad_norm_", "make_optimizer", "make_schedule", "warmup_steps",
]
