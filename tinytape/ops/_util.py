"""Small helpers shared by the op files: turning arguments into tensors, and
argument-name aliases (axis/dim, keepdims/keepdim) for PyTorch-familiar calls."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..tensor import Tensor


def as_tensor(x: Any, like: Tensor | None = None) -> Tensor:
    """x as a Tensor; Python numbers and arrays take the dtype of `like` when given."""
    if isinstance(x, Tensor):
        return x
    if like is not None and isinstance(x, (int, float, bool, np.number)):
        if like.data.dtype.kind != "f" and isinstance(x, (float, np.floating)):
            return Tensor._wrap(np.asarray(x, dtype=np.float32))  # -> a clear dtype error
        return Tensor._wrap(np.asarray(x, dtype=like.data.dtype))
    if like is not None and isinstance(x, np.ndarray) and x.dtype.kind == like.dtype.kind:
        return Tensor._wrap(x)
    return Tensor(x)


def binary_operands(op: str, a: Any, b: Any) -> tuple[Tensor, Tensor]:
    """Both operands as tensors of one dtype; TypeError naming both dtypes otherwise."""
    if isinstance(a, Tensor):
        b = as_tensor(b, like=a)
    else:
        b = as_tensor(b)
        a = as_tensor(a, like=b)
    if a.data.dtype != b.data.dtype:
        raise TypeError(
            f"{op}: mixed dtypes {a.dtype} (shape {a.shape}) and {b.dtype} (shape {b.shape}); "
            "convert one with .to(dtype)"
        )
    return a, b


def broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether `shape` broadcasts to exactly `target` (np.broadcast_shapes(shape, target)
    == target, without numpy's cost on small tuples)."""
    lead = len(target) - len(shape)
    if lead < 0 or min(target, default=0) < 0:
        return False
    for s, t in zip(shape, target[lead:]):
        if s != t and s != 1:
            return False
    return True


def broadcast_error(op: str, *tensors: Tensor) -> ValueError:
    shapes = " and ".join(str(t.shape) for t in tensors)
    return ValueError(f"{op}: shapes {shapes} cannot be broadcast together")


def require_float(op: str, t: Tensor) -> None:
    if t.data.dtype.kind != "f":
        raise TypeError(f"{op}: expected a float32/float64 tensor, got {t.dtype}")


def axis_arg(axis: Any, dim: Any) -> Any:
    """`axis`, or PyTorch's name `dim` for it (not both)."""
    if dim is not None:
        if axis is not None:
            raise TypeError("pass axis or dim, not both")
        return dim
    return axis


def keepdims_arg(keepdims: bool, keepdim: bool | None) -> bool:
    return bool(keepdim) if keepdim is not None else bool(keepdims)


def normalize_axes(op: str, axis: Any, ndim: int) -> tuple[int, ...]:
    """axis (None, int or tuple) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        a = int(a)
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dims")
        out.append(a % max(ndim, 1))
    if ndim == 0:
        return ()
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis}")
    return tuple(sorted(out))
