"""Which modules of the tape are compiled with Cython, and the switch back to their .py
sources.

setup.py compiles these plain Python files as they are (Cython's pure-Python mode) when
a C compiler is there; Python then imports the extension module in place of the .py file.
With TINYTAPE_PURE_PYTHON=1 in the environment when tinytape is imported, the .py
sources are imported instead (CI runs the tests both ways: .ci/plain.sh); tinytape
imports this module before any other for that.
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
    """Finds a tape module's .py file ahead of its compiled extension module: always (when
    TINYTAPE_PURE_PYTHON=1), or when the .py was edited after the build, so that an edit
    is never shadowed by an out-of-date compiled module (with a warning to rebuild); the
    tape modules imported after that one then come from their sources too."""

    def __init__(self, always: bool) -> None:
        self.always = always

    def find_spec(self, name: str, path, target: ModuleType | None = None):
        if name not in TAPE_MODULES or not path:
            return None
        stem = name.rpartition(".")[2]
        for entry in path:
            source = os.path.join(entry, stem + ".py")
            if not os.path.isfile(source):
                continue
            if not self.always:
                built = [
                    os.path.join(entry, stem + suffix)
                    for suffix in importlib.machinery.EXTENSION_SUFFIXES
                ]
                built = [b for b in built if os.path.isfile(b)]
                if (
                    not built
                    or os.path.getmtime(source) <= os.path.getmtime(built[0]) + STALE_AFTER_S
                ):
                    return None  # the ordinary import: the compiled module, or the source
                warnings.warn(
                    f"{source} changed after it was compiled: importing it instead "
                    f"of {os.path.basename(built[0])}, and the tape modules imported after "
                    "it from their sources too (rebuild with pip install -e . "
                    "or python setup.py build_ext --inplace)",
                    RuntimeWarning,
                    stacklevel=2,
                )
                # The compiled modules cimport the tensor's extension type and its C
                # functions (their .pxd files): one imported after a module that now runs
                # from its source could not load.
                self.always = True
            return importlib.util.spec_from_file_location(name, source)
        return None


def use_sources_if_asked() -> None:
    """Import the tape from its .py files when TINYTAPE_PURE_PYTHON=1, and a module from its
    .py file when that was edited after the build."""
    flag = os.environ.get("TINYTAPE_PURE_PYTHON", "").strip()
    if flag not in ("", "0", "1"):
        raise ValueError(f"TINYTAPE_PURE_PYTHON={flag!r}: expected 0 or 1")
    if not any(isinstance(f, _SourceFirst) for f in sys.meta_path):
        sys.meta_path.insert(0, _SourceFirst(always=flag == "1"))


def compiled_modules() -> list[str]:
    """The tape modules running as compiled extension modules (after import)."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    return [
        name
        for name in TAPE_MODULES
        if (getattr(sys.modules.get(name), "__file__", None) or "").endswith(suffixes)
    ]


use_sources_if_asked()
