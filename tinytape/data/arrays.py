"""Labelled arrays in memory: seeded stratified splits, k labelled examples per class, and a
loader for a user's own data (a numpy .npy/.npz file or a CSV file).

Everything here is plain numpy: features are float32 rows, labels int64 class ids 0..C-1.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Split:
    """Features x (N, D) float32 and labels y (N,) int64."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Splits:
    """Fixed train / validation / test splits of one labelled data set.

    The unlabelled pool of the experiments is `train.x` without its labels; labelled subsets
    are drawn from `train` with `labelled(per_class, seed)`.
    """

    train: Split
    val: Split
    test: Split
    num_classes: int
    name: str = "data"

    @property
    def unlabelled(self) -> np.ndarray:
        """The training images without their labels (the pool for unsupervised pretraining)."""
        return self.train.x

    def labelled(self, per_class: int | None, seed: int) -> Split:
        """`per_class` labelled training examples of every class (None: all of them)."""
        if per_class is None:
            return self.train
        idx = take_per_class(self.train.y, per_class, seed)
        return Split(self.train.x[idx], self.train.y[idx])

    def describe(self) -> str:
        """One line: the name, the split sizes, the features and the classes."""
        return (f"{self.name}: {len(self.train)} train / {len(self.val)} validation / "
                f"{len(self.test)} test, {self.train.x.shape[1]} features, "
                f"{self.num_classes} classes")


def stratified_split(x: np.ndarray, y: np.ndarray, val_fraction: float, test_fraction: float,
                     seed: int = 0, name: str = "data") -> Splits:
    """Split (x, y) into train / validation / test with every class in the same proportions,
    reproducibly from `seed`. Each class keeps at least one training example."""
    x, y = _check_xy(x, y)
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"split fractions must be in [0, 1) and sum to less than 1, got "
                         f"val={val_fraction}, test={test_fraction}")
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(len(idx) * test_fraction))
        n_val = int(round(len(idx) * val_fraction))
        n_test = min(n_test, max(len(idx) - 1, 0))
        n_val = min(n_val, max(len(idx) - 1 - n_test, 0))
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test:n_test + n_val])
        parts["train"].append(idx[n_test + n_val:])
    out = {}
    for key, chunks in parts.items():
        idx = rng.permutation(np.concatenate(chunks)) if chunks else np.zeros(0, np.int64)
        out[key] = Split(x[idx], y[idx])
    return Splits(out["train"], out["val"], out["test"], int(y.max()) + 1, name)


def take_per_class(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices of `per_class` examples of every class of `y`, drawn with `seed` (sorted).
    Raises ValueError if a class has fewer examples than asked for."""
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) < per_class:
            raise ValueError(f"class {c} has only {len(idx)} training examples, fewer than the "
                             f"{per_class} per class asked for")
        chosen.append(rng.choice(idx, per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def load_arrays(path: str | os.PathLike, label_column: int | str = -1
                ) -> tuple[np.ndarray, np.ndarray]:
    """Load a labelled data set from a file: (x float32 (N, D), y int64 (N,)).

    - `.npz`: arrays named `x` and `y` (or `X`/`labels`); - `.npy`: one 2-D array whose
      `label_column` holds the labels; - `.csv`: numbers with an optional header row and the
      labels in `label_column` (an index, or a column name when there is a header).
    Labels may be any values (strings too in a CSV); they become class ids 0..C-1 in sorted
    order. The values are kept as they are: scale after splitting, from the training split
    only (`minmax_from_train`).
    """
    p = os.fspath(path)
    ext = os.path.splitext(p)[1].lower()
    if ext == ".npz":
        with np.load(p, allow_pickle=False) as f:
            xk = next((k for k in ("x", "X", "data", "features") if k in f), None)
            yk = next((k for k in ("y", "labels", "target", "targets") if k in f), None)
            if xk is None or yk is None:
                raise ValueError(f"{p}: an .npz needs arrays 'x' and 'y', found {list(f.keys())}")
            x, labels = f[xk], f[yk]
    elif ext == ".npy":
        arr = np.load(p, allow_pickle=False)
        if arr.ndim != 2 or arr.shape[1] < 2:
            raise ValueError(f"{p}: an .npy must be a 2-D array with the labels in one column, "
                             f"got shape {arr.shape}")
        if not isinstance(label_column, int):
            raise ValueError("an .npy has no column names: give label_column as an index")
        col = label_column % arr.shape[1]
        labels = arr[:, col]
        x = np.delete(arr, col, axis=1)
    elif ext in (".csv", ".tsv", ".txt"):
        x, labels = _read_csv(p, label_column, "\t" if ext == ".tsv" else ",")
    else:
        raise ValueError(f"{p}: unknown file type {ext!r} (use .npz, .npy or .csv)")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim > 2:
        x = x.reshape(len(x), -1)
    classes, y = np.unique(np.asarray(labels), return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"{p}: the labels hold only {len(classes)} class")
    return _check_xy(x, y.astype(np.int64))


def minmax_from_train(splits: Splits) -> Splits:
    """The splits with every feature mapped by (x - min) / (max - min), min and max taken
    over the training split only (so validation and test values may fall outside [0, 1]);
    a feature constant on the training split is only shifted."""
    lo, hi = splits.train.x.min(axis=0), splits.train.x.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)

    def scale(part: Split) -> Split:
        return Split(np.ascontiguousarray((part.x - lo) / span, dtype=np.float32), part.y)

    return Splits(scale(splits.train), scale(splits.val), scale(splits.test),
                  splits.num_classes, splits.name)


def _read_csv(path: str, label_column: int | str, delimiter: str
              ) -> tuple[np.ndarray, np.ndarray]:
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f, delimiter=delimiter) if r and any(c.strip() for c in r)]
    if not rows:
        raise ValueError(f"{path}: empty file")
    header = None
    if _is_header(rows[0], label_column):
        header, rows = rows[0], rows[1:]
    if not rows:
        raise ValueError(f"{path}: no data rows")
    col = _col(label_column, rows[0] if rows else [], header)
    width = len(header or rows[0])
    feats, labels = [], []
    for n, r in enumerate(rows, start=2 if header else 1):
        if len(r) != width:
            raise ValueError(f"{path}: line {n} has {len(r)} fields, expected {width}")
        try:
            feats.append([float(c) for i, c in enumerate(r) if i != col])
        except ValueError as e:
            raise ValueError(f"{path}: line {n}: {e}") from None
        lab = r[col].strip()
        try:
            labels.append(float(lab))
        except ValueError:
            labels.append(lab)
    kinds = {type(v) for v in labels}
    lab_arr = np.array([str(v) for v in labels]) if str in kinds else np.array(labels)
    return np.array(feats), lab_arr


def _is_header(row: list[str], label_column: int | str) -> bool:
    """Whether the first row of a CSV is a header: a column named by name needs one; else
    it is one when a feature cell is not a number."""
    if isinstance(label_column, str) and not label_column.lstrip("-").isdigit():
        return True
    col = int(label_column) % len(row)
    for i, c in enumerate(row):
        if i != col:
            try:
                float(c)
            except ValueError:
                return True
    return False


def _col(label_column: int | str, row: list[str], header: list[str] | None) -> int:
    if isinstance(label_column, str):
        if header is None:
            if label_column.lstrip("-").isdigit():
                return int(label_column) % len(row)
            raise ValueError(f"label column {label_column!r} named, but the file has no header")
        if label_column not in header:
            if label_column.lstrip("-").isdigit():
                return int(label_column) % len(header)
            raise ValueError(f"no column {label_column!r} in the header {header}")
        return header.index(label_column)
    return label_column % len(row)


def _check_xy(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.asarray(y)
    if x.ndim != 2:
        raise ValueError(f"features must be 2-D (N, D), got shape {x.shape}")
    if y.shape != (len(x),):
        raise ValueError(f"labels must have shape ({len(x)},), got {y.shape}")
    if y.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers, got {y.dtype}")
    if len(y) and y.min() < 0:
        raise ValueError("labels must be >= 0")
    if not np.isfinite(x).all():
        raise ValueError("features hold NaN or infinite values")
    return x, y.astype(np.int64)
