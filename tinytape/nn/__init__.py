"""tinytape.nn: modules, layers, attention, positional encodings, Transformer blocks, losses."""

from . import functional, init, parallel
from .attention import MultiHeadAttention
from .layers import (
                     GELU,
                     Dropout,
                     Embedding,
                     Identity,
                     LayerNorm,
                     Linear,
                     ReLU,
                     Sigmoid,
                     Softmax,
                     Tanh,
)
from .losses import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from .module import Module, ModuleList, Parameter, Sequential, evaluating
from .positional import (
                     ALiBi,
                     LearnedPositionalEmbedding,
                     RelativePositionBias,
                     RotaryEmbedding,
                     SinusoidalPositionalEncoding,
)
from .transformer import FeedForward, TransformerBlock

__all__ = [
    "functional", "init", "parallel", "Module", "Parameter", "Sequential", "ModuleList",
    "Linear", "Embedding", "LayerNorm", "Dropout", "Identity", "ReLU", "GELU", "Sigmoid", "Tanh",
    "Softmax", "CrossEntropyLoss", "MSELoss", "BCEWithLogitsLoss", "MultiHeadAttention",
    "SinusoidalPositionalEncoding", "LearnedPositionalEmbedding", "RotaryEmbedding", "ALiBi",
    "RelativePositionBias", "FeedForward", "TransformerBlock", "evaluating",
]
