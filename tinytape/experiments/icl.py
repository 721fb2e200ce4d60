"""In-context learning without any gradient update (issues #6 and #15).

Four pieces, usable on their own:

* `PairTask`: a seeded generator of (key, label) sequences. Every sequence draws a fresh
  random key -> label mapping, so a label can only be known by reading an earlier pair with
  the same key *in the context*. "Bursty" sequences use only a few distinct keys (each
  repeats); the non-bursty control (by default) uses `n_pairs` different keys, so no key
  recurs. Tokens: ``[TASK, k1, l1, k2, l2, ..., k16, l16]``; the loss is on labels only.
* The harness: `build_prompt` (task description + k demonstrations + query),
  `score_candidates` (log-likelihood of each candidate continuation) and `frozen` (eval
  mode, `no_grad`, and a bit-for-bit check that no parameter or buffer changed).
* The copy task over seeds: `run_copy_seed` trains a small GPT on bursty sequences and
  reports when (whether) it leaves the plateau within the budget, the few-shot table on
  held-out mappings and probes with unseen keys and with more distinct keys.
* The experiment: `run_icl` runs Chan et al.'s in-context / in-weights trade-off
  (tinytape.experiments.icl_classes) for every (Zipf exponent, p_bursty) condition and
  seed, and the copy task for its seeds, in worker processes; it summarizes over seeds
  (paired intervals), checks the targets and writes results.json in the shared schema
  (tinytape.experiments.protocol).

See docs/icl.md for the design decisions and the measured results.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .. import distributed as dist
from ..config import get_num_threads, set_num_threads
from ..models import GPT, GPTConfig
from ..nn.module import Module, evaluating
from ..numeric import log_softmax
from ..optim import make_optimizer, make_schedule
from ..train.trainer import MetricsLogger, Progress, Trainer, TrainResult
from .icl_classes import EVALUATIONS, TradeoffSettings, train_and_evaluate
from .protocol import (
    RATE,
    Interval,
    Protocol,
    Target,
    markdown_table,
    mean_interval,
    paired_interval,
    prepare_run_dir,
    proportion_interval,
    require_counts,
    target,
    targets_table,
    to_jsonable,
    verdict,
    write_results,
)

IGNORE_INDEX = -100
SHOTS: tuple[int, ...] = (0, 1, 2, 4, 8, 15)


# ====================================================================== data
@dataclass(frozen=True)
class Episodes:
    """A batch of sequences: keys (n, n_pairs) in [0, n_keys), labels (n, n_pairs) in
    [0, n_labels) (label indices, not tokens)."""

    keys: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    def shown_before(self) -> np.ndarray:
        """(n, n_pairs) bool: the key at pair j also occurs among pairs 0..j-1."""
        k = self.keys
        same = k[:, :, None] == k[:, None, :]  # same[n, j, i]: key j == key i
        earlier = np.tril(np.ones((k.shape[1], k.shape[1]), dtype=bool), -1)
        return (same & earlier).any(axis=2)


@dataclass(frozen=True)
class PairTask:
    """Sequences of (key, label) pairs with a fresh random mapping per sequence.

    Token layout: keys are 0..n_keys-1, then `unseen_keys` more keys that training never
    draws (probes of whether the matching generalizes to keys never seen), labels
    `label_offset`..`label_offset` + n_labels - 1, and the task description is one token
    (`task_token`, also the start of every sequence).
    Bursty sequences pick `min_distinct`..`max_distinct` distinct keys (uniformly) and fill
    the `n_pairs` slots from them uniformly. Non-bursty sequences (the control) use
    `control`: "distinct" draws n_pairs different keys (no key ever recurs, so the context
    never tells a label), "iid" draws every key uniformly from all n_keys (a repeat happens
    only by chance).
    """

    n_keys: int = 16
    n_labels: int = 8
    n_pairs: int = 16
    min_distinct: int = 2
    max_distinct: int = 5
    control: str = "distinct"
    unseen_keys: int = 0

    def __post_init__(self) -> None:
        if self.n_keys < 1 or self.n_labels < 2 or self.n_pairs < 1 or self.unseen_keys < 0:
            raise ValueError(
                f"PairTask: need n_keys >= 1, n_labels >= 2, n_pairs >= 1, "
                f"unseen_keys >= 0, got {self.n_keys}, {self.n_labels}, "
                f"{self.n_pairs}, {self.unseen_keys}"
            )
        if not 1 <= self.min_distinct <= self.max_distinct <= self.n_keys:
            raise ValueError(
                "PairTask: need 1 <= min_distinct <= max_distinct <= n_keys, got "
                f"{self.min_distinct}, {self.max_distinct}, {self.n_keys}"
            )
        if self.control not in ("distinct", "iid"):
            raise ValueError(f"PairTask: control must be 'distinct' or 'iid', got {self.control!r}")
        if self.control == "distinct" and self.n_keys < self.n_pairs:
            raise ValueError(
                f"PairTask: the 'distinct' control needs n_keys >= n_pairs, got "
                f"{self.n_keys} < {self.n_pairs}"
            )

    # ------------------------------------------------------------ vocabulary
    @property
    def label_offset(self) -> int:
        """The token id of label 0 (after every key, the unseen ones too)."""
        return self.n_keys + self.unseen_keys

    @property
    def task_token(self) -> int:
        return self.label_offset + self.n_labels

    @property
    def vocab_size(self) -> int:
        return self.label_offset + self.n_labels + 1

    @property
    def label_tokens(self) -> np.ndarray:
        """The token ids of the labels, in label order (the candidates when scoring)."""
        return np.arange(self.label_offset, self.label_offset + self.n_labels)

    @property
    def context_length(self) -> int:
        """Model inputs: the task token and n_pairs pairs minus the last label."""
        return 2 * self.n_pairs

    # ------------------------------------------------------------ sampling
    def sample(
        self,
        n: int,
        rng: np.random.Generator,
        bursty: bool = True,
        keys: str = "trained",
        distinct: tuple[int, int] | None = None,
    ) -> Episodes:
        """n sequences, each with its own fresh mapping (every key's label uniform).

        keys: "trained" (0..n_keys-1) or "unseen" (the keys training never draws; bursty
        only). distinct: (lo, hi) distinct keys per bursty sequence instead of
        (min_distinct, max_distinct), e.g. more than training ever showed."""
        if keys == "trained":
            pool = np.arange(self.n_keys)
        elif keys == "unseen":
            pool = np.arange(self.n_keys, self.label_offset)
        else:
            raise ValueError(f"sample: keys must be 'trained' or 'unseen', got {keys!r}")
        lo, hi = distinct or (self.min_distinct, self.max_distinct)
        if bursty and not 1 <= lo <= hi <= pool.size:
            raise ValueError(
                f"sample: need 1 <= distinct keys {lo}..{hi} <= {pool.size} ({keys} keys)"
            )
        if not bursty and keys != "trained":
            raise ValueError("sample: the non-bursty control draws trained keys only")
        mapping = rng.integers(0, self.n_labels, (n, self.label_offset))
        if bursty:
            count = rng.integers(lo, hi + 1, n)
            # a random pool of `count` keys per row: the first columns of a permutation
            pools = pool[np.argsort(rng.random((n, pool.size)), axis=1)]
            slot = (rng.random((n, self.n_pairs)) * count[:, None]).astype(np.int64)
            drawn = np.take_along_axis(pools, slot, axis=1)
        elif self.control == "distinct":
            drawn = np.argsort(rng.random((n, self.n_keys)), axis=1)[:, : self.n_pairs]
        else:
            drawn = rng.integers(0, self.n_keys, (n, self.n_pairs))
        labels = np.take_along_axis(mapping, drawn, axis=1)
        return Episodes(drawn.astype(np.int64), labels.astype(np.int64))

    def tokens(self, episodes: Episodes) -> np.ndarray:
        """(n, 1 + 2 n_pairs) token ids: TASK, k1, l1, k2, l2, ..."""
        n, p = episodes.keys.shape
        out = np.empty((n, 1 + 2 * p), dtype=np.int64)
        out[:, 0] = self.task_token
        out[:, 1::2] = episodes.keys
        out[:, 2::2] = episodes.labels + self.label_offset
        return out

    def lm_batch(self, episodes: Episodes) -> tuple[np.ndarray, np.ndarray]:
        """Inputs x (n, 2 n_pairs) and targets y: the next token at label positions (where
        x holds a key), IGNORE_INDEX everywhere else."""
        seq = self.tokens(episodes)
        x, y = seq[:, :-1], seq[:, 1:].copy()
        y[:, 0::2] = IGNORE_INDEX  # y[:, 2j] is key j+1: not predicted
        return x, y


# ====================================================================== harness
class WeightsChangedError(AssertionError):
    """A parameter or buffer differs (bit for bit) after an evaluation that must not learn."""


def _snapshot(model: Module) -> dict[str, bytes]:
    return {k: v.tobytes() for k, v in model.state_dict().items()}


@contextmanager
def frozen(model: Module) -> Iterator[Module]:
    """Evaluate with frozen weights: eval mode and no_grad inside; on exit the model's mode
    is restored and every parameter and persistent buffer is compared bit for bit with a
    copy taken on entry (WeightsChangedError names those that changed)."""
    before = _snapshot(model)
    with evaluating(model):
        yield model
    after = _snapshot(model)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if changed:
        raise WeightsChangedError(f"weights changed during a frozen evaluation: {changed}")


def build_prompt(
    task: Sequence[int], demos: Sequence[tuple[Sequence[int], Sequence[int]]], query: Sequence[int]
) -> np.ndarray:
    """The prompt as token ids: task description, then each demonstration's input and
    output, then the query's input (zero-shot: no demos; one-shot: one; few-shot: k)."""
    parts = [np.asarray(task, dtype=np.int64).ravel()]
    for x, y in demos:
        parts += [np.asarray(x, dtype=np.int64).ravel(), np.asarray(y, dtype=np.int64).ravel()]
    parts.append(np.asarray(query, dtype=np.int64).ravel())
    return np.concatenate(parts)


def score_candidates(
    model: Module,
    prompts: Sequence[Sequence[int]] | np.ndarray,
    candidates: Sequence[Sequence[int]] | np.ndarray,
    batch_size: int = 512,
) -> np.ndarray:
    """Log-likelihood (n_prompts, n_candidates) of each candidate continuation of each prompt,
    with the weights frozen (see `frozen`). `model(ids)` must return logits (B, T, vocab)
    first, as GPT's forward does.

    A candidate is a token sequence; its score is the sum of the log-probabilities of its
    tokens. For one-token candidates this takes one forward pass per batch of prompts and
    the argmax of the scores is the argmax of the logits restricted to the candidates.
    Prompts of different lengths are batched by length (no padding needed).
    """
    cands = [np.asarray(c, dtype=np.int64).ravel() for c in candidates]
    if not cands or any(c.size == 0 for c in cands):
        raise ValueError("score_candidates: need at least one candidate, none empty")
    plist = [np.asarray(p, dtype=np.int64).ravel() for p in prompts]
    if any(p.size == 0 for p in plist):
        raise ValueError("score_candidates: empty prompt (a prompt needs at least one token)")
    scores = np.zeros((len(plist), len(cands)))
    by_len: dict[int, list[int]] = {}
    for i, p in enumerate(plist):
        by_len.setdefault(p.size, []).append(i)
    single = all(c.size == 1 for c in cands)
    with frozen(model):
        for length, rows in by_len.items():
            for start in range(0, len(rows), batch_size):
                idx = rows[start : start + batch_size]
                block = np.stack([plist[i] for i in idx])
                if single:
                    logp = log_softmax(model(block)[0].numpy()[:, -1, :])
                    scores[idx] = logp[:, [int(c[0]) for c in cands]]
                    continue
                for j, c in enumerate(cands):
                    ids = np.concatenate([block, np.broadcast_to(c, (len(idx), c.size))], axis=1)
                    logp = log_softmax(model(ids[:, :-1])[0].numpy()[:, length - 1 :, :])
                    scores[idx, j] = np.take_along_axis(
                        logp, np.broadcast_to(c, (len(idx), c.size))[:, :, None], 2
                    ).sum((1, 2))
    return scores


def few_shot_accuracy(
    model: Module, task: PairTask, episodes: Episodes, shots: Sequence[int] = SHOTS
) -> dict[str, Any]:
    """Accuracy for each number of prior pairs k: the prompt is the task token, pairs
    0..k-1 of each held-out episode as demonstrations and the key of pair k as the query;
    the prediction is the label whose token scores highest. Also split by whether the
    query's key is among the demonstrations ("shown") or not."""
    shown_before = episodes.shown_before()
    rows = []
    for k in shots:
        if not 0 <= k < task.n_pairs:
            raise ValueError(f"few_shot_accuracy: shots must be in [0, {task.n_pairs}), got {k}")
        prompts = [
            build_prompt(
                [task.task_token],
                [
                    ([key], [lab + task.label_offset])
                    for key, lab in zip(episodes.keys[i, :k], episodes.labels[i, :k])
                ],
                [episodes.keys[i, k]],
            )
            for i in range(len(episodes))
        ]
        pred = score_candidates(model, prompts, task.label_tokens[:, None]).argmax(axis=1)
        correct = pred == episodes.labels[:, k]
        shown = shown_before[:, k]
        rows.append(
            {
                "shots": int(k),
                "n": int(correct.size),
                "accuracy": _mean(correct),
                "shown_fraction": _mean(shown),
                "n_shown": int(shown.sum()),
                "accuracy_shown": _mean(correct[shown]),
                "n_not_shown": int((~shown).sum()),
                "accuracy_not_shown": _mean(correct[~shown]),
            }
        )
    return {"rows": rows, "chance": 1.0 / task.n_labels}


def _mean(a: np.ndarray) -> float | None:
    return float(a.mean()) if a.size else None


def positionwise_accuracy(model: Module, task: PairTask, episodes: Episodes) -> dict[str, Any]:
    """A cheap progress metric: one causal forward pass over whole held-out sequences; the
    prediction at each label position (restricted to the label tokens) scored separately
    for queries whose key was already shown and for those whose key was not."""
    x, _ = task.lm_batch(episodes)
    with frozen(model):
        logits = model(x)[0].numpy()[:, 1::2, :][:, :, task.label_tokens]
    correct = logits.argmax(axis=-1) == episodes.labels
    shown = episodes.shown_before()
    return {
        "acc_shown": _mean(correct[shown]),
        "acc_not_shown": _mean(correct[~shown]),
        "acc_first": _mean(correct[:, 0]),
    }


# ====================================================================== the copy task
@dataclass
class CopyConfig:
    """The copy task (fresh key -> label mappings, bursty sequences), kept as one condition
    beside the Chan et al. trade-off: its model, training and probes."""

    n_keys: int = 16
    n_labels: int = 8
    n_pairs: int = 16
    min_distinct: int = 2
    max_distinct: int = 5
    unseen_keys: int = 8  # keys never drawn in training, for the unseen-keys probe
    more_distinct: tuple[int, int] = (6, 10)  # distinct keys per probe sequence (training 2-5)
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    positional: str = "relative"
    init_scale: float = 3.0  # multiplies GPT's initial weight matrices (std 0.02 -> 0.06)
    steps: int = 3000
    batch_size: int = 32
    lr: float = 5e-3
    min_lr: float = 1e-4
    warmup_steps: int = 200
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    eval_every: int = 250
    eval_episodes: int = 512  # validation probe: progress and the escape
    test_episodes: int = 2000
    escape_threshold: float = 0.55  # validation accuracy on shown keys above the plateau
    shots: tuple[int, ...] = SHOTS

    def __post_init__(self) -> None:
        require_counts(
            self,
            (
                "steps",
                "batch_size",
                "test_episodes",
                "eval_episodes",
                "d_model",
                "n_layers",
                "n_heads",
            ),
        )
        if not self.lr > 0 or not self.init_scale > 0:
            raise ValueError(
                f"lr and init_scale must be positive, got {self.lr}, {self.init_scale}"
            )
        if not self.weight_decay >= 0 or self.warmup_steps < 0 or self.min_lr < 0:
            raise ValueError(
                f"weight_decay, warmup_steps and min_lr must be at least 0, got "
                f"{self.weight_decay}, {self.warmup_steps}, {self.min_lr}"
            )
        lo, hi = self.more_distinct
        if not self.max_distinct < lo <= hi <= self.n_keys:
            raise ValueError(
                f"more_distinct must be more keys than training's max_distinct "
                f"{self.max_distinct} and at most n_keys {self.n_keys}, got "
                f"{self.more_distinct}"
            )
        if not self.min_distinct <= self.unseen_keys:
            raise ValueError(
                f"unseen_keys must be at least min_distinct {self.min_distinct} "
                f"(a probe sequence draws that many), got {self.unseen_keys}"
            )
        self.eval_every = min(self.eval_every, self.steps)
        self.task()  # validates the task's fields

    def task(self) -> PairTask:
        return PairTask(
            self.n_keys,
            self.n_labels,
            self.n_pairs,
            self.min_distinct,
            self.max_distinct,
            "iid",
            self.unseen_keys,
        )

    def model_config(self) -> GPTConfig:
        t = self.task()
        return GPTConfig(
            vocab_size=t.vocab_size,
            context_length=t.context_length,
            d_model=self.d_model,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            positional=self.positional,
        )


def scale_init(model: Module, scale: float) -> None:
    """Multiply every initial weight matrix (embeddings, attention, MLP; not the relative
    position biases, norms or biases) by `scale`, in place."""
    for name, p in model.named_parameters():
        if p.ndim >= 2 and "rel_bias" not in name:
            p.data[...] = p.data * np.float32(scale)


def train_copy(
    cfg: CopyConfig,
    seed: int,
    metrics: MetricsLogger | None = None,
    progress: bool | str | None = None,
) -> tuple[GPT, TrainResult]:
    """Train a fresh GPT on bursty copy sequences for cfg.steps steps with the shared
    Trainer; every cfg.eval_every steps it logs `positionwise_accuracy` on the validation
    probe (bursty sequences of their own seed stream)."""
    task = cfg.task()
    model = GPT(cfg.model_config(), generator=seed)
    if cfg.init_scale != 1.0:
        scale_init(model, cfg.init_scale)
    opt = make_optimizer(model, "adamw", lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = make_schedule(
        opt, cfg.steps, cfg.warmup_steps, min_lr_ratio=min(cfg.min_lr / cfg.lr, 1.0)
    )
    probe = task.sample(cfg.eval_episodes, np.random.default_rng([seed, 2]))

    def sample(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        return task.lm_batch(task.sample(n, rng))

    def loss_fn(batch: tuple[np.ndarray, np.ndarray], rng: np.random.Generator) -> Any:
        return model(batch[0], batch[1], ignore_index=IGNORE_INDEX)[1]

    def eval_fn() -> dict[str, float]:
        acc = positionwise_accuracy(model, task, probe)
        return {k: float("nan") if v is None else v for k, v in acc.items()}

    trainer = Trainer(
        model,
        opt,
        sample,
        steps=cfg.steps,
        loss_fn=loss_fn,
        batch_size=cfg.batch_size,
        seed=seed,
        scheduler=sched,
        clip_grad_norm=cfg.grad_clip if cfg.grad_clip > 0 else None,
        eval_fn=eval_fn,
        eval_every=cfg.eval_every,
        log_every=min(50, cfg.eval_every),
        metrics=metrics,
        progress=progress,
        name=f"copy seed {seed}",
    )
    return model, trainer.fit()


def copy_probes(model: Module, cfg: CopyConfig, seed: int) -> dict[str, float | None]:
    """Accuracy on queries whose key was shown earlier in the sequence (one causal pass
    over test sequences of their own seed streams): keys as in training, keys training
    never drew, and more distinct keys per sequence than training ever had."""
    task = cfg.task()
    n = cfg.test_episodes
    sets = {
        "trained_keys": task.sample(n, np.random.default_rng([seed, 5])),
        "unseen_keys": task.sample(n, np.random.default_rng([seed, 6]), keys="unseen"),
        "more_keys": task.sample(n, np.random.default_rng([seed, 7]), distinct=cfg.more_distinct),
    }
    return {name: positionwise_accuracy(model, task, ep)["acc_shown"] for name, ep in sets.items()}


def run_copy_seed(
    cfg: CopyConfig, seed: int, threads: int | None = None, progress: bool | str | None = None
) -> dict[str, Any]:
    """Train the copy model of one seed and evaluate it: the escape step (the first
    validation-probe accuracy on shown keys above cfg.escape_threshold, or None within the
    budget), the few-shot table on test mappings and the probes. A top-level function so
    that a worker process can run it."""
    if threads is not None:
        set_num_threads(threads)
    logger = MetricsLogger(None, {"seed": seed}, keep=True)
    model, fit = train_copy(cfg, seed, logger, progress)
    history = [
        {"step": r["step"], "acc_shown": r["acc_shown"], "acc_not_shown": r["acc_not_shown"]}
        for r in logger.records
        if r.get("event") == "eval"
    ]
    escape = next((h["step"] for h in history if h["acc_shown"] > cfg.escape_threshold), None)
    test = cfg.task().sample(cfg.test_episodes, np.random.default_rng([seed, 3]))
    return {
        "seed": seed,
        "escape_step": escape,
        "escaped": escape is not None,
        "train_seconds": fit.seconds,
        "history": history,
        "few_shot": few_shot_accuracy(model, cfg.task(), test, cfg.shots)["rows"],
        "probes": copy_probes(model, cfg, seed),
    }


# ====================================================================== the experiment
@dataclass
class ICLConfig:
    """Everything the experiment depends on (saved in results.json and config.json).

    The trade-off runs every (zipf_exponent, p_bursty) condition of the two sweeps (the
    burstiness sweep at Zipf exponent `zipf_at`, the Zipf sweep at `p_bursty_at`) for every
    seed in `seeds`; the copy task runs for every seed in `copy_seeds`. Development used
    seeds 0-2; the reported seeds are others."""

    seeds: tuple[int, ...] = tuple(range(10, 15))
    p_bursty_grid: tuple[float, ...] = (0.0, 0.5, 0.9, 1.0)
    zipf_at: float = 1.0
    zipf_grid: tuple[float, ...] = (0.0, 1.0, 2.0)
    p_bursty_at: float = 0.9
    tradeoff: TradeoffSettings = field(default_factory=TradeoffSettings)
    copy_seeds: tuple[int, ...] = tuple(range(10, 20))
    copy: CopyConfig = field(default_factory=CopyConfig)
    coexist_bound: float = 0.25  # both skills at least this far from chance to perfect

    def __post_init__(self) -> None:
        for name in ("seeds", "copy_seeds"):
            seeds = getattr(self, name)
            if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
                raise ValueError(f"{name} must be distinct integers >= 0, got {seeds}")
        if not self.seeds and not self.copy_seeds:
            raise ValueError("seeds: nothing to run (no trade-off seeds and no copy seeds)")
        for p in (*self.p_bursty_grid, self.p_bursty_at):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"p_bursty must be in [0, 1], got {p}")
        for z in (*self.zipf_grid, self.zipf_at):
            if not z >= 0:
                raise ValueError(f"zipf_exponent must be >= 0, got {z}")

    def conditions(self) -> list[tuple[float, float]]:
        """The (zipf_exponent, p_bursty) pairs of both sweeps, each once."""
        pairs = [(self.zipf_at, p) for p in self.p_bursty_grid]
        pairs += [(z, self.p_bursty_at) for z in self.zipf_grid]
        return list(dict.fromkeys(pairs))

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(asdict(self))


def quick_config(**overrides: Any) -> ICLConfig:
    """A version that runs in about a minute on 2 cores (same schema, tiny budgets)."""
    base: dict[str, Any] = dict(
        seeds=(10, 11),
        copy_seeds=(10, 11),
        p_bursty_grid=(0.0, 0.9),
        zipf_grid=(1.0,),
        tradeoff=TradeoffSettings(steps=150, eval_sequences=300, n_classes=128),
        copy=CopyConfig(
            steps=150, eval_every=50, eval_episodes=128, test_episodes=200, warmup_steps=20
        ),
    )
    return ICLConfig(**{**base, **overrides})


def _run_job(job: tuple[Any, ...]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    kind, cfg, threads, *key = job
    if kind == "copy":
        return (kind, *key), run_copy_seed(cfg.copy, key[0], threads, "off")
    zipf, p_bursty, seed = key
    return (kind, *key), train_and_evaluate(cfg.tradeoff, zipf, p_bursty, seed, threads=threads)


RUNS_FILE = "runs.jsonl"


def run_icl(
    cfg: ICLConfig,
    out_dir: str | os.PathLike | None = None,
    progress: bool | str | None = None,
    workers: int = 1,
    resume: bool = True,
) -> dict[str, Any]:
    """Run every trade-off (condition, seed) and every copy seed, in `workers` processes,
    then summarize over seeds. With out_dir: each finished run's record is appended to
    runs.jsonl as it ends (with resume, a rerun with the same config skips those), then
    results.json in the shared schema. Returns {"config", "metrics", "targets", "tables",
    "protocol"}.

    Under mpiexec (after init_process_group) the ranks share out the runs (`run_in_rounds`:
    rounds of one run per rank, each alone in its rank; `workers` is then ignored) and
    every rank gets every record: the records are those of one process but for the
    seconds. Rank 0 alone reads and writes the files and shows progress."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    ranks, writes = dist.get_world_size(), dist.get_rank() == 0
    if ranks > 1:  # the ranks are the workers
        workers = 1
    threads = get_num_threads()
    # the trade-off first, seed by seed (an interrupted run keeps whole seeds), then the copy
    jobs: list[tuple[Any, ...]] = [
        ("tradeoff", cfg, threads, z, p, s) for s in cfg.seeds for z, p in cfg.conditions()
    ]
    jobs += [("copy", cfg, threads, s) for s in cfg.copy_seeds]
    done: dict[tuple[Any, ...], dict[str, Any]] = {}
    runs_path = None
    if out_dir is not None:
        runs_path = os.path.join(out_dir, RUNS_FILE)
        done = dist.on_rank_zero(lambda: _finished_runs(cfg, out_dir, resume))
    todo = [j for j in jobs if (j[0], *j[3:]) not in done]
    t0, c0 = time.perf_counter(), _cpu_seconds()
    mode = progress if isinstance(progress, str) else None
    bar = Progress(len(todo), "icl runs", mode if writes else "off", unit="runs")

    def collect(out: tuple[tuple[Any, ...], dict[str, Any]]) -> None:
        done[out[0]] = out[1]
        if runs_path is not None and writes:
            with open(runs_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(to_jsonable({"job": out[0], "record": out[1]})) + "\n")
        bar.update(1)

    if ranks > 1 or workers == 1 or len(todo) < 2:
        # under mpiexec in rounds of one run per rank; alone, one after the other here
        for out in dist.run_in_rounds(_run_job, todo):
            collect(out)
    else:
        import concurrent.futures as cf
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # no fork of a process that may hold OpenMP threads
        with cf.ProcessPoolExecutor(min(workers, len(todo)), mp_context=ctx) as pool:
            for fut in cf.as_completed([pool.submit(_run_job, j) for j in todo]):
                collect(fut.result())
    bar.close()
    cpu = np.array([_cpu_seconds() - c0])
    if ranks > 1:  # the CPU time of every rank
        dist.all_reduce(cpu)
    ordered = [done[(j[0], *j[3:])] for j in jobs]
    return finish(
        cfg,
        [r for j, r in zip(jobs, ordered) if j[0] == "tradeoff"],
        [r for j, r in zip(jobs, ordered) if j[0] == "copy"],
        out_dir if writes else None,
        {
            "wall_seconds": time.perf_counter() - t0,
            "cpu_seconds": float(cpu[0]),
            "workers": workers,
            "ranks": ranks,
            "threads": threads,
            "resumed_runs": len(jobs) - len(todo),
        },
    )


def _finished_runs(
    cfg: ICLConfig, out_dir: str | os.PathLike, resume: bool
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Prepare out_dir for this config; with resume and the same config, the records of
    the runs an earlier command finished (runs.jsonl), by job."""
    done: dict[tuple[Any, ...], dict[str, Any]] = {}
    if prepare_run_dir(
        out_dir, cfg.to_dict(), resume=resume, outputs=(RUNS_FILE, "results.json", "icl.png")
    ):
        with open(os.path.join(out_dir, RUNS_FILE), encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                done[tuple(rec["job"])] = rec["record"]
    return done


def finish(
    cfg: ICLConfig,
    tradeoff_runs: list[dict[str, Any]],
    copy_runs: list[dict[str, Any]],
    out_dir: str | os.PathLike | None = None,
    timing: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Summarize the runs over seeds, check the targets, build the tables and (with
    out_dir) write results.json; the runs' own records go into metrics unchanged."""
    metrics: dict[str, Any] = {"tradeoff": tradeoff_runs, "copy": copy_runs, **(timing or {})}
    metrics["summary"] = summarize(cfg, tradeoff_runs, copy_runs)
    targets = check_targets(cfg, tradeoff_runs, metrics["summary"])
    tables = make_tables(cfg, metrics["summary"], copy_runs)
    per_split = cfg.tradeoff.eval_sequences * 3
    protocol = Protocol(
        splits={
            "validation sequences per trade-off run": per_split,
            "test sequences per trade-off run": per_split,
            "copy validation probe episodes": cfg.copy.eval_episodes,
            "copy test episodes per probe": cfg.copy.test_episodes,
        },
        seeds=sorted(set(cfg.seeds) | set(cfg.copy_seeds)),
        tuned={
            "trade-off lr, steps, model and task size": "validation, seed 0",
            "Zipf exponent of the coexistence target": "validation, these seeds",
            "copy-task escape (first probe above the threshold)": "validation probe",
        },
        notes="Held-out classes are split in two: in-context validation sequences use one "
        "half, test sequences the other, and every split has its own random stream; "
        "test is scored once, at the end of each run. Intervals are t intervals over "
        "seeds, paired where two conditions are compared (every condition of a seed "
        "shares its world, initial weights and data stream); the escape rate's is a "
        "Wilson interval. The copy task's settings are issue 6's (developed on its "
        "validation probe, seeds 0-2); its step budget was set for time, not tuned.",
    )
    config = cfg.to_dict()
    if out_dir is not None:
        write_results(out_dir, "icl", config, protocol, metrics, targets, tables)
    return {
        "config": config,
        "metrics": metrics,
        "targets": targets,
        "tables": tables,
        "protocol": protocol,
    }


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children (the workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


# ====================================================================== summaries
def skill(accuracy: float, chance: float) -> float:
    """Accuracy rescaled so chance is 0 and perfect 1."""
    return (accuracy - chance) / (1.0 - chance)


def _by_condition(
    runs: Sequence[dict[str, Any]], split: str
) -> dict[tuple[float, float], dict[int, dict[str, float]]]:
    out: dict[tuple[float, float], dict[int, dict[str, float]]] = {}
    for r in runs:
        out.setdefault((r["zipf_exponent"], r["p_bursty"]), {})[r["seed"]] = r[split]
    return out


def _interval(values: Sequence[float]) -> dict[str, Any]:
    """An accuracy's mean [95% t interval, within 0 and 1] over seeds."""
    return mean_interval(values, within=RATE).to_dict()


def summarize(
    cfg: ICLConfig, tradeoff_runs: Sequence[dict[str, Any]], copy_runs: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """Per condition and split, each accuracy's mean [95% t interval] over seeds; the
    Zipf exponent where in-context and in-weights skills coexist best on validation; the
    copy task's escape rate [Wilson interval] and its probes over seeds."""
    out: dict[str, Any] = {
        "conditions": [],
        "chance": cfg.tradeoff.chance(),
    }
    for split in ("validation", "test"):
        for (z, p), by_seed in _by_condition(tradeoff_runs, split).items():
            seeds = sorted(by_seed)
            entry = {"split": split, "zipf_exponent": z, "p_bursty": p, "seeds": seeds}
            for key in EVALUATIONS:
                entry[key] = _interval([by_seed[s][key] for s in seeds])
            out["conditions"].append(entry)
    best = None
    val = _by_condition(tradeoff_runs, "validation")
    for z in cfg.zipf_grid:
        runs = val.get((z, cfg.p_bursty_at))
        if runs:
            score = float(np.mean([_coexistence(cfg, r) for r in runs.values()]))
            if best is None or score > best[1]:
                best = (z, score)
    out["coexist_zipf_exponent"] = None if best is None else best[0]
    if copy_runs:
        escaped = [r for r in copy_runs if r["escaped"]]
        rate = proportion_interval(len(escaped), len(copy_runs))
        steps = [r["escape_step"] for r in escaped]
        probes = {}
        for name in copy_runs[0]["probes"]:
            vals = [r["probes"][name] for r in copy_runs if r["probes"][name] is not None]
            probes[name] = _interval(vals) if vals else None
        out["copy"] = {
            "escape_rate": rate.to_dict(),
            "escaped": len(escaped),
            "seeds": len(copy_runs),
            "budget_steps": cfg.copy.steps,
            "escape_steps": steps,
            "probes": probes,
        }
    return out


def _coexistence(cfg: ICLConfig, acc: dict[str, float]) -> float:
    """The smaller of the in-context and in-weights skills (0 chance, 1 perfect)."""
    chance = cfg.tradeoff.chance()
    return min(skill(acc[k], chance[k]) for k in ("in_context", "in_weights"))


def _test_values(
    cfg: ICLConfig, runs: Sequence[dict[str, Any]], zipf: float, p: float, key: str
) -> dict[int, float]:
    return {s: a[key] for s, a in _by_condition(runs, "test").get((zipf, p), {}).items()}


def _paired(a: dict[int, float], b: dict[int, float]) -> Interval | None:
    seeds = sorted(set(a) & set(b))
    return paired_interval([a[s] for s in seeds], [b[s] for s in seeds]) if seeds else None


def check_targets(
    cfg: ICLConfig, tradeoff_runs: Sequence[dict[str, Any]], summary: dict[str, Any]
) -> list[Target]:
    """The issue's targets on test, each with its 95% interval over seeds (paired where two
    conditions are compared): in-context learning emerges under bursty training (above the
    2-way chance 0.5, and above the non-bursty model's); in-weights learning dominates
    without burstiness (in-weights above in-context accuracy at the lowest p_bursty, and
    above the bursty model's in-weights accuracy); both coexist (the smaller skill above
    `coexist_bound`) at the Zipf exponent chosen on validation; the copy task's escape
    rate (at least half the seeds)."""
    out: list[Target] = []
    z, pb, p0 = cfg.zipf_at, cfg.p_bursty_at, min(cfg.p_bursty_grid)
    icl_b = _test_values(cfg, tradeoff_runs, z, pb, "in_context")
    icl_0 = _test_values(cfg, tradeoff_runs, z, p0, "in_context")
    iwl_b = _test_values(cfg, tradeoff_runs, z, pb, "in_weights")
    iwl_0 = _test_values(cfg, tradeoff_runs, z, p0, "in_weights")
    if icl_b:
        out.append(
            target(
                f"in-context accuracy, p_bursty {pb}, Zipf {z} (above the 2-way chance 0.5)",
                mean_interval(list(icl_b.values()), within=RATE),
                0.5,
            )
        )
    pairs = [
        (f"in-context accuracy: p_bursty {pb} minus {p0} (Zipf {z}; above 0)", icl_b, icl_0),
        (f"p_bursty {p0}: in-weights minus in-context accuracy (Zipf {z}; above 0)", iwl_0, icl_0),
        (f"in-weights accuracy: p_bursty {p0} minus {pb} (Zipf {z}; above 0)", iwl_0, iwl_b),
    ]
    for name, a, b in pairs if p0 != pb else []:
        iv = _paired(a, b)
        if iv is not None:
            out.append(target(name, iv, 0.0))
    ze = summary.get("coexist_zipf_exponent")
    if ze is not None:
        runs = _by_condition(tradeoff_runs, "test").get((ze, pb), {})
        if runs:
            vals = [_coexistence(cfg, a) for a in runs.values()]
            out.append(
                target(
                    f"coexistence at Zipf {ze} (chosen on validation), p_bursty "
                    f"{pb}: min(in-context, in-weights skill) (at least "
                    f"{cfg.coexist_bound})",
                    mean_interval(vals),
                    cfg.coexist_bound,
                )
            )
    copy = summary.get("copy")
    if copy:
        r = copy["escape_rate"]
        out.append(
            Target(
                f"copy task: escape rate within {copy['budget_steps']} steps "
                f"({copy['escaped']} of {copy['seeds']} seeds; at least 0.5)",
                r["mean"],
                tuple(r["ci95"]),
                0.5,
                verdict(r["ci95"][0], r["ci95"][1], 0.5),
            )
        )
    return out


def _fmt(iv: dict[str, Any] | None, digits: int = 3) -> str:
    if iv is None:
        return "n/a"
    lo, hi = iv["ci95"]
    if lo is None or (isinstance(lo, float) and math.isnan(lo)):
        return f"{iv['mean']:.{digits}f}"
    return f"{iv['mean']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def make_tables(
    cfg: ICLConfig, summary: dict[str, Any], copy_runs: Sequence[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The result tables: the trade-off against burstiness and against the Zipf exponent
    (test), the copy task's escape, probes and few-shot accuracy."""
    tables: dict[str, dict[str, Any]] = {}
    test = [c for c in summary["conditions"] if c["split"] == "test"]
    cols = ["in-context", "in-weights", "in-weights (uniform queries)"]
    chance = f"chance 0.5 in context (2-way), {summary['chance']['in_weights']:.3f} in weights"
    for name, label, sweep, fixed, fixed_name in (
        ("burstiness", "p_bursty", cfg.p_bursty_grid, cfg.zipf_at, "zipf_exponent"),
        ("zipf", "zipf_exponent", cfg.zipf_grid, cfg.p_bursty_at, "p_bursty"),
    ):
        rows = []
        for v in sweep:
            c = next((c for c in test if c[label] == v and c[fixed_name] == fixed), None)
            if c is not None:
                rows.append(
                    [v, _fmt(c["in_context"]), _fmt(c["in_weights"]), _fmt(c["in_weights_uniform"])]
                )
        if rows:
            n = len(test[0]["seeds"])
            what = "burstiness" if name == "burstiness" else "Zipf exponent"
            tables[name] = {
                "caption": f"test accuracy against {what} ({fixed_name} {fixed}), mean [95% "
                f"t interval] over {n} seeds; {chance}",
                "columns": [label, *cols],
                "rows": rows,
            }
    copy = summary.get("copy")
    if copy:
        steps = copy["escape_steps"]
        tables["copy_escape"] = {
            "caption": f"the copy task: seeds whose validation accuracy on shown keys rose "
            f"above {cfg.copy.escape_threshold} (off the plateau) within "
            f"{cfg.copy.steps} steps, with the 95% Wilson interval",
            "columns": ["seeds", "escaped", "escape rate", "escape step (median, range)"],
            "rows": [
                [
                    copy["seeds"],
                    copy["escaped"],
                    _fmt(copy["escape_rate"]),
                    f"{int(np.median(steps))} ({min(steps)}-{max(steps)})" if steps else "n/a",
                ]
            ],
        }
        names = {
            "trained_keys": "keys as in training",
            "unseen_keys": f"{cfg.copy.unseen_keys} keys never seen in training",
            "more_keys": f"{cfg.copy.more_distinct[0]}-{cfg.copy.more_distinct[1]} "
            f"distinct keys (training {cfg.copy.min_distinct}-"
            f"{cfg.copy.max_distinct})",
        }
        escaped = [r for r in copy_runs if r["escaped"]]
        rows = []
        for key, probe in copy["probes"].items():
            vals = [r["probes"][key] for r in escaped if r["probes"][key] is not None]
            rows.append(
                [names.get(key, key), _fmt(probe), _fmt(_interval(vals)) if vals else "n/a"]
            )
        tables["copy_probes"] = {
            "caption": f"the copy task's probes: test accuracy on queries whose key was shown "
            f"earlier, mean [95% t interval] over all {copy['seeds']} seeds and over "
            f"the {len(escaped)} that escaped",
            "columns": ["probe", "all seeds", "escaped seeds"],
            "rows": rows,
        }
        rows = []
        for i, k in enumerate(cfg.copy.shots):
            per = [r["few_shot"][i] for r in copy_runs]
            shown = [p["accuracy_shown"] for p in per if p["accuracy_shown"] is not None]
            unshown = [p["accuracy_not_shown"] for p in per if p["accuracy_not_shown"] is not None]
            rows.append(
                [
                    "copy (bursty)",
                    k,
                    _fmt(_interval([p["accuracy"] for p in per])),
                    float(np.mean([p["shown_fraction"] for p in per])),
                    float(np.mean(shown)) if shown else None,
                    float(np.mean(unshown)) if unshown else None,
                ]
            )
        tables["accuracy"] = {
            "caption": f"the copy task: accuracy on held-out mappings with frozen weights "
            f"against the pairs shown before the query (chance "
            f"{1 / cfg.copy.n_labels:.3f}), mean [95% t interval] over "
            f"{copy['seeds']} seeds; the last three columns are means",
            "columns": [
                "condition",
                "prior pairs",
                "accuracy",
                "query key shown",
                "acc. (shown)",
                "acc. (not shown)",
            ],
            "rows": rows,
        }
    return tables


def format_summary(results: dict[str, Any]) -> str:
    """Every table and the targets as markdown."""
    parts = [markdown_table(t["columns"], t["rows"]) for t in results["tables"].values()]
    return "\n\n".join([*parts, targets_table(results["targets"])])


def plot_results(cfg: ICLConfig, metrics: dict[str, Any], path: str | os.PathLike) -> bool:
    """Write the figure: in-context and in-weights accuracy (test, mean and 95% interval)
    against p_bursty and against the Zipf exponent; the copy task's validation accuracy on
    shown keys against the training step, one line per seed. Returns False (and writes
    nothing) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    summary = metrics["summary"]
    test = [c for c in summary["conditions"] if c["split"] == "test"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    sweeps = (
        (
            axes[0],
            "p_bursty",
            cfg.p_bursty_grid,
            "zipf_exponent",
            cfg.zipf_at,
            "p(bursty) of the training sequences",
            f"burstiness (Zipf exponent {cfg.zipf_at})",
        ),
        (
            axes[1],
            "zipf_exponent",
            cfg.zipf_grid,
            "p_bursty",
            cfg.p_bursty_at,
            "Zipf exponent of the class distribution",
            f"Zipf exponent (p_bursty {cfg.p_bursty_at})",
        ),
    )
    for ax, label, grid, fixed_name, fixed, xlabel, title in sweeps:
        rows = sorted(
            (c for c in test if c[fixed_name] == fixed and c[label] in grid), key=lambda c: c[label]
        )
        xs = [c[label] for c in rows]
        for key, name, color in (
            ("in_context", "in-context (held-out classes)", "tab:blue"),
            ("in_weights", "in-weights (trained classes)", "tab:orange"),
        ):
            mean = np.array([c[key]["mean"] for c in rows])
            lo = np.array(
                [np.nan if c[key]["ci95"][0] is None else c[key]["ci95"][0] for c in rows]
            )
            hi = np.array(
                [np.nan if c[key]["ci95"][1] is None else c[key]["ci95"][1] for c in rows]
            )
            ax.errorbar(
                xs, mean, yerr=[mean - lo, hi - mean], fmt="o-", color=color, capsize=3, label=name
            )
        ax.axhline(0.5, color="tab:blue", lw=0.8, ls=":", label="in-context chance")
        ax.axhline(
            summary["chance"]["in_weights"],
            color="tab:orange",
            lw=0.8,
            ls=":",
            label="in-weights chance",
        )
        ax.set_xlabel(xlabel)
        ax.set_title(f"test accuracy against {title}", fontsize=10)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy")
    axes[0].legend(fontsize=7)
    ax = axes[2]
    for r in metrics["copy"]:
        h = r["history"]
        ax.plot(
            [e["step"] for e in h],
            [e["acc_shown"] for e in h],
            "-",
            color="tab:green" if r["escaped"] else "tab:red",
            alpha=0.7,
        )
    ax.axhline(cfg.copy.escape_threshold, color="gray", lw=0.8, ls="--", label="escape threshold")
    ax.set_xlabel("training step")
    ax.set_ylabel("validation accuracy on shown keys")
    ax.set_title("copy task, one line per seed (red: stayed on the plateau)", fontsize=10)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
