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
from importlib.abc import MetaPathFinder
from types import ModuleType

#: the modules setup.py compiles (TAPE_MODULES there)
TAPE_MODULES = ("tinytape.tensor", "tinytape.autograd.function", "tinytape.autograd.engine")


class _SourceFirst(MetaPathFinder):
    """Finds the tape modules' .py files ahead of their compiled extension modules."""

    def find_spec(self, name: str, path, target: ModuleType | None = None):
        if name not in TAPE_MODULES or not path:
            return None
        leaf = name.rpartition(".")[2] + ".py"
        for entry in path:
            source = os.path.join(entry, leaf)
            if os.path.isfile(source):
                return importlib.util.spec_from_file_location(name, source)
        return None


def use_sources_if_asked() -> None:
    """Import the tape from its .py files when TINYTAPE_PURE_PYTHON=1."""
    flag = os.environ.get("TINYTAPE_PURE_PYTHON", "").strip()
    if flag not in ("", "0", "1"):
        raise ValueError(f"TINYTAPE_PURE_PYTHON={flag!r}: expected 0 or 1")
    if flag == "1" and not any(isinstance(f, _SourceFirst) for f in sys.meta_path):
        sys.meta_path.insert(0, _SourceFirst())


def compiled_modules() -> list[str]:
    """The tape modules running as compiled extension modules (after import)."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    return [name for name in TAPE_MODULES
            if (getattr(sys.modules.get(name), "__file__", None) or "").endswith(suffixes)]


use_sources_if_asked()
