"""tinytape.grad: gradients of outputs with respect to chosen inputs, as new tensors; and
vjp, jvp, hvp of a function, named and behaving as in torch.autograd.functional."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .engine import run_backward
from .grad_mode import enable_grad


def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
         grad_outputs: Sequence[Tensor | None] | Tensor | None = None,
         retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool = False) -> tuple[Tensor | None, ...]:
    """d(sum of outputs weighted by grad_outputs) / d(each input), without touching .grad.

    With create_graph=True the results are themselves differentiable (gradients of
    gradients). An input that does not influence the outputs raises unless
    allow_unused=True, which gives None for it.
    """
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None:
        gouts: list = [None] * len(outs)
    elif isinstance(grad_outputs, Tensor):
        gouts = [grad_outputs]
    else:
        gouts = list(grad_outputs)
    if len(gouts) != len(outs):
        raise ValueError(f"grad: {len(gouts)} grad_outputs for {len(outs)} outputs")
    for i, t in enumerate(ins):
        if not isinstance(t, Tensor):
            raise TypeError(f"grad: input {i} is a {type(t).__name__}, not a Tensor")
        if not t.requires_grad:
            raise RuntimeError(f"grad: input {i} (shape {t.shape}) does not require grad")
    if retain_graph is None:
        retain_graph = create_graph
    found = run_backward(outs, gouts, retain_graph, create_graph, ins, op="grad") or []
    for i, g in enumerate(found):
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grad: input {i} (shape {ins[i].shape}) was not used to compute the outputs; "
                "pass allow_unused=True to get None for it"
            )
    return tuple(found)


TensorOrTensors = Any  # a Tensor, or a tuple of Tensors


def _as_tuple(x: TensorOrTensors, what: str, fn: str) -> tuple[tuple[Tensor, ...], bool]:
    """(x as a tuple of Tensors, whether it was given as a tuple or list)."""
    is_tuple = isinstance(x, (tuple, list))
    items = tuple(x) if is_tuple else (x,)
    for i, t in enumerate(items):
        if not isinstance(t, Tensor):
            raise TypeError(f"{fn}: {what} {i} is a {type(t).__name__}, not a Tensor")
    return items, is_tuple


def _like(items: tuple[Tensor, ...], is_tuple: bool) -> TensorOrTensors:
    return items if is_tuple else items[0]


def _differentiable_inputs(inputs: tuple[Tensor, ...], create_graph: bool, fn: str):
    """Leaves to differentiate with respect to. With create_graph, an input that requires
    grad is used as it is, so the results stay connected to its own history."""
    out = []
    for i, t in enumerate(inputs):
        if t.dtype.kind != "f":
            raise TypeError(f"{fn}: input {i} has dtype {t.dtype}; only float tensors can be "
                            "differentiated")
        out.append(t if create_graph and t.requires_grad else t.detach().requires_grad_())
    return tuple(out)


def _vectors(v: TensorOrTensors | None, like: tuple[Tensor, ...], what: str,
             fn: str) -> tuple[Tensor, ...]:
    """v checked against the shapes of `like` (None only when `like` is one element)."""
    if v is None:
        if len(like) != 1 or like[0].data.size != 1:
            shapes = [t.shape for t in like]
            raise ValueError(f"{fn}: v can be omitted only when the {what} is a single "
                             f"element, got shapes {shapes}")
        return (Tensor._wrap(np.ones(like[0].shape, like[0].dtype)),)
    vs, _ = _as_tuple(v, "v", fn)
    if len(vs) != len(like):
        raise ValueError(f"{fn}: {len(vs)} tensors in v for {len(like)} {what} tensors")
    for i, (a, b) in enumerate(zip(vs, like)):
        if a.shape != b.shape:
            raise ValueError(f"{fn}: v {i} has shape {a.shape}, but the {what} has shape "
                             f"{b.shape}")
    return tuple(a if a.dtype == b.dtype else a.to(b.dtype) for a, b in zip(vs, like))


def _zero_unused(grads, like: tuple[Tensor, ...], strict: bool, fn: str, what: str):
    out = []
    for i, (g, t) in enumerate(zip(grads, like)):
        if g is None:
            if strict:
                raise RuntimeError(f"{fn}: the output does not depend on {what} {i} "
                                   f"(shape {t.shape}), and strict=True")
            g = Tensor._wrap(np.zeros(t.shape, t.dtype))
        out.append(g)
    return tuple(out)


def _grad_or_none(outputs, inputs, grad_outputs, create_graph: bool) -> tuple:
    """grad() over the outputs that have a history; None for every input when none has."""
    live = [(o, g) for o, g in zip(outputs, grad_outputs) if o.requires_grad]
    if not live:
        return (None,) * len(inputs)
    return grad([o for o, _ in live], inputs, [g for _, g in live], retain_graph=True,
                create_graph=create_graph, allow_unused=True)


def _call(func: Callable[..., Any], inputs: tuple[Tensor, ...], fn: str):
    outs, out_tuple = _as_tuple(func(*inputs), "output", fn)
    return outs, out_tuple


def _detached(outs: tuple[Tensor, ...], create_graph: bool) -> tuple[Tensor, ...]:
    return outs if create_graph else tuple(o.detach() for o in outs)


def vjp(func: Callable[..., Any], inputs: TensorOrTensors, v: TensorOrTensors | None = None,
        create_graph: bool = False, strict: bool = False):
    """(func(*inputs), v^T J): the vector-Jacobian product, one tensor per input.

    v: shaped like func's outputs (None when the output is a single element). Inputs the
    outputs do not depend on get zeros (strict=True raises instead). With create_graph
    the results are differentiable."""
    ins, in_tuple = _as_tuple(inputs, "input", "vjp")
    with enable_grad():
        ins = _differentiable_inputs(ins, create_graph, "vjp")
        outs, out_tuple = _call(func, ins, "vjp")
        vs = _vectors(v, outs, "output", "vjp")
        grads = _grad_or_none(outs, ins, vs, create_graph)
    grads = _zero_unused(grads, ins, strict, "vjp", "input")
    return _like(_detached(outs, create_graph), out_tuple), _like(grads, in_tuple)


def jvp(func: Callable[..., Any], inputs: TensorOrTensors, v: TensorOrTensors | None = None,
        create_graph: bool = False, strict: bool = False):
    """(func(*inputs), J v): the Jacobian-vector product, one tensor per output.

    v: shaped like the inputs (None when the input is a single element). Computed as
    torch does, by the double-backward trick: u -> J^T u is linear in u, and its vjp
    with v is J v, so it needs every op's backward to be recorded (create_graph)."""
    ins, in_tuple = _as_tuple(inputs, "input", "jvp")
    with enable_grad():
        ins = _differentiable_inputs(ins, create_graph, "jvp")
        vs = _vectors(v, ins, "input", "jvp")
        outs, out_tuple = _call(func, ins, "jvp")
        dummies = tuple(Tensor._wrap(np.zeros(o.shape, o.dtype)).requires_grad_()
                        for o in outs)
        first = _grad_or_none(outs, ins, dummies, True)
        jv = _grads_along(first, vs, dummies, create_graph)
    jv = _zero_unused(jv, outs, strict, "jvp", "output")
    return _like(_detached(outs, create_graph), out_tuple), _like(jv, out_tuple)


def _grads_along(first: Sequence[Tensor | None], vs: Sequence[Tensor],
                 wrt: Sequence[Tensor], create_graph: bool) -> tuple[Tensor | None, ...]:
    """d(sum_i <first_i, vs_i>)/d wrt: the second step of jvp (the double-backward trick)
    and hvp; the first gradients that do not depend on wrt contribute nothing."""
    used = [(g, w) for g, w in zip(first, vs) if g is not None and g.requires_grad]
    if not used:
        return (None,) * len(wrt)
    return grad([g for g, _ in used], wrt, [w for _, w in used], retain_graph=True,
                create_graph=create_graph, allow_unused=True)


def hvp(func: Callable[..., Any], inputs: TensorOrTensors, v: TensorOrTensors | None = None,
        create_graph: bool = False, strict: bool = False):
    """(func(*inputs), v^T H): the Hessian-vector product of a function with a single-element
    output (H symmetric, so this is also H v), one tensor per input.

    v: shaped like the inputs (None when the input is a single element)."""
    ins, in_tuple = _as_tuple(inputs, "input", "hvp")
    with enable_grad():
        ins = _differentiable_inputs(ins, create_graph, "hvp")
        vs = _vectors(v, ins, "input", "hvp")
        outs, out_tuple = _call(func, ins, "hvp")
        if len(outs) != 1 or outs[0].data.size != 1:
            raise ValueError(f"hvp: func must return a single-element Tensor, got shapes "
                             f"{[o.shape for o in outs]}")
        first = _grad_or_none(outs, ins, (None,), True)
        hv = _grads_along(first, vs, ins, create_graph)
    hv = _zero_unused(hv, ins, strict, "hvp", "input")
    return _detached(outs, create_graph)[0], _like(hv, in_tuple)


from ..tensor import Tensor  # noqa: E402  (an import cycle: tensor.py imports the engine)
