"""Reductions over axes: sum mean max min var std logsumexp, and sum_to_shape (the one
place where a broadcast gradient is reduced back to its input's shape)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd.function import Function
from ..tensor import Tensor
from ._util import axis_arg, broadcasts_to, keepdims_arg, normalize_axes, require_float
from .registry import OpInfo, Sample, distinct, rand, register


def _expand_back(g: Tensor, shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool):
    """Broadcast a reduced gradient back to `shape` (re-inserting reduced axes)."""
    if not keepdims and axes and len(axes) < len(shape):  # (all reduced: g is 0-d already)
        kept = list(shape)
        for a in axes:
            kept[a] = 1
        g = g.reshape(tuple(kept))
    return g.expand(shape)


class Sum(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdims):
        ctx.shape, ctx.axes, ctx.keepdims = x.shape, axes, keepdims
        return np.asarray(np.sum(x.data, axis=axes, keepdims=keepdims))

    @staticmethod
    def backward(ctx, g):
        return (_expand_back(g, ctx.shape, ctx.axes, ctx.keepdims),)


def sum(x: Tensor, axis: Any = None, keepdims: bool = False, *, dim: Any = None,
        keepdim: bool | None = None) -> Tensor:
    """Sum over `axis` (None: all). PyTorch's dim/keepdim are accepted too."""
    axes = normalize_axes("sum", axis_arg(axis, dim), x.ndim)
    return Sum.apply(x, axes=axes, keepdims=keepdims_arg(keepdims, keepdim))


def _axis_samples(make=rand, extra=None):
    def samples(rng, dtype):
        cases = [((), None, False), ((5,), None, False), ((5,), 0, True), ((3, 4), 1, False),
                 ((3, 4), 0, True), ((2, 3, 4), (0, 2), False), ((2, 3, 4), -1, True),
                 ((3, 1), 1, False), ((0, 3), 1, False)]
        for shape, axis, keep in cases:
            if extra is not None and not extra(shape, axis):
                continue
            yield Sample((make(rng, shape, dtype),), {"axis": axis, "keepdims": keep},
                         name=f"{shape} axis={axis} keep={keep}")
    return samples


register(OpInfo("sum", sum, lambda x, axis, keepdims: np.sum(x, axis=axis, keepdims=keepdims),
                _axis_samples()))


def _count(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    n = 1
    for a in axes:
        n *= shape[a]
    return n


def mean(x: Tensor, axis: Any = None, keepdims: bool = False, *, dim: Any = None,
         keepdim: bool | None = None) -> Tensor:
    """Mean over `axis` (None: all)."""
    require_float("mean", x)
    axes = normalize_axes("mean", axis_arg(axis, dim), x.ndim)
    n = _count(x.shape, axes)
    if n == 0:
        raise ValueError(f"mean: reducing an empty axis of a tensor of shape {x.shape}")
    return Sum.apply(x, axes=axes, keepdims=keepdims_arg(keepdims, keepdim)) * (1.0 / n)


def _nonempty(shape, axis):
    return 0 not in shape


register(OpInfo("mean", mean, lambda x, axis, keepdims: np.mean(x, axis=axis, keepdims=keepdims),
                _axis_samples(extra=_nonempty)))


class _Extreme(Function):
    """max/min over axes: the gradient is shared equally among tied extreme elements."""

    reducer: Any

    @classmethod
    def forward(cls, ctx, x, axes, keepdims):
        out = cls.reducer(x.data, axis=axes, keepdims=True)
        if ctx.record:
            hit = (x.data == out).astype(x.data.dtype)
            ctx.weights = hit / hit.sum(axis=axes, keepdims=True)
            ctx.shape, ctx.axes, ctx.keepdims = x.shape, axes, keepdims
        return out if keepdims else np.squeeze(out, axis=axes)

    @staticmethod
    def backward(ctx, g):
        g = _expand_back(g, ctx.shape, ctx.axes, ctx.keepdims)
        return (g * Tensor._wrap(ctx.weights),)


class Max(_Extreme):
    reducer = staticmethod(np.max)


class Min(_Extreme):
    reducer = staticmethod(np.min)


def _extreme(cls, op, x, axis, keepdims, dim, keepdim):
    axes = normalize_axes(op, axis_arg(axis, dim), x.ndim)
    if _count(x.shape, axes) == 0:
        raise ValueError(f"{op}: reducing an empty axis of a tensor of shape {x.shape}")
    return cls.apply(x, axes=axes, keepdims=keepdims_arg(keepdims, keepdim))


def max(x: Tensor, axis: Any = None, keepdims: bool = False, *, dim: Any = None,
        keepdim: bool | None = None) -> Tensor:
    """Largest value over `axis` (None: all); tied maxima share the gradient."""
    return _extreme(Max, "max", x, axis, keepdims, dim, keepdim)


def min(x: Tensor, axis: Any = None, keepdims: bool = False, *, dim: Any = None,
        keepdim: bool | None = None) -> Tensor:
    """Smallest value over `axis` (None: all); tied minima share the gradient."""
    return _extreme(Min, "min", x, axis, keepdims, dim, keepdim)


def _tied_samples(rng, dtype):
    """Every reduced slice has its largest and its smallest value at least twice."""
    rows = np.array([[1.0, 1.0, 0.0, -1.0], [0.5, 0.5, 0.5, 0.5], [-1.0, 2.0, 2.0, -1.0]])
    cube = np.zeros((2, 3, 4))
    cube[0, :, 0] = cube[1, :, 3] = 1.0
    cube[:, :, 1] = -1.0
    for x, axis, keep in [(np.array([1.0, -1.0, 0.5, 1.0, -1.0, 0.0]), None, False),
                          (rows, 1, False), (rows.T, 0, True), (cube, (0, 2), False),
                          (np.full((2, 2), 0.25), None, True)]:
        yield Sample((x.astype(dtype),), {"axis": axis, "keepdims": keep},
                     name=f"{x.shape} axis={axis} keep={keep}")


def _extreme_subgradient(reducer):
    """Tied extremes share the gradient evenly (PyTorch's amax/amin, and max()/min()
    without a dim)."""
    def rule(g, x, axis, keepdims):
        axes = normalize_axes("rule", axis, x.ndim)
        hit = x == reducer(x, axis=axes, keepdims=True)
        g = g if keepdims else np.expand_dims(g, axes)
        return (g * hit / hit.sum(axis=axes, keepdims=True),)
    return rule


register(OpInfo("max", max, lambda x, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims),
                _axis_samples(distinct, _nonempty),
                kink_samples=_tied_samples, subgradient=_extreme_subgradient(np.max)))
register(OpInfo("min", min, lambda x, axis, keepdims: np.min(x, axis=axis, keepdims=keepdims),
                _axis_samples(distinct, _nonempty),
                kink_samples=_tied_samples, subgradient=_extreme_subgradient(np.min)))


def var(x: Tensor, axis: Any = None, keepdims: bool = False, correction: int = 1, *,
        dim: Any = None, keepdim: bool | None = None) -> Tensor:
    """Variance over `axis` with (n - correction) in the denominator (default 1, unbiased,
    as PyTorch); correction=0 gives the biased variance."""
    require_float("var", x)
    axes = normalize_axes("var", axis_arg(axis, dim), x.ndim)
    keep = keepdims_arg(keepdims, keepdim)
    n = _count(x.shape, axes)
    if n - correction <= 0:
        raise ValueError(f"var: {n} elements with correction={correction} over axis {axis} "
                         f"of a tensor of shape {x.shape}")
    centered = x - x.mean(axis=axes, keepdims=True)
    return (centered * centered).sum(axis=axes, keepdims=keep) * (1.0 / (n - correction))


class _SqrtOfVariance(Function):
    """sqrt of a variance, whose gradient is 0 where the variance is 0 (a constant slice,
    PyTorch's rule) instead of 0 * inf = NaN. Saves the output."""

    @staticmethod
    def forward(ctx, v):
        ctx.save_output()
        return np.sqrt(v.data)

    @staticmethod
    def backward(ctx, g):
        y = ctx.output
        zero = Tensor._wrap(y.data == 0)
        # the divisor is 1 at the zeros, so no inf appears even in a double backward
        return ((g / (y.masked_fill(zero, 1.0) * 2.0)).masked_fill(zero, 0.0),)


def std(x: Tensor, axis: Any = None, keepdims: bool = False, correction: int = 1, *,
        dim: Any = None, keepdim: bool | None = None) -> Tensor:
    """Standard deviation: sqrt(var(...)); its gradient is 0 over a constant slice."""
    return _SqrtOfVariance.apply(var(x, axis, keepdims, correction, dim=dim, keepdim=keepdim))


def _var_ok(shape, axis):
    axes = normalize_axes("var", axis, len(shape))
    return _count(shape, axes) >= 2


register(OpInfo("var", var, lambda x, axis, keepdims: np.var(x, axis=axis, keepdims=keepdims,
                                                              ddof=1),
                _axis_samples(extra=_var_ok)))


def _constant_slices(rng, dtype):
    """Samples whose reduced slices are all, or partly, constant (std 0: its kink)."""
    yield Sample((np.full((4,), 0.5, dtype),), {"axis": None, "keepdims": False}, name="all")
    x = rand(rng, (3, 4), dtype)
    x[1] = 0.75  # exact in binary, so the mean is exact and the variance exactly 0
    yield Sample((x,), {"axis": 1, "keepdims": False}, name="row 1")
    yield Sample((x.T.copy(),), {"axis": 0, "keepdims": True}, name="column 1")


def _std_subgradient(g, x, axis, keepdims):
    """(x - mean) / ((n - 1) std) times g, and 0 where std is 0."""
    axes = normalize_axes("rule", axis, x.ndim)
    n = _count(x.shape, axes)
    s = np.std(x, axis=axes, keepdims=True, ddof=1)
    g = g if keepdims else np.expand_dims(g, axes)
    scale = np.divide(g, (n - 1) * s, out=np.zeros_like(s * g), where=s > 0)
    return (scale * (x - x.mean(axis=axes, keepdims=True)),)


register(OpInfo("std", std, lambda x, axis, keepdims: np.std(x, axis=axis, keepdims=keepdims,
                                                              ddof=1),
                _axis_samples(extra=_var_ok), kink_samples=_constant_slices,
                subgradient=_std_subgradient))


class LogSumExp(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdims):
        m = np.max(x.data, axis=axes, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
        out = np.log(np.sum(np.exp(x.data - m), axis=axes, keepdims=True)) + m
        ctx.save_for_backward(x)
        ctx.shape, ctx.axes, ctx.keepdims = x.shape, axes, keepdims
        ctx.save_output()
        return out if keepdims else np.squeeze(out, axis=axes)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        y = _expand_back(ctx.output, ctx.shape, ctx.axes, ctx.keepdims)
        g = _expand_back(g, ctx.shape, ctx.axes, ctx.keepdims)
        return (g * (x - y).exp(),)


def logsumexp(x: Tensor, axis: Any = None, keepdims: bool = False, *, dim: Any = None,
              keepdim: bool | None = None) -> Tensor:
    """log(sum(exp(x))) over `axis`, computed stably (the max is subtracted first)."""
    require_float("logsumexp", x)
    axes = normalize_axes("logsumexp", axis_arg(axis, dim), x.ndim)
    if _count(x.shape, axes) == 0:
        raise ValueError(f"logsumexp: reducing an empty axis of a tensor of shape {x.shape}")
    return LogSumExp.apply(x, axes=axes, keepdims=keepdims_arg(keepdims, keepdim))


def _lse_ref(x, axis, keepdims):
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


register(OpInfo("logsumexp", logsumexp, _lse_ref, _axis_samples(extra=_nonempty)))


class SumToShape(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        return sum_to_shape_np(x.data, shape)

    @staticmethod
    def backward(ctx, g):
        return (g.expand(ctx.shape),)


def sum_to_shape_np(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum x over the axes that broadcasting added or stretched, giving `shape`."""
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, s in enumerate(shape) if s == 1 and x.shape[i + lead] != 1
    )
    out = np.sum(x, axis=axes, keepdims=True) if axes else x
    return out.reshape(shape)


def sum_to_shape(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    """The reverse of broadcasting: sum x down to `shape` (which x's shape broadcasts from)."""
    shape = tuple(shape)
    if not broadcasts_to(shape, x.shape):
        np.broadcast_shapes(shape, x.shape)  # numpy's error when they do not broadcast at all
        raise ValueError(f"sum_to_shape: shape {shape} does not broadcast to {x.shape}")
    if shape == x.shape:
        return x
    return SumToShape.apply(x, shape=shape)


def _sum_to_shape_samples(rng, dtype):
    for sx, target in [((3, 4), (4,)), ((2, 3, 4), (3, 1)), ((3, 4), ()), ((2, 0, 3), (1, 3))]:
        yield Sample((rand(rng, sx, dtype),), {"shape": target}, name=f"{sx}->{target}")


register(OpInfo("sum_to_shape", sum_to_shape, sum_to_shape_np, _sum_to_shape_samples))
