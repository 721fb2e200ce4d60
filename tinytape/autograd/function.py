"""Function: one op recorded on the tape, with its forward and its backward.

A subclass defines

    forward(ctx, *inputs: Tensor, **params) -> np.ndarray    # computes on input.data
    backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]  # one entry per input

`Op.apply(*inputs, **params)` runs forward and, when grad mode is on and an input
requires grad, records the op: the output tensor keeps a reference to this node,
the node keeps its inputs, and a sequence number fixes its place on the tape.
The graph is owned by the tensors that can still reach it, so an unused forward
pass is freed as soon as its outputs are dropped.

backward is written with Tensor ops, so with create_graph=True the backward pass
is itself recorded and can be differentiated again. Without create_graph it runs
under no_grad, where an elementwise op's `kernel` (its forward on arrays alone) is
called directly: Tensor arithmetic in a backward costs little more than numpy. The
commonest elementwise ops (mul, exp, tanh, sigmoid) write that case on arrays outright;
tests/test_ops.py checks every op's two first derivatives against each other.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from operator import attrgetter
from typing import Any

import numpy as np

from .. import profiler
from .grad_mode import _grad_enabled

_next_seq = itertools.count().__next__
_requires_grad = attrgetter("requires_grad")


class Function:
    #: the output shares memory with inputs[0] (reshape, transpose, slicing ...):
    #: it then shares its version counter, so in-place edits of either are seen.
    is_view: bool = False
    #: False for ops whose backward is a kernel call that is not itself recorded:
    #: create_graph=True through them raises instead of giving a wrong answer.
    differentiable_backward: bool = True
    #: Elementwise ops: forward as a function of the input arrays alone (a numpy ufunc,
    #: or staticmethod(f)). When nothing is recorded (under no_grad, and in a backward
    #: pass without create_graph) the op's wrapper calls it directly: no node, no ctx.
    kernel: Callable[..., np.ndarray] | None = None

    # A ctx's own state (record, needs_input_grad, inputs, seq, _saved, _saved_versions,
    # _save_out, _out, _out_counter, _out_version, freed, retained): compiled, the C
    # fields of function.pxd, which start as False or None; in the plain build the
    # class attributes set below the class, with the same values. An op's forward may set
    # other attributes of its own (subclasses have a __dict__).

    @classmethod
    def apply(cls, *inputs: Tensor, **params: Any) -> Tensor:
        if profiler.active:
            return profiler.call_unprofiled(cls.__name__, "forward", cls.apply, *inputs, **params)
        return _apply(cls, inputs, params, _grad_enabled())

    @staticmethod
    def forward(ctx: Function, *inputs: Tensor, **params: Any) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Function, grad: Tensor) -> tuple[Tensor | None, ...]:
        raise NotImplementedError

    # ------------------------------------------------------------ saving
    def save_for_backward(self, *tensors: Tensor | None) -> None:
        """Keep input tensors for backward; an in-place change to one of them before
        backward runs is detected and raises instead of giving a wrong gradient."""
        if self.record:
            versions = []
            for t in tensors:
                versions.append(0 if t is None else t._version[0])
            self._saved = tensors
            self._saved_versions = tuple(versions)

    def save_output(self) -> None:
        """Keep the output for backward (without a reference cycle: see `output`)."""
        self._save_out = self.record

    @property
    def saved_tensors(self) -> tuple[Tensor | None, ...]:
        if self.freed:
            self._raise_freed()
        if self._saved is None:
            return ()
        for t, version in zip(self._saved, self._saved_versions):
            if t is not None and t._version[0] != version:
                raise RuntimeError(
                    f"{self.name}: a tensor of shape {t.shape} that backward needs was "
                    f"modified in place after it was saved (version {version} when saved, "
                    f"{t._version[0]} now). Use an out-of-place op, or .clone() before editing."
                )
        return self._saved

    @property
    def output_data(self) -> np.ndarray:
        """The saved output's array, checked as `output` is: for a backward written on
        arrays (when nothing is recorded)."""
        if self.freed:
            self._raise_freed()
        counter = self._out_counter
        if counter[0] != self._out_version:
            raise RuntimeError(
                f"{self.name}: its output (shape {self._out.shape}) was modified in place "
                f"after it was saved for backward (version {self._out_version}, now "
                f"{counter[0]})."
            )
        return self._out

    @property
    def output(self) -> Tensor:
        """The saved output as a tensor whose history is this node (rebuilt on demand so
        that the node does not hold its own output alive)."""
        return make_tensor(self.output_data, self._out_counter, self, True)

    def _raise_freed(self) -> None:
        raise RuntimeError(
            f"{self.name}: trying to backward through the graph a second time; its saved "
            "tensors were freed after the first backward. Pass retain_graph=True to the "
            "first backward to keep them."
        )

    def release(self) -> None:
        """Free what was saved for backward (after a backward without retain_graph)."""
        self.freed = True
        if self._saved is not None:
            self._saved = self._saved_versions = None
        if self._out is not None:
            self._out = self._out_counter = None

    @property
    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{self.name} seq={'-' if self.seq is None else self.seq}>"


# The plain build's defaults of a ctx's state (see Function); compiled, these are C fields
# that start with the same values, and the extension type takes no class attributes.
_CTX_DEFAULTS = {
    "record": False,  # recorded on the tape (grad mode on and an input requires grad)
    "needs_input_grad": None,  # per input, when recorded
    "inputs": None,
    "seq": None,  # its place on the tape
    "_saved": None,  # save_for_backward's tensors and their versions then
    "_saved_versions": None,
    "_save_out": False,
    "_out": None,  # the output's data, its version counter and version then
    "_out_counter": None,
    "_out_version": None,
    "freed": False,
    "retained": None,  # weakref to the output tensor when retain_grad() was called on it
}
if "__dict__" in Function.__dict__:  # a Python class: the plain build
    for _name, _value in _CTX_DEFAULTS.items():
        setattr(Function, _name, _value)


_NO_PARAMS: dict[str, Any] = {}  # read, never written: _forward copies params it passes on


def apply_op(cls: type[Function], inputs: tuple[Tensor, ...], grad_enabled: bool) -> Tensor:
    """cls.apply(*inputs) for the ops' own wrappers, which have read the grad mode already
    (`grad_enabled`): one read and one call less per op (a C call when compiled)."""
    if profiler.active:
        return profiler.call_unprofiled(cls.__name__, "forward", cls.apply, *inputs)
    return _apply(cls, inputs, _NO_PARAMS, grad_enabled)


def _apply(
    cls: type[Function], inputs: tuple[Tensor, ...], params: dict[str, Any], grad_enabled: bool
) -> Tensor:
    """Function.apply: run cls's forward on `inputs` and record the op when grad mode is on
    (`grad_enabled`) and an input requires grad (compiled, with typed access to the tensors'
    slots)."""
    ctx = cls.__new__(cls)
    first = inputs[0]
    n = len(inputs)
    if grad_enabled:
        # which inputs need a gradient (one and two inputs written out)
        if n == 2:
            second = inputs[1]
            needs = (first.requires_grad, second.requires_grad)
        elif n == 1:
            needs = (True,) if first.requires_grad else (False,)
        else:
            needs = tuple(map(_requires_grad, inputs))
        if True in needs:
            ctx.record = True
            ctx.needs_input_grad = needs
            data = _forward(cls, ctx, inputs, n, params)
            version = first._version if cls.is_view else [0]
            ctx.inputs = inputs
            ctx.seq = _next_seq()
            if ctx._save_out:
                ctx._out = data
                ctx._out_counter = version
                ctx._out_version = version[0]
            return make_tensor(data, version, ctx, True)
    data = _forward(cls, ctx, inputs, n, params)
    return make_tensor(data, first._version if cls.is_view else [0], None, False)


def _forward(
    cls: type[Function], ctx: Function, inputs: tuple[Tensor, ...], n: int, params: dict[str, Any]
) -> np.ndarray:
    # one and two inputs without parameters passed as they are: no argument tuple to build
    if not params:
        if n == 2:
            return cls.forward(ctx, inputs[0], inputs[1])
        if n == 1:
            return cls.forward(ctx, inputs[0])
    return cls.forward(ctx, *inputs, **params)


from ..tensor import Tensor, make_tensor  # noqa: E402  (an import cycle: tensor.py binds the ops)
