"""Indexing: x[index] with ints, slices, None, Ellipsis, integer arrays and boolean masks,
and embedding lookup. The backward scatters the gradient into zeros of the input's
shape, adding where an element was picked more than once; the scatter's own backward
is the indexing again, so gradients of gradients work."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd.function import Function
from ..tensor import Tensor
from .registry import OpInfo, Sample, rand, register


def normalize_index(index: Any) -> Any:
    """Tensors and lists inside an index become numpy arrays."""
    if isinstance(index, tuple):
        return tuple(normalize_index(i) for i in index)
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, list):
        return np.asarray(index)
    return index


def _is_basic(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (int, np.integer, slice))
               for i in items)


class GetItem(Function):
    @staticmethod
    def forward(ctx, x, index):
        ctx.index, ctx.shape = index, x.shape
        return x.data[index]

    @staticmethod
    def backward(ctx, g):
        return (ScatterAdd.apply(g, index=ctx.index, shape=ctx.shape),)


class GetItemView(GetItem):
    """Basic indexing returns a view sharing memory (and the version counter)."""

    is_view = True


class ScatterAdd(Function):
    """out = zeros(shape); out[index] += g (repeated positions add up)."""

    @staticmethod
    def forward(ctx, g, index, shape):
        ctx.index = index
        out = np.zeros(shape, dtype=g.data.dtype)
        if _is_basic(index) or (isinstance(index, np.ndarray) and index.dtype == np.bool_):
            out[index] = g.data  # no position is picked twice
        elif isinstance(index, np.ndarray) and out.ndim >= 1:
            _scatter_add_rows(out, index, g.data)
        else:
            np.add.at(out, index, g.data)
        return out

    @staticmethod
    def backward(ctx, g):
        return (getitem(g, ctx.index),)


def _scatter_add_rows(out: np.ndarray, rows: np.ndarray, g: np.ndarray) -> None:
    """out[rows] += g for an integer array of row numbers (repeats add up, in their order).

    np.add.at does this one element at a time; sorting the rows and summing each run with
    np.add.reduceat is 5-10x faster for an embedding's backward (1,024 tokens x 128)."""
    flat = rows.reshape(-1)
    if flat.size == 0:
        return
    flat = np.where(flat < 0, flat + out.shape[0], flat)
    order = np.argsort(flat, kind="stable")
    sorted_rows = flat[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_rows[1:] != sorted_rows[:-1])))
    g_rows = g.reshape((flat.size,) + out.shape[1:])[order]
    out[sorted_rows[starts]] = np.add.reduceat(g_rows, starts, axis=0)


def getitem(x: Tensor, index: Any) -> Tensor:
    """x[index], numpy semantics. Out-of-range indices raise IndexError naming the shape."""
    index = normalize_index(index)
    cls = GetItemView if _is_basic(index) else GetItem
    try:
        return cls.apply(x, index=index)
    except IndexError as e:
        raise IndexError(f"index {_describe(index)} is invalid for a tensor of shape "
                         f"{x.shape}: {e}") from None


def _describe(index: Any) -> str:
    items = index if isinstance(index, tuple) else (index,)
    parts = []
    for i in items:
        if isinstance(i, np.ndarray):
            parts.append(f"array(shape={i.shape}, dtype={i.dtype})")
        else:
            parts.append(repr(i))
    return "[" + ", ".join(parts) + "]"


def _getitem_samples(rng, dtype):
    x = rand(rng, (4, 5), dtype)
    yield Sample((x,), {"index": (1, slice(None, None, 2))}, name="int+slice")
    yield Sample((x,), {"index": (Ellipsis, None, slice(1, 3))}, name="ellipsis+none")
    yield Sample((x,), {"index": np.array([0, 2, 2, 3])}, name="int array with repeats")
    yield Sample((x,), {"index": (np.array([0, 1]), np.array([4, 4]))}, name="pairs")
    yield Sample((x,), {"index": rng.random((4, 5)) < 0.5}, name="bool mask")
    yield Sample((x,), {"index": (slice(None), np.array([[1, 1], [0, 3]]))}, name="2-d array")
    yield Sample((rand(rng, (3,), dtype),), {"index": 2}, name="to 0-d")
    yield Sample((rand(rng, (0, 3), dtype),), {"index": (slice(None), 1)}, name="empty")


register(OpInfo("getitem", getitem, lambda x, index: x[index], _getitem_samples,
                aliases=("__getitem__",)))


def embedding(weight: Tensor, indices: Any) -> Tensor:
    """Rows of `weight` (num, dim) picked by integer `indices` of any shape -> (*shape, dim).
    The backward adds up the gradients of rows picked several times."""
    idx = indices.data if isinstance(indices, Tensor) else np.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {idx.dtype}")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num, dim), got shape {weight.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= weight.shape[0]):
        bad = idx[(idx < 0) | (idx >= weight.shape[0])].reshape(-1)[0]
        raise IndexError(f"embedding: index {bad} is out of range for {weight.shape[0]} rows")
    return GetItem.apply(weight, index=idx)


def _embedding_samples(rng, dtype):
    w = rand(rng, (6, 3), dtype)
    yield Sample((w,), {"indices": np.array([[0, 5, 5], [2, 0, 1]])}, name="2-d with repeats")
    yield Sample((w,), {"indices": np.array(4)}, name="0-d")
    yield Sample((w,), {"indices": np.zeros((0,), np.int64)}, name="empty")


register(OpInfo("embedding", embedding, lambda w, indices: w[indices], _embedding_samples))
