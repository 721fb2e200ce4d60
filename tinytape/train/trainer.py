"""The training loop that every tinytape trainer shares.

    trainer = Trainer(model, optimizer, (x, y), steps=500, batch_size=32, seed=0,
                      loss_fn=lambda batch, rng: loss(model(tt.tensor(batch[0])), batch[1]),
                      eval_fn=lambda: {"val_acc": accuracy(model, xv, yv)}, eval_every=100,
                      metrics="runs/x/metrics.jsonl", checkpoint_path="runs/x/ckpt.safetensors",
                      checkpoint_every=100)
    result = trainer.fit(resume=True)   # picks up where a checkpoint left off, bit for bit

What it does, so that the trainers built on it (layer-wise pretraining, fine-tuning, LM
pretraining, RLHF) need not:
- batches: seeded epochs of shuffled mini-batches over arrays (`BatchIterator`), or any
  `sample(rng, batch_size)` function for data that is sampled rather than swept;
- a step: `loss_fn(batch, rng) -> loss` (or `(loss, {name: value})`), then zero_grad,
  backward, optional gradient clipping, optimizer and scheduler steps; or a whole custom
  `step_fn(batch, rng) -> {"loss": ..., ...}` that does its own updates;
- randomness: two generators spawned from `seed`, one for the data order and one (`rng`)
  handed to the step for noise (corruption, sampling, ...); both go into checkpoints;
- a progress bar (`Progress`): redrawn in place on a terminal, a plain line every ~10 s in
  logs and CI (the CI variable set, or stderr not a terminal), nothing when disabled;
- metrics: JSON lines appended to a file (`MetricsLogger`), loss averaged over `log_every`
  steps, with the lr, items/s and elapsed time;
- validation: `eval_fn() -> {name: value}` every `eval_every` steps and at the end, in eval
  mode without recording a tape;
- checkpoints: model, optimizer, scheduler, both generators and the position in the epoch,
  every `checkpoint_every` steps and at the end, via tinytape.checkpoint (atomic writes,
  checksummed); the one before the latest is kept as `<name>.prev<ext>`, and
  `fit(resume=True)` continues from the latest exactly as if never interrupted, or, when
  the latest is missing or corrupted, from the previous one with a warning that says so;
- several processes (under mpiexec, after tinytape.distributed.init_process_group()): the
  model is wrapped in DistributedDataParallel; batch_size stays the global batch, which
  every rank draws from the same seeded generator and splits (`shard_batch`), so the run
  equals one process's up to rounding; noise and dropout streams differ per rank
  (`seed_rank_generators`); only rank 0 prints, logs metrics (averaged over the ranks) and
  writes checkpoints; evaluations run on rank 0 and are sent to all; a checkpoint resumes
  at any number of processes (it must be on a file system every rank can read).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Union

import numpy as np

from .. import distributed as dist
from ..autograd.grad_mode import no_grad
from ..checkpoint import load_checkpoint, save_checkpoint
from ..nn.parallel import DistributedDataParallel
from ..optim.clip import clip_grad_norm_
from ..serialization import CheckpointError

LossFn = Callable[[Any, np.random.Generator], Any]
StepFn = Callable[[Any, np.random.Generator], Mapping[str, float]]
EvalFn = Callable[[], Mapping[str, float]]
SampleFn = Callable[[np.random.Generator, int], Any]
Data = Union[Sequence[np.ndarray], SampleFn]


def previous_checkpoint(path: str | os.PathLike) -> str:
    """Where the checkpoint before the latest one at `path` is kept: ckpt.prev.safetensors."""
    root, ext = os.path.splitext(os.fspath(path))
    return f"{root}.prev{ext}"


# ---------------------------------------------------------------------------- progress

def progress_mode(stream: IO[str] | None = None) -> str:
    """"bar" on an interactive terminal, "plain" in logs and CI (the CI variable is set)."""
    stream = sys.stderr if stream is None else stream
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        return "plain"
    try:
        return "bar" if stream.isatty() else "plain"
    except (AttributeError, ValueError):
        return "plain"


def _fmt_time(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


class Progress:
    """Progress of `total` steps on stderr: steps, the latest values (loss...), rate, time left.

    mode: "bar" redraws one line with \\r (at most 10 times a second), "plain" prints a
    line every `interval` seconds and at close (quiet in CI logs), "off" prints nothing;
    None picks with progress_mode(). `unit` names what the rate counts ("items").
    """

    def __init__(self, total: int, desc: str = "", mode: str | None = None,
                 stream: IO[str] | None = None, interval: float = 10.0, unit: str = "items"
                 ) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.mode = progress_mode(self.stream) if mode is None else mode
        if self.mode not in ("bar", "plain", "off"):
            raise ValueError(f"progress mode must be 'bar', 'plain' or 'off', got {mode!r}")
        self.total, self.desc, self.interval, self.unit = int(total), desc, interval, unit
        self.n, self.items, self.values = 0, 0, {}
        self.start_n = 0
        self.start = self._last_draw = time.perf_counter()
        self._last_plain = self.start
        self._closed = False

    def reset(self, n: int) -> None:
        """Start counting at step n (a resumed run): the rate counts only new steps."""
        self.n = self.start_n = n
        self.start = time.perf_counter()

    def update(self, n: int = 1, items: int = 0, **values: float) -> None:
        """Advance n steps that processed `items` items; show `values` (loss=...)."""
        self.n += n
        self.items += items
        self.values.update(values)
        now = time.perf_counter()
        if self.mode == "bar" and (now - self._last_draw >= 0.1 or self.n >= self.total):
            self._last_draw = now
            self.stream.write("\r" + self.line(now) + "\x1b[K")
            self.stream.flush()
        elif self.mode == "plain" and now - self._last_plain >= self.interval:
            self._last_plain = now
            self.stream.write(self.line(now) + "\n")
            self.stream.flush()

    def line(self, now: float | None = None) -> str:
        """The text of the progress line."""
        now = time.perf_counter() if now is None else now
        elapsed = max(now - self.start, 1e-9)
        done = self.n - self.start_n
        rate = done / elapsed
        left = (self.total - self.n) / rate if rate > 0 else float("inf")
        frac = self.n / self.total if self.total else 1.0
        parts = [f"{self.desc}: " if self.desc else ""]
        if self.mode == "bar":
            width = 20
            filled = int(round(width * min(frac, 1.0)))
            parts.append(f"[{'#' * filled}{'.' * (width - filled)}] ")
        parts.append(f"{self.n}/{self.total}")
        for k, v in self.values.items():
            parts.append(f"  {k} {v:.4g}" if isinstance(v, float) else f"  {k} {v}")
        if self.items:
            parts.append(f"  {self.items / elapsed:,.0f} {self.unit}/s")
        parts.append(f"  {_fmt_time(elapsed)} elapsed, {_fmt_time(left)} left")
        return "".join(parts)

    def close(self) -> None:
        """Finish the line (bar) or print the final line (plain)."""
        if self._closed:
            return
        self._closed = True
        if self.mode == "bar":
            self.stream.write("\r" + self.line() + "\x1b[K\n")
        elif self.mode == "plain":
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---------------------------------------------------------------------------- metrics

class MetricsLogger:
    """Appends one JSON object per line to `path` (if given), each with the `static` fields
    (run name, seed...) first; keeps them in `records` too when keep=True."""

    def __init__(self, path: str | os.PathLike | None = None,
                 static: Mapping[str, Any] | None = None, keep: bool = False) -> None:
        self.path = os.fspath(path) if path is not None else None
        self.static = dict(static or {})
        self.keep = keep
        self.records: list[dict[str, Any]] = []
        if self.path:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)

    def log(self, **record: Any) -> dict[str, Any]:
        """Write one record (numpy numbers become Python numbers); returns it."""
        rec = {**self.static, **{k: _plain_number(v) for k, v in record.items()}}
        if self.keep:
            self.records.append(rec)
        if self.path:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")
        return rec

    def child(self, **static: Any) -> MetricsLogger:
        """A logger to the same file (and record list) with more static fields."""
        out = MetricsLogger(None, {**self.static, **static}, self.keep)
        out.path, out.records = self.path, self.records
        return out


def _plain_number(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl file, in order."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# ---------------------------------------------------------------------------- batches

class BatchIterator:
    """Endless seeded mini-batches over arrays of the same length: each epoch is a fresh
    permutation drawn from `rng` (or the natural order with shuffle=False). The last,
    smaller batch of an epoch is kept unless drop_last. Its state (the epoch, the position
    in it and the generator state the epoch's permutation was drawn from) is JSON-able, so a
    resumed run sees the same batches."""

    def __init__(self, arrays: Sequence[np.ndarray], batch_size: int,
                 rng: np.random.Generator, shuffle: bool = True, drop_last: bool = False
                 ) -> None:
        arrays = tuple(np.asarray(a) for a in arrays)
        if not arrays:
            raise ValueError("BatchIterator needs at least one array")
        n = len(arrays[0])
        if any(len(a) != n for a in arrays):
            raise ValueError(f"arrays of different lengths: {[len(a) for a in arrays]}")
        if n == 0:
            raise ValueError("BatchIterator: the arrays are empty")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.arrays, self.n, self.rng = arrays, n, rng
        self.batch_size = min(batch_size, n) if drop_last else batch_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self.epoch, self.pos = 0, 0
        self._epoch_state: dict[str, Any] = {}
        self._order = self._new_order()

    def _new_order(self) -> np.ndarray:
        self._epoch_state = self.rng.bit_generator.state
        return self.rng.permutation(self.n) if self.shuffle else np.arange(self.n)

    def __iter__(self) -> BatchIterator:
        return self

    def __next__(self) -> tuple[np.ndarray, ...]:
        end = self.pos + self.batch_size
        if self.pos >= self.n or (self.drop_last and end > self.n):
            self.epoch += 1
            self.pos, end = 0, self.batch_size
            self._order = self._new_order()
        idx = self._order[self.pos:min(end, self.n)]
        self.pos = min(end, self.n)
        return tuple(a[idx] for a in self.arrays)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "pos": self.pos, "epoch_rng_state": self._epoch_state,
                "rng_state": self.rng.bit_generator.state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state_dict(): redraw the epoch's order, then the generator's state."""
        self.rng.bit_generator.state = state["epoch_rng_state"]
        self._order = self._new_order()
        self.rng.bit_generator.state = state["rng_state"]
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])


# ---------------------------------------------------------------------------- trainer

@dataclass
class TrainResult:
    """What fit() returns: the step reached, the mean loss of the last log window, every
    evaluation (dicts with "step"), the wall time of this call and the items it processed."""

    step: int
    loss: float
    evals: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    items: int = 0
    resumed_from: int = 0

    @property
    def last_eval(self) -> dict[str, float]:
        return self.evals[-1] if self.evals else {}


class Trainer:
    """A loop over batches with seeded shuffling, progress, metrics, validation and
    checkpoints with resume (see the module docstring). Give exactly one of loss_fn and
    step_fn.

    model: the module trained (saved in checkpoints; its train/eval mode is managed).
    optimizer: updates the trained parameters (frozen ones are simply left out of it).
    data: a sequence of equal-length arrays (swept in shuffled epochs), or a function
        `sample(rng, batch_size) -> batch`.
    loss_fn(batch, rng): the loss Tensor, or (loss, {name: float}) to log more values.
    step_fn(batch, rng): a whole step done by the caller; returns {"loss": float, ...}.
    steps: the total number of optimizer steps; seed: spawns the data and noise generators.
    """

    def __init__(self, model: Any, optimizer: Any, data: Data, *, steps: int,
                 loss_fn: LossFn | None = None, step_fn: StepFn | None = None,
                 batch_size: int = 32, seed: int = 0, scheduler: Any = None,
                 clip_grad_norm: float | None = None, eval_fn: EvalFn | None = None,
                 eval_every: int = 0, log_every: int = 10,
                 metrics: MetricsLogger | str | os.PathLike | None = None,
                 checkpoint_path: str | os.PathLike | None = None, checkpoint_every: int = 0,
                 progress: Progress | str | bool | None = None, name: str = "train",
                 shuffle: bool = True, drop_last: bool = False) -> None:
        if (loss_fn is None) == (step_fn is None):
            raise ValueError("Trainer: give exactly one of loss_fn and step_fn")
        for label, value, low in (("steps", steps, 0), ("batch_size", batch_size, 1),
                                  ("log_every", log_every, 1), ("eval_every", eval_every, 0),
                                  ("checkpoint_every", checkpoint_every, 0)):
            if value < low:
                raise ValueError(f"Trainer: {label} must be at least {low}, got {value}")
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.loss_fn, self.step_fn, self.eval_fn = loss_fn, step_fn, eval_fn
        self.steps, self.batch_size, self.seed = int(steps), int(batch_size), int(seed)
        self.clip_grad_norm = clip_grad_norm
        self.eval_every, self.log_every = int(eval_every), int(log_every)
        self.checkpoint_every = int(checkpoint_every)
        self.checkpoint_path = os.fspath(checkpoint_path) if checkpoint_path else None
        self.name = name
        if isinstance(metrics, MetricsLogger) or metrics is None:
            self.metrics = metrics
        else:
            self.metrics = MetricsLogger(metrics)
        self._progress_arg = progress
        data_seq, noise_seq = np.random.SeedSequence(self.seed).spawn(2)
        self.data_rng = np.random.default_rng(data_seq)
        #: the generator handed to loss_fn/step_fn for noise (corruption, sampling...)
        self.rng = np.random.default_rng(noise_seq)
        if callable(data):
            self._sample: SampleFn | None = data
            self.batches: BatchIterator | None = None
        else:
            self._sample = None
            self.batches = BatchIterator(data, batch_size, self.data_rng, shuffle, drop_last)
        self.step = 0
        self.evals: list[dict[str, float]] = []
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        #: the model's DistributedDataParallel wrapper when several processes train it
        self.ddp: DistributedDataParallel | None = None
        self._loss_weight = 1.0  # this rank's share of the global batch times world_size
        if self.world_size > 1:
            if self.batch_size < self.world_size:
                raise ValueError(f"Trainer: a global batch of {self.batch_size} cannot be "
                                 f"split over {self.world_size} processes")
            # find_unused_parameters: loss_fn may leave parts of the model out
            self.ddp = model if isinstance(model, DistributedDataParallel) else \
                DistributedDataParallel(model, find_unused_parameters=True)
            if self.rank != 0:
                self.metrics = None

    # ------------------------------------------------------------ pieces
    def next_batch(self) -> Any:
        """The next batch: from the arrays' shuffled epochs or from the sample function."""
        if self.batches is not None:
            return next(self.batches)
        assert self._sample is not None
        return self._sample(self.data_rng, self.batch_size)

    def train_step(self, batch: Any) -> dict[str, float]:
        """One optimizer step on `batch`; returns the logged values ("loss" first)."""
        if self.step_fn is not None:
            out = dict(self.step_fn(batch, self.rng))
            if "loss" not in out:
                raise ValueError("Trainer: step_fn must return a dict with a 'loss'")
            return {k: float(v) for k, v in out.items()}
        out = self.loss_fn(batch, self.rng)
        loss, extra = out if isinstance(out, tuple) else (out, {})
        values = {"loss": float(loss.item())}
        if not math.isfinite(values["loss"]):  # before the update spoils the weights
            raise FloatingPointError(f"{self.name}: the loss is {values['loss']} at step "
                                     f"{self.step + 1}" + (f" on rank {self.rank}"
                                                           if self.world_size > 1 else ""))
        self.optimizer.zero_grad()
        if self.ddp is not None:
            self.ddp.prepare_for_backward(loss)
            if self._loss_weight != 1.0:  # DDP averages: weight a shard by its size
                loss = loss * self._loss_weight
        loss.backward()
        if self.clip_grad_norm is not None:
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            values["grad_norm"] = float(clip_grad_norm_(params, self.clip_grad_norm))
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        values.update({k: float(v) for k, v in extra.items()})
        return values

    def evaluate(self) -> dict[str, float]:
        """Run eval_fn in eval mode without a tape; log and remember the result. With
        several processes, rank 0 evaluates and sends the values to the others."""
        if self.eval_fn is None:
            return {}
        if self.world_size > 1:
            shared = [self._evaluate_here() if self.rank == 0 else None]
            dist.broadcast_object_list(shared, src=0)
            values = shared[0]
            if self.rank != 0:
                self.evals.append({"step": self.step, **values})
            return values
        return self._evaluate_here()

    def _evaluate_here(self) -> dict[str, float]:
        was_training = getattr(self.model, "training", True)
        if hasattr(self.model, "eval"):
            self.model.eval()
        try:
            with no_grad():
                values = {k: float(v) for k, v in self.eval_fn().items()}
        finally:
            if hasattr(self.model, "train"):
                self.model.train(was_training)
        record = {"step": self.step, **values}
        self.evals.append(record)
        if self.metrics is not None:
            self.metrics.log(event="eval", phase=self.name, **record)
        return values

    def _lr(self) -> float | None:
        groups = getattr(self.optimizer, "param_groups", None)
        return float(groups[0]["lr"]) if groups else None

    # ------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: str | os.PathLike | None = None) -> str:
        """Save everything a resume needs (model, optimizer, scheduler, generators, the
        position in the data and the evaluations so far); returns the path. Only rank 0
        writes (the ranks hold the same state)."""
        path = os.fspath(path or self.checkpoint_path or "")
        if not path:
            raise ValueError("Trainer.save_checkpoint: no path (set checkpoint_path)")
        if self.rank != 0:
            return path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        state = {"name": self.name, "step": self.step, "steps": self.steps,
                 "seed": self.seed, "evals": self.evals, "world_size": self.world_size,
                 "batches": self.batches.state_dict() if self.batches is not None else None}
        if os.path.exists(path):  # keep the latest as the previous one (a rename: atomic)
            os.replace(path, previous_checkpoint(path))
        save_checkpoint(path, self.model, self.optimizer, self.scheduler,
                        generators={"data": self.data_rng, "noise": self.rng},
                        extra={"trainer": state})
        return path

    def load_checkpoint(self, path: str | os.PathLike | None = None) -> int:
        """Restore a save_checkpoint() file into this trainer; returns the step reached."""
        path = os.fspath(path or self.checkpoint_path or "")
        extra = load_checkpoint(path, self.model, self.optimizer, self.scheduler,
                                generators={"data": self.data_rng, "noise": self.rng})
        state = extra.get("trainer")
        if state is None:
            raise ValueError(f"{path}: not a Trainer checkpoint (no trainer state)")
        if self.batches is not None and state.get("batches") is not None:
            self.batches.load_state_dict(state["batches"])
        self.step = int(state["step"])
        self.evals = list(state.get("evals", []))
        return self.step

    def _resume(self, path: str) -> int:
        """Load the latest checkpoint at `path`; when it is missing (a kill between the
        rename and the write) or unreadable, the previous one, saying so."""
        prev = previous_checkpoint(path)
        if os.path.exists(path):
            try:
                return self.load_checkpoint(path)
            except CheckpointError as e:
                if not os.path.exists(prev):
                    raise
                problem = f"is unreadable ({e})"
        else:
            problem = "is missing"
        step = self.load_checkpoint(prev)  # restores everything again, over any partial load
        warnings.warn(f"{self.name}: the latest checkpoint {path} {problem}; resumed from the "
                      f"previous one, {prev}, at step {step}", RuntimeWarning, stacklevel=3)
        return step

    # ------------------------------------------------------------ the loop
    def _make_progress(self) -> Progress:
        arg = self._progress_arg
        if isinstance(arg, Progress):
            return arg
        mode = {True: None, None: None, False: "off"}.get(arg, arg)  # type: ignore[arg-type]
        if self.rank != 0:
            mode = "off"
        return Progress(self.steps, self.name, mode=mode)

    def fit(self, resume: bool | str | os.PathLike = False, until: int | None = None
            ) -> TrainResult:
        """Train up to `steps` (or only up to step `until`, saving a checkpoint there if a
        path is set: an interruption on purpose). resume=True continues from
        checkpoint_path when that file exists; a path continues from that file."""
        resumed_from = 0
        if resume:
            path = self.checkpoint_path if resume is True else os.fspath(resume)
            if path and (os.path.exists(path) or os.path.exists(previous_checkpoint(path))):
                resumed_from = self._resume(path)
            elif resume is not True:
                raise FileNotFoundError(f"no checkpoint at {path}")
        if self.world_size > 1:  # this rank's own noise, from where this run starts
            self.rng = dist.seed_rank_generators(self.model, self.seed, self.rank, self.step)
        stop = self.steps if until is None else min(int(until), self.steps)
        if hasattr(self.model, "train"):
            self.model.train()
        progress = self._make_progress()
        own_progress = not isinstance(self._progress_arg, Progress)
        if own_progress:
            progress.reset(self.step)
        t0 = time.perf_counter()
        window: dict[str, float] = {}
        window_n, window_items, window_t = 0, 0, t0
        items_total = 0
        last_loss = float("nan")
        try:
            while self.step < stop:
                batch = self.next_batch()
                n_items = _batch_len(batch)
                share = 1.0  # this rank's fraction of the global batch
                if self.world_size > 1:
                    batch = dist.shard_batch(batch, self.rank, self.world_size)
                    share = _batch_len(batch) / n_items
                    self._loss_weight = share * self.world_size
                values = self.train_step(batch)
                if self.ddp is not None:  # a step on gradients not averaged stops the run
                    self.ddp.check_reduction_finished()
                self.step += 1
                items_total += n_items
                window_items += n_items
                window_n += 1
                for k, v in values.items():
                    window[k] = window.get(k, 0.0) + v * share
                if not math.isfinite(values["loss"]):  # from a step_fn
                    raise FloatingPointError(f"{self.name}: the loss is {values['loss']} at "
                                             f"step {self.step}")
                progress.update(1, items=n_items, loss=values["loss"])
                if self.step % self.log_every == 0 or self.step == stop:
                    now = time.perf_counter()
                    if self.world_size > 1:  # the global batch's values: sum the shares
                        sums = np.array(list(window.values()), dtype=np.float64)
                        dist.all_reduce(sums)
                        window = dict(zip(window, sums.tolist()))
                    means = {k: v / window_n for k, v in window.items()}
                    last_loss = means["loss"]
                    if self.metrics is not None:
                        lr = self._lr()
                        self.metrics.log(event="train", phase=self.name, step=self.step,
                                         **means, **({"lr": lr} if lr is not None else {}),
                                         items_per_s=window_items / max(now - window_t, 1e-9),
                                         elapsed=now - t0)
                    window, window_n, window_items, window_t = {}, 0, 0, now
                if self.eval_every and self.step % self.eval_every == 0 \
                        and self.step < self.steps:
                    self.evaluate()
                if self.checkpoint_path and self.checkpoint_every \
                        and self.step % self.checkpoint_every == 0:
                    self.save_checkpoint()
            if self.step >= self.steps:
                if self.eval_fn is not None and (not self.evals
                                                 or self.evals[-1]["step"] != self.step):
                    self.evaluate()
            if self.checkpoint_path and (self.step >= self.steps or until is not None):
                self.save_checkpoint()
        finally:
            if own_progress:
                progress.close()
        if self.world_size > 1:  # rank 0's checkpoint is written before anyone goes on
            dist.barrier()
        return TrainResult(self.step, last_loss, list(self.evals), time.perf_counter() - t0,
                           items_total, resumed_from)


def _batch_len(batch: Any) -> int:
    first = batch[0] if isinstance(batch, (tuple, list)) and batch else batch
    try:
        return len(first)
    except TypeError:
        return 1
