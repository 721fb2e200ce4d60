"""Finite-difference checks of analytic gradients: gradcheck and gradgradcheck.

Central differences in float64. For small inputs the full Jacobian is compared,
column by column; for large ones (or fast_mode=True) a random projection: the
analytic v^T J u against the numeric directional derivative of v^T f along u, as
in HIPS autograd's check_grads and PyTorch's fast mode. A failure names the input,
the index (or the projection), the analytic and the numeric value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .functional import grad as autograd_grad
from .grad_mode import enable_grad


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with its finite-difference estimate."""


def _outputs(fn: Callable[..., Any], inputs: Sequence[Any]) -> list:
    from ..tensor import Tensor

    out = fn(*inputs)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    return [o for o in outs if isinstance(o, Tensor) and o.data.dtype.kind == "f"]


def _check_inputs(inputs: Sequence[Any]) -> list[int]:
    from ..tensor import Tensor

    diff = []
    for i, t in enumerate(inputs):
        if isinstance(t, Tensor) and t.requires_grad:
            if t.dtype != np.float64:
                raise TypeError(
                    f"gradcheck: input {i} is {t.dtype}; finite differences need float64 inputs "
                    "(convert with .double())"
                )
            diff.append(i)
    if not diff:
        raise ValueError("gradcheck: no input requires grad")
    return diff


def _flat_outputs(fn, inputs) -> np.ndarray:
    with enable_grad():
        outs = _outputs(fn, inputs)
    return np.concatenate([o.data.reshape(-1) for o in outs]) if outs else np.zeros(0)


def _numeric_column(fn, inputs, t, j: int, eps: float) -> np.ndarray:
    index = np.unravel_index(j, t.shape)
    orig = t.data[index]
    t.data[index] = orig + eps
    plus = _flat_outputs(fn, inputs)
    t.data[index] = orig - eps
    minus = _flat_outputs(fn, inputs)
    t.data[index] = orig
    return (plus - minus) / (2 * eps)


def _numeric_direction(fn, inputs, diff, directions, eps) -> np.ndarray:
    saved = [inputs[i].data.copy() for i in diff]
    for i, u in zip(diff, directions):
        inputs[i].data[...] = saved[diff.index(i)] + eps * u
    plus = _flat_outputs(fn, inputs)
    for i, u in zip(diff, directions):
        inputs[i].data[...] = saved[diff.index(i)] - eps * u
    minus = _flat_outputs(fn, inputs)
    for k, i in enumerate(diff):
        inputs[i].data[...] = saved[k]
    return (plus - minus) / (2 * eps)


def _analytic_vjp(fn, inputs, diff, v: np.ndarray, create_graph=False):
    """v^T J for each differentiable input (None where an input is unused)."""
    from ..tensor import Tensor

    with enable_grad():
        outs = _outputs(fn, inputs)
        if not outs:
            raise ValueError("gradcheck: fn returned no float tensor")
        gouts, start = [], 0
        for o in outs:
            n = o.data.size
            gouts.append(Tensor._wrap(v[start:start + n].reshape(o.shape).astype(o.dtype)))
            start += n
        live = [(o, g) for o, g in zip(outs, gouts) if o.requires_grad]
        if not live:
            return [None] * len(diff)
        return autograd_grad([o for o, _ in live], [inputs[i] for i in diff],
                             [g for _, g in live], allow_unused=True, create_graph=create_graph)


def gradcheck(fn: Callable[..., Any], inputs: Sequence[Any], eps: float = 1e-6,
              atol: float = 1e-5, rtol: float = 1e-3, fast_mode: bool | None = None,
              raise_exception: bool = True, seed: int = 0, max_full: int = 400) -> bool:
    """Compare the gradients of fn(*inputs) with central finite differences.

    inputs: tensors (float64 with requires_grad=True are checked) and other arguments.
    fast_mode: None chooses the full Jacobian when the inputs have at most `max_full`
    elements in all, else a random projection. Tolerance: |analytic - numeric| <=
    atol + rtol * |numeric|. Raises GradcheckError (or returns False) on a mismatch.
    """
    inputs = list(inputs)
    diff = _check_inputs(inputs)
    rng = np.random.default_rng(seed)
    n_out = _flat_outputs(fn, inputs).size
    total = sum(inputs[i].data.size for i in diff)
    if fast_mode is None:
        fast_mode = total > max_full

    def fail(msg: str) -> bool:
        if raise_exception:
            raise GradcheckError(msg)
        return False

    if n_out == 0 or total == 0:
        return True
    if fast_mode:
        v = rng.standard_normal(n_out)
        directions = [rng.standard_normal(inputs[i].shape) for i in diff]
        grads = _analytic_vjp(fn, inputs, diff, v)
        analytic = sum(float(np.sum(g.data * u)) for g, u in zip(grads, directions)
                       if g is not None)
        numeric = float(v @ _numeric_direction(fn, inputs, diff, directions, eps))
        if not abs(analytic - numeric) <= atol + rtol * abs(numeric):
            return fail(
                f"gradcheck (fast mode, random projection v^T J u over inputs {diff}): "
                f"analytic {analytic:.10g} vs numeric {numeric:.10g} "
                f"(difference {abs(analytic - numeric):.3g})"
            )
        return True

    # Full Jacobian: one backward per output element (rows), one pair of forwards per
    # input element (columns).
    numeric_cols = {i: np.stack([_numeric_column(fn, inputs, inputs[i], j, eps)
                                 for j in range(inputs[i].data.size)], axis=1)
                    if inputs[i].data.size else np.zeros((n_out, 0))
                    for i in diff}
    for row in range(n_out):
        v = np.zeros(n_out)
        v[row] = 1.0
        grads = _analytic_vjp(fn, inputs, diff, v)
        for i, g in zip(diff, grads):
            num = numeric_cols[i][row]
            ana = np.zeros_like(num) if g is None else g.data.reshape(-1).astype(np.float64)
            bad = np.abs(ana - num) > atol + rtol * np.abs(num)
            if bad.any():
                j = int(np.argmax(bad))
                index = np.unravel_index(j, inputs[i].shape)
                return fail(
                    f"gradcheck: input {i} (shape {inputs[i].shape}), element "
                    f"{tuple(int(k) for k in index)}, output element {row}: analytic "
                    f"{ana[j]:.10g} vs numeric {num[j]:.10g} "
                    f"(difference {abs(ana[j] - num[j]):.3g})"
                )
    return True


def gradgradcheck(fn: Callable[..., Any], inputs: Sequence[Any], eps: float = 1e-6,
                  atol: float = 1e-5, rtol: float = 1e-3, fast_mode: bool | None = None,
                  raise_exception: bool = True, seed: int = 0) -> bool:
    """gradcheck of the first derivative: the function inputs -> v^T J(inputs) for a fixed
    random v, whose gradient needs the backward pass recorded (create_graph=True)."""
    from ..tensor import Tensor

    inputs = list(inputs)
    diff = _check_inputs(inputs)
    n_out = _flat_outputs(fn, inputs).size
    v = np.random.default_rng(seed + 1).standard_normal(n_out)

    def first_derivative(*args):
        grads = _analytic_vjp(fn, list(args), diff, v, create_graph=True)
        return tuple(g for g in grads if isinstance(g, Tensor))

    return gradcheck(first_derivative, inputs, eps=eps, atol=atol, rtol=rtol,
                     fast_mode=fast_mode, raise_exception=raise_exception, seed=seed)
