"""Learning-rate schedules: LRScheduler (base), LambdaLR, StepLR, WarmupCosineLR.

As in PyTorch, a scheduler sets every param group's "lr" when it is made (the
lr of step 0) and again at each scheduler.step(), which goes after
optimizer.step() in the training loop:

    sched = WarmupCosineLR(opt, warmup_steps=100, total_steps=10_000, min_lr=3e-5)
    for batch in data:
        loss = ...; opt.zero_grad(); loss.backward(); opt.step(); sched.step()

The base lrs are the groups' "initial_lr" (set from "lr" when the first scheduler
is made), so they are saved with the optimizer state too. To resume, load the
optimizer state and then the scheduler state.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

from .optimizer import Optimizer


class LRScheduler:
    """Base class: subclasses return the lrs of step `self.last_epoch` from get_lr().

    last_epoch counts the scheduler.step() calls (0 right after construction); the
    name is PyTorch's, the count is usually of optimizer steps.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__} needs a tinytape Optimizer, got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs: list[float] = [float(g["initial_lr"]) for g in optimizer.param_groups]
        self.last_epoch = -1
        self._last_lr: list[float] = []
        self.step()

    def get_lr(self) -> list[float]:
        """The lr of every param group at step self.last_epoch."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance one step and set the groups' lrs."""
        self.last_epoch += 1
        lrs = [float(lr) for lr in self.get_lr()]
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = lrs

    def get_last_lr(self) -> list[float]:
        """The lrs set by the last step (or by the constructor)."""
        return list(self._last_lr)

    # ------------------------------------------------------------ state
    _config: tuple[str, ...] = ()  # constructor arguments saved with the state

    def state_dict(self) -> dict[str, Any]:
        """A JSON-able dict: the step count, base and last lrs, and the schedule's settings."""
        state = {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs),
                 "last_lr": list(self._last_lr)}
        state.update({k: getattr(self, k) for k in self._config})
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state_dict(); also sets the groups' lrs to its last lrs."""
        name = type(self).__name__
        n = len(self.optimizer.param_groups)
        for key in ("last_epoch", "base_lrs", "last_lr", *self._config):
            if key not in state_dict:
                raise ValueError(f"{name}.load_state_dict: the state has no {key!r} "
                                 "(is it from another scheduler?)")
        for key in ("base_lrs", "last_lr"):
            if len(state_dict[key]) != n:
                raise ValueError(f"{name}.load_state_dict: the state has {len(state_dict[key])} "
                                 f"{key}, the optimizer has {n} param groups")
        self.last_epoch = int(state_dict["last_epoch"])
        self.base_lrs = [float(v) for v in state_dict["base_lrs"]]
        self._last_lr = [float(v) for v in state_dict["last_lr"]]
        for key in self._config:
            setattr(self, key, state_dict[key])
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr

    def __repr__(self) -> str:
        settings = "".join(f", {k}={getattr(self, k)!r}" for k in self._config)
        return f"{type(self).__name__}(last_epoch={self.last_epoch}{settings})"


class LambdaLR(LRScheduler):
    """lr = base_lr * lr_lambda(step), with one function for all groups or one per group.

    The functions are not part of state_dict(); pass the same ones when resuming.
    """

    def __init__(self, optimizer: Optimizer,
                 lr_lambda: Callable[[int], float] | Sequence[Callable[[int], float]]) -> None:
        n = len(optimizer.param_groups)
        if callable(lr_lambda):
            self.lr_lambdas = [lr_lambda] * n
        else:
            self.lr_lambdas = list(lr_lambda)
            if len(self.lr_lambdas) != n or not all(map(callable, self.lr_lambdas)):
                raise ValueError(f"lr_lambda: expected a function or {n} functions (one per "
                                 f"param group), got {lr_lambda!r}")
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        return [base * f(self.last_epoch) for base, f in zip(self.base_lrs, self.lr_lambdas)]


class StepLR(LRScheduler):
    """Multiply the lr by gamma every step_size steps (as torch.optim.lr_scheduler.StepLR).

    Like PyTorch's, it multiplies the current lr (so it composes with other changes
    of the lr), which gives base_lr * gamma ** (step // step_size) up to rounding.
    """

    _config = ("step_size", "gamma")

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        if isinstance(step_size, bool) or not isinstance(step_size, numbers.Integral) \
                or step_size < 1:
            raise ValueError(f"StepLR: step_size should be a positive int, got {step_size!r}")
        if not gamma >= 0:
            raise ValueError(f"StepLR: gamma should be >= 0, got {gamma!r}")
        self.step_size = int(step_size)
        self.gamma = float(gamma)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        lrs = [group["lr"] for group in self.optimizer.param_groups]
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return lrs
        return [lr * self.gamma for lr in lrs]


class WarmupCosineLR(LRScheduler):
    """Linear warm-up from 0, then cosine decay to min_lr; min_lr after total_steps.

    At step t (the count of scheduler.step() calls), for each group's base_lr:

        t < warmup_steps:            lr = base_lr * t / warmup_steps
        warmup_steps <= t <= total:  lr = min_lr + (base_lr - min_lr)
                                           * (1 + cos(pi * (t - warmup_steps)
                                                          / (total_steps - warmup_steps))) / 2
        t > total_steps:             lr = min_lr

    so lr is 0 at step 0, base_lr at step warmup_steps, and min_lr from total_steps on.
    min_lr is an absolute lr (one for all groups, or one per group).
    """

    _config = ("warmup_steps", "total_steps", "min_lr")

    def __init__(self, optimizer: Optimizer, warmup_steps: int, total_steps: int,
                 min_lr: float | Sequence[float] = 0.0) -> None:
        for key, value in (("warmup_steps", warmup_steps), ("total_steps", total_steps)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise ValueError(f"WarmupCosineLR: {key} should be an int >= 0, got {value!r}")
        if total_steps <= warmup_steps:
            raise ValueError(f"WarmupCosineLR: total_steps ({total_steps}) should be greater "
                             f"than warmup_steps ({warmup_steps})")
        n = len(optimizer.param_groups)
        mins = list(min_lr) if isinstance(min_lr, Sequence) else [min_lr] * n
        if len(mins) != n or not all(isinstance(m, numbers.Real) and m >= 0 for m in mins):
            raise ValueError(f"WarmupCosineLR: min_lr should be a number >= 0 or {n} of them "
                             f"(one per param group), got {min_lr!r}")
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.min_lr = [float(m) for m in mins] if isinstance(min_lr, Sequence) \
            else float(min_lr)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        t = self.last_epoch
        n = len(self.base_lrs)
        mins = self.min_lr if isinstance(self.min_lr, list) else [self.min_lr] * n
        if t < self.warmup_steps:
            return [base * t / self.warmup_steps for base in self.base_lrs]
        if t >= self.total_steps:
            return list(mins)
        progress = (t - self.warmup_steps) / (self.total_steps - self.warmup_steps)
        cosine = (1 + math.cos(math.pi * progress)) / 2
        return [lo + (base - lo) * cosine for base, lo in zip(self.base_lrs, mins)]
