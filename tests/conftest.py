"""Fixtures shared by the kernel tests: every SIMD path of the C build, and both backends."""

from __future__ import annotations

import numpy as np
import pytest

from tinytape import backend
from tinytape.backend import _state


def pytest_report_header(config):
    import tinytape

    info = tinytape.config()
    return f"tinytape {info['tinytape']}: backend {info['backend']}, simd {info.get('simd')}, " \
        f"threads {info.get('threads')}, openmp {info.get('openmp')}"


def _simd_levels() -> list[int]:
    if _state._C is None:
        return []
    return list(range(_state._C.simd_detected() + 1))


@pytest.fixture(params=_simd_levels() or [None], ids=lambda lv: {0: "generic", 1: "avx2",
                2: "avx512", None: "no-C"}[lv])
def simd(request):
    """Run the test on one SIMD path of the C kernels (skipped where there is no C build)."""
    level = request.param
    if level is None:
        pytest.skip("the C extension is not built")
    C = _state._C
    saved = C.simd_level()
    C.set_simd_level(level)
    try:
        with backend.use("c"):
            yield level
    finally:
        C.set_simd_level(saved)


@pytest.fixture(params=["c", "numpy"])
def any_backend(request):
    """Run the test on each backend (the C one skipped where it is not built)."""
    if request.param not in backend.available():
        pytest.skip("the C extension is not built")
    with backend.use(request.param):
        yield request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
