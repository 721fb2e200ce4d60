"""scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes), no download.

Needs the optional `data` extra (`pip install 'tinytape[data]'`, i.e. scikit-learn): the
images ship inside scikit-learn's wheel, so nothing is fetched at run time. The bundled file
is read directly (the same file `sklearn.datasets.load_digits` reads), which spares the
seconds that importing scikit-learn takes; its loader is the fallback.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np

from .arrays import Splits, stratified_split

INSTALL_HINT = ("the digits data set needs scikit-learn: pip install 'tinytape[data]' "
                "(or pip install scikit-learn)")


class MissingDependency(ImportError):
    """An optional dependency is not installed; the message says how to install it."""


def _find_sklearn() -> str | None:
    """The folder of the installed scikit-learn package (not imported), or None."""
    try:
        spec = importlib.util.find_spec("sklearn")
    except (ImportError, ValueError):
        return None
    return os.path.dirname(spec.origin) if spec is not None and spec.origin else None


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 digits as (x float32 (1797, 64) with pixels scaled to [0, 1], y int64)."""
    root = _find_sklearn()
    if root is None:
        raise MissingDependency(INSTALL_HINT)
    data = None
    path = os.path.join(root, "datasets", "data", "digits.csv.gz")
    if os.path.isfile(path):
        try:
            data = np.loadtxt(path, delimiter=",")
        except (OSError, ValueError):
            data = None
    if data is None or data.shape != (1797, 65):
        try:
            from sklearn.datasets import load_digits as _load
        except ImportError:
            raise MissingDependency(INSTALL_HINT) from None
        bunch = _load()
        data = np.column_stack([bunch.data, bunch.target])
    x = np.ascontiguousarray(data[:, :64], dtype=np.float32) / 16.0  # pixels are 0..16
    return x, data[:, 64].astype(np.int64)


def digits_splits(seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.3
                  ) -> Splits:
    """Fixed, stratified train / validation / test splits of the digits (by default 55% /
    15% / 30%: 989 / 269 / 539 images). The same `seed` always gives the same splits."""
    x, y = load_digits()
    return stratified_split(x, y, val_fraction, test_fraction, seed, name="digits")
