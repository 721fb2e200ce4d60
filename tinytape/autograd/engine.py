"""The backward pass: replay the recorded ops in reverse tape order.

Every recorded op has a sequence number, and an op's inputs were made before it, so
popping nodes from a max-heap of sequence numbers visits each node only after every
node that consumed its output: the gradient it receives is complete. No recursion,
so a chain of 100,000 ops works. A leaf's gradient is summed over its uses and
delivered once, at the end; a leaf with a post-accumulate-grad hook (autograd.hooks) gets
it as soon as its last use has been run, and its hooks run then, mid-backward.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .. import backend, profiler
from .grad_mode import set_grad_enabled
from .hooks import leaf_uses, post_accumulate_grad_hooks, run_post_accumulate_grad_hooks

if TYPE_CHECKING:
    from .function import Function


def _root_grad(op: str, t: Tensor, g: Tensor | np.ndarray | float | None) -> Tensor:
    if g is None:
        if t.data.size != 1:
            raise RuntimeError(
                f"{op}: grad can be created implicitly only for a scalar output, but this "
                f"tensor has shape {t.shape}; pass a gradient of that shape "
                f"(e.g. {op}(ones_like(t)))"
            )
        return wrap_array(np.ones(t.shape, dtype=t.dtype))
    if not isinstance(g, Tensor):
        g = wrap_array(np.asarray(g, dtype=t.dtype))
    if g.shape != t.shape:
        raise ValueError(f"{op}: gradient of shape {g.shape} for a tensor of shape {t.shape}")
    if g.dtype != t.dtype:
        raise TypeError(f"{op}: gradient of dtype {g.dtype} for a tensor of dtype {t.dtype}")
    return g


def _leaf_use_done(leaf: Tensor, leaves: dict, uses: dict[int, int], create_graph: bool) -> None:
    """One of a hooked leaf's uses has sent its gradient (or None); after the last one the
    gradient is complete: accumulate it into .grad now and run the leaf's hooks."""
    left = uses[id(leaf)] - 1
    if left:
        uses[id(leaf)] = left
        return
    del uses[id(leaf)]
    entry = leaves.pop(id(leaf), None)
    if entry is not None:
        leaf._accumulate_grad(entry[1], create_graph)
        run_post_accumulate_grad_hooks(leaf)


def run_backward(
    roots: Sequence[Tensor],
    root_grads: Sequence[Tensor | np.ndarray | float | None],
    retain_graph: bool,
    create_graph: bool,
    inputs: Sequence[Tensor] | None = None,
    op: str = "backward",
) -> list[Tensor | None] | None:
    """Backpropagate from `roots`. Without `inputs`, gradients accumulate into the
    leaves' .grad (and retain_grad tensors); with `inputs`, their gradients are
    returned instead and no .grad is touched."""
    if profiler.active:
        return profiler.call(
            "run_backward",
            "engine",
            _run_backward,
            roots,
            root_grads,
            retain_graph,
            create_graph,
            inputs,
            op,
        )
    return _run_backward(roots, root_grads, retain_graph, create_graph, inputs, op)


def _run_backward(
    roots: Sequence[Tensor],
    root_grads: Sequence[Tensor | np.ndarray | float | None],
    retain_graph: bool,
    create_graph: bool,
    inputs: Sequence[Tensor] | None,
    op: str,
) -> list[Tensor | None] | None:
    pending: dict[int, tuple[Function, Tensor]] = {}  # seq -> (node, its gradient so far)
    heap: list[int] = []  # -seq of the pending nodes: the latest op pops first
    leaves: dict[int, list] = {}  # id(leaf) -> [leaf, its gradient so far]
    wanted_leaf: dict[int, int] = {}
    wanted_node: dict[Function, int] = {}
    found: list[Tensor | None] = []
    if inputs is not None:
        found = [None] * len(inputs)
        for i, t in enumerate(inputs):
            if t._node is None:
                wanted_leaf[id(t)] = i
            else:
                wanted_node[t._node] = i

    for t in roots:
        if not t.requires_grad:
            raise RuntimeError(
                f"{op}: a tensor of shape {t.shape} does not require grad and has no history; "
                "was it computed under no_grad, or from tensors without requires_grad=True?"
            )
    # id(hooked leaf) -> gradients still to come; empty (no cost) when no hook is set
    uses: dict[int, int] = {}
    if inputs is None and post_accumulate_grad_hooks:
        # a hooked leaf given as a root counts that gradient as one of its uses
        uses = leaf_uses(roots, only=post_accumulate_grad_hooks)

    # The roots send their gradients the way a node's backward does: the loop starts by
    # sending them. Without create_graph the backward formulas (Tensor ops) run under
    # no_grad, where elementwise arithmetic takes its unrecorded fast path.
    targets: Sequence[Tensor] = roots
    grads: Sequence[Tensor | None] = [_root_grad(op, t, g) for t, g in zip(roots, root_grads)]
    needs: Sequence[bool] = (True,) * len(roots)
    heappush, heappop = heapq.heappush, heapq.heappop
    profiling = profiler.active  # read once per pass, not per node
    with set_grad_enabled(create_graph):
        while True:
            # Send the gradients on. A leaf's are summed (delivered at the end, or when a
            # hooked leaf's last use has sent its own); a node's wait in `pending`, ordered
            # by the heap. A parent that would be the heap's only entry is the next node
            # anyway: it is handed on directly, skipping the heap.
            nxt = nxt_g = None
            # by index, as zip pairs them (compiled: a C loop, no zip object per node)
            for edge in range(min(len(targets), len(grads), len(needs))):
                inp, ig, need = targets[edge], grads[edge], needs[edge]
                if not need or ig is None:
                    if uses and need and id(inp) in uses:
                        _leaf_use_done(inp, leaves, uses, create_graph)
                    continue
                if ig.data.shape != inp.data.shape:
                    ig = ig.sum_to_shape(inp.data.shape)
                parent = inp._node
                if parent is None:
                    entry = leaves.get(id(inp))
                    if entry is None:
                        leaves[id(inp)] = [inp, ig]
                    elif create_graph:
                        entry[1] = entry[1] + ig
                    else:  # the array sum, as _accumulate_grad makes it
                        entry[1] = wrap_array(backend.add(entry[1].data, ig.data))
                    if uses and id(inp) in uses:
                        _leaf_use_done(inp, leaves, uses, create_graph)
                elif parent is nxt:
                    nxt_g = nxt_g + ig
                else:
                    seq = parent.seq
                    prev = pending.get(seq)
                    if prev is not None:
                        pending[seq] = (parent, prev[1] + ig)
                    elif nxt is None and not heap:
                        nxt, nxt_g = parent, ig
                    else:
                        pending[seq] = (parent, ig)
                        heappush(heap, -seq)
            if nxt is not None and heap:  # other nodes wait too: the heap orders them all
                pending[nxt.seq] = (nxt, nxt_g)
                heappush(heap, -nxt.seq)
                nxt = None
            # Run the next node: every node that used its output has run, so g is complete.
            if nxt is not None:
                node, g = nxt, nxt_g
            elif heap:
                node, g = pending.pop(-heappop(heap))
            else:
                break
            if inputs is not None:
                i = wanted_node.get(node)
                if i is not None:
                    found[i] = g
            elif node.retained is not None:
                t = node.retained()
                if t is not None:
                    t._accumulate_grad(g, create_graph)
            if create_graph and not node.differentiable_backward:
                raise RuntimeError(
                    f"{op}: {node.name} does not support create_graph=True (its backward is a "
                    "fused kernel that is not itself recorded)"
                )
            if profiling:
                grads = profiler.call(node.name, "backward", type(node).backward, node, g)
            else:
                grads = type(node).backward(node, g)
            if not retain_graph:
                node.release()
            targets, needs = node.inputs, node.needs_input_grad

        for leaf, g in leaves.values():
            if inputs is None:
                leaf._accumulate_grad(g, create_graph)
                if post_accumulate_grad_hooks:
                    run_post_accumulate_grad_hooks(leaf)
            else:
                i = wanted_leaf.get(id(leaf))
                if i is not None:
                    found[i] = g
    return found if inputs is not None else None


from ..tensor import Tensor, wrap_array  # noqa: E402  (an import cycle: tensor.py imports this module)
