"""The op registry, in the spirit of PyTorch's OpInfo.

Every differentiable (and every public) op registers one record beside its
definition: how to call it, its numpy reference, sample inputs that cover
broadcasting, 0-d, size-1 and empty dims, and what it supports. The tests in
tests/test_ops.py are generated from these records: forward against the
reference, gradcheck in float64, gradgradcheck, the first derivative under
create_graph against the plain one, and the C backend against the numpy backend;
tests/test_ties_and_kinks.py checks the kink samples against their subgradient rule
(docs/gradients.md). A public op without a record fails a test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Sample:
    """One call: `tensors` become Tensors (float ones require grad); kwargs pass as-is."""

    tensors: tuple[np.ndarray, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    name: str = ""


@dataclass
class OpInfo:
    name: str
    #: called as op(*tensors, **kwargs) with tinytape Tensors
    op: Callable[..., Any]
    #: the numpy reference, called as ref(*arrays, **kwargs)
    ref: Callable[..., Any]
    #: samples(rng, dtype) -> iterable of Sample
    samples: Callable[[np.random.Generator, Any], Iterator[Sample]]
    differentiable: bool = True
    gradgrad: bool = True
    #: the op computes through a C kernel (so the backends are compared)
    uses_kernel: bool = False
    #: forward tolerance in float32 (float64 always uses 1e-10 relative)
    rtol32: float = 1e-5
    atol32: float = 1e-6
    #: finite-difference step for gradcheck
    eps: float = 1e-6
    #: public names covered by this record besides `name` (methods, aliases)
    aliases: tuple[str, ...] = ()
    #: samples at ties and kinks (max/min ties, relu at 0, clamp at its bounds ...), where
    #: finite differences straddle the kink: checked against the reference, and their
    #: gradient against `subgradient` (and PyTorch) instead of gradcheck
    kink_samples: Callable[[np.random.Generator, Any], Iterator[Sample]] | None = None
    #: the documented gradient there (PyTorch's choice), in numpy:
    #: subgradient(g, *arrays, **kwargs) -> one array per float input
    subgradient: Callable[..., tuple[np.ndarray, ...]] | None = None


REGISTRY: dict[str, OpInfo] = {}


def register(info: OpInfo) -> OpInfo:
    if info.name in REGISTRY:
        raise ValueError(f"op {info.name!r} is registered twice")
    REGISTRY[info.name] = info
    return info


def covered_names() -> set[str]:
    names = set()
    for info in REGISTRY.values():
        names.add(info.name)
        names.update(info.aliases)
    return names


# -------------------------------------------------------------- sample helpers
def rand(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any,
         low: float = -1.0, high: float = 1.0) -> np.ndarray:
    return rng.uniform(low, high, shape).astype(dtype)


def positive(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    return rng.uniform(0.5, 2.0, shape).astype(dtype)


def away_from_zero(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any,
                   gap: float = 0.1) -> np.ndarray:
    """Values in (-1, -gap] U [gap, 1): kinks at 0 stay out of finite-difference reach."""
    mag = rng.uniform(gap, 1.0, shape)
    return (mag * rng.choice([-1.0, 1.0], shape)).astype(dtype)


def distinct(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """Values with no ties closer than 1e-2 (max/min and sort-like ops)."""
    n = int(np.prod(shape, dtype=np.int64))
    vals = (rng.permutation(n) * 0.05 - n * 0.025).astype(dtype)
    return vals.reshape(shape)


def with_ties(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any,
              step: float = 0.5) -> np.ndarray:
    """Values on the grid {-2, -1, 0, 1, 2} * step: zeros and ties are frequent, and every
    value is exact in float32 (samples at kinks and for comparisons at equality)."""
    return np.array(rng.integers(-2, 3, shape) * step, dtype=dtype)


UNARY_SHAPES: list[tuple[int, ...]] = [(), (1,), (5,), (3, 4), (2, 1, 3), (0, 3)]
BROADCAST_PAIRS: list[tuple[tuple[int, ...], tuple[int, ...]]] = [
    ((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (2, 3)), ((1,), ()),
    ((0, 3), (1, 3)), ((2, 3), (2, 1)),
]
