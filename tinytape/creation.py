"""Making tensors: tensor, zeros, ones, full, arange, *_like, rand/randn, from_numpy.

Python floats become float32 (the default dtype); numpy arrays keep their dtype;
integers become int64 and booleans bool. Random tensors come from a numpy
Generator: pass one (or a seed) explicitly, or use the default that
`manual_seed` resets.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .tensor import DEFAULT_FLOAT, Tensor

SUPPORTED = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int64), np.dtype(np.bool_))

_default_generator = np.random.default_rng(0)


def _dtype(dtype: Any) -> np.dtype | None:
    if dtype is None:
        return None
    dt = np.dtype(dtype)
    if dt not in SUPPORTED:
        raise TypeError(f"unsupported dtype {dt}: tinytape has float32, float64, int64, bool")
    return dt


def as_array(data: Any, dtype: Any = None) -> np.ndarray:
    """`data` as a numpy array of a supported dtype (copied unless it already is one)."""
    dt = _dtype(dtype)
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, np.ndarray) or isinstance(data, np.generic):
        arr = np.array(data, dtype=dt, copy=True)
    else:
        arr = np.array(data, dtype=dt)
        if dt is None and arr.dtype.kind == "f":
            arr = arr.astype(DEFAULT_FLOAT)
    if arr.dtype.kind in "iu" and arr.dtype != np.int64:
        arr = arr.astype(np.int64)
    elif arr.dtype.kind == "f" and arr.dtype not in SUPPORTED:
        arr = arr.astype(DEFAULT_FLOAT if arr.dtype.itemsize < 4 else np.float64)
    if arr.dtype not in SUPPORTED:
        raise TypeError(f"cannot make a tensor from data of dtype {arr.dtype}")
    return arr


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of `data` (nested lists, numbers, arrays or tensors)."""
    return Tensor(data, dtype=dtype, requires_grad=requires_grad)


def from_numpy(array: np.ndarray, requires_grad: bool = False) -> Tensor:
    """A tensor that shares memory with `array` (edits to either are visible in both)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy array, got {type(array).__name__}")
    if array.dtype not in SUPPORTED:
        raise TypeError(f"from_numpy: unsupported dtype {array.dtype}")
    t = Tensor._wrap(array)
    return t.requires_grad_(True) if requires_grad else t


def _shape(shape: tuple[Any, ...]) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    out = tuple(int(s) for s in shape)
    if any(s < 0 for s in out):
        raise ValueError(f"negative dimension in shape {out}")
    return out


def _make(data: np.ndarray, requires_grad: bool) -> Tensor:
    t = Tensor._wrap(data)
    return t.requires_grad_(True) if requires_grad else t


def zeros(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _make(np.zeros(_shape(shape), _dtype(dtype) or DEFAULT_FLOAT), requires_grad)


def ones(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _make(np.ones(_shape(shape), _dtype(dtype) or DEFAULT_FLOAT), requires_grad)


def full(shape: Any, fill_value: float, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape = _shape((shape,) if isinstance(shape, int) else tuple(shape))
    if dtype is None:
        dtype = np.int64 if isinstance(fill_value, (int, np.integer)) and not isinstance(
            fill_value, bool) else (np.bool_ if isinstance(fill_value, bool) else DEFAULT_FLOAT)
    return _make(np.full(shape, fill_value, _dtype(dtype)), requires_grad)


def arange(start: float, stop: float | None = None, step: float = 1, dtype: Any = None,
           requires_grad: bool = False) -> Tensor:
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        ints = all(isinstance(v, (int, np.integer)) for v in (start, stop, step))
        dtype = np.int64 if ints else DEFAULT_FLOAT
    return _make(np.arange(start, stop, step, dtype=_dtype(dtype)), requires_grad)


def zeros_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return zeros(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def ones_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return ones(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def full_like(t: Tensor, fill_value: float, dtype: Any = None,
              requires_grad: bool = False) -> Tensor:
    return full(t.shape, fill_value, dtype=dtype or t.dtype, requires_grad=requires_grad)


def manual_seed(seed: int) -> np.random.Generator:
    """Reset the default generator used when rand/randn get no generator; returns it."""
    global _default_generator
    _default_generator = np.random.default_rng(seed)
    return _default_generator


def _generator(generator: np.random.Generator | int | None) -> np.random.Generator:
    if generator is None:
        return _default_generator
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, (int, np.integer)):
        return np.random.default_rng(int(generator))
    raise TypeError(f"generator must be a numpy Generator or an int seed, got {generator!r}")


def as_generator(generator: np.random.Generator | int | None) -> np.random.Generator | None:
    """For modules that draw random numbers on every call (dropout): an int seed becomes
    its own Generator once, so successive calls draw fresh numbers from that stream;
    None stays None (tinytape's default generator, looked up at each call)."""
    if generator is None or isinstance(generator, np.random.Generator):
        return generator
    return _generator(generator)


def rand(*shape: Any, generator: np.random.Generator | int | None = None, dtype: Any = None,
         requires_grad: bool = False) -> Tensor:
    """Uniform [0, 1) samples from `generator` (a numpy Generator or a seed)."""
    dt = _dtype(dtype) or DEFAULT_FLOAT
    return _make(_generator(generator).random(_shape(shape)).astype(dt), requires_grad)


def randn(*shape: Any, generator: np.random.Generator | int | None = None, dtype: Any = None,
          requires_grad: bool = False) -> Tensor:
    """Standard normal samples from `generator` (a numpy Generator or a seed)."""
    dt = _dtype(dtype) or DEFAULT_FLOAT
    return _make(_generator(generator).standard_normal(_shape(shape)).astype(dt), requires_grad)


def randint(low: int, high: int, shape: Any, generator: np.random.Generator | int | None = None
            ) -> Tensor:
    """Integers in [low, high) as int64."""
    shape = _shape((shape,) if isinstance(shape, int) else tuple(shape))
    return _make(_generator(generator).integers(low, high, shape, dtype=np.int64), False)
