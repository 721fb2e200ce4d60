"""The differentiable ops, one file per family, each op beside its registry record."""

from __future__ import annotations

from typing import Any

from .arithmetic import (
    add,
    div,
    eq,
    ge,
    gt,
    le,
    logical_and,
    logical_not,
    logical_or,
    lt,
    mul,
    ne,
    neg,
    pow,
    sub,
)
from .attention import self_attention
from .fused import cross_entropy, layer_norm, log_softmax, softmax
from .indexing import embedding, getitem
from .matmul import linear, matmul
from .reduction import logsumexp, max, mean, min, std, sum, sum_to_shape, var
from .registry import REGISTRY, OpInfo, Sample
from .selection import masked_fill, maximum, minimum, where
from .shape import (
    cat,
    clone,
    expand,
    flatten,
    permute,
    reshape,
    split,
    squeeze,
    stack,
    to,
    transpose,
    unsqueeze,
)
from .unary import abs, clamp, exp, gelu, log, relu, sigmoid, softplus, sqrt, tanh

__all__ = [
    "REGISTRY", "OpInfo", "Sample",
    "abs", "add", "cat", "clamp", "clone", "cross_entropy", "div", "embedding", "eq", "exp",
    "expand", "flatten", "ge", "gelu", "getitem", "gt", "layer_norm", "le", "linear", "log",
    "log_softmax", "logical_and", "logical_not", "logical_or", "logsumexp", "lt",
    "masked_fill", "matmul", "max", "maximum", "mean", "min", "minimum", "mul", "ne", "neg",
    "permute", "pow", "relu", "reshape", "self_attention", "sigmoid", "softmax", "softplus",
    "split", "sqrt", "squeeze", "stack", "std", "sub", "sum", "sum_to_shape", "tanh", "to",
    "transpose", "unsqueeze", "var", "where",
]


def _swap(fn):
    return lambda self, other: fn(other, self)


def tensor_methods() -> dict[str, Any]:
    """The operators and methods that Tensor gets from the ops: name -> function taking the
    tensor first (tools/tensor_stub.py writes them into tinytape/tensor.pyi for readers and
    type checkers)."""
    methods = {
        "__add__": add, "__radd__": _swap(add), "__sub__": sub, "__rsub__": _swap(sub),
        "__mul__": mul, "__rmul__": _swap(mul), "__truediv__": div,
        "__rtruediv__": _swap(div), "__pow__": pow, "__rpow__": _swap(pow),
        "__matmul__": matmul, "__rmatmul__": _swap(matmul), "__neg__": neg, "__abs__": abs,
        "__getitem__": getitem, "__eq__": eq, "__ne__": ne, "__lt__": lt, "__le__": le,
        "__gt__": gt, "__ge__": ge, "__invert__": logical_not, "__and__": logical_and,
        "__or__": logical_or,
        "view": lambda self, *shape: reshape(self, *shape),
        "expand_as": lambda self, other: expand(self, other.shape),
        "float": lambda self: to(self, "float32"), "double": lambda self: to(self, "float64"),
        "long": lambda self: to(self, "int64"), "bool": lambda self: to(self, "bool"),
        "contiguous": lambda self: self,
    }
    for name in ["exp", "log", "sqrt", "tanh", "sigmoid", "relu", "gelu", "softplus", "clamp",
                 "abs", "sum", "mean", "max", "min", "var", "std", "logsumexp", "reshape",
                 "flatten", "transpose", "permute", "expand", "squeeze", "unsqueeze", "split",
                 "to", "clone", "masked_fill", "softmax", "log_softmax", "matmul",
                 "sum_to_shape", "maximum", "minimum", "pow", "add", "sub", "mul", "div",
                 "neg", "eq", "ne", "lt", "le", "gt", "ge"]:
        methods[name] = globals()[name]
    return methods


def _bind_tensor_methods(Tensor: Any) -> None:
    """Give Tensor its operators and methods (defined here to keep tensor.py below ops)."""
    for name, fn in tensor_methods().items():
        setattr(Tensor, name, fn)
