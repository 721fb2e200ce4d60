"""Layers: Linear, Embedding, LayerNorm, Dropout and activations."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import ops as F
from ..creation import DEFAULT_FLOAT, as_generator
from ..tensor import Tensor
from . import functional, init
from .module import Module, Parameter


class Linear(Module):
    """y = x @ W.T + b with W of shape (out_features, in_features), as in PyTorch.
    Initialised like PyTorch: U(-1/sqrt(in), 1/sqrt(in)) for W and b."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 generator: Any = None, dtype: Any = DEFAULT_FLOAT) -> None:
        super().__init__()
        if in_features < 0 or out_features < 0:
            raise ValueError(f"Linear: sizes must be >= 0, got {in_features}, {out_features}")
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features) if in_features else 0.0
        self.weight = Parameter(np.zeros((out_features, in_features), dtype))
        init.uniform_(self.weight, -bound, bound, generator)
        if bias:
            self.bias = Parameter(np.zeros(out_features, dtype))
            init.uniform_(self.bias, -bound, bound, generator)
        else:
            self.bias = None

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1:] != (self.in_features,):
            raise ValueError(f"Linear({self.in_features}, {self.out_features}): input of shape "
                             f"{x.shape} does not end in {self.in_features}")
        return functional.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """Rows of a (num_embeddings, dim) table picked by integer ids. Initialised N(0, 1)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, generator: Any = None,
                 dtype: Any = DEFAULT_FLOAT) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = Parameter(np.zeros((num_embeddings, embedding_dim), dtype))
        init.normal_(self.weight, 0.0, 1.0, generator)

    def forward(self, ids: Any) -> Tensor:
        return F.embedding(self.weight, ids)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


class LayerNorm(Module):
    """Normalize over the last axis (size `dim`), then scale and shift (weight 1, bias 0)."""

    def __init__(self, dim: int, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, dtype: Any = DEFAULT_FLOAT) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = Parameter(np.ones(dim, dtype)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(dim, dtype)) if elementwise_affine and bias else None

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1:] != (self.dim,):
            raise ValueError(f"LayerNorm({self.dim}): input of shape {x.shape} does not end "
                             f"in {self.dim}")
        return F.layer_norm(x, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"


class Dropout(Module):
    """Zero elements with probability p while training (scaling the rest by 1/(1-p))."""

    def __init__(self, p: float = 0.5, generator: Any = None) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p, self.generator = p, as_generator(generator)

    def forward(self, x: Tensor) -> Tensor:
        return functional.dropout(x, self.p, self.training, self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ReLU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)


class GELU(Module):
    """GELU, tanh approximation (see tinytape.gelu)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x)


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class Softmax(Module):
    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, axis=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Identity(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x
