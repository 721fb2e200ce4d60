"""Pretraining on web text, then step 1: supervised fine-tuning on demonstrations.

Pretraining is next-token prediction on every token. Supervised fine-tuning uses the same
loss on the response tokens only: the targets of the prompt and separator positions are
`ignore_index`, so the model learns to answer, not to write prompts.

Both run on the shared Trainer (tinytape/train/trainer.py). The shared LM pretraining
(tinytape/train/lm.py) trains on streams of text documents with a tokenizer; this task's
"web text" is synthetic token sequences, so the same loop is fed them directly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..models import GPT
from ..optim import make_optimizer, make_schedule
from ..tensor import Tensor
from ..train.trainer import Trainer
from .task import Task

IGNORE = -100


def lm_targets(seqs: np.ndarray, task: Task, response_only: bool) -> tuple[np.ndarray,
                                                                              np.ndarray]:
    """Inputs seqs[:, :-1] and next-token targets seqs[:, 1:]; with response_only, targets
    before the first response token (prompt symbols and SEP) are IGNORE. Sequences end with
    the closing SEP, so the last response token is an input too (the reward model reads its
    hidden state)."""
    inputs, targets = seqs[:, :-1], seqs[:, 1:].copy()
    if response_only:
        targets[:, :task.P] = IGNORE
    return inputs, targets


def train_sequences(model: GPT, seqs: np.ndarray, task: Task, steps: int, batch_size: int,
                    lr: float, rng: np.random.Generator, response_only: bool,
                    log: Callable[[str], None] | None = None) -> list[float]:
    """AdamW on next-token cross-entropy over shuffled epochs of `seqs` (the shared Trainer,
    with a warm-up + cosine schedule and gradient clipping); returns the loss of every step."""
    opt = make_optimizer(list(model.parameters()), "adamw", lr=lr)
    sched = make_schedule(opt, steps, warmup=0.1, min_lr_ratio=0.1)
    losses: list[float] = []

    def loss_fn(batch: tuple[np.ndarray], _rng: np.random.Generator) -> Tensor:
        inputs, targets = lm_targets(batch[0], task, response_only)
        _, loss = model(inputs, targets, ignore_index=IGNORE)
        losses.append(float(loss.item()))
        if log and len(losses) % max(1, steps // 4) == 0:
            log(f"  step {len(losses):4d}/{steps}  loss {np.mean(losses[-20:]):.3f}")
        return loss

    Trainer(model, opt, (seqs,), steps=steps, loss_fn=loss_fn, batch_size=batch_size,
            seed=int(rng.integers(2 ** 31)), scheduler=sched, clip_grad_norm=1.0,
            progress=False, name="sft" if response_only else "pretrain").fit()
    model.eval()
    return losses


def pretrain(model: GPT, task: Task, steps: int, batch_size: int, lr: float,
             rng: np.random.Generator, log: Callable[[str], None] | None = None) -> list[float]:
    """Next-token prediction on freshly drawn web text (every token counts)."""
    corpus = task.web_text(max(steps * batch_size // 4, batch_size), rng)
    return train_sequences(model, corpus, task, steps, batch_size, lr, rng, False, log)


def supervised_finetune(model: GPT, task: Task, prompts: np.ndarray, demos_per_prompt: int,
                        steps: int, batch_size: int, lr: float, rng: np.random.Generator,
                        log: Callable[[str], None] | None = None) -> list[float]:
    """Step 1: the loss on demonstration response tokens only."""
    reps = np.repeat(prompts, demos_per_prompt, axis=0)
    seqs = task.join(reps, task.demonstrations(reps, rng), end=True)
    return train_sequences(model, seqs, task, steps, batch_size, lr, rng, True, log)
