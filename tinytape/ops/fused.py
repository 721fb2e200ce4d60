"""Ops computed by the fused C kernels: softmax, log_softmax, layer_norm, cross_entropy.

Each runs one kernel forward and one backward. softmax and log_softmax save their
output; layer_norm saves x, gamma, mean and rstd; cross_entropy saves the logits,
targets and per-row logsumexp. Under create_graph each backward is instead the same
formulas written with tensor ops (layer_norm recomputes mean and rstd from x,
cross_entropy its softmax from the logits), so it is recorded and can be
differentiated again; tests/test_ops.py checks that both paths give the same first
derivative.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend
from ..autograd.function import Function
from ..autograd.grad_mode import _grad_enabled
from ..tensor import Tensor
from ._util import as_tensor, require_float
from .registry import OpInfo, Sample, rand, register


def _last_axis(op: str, x: Tensor, axis: int) -> int:
    require_float(op, x)
    if x.ndim == 0:
        raise ValueError(f"{op}: needs at least one dimension, got a 0-d tensor")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for a tensor of shape {x.shape}")
    return axis % x.ndim


def _along(fn, x: Tensor, axis: int) -> Tensor:
    """Apply a last-axis op along `axis` by moving that axis last and back."""
    if axis == x.ndim - 1:
        return fn(x)
    return fn(x.transpose(axis, -1)).transpose(axis, -1)


class Softmax(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_output()
        return backend.softmax(x.data)

    @staticmethod
    def backward(ctx, g):
        y = ctx.output
        if _grad_enabled():  # create_graph: a recorded composite
            return (y * (g - (g * y).sum(axis=-1, keepdims=True)),)
        return (Tensor._wrap(backend.softmax_backward(y.data, g.data)),)


def softmax(x: Tensor, axis: int = -1, *, dim: int | None = None) -> Tensor:
    """exp(x) / sum(exp(x)) along `axis` (default last), computed stably."""
    axis = _last_axis("softmax", x, axis if dim is None else dim)
    return _along(Softmax.apply, x, axis)


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_output()
        return backend.log_softmax(x.data)

    @staticmethod
    def backward(ctx, g):
        y = ctx.output
        if _grad_enabled():
            return (g - y.exp() * g.sum(axis=-1, keepdims=True),)
        return (Tensor._wrap(backend.log_softmax_backward(y.data, g.data)),)


def log_softmax(x: Tensor, axis: int = -1, *, dim: int | None = None) -> Tensor:
    """x - logsumexp(x) along `axis` (default last), computed stably."""
    axis = _last_axis("log_softmax", x, axis if dim is None else dim)
    return _along(LogSoftmax.apply, x, axis)


def _softmax_ref(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax_ref(x, axis=-1):
    s = x - x.max(axis=axis, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


def _softmax_samples(rng, dtype):
    for shape, axis in [((5,), -1), ((3, 7), -1), ((3, 7), 0), ((2, 3, 4), 1), ((1, 1), -1),
                        ((0, 4), -1), ((4, 1), -1)]:
        yield Sample((rand(rng, shape, dtype, -3, 3),), {"axis": axis}, name=f"{shape} {axis}")


register(OpInfo("softmax", softmax, _softmax_ref, _softmax_samples, uses_kernel=True))
register(OpInfo("log_softmax", log_softmax, _log_softmax_ref, _softmax_samples,
                uses_kernel=True))


class LayerNorm(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        y, mean, rstd = backend.layer_norm(x.data, weight.data, bias.data, eps)
        ctx.save_for_backward(x, weight)
        ctx.stats, ctx.eps = (mean, rstd), eps
        return y

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        if _grad_enabled():  # create_graph: a recorded composite
            return _layer_norm_backward_composite(g, x, weight, ctx.eps)
        mean, rstd = ctx.stats
        dx, dw, db = backend.layer_norm_backward(g.data, x.data, weight.data, mean, rstd)
        return Tensor._wrap(dx), Tensor._wrap(dw), Tensor._wrap(db)


def _layer_norm_backward_composite(g: Tensor, x: Tensor, weight: Tensor,
                                   eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """The kernel's backward as tensor ops, with mean and rstd recomputed from x:
    xhat = (x - mean) rstd, gw = g weight,
    dx = rstd (gw - mean(gw) - xhat mean(gw xhat)), dweight = sum g xhat, dbias = sum g."""
    d = x.shape[-1]
    centred = x - x.mean(axis=-1, keepdims=True)
    rstd = ((centred * centred).mean(axis=-1, keepdims=True) + eps) ** -0.5
    xhat = centred * rstd
    gw = g * weight
    dx = rstd * (gw - gw.mean(axis=-1, keepdims=True)
                 - xhat * (gw * xhat).mean(axis=-1, keepdims=True))
    return dx, (g * xhat).reshape(-1, d).sum(axis=0), g.reshape(-1, d).sum(axis=0)


def layer_norm(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Normalize over the last axis: (x - mean) / sqrt(var + eps) * weight + bias, with the
    biased variance (as PyTorch). weight, bias: (D,) or None."""
    require_float("layer_norm", x)
    if x.ndim == 0:
        raise ValueError("layer_norm: needs at least one dimension, got a 0-d tensor")
    d = x.shape[-1]
    w = as_tensor(weight, like=x) if weight is not None else Tensor._wrap(np.ones(d, x.dtype))
    b = as_tensor(bias, like=x) if bias is not None else Tensor._wrap(np.zeros(d, x.dtype))
    return LayerNorm.apply(x, w, b, eps=float(eps))


def _layer_norm_ref(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _layer_norm_samples(rng, dtype):
    for shape in [(3, 5), (2, 3, 8), (1, 1), (4, 2), (0, 3)]:
        d = shape[-1]
        yield Sample((rand(rng, shape, dtype), rand(rng, (d,), dtype), rand(rng, (d,), dtype)),
                     name=str(shape))


register(OpInfo("layer_norm", layer_norm, _layer_norm_ref, _layer_norm_samples,
                uses_kernel=True))


class CrossEntropy(Function):
    @staticmethod
    def forward(ctx, logits, targets, ignore_index):
        loss, lse = backend.cross_entropy(logits.data, targets, ignore_index)
        ctx.save_for_backward(logits)
        ctx.targets, ctx.lse, ctx.ignore_index = targets, lse, ignore_index
        return loss

    @staticmethod
    def backward(ctx, g):
        (logits,) = ctx.saved_tensors
        if _grad_enabled():  # create_graph: a recorded composite
            return (_cross_entropy_backward_composite(g, logits, ctx.targets,
                                                      ctx.ignore_index),)
        d = backend.cross_entropy_backward(logits.data, ctx.targets, ctx.lse,
                                           float(g.data), ctx.ignore_index)
        return (Tensor._wrap(d),)


def _cross_entropy_backward_composite(g: Tensor, logits: Tensor, targets: np.ndarray,
                                      ignore_index: int) -> Tensor:
    """The kernel's backward as tensor ops: (softmax(logits) - onehot(targets)) * g / count
    on counted rows, 0 on ignored ones (count: the rows whose target is not ignored)."""
    keep = targets != ignore_index
    onehot = np.zeros(logits.shape, logits.dtype)
    np.put_along_axis(onehot, np.where(keep, targets, 0)[..., None].astype(np.intp), 1.0, -1)
    row_scale = keep[..., None] / max(int(np.count_nonzero(keep)), 1)
    return (softmax(logits) - Tensor._wrap(onehot)) * Tensor._wrap(
        row_scale.astype(logits.dtype)) * g


def cross_entropy(logits: Tensor, targets: Any, ignore_index: int = -100,
                  reduction: str = "mean") -> Tensor:
    """-log softmax(logits)[target], classes on the LAST axis: logits (..., C), targets (...)
    integers in [0, C) or ignore_index. reduction: 'mean' over counted rows (0 when none
    count), 'sum', or 'none' (per-row losses, 0 at ignored rows)."""
    require_float("cross_entropy", logits)
    t = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
    if reduction == "mean":
        return CrossEntropy.apply(logits, targets=t, ignore_index=int(ignore_index))
    if reduction == "sum":
        count = int(np.count_nonzero(t != ignore_index))
        return CrossEntropy.apply(logits, targets=t, ignore_index=int(ignore_index)) * count
    if reduction == "none":
        logp = log_softmax(logits)
        backend.cross_entropy(logits.data, t, ignore_index)  # validates targets and shapes
        keep = t != ignore_index
        safe = np.where(keep, t, 0)
        picked = logp[tuple(np.indices(t.shape)) + (safe,)]
        return -picked.masked_fill(Tensor._wrap(~keep), 0.0)
    raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', "
                     f"got {reduction!r}")


def _cross_entropy_ref(logits, targets, ignore_index=-100, reduction="mean"):
    logp = _log_softmax_ref(logits)
    keep = targets != ignore_index
    safe = np.where(keep, targets, 0)
    losses = -np.take_along_axis(logp, safe[..., None], -1)[..., 0] * keep
    if reduction == "none":
        return losses
    total = losses.sum()
    return total if reduction == "sum" else total / max(int(keep.sum()), 1)


def _cross_entropy_samples(rng, dtype):
    yield Sample((rand(rng, (4, 5), dtype, -3, 3),), {"targets": rng.integers(0, 5, 4)})
    t = rng.integers(0, 7, (2, 3))
    t[0, 1] = -100
    yield Sample((rand(rng, (2, 3, 7), dtype, -3, 3),), {"targets": t}, name="ignore")
    yield Sample((rand(rng, (3, 4), dtype),), {"targets": rng.integers(0, 4, 3),
                                               "reduction": "sum"}, name="sum")
    yield Sample((rand(rng, (3, 4), dtype),), {"targets": np.array([1, -100, 3]),
                                               "reduction": "none"}, name="none")
    yield Sample((rand(rng, (1, 1), dtype),), {"targets": np.array([0])}, name="1 class")


register(OpInfo("cross_entropy", cross_entropy, _cross_entropy_ref, _cross_entropy_samples,
                uses_kernel=True))
