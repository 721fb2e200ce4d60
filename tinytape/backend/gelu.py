"""GELU (tanh approximation), elementwise, forward and backward.

gelu(x) = 0.5 x (1 + tanh u), u = sqrt(2/pi) (x + 0.044715 x^3), the form GPT-2 uses and
PyTorch's approximate="tanh". Both paths compute it as x * sigmoid(2u) with t = exp(-|2u|),
which never overflows and keeps full relative precision for negative x, where 1 + tanh u
would cancel. The backward needs only the saved input x.
"""

from __future__ import annotations

import numpy as np

from . import _state
from ._checks import as_float_array, same_dtype, same_shape

_C2 = 2.0 * float(np.sqrt(2.0 / np.pi))  # z = 2u = x (C2 + C3 x^2)
_C3 = _C2 * 0.044715
_CLAMP = 1e4


def _z_t(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x clamped to +-1e4 (beyond, t is exactly 0 either way, and x^2 could overflow into
    inf * 0 = NaN in the backward), its square, z and t = exp(-|z|)."""
    xc = np.clip(x, -_CLAMP, _CLAMP)
    x2 = xc * xc
    z = xc * (x.dtype.type(_C3) * x2 + x.dtype.type(_C2))
    return xc, x2, z, np.exp(-np.abs(z))


def gelu_reference(x: np.ndarray) -> np.ndarray:
    _, _, z, t = _z_t(x)
    return x * (np.where(z >= 0, 1, t) / (1 + t))


def gelu_backward_reference(x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    xc, x2, z, t = _z_t(x)
    r = 1 / (1 + t)
    s = np.where(z >= 0, 1, t) * r
    dz = x.dtype.type(3 * _C3) * x2 + x.dtype.type(_C2)
    dx = dy * (s + xc * dz * (t * r * r))
    # the slope at +-inf is a limit, not a value: NaN, as in PyTorch (docs/numerics.md)
    return np.where(np.isinf(x), x.dtype.type(np.nan), dx)


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU of every value of x (any shape, float32 or float64); a new array."""
    x = as_float_array("gelu", "x", x)
    native = _state.native
    if native is None or x.size == 0:
        return gelu_reference(x)
    xc = np.ascontiguousarray(x).reshape(x.shape)  # ascontiguousarray makes 0-d 1-d
    y = np.empty_like(xc)
    native.gelu_fwd(xc, y)
    return y


def gelu_backward(x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Gradient wrt x of sum(gelu(x) * dy), from the saved input x."""
    x = as_float_array("gelu_backward", "x", x)
    dy = as_float_array("gelu_backward", "dy", dy)
    same_shape("gelu_backward", x=x, dy=dy)
    same_dtype("gelu_backward", x=x, dy=dy)
    native = _state.native
    if native is None or x.size == 0:
        return gelu_backward_reference(x, dy)
    xc = np.ascontiguousarray(x).reshape(x.shape)
    dyc = np.ascontiguousarray(dy).reshape(x.shape)
    dx = np.empty_like(xc)
    native.gelu_bwd(xc, dyc, dx)
    return dx
