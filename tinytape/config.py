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
        "location": str(_state.package_dir()),
        "tape": ", ".join(compiled_modules()) + " compiled (Cython)" if compiled_modules()
        else "Python",
    }
    C = _state._C
    if C is None:
        info["extension"] = "missing: " + _state.missing_reason()
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


def headline() -> str:
    """One line: version, where tinytape was imported from, and the backend in use."""
    info = config()
    line = f"tinytape {info['tinytape']} at {info['location']}: backend {info['backend']}"
    if _state._C is None:
        return line + " (the C extension is missing)"
    if info["backend"] == "numpy":
        return line + " (chosen with TINYTAPE_BACKEND=numpy; C is built)"
    return line + f" (SIMD {info['simd']}, {info['threads']} thread(s))"


def show_config() -> None:
    """Print the headline, then the version, backend, SIMD path in use, threads and build
    flags, one per line; without the C extension, why it is missing and how to build it."""
    print(headline())
    if _state._C is None:
        print(_state.missing_extension_message())
    for key, value in config().items():
        print(f"{key:>15}: {value}")
