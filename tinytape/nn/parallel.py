"""DistributedDataParallel: one model per process, gradients averaged over the processes.

    dist.init_process_group()
    model = DistributedDataParallel(model)       # rank 0's weights copied to every rank
    loss = loss_fn(model(x_shard), y_shard)     # each rank: its shard of the global batch
    loss.backward()                              # gradients averaged over the ranks ...
    optimizer.step()                             # ... so every rank takes the same step

PyTorch's design (Li et al. 2020, "PyTorch Distributed"): the parameters are packed, in the
reverse of their registration order (roughly the order backward finishes them), into
buckets of about bucket_cap_mb. A hook on each parameter (Tensor.
register_post_accumulate_grad_hook) copies its gradient into its bucket as soon as it is
complete; when a bucket is full, a non-blocking all-reduce of it starts while backward goes
on with the earlier layers. Buckets start in index order on every rank (MPI needs the same
order everywhere); after the last one, the averaged gradients are copied back into .grad,
before backward returns.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from .. import distributed as dist
from ..autograd.grad_mode import is_grad_enabled
from ..autograd.hooks import leaf_uses
from ..tensor import Tensor
from .module import Module


class _Bucket:
    """Gradients of some parameters of one dtype, packed in one flat buffer."""

    def __init__(self, params: list[Any], dtype: np.dtype) -> None:
        self.params = params
        self.offsets = np.cumsum([0] + [p.data.size for p in params]).tolist()
        self.buffer = np.zeros(self.offsets[-1], dtype=dtype)
        self.pending = len(params)  # gradients still to come this round
        self.work: dist.Work | None = None


class DistributedDataParallel(Module):
    """Wraps `module` (module.xxx in the state dict, as PyTorch) so that backward averages
    the gradients of its parameters over all processes of the group.

    bucket_cap_mb: the size of a bucket (one all-reduce); smaller ones start earlier.
    find_unused_parameters: parameters that the forward pass did not use still take part
        (with zeros, or the gradient accumulated under no_sync); without it, a backward
        that leaves parameters without gradient raises at the next forward, naming them.
    """

    def __init__(
        self, module: Module, bucket_cap_mb: float = 1.0, find_unused_parameters: bool = False
    ) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel wraps a Module, got {type(module).__name__}")
        if not bucket_cap_mb > 0:
            raise ValueError(
                f"DistributedDataParallel: bucket_cap_mb must be > 0, got {bucket_cap_mb}"
            )
        if not dist.is_initialized():
            raise RuntimeError(
                "DistributedDataParallel: call tinytape.distributed.init_process_group() first"
            )
        self.module = module
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self._names = {id(p): n for n, p in named}
        self._params = [p for _, p in named]
        self.find_unused_parameters = find_unused_parameters
        self.world_size = dist.get_world_size()
        dist.check_same_on_all_ranks(
            [(n, p.data.shape, str(p.data.dtype)) for n, p in named],
            "DistributedDataParallel: the trainable parameters",
        )
        self.broadcast_parameters()
        self._buckets = _make_buckets(self._params, bucket_cap_mb)
        self._where = {id(p): (b, i) for b in self._buckets for i, p in enumerate(b.params)}
        self._ready: set[int] = set()  # ids of the parameters whose gradient is in its bucket
        self._next_bucket = 0  # the next bucket to start: the same order on every rank
        self._sync = True
        #: perf_counter() times of the last round: when this rank's last gradient was ready
        #: (its last bucket started) and when the averaged gradients were in .grad
        self.last_ready_time = self.last_done_time = 0.0
        #: bytes of gradient whose all-reduce had finished when this rank's last gradient
        #: was ready (hidden behind backward, whatever the other ranks' timing)
        self.last_hidden_bytes = 0
        self._handles = (
            [p.register_post_accumulate_grad_hook(self._grad_ready) for p in self._params]
            if self.world_size > 1
            else []
        )

    def broadcast_parameters(self) -> None:
        """Copy rank 0's parameters and buffers to every rank (done at construction)."""
        for p in self.module.parameters():
            dist.broadcast(p.data)
        for _, b in self.module.named_buffers():
            if b is not None:
                dist.broadcast(b.data)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        out = self.module(*args, **kwargs)
        if self.training and is_grad_enabled():
            self.prepare_for_backward(out)
        return out

    @contextmanager
    def no_sync(self) -> Iterator[None]:
        """Backward passes inside accumulate gradients locally, with no communication; the
        first backward after it averages everything accumulated."""
        old, self._sync = self._sync, False
        try:
            yield
        finally:
            self._sync = old

    # ------------------------------------------------------------ one round
    def prepare_for_backward(self, outputs: Any) -> None:
        """Check that the previous backward averaged every gradient, and, with
        find_unused_parameters, mark the parameters that `outputs` do not depend on as
        ready (forward calls this; call it yourself on the loss when the forward pass does
        not go through this wrapper)."""
        if self.world_size == 1 or not self._sync:
            return
        self.check_reduction_finished()
        if self.find_unused_parameters:
            used = leaf_uses(list(_tensors(outputs)))
            for p in self._params:
                if id(p) not in used:
                    self._grad_ready(p)

    def check_reduction_finished(self) -> None:
        """Raise, naming them, if the last backward left parameters without a gradient, so
        that nothing was averaged (the next forward checks this too)."""
        if self._ready:
            missing = [self._names[id(p)] for p in self._params if id(p) not in self._ready]
            raise RuntimeError(
                "DistributedDataParallel: the previous backward pass gave no gradient to "
                f"{len(missing)} parameter(s) ({', '.join(missing[:8])}), so the gradients "
                "were not averaged; pass find_unused_parameters=True if parts of the model "
                "are not used in every step"
            )

    def _grad_ready(self, p: Any) -> None:
        """The hook: p's gradient for this backward is complete; pack it, and start every
        bucket that is now full (in order)."""
        if not self._sync:
            return
        bucket, i = self._where[id(p)]
        flat = bucket.buffer[bucket.offsets[i] : bucket.offsets[i + 1]]
        if p.grad is None:
            flat[...] = 0
        else:
            flat[...] = p.grad.data.reshape(-1)
        self._ready.add(id(p))
        bucket.pending -= 1
        buckets = self._buckets
        while self._next_bucket < len(buckets) and buckets[self._next_bucket].pending == 0:
            b = buckets[self._next_bucket]
            b.work = dist.all_reduce(b.buffer, dist.ReduceOp.SUM, async_op=True)
            self._next_bucket += 1
        if self._next_bucket == len(buckets):
            self._finish()
            return
        # MPI moves a non-blocking collective forward only inside MPI calls: test the ones
        # in flight while backward runs, so they progress before the end.
        for b in buckets[: self._next_bucket]:
            b.work.is_completed()

    def _finish(self) -> None:
        """Wait for every bucket, then write the averages into .grad; reset for the next."""
        self.last_ready_time = time.perf_counter()
        self.last_hidden_bytes = sum(
            b.buffer.nbytes for b in self._buckets if b.work.is_completed()
        )
        for b in self._buckets:
            b.work.wait()
        self.last_done_time = time.perf_counter()
        scale = 1.0 / self.world_size
        for b in self._buckets:
            b.buffer *= scale
            for i, p in enumerate(b.params):
                avg = b.buffer[b.offsets[i] : b.offsets[i + 1]].reshape(p.data.shape)
                if p.grad is None:  # unused here, used elsewhere (find_unused_parameters)
                    p.grad = Tensor._wrap(avg.copy())
                else:
                    p.grad.data[...] = avg
            b.work, b.pending = None, len(b.params)
        self._ready.clear()
        self._next_bucket = 0

    def extra_repr(self) -> str:
        sizes = ", ".join(str(len(b.params)) for b in self._buckets)
        return f"world_size={self.world_size}, buckets of {sizes} parameters"


def _make_buckets(params: list[Any], cap_mb: float) -> list[_Bucket]:
    """Parameters in reverse order (backward finishes the last layers first), one dtype per
    bucket, a bucket closed once it holds cap_mb."""
    cap = cap_mb * 2**20
    buckets: list[_Bucket] = []
    filling: dict[np.dtype, list[Any]] = {}
    nbytes: dict[np.dtype, int] = {}
    for p in reversed(params):
        dt = p.data.dtype
        filling.setdefault(dt, []).append(p)
        nbytes[dt] = nbytes.get(dt, 0) + p.data.nbytes
        if nbytes[dt] >= cap:
            buckets.append(_Bucket(filling.pop(dt), dt))
            nbytes[dt] = 0
    buckets.extend(_Bucket(ps, dt) for dt, ps in filling.items())
    return buckets


def _tensors(obj: Any) -> Iterator[Tensor]:
    """The tensors in a forward's output (a tensor, or tuples, lists, dicts of them)."""
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)
