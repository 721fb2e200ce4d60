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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..tensor import Tensor

PostAccumulateGradHook = Callable[["Tensor"], None]

#: id(leaf) -> (weak reference to the leaf, {handle key: hook}); empty when none is set
post_accumulate_grad_hooks: dict[int, tuple[weakref.ref, dict[int, PostAccumulateGradHook]]] = {}
#: keys of registered hooks (leaf hooks here, module forward hooks in nn.module)
hook_ids = itertools.count()


class RemovableHandle:
    """Returned when a hook is registered: `remove()` unregisters it (also on leaving a
    `with` block). on_empty runs when the last hook of `hooks` is removed."""

    def __init__(
        self, hooks: dict[int, Callable[..., Any]], key: int,
        on_empty: Callable[[], None] | None = None,
    ) -> None:  # fmt: skip
        self._hooks, self._key, self._on_empty = hooks, key, on_empty

    def remove(self) -> None:
        self._hooks.pop(self._key, None)
        if not self._hooks and self._on_empty is not None:
            self._on_empty()

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def register_post_accumulate_grad_hook(
    leaf: Tensor, hook: PostAccumulateGradHook
) -> RemovableHandle:
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
        ref = weakref.ref(leaf, partial(_drop, leaf_id, hooks=post_accumulate_grad_hooks))
        entry = (ref, {})
        post_accumulate_grad_hooks[leaf_id] = entry
    key = next(hook_ids)
    entry[1][key] = hook
    return RemovableHandle(entry[1], key, partial(_drop, leaf_id, entry[0]))


def _drop(leaf_id: int, ref: weakref.ref, hooks: dict = post_accumulate_grad_hooks) -> None:
    """Forget the leaf's entry (dead, or its last hook removed) unless a new one replaced it."""
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
