"""Shape ops: reshape, transpose/permute/.T, expand, squeeze/unsqueeze, cat/stack/split,
and dtype conversion and clone. Reshape, transpose, permute, expand and
(un)squeeze return views that share memory (and the version counter) with their input."""

from __future__ import annotations

import builtins
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..autograd.function import Function
from ..tensor import Tensor
from ._util import broadcasts_to, normalize_axes
from .registry import OpInfo, Sample, rand, register


def _shape_arg(shape: tuple[Any, ...]) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


class Reshape(Function):
    is_view = True

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return x.data.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        return (g.reshape(ctx.in_shape),)


def reshape(x: Tensor, *shape: Any) -> Tensor:
    """The same elements in a new shape (one dim may be -1)."""
    shape = _shape_arg(shape)
    try:
        target = _resolve_reshape(x.shape, shape)
    except ValueError:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} "
                         f"({x.numel()} elements) into shape {shape}") from None
    return x if target == x.shape else Reshape.apply(x, shape=target)


def _resolve_reshape(old: tuple[int, ...], new: tuple[int, ...]) -> tuple[int, ...]:
    n = math.prod(old)
    if new.count(-1) > 1:
        raise ValueError
    if -1 in new:
        rest = math.prod([s for s in new if s != -1])
        if rest == 0 or n % rest:
            raise ValueError
        new = tuple(n // rest if s == -1 else s for s in new)
    if math.prod(new) != n or builtins.min(new, default=0) < 0:
        raise ValueError
    return new


def _reshape_samples(rng, dtype):
    for shape, target in [((3, 4), (4, 3)), ((3, 4), (-1,)), ((2, 3, 4), (6, -1)), ((), (1, 1)),
                          ((1,), ()), ((0, 3), (3, 0))]:
        yield Sample((rand(rng, shape, dtype),), {"shape": target}, name=f"{shape}->{target}")


register(OpInfo("reshape", lambda x, shape: reshape(x, shape),
                lambda x, shape: np.reshape(x, shape), _reshape_samples, aliases=("view",)))


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dims start_dim..end_dim into one (a reshape)."""
    if x.ndim == 0:
        return reshape(x, (1,))
    s, e = start_dim % x.ndim, end_dim % x.ndim
    return reshape(x, x.shape[:s] + (-1,) + x.shape[e + 1:])


register(OpInfo("flatten", flatten, lambda x, start_dim=0: x.reshape(x.shape[:start_dim] + (-1,)),
                lambda rng, dtype: iter([Sample((rand(rng, (2, 3, 4), dtype),), {"start_dim": 1}),
                                         Sample((rand(rng, (2, 3), dtype),))])))


class Permute(Function):
    is_view = True

    @staticmethod
    def forward(ctx, x, axes):
        ctx.axes = axes
        return x.data.transpose(axes)

    @staticmethod
    def backward(ctx, g):
        return (g.permute(tuple(np.argsort(ctx.axes))),)


def permute(x: Tensor, *axes: Any) -> Tensor:
    """Reorder the dims: out.shape[i] = x.shape[axes[i]]."""
    axes = _shape_arg(axes)
    if sorted(a % builtins.max(x.ndim, 1) for a in axes) != list(range(x.ndim)):
        raise ValueError(f"permute: {axes} is not a permutation of the {x.ndim} dims of a tensor "
                         f"of shape {x.shape}")
    return Permute.apply(x, axes=tuple(a % x.ndim for a in axes))


def transpose(x: Tensor, dim0: int = -2, dim1: int = -1) -> Tensor:
    """Swap two dims (by default the last two). x.T reverses all dims."""
    if x.ndim < 2:
        if x.ndim == 0 or (dim0, dim1) == (-2, -1):
            return x
    axes = list(range(x.ndim))
    d0, d1 = normalize_axes("transpose", dim0, x.ndim)[0], normalize_axes(
        "transpose", dim1, x.ndim)[0]
    axes[d0], axes[d1] = axes[d1], axes[d0]
    return Permute.apply(x, axes=tuple(axes))


def _permute_samples(rng, dtype):
    yield Sample((rand(rng, (2, 3, 4), dtype),), {"axes": (2, 0, 1)})
    yield Sample((rand(rng, (3, 4), dtype),), {"axes": (1, 0)})
    yield Sample((rand(rng, (0, 2), dtype),), {"axes": (1, 0)})


register(OpInfo("permute", lambda x, axes: permute(x, axes),
                lambda x, axes: np.transpose(x, axes), _permute_samples))


def _transpose_samples(rng, dtype):
    yield Sample((rand(rng, (3, 4), dtype),), {})
    yield Sample((rand(rng, (2, 3, 4), dtype),), {"dim0": 0, "dim1": 2})
    yield Sample((rand(rng, (2, 3, 5), dtype),), {})


def _transpose_ref(x, dim0=-2, dim1=-1):
    return np.swapaxes(x, dim0, dim1)


register(OpInfo("transpose", transpose, _transpose_ref, _transpose_samples, aliases=("T",)))


class Expand(Function):
    is_view = True

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return np.broadcast_to(x.data, shape)

    @staticmethod
    def backward(ctx, g):
        return (g.sum_to_shape(ctx.in_shape),)


def expand(x: Tensor, *shape: Any) -> Tensor:
    """A broadcast view of x with `shape` (-1 keeps a dim). Read-only: it shares elements."""
    shape = _shape_arg(shape)
    lead = len(shape) - x.ndim
    if lead < 0:
        raise ValueError(f"expand: cannot expand a tensor of shape {x.shape} to fewer dims "
                         f"{shape}")
    shape = tuple(x.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(shape))
    if shape == x.shape:
        return x
    if not broadcasts_to(x.shape, shape):
        raise ValueError(f"expand: a tensor of shape {x.shape} cannot be expanded to shape "
                         f"{shape}")
    return Expand.apply(x, shape=shape)


def _expand_samples(rng, dtype):
    for shape, target in [((3, 1), (3, 4)), ((4,), (2, 3, 4)), ((), (2, 2)), ((1, 3), (0, 3))]:
        yield Sample((rand(rng, shape, dtype),), {"shape": target}, name=f"{shape}->{target}")


register(OpInfo("expand", lambda x, shape: expand(x, shape),
                lambda x, shape: np.broadcast_to(x, shape), _expand_samples,
                aliases=("expand_as",)))


def squeeze(x: Tensor, axis: Any = None, *, dim: Any = None) -> Tensor:
    """Drop size-1 dims (all, or those in `axis`; others in `axis` must have size 1)."""
    axis = axis if dim is None else dim
    if axis is None:
        shape = tuple(s for s in x.shape if s != 1)
    else:
        axes = normalize_axes("squeeze", axis, x.ndim)
        for a in axes:
            if x.shape[a] != 1:
                raise ValueError(f"squeeze: dim {a} of a tensor of shape {x.shape} has size "
                                 f"{x.shape[a]}, not 1")
        shape = tuple(s for i, s in enumerate(x.shape) if i not in axes)
    return x if shape == x.shape else Reshape.apply(x, shape=shape)


def unsqueeze(x: Tensor, axis: int) -> Tensor:
    """Insert a size-1 dim at `axis` (negative counts from the end of the result)."""
    nd = x.ndim + 1
    if not -nd <= axis < nd:
        raise ValueError(f"unsqueeze: axis {axis} is out of range for a result with {nd} dims")
    a = axis % nd
    return Reshape.apply(x, shape=x.shape[:a] + (1,) + x.shape[a:])


register(OpInfo("squeeze", squeeze, lambda x, axis=None: np.squeeze(x, axis),
                lambda rng, dtype: iter([Sample((rand(rng, (3, 1, 4, 1), dtype),)),
                                         Sample((rand(rng, (3, 1, 4), dtype),), {"axis": 1}),
                                         Sample((rand(rng, (1,), dtype),))])))
register(OpInfo("unsqueeze", unsqueeze, lambda x, axis: np.expand_dims(x, axis),
                lambda rng, dtype: iter([Sample((rand(rng, (3, 4), dtype),), {"axis": 1}),
                                         Sample((rand(rng, (3, 4), dtype),), {"axis": -1}),
                                         Sample((rand(rng, (), dtype),), {"axis": 0})])))


class Cat(Function):
    @staticmethod
    def forward(ctx, *xs, axis):
        ctx.axis = axis
        ctx.sizes = [x.shape[axis] for x in xs]
        return np.concatenate([x.data for x in xs], axis=axis)

    @staticmethod
    def backward(ctx, g):
        return split(g, ctx.sizes, axis=ctx.axis)


def _check_joinable(op: str, tensors: Sequence[Tensor]) -> list[Tensor]:
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{op}: needs at least one tensor")
    if not all(isinstance(t, Tensor) for t in tensors):
        raise TypeError(f"{op}: expects a sequence of tensors")
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) > 1:
        raise TypeError(f"{op}: mixed dtypes {sorted(str(d) for d in dtypes)}")
    return tensors


def cat(tensors: Sequence[Tensor], axis: int = 0, *, dim: int | None = None) -> Tensor:
    """Join tensors along an existing axis (all other dims must match)."""
    tensors = _check_joinable("cat", tensors)
    axis = axis if dim is None else dim
    a = normalize_axes("cat", axis, tensors[0].ndim)[0] if tensors[0].ndim else 0
    ref = tensors[0].shape
    for i, t in enumerate(tensors):
        if t.ndim != len(ref) or t.shape[:a] + t.shape[a + 1:] != ref[:a] + ref[a + 1:]:
            raise ValueError(f"cat: tensor {i} has shape {t.shape}, which does not match "
                             f"tensor 0's shape {ref} outside axis {a}")
    return Cat.apply(*tensors, axis=a)


def stack(tensors: Sequence[Tensor], axis: int = 0, *, dim: int | None = None) -> Tensor:
    """Join same-shape tensors along a new axis."""
    tensors = _check_joinable("stack", tensors)
    axis = axis if dim is None else dim
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack: tensor {i} has shape {t.shape}, tensor 0 has shape "
                             f"{tensors[0].shape}")
    return cat([unsqueeze(t, axis) for t in tensors], axis=axis)


def split(x: Tensor, split_size_or_sections: int | Sequence[int], axis: int = 0, *,
          dim: int | None = None) -> tuple[Tensor, ...]:
    """Pieces of x along `axis`: equal pieces of a given size (the last may be shorter), or
    pieces with the listed sizes."""
    axis = axis if dim is None else dim
    a = normalize_axes("split", axis, x.ndim)[0]
    n = x.shape[a]
    if isinstance(split_size_or_sections, (int, np.integer)):
        size = int(split_size_or_sections)
        if size <= 0:
            raise ValueError(f"split: size must be positive, got {size}")
        sizes = [builtins.min(size, n - i) for i in range(0, n, size)] or [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if builtins.sum(sizes) != n or builtins.min(sizes, default=0) < 0:
            raise ValueError(f"split: sizes {sizes} do not add up to {n}, the length of axis "
                             f"{a} of a tensor of shape {x.shape}")
    out, start = [], 0
    for s in sizes:
        index = (slice(None),) * a + (slice(start, start + s),)
        out.append(x[index])
        start += s
    return tuple(out)


def _cat_samples(rng, dtype):
    yield Sample((rand(rng, (2, 3), dtype), rand(rng, (4, 3), dtype)), {"axis": 0})
    yield Sample((rand(rng, (2, 3), dtype), rand(rng, (2, 1), dtype),
                  rand(rng, (2, 0), dtype)), {"axis": -1})
    yield Sample((rand(rng, (3,), dtype),), {"axis": 0})


register(OpInfo("cat", lambda *xs, axis: cat(xs, axis), lambda *xs, axis: np.concatenate(xs, axis),
                _cat_samples))


def _stack_samples(rng, dtype):
    yield Sample((rand(rng, (2, 3), dtype), rand(rng, (2, 3), dtype)), {"axis": 0})
    yield Sample((rand(rng, (2, 3), dtype), rand(rng, (2, 3), dtype)), {"axis": -1})
    yield Sample((rand(rng, (), dtype), rand(rng, (), dtype)), {"axis": 0})


register(OpInfo("stack", lambda *xs, axis: stack(xs, axis), lambda *xs, axis: np.stack(xs, axis),
                _stack_samples))


def _split_samples(rng, dtype):
    yield Sample((rand(rng, (7, 3), dtype),), {"split_size_or_sections": 3, "axis": 0})
    yield Sample((rand(rng, (2, 6), dtype),), {"split_size_or_sections": [1, 0, 5], "axis": 1})


def _split_ref(x, split_size_or_sections, axis):
    n = x.shape[axis]
    if isinstance(split_size_or_sections, int):
        idx = list(range(split_size_or_sections, n, split_size_or_sections))
    else:
        idx = list(np.cumsum(split_size_or_sections)[:-1])
    return tuple(np.split(x, idx, axis=axis))


register(OpInfo("split", split, _split_ref, _split_samples))


class Cast(Function):
    @staticmethod
    def forward(ctx, x, dtype):
        ctx.in_dtype = x.dtype
        return x.data.astype(dtype)

    @staticmethod
    def backward(ctx, g):
        return (g.to(ctx.in_dtype),)


def to(x: Tensor, dtype: Any) -> Tensor:
    """x converted to `dtype` (float32, float64, int64, bool); differentiable between floats.
    Returns x itself when it already has that dtype."""
    from ..creation import _dtype

    dt = _dtype(dtype)
    if dt == x.dtype:
        return x
    if dt.kind != "f" or x.dtype.kind != "f":
        return Tensor._wrap(x.data.astype(dt))
    return Cast.apply(x, dtype=dt)


def _to_samples(rng, dtype):
    # Values and step that float32 represents exactly, so finite differences through the
    # float32 round trip are exact (see eps=2**-6 below).
    x = (rng.integers(-64, 64, (3, 4)) / 64.0).astype(dtype)
    other = np.float32 if np.dtype(dtype) == np.float64 else np.float64
    yield Sample((x,), {"dtype": other})


register(OpInfo("to", lambda x, dtype: to(to(x, dtype), x.dtype),
                lambda x, dtype: x.astype(dtype).astype(x.dtype), _to_samples, eps=2.0**-6,
                aliases=("float", "double", "long", "bool")))


class Clone(Function):
    @staticmethod
    def forward(ctx, x):
        return x.data.copy()

    @staticmethod
    def backward(ctx, g):
        return (g,)


def clone(x: Tensor) -> Tensor:
    """A copy of x with its own memory, still connected to the graph."""
    return Clone.apply(x)


register(OpInfo("clone", clone, np.copy,
                lambda rng, dtype: iter([Sample((rand(rng, (3, 4), dtype),))]),
                aliases=("contiguous",)))
