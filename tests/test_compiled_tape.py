"""The tape's compiled build (Cython, from the same .py files) and the switch back to the
plain-Python sources (TINYTAPE_PURE_PYTHON=1, as .ci/plain.sh runs the suite)."""

import os
import subprocess
import sys

from tinytape import _compiled
from tinytape.backend import _state

PROBE = (
    "import sys, tinytape, tinytape._compiled as c; "
    "print(c.compiled_modules()); "
    "print([sys.modules[m].__file__.rsplit('.', 1)[-1] for m in c.TAPE_MODULES]); "
    "print(tinytape.config()['tape'])"
)


def _probe(**env):
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_pure_python_switch_imports_every_tape_module_from_its_source():
    compiled, suffixes, tape = _probe(TINYTAPE_PURE_PYTHON="1")
    assert compiled == "[]"
    assert suffixes == str(["py"] * len(_compiled.TAPE_MODULES))
    assert tape == "Python"


def test_a_built_extension_comes_with_the_compiled_tape():
    # setup.py builds the tape with the kernels (unless told not to): a checkout whose _C
    # is built but whose tape is not was built by an older setup.py, or the switch leaks.
    if os.environ.get("TINYTAPE_PURE_PYTHON") == "1":  # this process runs the sources
        assert _compiled.compiled_modules() == []
        return
    if _state._C is None or os.environ.get("TINYTAPE_COMPILE_TAPE") == "0":
        return  # nothing was compiled
    compiled, suffixes, tape = _probe(TINYTAPE_PURE_PYTHON="0")
    assert compiled == str(list(_compiled.TAPE_MODULES))
    assert "py" not in suffixes
    assert tape.endswith("compiled (Cython)")


def test_a_bad_switch_value_is_an_error_naming_it():
    out = subprocess.run(
        [sys.executable, "-c", "import tinytape"],
        env={**os.environ, "TINYTAPE_PURE_PYTHON": "yes"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode != 0 and "TINYTAPE_PURE_PYTHON='yes'" in out.stderr


def _package_copy(tmp_path):
    """A copy of the installed package (sources and built modules, times kept)."""
    import shutil

    import tinytape

    copy = tmp_path / "tinytape"
    shutil.copytree(os.path.dirname(tinytape.__file__), copy, ignore=shutil.ignore_patterns(
        "__pycache__", "*.c"))
    return copy


def _built_layout(tmp_path):
    """Every tape module's source and (dummy) compiled module, written moments apart."""
    import importlib.machinery

    for name in _compiled.TAPE_MODULES:
        stem = tmp_path.joinpath(*name.split(".")[1:])
        stem.parent.mkdir(parents=True, exist_ok=True)
        built = stem.parent / (stem.name + importlib.machinery.EXTENSION_SUFFIXES[0])
        stem.with_suffix(".py").write_text("x = 1\n")
        built.write_bytes(b"")
        os.utime(built, (1_000_000, 1_000_000))
        os.utime(stem.with_suffix(".py"), (1_000_001, 1_000_001))


def test_stale_sources_names_the_files_edited_after_the_build(tmp_path):
    _built_layout(tmp_path)
    assert _compiled.stale_sources(str(tmp_path)) == []  # written moments apart: current
    os.utime(tmp_path / "autograd/function.py", (1_000_060, 1_000_060))  # edited later
    assert _compiled.stale_sources(str(tmp_path)) == [str(tmp_path / "autograd/function.py")]


def test_stale_sources_names_the_modules_a_partial_build_left_out(tmp_path):
    import importlib.machinery

    _built_layout(tmp_path)
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    for built in (tmp_path / "ops").glob("*" + suffix):
        built.unlink()
    assert _compiled.stale_sources(str(tmp_path)) == [
        str(tmp_path / "ops/arithmetic.py"),
        str(tmp_path / "ops/unary.py"),
    ]
    for built in tmp_path.rglob("*" + suffix):
        built.unlink()
    assert _compiled.stale_sources(str(tmp_path)) == []  # nothing built: plain Python


def test_one_source_edited_after_the_build_brings_the_whole_tape_from_source(tmp_path):
    """The compiled modules cimport each other's types: a compiled engine beside a function
    module run from its source would not load ("Function size changed"). One edited file
    must bring every tape module from its source, with a warning naming the file."""
    if _state._C is None or not _compiled.compiled_modules():
        return  # nothing compiled: every module already runs from its source
    copy = _package_copy(tmp_path)
    edited = copy / "autograd" / "function.py"
    later = max(p.stat().st_mtime for p in edited.parent.iterdir()) + 60
    os.utime(edited, (later, later))
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**os.environ, "PYTHONPATH": str(tmp_path), "TINYTAPE_PURE_PYTHON": "0"},
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    compiled, suffixes, tape = out.stdout.splitlines()
    assert compiled == "[]" and suffixes == str(["py"] * len(_compiled.TAPE_MODULES))
    assert "function.py: changed after the tape was compiled" in out.stderr


def test_the_compiled_tape_keeps_tensor_slots_and_ctx_state_in_extension_types():
    from tinytape.autograd.function import Function
    from tinytape.tensor import Tensor, TensorBase

    heap = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class made by a class statement
    compiled = _compiled.compiled_modules()
    assert bool(TensorBase.__flags__ & heap) is ("tinytape.tensor" not in compiled)
    assert bool(Function.__flags__ & heap) is ("tinytape.autograd.function" not in compiled)
    assert Tensor.__flags__ & heap  # the ops' methods are bound onto it at import


def test_a_new_ctx_starts_from_the_same_state_compiled_and_plain():
    # compiled: the C fields' initial values (function.pxd); plain: the class attributes
    from tinytape.autograd.function import _CTX_DEFAULTS
    from tinytape.ops.arithmetic import Mul

    ctx = Mul.__new__(Mul)
    assert {name: getattr(ctx, name) for name in _CTX_DEFAULTS} == _CTX_DEFAULTS
    assert repr(ctx) == "<Mul seq=->"
