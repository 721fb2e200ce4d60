"""Argument checks shared by every kernel, so both backends fail the same way
with messages that name the operation, the shapes and the dtypes at fault."""

from __future__ import annotations

import math

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_float_array(op: str, name: str, x: object) -> np.ndarray:
    """x as a float32/float64 numpy array; TypeError naming the dtype otherwise."""
    if type(x) is np.ndarray and x.dtype in FLOAT_DTYPES:  # what the tape passes: as is
        return x
    arr = np.asarray(x)
    if arr.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: {name} must be float32 or float64, got dtype {arr.dtype}")
    return arr


def same_dtype(op: str, **arrays: np.ndarray) -> np.dtype:
    """The common dtype of the named arrays; TypeError naming each when they differ."""
    first = None
    for a in arrays.values():  # a loop, not a set: this runs on every kernel call
        if first is None:
            first = a.dtype
        elif a.dtype != first:
            listed = ", ".join(f"{name} {b.dtype}" for name, b in arrays.items())
            raise TypeError(f"{op}: mixed dtypes ({listed}); convert them to one dtype first")
    return first


def same_shape(op: str, **arrays: np.ndarray) -> None:
    first = None
    for a in arrays.values():
        if first is None:
            first = a.shape
        elif a.shape != first:
            listed = ", ".join(f"{name} {b.shape}" for name, b in arrays.items())
            raise ValueError(f"{op}: shapes must match, got {listed}")


def not_self_overlapping(op: str, name: str, x: np.ndarray) -> None:
    """ValueError when two elements of x may share memory, e.g. an output made with
    np.lib.stride_tricks.as_strided: writes through it would overwrite one another. The
    test is the kernels' own (tt_gemm_c_disjoint): with the axes sorted by stride, each
    stride must exceed the span of the smaller ones, which rejects a few exotic
    interleaved layouts that do not overlap."""
    if x.size == 0:
        return
    span = 0
    for step, size in sorted((abs(st), n) for st, n in zip(x.strides, x.shape)):
        if size <= 1:
            continue
        if step <= span or step == 0:
            raise ValueError(
                f"{op}: {name} overlaps itself (shape {x.shape}, strides {x.strides}):"
                " its elements would overwrite one another; pass a copy"
            )
        span += (size - 1) * step


def at_least_1d(op: str, name: str, x: np.ndarray) -> None:
    if x.ndim == 0:
        raise ValueError(f"{op}: {name} must have at least one dimension, got a 0-d array")


def rows_2d(x: np.ndarray) -> np.ndarray:
    """A C-contiguous (rows, last dim) view or copy of x."""
    rows = math.prod(x.shape[:-1])  # not np.prod: 0.1 us against 3.5, on every kernel call
    return np.ascontiguousarray(x).reshape(rows, x.shape[-1])
