"""Which implementation the kernels use: the C extension or the numpy references.

C when the extension is built, numpy otherwise (with a warning that says which copy of
tinytape was imported, why the extension is missing and the command that builds it);
``TINYTAPE_BACKEND=numpy`` chooses numpy, ``TINYTAPE_BACKEND=c`` refuses to start without
C. ``use("numpy")`` switches for a block of code (tests compare the two).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from ._memory import tune_malloc

# OpenMP threads of the kernels sleep between parallel regions instead of spinning, unless
# the user chose otherwise. libgomp reads this when it loads, i.e. when _C loads. On a busy
# 2-core machine a spinning worker time-shares a core with the thread that must run next:
# a GPT training step at 2 threads took 200-310 ms spinning, 49-51 ms sleeping (one other
# process running); on an idle machine 38.1 vs 39.4 ms.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
tune_malloc()

_C: ModuleType | None
try:
    from tinytape import _C
except ImportError as exc:  # a source checkout that was never built, or a broken build
    _C = None
    _import_error: str = str(exc)
else:
    _import_error = ""

#: what the user asked for: "" (C when built), "c" or "numpy" (TINYTAPE_BACKEND)
requested = os.environ.get("TINYTAPE_BACKEND", "").strip().lower()
if requested not in ("", "c", "numpy"):
    raise ValueError(f"TINYTAPE_BACKEND={requested!r}: expected 'c' or 'numpy'")


def package_dir() -> Path:
    """The folder of the tinytape package that was imported."""
    return Path(__file__).resolve().parent.parent


def _built_extensions(folder: Path) -> list[str]:
    """Names of the compiled _C files in a tinytape folder (not _C.pyx or _C.c)."""
    return sorted(p.name for p in folder.glob("_C.*") if p.suffix in (".so", ".pyd"))


def _shadowed_builds() -> list[Path]:
    """Other copies of tinytape on sys.path that hold a compiled _C: a `pip install .`
    into site-packages is hidden by the source tree when Python starts in the checkout."""
    here, found = package_dir(), []
    for entry in sys.path:
        candidate = Path(entry or ".").resolve() / "tinytape"
        if candidate != here and _built_extensions(candidate):
            found.append(candidate)
    return found


def _is_checkout(root: Path) -> bool:
    return (root / "setup.py").is_file() and (root / "csrc").is_dir()


def missing_reason() -> str:
    """Why the C extension did not import ("" when it did)."""
    if _C is not None:
        return ""
    here = package_dir()
    built = _built_extensions(here)
    if built:
        return f"{', '.join(built)} is there but does not load ({_import_error})"
    if _is_checkout(here.parent):
        return "this source tree was never built in place, so it has no compiled _C"
    return f"this installation has no compiled _C ({_import_error})"


def fix_command() -> str:
    """The one command that builds the extension for the copy of tinytape imported."""
    root = package_dir().parent
    if _is_checkout(root):
        target = "." if Path.cwd().resolve() == root else f'"{root}"'
        return f"pip install -e {target}   (builds the extension in place)"
    return "pip install --force-reinstall --no-cache-dir tinytape   (with a C compiler)"


def missing_extension_message() -> str:
    """Why the C extension is missing, which copy of tinytape was imported, and the one
    command that fixes it ("" when the extension is there)."""
    if _C is not None:
        return ""
    here = package_dir()
    root = here.parent
    lines = ["tinytape's C extension is missing: the kernels are the slow numpy references.",
             f"  imported: {here}",
             f"  why: {missing_reason()}"]
    shadowed = _shadowed_builds()
    if shadowed and _is_checkout(root):
        lines.append(f"  a built copy at {shadowed[0]} is hidden: Python puts the current "
                     "folder (this checkout) first on sys.path")
    lines.append(f"  fix: {fix_command()}")
    if requested != "numpy":
        lines.append("  TINYTAPE_BACKEND=numpy chooses the numpy kernels and silences this")
    return "\n".join(lines)


if requested == "c" and _C is None:
    raise ImportError("TINYTAPE_BACKEND=c, but " + missing_extension_message())
if requested == "" and _C is None:
    warnings.warn(missing_extension_message(), RuntimeWarning, stacklevel=2)

native: ModuleType | None = None if requested == "numpy" else _C


def name() -> str:
    """'c' or 'numpy': the implementation in use."""
    return "c" if native is not None else "numpy"


def available() -> list[str]:
    return ["c", "numpy"] if _C is not None else ["numpy"]


@contextmanager
def use(backend: str) -> Iterator[None]:
    """Run a block with the kernels of `backend` ('c' or 'numpy')."""
    global native
    if backend not in ("c", "numpy"):
        raise ValueError(f"unknown backend {backend!r}: expected 'c' or 'numpy'")
    if backend == "c" and _C is None:
        raise RuntimeError(f"the C extension is not available: {_import_error}")
    saved = native
    native = _C if backend == "c" else None
    try:
        yield
    finally:
        native = saved
