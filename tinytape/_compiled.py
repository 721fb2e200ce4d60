"""Which modules of the tape are compiled with Cython, and the switch back to their .py
sources.

setup.py compiles these plain Python files as they are (Cython's pure-Python mode) when
a C compiler is there; Python then imports the extension module in place of the .py file.
With TINYTAPE_PURE_PYTHON=1 in the environment when tinytape is imported, the .py
sources are imported instead (CI runs the tests both ways: .ci/plain.sh), and so they are,
with a warning, when one of them was edited after the build; tinytape imports this module
before any other for that.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import warnings
from importlib.abc import MetaPathFinder
from types import ModuleType

#: the modules setup.py compiles (TAPE_MODULES there): the tensor, the tape and its
#: backward loop, and the elementwise ops whose no_grad fast paths every backward runs
TAPE_MODULES = (
    "tinytape.tensor",
    "tinytape.autograd.function",
    "tinytape.autograd.engine",
    "tinytape.ops.arithmetic",
    "tinytape.ops.unary",
)


#: a source this much newer than its compiled module was edited after the build (installers
#: write a package's files within moments of each other, in any order)
STALE_AFTER_S = 2.0


class _SourceFirst(MetaPathFinder):
    """Finds each tape module's .py file ahead of its compiled extension module."""

    def find_spec(self, name: str, path, target: ModuleType | None = None):
        if name not in TAPE_MODULES or not path:
            return None
        stem = name.rpartition(".")[2]
        for entry in path:
            source = os.path.join(entry, stem + ".py")
            if os.path.isfile(source):
                return importlib.util.spec_from_file_location(name, source)
        return None


def _tape_files(package_dir: str) -> list[tuple[str, str | None]]:
    """(source, its compiled module or None) of each tape module under `package_dir`."""
    files = []
    for name in TAPE_MODULES:
        stem = os.path.join(package_dir, *name.split(".")[1:])
        built = [stem + s for s in importlib.machinery.EXTENSION_SUFFIXES]
        built = [b for b in built if os.path.isfile(b)]
        files.append((stem + ".py", built[0] if built else None))
    return files


def stale_sources(package_dir: str) -> list[str]:
    """Why the tape under `package_dir` cannot run compiled, as a list of its .py files:
    those edited after their module was built, or, when only some modules are built, those
    that are not. Empty when all are built and current, or none is built."""
    files = _tape_files(package_dir)
    unbuilt = [source for source, built in files if built is None]
    if len(unbuilt) not in (0, len(files)):
        return unbuilt
    return [
        source
        for source, built in files
        if built is not None
        and os.path.isfile(source)
        and os.path.getmtime(source) > os.path.getmtime(built) + STALE_AFTER_S
    ]


def use_sources_if_asked() -> None:
    """Import the whole tape from its .py files when TINYTAPE_PURE_PYTHON=1, or when one of
    them was edited after the build. All or none: the compiled modules cimport each other's
    extension types, so a compiled module cannot load beside a source one."""
    flag = os.environ.get("TINYTAPE_PURE_PYTHON", "").strip()
    if flag not in ("", "0", "1"):
        raise ValueError(f"TINYTAPE_PURE_PYTHON={flag!r}: expected 0 or 1")
    if any(isinstance(f, _SourceFirst) for f in sys.meta_path):
        return
    if flag != "1":
        stale = stale_sources(os.path.dirname(os.path.abspath(__file__)))
        if not stale:
            return
        warnings.warn(
            f"{', '.join(stale)}: changed after the tape was compiled, or not compiled "
            "with the rest of it: importing every tape module from its source (rebuild "
            "with pip install -e . or python setup.py build_ext --inplace)",
            RuntimeWarning,
            stacklevel=2,
        )
    sys.meta_path.insert(0, _SourceFirst())


def compiled_modules() -> list[str]:
    """The tape modules running as compiled extension modules (after import)."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    return [
        name
        for name in TAPE_MODULES
        if (getattr(sys.modules.get(name), "__file__", None) or "").endswith(suffixes)
    ]


use_sources_if_asked()
