"""Loss modules: CrossEntropyLoss, MSELoss, BCEWithLogitsLoss."""

from __future__ import annotations

from typing import Any

from ..tensor import Tensor
from . import functional
from .module import Module


class CrossEntropyLoss(Module):
    """Softmax cross-entropy on logits with classes on the LAST axis: (..., C) logits,
    (...) integer targets. ignore_index rows do not count; label_smoothing as PyTorch."""

    def __init__(self, ignore_index: int = -100, label_smoothing: float = 0.0,
                 reduction: str = "mean") -> None:
        super().__init__()
        self.ignore_index, self.label_smoothing, self.reduction = (
            ignore_index, label_smoothing, reduction)

    def forward(self, logits: Tensor, targets: Any) -> Tensor:
        return functional.cross_entropy(logits, targets, self.ignore_index,
                                        self.label_smoothing, self.reduction)

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}, label_smoothing={self.label_smoothing}"


class MSELoss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, x: Tensor, target: Any) -> Tensor:
        return functional.mse_loss(x, target, self.reduction)


class BCEWithLogitsLoss(Module):
    """Binary cross-entropy on logits, computed stably as softplus(x) - x * y."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, x: Tensor, target: Any) -> Tensor:
        return functional.binary_cross_entropy_with_logits(x, target, self.reduction)
