"""One Adam / AdamW update of a parameter and its state, in place.

Both implementations take the step's hyperparameters in the same form (`AdamStep`, the C
kernel's struct tt_adam_params) and do the same operations in the same order in the
parameter's dtype, so they give the same bits: the numpy reference as a dozen whole-array
passes, the C kernel in one. Both follow torch.optim.Adam / AdamW (see
tinytape/optim/adam.py for the formulas).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import _state


class AdamStep(NamedTuple):
    """One step's hyperparameters, in the order of tt_adam_params (csrc/tinytape.h)."""

    grad_sign: float  # -1 to maximize
    decay: float  # p *= decay first: 1 - lr * weight_decay for AdamW, else 1
    l2: float  # g += l2 * p: weight_decay for Adam's L2 penalty, else 0
    lerp_weight: float  # 1 - beta1
    beta2: float
    one_minus_beta2: float
    bias_correction2_sqrt: float  # sqrt(1 - beta2^step)
    eps: float
    neg_step_size: float  # -lr / (1 - beta1^step)

    @classmethod
    def of(cls, *, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
           decoupled: bool, maximize: bool, step: int) -> AdamStep:
        decoupled_decay = weight_decay != 0 and decoupled
        return cls(-1.0 if maximize else 1.0,
                   1 - lr * weight_decay if decoupled_decay else 1.0,
                   weight_decay if not decoupled else 0.0,
                   1 - beta1, beta2, 1 - beta2, (1 - beta2**step) ** 0.5, eps,
                   -(lr / (1 - beta1**step)))


def adam_step_reference(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray,
                        exp_avg_sq: np.ndarray, max_exp_avg_sq: np.ndarray | None,
                        hp: AdamStep) -> None:
    g = -grad if hp.grad_sign < 0 else grad
    if hp.decay != 1.0:
        param *= hp.decay
    if hp.l2 != 0:
        g = g + hp.l2 * param
    # m.lerp_(g, w) with torch's two branches (exact for weights near 0 and 1); the weight
    # and 1 - weight are rounded to the parameter's dtype, as torch does.
    scalar = param.dtype.type
    weight = scalar(hp.lerp_weight)
    if abs(weight) < 0.5:
        exp_avg += weight * (g - exp_avg)
    else:
        exp_avg[...] = g - (g - exp_avg) * (scalar(1) - weight)
    exp_avg_sq *= hp.beta2
    exp_avg_sq += hp.one_minus_beta2 * g * g
    v = exp_avg_sq
    if max_exp_avg_sq is not None:
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        v = max_exp_avg_sq
    param += hp.neg_step_size * exp_avg / (np.sqrt(v) / hp.bias_correction2_sqrt + hp.eps)


def adam_step(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray,
              exp_avg_sq: np.ndarray, max_exp_avg_sq: np.ndarray | None = None, *,
              lr: float, beta1: float, beta2: float, eps: float, weight_decay: float = 0.0,
              decoupled: bool = False, maximize: bool = False, step: int) -> None:
    """Update `param`, `exp_avg`, `exp_avg_sq` (and `max_exp_avg_sq` for AMSGrad) in place
    for Adam's step number `step` (from 1). decoupled: AdamW's weight decay. All arrays
    have the parameter's shape and float dtype; the grad may be any layout."""
    arrays = {"param": param, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
    if max_exp_avg_sq is not None:
        arrays["max_exp_avg_sq"] = max_exp_avg_sq
    for name, a in {**arrays, "grad": grad}.items():
        if a.shape != param.shape or a.dtype != param.dtype:
            raise ValueError(f"adam_step: {name} has shape {a.shape} and dtype {a.dtype}, "
                             f"expected {param.shape} {param.dtype} like the parameter")
    hp = AdamStep.of(lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                     decoupled=decoupled, maximize=maximize, step=step)
    native = _state.native
    if native is None or param.dtype.kind != "f" or \
            not all(a.flags.c_contiguous and a.flags.writeable for a in arrays.values()):
        adam_step_reference(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, hp)
    else:
        native.adam_step(param, np.ascontiguousarray(grad), exp_avg, exp_avg_sq,
                         max_exp_avg_sq, *hp)
