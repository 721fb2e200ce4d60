"""Tensor: a numpy array plus what reverse-mode autodiff needs.

A tensor made by a recorded op keeps that op (its node, `grad_fn`); a leaf made by
the user has none and, with requires_grad=True, collects gradients in `.grad`.
Operators and methods (`+`, `@`, `.sum()`, `.reshape()` ...) are bound at the
bottom of this file to the ops in tinytape.ops; tensor.pyi declares them all for readers
and type checkers (written by tools/tensor_stub.py, checked by the tests). Every Tensor's
slots are set by _set_slots: through __init__ for user data, make_tensor on the tape.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from . import backend
from .autograd.grad_mode import _grad_enabled

if TYPE_CHECKING:
    from .autograd.function import Function

DEFAULT_FLOAT = np.dtype(np.float32)
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class TensorBase:
    """The slots every Tensor has (data, requires_grad, grad, _node, _version,
    _retains_grad). Compiled, this is an extension type (tensor.pxd): the tape's compiled
    modules read and write these slots as C fields. The ops' methods are bound onto its
    subclass Tensor, the class users see (as torch._C.TensorBase and torch.Tensor)."""

    __slots__ = (
        "data",
        "requires_grad",
        "grad",
        "_node",
        "_version",
        "_retains_grad",
        "__weakref__",
    )

    data: np.ndarray
    requires_grad: bool
    grad: Tensor | None
    _node: Function | None
    _version: list[int]
    _retains_grad: bool


class Tensor(TensorBase):
    """An n-dimensional array that records the ops applied to it for backward.

    Attributes: data (np.ndarray), requires_grad, grad (Tensor or None), grad_fn.
    """

    __slots__ = ()
    __array_priority__ = 1000  # numpy defers to our reflected operators (ndarray + Tensor)

    def __init__(self, data: Any, dtype: Any = None, requires_grad: bool = False) -> None:
        from .creation import as_array

        _set_slots(self, as_array(data, dtype), [0], None, False)
        if requires_grad:
            self.requires_grad_(True)

    @staticmethod
    def _wrap(data: np.ndarray) -> Tensor:
        """A leaf around `data` (no copy, no checks): the fast path for internal use."""
        return wrap_array(data)

    # ------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def size(self, dim: int | None = None) -> tuple[int, ...] | int:
        """The shape, or the length of one dimension (PyTorch's size())."""
        return self.data.shape if dim is None else self.data.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    def dim(self) -> int:
        return self.data.ndim

    @property
    def grad_fn(self) -> Function | None:
        """The recorded op that made this tensor (None for leaves)."""
        return self._node

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def T(self) -> Tensor:
        return self.transpose()

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    __hash__ = object.__hash__  # == is elementwise, tensors stay usable as dict keys

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError(
                f"the truth value of a tensor of shape {self.shape} is ambiguous; "
                "use .any() or .all()"
            )
        return bool(self.data)

    # ------------------------------------------------------------ conversion
    def numpy(self) -> np.ndarray:
        """The data as a numpy array (shared, not copied; detach first is implied)."""
        return self.data

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if dtype is not None and np.dtype(dtype) != self.data.dtype:
            return self.data.astype(dtype)
        return self.data.copy() if copy else self.data

    def item(self) -> float | int | bool:
        if self.data.size != 1:
            raise ValueError(f"item(): only one-element tensors, this one has shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self) -> Any:
        return self.data.tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.data.dtype.kind not in "iu":
            raise TypeError(f"only integer tensors can be used as an index, not {self.dtype}")
        return int(self.item())

    def __repr__(self) -> str:
        body = np.array2string(
            self.data, separator=", ", precision=4, threshold=200, edgeitems=3, prefix="tensor("
        )
        extras = []
        if (
            self.data.dtype != DEFAULT_FLOAT
            and self.data.dtype.kind == "f"
            or self.data.dtype.kind not in "fib"
        ):
            extras.append(f"dtype={self.data.dtype}")
        if self.data.size == 0 or self.data.ndim > 1 and self.data.size > 200:
            extras.append(f"shape={self.shape}")
        if self._node is not None:
            extras.append(f"grad_fn=<{self._node.name}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    # ------------------------------------------------------------ autograd
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Mark a leaf so that gradients are collected in .grad (float tensors only)."""
        if self._node is not None and not requires_grad:
            raise RuntimeError(
                "requires_grad_(False) on a tensor computed by a recorded op; use .detach()"
            )
        if requires_grad and self.data.dtype not in FLOAT_DTYPES:
            raise TypeError(
                f"only float32/float64 tensors can require grad, this one is {self.dtype}"
            )
        self.requires_grad = bool(requires_grad) or self._node is not None
        return self

    def detach(self) -> Tensor:
        """The same data (shared, with the same version counter) cut from the graph."""
        return make_tensor(self.data, self._version, None, False)

    def retain_grad(self) -> Tensor:
        """Keep .grad for this non-leaf tensor too after backward."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")
        if self._node is not None and not self._retains_grad:
            self._retains_grad = True
            self._node.retained = weakref.ref(self)
        return self

    def register_post_accumulate_grad_hook(self, hook: Callable[[Tensor], None]) -> Any:
        """Call hook(self) in every backward pass as soon as this leaf's gradient has been
        accumulated into .grad, before the rest of the pass (PyTorch's name). Returns a
        handle whose remove() unregisters it."""
        from .autograd.hooks import register_post_accumulate_grad_hook

        return register_post_accumulate_grad_hook(self, hook)

    def _accumulate_grad(self, g: Tensor, create_graph: bool) -> None:
        if create_graph:
            self.grad = g if self.grad is None else self.grad + g
        elif self.grad is None:  # a copy: .grad never aliases another tensor's memory
            self.grad = Tensor._wrap(np.array(g.data, copy=True))
        else:
            self.grad = Tensor._wrap(backend.add(self.grad.data, g.data))

    def backward(
        self,
        grad: Tensor | np.ndarray | float | None = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
        inputs: Sequence[Tensor] | None = None,
    ) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's .grad (or only those in `inputs`).

        grad: d(loss)/d(self), required unless self has one element.
        retain_graph: keep saved tensors for another backward (default: create_graph).
        create_graph: record the backward pass, for gradients of gradients.
        """
        if retain_graph is None:
            retain_graph = create_graph
        if inputs is not None:
            found = run_backward([self], [grad], retain_graph, create_graph, list(inputs))
            for t, g in zip(inputs, found or []):
                if g is not None:
                    t._accumulate_grad(g, create_graph)
            return
        run_backward([self], [grad], retain_graph, create_graph)

    # ------------------------------------------------------------ in place
    def _check_inplace(self, op: str) -> None:
        if self.requires_grad and _grad_enabled():
            raise RuntimeError(
                f"{op}: in-place change of a tensor that requires grad while grad mode is on; "
                "use the out-of-place op (or masked_fill / where), or wrap in no_grad()"
            )

    def _bump(self) -> Tensor:
        self._version[0] += 1
        return self

    def __setitem__(self, index: Any, value: Any) -> None:
        self._check_inplace("__setitem__")
        from .ops.indexing import normalize_index

        self.data[normalize_index(index)] = value.data if isinstance(value, Tensor) else value
        self._bump()

    def copy_(self, src: Tensor | np.ndarray) -> Tensor:
        """Copy src's values into this tensor (broadcasting), in place."""
        self._check_inplace("copy_")
        np.copyto(
            self.data, src.data if isinstance(src, Tensor) else np.asarray(src), casting="same_kind"
        )
        return self._bump()

    def zero_(self) -> Tensor:
        self._check_inplace("zero_")
        self.data[...] = 0
        return self._bump()

    def fill_(self, value: float) -> Tensor:
        self._check_inplace("fill_")
        self.data[...] = value
        return self._bump()

    def _inplace(self, op: str, other: Any, ufunc: np.ufunc) -> Tensor:
        self._check_inplace(op)
        other_data = other.data if isinstance(other, Tensor) else other
        try:
            ufunc(self.data, other_data, out=self.data, casting="same_kind")
        except ValueError:
            raise ValueError(
                f"{op}: cannot apply a tensor of shape "
                f"{np.shape(other_data)} in place to one of shape {self.shape}"
            ) from None
        return self._bump()

    def add_(self, other: Any, alpha: float = 1.0) -> Tensor:
        if alpha != 1.0:
            other = (other.data if isinstance(other, Tensor) else np.asarray(other)) * alpha
        return self._inplace("add_", other, np.add)

    def sub_(self, other: Any) -> Tensor:
        return self._inplace("sub_", other, np.subtract)

    def mul_(self, other: Any) -> Tensor:
        return self._inplace("mul_", other, np.multiply)

    def div_(self, other: Any) -> Tensor:
        return self._inplace("div_", other, np.true_divide)

    def _augmented(self, other: Any, ufunc: np.ufunc, op: str, fallback) -> Tensor:
        # x += y is in place when nothing is being recorded for x; while x is part of a
        # recorded graph it rebinds x to the out-of-place result instead (PyTorch would
        # rewrite history in place; tinytape keeps history immutable).
        if self.requires_grad and _grad_enabled():
            return fallback(self, other)
        return self._inplace(op, other, ufunc)

    def __iadd__(self, other: Any) -> Tensor:
        return self._augmented(other, np.add, "+=", Tensor.__add__)

    def __isub__(self, other: Any) -> Tensor:
        return self._augmented(other, np.subtract, "-=", Tensor.__sub__)

    def __imul__(self, other: Any) -> Tensor:
        return self._augmented(other, np.multiply, "*=", Tensor.__mul__)

    def __itruediv__(self, other: Any) -> Tensor:
        return self._augmented(other, np.true_divide, "/=", Tensor.__truediv__)


def _set_slots(
    t: TensorBase, data: np.ndarray, version: list[int], node: Function | None, requires_grad: bool
) -> Tensor:
    """Set all of t's slots: the one place they are set (Tensor() checks its arguments
    first; the tape's hot paths skip __init__ through make_tensor)."""
    t.data = data
    t.grad = None
    t._node = node
    t._version = version
    t._retains_grad = False
    t.requires_grad = requires_grad
    return t


def make_tensor(
    data: np.ndarray, version: list[int], node: Function | None, requires_grad: bool
) -> Tensor:
    """A Tensor around `data` (no copy, no checks) with the version counter `version`
    (shared with the tensor it views, or a new [0]) made by the recorded op `node`."""
    cls = Tensor  # typed `type` when compiled: cls.__new__(cls) is then a direct tp_new call
    return _set_slots(cls.__new__(cls), data, version, node, requires_grad)


def wrap_array(data: np.ndarray) -> Tensor:
    """A leaf around `data` (no copy, no checks): Tensor._wrap, which the compiled tape
    modules call as a C function."""
    cls = Tensor
    return _set_slots(cls.__new__(cls), data, [0], None, False)


from .autograd.engine import run_backward  # noqa: E402  (the engine needs Tensor first)
from .ops import _bind_tensor_methods  # noqa: E402  (ops need the Tensor class first)

_bind_tensor_methods(Tensor)
