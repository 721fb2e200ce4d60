"""Without the C extension tinytape falls back to the numpy kernels, never silently: the
warning names the copy imported, why the extension is missing and the command that builds
it; long-running commands refuse to start unless the user chose numpy.

Each test runs Python in a copy of the package laid out like an unbuilt checkout (a
setup.py and csrc/ beside tinytape/, no compiled _C), as a new user's fresh clone is.
"""

from __future__ import annotations

import argparse
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import tinytape
from tinytape import cli
from tinytape.backend import _state

PACKAGE = Path(tinytape.__file__).resolve().parent


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """An unbuilt checkout: tinytape/ without _C, with setup.py and csrc/ beside it."""
    root = tmp_path_factory.mktemp("clone")
    shutil.copytree(PACKAGE, root / "tinytape",
                    ignore=shutil.ignore_patterns("_C.*", "__pycache__"))
    (root / "setup.py").write_text("# stands in for the real setup.py\n")
    (root / "csrc").mkdir()
    return root


def _python(args: list[str], cwd: Path, path: tuple[Path, ...] = (),
            **env: str) -> subprocess.CompletedProcess:
    """Run Python in `cwd` as after a plain `pip install`: site-packages on the path (after
    `path`), but no editable-install finder, which would map tinytape to this test's copy
    whatever the current folder (-S skips the .pth files that install it)."""
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TINYTAPE_BACKEND")}
    pythonpath = os.pathsep.join(map(str, [*path, *site.getsitepackages()]))
    return subprocess.run([sys.executable, "-S", *args], capture_output=True, text=True,
                          cwd=cwd, env={**base, "PYTHONPATH": pythonpath, **env}, timeout=300)


def test_import_warns_with_the_copy_the_reason_and_the_fix(checkout):
    res = _python(["-c", "import tinytape; print(tinytape.backend.name())"], checkout)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "numpy"
    assert f"imported: {checkout / 'tinytape'}" in res.stderr
    assert "never built in place" in res.stderr
    assert "fix: pip install -e ." in res.stderr


def test_the_fix_names_the_checkout_when_run_from_elsewhere(checkout, tmp_path):
    res = _python(["-c", "import tinytape"], tmp_path, path=(checkout,))
    assert f'fix: pip install -e "{checkout}"' in res.stderr, res.stderr


def test_a_built_copy_hidden_by_the_checkout_is_named(checkout):
    """`pip install .` then `python -m tinytape` at the root: the installed, built copy is
    on sys.path after the current folder (here: PYTHONPATH stands in for site-packages)."""
    res = _python(["-c", "import tinytape"], checkout, path=(PACKAGE.parent,))
    assert f"a built copy at {PACKAGE} is hidden" in res.stderr, res.stderr


def test_an_extension_that_does_not_load_is_told_apart(tmp_path):
    root = tmp_path / "broken"
    shutil.copytree(PACKAGE, root / "tinytape",
                    ignore=shutil.ignore_patterns("_C.*", "__pycache__"))
    name = "_C" + sysconfig.get_config_var("EXT_SUFFIX")
    (root / "tinytape" / name).write_bytes(b"not a shared library")
    res = _python(["-c", "import tinytape"], root)
    assert f"{name} is there but does not load" in res.stderr, res.stderr


def test_backend_c_refuses_to_start_without_the_extension(checkout):
    res = _python(["-c", "import tinytape"], checkout, TINYTAPE_BACKEND="c")
    assert res.returncode != 0
    assert "ImportError: TINYTAPE_BACKEND=c, but tinytape's C extension is missing" \
        in res.stderr, res.stderr


@pytest.mark.parametrize("command", [["demo", "--quick"], ["layerwise"], ["lm", "train"],
                                     ["authors", "--quick"], ["icl"], ["rlhf"]])
def test_long_commands_refuse_the_numpy_path(checkout, tmp_path, command):
    out = tmp_path / "run"
    res = _python(["-m", "tinytape", *command, "--out", str(out)], checkout)
    assert res.returncode == 2, (res.stdout, res.stderr)
    last = res.stderr[res.stderr.index(f"tinytape {command[0]}: error: not started"):]
    assert "minutes instead of" in last or " s instead of " in last
    assert "fix: pip install -e ." in last
    assert f"TINYTAPE_BACKEND=numpy python -m tinytape {command[0]}" in last
    assert not out.exists()


def test_estimates_scale_the_c_time():
    c_seconds, quick_seconds = cli.LONG_RUNNING["demo"]
    args = argparse.Namespace(command="demo", quick=True)
    saved = _state._C
    try:
        _state._C = None
        with pytest.raises(cli.UsageError) as info:
            cli.check_backend(args)
        expected = cli._minutes(quick_seconds * cli.NUMPY_SLOWDOWN)
        assert f"about {expected} instead of {cli._minutes(quick_seconds)}" in str(info.value)
        # a short command and `lm sample` start on numpy without being asked
        cli.check_backend(argparse.Namespace(command="check"))
        cli.check_backend(argparse.Namespace(command="lm", lm_command="sample"))
    finally:
        _state._C = saved
    assert c_seconds > quick_seconds


def test_chosen_numpy_runs_and_check_says_so_first(checkout, tmp_path):
    res = _python(["-m", "tinytape", "check", "--quick", "--out", str(tmp_path / "c")],
                  checkout, TINYTAPE_BACKEND="numpy")
    assert res.returncode == 0, res.stdout + res.stderr
    first = res.stdout.splitlines()[0]
    assert first.startswith(f"tinytape {tinytape.__version__} at {checkout / 'tinytape'}")
    assert "backend numpy (the C extension is missing)" in first
    assert "RuntimeWarning" not in res.stderr  # chosen: no warning


def test_check_names_the_backend_in_its_first_line(tmp_path):
    """The package under test, as installed, run from another folder."""
    res = subprocess.run([sys.executable, "-m", "tinytape", "check", "--quick", "--out",
                          str(tmp_path / "c")], capture_output=True, text=True, cwd=tmp_path,
                         timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    first = res.stdout.splitlines()[0]
    assert f"backend {tinytape.backend.name()}" in first, first
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        assert "backend c (SIMD" in first, first


def test_output_into_a_closed_pipe_ends_quietly(tmp_path):
    """`python -m tinytape check | head -1`: no traceback when head closes the pipe."""
    res = subprocess.run(f'"{sys.executable}" -m tinytape check --quick --out "{tmp_path}" '
                         "| head -n 1", shell=True, capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert res.stdout.startswith(f"tinytape {tinytape.__version__} at "), res.stdout
    assert "Traceback" not in res.stderr and "BrokenPipeError" not in res.stderr, res.stderr
