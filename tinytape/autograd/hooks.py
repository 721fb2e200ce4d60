"""Leaf hooks: "this leaf's gradient is ready" (PyTorch's post-accumulate-grad hooks).

    handle = param.register_post_accumulate_grad_hook(lambda p: send(p.grad))
    loss.backward()          # the hook runs as soon as param.grad is complete
    handle.remove()

The engine (run_backward) calls a leaf's hooks right after it has added this backward's
gradient to `.grad`, as soon as every recorded op that uses the leaf has been run, while
the rest of the backward pass is still to come. Data-parallel training uses that moment to
start sending gradients (tinytape.nn.parallel). The hooks are kept here, by the leaf's id,
so a Tensor without hooks carries nothing extra and a backward with no hook registered
anywhere does no extra work.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, Container, Sequence
from functools import partial
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..tensor import Tensor

PostAccumulateGradHook = Callable[["Tensor"], None]

#: id(leaf) -> (weak reference to the leaf, {handle key: hook}); empty when none is set
post_accumulate_grad_hooks: dict[int, tuple[weakref.ref, dict[int, PostAccumulateGradHook]]] = {}
_keys = itertools.count()


class HookHandle:
    """Returned by register_post_accumulate_grad_hook: `remove()` unregisters the hook (also
    on leaving a `with` block)."""

    def __init__(self, leaf_id: int, key: int) -> None:
        self._leaf_id, self._key = leaf_id, key

    def remove(self) -> None:
        entry = post_accumulate_grad_hooks.get(self._leaf_id)
        if entry is not None:
            entry[1].pop(self._key, None)
            if not entry[1]:
                del post_accumulate_grad_hooks[self._leaf_id]

    def __enter__(self) -> HookHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def register_post_accumulate_grad_hook(leaf: Tensor, hook: PostAccumulateGradHook) -> HookHandle:
    """Call hook(leaf) after each backward pass has accumulated leaf's gradient into
    leaf.grad (not for torch.autograd.grad-style calls with `inputs`, which touch no .grad)."""
    if leaf._node is not None:
        raise RuntimeError(
            "register_post_accumulate_grad_hook: only leaf tensors accumulate "
            f"gradients; this tensor of shape {leaf.shape} was computed by "
            f"{leaf._node.name}"
        )
    if not leaf.requires_grad:
        raise RuntimeError(
            "register_post_accumulate_grad_hook: the tensor of shape "
            f"{leaf.shape} does not require grad"
        )
    if not callable(hook):
        raise TypeError(f"register_post_accumulate_grad_hook: hook must be callable, got {hook!r}")
    leaf_id = id(leaf)
    entry = post_accumulate_grad_hooks.get(leaf_id)
    if entry is None or entry[0]() is not leaf:  # none yet, or left by a dead tensor
        # (the callback binds what it needs: it may run while the interpreter shuts down)
        forget = partial(_forget, leaf_id, hooks=post_accumulate_grad_hooks)
        entry = (weakref.ref(leaf, forget), {})
        post_accumulate_grad_hooks[leaf_id] = entry
    key = next(_keys)
    entry[1][key] = hook
    return HookHandle(leaf_id, key)


def _forget(leaf_id: int, ref: weakref.ref, hooks: dict) -> None:
    entry = hooks.get(leaf_id)
    if entry is not None and entry[0] is ref:
        del hooks[leaf_id]


def leaf_uses(roots: Sequence[Tensor], only: Container[int] | None = None) -> dict[int, int]:
    """id(leaf) -> how many gradients a backward pass from roots will send that leaf (one per
    recorded use that needs its gradient), for the leaves reachable from roots (only those
    whose id is in `only`, if given). When that many have arrived, the gradient is complete.
    A root that is itself a leaf counts once."""
    uses: dict[int, int] = {}
    stack = []
    for t in roots:
        if t._node is not None:
            stack.append(t._node)
        elif only is None or id(t) in only:
            uses[id(t)] = uses.get(id(t), 0) + 1
    seen = {id(n) for n in stack}
    while stack:
        node = stack.pop()
        for inp, need in zip(node.inputs, node.needs_input_grad):
            if not need:
                continue
            parent = inp._node
            if parent is None:
                if only is None or id(inp) in only:
                    uses[id(inp)] = uses.get(id(inp), 0) + 1
            elif id(parent) not in seen:
                seen.add(id(parent))
                stack.append(parent)
    return uses


def run_post_accumulate_grad_hooks(leaf: Tensor) -> None:
    entry = post_accumulate_grad_hooks.get(id(leaf))
    if entry is not None and entry[0]() is leaf:
        for hook in list(entry[1].values()):
            hook(leaf)
