"""One SGD update of a parameter and its momentum buffer, in place (torch.optim.SGD's step;
tinytape/optim/sgd.py has the formulas).

The numpy reference makes up to seven whole-array passes; the C kernel one. Both do the
same operations in the same order in the parameter's dtype, with each hyperparameter
rounded to that dtype first (numpy's rule for a Python float), so they give the same bits.
The momentum buffer is created on the first step with momentum, as PyTorch creates it: a
copy of that step's (decayed, signed) gradient.
"""

from __future__ import annotations

import numpy as np

from . import _state
from ._checks import same_dtype, same_shape


def sgd_step_reference(
    param: np.ndarray,
    grad: np.ndarray,
    momentum_buffer: np.ndarray | None,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool,
) -> np.ndarray | None:
    d_p = -grad if maximize else grad
    if weight_decay != 0:
        d_p = d_p + weight_decay * param
    buf = momentum_buffer
    if momentum != 0:
        if buf is None:
            buf = np.array(d_p, copy=True)
        else:
            buf *= momentum
            buf += d_p if dampening == 0 else (1 - dampening) * d_p
        d_p = d_p + momentum * buf if nesterov else buf
    param -= lr * d_p
    return buf


def sgd_step(
    param: np.ndarray,
    grad: np.ndarray,
    momentum_buffer: np.ndarray | None,
    *,
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    maximize: bool = False,
) -> np.ndarray | None:
    """Update `param` (and `momentum_buffer`) in place by one step of torch.optim.SGD.

    param, grad, momentum_buffer: arrays of one shape and float dtype (grad in any layout).
    Returns the momentum buffer to keep: `momentum_buffer` itself, updated; a new array
    when it is None and momentum != 0 (the first step); without momentum the buffer is
    neither read nor changed (None stays None).
    """
    native = _state.native
    if native is not None:
        buf = native.sgd_step(
            param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov, maximize
        )
        if buf is not NotImplemented:
            return buf
    # the numpy path, and parameters or buffers the kernel does not update in place
    # (another dtype, not C-contiguous, read-only)
    op, arrays = "sgd_step", {"param": param, "grad": grad}
    if momentum != 0 and momentum_buffer is not None:
        arrays["momentum_buffer"] = momentum_buffer
    same_dtype(op, **arrays)
    same_shape(op, **arrays)
    return sgd_step_reference(
        param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov, maximize
    )
