"""The backward pass: replay the recorded ops in reverse tape order.

Every recorded op has a sequence number, and an op's inputs were made before it, so
popping nodes from a max-heap of sequence numbers visits each node only after every
node that consumed its output: the gradient it receives is complete. No recursion,
so a chain of 100,000 ops works.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .grad_mode import set_grad_enabled

if TYPE_CHECKING:
    from ..tensor import Tensor
    from .function import Function


def _root_grad(op: str, t: Tensor, g: Tensor | np.ndarray | float | None) -> Tensor:
    from ..tensor import Tensor

    if g is None:
        if t.data.size != 1:
            raise RuntimeError(
                f"{op}: grad can be created implicitly only for a scalar output, but this "
                f"tensor has shape {t.shape}; pass a gradient of that shape "
                f"(e.g. {op}(ones_like(t)))"
            )
        return Tensor._wrap(np.ones(t.shape, dtype=t.dtype))
    if not isinstance(g, Tensor):
        g = Tensor._wrap(np.asarray(g, dtype=t.dtype))
    if g.shape != t.shape:
        raise ValueError(f"{op}: gradient of shape {g.shape} for a tensor of shape {t.shape}")
    if g.dtype != t.dtype:
        raise TypeError(f"{op}: gradient of dtype {g.dtype} for a tensor of dtype {t.dtype}")
    return g


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
    grads: dict[Function, Tensor] = {}
    heap: list[tuple[int, int, Function]] = []
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

    def deliver_leaf(leaf: Tensor, g: Tensor) -> None:
        if inputs is not None:
            i = wanted_leaf.get(id(leaf))
            if i is not None:
                found[i] = g if found[i] is None else found[i] + g
        else:
            leaf._accumulate_grad(g, create_graph)

    def push(node: Function, g: Tensor) -> None:
        prev = grads.get(node)
        if prev is None:
            grads[node] = g
            heapq.heappush(heap, (-node.seq, node.seq, node))
        else:
            grads[node] = prev + g

    for t, g in zip(roots, root_grads):
        if not t.requires_grad:
            raise RuntimeError(
                f"{op}: a tensor of shape {t.shape} does not require grad and has no history; "
                "was it computed under no_grad, or from tensors without requires_grad=True?"
            )
        g = _root_grad(op, t, g)
        if t._node is None:
            deliver_leaf(t, g)
        else:
            push(t._node, g)

    with set_grad_enabled(create_graph):
        while heap:
            node = heapq.heappop(heap)[2]
            g = grads.pop(node)
            if inputs is not None:
                i = wanted_node.get(node)
                if i is not None:
                    found[i] = g
            else:
                node_retain = getattr(node, "retained", None)
                if node_retain is not None:
                    t = node_retain()
                    if t is not None:
                        t._accumulate_grad(g, create_graph)
            if create_graph and not node.differentiable_backward:
                raise RuntimeError(
                    f"{op}: {node.name} does not support create_graph=True (its backward is a "
                    "fused kernel that is not itself recorded)"
                )
            input_grads = type(node).backward(node, g)
            if not retain_graph:
                node.release()
            for inp, ig, need in zip(node.inputs, input_grads, node.needs_input_grad):
                if not need or ig is None:
                    continue
                if ig.shape != inp.shape:
                    ig = ig.sum_to_shape(inp.shape)
                if inp._node is None:
                    deliver_leaf(inp, ig)
                else:
                    push(inp._node, ig)
    return found if inputs is not None else None
