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
is itself recorded and can be differentiated again.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np

from .grad_mode import _mode

if TYPE_CHECKING:
    from ..tensor import Tensor

_next_seq = itertools.count().__next__


class Function:
    #: the output shares memory with inputs[0] (reshape, transpose, slicing ...):
    #: it then shares its version counter, so in-place edits of either are seen.
    is_view: bool = False
    #: False for ops whose backward is a kernel call that is not itself recorded:
    #: create_graph=True through them raises instead of giving a wrong answer.
    differentiable_backward: bool = True

    inputs: tuple[Tensor, ...]
    needs_input_grad: tuple[bool, ...]
    seq: int
    record: bool

    @classmethod
    def apply(cls, *inputs: Tensor, **params: Any) -> Tensor:
        from ..tensor import Tensor

        ctx = cls.__new__(cls)
        record = _mode.enabled
        if record:
            needs = tuple(t.requires_grad for t in inputs)
            record = True in needs
            ctx.needs_input_grad = needs
        ctx.record = record
        ctx._saved = ()
        ctx._save_out = False
        data = cls.forward(ctx, *inputs, **params)
        out = Tensor.__new__(Tensor)
        out.data = data
        out.grad = None
        out._retains_grad = False
        out._version = inputs[0]._version if cls.is_view else [0]
        if record:
            ctx.inputs = inputs
            ctx.seq = _next_seq()
            ctx.freed = False
            if ctx._save_out:
                ctx._out = (data, out._version, out._version[0])
            out.requires_grad = True
            out._node = ctx
        else:
            out.requires_grad = False
            out._node = None
        return out

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
            self._saved = tuple(
                None if t is None else (t, t._version[0]) for t in tensors
            )

    def save_output(self) -> None:
        """Keep the output for backward (without a reference cycle: see `output`)."""
        self._save_out = self.record

    @property
    def saved_tensors(self) -> tuple[Tensor | None, ...]:
        self._check_alive()
        out = []
        for entry in self._saved:
            if entry is None:
                out.append(None)
                continue
            t, version = entry
            if t._version[0] != version:
                raise RuntimeError(
                    f"{self.name}: a tensor of shape {t.shape} that backward needs was "
                    f"modified in place after it was saved (version {version} when saved, "
                    f"{t._version[0]} now). Use an out-of-place op, or .clone() before editing."
                )
            out.append(t)
        return tuple(out)

    @property
    def output(self) -> Tensor:
        """The saved output as a tensor whose history is this node (rebuilt on demand so
        that the node does not hold its own output alive)."""
        from ..tensor import Tensor

        self._check_alive()
        data, version_box, version = self._out
        if version_box[0] != version:
            raise RuntimeError(
                f"{self.name}: its output (shape {data.shape}) was modified in place after "
                f"it was saved for backward (version {version}, now {version_box[0]})."
            )
        out = Tensor.__new__(Tensor)
        out.data, out.grad, out._retains_grad = data, None, False
        out._version, out.requires_grad, out._node = version_box, True, self
        return out

    def _check_alive(self) -> None:
        if self.freed:
            raise RuntimeError(
                f"{self.name}: trying to backward through the graph a second time; its saved "
                "tensors were freed after the first backward. Pass retain_graph=True to the "
                "first backward to keep them."
            )

    def release(self) -> None:
        """Free what was saved for backward (after a backward without retain_graph)."""
        self._saved = ()
        self._out = None
        self.freed = True

    @property
    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{self.name} seq={getattr(self, 'seq', '-')}>"
