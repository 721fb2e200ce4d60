"""Splitting work over the ranks: batches, dataset indices, independent runs.

Every rank draws the same global batch from a generator seeded alike on all ranks and keeps
its own slice (`shard_batch`); so the global batch is that of one process with the same
seed, whatever the number of processes, and a run resumes at another world size.
`DistributedSampler` is PyTorch's index sampler for code that loops over a dataset itself.
`shard_runs` / `gather_runs` spread independent runs (seeds, sweep points) over the ranks;
`run_in_rounds` does so a round at a time, for a caller that records results as they come.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np

from .process_group import (
    _default_group,
    all_gather_object,
    get_rank,
    get_world_size,
    group_of_one,
)

T = TypeVar("T")
R = TypeVar("R")


def shard_range(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """[start, stop) of rank's contiguous share of n items; shares differ by at most one,
    the larger ones first."""
    if not 0 <= rank < world_size:
        raise ValueError(f"shard_range: rank {rank} is not in [0, {world_size})")
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


def shard_batch(batch: Any, rank: int | None = None, world_size: int | None = None) -> Any:
    """This rank's slice (along the first axis) of a global batch: an array, or a tuple/list
    of arrays of the same length. Raises when the batch has fewer items than ranks."""
    rank = get_rank() if rank is None else rank
    world_size = get_world_size() if world_size is None else world_size
    arrays = batch if isinstance(batch, (tuple, list)) else (batch,)
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(
            f"shard_batch: the batch's arrays have different lengths {[len(a) for a in arrays]}"
        )
    if n < world_size:
        raise ValueError(
            f"shard_batch: a batch of {n} items cannot be split over "
            f"{world_size} ranks; use a batch of at least {world_size}"
        )
    start, stop = shard_range(n, rank, world_size)
    parts = [a[start:stop] for a in arrays]
    if isinstance(batch, (tuple, list)):
        return type(batch)(parts)
    return parts[0]


class DistributedSampler:
    """PyTorch's DistributedSampler: the dataset indices of one rank for an epoch.

    Each epoch is a permutation of range(num_samples) seeded by (seed, epoch), the same on
    every rank (call set_epoch(e) before each epoch); rank r takes every num_replicas-th
    index from r. Without drop_last the permutation is padded with its first indices so
    that every rank gets the same count; with it, the tail is dropped.
    """

    def __init__(
        self,
        num_samples: int,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        self.num_replicas = get_world_size() if num_replicas is None else int(num_replicas)
        self.rank = get_rank() if rank is None else int(rank)
        if not 0 <= self.rank < self.num_replicas:
            raise ValueError(
                f"DistributedSampler: rank {self.rank} is not in [0, {self.num_replicas})"
            )
        if num_samples < 1:
            raise ValueError(f"DistributedSampler: num_samples must be >= 1, got {num_samples}")
        self.num_samples_total, self.shuffle, self.seed = int(num_samples), shuffle, int(seed)
        self.drop_last, self.epoch = drop_last, 0
        if drop_last:
            self.num_samples = self.num_samples_total // self.num_replicas
        else:
            self.num_samples = math.ceil(self.num_samples_total / self.num_replicas)
        if self.num_samples == 0:
            raise ValueError(
                f"DistributedSampler: {num_samples} samples over "
                f"{self.num_replicas} ranks with drop_last leave none"
            )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        n = self.num_samples_total
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(n)
        else:
            order = np.arange(n)
        total = self.num_samples * self.num_replicas
        if total > n:
            order = np.resize(order, total)  # pads by repeating from the start
        order = order[:total]
        return iter(order[self.rank :: self.num_replicas].tolist())


def shard_runs(items: Sequence[T]) -> list[tuple[int, T]]:
    """This rank's share of independent runs: (index, item) for every world_size-th item
    from the rank's own number (round robin, so long and short runs mix)."""
    rank, world = get_rank(), get_world_size()
    return [(i, items[i]) for i in range(rank, len(items), world)]


def gather_runs(results: Sequence[tuple[int, Any]], n: int | None = None) -> list[Any]:
    """Every rank's (index, result) pairs from shard_runs, gathered on every rank into one
    list in the order of the items. n: the number of items, to check that none is missing."""
    _default_group()
    parts: list[Any] = [None] * get_world_size()
    all_gather_object(parts, list(results))
    merged: dict[int, Any] = {}
    for part in parts:
        for index, result in part:
            if index in merged:
                raise ValueError(f"gather_runs: item {index} was run by more than one rank")
            merged[index] = result
    count = len(merged) if n is None else n
    missing = [i for i in range(count) if i not in merged]
    if missing or len(merged) != count:
        raise ValueError(
            f"gather_runs: no result for items {missing[:10]} "
            f"({len(merged)} results for {count} items)"
        )
    return [merged[i] for i in range(count)]


def run_in_rounds(run: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
    """run(item) for every item, shared out over the ranks in rounds of one item per rank,
    each run alone in its rank (`group_of_one`: a Trainer made inside does not go
    data-parallel); yields the results on every rank in the items' order, a round at a
    time, so that rank 0 can record them as they come (and an interrupted run keeps the
    rounds it finished). A round takes as long as its slowest run. In a group of one
    (or none), simply run(item) for each item, one after the other."""
    world = get_world_size()
    if world == 1:
        yield from (run(item) for item in items)
        return
    for start in range(0, len(items), world):
        chunk = items[start : start + world]
        mine = shard_runs(chunk)
        with group_of_one():
            done = [(i, run(item)) for i, item in mine]
        yield from gather_runs(done, len(chunk))
