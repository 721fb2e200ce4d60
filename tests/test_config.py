"""Package configuration: threads, SIMD paths, the numpy fallback and the self-check."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import tinytape
from tinytape import backend


def test_c_extension_is_built_in_ci():
    """CI installs the package from source: the C extension must be there, or every
    other test would quietly check only the numpy path."""
    if os.environ.get("CI") and "c" not in backend.available():
        pytest.fail("CI=true but tinytape._C did not import: " + str(tinytape.config()))


def test_threads_round_trip():
    saved = tinytape.get_num_threads()
    try:
        tinytape.set_num_threads(1)
        assert tinytape.get_num_threads() == 1
        if tinytape.config().get("openmp"):
            tinytape.set_num_threads(2)
            assert tinytape.get_num_threads() == 2
    finally:
        tinytape.set_num_threads(saved)
    for bad in (0, -3, 1.5, True):
        with pytest.raises(ValueError, match="integer >= 1"):
            tinytape.set_num_threads(bad)


def test_show_config_names_the_simd_path(capsys):
    tinytape.show_config()
    out = capsys.readouterr().out
    assert tinytape.__version__ in out
    if "c" in backend.available():
        assert any(f"simd: {name}" in out for name in ("avx512", "avx2", "generic"))
        assert "threads" in out and "build" in out


def _run(code: str, cwd, **env) -> subprocess.CompletedProcess:
    # cwd away from the source tree, so the child imports the installed package
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120, cwd=cwd)


def test_backend_env_forces_numpy(tmp_path):
    res = _run("import tinytape, numpy as np; print(tinytape.backend.name());"
               "print(tinytape.backend.softmax(np.zeros((2, 4), np.float32)).tolist())",
               tmp_path, TINYTAPE_BACKEND="numpy")
    assert res.returncode == 0, res.stderr
    name, values = res.stdout.splitlines()
    assert name == "numpy" and values == str([[0.25] * 4] * 2)


def test_simd_env_selects_a_path(tmp_path):
    if "c" not in backend.available():
        pytest.skip("the C extension is not built")
    res = _run("from tinytape import _C; print(_C.simd_name(_C.simd_level()))",
               tmp_path, TINYTAPE_SIMD="generic")
    assert res.stdout.strip() == "generic", res.stderr


def test_main_runs_the_self_check(tmp_path):
    res = subprocess.run([sys.executable, "-m", "tinytape"], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    if "c" in backend.available():
        assert res.returncode == 0, res.stdout + res.stderr
        assert "FAIL" not in res.stdout and res.stdout.count(" ok") >= 14
    assert "simd" in res.stdout or "extension" in res.stdout


def test_concurrent_calls_from_threads_are_correct():
    """Kernels called from several Python threads at once (the GIL is released inside C)
    share no scratch state: every result equals the reference."""
    import threading

    x = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)
    out = []
    threads = [threading.Thread(target=lambda: out.append(backend.gemm(x, x))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    want = x.astype(np.float64) @ x
    assert len(out) == 4
    for o in out:
        np.testing.assert_allclose(o, want, rtol=1e-4, atol=1e-3)


def test_malloc_tuning_and_its_switches(tmp_path):
    """On glibc, importing tinytape keeps large freed blocks for reuse (mallopt); the
    switch and glibc's own variables turn that off; the OpenMP wait policy defaults to
    passive but a user's choice stands."""
    code = ("import tinytape, os; c = tinytape.config();"
            "print(c['malloc_tuning'], os.environ['OMP_WAIT_POLICY'])")
    try:
        glibc = (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):  # not a glibc system
        glibc = False
    base = {k: v for k, v in os.environ.items()
            if k not in ("OMP_WAIT_POLICY", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                         "TINYTAPE_MALLOC_TUNING")}
    for env, want in [({}, f"{glibc} PASSIVE"),
                      ({"TINYTAPE_MALLOC_TUNING": "0"}, "False PASSIVE"),
                      ({"MALLOC_TRIM_THRESHOLD_": "131072", "OMP_WAIT_POLICY": "ACTIVE"},
                       "False ACTIVE")]:
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**base, **env}, timeout=120, cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == want, (env, res.stdout, res.stderr)
