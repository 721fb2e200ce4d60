"""Programs that tests/test_distributed.py runs under `mpiexec -n 2` (and alone, for the
references). Each writes what it computed into the output folder; the tests compare.

    mpiexec -n 2 python tests/mpi_worker.py CASE OUT [ARGS...]
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading

import numpy as np

import tinytape as tt
import tinytape.distributed as dist
from tinytape.models import GPT, GPTConfig
from tinytape.nn.parallel import DistributedDataParallel
from tinytape.optim import AdamW

CONFIG = dict(vocab_size=11, context_length=8, d_model=16, n_layers=2, n_heads=2)
PER_RANK = 3  # sequences per rank and step
STEPS = 4


def tiny_gpt(seed: int, dropout: float = 0.0) -> GPT:
    return GPT(GPTConfig(**CONFIG, dropout=dropout), generator=seed, dtype=np.float64)


def global_batch(step: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The step's global batch of token windows (the same on every rank)."""
    data = np.random.default_rng([7, step]).integers(
        0, CONFIG["vocab_size"], (size, CONFIG["context_length"] + 1)
    )
    return data[:, :-1], data[:, 1:]


def params(model) -> dict[str, np.ndarray]:
    return {n: p.numpy().copy() for n, p in model.named_parameters()}


def save(out: str, name: str, arrays: dict[str, np.ndarray]) -> None:
    np.savez(os.path.join(out, f"{name}_rank{dist.get_rank()}.npz"), **arrays)


# ---------------------------------------------------------------------------- cases


def case_collectives(out: str) -> None:
    """Collectives on tensors and arrays, in place; each rank checks values derived by hand
    (rank r contributes r + 1) and writes what it got."""
    g = dist.init_process_group()
    r, w = g.rank, g.size
    got = {}
    t = tt.tensor(np.arange(6.0).reshape(2, 3) * (r + 1))
    dist.all_reduce(t)
    got["sum"] = t.numpy().copy()
    a = np.full(4, float(r + 1))
    dist.all_reduce(a, dist.ReduceOp.AVG)
    got["avg"] = a
    m = np.array([r, -r], dtype=np.int64)
    dist.all_reduce(m, dist.ReduceOp.MAX)
    got["max"] = m
    nc = np.arange(12.0).reshape(3, 4)[:, ::2] * (r + 1)  # not contiguous: copied and back
    work = dist.all_reduce(nc, async_op=True)
    work.wait()
    got["noncontig"] = nc
    b = tt.tensor(np.full(3, 10.0 + r))
    dist.broadcast(b, src=1)
    got["bcast"] = b.numpy().copy()
    parts = [np.zeros(2) for _ in range(w)]
    dist.all_gather(parts, np.array([r, r * 10.0]))
    got["gather"] = np.stack(parts)
    objs = [None] * w
    dist.all_gather_object(objs, {"rank": r})
    got["objects"] = np.array([o["rank"] for o in objs])
    mine = dist.shard_runs(list("abcde"))
    got["runs"] = np.array(dist.gather_runs([(i, c * 2) for i, c in mine], 5))
    got["run_items"] = np.array([i for i, _ in mine])
    # rounds of one run per rank, each alone: (item, the world size it saw, the rank that ran it)
    rounds = dist.run_in_rounds(lambda c: (c * 2, dist.get_world_size(), r), list("abcde"))
    got["rounds"] = np.array([list(x) for x in rounds], dtype=object).astype(str)
    # rank 0 alone runs the function; every rank gets its value, or raises its error
    ran = []
    got["on_rank_zero"] = np.array(dist.on_rank_zero(lambda: ran.append(r) or 10 + r))
    got["ran"] = np.array(ran)

    def unpicklable() -> None:
        raise UnpicklableError("lock")

    errors = []
    for fn in (lambda: 1 / 0, unpicklable):
        try:
            dist.on_rank_zero(fn)
        except Exception as e:
            errors.append(f"{type(e).__name__}: {e}")
    got["errors"] = np.array(errors)
    with dist.group_of_one():
        got["alone"] = np.array(
            [dist.get_rank(), dist.get_world_size(), len(dist.shard_runs("abc"))]
        )
    got["after"] = np.array([dist.get_world_size()])
    save(out, "collectives", got)


class UnpicklableError(Exception):
    """An exception that cannot be pickled (it holds a lock)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"cannot pickle {what}")
        self.lock = threading.Lock()


def case_ddp(out: str) -> None:
    """AdamW steps through DDP with per-rank batches of PER_RANK, from different per-rank
    initial weights (rank r's init seed is 100 + r: the broadcast makes them rank 0's);
    small buckets so that several all-reduces overlap the backward pass. Then one step of
    gradient accumulation with no_sync."""
    g = dist.init_process_group()
    model = tiny_gpt(100 + g.rank)
    ddp = DistributedDataParallel(model, bucket_cap_mb=0.004)
    opt = AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    # each all-reduce DDP starts: how many parameters were still waiting for their gradient
    waiting = []
    all_reduce = dist.all_reduce

    def counting_all_reduce(*args, **kwargs):
        waiting.append(sum(b.pending for b in ddp._buckets))
        return all_reduce(*args, **kwargs)

    dist.all_reduce = counting_all_reduce
    for step in range(STEPS):
        x, y = dist.shard_batch(global_batch(step, PER_RANK * g.size))
        _, loss = ddp(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    opt.zero_grad()
    for micro in (STEPS, STEPS + 1):  # two micro-batches, averaged once, at the second
        x, y = dist.shard_batch(global_batch(micro, PER_RANK * g.size))
        if micro == STEPS:
            with ddp.no_sync():
                ddp(x, y)[1].backward()
        else:
            ddp(x, y)[1].backward()
    opt.step()
    save(
        out,
        "ddp",
        {
            **params(model),
            "buckets": np.array(len(ddp._buckets)),
            "waiting": np.array(waiting),
        },
    )


def case_unused(out: str) -> None:
    """A parameter the loss does not use: refused clearly without find_unused_parameters,
    averaged (zeros) with it."""
    dist.init_process_group()
    results = {}
    for find in (False, True):
        model = tt.nn.Sequential(tt.nn.Linear(3, 2, generator=1), tt.nn.Linear(2, 2, generator=2))
        model.double()
        ddp = DistributedDataParallel(model, find_unused_parameters=find)
        x = tt.tensor(np.ones((4, 3)) * (dist.get_rank() + 1))
        message = ""
        try:
            for _ in range(2):
                out_ = ddp.module[0](x)  # the second Linear is left out
                ddp.prepare_for_backward(out_)
                out_.sum().backward()
        except RuntimeError as e:
            message = str(e)
        results[str(find)] = {
            "message": message,
            "grad0": model[0].weight.grad.numpy().tolist(),
            "grad1": None
            if model[1].weight.grad is None
            else model[1].weight.grad.numpy().tolist(),
        }
    with open(os.path.join(out, f"unused_rank{dist.get_rank()}.json"), "w") as f:
        json.dump(results, f)


def case_dropout(out: str) -> None:
    """Dropout 0.3: each rank reseeds its dropout stream from (seed 5, its rank); the
    gradients are averaged over ranks with different masks."""
    g = dist.init_process_group()
    model = tiny_gpt(100, dropout=0.3)
    dist.seed_rank_generators(model, 5, g.rank)
    ddp = DistributedDataParallel(model, bucket_cap_mb=0.004)
    opt = AdamW(model.parameters(), lr=1e-2)
    for step in range(STEPS):
        x, y = dist.shard_batch(global_batch(step, PER_RANK * g.size))
        _, loss = ddp(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    save(out, "dropout", params(model))


def trainer_data() -> tuple[np.ndarray, np.ndarray]:
    data = np.random.default_rng(3).integers(
        0, CONFIG["vocab_size"], (30, CONFIG["context_length"] + 1)
    )
    return data[:, :-1], data[:, 1:]


def make_trainer(out: str, steps: int, metrics: str) -> tuple[object, GPT]:
    """A Trainer over arrays with a global batch of 7 (shards of 4 and 3 over 2 ranks; the
    epoch's last batch of 2 gives 1 and 1), AdamW, warm-up schedule, clipping."""
    from tinytape.optim import WarmupCosineLR
    from tinytape.train import Trainer

    model = tiny_gpt(100 + dist.get_rank())  # different per rank: DDP broadcasts rank 0's
    opt = AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    sched = WarmupCosineLR(opt, warmup_steps=2, total_steps=steps, min_lr=1e-3)
    trainer = Trainer(
        model,
        opt,
        trainer_data(),
        steps=steps,
        batch_size=7,
        seed=4,
        scheduler=sched,
        clip_grad_norm=0.5,
        loss_fn=lambda batch, rng: model(batch[0], batch[1])[1],
        eval_fn=lambda: {"p0": float(next(model.parameters()).numpy().sum())},
        eval_every=3,
        log_every=2,
        metrics=metrics,
        checkpoint_path=os.path.join(out, "ckpt.safetensors"),
        checkpoint_every=3,
        progress=False,
        name="t",
    )
    return trainer, model


def case_trainer(out: str, steps: str, until: str) -> None:
    """Trainer.fit(resume=True) up to `until` (0: to the end); rank 0's parameters saved."""
    dist.init_process_group()
    trainer, model = make_trainer(out, int(steps), os.path.join(out, "metrics.jsonl"))
    result = trainer.fit(resume=True, until=int(until) or None)
    save(
        out,
        f"trainer{result.step}",
        {**params(model), "evals": np.array([e["p0"] for e in result.evals])},
    )


def case_die(out: str, how: str) -> None:
    """Rank 1 stops at the third step of a DDP loop; rank 0 must not wait forever."""
    g = dist.init_process_group()
    model = tiny_gpt(100)
    ddp = DistributedDataParallel(model)
    for step in range(1000):
        if g.rank == 1 and step == 2:
            if how == "raise":
                raise RuntimeError("rank 1 fails on purpose")
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            sys.exit(3)
        x, y = dist.shard_batch(global_batch(step, PER_RANK * g.size))
        ddp(x, y)[1].backward()


CASES = {
    "collectives": case_collectives,
    "ddp": case_ddp,
    "unused": case_unused,
    "dropout": case_dropout,
    "trainer": case_trainer,
    "die": case_die,
}

if __name__ == "__main__":
    tt.set_num_threads(1)
    CASES[sys.argv[1]](*sys.argv[2:])
