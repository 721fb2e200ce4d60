"""Elementwise functions of one tensor: exp log sqrt abs tanh sigmoid relu gelu softplus
clamp. Each saves what its derivative needs: the input, or the output when the
derivative is cheaper in terms of it (exp, sqrt, tanh, sigmoid)."""

from __future__ import annotations

import numpy as np

from .. import backend, profiler
from ..autograd.function import Function, apply_op
from ..autograd.grad_mode import _grad_enabled
from ..backend.gelu import _C2, _C3  # gelu(x) = x * sigmoid(x (C2 + C3 x^2))
from ..tensor import Tensor, wrap_array
from ._util import require_float
from .registry import OpInfo, Sample, away_from_zero, positive, rand, register, with_ties

SHAPES = [(), (1,), (5,), (3, 4), (2, 1, 3), (0, 3)]


def _samples(make=rand, **kwargs):
    def samples(rng, dtype):
        for shape in SHAPES:
            yield Sample((make(rng, shape, dtype),), dict(kwargs), name=str(shape))

    return samples


def _zero_samples(rng, dtype):
    """Kink samples at 0: ties on a grid, with a 0 in each."""
    for shape in [(), (5,), (3, 4), (2, 1, 3)]:
        x = with_ties(rng, shape, dtype)
        x.flat[0] = 0.0
        yield Sample((x,), name=str(shape))


def _unary(cls: type[Function], op: str, x: Tensor) -> Tensor:
    if not (isinstance(x, Tensor) and x.data.dtype.kind == "f"):
        require_float(op, x)  # raises
    grad_enabled = _grad_enabled()
    if not grad_enabled and cls.kernel is not None:
        if profiler.active:
            return profiler.call_unprofiled(cls.__name__, "forward", _unary, cls, op, x)
        return wrap_array(cls.kernel(x.data))  # nothing recorded: no node, no ctx
    return apply_op(cls, (x,), grad_enabled)


class Exp(Function):
    kernel = np.exp

    @staticmethod
    def forward(ctx, x):
        ctx.save_output()
        return ctx.kernel(x.data)

    @staticmethod
    def backward(ctx, g):
        if _grad_enabled():  # create_graph: recorded
            return (g * ctx.output,)
        return (wrap_array(g.data * ctx.output_data),)


def exp(x: Tensor) -> Tensor:
    """e ** x. Saves the output."""
    return _unary(Exp, "exp", x)


register(OpInfo("exp", exp, np.exp, _samples()))


class Log(Function):
    kernel = np.log

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.kernel(x.data)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return (g / x,)


def log(x: Tensor) -> Tensor:
    """Natural logarithm. Saves the input."""
    return _unary(Log, "log", x)


register(OpInfo("log", log, np.log, _samples(positive)))


class Sqrt(Function):
    kernel = np.sqrt

    @staticmethod
    def forward(ctx, x):
        ctx.save_output()
        return ctx.kernel(x.data)

    @staticmethod
    def backward(ctx, g):
        return (g / (ctx.output * 2.0),)


def sqrt(x: Tensor) -> Tensor:
    """Square root. Saves the output."""
    return _unary(Sqrt, "sqrt", x)


register(OpInfo("sqrt", sqrt, np.sqrt, _samples(positive)))


def _sign(x: np.ndarray) -> np.ndarray:
    """(x > 0) - (x < 0) in x's dtype: PyTorch's sgn, which is 0 at NaN (numpy's is NaN)."""
    return np.subtract(x > 0, x < 0, dtype=x.dtype)


class Abs(Function):
    kernel = np.abs

    @staticmethod
    def forward(ctx, x):
        if ctx.record:
            ctx.sign = _sign(x.data)
        return ctx.kernel(x.data)

    @staticmethod
    def backward(ctx, g):
        return (g * wrap_array(ctx.sign),)


def abs(x: Tensor) -> Tensor:
    """|x| (gradient sign(x): 0 at 0 and at NaN, as PyTorch's). Saves sign(x)."""
    return _unary(Abs, "abs", x)


register(
    OpInfo(
        "abs",
        abs,
        np.abs,
        _samples(away_from_zero),
        aliases=("__abs__",),
        kink_samples=_zero_samples,
        subgradient=lambda g, x: (g * _sign(x),),
    )
)


class Tanh(Function):
    kernel = np.tanh

    @staticmethod
    def forward(ctx, x):
        ctx.save_output()
        return ctx.kernel(x.data)

    @staticmethod
    def backward(ctx, g):
        if _grad_enabled():  # create_graph: recorded
            y = ctx.output
            return (g * (1.0 - y * y),)  # the kernel's formula (PyTorch's tanh_backward)
        return (wrap_array(backend.tanh_backward(ctx.output_data, g.data)),)


def tanh(x: Tensor) -> Tensor:
    """Hyperbolic tangent. Saves the output."""
    return _unary(Tanh, "tanh", x)


register(OpInfo("tanh", tanh, np.tanh, _samples(), uses_kernel=True))  # the backward


class Sigmoid(Function):
    kernel = staticmethod(backend.sigmoid)

    @staticmethod
    def forward(ctx, x):
        ctx.save_output()
        return ctx.kernel(x.data)

    @staticmethod
    def backward(ctx, g):
        if _grad_enabled():  # create_graph: recorded
            y = ctx.output
            return (g * (1.0 - y) * y,)  # the kernel's formula (PyTorch's sigmoid_backward)
        return (wrap_array(backend.sigmoid_backward(ctx.output_data, g.data)),)


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + e ** -x), computed without overflow. Saves the output."""
    return _unary(Sigmoid, "sigmoid", x)


register(
    OpInfo("sigmoid", sigmoid, lambda x: 1.0 / (1.0 + np.exp(-x)), _samples(), uses_kernel=True)
)


class Relu(Function):
    kernel = staticmethod(backend.relu)

    @staticmethod
    def forward(ctx, x):
        if ctx.record:  # the output and the mask "not (x <= 0)" in one pass
            y, ctx.mask = backend.relu_with_mask(x.data)
            return y
        return ctx.kernel(x.data)

    @staticmethod
    def backward(ctx, g):
        if _grad_enabled():  # create_graph: a recorded select, 0 where the mask is not set
            return (g.masked_fill(wrap_array(~ctx.mask), 0.0),)
        # a select (PyTorch's threshold_backward), not g * mask: inf * 0 would be NaN
        return (wrap_array(backend.relu_backward(ctx.mask, g.data)),)


def relu(x: Tensor) -> Tensor:
    """max(x, 0): NaN stays NaN. Gradient 1 where the output is not 0 (at NaN too, as
    PyTorch's), 0 at and below 0, whatever the incoming gradient holds there. Saves that
    mask."""
    return _unary(Relu, "relu", x)


register(
    OpInfo(
        "relu",
        relu,
        lambda x: np.maximum(x, 0),
        _samples(away_from_zero),
        kink_samples=_zero_samples,
        subgradient=lambda g, x: (g * (x > 0),),
        uses_kernel=True,
    )
)


class Gelu(Function):
    """GELU through the backend kernel (C, or the numpy reference); saves the input."""

    kernel = staticmethod(backend.gelu)

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.kernel(x.data)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        if _grad_enabled():  # create_graph: a recorded composite, x * sigmoid(z) differentiated
            x2 = x * x
            s = (x * (x2 * _C3 + _C2)).sigmoid()
            dz = x2 * (3 * _C3) + _C2
            return (g * (s + x * dz * s * (1.0 - s)),)
        return (wrap_array(backend.gelu_backward(x.data, g.data)),)


def gelu(x: Tensor, approximate: str = "tanh") -> Tensor:
    """GELU with the tanh approximation (as GPT-2; PyTorch's approximate='tanh').

    The exact erf form is not provided: numpy has no vectorized erf. Saves the input.
    """
    if approximate != "tanh":
        raise ValueError(f"gelu: only approximate='tanh' is available, got {approximate!r}")
    return _unary(Gelu, "gelu", x)


register(
    OpInfo("gelu", gelu, backend.gelu_reference, _samples(lambda r, s, d: rand(r, s, d, -3, 3)))
)


def _softplus_np(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(x.dtype.type(0), x)


class Softplus(Function):
    kernel = staticmethod(_softplus_np)

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.kernel(x.data)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return (g * x.sigmoid(),)


def softplus(x: Tensor) -> Tensor:
    """log(1 + e ** x), computed without overflow. Saves the input."""
    return _unary(Softplus, "softplus", x)


register(
    OpInfo(
        "softplus",
        softplus,
        lambda x: np.log1p(np.exp(x)),
        _samples(lambda r, s, d: rand(r, s, d, -5, 5)),
    )
)


class Clamp(Function):
    @staticmethod
    def forward(ctx, x, min, max):
        data = x.data
        if ctx.record:
            inside = np.ones(data.shape, dtype=bool)
            if min is not None:
                inside &= data >= min
            if max is not None:
                inside &= data <= max
            ctx.inside = inside
        return np.clip(data, min, max).astype(data.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        return (g * wrap_array(ctx.inside.astype(g.data.dtype)),)


def clamp(x: Tensor, min: float | None = None, max: float | None = None) -> Tensor:
    """x limited to [min, max] (either may be None). Gradient 1 inside, 0 outside."""
    require_float("clamp", x)
    if min is None and max is None:
        raise ValueError("clamp: give min, max or both")
    if min is not None and max is not None and min > max:
        raise ValueError(f"clamp: min {min} is greater than max {max}")
    return Clamp.apply(x, min=min, max=max)


def _clamp_samples(rng, dtype):
    for shape in SHAPES:
        # keep values away from the bounds +-0.5 so finite differences do not straddle them
        x = away_from_zero(rng, shape, dtype, gap=0.05) + np.where(
            rng.random(shape) < 0.5, 0.5, -0.5
        ).astype(dtype)
        yield Sample((x,), {"min": -0.5, "max": 0.5}, name=f"{shape} both")
        yield Sample((x,), {"min": -0.5}, name=f"{shape} min")
        yield Sample((x,), {"max": 0.5}, name=f"{shape} max")


def _clamp_kink_samples(rng, dtype):
    """Values on the bounds themselves (and min == max)."""
    for shape in [(5,), (3, 4)]:
        x = with_ties(rng, shape, dtype, step=0.25)
        for bounds in [
            {"min": -0.25, "max": 0.25},
            {"min": 0.0},
            {"max": 0.0},
            {"min": 0.25, "max": 0.25},
        ]:
            yield Sample((x,), bounds, name=f"{shape} {bounds}")


def _clamp_subgradient(g, x, min=None, max=None):
    """1 inside the closed interval [min, max], bounds included (PyTorch's rule)."""
    inside = np.ones(x.shape, bool)
    if min is not None:
        inside &= x >= min
    if max is not None:
        inside &= x <= max
    return (g * inside,)


register(
    OpInfo(
        "clamp",
        clamp,
        lambda x, min=None, max=None: np.clip(x, min, max),
        _clamp_samples,
        kink_samples=_clamp_kink_samples,
        subgradient=_clamp_subgradient,
    )
)
