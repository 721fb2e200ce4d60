"""Kernels with two implementations: the C extension and numpy references.

Each kernel module holds its argument checks, its numpy reference and the call
into the C extension, so both paths validate alike and tests compare them.
"""

from ._state import available, name, use
from .adam import adam_step, adam_step_reference
from .attention import (
    attention,
    attention_backward,
    attention_backward_reference,
    attention_reference,
)
from .cross_entropy import cross_entropy, cross_entropy_backward
from .elementwise import (
    add,
    div,
    mul,
    relu,
    relu_backward,
    relu_with_mask,
    sigmoid,
    sigmoid_backward,
    sub,
    tanh_backward,
)
from .gelu import gelu, gelu_backward, gelu_reference
from .gemm import gemm, gemm_batched, matmul
from .layer_norm import layer_norm, layer_norm_backward
from .sgd import sgd_step, sgd_step_reference
from .softmax import log_softmax, log_softmax_backward, softmax, softmax_backward

__all__ = [
    "add",
    "adam_step",
    "adam_step_reference",
    "attention",
    "attention_backward",
    "attention_backward_reference",
    "attention_reference",
    "available",
    "cross_entropy",
    "cross_entropy_backward",
    "div",
    "gelu",
    "gelu_backward",
    "gelu_reference",
    "gemm",
    "gemm_batched",
    "layer_norm",
    "layer_norm_backward",
    "log_softmax",
    "log_softmax_backward",
    "matmul",
    "mul",
    "name",
    "relu",
    "relu_backward",
    "relu_with_mask",
    "sigmoid",
    "sigmoid_backward",
    "sgd_step",
    "sgd_step_reference",
    "softmax",
    "softmax_backward",
    "sub",
    "tanh_backward",
    "use",
]
