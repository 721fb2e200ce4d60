"""Elementwise functions of one tensor: exp log sqrt abs tanh sigmoid relu gelu softplus
clamp. Each saves what its derivative needs: the input, or the output when the
derivative is cheaper in terms of it (exp, sqrt, tanh, sigmoid)."""

from __future__ import annotations

import numpy as np

from ..autograd.function import Function
from ..tensor import Tensor
from ._util import require_float
from .registry import OpInfo, Sample, away_from_zero, positive, rand, register

SHAPES = [(), (1,), (5,), (3, 4), (2, 1, 3), (0, 3)]


def _samples(make=rand, **kwargs):
    def samples(rng, dtype):
        for shape in SHAPES:
            yield Sample((make(rng, shape, dtype),), dict(kwargs), name=str(shape))
    return samples


def _unary(cls: type[Function], op: str, x: Tensor) -> Tensor:
    require_float(op, x)
    return cls.apply(x)


class Exp(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_output()
        return np.exp(x.data)

    @staticmethod
    def backward(ctx, g):
        return (g * ctx.output,)


def exp(x: Tensor) -> Tensor:
    """e ** x. Saves the output."""
    return _unary(Exp, "exp", x)


register(OpInfo("exp", exp, np.exp, _samples()))


class Log(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.log(x.data)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return (g / x,)


def log(x: Tensor) -> Tensor:
    """Natural logarithm. Saves the input."""
    return _unary(Log, "log", x)


register(OpInfo("log", log, np.log, _samples(positive)))


class Sqrt(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_output()
        return np.sqrt(x.data)

    @staticmethod
    def backward(ctx, g):
        return (g / (ctx.output * 2.0),)


def sqrt(x: Tensor) -> Tensor:
    """Square root. Saves the output."""
    return _unary(Sqrt, "sqrt", x)


register(OpInfo("sqrt", sqrt, np.sqrt, _samples(positive)))


class Abs(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.sign = np.sign(x.data) if ctx.record else None
        return np.abs(x.data)

    @staticmethod
    def backward(ctx, g):
        return (g * Tensor._wrap(ctx.sign),)


def abs(x: Tensor) -> Tensor:
    """|x| (gradient sign(x), 0 at 0). Saves sign(x)."""
    return _unary(Abs, "abs", x)


register(OpInfo("abs", abs, np.abs, _samples(away_from_zero), aliases=("__abs__",)))


class Tanh(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_output()
        return np.tanh(x.data)

    @staticmethod
    def backward(ctx, g):
        y = ctx.output
        return (g * (1.0 - y * y),)


def tanh(x: Tensor) -> Tensor:
    """Hyperbolic tangent. Saves the output."""
    return _unary(Tanh, "tanh", x)


register(OpInfo("tanh", tanh, np.tanh, _samples()))


def _sigmoid_np(x: np.ndarray) -> np.ndarray:
    # exp of a non-positive number only: no overflow for large |x|
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


class Sigmoid(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_output()
        return _sigmoid_np(x.data)

    @staticmethod
    def backward(ctx, g):
        y = ctx.output
        return (g * y * (1.0 - y),)


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + e ** -x), computed without overflow. Saves the output."""
    return _unary(Sigmoid, "sigmoid", x)


register(OpInfo("sigmoid", sigmoid, lambda x: 1.0 / (1.0 + np.exp(-x)), _samples()))


class Relu(Function):
    @staticmethod
    def forward(ctx, x):
        mask = x.data > 0
        ctx.mask = mask if ctx.record else None
        return np.where(mask, x.data, x.data.dtype.type(0))

    @staticmethod
    def backward(ctx, g):
        return (g * Tensor._wrap(ctx.mask.astype(g.data.dtype)),)


def relu(x: Tensor) -> Tensor:
    """max(x, 0) (gradient 0 at 0). Saves the mask x > 0."""
    return _unary(Relu, "relu", x)


register(OpInfo("relu", relu, lambda x: np.maximum(x, 0), _samples(away_from_zero)))

_SQRT_2_OVER_PI = float(np.sqrt(2.0 / np.pi))


class Gelu(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _gelu_np(x.data)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        inner = (x + x * x * x * 0.044715) * _SQRT_2_OVER_PI
        t = inner.tanh()
        dinner = (x * x * (3 * 0.044715) + 1.0) * _SQRT_2_OVER_PI
        return (g * (0.5 * (1.0 + t) + x * 0.5 * (1.0 - t * t) * dinner),)


def _gelu_np(x: np.ndarray) -> np.ndarray:
    c = x.dtype.type(_SQRT_2_OVER_PI)
    return x.dtype.type(0.5) * x * (1 + np.tanh(c * (x + x.dtype.type(0.044715) * x**3)))


def gelu(x: Tensor, approximate: str = "tanh") -> Tensor:
    """GELU with the tanh approximation (as GPT-2; PyTorch's approximate='tanh').

    The exact erf form is not provided: numpy has no vectorized erf. Saves the input.
    """
    if approximate != "tanh":
        raise ValueError(f"gelu: only approximate='tanh' is available, got {approximate!r}")
    return _unary(Gelu, "gelu", x)


register(OpInfo("gelu", gelu, _gelu_np, _samples(lambda r, s, d: rand(r, s, d, -3, 3))))


class Softplus(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.logaddexp(x.data.dtype.type(0), x.data)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return (g * x.sigmoid(),)


def softplus(x: Tensor) -> Tensor:
    """log(1 + e ** x), computed without overflow. Saves the input."""
    return _unary(Softplus, "softplus", x)


register(OpInfo("softplus", softplus, lambda x: np.log1p(np.exp(x)),
                _samples(lambda r, s, d: rand(r, s, d, -5, 5))))


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
        return (g * Tensor._wrap(ctx.inside.astype(g.data.dtype)),)


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
            rng.random(shape) < 0.5, 0.5, -0.5).astype(dtype)
        yield Sample((x,), {"min": -0.5, "max": 0.5}, name=f"{shape} both")
        yield Sample((x,), {"min": -0.5}, name=f"{shape} min")
        yield Sample((x,), {"max": 0.5}, name=f"{shape} max")


register(OpInfo("clamp", clamp, lambda x, min=None, max=None: np.clip(x, min, max),
                _clamp_samples))
