"""tinytape.data: data sets that ship inside installable packages, and a user's own arrays.

    from tinytape.data import digits_splits, load_arrays, stratified_split
    splits = digits_splits()                # fixed seeded train / validation / test
    few = splits.labelled(10, seed=0)       # 10 labelled training images per class
    pool = splits.unlabelled                # the training images without labels
"""

from .arrays import (
    Split,
    Splits,
    load_arrays,
    minmax_from_train,
    stratified_split,
    take_per_class,
)
from .digits import INSTALL_HINT, MissingDependency, digits_splits, load_digits

__all__ = ["Split", "Splits", "load_arrays", "minmax_from_train", "stratified_split",
           "take_per_class",
           "digits_splits", "load_digits", "MissingDependency", "INSTALL_HINT"]
