"""One Adam / AdamW update of a parameter and its state, in place.

The numpy reference does the update as a dozen whole-array passes; the C kernel does it
in one pass with the same operations in the same order, so both give the same bits.
Both follow torch.optim.Adam / AdamW (see tinytape/optim/adam.py for the formulas).
"""

from __future__ import annotations

import numpy as np

from . import _state


def adam_step_reference(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray,
                        exp_avg_sq: np.ndarray, max_exp_avg_sq: np.ndarray | None, *,
                        lr: float, beta1: float, beta2: float, eps: float,
                        weight_decay: float, decoupled: bool, maximize: bool,
                        step: int) -> None:
    g = -grad if maximize else grad
    if weight_decay != 0:
        if decoupled:
            param *= 1 - lr * weight_decay
        else:
            g = g + weight_decay * param
    # m.lerp_(g, 1 - beta1) with torch's two branches (exact for weights near 0 and 1);
    # the weight and 1 - weight are rounded to the parameter's dtype, as torch does.
    scalar = param.dtype.type
    weight = scalar(1 - beta1)
    if abs(weight) < 0.5:
        exp_avg += weight * (g - exp_avg)
    else:
        exp_avg[...] = g - (g - exp_avg) * (scalar(1) - weight)
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * g * g
    step_size = lr / (1 - beta1**step)
    bias_correction2_sqrt = (1 - beta2**step) ** 0.5
    if max_exp_avg_sq is not None:
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        denom = np.sqrt(max_exp_avg_sq) / bias_correction2_sqrt + eps
    else:
        denom = np.sqrt(exp_avg_sq) / bias_correction2_sqrt + eps
    param += -step_size * exp_avg / denom


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
    native = _state.native
    if native is None or param.dtype.kind != "f" or \
            not all(a.flags.c_contiguous and a.flags.writeable for a in arrays.values()):
        adam_step_reference(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr=lr,
                            beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                            decoupled=decoupled, maximize=maximize, step=step)
        return
    decay, l2 = 1.0, 0.0
    if weight_decay != 0:
        if decoupled:
            decay = 1 - lr * weight_decay
        else:
            l2 = weight_decay
    native.adam_step(param, np.ascontiguousarray(grad), exp_avg, exp_avg_sq, max_exp_avg_sq,
                     -1.0 if maximize else 1.0, decay, l2, 1 - beta1, beta2, 1 - beta2,
                     (1 - beta2**step) ** 0.5, eps, -(lr / (1 - beta1**step)))
