"""Choosing between values elementwise: maximum, minimum, where, masked_fill."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd.function import Function
from ..tensor import Tensor
from ._util import as_tensor, binary_operands, broadcast_error
from .reduction import sum_to_shape_np
from .registry import BROADCAST_PAIRS, OpInfo, Sample, distinct, rand, register, with_ties


class _Extremum(Function):
    """maximum / minimum: the gradient goes to the chosen input; ties split it evenly."""

    ufunc: np.ufunc

    @classmethod
    def forward(cls, ctx, a, b):
        out = cls.ufunc(a.data, b.data)
        if ctx.record:
            pick_a = (a.data == out).astype(out.dtype)
            pick_b = (b.data == out).astype(out.dtype)
            both = pick_a * pick_b
            ctx.weights = (pick_a - 0.5 * both, pick_b - 0.5 * both)
        return out

    @staticmethod
    def backward(ctx, g):
        wa, wb = ctx.weights
        return g * Tensor._wrap(wa), g * Tensor._wrap(wb)


class Maximum(_Extremum):
    ufunc = np.maximum


class Minimum(_Extremum):
    ufunc = np.minimum


def _extremum(cls, op, a, b):
    a, b = binary_operands(op, a, b)
    try:
        return cls.apply(a, b)
    except ValueError:
        raise broadcast_error(op, a, b) from None


def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise max of a and b (broadcasting); ties share the gradient equally."""
    return _extremum(Maximum, "maximum", a, b)


def minimum(a: Any, b: Any) -> Tensor:
    """Elementwise min of a and b (broadcasting); ties share the gradient equally."""
    return _extremum(Minimum, "minimum", a, b)


def _pair_samples(rng, dtype):
    for sa, sb in BROADCAST_PAIRS:
        # distinct values across both inputs, so no tie is within finite-difference reach
        n = int(np.prod(sa)) + int(np.prod(sb))
        vals = distinct(rng, (n,), dtype)
        yield Sample((vals[: int(np.prod(sa))].reshape(sa), vals[int(np.prod(sa)):].reshape(sb)),
                     name=f"{sa}{sb}")


def _tied_pair_samples(rng, dtype):
    for sa, sb in [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 3), (4, 1))]:
        yield Sample((with_ties(rng, sa, dtype), with_ties(rng, sb, dtype)), name=f"{sa}{sb}")


def _extremum_subgradient(chosen):
    """The chosen input gets the gradient; where a == b each gets half (PyTorch's rule)."""
    def rule(g, a, b):
        share = np.where(chosen(a, b), 1.0, 0.0) + np.where(a == b, 0.5, 0.0)
        other = np.where(chosen(b, a), 1.0, 0.0) + np.where(a == b, 0.5, 0.0)
        return sum_to_shape_np(g * share, a.shape), sum_to_shape_np(g * other, b.shape)
    return rule


register(OpInfo("maximum", maximum, np.maximum, _pair_samples, kink_samples=_tied_pair_samples,
                subgradient=_extremum_subgradient(np.greater)))
register(OpInfo("minimum", minimum, np.minimum, _pair_samples, kink_samples=_tied_pair_samples,
                subgradient=_extremum_subgradient(np.less)))


def _mask_array(op: str, cond: Any) -> np.ndarray:
    arr = cond.data if isinstance(cond, Tensor) else np.asarray(cond)
    if arr.dtype != np.bool_:
        raise TypeError(f"{op}: the condition must be a bool tensor, got dtype {arr.dtype}")
    return arr


class Where(Function):
    @staticmethod
    def forward(ctx, a, b, cond):
        ctx.cond = cond
        return np.where(cond, a.data, b.data)

    @staticmethod
    def backward(ctx, g):
        zero = Tensor._wrap(np.zeros((), g.data.dtype))
        c = Tensor._wrap(ctx.cond)
        return where(c, g, zero), where(c, zero, g)


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """a where cond is true, else b (all three broadcast)."""
    mask = _mask_array("where", cond)
    a, b = binary_operands("where", a, b)
    try:
        return Where.apply(a, b, cond=mask)
    except ValueError:
        raise broadcast_error("where", a, b, Tensor._wrap(mask)) from None


def _where_samples(rng, dtype):
    for sc, sa, sb in [((3, 4), (3, 4), (3, 4)), ((3, 4), (4,), ()), ((2, 1), (1, 3), (2, 3)),
                       ((0, 2), (2,), (1,))]:
        yield Sample((rand(rng, sa, dtype), rand(rng, sb, dtype)),
                     {"cond": rng.random(sc) < 0.5}, name=f"{sc}{sa}{sb}")


register(OpInfo("where", lambda a, b, cond: where(cond, a, b),
                lambda a, b, cond: np.where(cond, a, b), _where_samples))


class MaskedFill(Function):
    @staticmethod
    def forward(ctx, x, mask, value):
        ctx.mask = mask
        out = np.array(x.data)  # a copy, and an array even when x holds a numpy scalar
        np.copyto(out, x.data.dtype.type(value), where=mask)
        return out

    @staticmethod
    def backward(ctx, g):
        return (g.masked_fill(Tensor._wrap(ctx.mask), 0.0),)


def masked_fill(x: Tensor, mask: Any, value: float) -> Tensor:
    """x with `value` where mask is true (mask broadcasts to x's shape)."""
    m = _mask_array("masked_fill", mask)
    x = as_tensor(x)
    try:
        m = np.broadcast_to(m, x.shape)
    except ValueError:
        raise ValueError(f"masked_fill: mask of shape {m.shape} does not broadcast to the "
                         f"tensor's shape {x.shape}") from None
    return MaskedFill.apply(x, mask=m, value=value)


def _masked_fill_samples(rng, dtype):
    for sx, sm in [((3, 4), (3, 4)), ((2, 3, 4), (3, 1)), ((), ()), ((0, 3), (3,))]:
        yield Sample((rand(rng, sx, dtype),), {"mask": rng.random(sm) < 0.4, "value": -1e4},
                     name=f"{sx}{sm}")


register(OpInfo("masked_fill", masked_fill,
                lambda x, mask, value: np.where(mask, np.asarray(value, x.dtype), x),
                _masked_fill_samples))
