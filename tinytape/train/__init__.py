"""tinytape.train: the shared Trainer and the trainers built on it.

- `Trainer` (trainer.py): seeded batches, progress, metrics.jsonl, validation, checkpoints
  with resume; `Progress`, `MetricsLogger` and `BatchIterator` can be used on their own.
- layer-wise pretraining (layerwise.py): greedy supervised or (denoising) autoencoder
  pretraining of a stack of layers, one frozen layer at a time, then fine-tuning (the
  experiment is tinytape.experiments.layerwise).
"""

from .layerwise import (
    MLP,
    build_mlp,
    classifier_accuracy,
    finetune_mlp,
    pretrain_autoencoder,
    pretrain_layerwise,
    pretrain_supervised,
    replace_head,
)
from .trainer import (
    BatchIterator,
    MetricsLogger,
    Progress,
    Trainer,
    TrainResult,
    progress_mode,
    read_metrics,
)

__all__ = ["Trainer", "TrainResult", "Progress", "MetricsLogger", "BatchIterator",
           "progress_mode", "read_metrics", "MLP", "build_mlp", "replace_head",
           "pretrain_layerwise", "pretrain_autoencoder", "pretrain_supervised",
           "finetune_mlp", "classifier_accuracy"]
