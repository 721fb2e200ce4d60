"""Which implementation the kernels use: the C extension or the numpy references.

C when the extension is built, numpy otherwise; ``TINYTAPE_BACKEND=numpy`` forces
numpy. ``use("numpy")`` switches for a block of code (tests compare the two).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from ._memory import tune_malloc

# OpenMP threads of the kernels sleep between parallel regions instead of spinning, unless
# the user chose otherwise. libgomp reads this when it loads, i.e. when _C loads. On a busy
# 2-core machine a spinning worker time-shares a core with the thread that must run next:
# a GPT training step at 2 threads took 200-310 ms spinning, 49-51 ms sleeping (one other
# process running); on an idle machine 38.1 vs 39.4 ms.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
tune_malloc()

_C: ModuleType | None
try:
    from tinytape import _C
except ImportError as exc:  # a source checkout that was never built
    _C = None
    _import_error: str = str(exc)
else:
    _import_error = ""

_requested = os.environ.get("TINYTAPE_BACKEND", "").strip().lower()
if _requested not in ("", "c", "numpy"):
    raise ValueError(f"TINYTAPE_BACKEND={_requested!r}: expected 'c' or 'numpy'")
if _requested == "c" and _C is None:
    raise ImportError(f"TINYTAPE_BACKEND=c but the C extension did not import: {_import_error}")
if _requested == "" and _C is None:
    warnings.warn(
        "tinytape's C extension is not built; using the numpy reference kernels "
        f"({_import_error}). Install with `pip install .` to build it.",
        RuntimeWarning,
        stacklevel=2,
    )

native: ModuleType | None = None if _requested == "numpy" else _C


def name() -> str:
    """'c' or 'numpy': the implementation in use."""
    return "c" if native is not None else "numpy"


def available() -> list[str]:
    return ["c", "numpy"] if _C is not None else ["numpy"]


@contextmanager
def use(backend: str) -> Iterator[None]:
    """Run a block with the kernels of `backend` ('c' or 'numpy')."""
    global native
    if backend not in ("c", "numpy"):
        raise ValueError(f"unknown backend {backend!r}: expected 'c' or 'numpy'")
    if backend == "c" and _C is None:
        raise RuntimeError(f"the C extension is not available: {_import_error}")
    saved = native
    native = _C if backend == "c" else None
    try:
        yield
    finally:
        native = saved
