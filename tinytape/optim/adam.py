"""Adam and AdamW (as torch.optim.Adam / AdamW), and weight-decay param groups.

Per parameter, at step t (counted per parameter, from 1):

    g = -grad if maximize else grad
    p = p * (1 - lr * weight_decay)           (AdamW: decoupled decay)
    g = g + weight_decay * p                  (Adam: L2 penalty in the gradient)
    m = lerp(m, g, 1 - beta1)                 (= beta1 * m + (1 - beta1) * g)
    v = beta2 * v + (1 - beta2) * g * g
    v_max = max(v_max, v)                     (amsgrad; then v_max is used for v below)
    p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

State per parameter: "step" (int), "exp_avg" (m), "exp_avg_sq" (v) and, with
amsgrad, "max_exp_avg_sq".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..backend.adam import adam_step
from ..tensor import Tensor
from .optimizer import Optimizer, _flag, _number


class Adam(Optimizer):
    """Adam (Kingma & Ba), with bias correction, optional L2 weight decay and AMSGrad.

    decoupled_weight_decay=True makes it AdamW (prefer the AdamW class).
    """

    _array_state = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _int_state = ("step",)
    _required_state = ("step", "exp_avg", "exp_avg_sq")

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any], where: str) -> None:
        _number(group, "lr", where)
        _number(group, "eps", where)
        _number(group, "weight_decay", where)
        betas = group["betas"]
        if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
            raise ValueError(f"{where}: betas should be a pair (beta1, beta2), got {betas!r}")
        checked = []
        for i, beta in enumerate(betas):
            key = f"beta{i + 1}"
            value = _number({key: beta}, key, where, minimum=-float("inf"))
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{where}: invalid beta{i + 1} {value!r} (must be in [0, 1))")
            checked.append(value)
        group["betas"] = tuple(checked)
        _flag(group, "amsgrad")
        _flag(group, "maximize")
        _flag(group, "decoupled_weight_decay")

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any],
                group: dict[str, Any]) -> None:
        lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(param)
            state["exp_avg_sq"] = np.zeros_like(param)
        if group["amsgrad"] and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = np.zeros_like(param)
        state["step"] += 1
        adam_step(param, grad, state["exp_avg"], state["exp_avg_sq"],
                  state["max_exp_avg_sq"] if group["amsgrad"] else None, lr=lr, beta1=beta1,
                  beta2=beta2, eps=eps, weight_decay=weight_decay,
                  decoupled=group["decoupled_weight_decay"], maximize=group["maximize"],
                  step=state["step"])


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p *= 1 - lr * weight_decay
    before the Adam step, instead of adding weight_decay * p to the gradient.

    Usually only matrices are decayed: see param_groups_for_weight_decay.
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)

    def _check_group(self, group: dict[str, Any], where: str) -> None:
        group["decoupled_weight_decay"] = True  # AdamW always decouples (as torch's)
        super()._check_group(group, where)


def param_groups_for_weight_decay(named_parameters: Iterable[tuple[str, Tensor]]
                                  | Iterable[Tensor] | Mapping[str, Tensor],
                                  weight_decay: float) -> list[dict[str, Any]]:
    """Two param groups: matrices decayed, everything else not ("AdamW decays only matrices").

    Parameters with ndim >= 2 (linear weights, embeddings, conv kernels) get
    `weight_decay`; those with ndim < 2 (biases, norm gains and shifts, scalars) get 0.
    Parameters that do not require grad (frozen) are left out, and a parameter
    that appears twice (tied weights) is kept once, at its first appearance.

    named_parameters: (name, tensor) pairs as from model.named_parameters(), a
    {name: tensor} dict, or plain tensors. Both groups are always returned (one may
    be empty), so the group layout of a saved optimizer state does not depend on the
    model. Use: AdamW(param_groups_for_weight_decay(model.named_parameters(), 0.1), lr=3e-4).
    """
    if weight_decay < 0:
        raise ValueError(f"invalid weight_decay {weight_decay!r} (must be >= 0)")
    items = named_parameters.items() if isinstance(named_parameters, Mapping) \
        else named_parameters
    decay: list[Tensor] = []
    no_decay: list[Tensor] = []
    seen: set[int] = set()
    for entry in items:
        p = entry[1] if isinstance(entry, tuple) and len(entry) == 2 else entry
        if not isinstance(p, Tensor):
            raise TypeError("param_groups_for_weight_decay expects (name, tensor) pairs, as "
                            f"from model.named_parameters(), or tensors; got {entry!r}")
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (decay if p.ndim >= 2 else no_decay).append(p)
    if not seen:
        raise ValueError("param_groups_for_weight_decay: no parameter requires grad")
    return [{"params": decay, "weight_decay": float(weight_decay)},
            {"params": no_decay, "weight_decay": 0.0}]
