"""The tiny GPT training run that the stress scripts share: a seeded Trainer with AdamW,
a warm-up/cosine schedule, clipping, dropout (so generator states matter on resume) and
checkpoints, on a fixed synthetic token stream (no data files needed)."""

from __future__ import annotations

import os

import numpy as np

from tinytape.models import GPT, GPTConfig
from tinytape.optim import AdamW, WarmupCosineLR, param_groups_for_weight_decay
from tinytape.train import Trainer

CONFIG = GPTConfig(vocab_size=48, context_length=24, d_model=32, n_layers=2, n_heads=2, dropout=0.1)
BATCH = 8


def stream(seed: int = 0, length: int = 20_000) -> np.ndarray:
    """Tokens with some structure to learn: a noisy walk over the vocabulary."""
    rng = np.random.default_rng(seed)
    steps = rng.choice([1, 1, 2, -1, 5], length)
    return np.cumsum(steps) % CONFIG.vocab_size


def make_trainer(
    steps: int,
    seed: int = 0,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 0,
) -> Trainer:
    ids = stream(seed)
    n = len(ids) - CONFIG.context_length - 1
    offsets = np.arange(CONFIG.context_length)

    def sample(rng: np.random.Generator, batch_size: int):
        starts = rng.integers(0, n + 1, batch_size)[:, None] + offsets
        return ids[starts], ids[starts + 1]

    model = GPT(CONFIG, generator=seed)
    opt = AdamW(
        param_groups_for_weight_decay(model.named_parameters(), 0.1), lr=3e-3, betas=(0.9, 0.95)
    )
    sched = WarmupCosineLR(opt, warmup_steps=min(50, steps - 1), total_steps=steps, min_lr=3e-4)
    return Trainer(
        model,
        opt,
        sample,
        steps=steps,
        batch_size=BATCH,
        seed=seed,
        scheduler=sched,
        clip_grad_norm=1.0,
        loss_fn=lambda batch, rng: model(batch[0], batch[1])[1],
        checkpoint_path=checkpoint,
        checkpoint_every=checkpoint_every,
        progress=False,
        log_every=50,
        name="tiny-gpt",
    )
