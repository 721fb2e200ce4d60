"""Fixtures shared by the kernel tests: every SIMD path of the C build, and both backends."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from tinytape import backend
from tinytape.backend import _state


def pytest_report_header(config):
    import tinytape

    info = tinytape.config()
    header = f"tinytape {info['tinytape']} at {info['location']}: backend {info['backend']}, " \
        f"simd {info.get('simd')}, threads {info.get('threads')}, openmp {info.get('openmp')}"
    missing = _state.missing_extension_message()
    return [header, *missing.splitlines()] if missing else header


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


#: Skip reasons that mean "this part of the suite did not run here": a missing oracle or
#: optional package (pytest.importorskip) or a missing C build. Under CI=true they fail,
#: because CI installs everything the suite tests.
_MISSING = ("could not import", "is not installed", "the C extension is not built")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and in_ci() and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2])
        if any(text in reason for text in _MISSING):
            report.outcome = "failed"
            report.longrepr = f"CI=true, but this test would skip: {reason}"


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


@contextmanager
def kernel_threads(n: int) -> Iterator[None]:
    """A block run with n kernel threads; the setting is put back afterwards."""
    import tinytape

    before = tinytape.get_num_threads()
    tinytape.set_num_threads(n)
    try:
        yield
    finally:
        tinytape.set_num_threads(before)


@pytest.fixture
def one_kernel_thread():
    """Run the test with one kernel thread."""
    with kernel_threads(1):
        yield


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
