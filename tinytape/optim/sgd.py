"""SGD with momentum, dampening, Nesterov momentum and L2 weight decay (as torch.optim.SGD)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..backend.sgd import sgd_step
from ..tensor import Tensor
from .optimizer import Optimizer, _flag, _number


class SGD(Optimizer):
    """Stochastic gradient descent, step by step as torch.optim.SGD:

        g = -grad if maximize else grad
        g = g + weight_decay * p                          (if weight_decay != 0)
        buf = g  (first step),  buf = momentum * buf + (1 - dampening) * g  (later)
        g = g + momentum * buf if nesterov else buf       (if momentum != 0)
        p = p - lr * g

    State per parameter (only when momentum != 0): "momentum_buffer". Each step is one
    fused kernel per parameter (tinytape/backend/sgd.py).
    """

    _array_state = ("momentum_buffer",)
    _required_state = ("momentum_buffer",)

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any], where: str) -> None:
        _number(group, "lr", where)
        momentum = _number(group, "momentum", where)
        dampening = _number(group, "dampening", where, minimum=-float("inf"))
        _number(group, "weight_decay", where)
        if _flag(group, "nesterov") and (momentum <= 0 or dampening != 0):
            raise ValueError(
                f"{where}: nesterov=True needs momentum > 0 and dampening = 0 "
                f"(got momentum={momentum}, dampening={dampening})"
            )
        _flag(group, "maximize")

    def _update(
        self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]
    ) -> None:
        buf = sgd_step(
            param,
            grad,
            state.get("momentum_buffer"),
            lr=group["lr"],
            momentum=group["momentum"],
            dampening=group["dampening"],
            weight_decay=group["weight_decay"],
            nesterov=group["nesterov"],
            maximize=group["maximize"],
        )
        if buf is not None:
            state["momentum_buffer"] = buf
