"""Models built from tinytape.nn: a GPT-style language model and a sequence classifier."""

from .classifier import SequenceClassifier
from .gpt import GPT, GPTConfig

__all__ = ["GPT", "GPTConfig", "SequenceClassifier"]
