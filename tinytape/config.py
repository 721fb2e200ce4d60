"""Threads, SIMD path and build information of the kernels."""

from __future__ import annotations

import os
import platform
import sys

import numpy as np

from ._compiled import compiled_modules
from ._version import __version__
from .backend import _memory, _state


def set_num_threads(n: int) -> None:
    """Use n OpenMP threads in the C kernels (n >= 1)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"set_num_threads: n must be an integer >= 1, got {n!r}")
    if _state._C is not None:
        _state._C.set_num_threads(n)


def get_num_threads() -> int:
    """Threads the C kernels use (1 without the C extension or without OpenMP)."""
    return _state._C.get_num_threads() if _state._C is not None else 1


def config() -> dict[str, object]:
    """The configuration as a dict (what show_config prints)."""
    info: dict[str, object] = {
        "tinytape": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "platform": f"{platform.system()} {platform.machine()}",
        "backend": _state.name(),
        "tape": ", ".join(compiled_modules()) + " compiled (Cython)" if compiled_modules()
        else "Python",
    }
    C = _state._C
    if C is None:
        info["extension"] = "not built: " + _state._import_error
        return info
    info.update(
        simd=C.simd_name(C.simd_level()),
        simd_detected=C.simd_name(C.simd_detected()),
        openmp=C.have_openmp(),
        threads=C.get_num_threads(),
        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", ""),
        malloc_tuning=_memory.tuned,
        build=C.build_info(),
    )
    return info


def show_config() -> None:
    """Print the version, backend, SIMD path in use, threads and build flags."""
    for key, value in config().items():
        print(f"{key:>15}: {value}")
