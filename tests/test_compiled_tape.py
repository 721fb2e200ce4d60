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


def _layout(tmp_path, source_age_s):
    """A package directory with tensor.py and a (dummy) compiled tensor module."""
    import importlib.machinery

    source = tmp_path / "tensor.py"
    built = tmp_path / ("tensor" + importlib.machinery.EXTENSION_SUFFIXES[0])
    source.write_text("x = 1\n")
    built.write_bytes(b"")
    os.utime(built, (1_000_000, 1_000_000))
    os.utime(source, (1_000_000 + source_age_s, 1_000_000 + source_age_s))
    return str(tmp_path), str(source)


def test_a_source_edited_after_the_build_is_imported_instead_with_a_warning(tmp_path):
    import pytest

    entry, source = _layout(tmp_path, source_age_s=60.0)
    finder = _compiled._SourceFirst(always=False)
    with pytest.warns(RuntimeWarning, match="changed after it was compiled"):
        spec = finder.find_spec("tinytape.tensor", [entry])
    assert spec.origin == source
    # the modules imported after it cimport its extension type: they follow it to source
    (tmp_path / "unary.py").write_text("x = 1\n")
    assert finder.find_spec("tinytape.ops.unary", [entry]).origin == str(tmp_path / "unary.py")


def test_an_up_to_date_build_and_other_modules_are_left_to_the_ordinary_import(tmp_path):
    entry, source = _layout(tmp_path, source_age_s=1.0)  # written moments apart: current
    finder = _compiled._SourceFirst(always=False)
    assert finder.find_spec("tinytape.tensor", [entry]) is None
    assert finder.find_spec("tinytape.ops.unary", [entry]) is None
    assert (
        _compiled._SourceFirst(always=True).find_spec("tinytape.tensor", [entry]).origin == source
    )


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
