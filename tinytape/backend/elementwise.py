"""Sigmoid, the sigmoid and tanh backwards, ReLU, and add, sub, mul and div: elementwise,
each one kernel call.

The tape runs these once per op, often on arrays of a few dozen values, where every numpy
ufunc call costs about as much as the kernel itself: the numpy references take three or
four ufunc calls each, the C kernels one call that checks its arguments and allocates
its output in C (tinytape/_C.pyx). Both take any layout, 0-d and empty arrays, and
return a new array.

sigmoid(x) = 1 / (1 + e^-x) without overflow: the reference as e / (1 + e) with
e = e^min(x, bound), the kernel as (x >= 0 ? 1 : t) / (1 + t) with t = e^-|x|; both
within a few ulps of the exact value (the kernel gives 0 for most of the subnormal range).
The backwards take the saved output y and use PyTorch's formulas in its order of
operations, g (1 - y) y and g (1 - y^2), so both paths round alike (bit for bit) and NaN
and +-inf land where PyTorch's do (docs/numerics.md).

relu keeps x where not (x <= 0) and gives +0 elsewhere (NaN stays NaN; -0 gives +0, which
PyTorch gives as -0); relu_with_mask also returns that test as a bool mask, PyTorch's
threshold_backward condition, and relu_backward selects dy where the mask is set and 0
elsewhere, so an inf or NaN in dy where the mask is not set gives 0, as PyTorch's.

add, sub, mul and div are numpy's ufuncs, which are their references: the kernels cover the
tape's common cases (two float arrays of one dtype, aligned and C-contiguous, of one shape
or one of them a single value; on one thread, fewer than 131,072 values) bit for bit,
warnings included (divide by zero, overflow and invalid under np.errstate, named as numpy
names them), and the ufunc takes everything else: broadcasting, other dtypes, strided
views, large arrays on one thread (where its loop is as fast), and its errors. The
kernels' result is always an array, where the ufunc gives a numpy scalar for two 0-d
arrays.
"""

from __future__ import annotations

import numpy as np

from . import _state
from ._checks import as_float_array, same_dtype, same_shape


def _constant(value: float, dtype: type) -> np.ndarray:
    """A read-only 0-d array: numpy takes it faster than a Python or numpy number."""
    a = np.asarray(value, dtype)
    a.flags.writeable = False
    return a


#: per dtype: a bound above which e ** x would overflow (sigmoid is 1 there to working
#: precision), and 1
_CONSTANTS = {
    np.dtype(np.float32): (_constant(88.0, np.float32), _constant(1.0, np.float32)),
    np.dtype(np.float64): (_constant(709.0, np.float64), _constant(1.0, np.float64)),
}


def sigmoid_reference(x: np.ndarray) -> np.ndarray:
    """sigmoid of a float32/float64 array in numpy (any shape); a new array."""
    # e / (1 + e) with e = e ** x, x clamped from above so that it cannot overflow: a few
    # ulps everywhere, no warning, and e ** x underflows quietly to the right 0 for x << 0.
    high, one = _CONSTANTS[x.dtype]
    e = np.exp(np.minimum(x, high))
    return np.asarray(e / (one + e))


def sigmoid_backward_reference(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """dy (1 - y) y in numpy, y and dy of one shape and dtype."""
    one = _CONSTANTS[y.dtype][1]
    return np.asarray(dy * (one - y) * y)


def tanh_backward_reference(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """dy (1 - y^2) in numpy, y and dy of one shape and dtype."""
    one = _CONSTANTS[y.dtype][1]
    return np.asarray(dy * (one - y * y))


def relu_reference(x: np.ndarray) -> np.ndarray:
    """max(x, 0) in numpy (NaN kept, -0 gives +0); a new array."""
    return np.asarray(np.maximum(x, x.dtype.type(0)))


def relu_with_mask_reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """relu(x) and the bool mask not (x <= 0) in numpy."""
    y = relu_reference(x)
    return y, np.asarray(y != 0)  # y is >= 0 or NaN: y != 0 is "not (x <= 0)"


def relu_backward_reference(mask: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """dy where mask, else 0, in numpy (a select: inf or NaN in dy where not mask gives 0)."""
    return np.where(mask, dy, dy.dtype.type(0))


# The numpy path checks its arguments in a few attribute reads when they are what the tape
# passes (float32/float64 arrays of one dtype and shape), and with the messages of
# _checks.py otherwise: the full checks take about three times as long (0.8 us against
# 0.27), most of the formulas' own 1.1 us.


def _backward_args(op: str, y: object, dy: object) -> tuple[np.ndarray, np.ndarray]:
    if (
        type(y) is np.ndarray
        and type(dy) is np.ndarray
        and y.dtype in _CONSTANTS
        and y.dtype == dy.dtype
        and y.shape == dy.shape
    ):
        return y, dy
    y = as_float_array(op, "y", y)
    dy = as_float_array(op, "dy", dy)
    same_dtype(op, y=y, dy=dy)
    same_shape(op, y=y, dy=dy)
    return y, dy


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e ** -x) of every value of x (any shape, float32 or float64); a new array."""
    native = _state.native
    if native is not None:
        return native.sigmoid_fwd(x)
    x = as_float_array("sigmoid", "x", x)
    return sigmoid_reference(x)


def sigmoid_backward(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Gradient wrt x of sum(sigmoid(x) * dy), dy (1 - y) y, from the saved output y."""
    native = _state.native
    if native is not None:
        return native.sigmoid_bwd(y, dy)
    return sigmoid_backward_reference(*_backward_args("sigmoid_backward", y, dy))


def tanh_backward(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Gradient wrt x of sum(tanh(x) * dy), dy (1 - y^2), from the saved output y."""
    native = _state.native
    if native is not None:
        return native.tanh_bwd(y, dy)
    return tanh_backward_reference(*_backward_args("tanh_backward", y, dy))


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0) of every value of x (any shape, float32 or float64; NaN stays NaN); a new
    array."""
    native = _state.native
    if native is not None:
        return native.relu_fwd(x, False)
    x = as_float_array("relu", "x", x)
    return relu_reference(x)


def relu_with_mask(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(relu(x), mask): mask a bool array of x's shape, true where not (x <= 0), the
    values where relu's gradient passes (at NaN too)."""
    native = _state.native
    if native is not None:
        return native.relu_fwd(x, True)
    x = as_float_array("relu", "x", x)
    return relu_with_mask_reference(x)


def relu_backward(mask: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Gradient wrt x of sum(relu(x) * dy): dy where mask (from relu_with_mask) is true,
    else 0, whatever dy holds there; a new array."""
    native = _state.native
    if native is not None:
        return native.relu_bwd(mask, dy)
    op = "relu_backward"
    dy = as_float_array(op, "dy", dy)
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise TypeError(f"{op}: mask must be bool, got dtype {mask.dtype}")
    same_shape(op, mask=mask, dy=dy)
    return relu_backward_reference(mask, dy)


# add, sub, mul and div are written out, not made by one factory: a closure looking its
# kernel up by name cost about 1K instructions per op of benches/overhead.py (4%).


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b, as np.add."""
    native = _state.native
    if native is not None:
        out = native.add(a, b)
        if out is not None:
            return out
    return np.add(a, b)


def sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a - b, as np.subtract."""
    native = _state.native
    if native is not None:
        out = native.sub(a, b)
        if out is not None:
            return out
    return np.subtract(a, b)


def mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a * b, as np.multiply."""
    native = _state.native
    if native is not None:
        out = native.mul(a, b)
        if out is not None:
            return out
    return np.multiply(a, b)


def div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b, as np.true_divide."""
    native = _state.native
    if native is not None:
        out = native.div(a, b)
        if out is not None:
            return out
    return np.true_divide(a, b)
