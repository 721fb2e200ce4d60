"""The layer-wise pretraining experiment: does greedy pretraining help a deep network that
has only a few labels, and does it beat what a practitioner would do instead?

A deep MLP (sigmoid units, PyTorch's default init: the classic setting of Bengio et al.
2007) with k labelled training examples per class, the other training rows (without
labels) being the pool the autoencoder learns from. Arms, on the same labelled subset per
seed (paired): random init; greedy supervised pretraining; greedy denoising-autoencoder
pretraining (each then fine-tuned with a fresh head); and the shallow baselines on the raw
features, logistic regression and 1-nearest-neighbour (scikit-learn). Depth 1, 3 and 5 at
one label count (Erhan et al. 2010's test: does pretraining matter more the deeper the
net?), and train against test accuracy (optimization against regularization).

Protocol: train / validation / test disjoint; the hyperparameters are fixed across label
counts and arms (Oliver et al. 2018); the one choice made per run, the fine-tuning step
(early stopping), is made on a validation subset of k examples per class (never larger than
the labelled set; with all labels, the whole validation split); test is read once at the
end. Scaling statistics (for --data) come from the training split only.

    config = LayerwiseConfig.quick()
    results = run_layerwise(config, digits_splits(seed=config.split_seed), "runs/lw")
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .. import distributed as dist
from .. import nn
from ..data.arrays import Split, Splits, take_per_class
from ..data.digits import MissingDependency
from ..train.layerwise import (
    MLP,
    build_mlp,
    classifier_accuracy,
    finetune_mlp,
    init_linear,
    pretrain_autoencoder,
    pretrain_supervised,
)
from ..train.trainer import MetricsLogger, Progress
from .protocol import (
    RATE,
    Interval,
    Protocol,
    Target,
    mean_interval,
    paired_interval,
    prepare_run_dir,
    target,
    write_results,
)

#: deep arms (fine-tuned MLPs) and shallow baselines (on the raw features)
DEEP = ("random", "supervised", "autoencoder", "random_long")
SHALLOW = ("logreg", "nn1")
LABELS = {
    "random": "random init",
    "random_long": "random init, long budget",
    "supervised": "supervised pretraining",
    "autoencoder": "autoencoder pretraining",
    "logreg": "logistic regression (raw features)",
    "nn1": "1-nearest-neighbour (raw features)",
}
#: the label count of the headline comparison and of the depth study
HEADLINE_K = 10


@dataclass(frozen=True)
class LayerwiseConfig:
    """Everything that defines a run; the defaults are the documented one.

    width, depth: the MLP's hidden layers (depth of them, width units each); depths: the
    depths of the depth study (random init and autoencoder at depth_labels per class).
    labels_per_class: labelled training examples per class (None: every training label).
    seeds: the reported seeds (each draws the labelled and validation subsets, the initial
    weights and the batch order). Seeds 0-2 and split 0 were used while the settings below
    were developed, so the documented run uses seeds 10-19 and split 1.
    activations: "sigmoid" (default init) and/or "relu" (Glorot init, the modern control).
    finetune_steps: the fine-tuning budget of every deep arm (long_factor times it for
    random_long); the step kept is chosen on validation every eval_every steps.
    lr: Adam's learning rate everywhere. ae_steps, ae_batch_size, corruption, noise, tied:
    the denoising autoencoder, per layer, on the unlabelled pool. sup_steps: supervised
    pretraining per layer. logreg_c: the inverse regularization of logistic regression
    (scikit-learn's default, not tuned).
    """

    width: int = 256
    depth: int = 3
    depths: tuple[int, ...] = (1, 3, 5)
    depth_labels: int = HEADLINE_K
    labels_per_class: tuple[int | None, ...] = (1, 5, 10, 30, None)
    seeds: tuple[int, ...] = tuple(range(10, 20))
    split_seed: int = 1
    activations: tuple[str, ...] = ("sigmoid",)
    methods: tuple[str, ...] = ("random", "supervised", "autoencoder", "logreg", "nn1")
    finetune_steps: int = 600
    long_factor: int = 4
    eval_every: int = 50
    batch_size: int = 32
    lr: float = 3e-3
    ae_steps: int = 600
    ae_batch_size: int = 64
    corruption: float = 0.25
    noise: str = "mask"
    tied: bool = False
    sup_steps: int = 200
    logreg_c: float = 1.0

    def __post_init__(self) -> None:
        def positive(name: str, value: int) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")

        for name in ("width", "depth", "depth_labels", "finetune_steps", "long_factor",
                     "eval_every", "batch_size", "ae_batch_size"):
            positive(name, getattr(self, name))
        for name in ("ae_steps", "sup_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.depths or any(d < 1 for d in self.depths):
            raise ValueError(f"depths must be integers >= 1, got {self.depths}")
        if not self.labels_per_class:
            raise ValueError("labels_per_class is empty")
        for k in self.labels_per_class:
            if k is not None and (not isinstance(k, int) or k < 1):
                raise ValueError(f"labels per class must be >= 1 (or None: all), got {k!r}")
        if len(set(self.labels_per_class)) != len(self.labels_per_class):
            raise ValueError(f"labels_per_class lists a count twice: {self.labels_per_class}")
        if not self.seeds or any(s < 0 for s in self.seeds) or len(set(self.seeds)) != len(
                self.seeds):
            raise ValueError(f"seeds must be distinct integers >= 0, got {self.seeds}")
        bad = [a for a in self.activations if a not in ("sigmoid", "relu")]
        if bad or not self.activations:
            raise ValueError(f"activations: choose from sigmoid, relu, got {self.activations}")
        bad = [m for m in self.methods if m not in DEEP + SHALLOW]
        if bad or not self.methods:
            raise ValueError(f"methods: choose from {DEEP + SHALLOW}, got {self.methods}")
        if not self.lr > 0 or not self.logreg_c > 0:
            raise ValueError(f"lr and logreg_c must be > 0, got {self.lr}, {self.logreg_c}")
        if self.noise not in ("mask", "gaussian"):
            raise ValueError(f"noise must be 'mask' or 'gaussian', got {self.noise!r}")
        if self.corruption < 0 or (self.noise == "mask" and self.corruption >= 1):
            raise ValueError(f"corruption must be in [0, 1) for masking noise (>= 0 for "
                             f"gaussian), got {self.corruption}")

    @classmethod
    def quick(cls, **overrides: Any) -> LayerwiseConfig:
        """A version that runs in well under a minute on 2 cores: 4 seeds, 3 label counts,
        depths 1 and 3, short budgets."""
        base: dict[str, Any] = dict(labels_per_class=(5, 10, None), seeds=(10, 11, 12, 13),
                                    depths=(1, 3), finetune_steps=150, ae_steps=100,
                                    sup_steps=50)
        base.update(overrides)
        return cls(**base)

    def init_for(self, activation: str) -> str:
        """The weight init of a network with this activation (build_mlp's `init`)."""
        return "default" if activation == "sigmoid" else "glorot"

    def deep_methods(self) -> list[str]:
        return [m for m in DEEP if m in self.methods]

    def study_depths(self) -> list[int]:
        """The depths of the depth study (only when depth_labels is among the label counts
        and random init and the autoencoder are both run)."""
        if self.depth_labels not in self.labels_per_class or not {
                "random", "autoencoder"} <= set(self.methods):
            return []
        return sorted(d for d in set(self.depths) if d != self.depth)

    def job_steps(self) -> int:
        """The optimizer steps of one (activation, seed) job, for the progress bar."""
        ks = len(self.labels_per_class)
        deepest = max([self.depth, *self.study_depths()])
        steps = 0
        for m in self.deep_methods():
            steps += self.finetune_steps * ks * (self.long_factor if m == "random_long" else 1)
        if "supervised" in self.methods:
            steps += self.sup_steps * self.depth * ks
        if "autoencoder" in self.methods:
            steps += self.ae_steps * deepest
        return steps + 2 * self.finetune_steps * len(self.study_depths())

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["labels_per_class"] = [k if k is not None else "all" for k in self.labels_per_class]
        return d


def k_name(k: int | None) -> str:
    return "all" if k is None else str(k)


def validation_subset(splits: Splits, k: int | None, seed: int) -> Split:
    """k validation examples per class (fewer if a class has fewer), drawn with seed: the
    validation set of a run with k labels per class; None: the whole validation split."""
    if k is None:
        return splits.val
    counts = np.bincount(splits.val.y, minlength=splits.num_classes)
    per = int(min(k, counts[counts > 0].min()))
    idx = take_per_class(splits.val.y, per, seed + 7919)
    return Split(splits.val.x[idx], splits.val.y[idx])


# ---------------------------------------------------------------------------- one job

def shallow_baseline(method: str, train: Split, test: Split, c: float = 1.0
                     ) -> tuple[float, float]:
    """(train accuracy, test accuracy) of logistic regression ("logreg", L2 with inverse
    strength c) or 1-nearest-neighbour ("nn1") on the raw features (scikit-learn)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from threadpoolctl import threadpool_limits  # a dependency of scikit-learn

    if method == "logreg":
        clf: Any = LogisticRegression(C=c, max_iter=2000)
    elif method == "nn1":
        clf = KNeighborsClassifier(n_neighbors=1)
    else:
        raise ValueError(f"unknown shallow baseline {method!r}: one of {SHALLOW}")
    # one BLAS thread: these problems are small, and BLAS threads waiting for a busy core
    # make the fit 30 times slower on a loaded machine
    with threadpool_limits(1):
        clf.fit(train.x, train.y)
        return float(clf.score(train.x, train.y)), float(clf.score(test.x, test.y))


def run_job(config: LayerwiseConfig, splits: Splits, activation: str, seed: int,
            progress: Progress | None = None) -> dict[str, Any]:
    """Every arm, label count and depth for one activation and seed. Returns {"runs":
    [...], "records": [...]} (the run records and the metrics.jsonl records)."""
    cfg = config
    metrics = MetricsLogger(None, {"activation": activation, "seed": seed}, keep=True)
    init = cfg.init_for(activation)
    classes = splits.num_classes
    n_in = splits.train.x.shape[1]
    prog: Any = progress if progress is not None else False
    deepest = max([cfg.depth, *cfg.study_depths()])

    def fresh(depth: int) -> MLP:
        return build_mlp([n_in] + [cfg.width] * depth, classes, activation, init,
                         generator=seed)

    def new_head() -> nn.Linear:
        head = nn.Linear(cfg.width, classes, generator=seed + 10_007)
        init_linear(head, init, np.random.default_rng(seed + 10_007))
        return head

    # greedy autoencoder pretraining is prefix-consistent (layer i sees only the layers
    # below it), so one stack of the deepest depth serves every depth
    ae_state, ae_seconds = None, 0.0
    if "autoencoder" in cfg.methods:
        t0 = time.perf_counter()
        stack = fresh(deepest)
        pretrain_autoencoder(stack.blocks(), splits.unlabelled, steps=cfg.ae_steps,
                             batch_size=cfg.ae_batch_size, lr=cfg.lr, tied=cfg.tied,
                             corruption=cfg.corruption, noise=cfg.noise, seed=seed,
                             metrics=metrics.child(phase_of="autoencoder"), progress=prog)
        ae_state = stack.state_dict()
        ae_seconds = time.perf_counter() - t0

    runs: list[dict[str, Any]] = []
    for k in cfg.labels_per_class:
        lab = splits.labelled(k, seed)
        val = validation_subset(splits, k, seed)
        bs = min(cfg.batch_size, len(lab))
        log = metrics.child(labels_per_class=k_name(k))
        base = {"activation": activation, "seed": seed, "labels_per_class": k_name(k),
                "labelled": len(lab), "validation": len(val)}
        depths = [cfg.depth] + (cfg.study_depths() if k == cfg.depth_labels else [])
        for depth in depths:
            for method in cfg.deep_methods():
                if depth != cfg.depth and method not in ("random", "autoencoder"):
                    continue
                t0 = time.perf_counter()
                model = fresh(depth)
                if method == "supervised":
                    pretrain_supervised(model.blocks(), lab.x, lab.y, classes,
                                        steps=cfg.sup_steps, batch_size=bs, lr=cfg.lr,
                                        seed=seed, metrics=log.child(method=method),
                                        progress=prog)
                    model = MLP(*model.blocks(), new_head())
                elif method == "autoencoder":
                    stack = fresh(deepest)
                    stack.load_state_dict(ae_state)
                    model = MLP(*stack.blocks()[:depth], new_head())
                steps = cfg.finetune_steps * (cfg.long_factor if method == "random_long"
                                              else 1)
                result = finetune_mlp(model, lab.x, lab.y, steps=steps, batch_size=bs,
                                      lr=cfg.lr, seed=seed, val=(val.x, val.y),
                                      eval_every=cfg.eval_every, keep_best=True,
                                      metrics=log.child(method=method, depth=depth),
                                      progress=prog)
                best = max(result.evals, key=lambda e: e["val_acc"])  # the first of ties
                run = {**base, "method": method, "depth": depth, "steps": steps,
                       "best_step": int(best["step"]), "val_acc": best["val_acc"],
                       "train_acc": classifier_accuracy(model, lab.x, lab.y),
                       "test_acc": classifier_accuracy(model, splits.test.x, splits.test.y),
                       "seconds": time.perf_counter() - t0}
                if method == "autoencoder" and ae_seconds:
                    run["pretrain_seconds"], ae_seconds = ae_seconds, 0.0
                log.log(event="test", phase="test", method=method, depth=depth,
                        test_acc=run["test_acc"], train_acc=run["train_acc"])
                runs.append(run)
        for method in (m for m in SHALLOW if m in cfg.methods):
            t0 = time.perf_counter()
            train_acc, test_acc = shallow_baseline(method, lab, splits.test, cfg.logreg_c)
            runs.append({**base, "method": method, "depth": 0, "train_acc": train_acc,
                         "test_acc": test_acc, "seconds": time.perf_counter() - t0})
    if isinstance(progress, _Relay):
        progress.flush()
    return {"runs": runs, "records": metrics.records}


# ---------------------------------------------------------------------------- workers

class _Relay(Progress):
    """A silent Progress that forwards (steps, items, loss) to `sink`, at most 5 times a
    second (the progress of jobs in worker processes, shown by the parent)."""

    def __init__(self, sink: Callable[[int, int, float], None]) -> None:
        super().__init__(0, mode="off")
        self.sink = sink
        self._pending = [0, 0, float("nan")]
        self._last = time.perf_counter()

    def update(self, n: int = 1, items: int = 0, **values: float) -> None:
        self._pending[0] += n
        self._pending[1] += items
        self._pending[2] = float(values.get("loss", self._pending[2]))
        now = time.perf_counter()
        if now - self._last >= 0.2:
            self.flush()
            self._last = now

    def flush(self) -> None:
        if self._pending[0]:
            self.sink(*self._pending)
            self._pending = [0, 0, self._pending[2]]


_QUEUE: Any = None


def _worker_init(queue: Any, threads: int) -> None:
    global _QUEUE
    _QUEUE = queue
    from ..config import set_num_threads
    set_num_threads(threads)


def _worker_job(args: tuple) -> dict[str, Any]:
    config, splits, activation, seed = args
    relay = _Relay(lambda n, items, loss: _QUEUE.put((n, items, loss)))
    return run_job(config, splits, activation, seed, relay)


def _run_parallel(jobs: list[tuple[str, int]], config: LayerwiseConfig, splits: Splits,
                  workers: int, threads: int, bar: Progress,
                  collect: Callable[[dict[str, Any]], None]) -> None:
    """The jobs in a pool of spawned processes (fork is unsafe once OpenMP has run), their
    progress forwarded to `bar` and their results to `collect` as they finish."""
    import concurrent.futures as cf
    import multiprocessing as mp
    import queue as queue_mod

    ctx = mp.get_context("spawn")
    q = ctx.Queue()

    def drain() -> None:
        while True:
            try:
                n, items, loss = q.get_nowait()
            except queue_mod.Empty:
                return
            bar.update(n, items, loss=loss)

    with cf.ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx,
                                initializer=_worker_init, initargs=(q, threads)) as pool:
        pending = {pool.submit(_worker_job, (config, splits, a, s)) for a, s in jobs}
        try:
            while pending:
                done, pending = cf.wait(pending, timeout=0.2, return_when=cf.FIRST_COMPLETED)
                drain()
                for f in done:
                    collect(f.result())
        except BaseException:
            for f in pending:
                f.cancel()
            raise
    drain()


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children (the workers):
    on a busy machine, cpu / cores estimates the wall time the run would take alone."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return time.process_time()
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


# ---------------------------------------------------------------------------- the run

def run_layerwise(config: LayerwiseConfig, splits: Splits, out_dir: str | None = None,
                  workers: int = 1, threads: int = 1, progress: str | bool | None = None
                  ) -> dict[str, Any]:
    """Run every (activation, seed) job in `workers` processes (1: in this one) with
    `threads` kernel threads each; with out_dir, write metrics.jsonl and results.json (the
    shared schema). Returns the results as written.

    Under mpiexec (after init_process_group) the ranks share out the jobs (`shard_runs`),
    each running its own in its process (`workers` is then ignored), and every rank gets
    all the results (`gather_runs`): the same as one process, but for the timings. Rank 0
    alone writes the files and shows progress (of its own jobs)."""
    if workers < 1 or threads < 1:
        raise ValueError(f"workers and threads must be >= 1, got {workers}, {threads}")
    counts = np.bincount(splits.train.y, minlength=splits.num_classes)
    too_many = [k for k in config.labels_per_class if k is not None and k > counts.min()]
    if too_many:
        raise ValueError(f"{too_many[0]} labels per class: the smallest class has only "
                         f"{counts.min()} training examples")
    if set(SHALLOW) & set(config.methods):
        try:
            import sklearn  # noqa: F401
        except ImportError:
            raise MissingDependency("the shallow baselines need scikit-learn: pip install "
                                    "'tinytape[data]' (or pip install scikit-learn)") from None
    ranks, writes = dist.get_world_size(), dist.get_rank() == 0
    if out_dir is not None:  # one run per folder: its records only
        dist.on_rank_zero(lambda: prepare_run_dir(
            out_dir, config.to_dict(), resume=False,
            outputs=("results.json", "metrics.jsonl", "layerwise.png")))
    jobs = [(a, s) for a in config.activations for s in config.seeds]
    mine = dist.shard_runs(jobs)  # all of them in a group of one
    mode = {True: None, None: None, False: "off"}.get(progress, progress)  # type: ignore
    bar = Progress(config.job_steps() * len(mine), "layerwise",
                   mode=mode if writes else "off", unit="images")
    logger = MetricsLogger(None if out_dir is None or not writes
                           else f"{out_dir}/metrics.jsonl")
    runs: list[dict[str, Any]] = []
    t0, cpu0 = time.perf_counter(), _cpu_seconds()

    def collect(out: dict[str, Any]) -> None:
        runs.extend(out["runs"])
        for rec in out["records"]:
            logger.log(**rec)

    try:
        if ranks > 1:
            outs: list[tuple[int, dict[str, Any]]] = []
            _run_here(mine, config, splits, threads, bar, lambda i, out: outs.append((i, out)))
            for out in dist.gather_runs(outs, len(jobs)):  # in the jobs' order
                collect(out)
        elif workers == 1:
            _run_here(mine, config, splits, threads, bar, lambda i, out: collect(out))
        else:
            _run_parallel(jobs, config, splits, workers, threads, bar, collect)
    finally:
        bar.close()
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    if ranks > 1:  # the CPU time of every rank
        total = np.array([cpu])
        dist.all_reduce(total)
        cpu = float(total[0])
    order = {s: i for i, s in enumerate(config.seeds)}
    ks = [k_name(k) for k in config.labels_per_class]
    arms = list(DEEP + SHALLOW)
    runs.sort(key=lambda r: (r["activation"], order[r["seed"]], ks.index(r["labels_per_class"]),
                             r["depth"], arms.index(r["method"])))
    results = summarize(config, splits, runs)
    results["metrics"].update(wall_seconds=wall, cpu_seconds=cpu,
                              workers=1 if ranks > 1 else workers, ranks=ranks,
                              threads=threads)
    if out_dir is not None and writes:
        write_results(out_dir, "layerwise", results["config"], results["protocol"],
                      results["metrics"], results["targets"], results["tables"])
    return results


def _run_here(mine: Sequence[tuple[int, tuple[str, int]]], config: LayerwiseConfig,
              splits: Splits, threads: int, bar: Progress,
              done: Callable[[int, dict[str, Any]], None]) -> None:
    """Each (index, (activation, seed)) job of `mine`, one after the other in this process
    with `threads` kernel threads, alone (not data-parallel with other ranks); done(index,
    output) as each ends."""
    from ..config import get_num_threads, set_num_threads

    saved = get_num_threads()
    set_num_threads(threads)
    try:
        with dist.group_of_one():
            for i, (a, s) in mine:
                relay = _Relay(lambda n, items, loss: bar.update(n, items, loss=loss))
                done(i, run_job(config, splits, a, s, relay))
    finally:
        set_num_threads(saved)


# ---------------------------------------------------------------------------- summaries

def _cells(runs: Sequence[Mapping[str, Any]], key: str = "test_acc"
           ) -> dict[tuple[str, str, str, int], dict[int, float]]:
    """(activation, method, k, depth) -> seed -> value in percent."""
    out: dict[tuple[str, str, str, int], dict[int, float]] = {}
    for r in runs:
        cell = out.setdefault((r["activation"], r["method"], r["labels_per_class"],
                               r["depth"]), {})
        cell[r["seed"]] = 100.0 * r[key]
    return out


def arm_interval(cells: Mapping[Any, Mapping[int, float]], key: tuple) -> Interval | None:
    """An arm's accuracy in percent: mean [95% t interval, within 0 and 100] over seeds."""
    cell = cells.get(key)
    percent = (100.0 * RATE[0], 100.0 * RATE[1])
    return None if not cell else mean_interval([cell[s] for s in sorted(cell)], within=percent)


def diff_interval(cells: Mapping[Any, Mapping[int, float]], a: tuple, b: tuple
                  ) -> Interval | None:
    """The paired interval of a - b over the seeds both arms ran."""
    ca, cb = cells.get(a), cells.get(b)
    if not ca or not cb:
        return None
    seeds = sorted(set(ca) & set(cb))
    return paired_interval([ca[s] for s in seeds], [cb[s] for s in seeds])


def _fmt(iv: Interval | None, signed: bool = False) -> str:
    if iv is None:
        return "-"
    if iv.n < 2:
        return f"{iv.mean:+.1f}" if signed else f"{iv.mean:.1f}"
    sign = "+" if signed else ""
    return f"{iv.mean:{sign}.1f} [{iv.lo:{sign}.1f}, {iv.hi:{sign}.1f}]"


def _fmt_sd(iv: Interval | None) -> str:
    if iv is None:
        return "-"
    return f"{iv.mean:.1f}" if iv.n < 2 else f"{iv.mean:.1f} ({iv.sd:.1f})"


def summarize(config: LayerwiseConfig, splits: Splits, runs: Sequence[Mapping[str, Any]]
              ) -> dict[str, Any]:
    """The results in the shared schema: config, protocol, metrics (the runs), targets with
    paired intervals, and the tables."""
    cfg = config
    test, train = _cells(runs), _cells(runs, "train_acc")
    ks = [k_name(k) for k in cfg.labels_per_class]
    methods = [m for m in DEEP + SHALLOW if m in cfg.methods]
    depth_of = {m: (0 if m in SHALLOW else cfg.depth) for m in methods}
    n = len(cfg.seeds)
    tables: dict[str, Any] = {}
    targets: list[Target] = []
    for act in cfg.activations:
        tag = f"{act}: " if len(cfg.activations) > 1 else ""
        net = f"{cfg.depth} x {cfg.width} {act} MLP"
        tables[f"{act}_test"] = {
            "caption": f"{tag}test accuracy (%), mean [95% interval] over {n} seeds; deep arms "
                       f"a {net}",
            "columns": ["labels per class", *ks],
            "rows": [[LABELS[m], *(_fmt(arm_interval(test, (act, m, k, depth_of[m])))
                                   for k in ks)] for m in methods]}
        tables[f"{act}_train"] = {
            "caption": f"{tag}training accuracy on the labelled set (%), mean (standard "
                       f"deviation) over {n} seeds: below 100, the arm did not fit its "
                       f"labelled examples (optimization), at 100 with a low test accuracy it "
                       f"overfits (regularization)",
            "columns": ["labels per class", *ks],
            "rows": [[LABELS[m], *(_fmt_sd(arm_interval(train, (act, m, k, depth_of[m])))
                                   for k in ks)] for m in methods]}
        pairs = [(a, b) for a, b in (("autoencoder", "random"), ("supervised", "random"),
                                     ("autoencoder", "supervised"), ("autoencoder", "logreg"),
                                     ("autoencoder", "nn1"), ("random", "logreg"))
                 if a in methods and b in methods]
        tables[f"{act}_differences"] = {
            "caption": f"{tag}paired differences of test accuracy (points), mean [95% "
                       f"paired t interval] over {n} seeds (same labelled subset per seed)",
            "columns": ["difference", *ks],
            "rows": [[f"{LABELS[a]} - {LABELS[b]}",
                      *(_fmt(diff_interval(test, (act, a, k, depth_of[a]),
                                           (act, b, k, depth_of[b])), signed=True)
                        for k in ks)] for a, b in pairs]}
        dk = str(cfg.depth_labels)
        depths = sorted([cfg.depth, *cfg.study_depths()])
        if len(depths) > 1:
            rows = []
            for d in depths:
                key_r, key_a = (act, "random", dk, d), (act, "autoencoder", dk, d)
                rows.append([d, _fmt(arm_interval(test, key_r)),
                             _fmt(arm_interval(test, key_a)),
                             _fmt(diff_interval(test, key_a, key_r), signed=True),
                             _fmt_sd(arm_interval(train, key_r)),
                             _fmt_sd(arm_interval(train, key_a))])
            tables[f"{act}_depth"] = {
                "caption": f"{tag}depth study at {dk} labels per class: test accuracy (%), "
                           f"mean [95% interval], and training accuracy, mean (standard "
                           f"deviation), over {n} seeds",
                "columns": ["hidden layers", "random init: test", "autoencoder: test",
                            "autoencoder - random (points)", "random init: train",
                            "autoencoder: train"],
                "rows": rows}
        targets += headline_targets(test, act, cfg, prefix=tag)
    protocol = Protocol(
        splits={"train (unlabelled pool)": len(splits.train),
                "validation": len(splits.val), "test": len(splits.test)},
        seeds=list(cfg.seeds),
        tuned={"fine-tuning step (early stopping, every "
               f"{cfg.eval_every} steps, on k validation examples per class)": "validation"},
        notes=(f"Hyperparameters fixed across label counts and arms (Oliver et al. 2018); "
               f"settings developed on the digits, split 0, seeds 0-2; this run: split "
               f"{cfg.split_seed}, seeds {cfg.seeds[0]}-{cfg.seeds[-1]}. "
               f"The validation set of a run has k examples per class (never more than the "
               f"labelled set; all labels: the whole validation split). Logistic regression: "
               f"C = {cfg.logreg_c}, not tuned. Test read once per run, at the end."))
    metrics = {"data": splits.describe(),
               "network": "-".join(str(v) for v in [splits.train.x.shape[1],
                                                     *[cfg.width] * cfg.depth,
                                                     splits.num_classes]),
               "labelled_all_per_class": len(splits.train) / splits.num_classes,
               "runs": list(runs)}
    return {"config": cfg.to_dict(), "protocol": protocol, "metrics": metrics,
            "targets": targets, "tables": tables}


def headline_targets(test: Mapping[Any, Mapping[int, float]], act: str, cfg: LayerwiseConfig,
                     prefix: str = "") -> list[Target]:
    """At HEADLINE_K labels per class, depth cfg.depth, in points: autoencoder minus random
    init above 0 (and the stretch: above 10), and the autoencoder against each shallow
    baseline (reported as measured, bound 0)."""
    k = str(HEADLINE_K)
    out = []
    ae = (act, "autoencoder", k, cfg.depth)
    for other, depth, bound, label in (("random", cfg.depth, 0.0, "random init"),
                                       ("random", cfg.depth, 10.0, "random init (stretch)"),
                                       ("logreg", 0, 0.0, "logistic regression"),
                                       ("nn1", 0, 0.0, "1-NN")):
        iv = diff_interval(test, ae, (act, other, k, depth))
        if iv is not None:
            out.append(target(f"{prefix}autoencoder - {label}, {k} labels/class (points)",
                              iv, bound))
    return out


def format_summary(results: Mapping[str, Any]) -> str:
    """The tables and the targets as markdown (what the CLI prints)."""
    from .protocol import markdown_table, targets_table

    parts = []
    for table in results["tables"].values():
        parts += [table["caption"], markdown_table(table["columns"], table["rows"]), ""]
    if results["targets"]:
        parts.append(targets_table(results["targets"], digits=2))
    return "\n".join(parts)
