"""Type stub of tinytape/tensor.py with the methods bound at import; written by
tools/tensor_stub.py (run it after changing Tensor or the ops bound onto it)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .autograd.function import Function

DEFAULT_FLOAT = np.dtype(np.float32)

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

class TensorBase:
    """The slots every Tensor has (data, requires_grad, grad, _node, _version,
    _retains_grad). Compiled, this is an extension type (tensor.pxd): the tape's compiled
    modules read and write these slots as C fields. The ops' methods are bound onto its
    subclass Tensor, the class users see (as torch._C.TensorBase and torch.Tensor)."""
    __slots__ = ('data', 'requires_grad', 'grad', '_node', '_version', '_retains_grad', '__weakref__')
    data: np.ndarray
    requires_grad: bool
    grad: Tensor | None
    _node: Function | None
    _version: list[int]
    _retains_grad: bool

class Tensor(TensorBase):
    __slots__ = ()
    __array_priority__ = 1000

    def __init__(self, data: Any, dtype: Any=None, requires_grad: bool=False) -> None:
        ...

    @staticmethod
    def _wrap(data: np.ndarray) -> Tensor:
        """A leaf around `data` (no copy, no checks): the fast path for internal use."""
        ...

    @property
    def shape(self) -> tuple[int, ...]:
        ...

    @property
    def ndim(self) -> int:
        ...

    @property
    def dtype(self) -> np.dtype:
        ...

    def size(self, dim: int | None=None) -> tuple[int, ...] | int:
        """The shape, or the length of one dimension (PyTorch's size())."""
        ...

    def numel(self) -> int:
        ...

    def dim(self) -> int:
        ...

    @property
    def grad_fn(self) -> Function | None:
        """The recorded op that made this tensor (None for leaves)."""
        ...

    @property
    def is_leaf(self) -> bool:
        ...

    @property
    def T(self) -> Tensor:
        ...

    def __len__(self) -> int:
        ...

    def __iter__(self):
        ...
    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        ...

    def numpy(self) -> np.ndarray:
        """The data as a numpy array (shared, not copied; detach first is implied)."""
        ...

    def __array__(self, dtype: Any=None, copy: bool | None=None) -> np.ndarray:
        ...

    def item(self) -> float | int | bool:
        ...

    def tolist(self) -> Any:
        ...

    def __float__(self) -> float:
        ...

    def __int__(self) -> int:
        ...

    def __index__(self) -> int:
        ...

    def __repr__(self) -> str:
        ...

    def requires_grad_(self, requires_grad: bool=True) -> Tensor:
        """Mark a leaf so that gradients are collected in .grad (float tensors only)."""
        ...

    def detach(self) -> Tensor:
        """The same data (shared, with the same version counter) cut from the graph."""
        ...

    def retain_grad(self) -> Tensor:
        """Keep .grad for this non-leaf tensor too after backward."""
        ...

    def register_post_accumulate_grad_hook(self, hook: Callable[[Tensor], None]) -> Any:
        """Call hook(self) in every backward pass as soon as this leaf's gradient has been
        accumulated into .grad, before the rest of the pass (PyTorch's name). Returns a
        handle whose remove() unregisters it."""
        ...

    def _accumulate_grad(self, g: Tensor, create_graph: bool) -> None:
        ...

    def backward(self, grad: Tensor | np.ndarray | float | None=None, retain_graph: bool | None=None, create_graph: bool=False, inputs: Sequence[Tensor] | None=None) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's .grad (or only those in `inputs`).

        grad: d(loss)/d(self), required unless self has one element.
        retain_graph: keep saved tensors for another backward (default: create_graph).
        create_graph: record the backward pass, for gradients of gradients.
        """
        ...

    def _check_inplace(self, op: str) -> None:
        ...

    def _bump(self) -> Tensor:
        ...

    def __setitem__(self, index: Any, value: Any) -> None:
        ...

    def copy_(self, src: Tensor | np.ndarray) -> Tensor:
        """Copy src's values into this tensor (broadcasting), in place."""
        ...

    def zero_(self) -> Tensor:
        ...

    def fill_(self, value: float) -> Tensor:
        ...

    def _inplace(self, op: str, other: Any, ufunc: np.ufunc) -> Tensor:
        ...

    def add_(self, other: Any, alpha: float=1.0) -> Tensor:
        ...

    def sub_(self, other: Any) -> Tensor:
        ...

    def mul_(self, other: Any) -> Tensor:
        ...

    def div_(self, other: Any) -> Tensor:
        ...

    def _augmented(self, other: Any, ufunc: np.ufunc, op: str, fallback) -> Tensor:
        ...

    def __iadd__(self, other: Any) -> Tensor:
        ...

    def __isub__(self, other: Any) -> Tensor:
        ...

    def __imul__(self, other: Any) -> Tensor:
        ...

    def __itruediv__(self, other: Any) -> Tensor:
        ...

    def __abs__(self) -> Tensor:
        """|x| (gradient sign(x): 0 at 0 and at NaN, as PyTorch's). Saves sign(x)."""
        ...

    def __add__(self, b: Any) -> Tensor:
        """a + b (broadcasting)."""
        ...

    def __and__(self, b: Any) -> Tensor:
        """a & b for bool tensors."""
        ...

    def __eq__(self, b: Any) -> Tensor:
        """a == b elementwise, as a bool tensor (no gradient)."""
        ...

    def __ge__(self, b: Any) -> Tensor:
        """a >= b elementwise, as a bool tensor (no gradient)."""
        ...

    def __getitem__(self, index: Any) -> Tensor:
        """x[index], numpy semantics. Out-of-range indices raise IndexError naming the shape."""
        ...

    def __gt__(self, b: Any) -> Tensor:
        """a > b elementwise, as a bool tensor (no gradient)."""
        ...

    def __invert__(self) -> Tensor:
        """~a for a bool tensor."""
        ...

    def __le__(self, b: Any) -> Tensor:
        """a <= b elementwise, as a bool tensor (no gradient)."""
        ...

    def __lt__(self, b: Any) -> Tensor:
        """a < b elementwise, as a bool tensor (no gradient)."""
        ...

    def __matmul__(self, b: Tensor) -> Tensor:
        """a @ b. 1-D a is a row vector, 1-D b a column vector (the added dim is removed);
    batch dims broadcast. Shape errors name both shapes."""
        ...

    def __mul__(self, b: Any) -> Tensor:
        """a * b (broadcasting)."""
        ...

    def __ne__(self, b: Any) -> Tensor:
        """a != b elementwise, as a bool tensor (no gradient)."""
        ...

    def __neg__(self) -> Tensor:
        """-a."""
        ...

    def __or__(self, b: Any) -> Tensor:
        """a | b for bool tensors."""
        ...

    def __pow__(self, exponent: Any) -> Tensor:
        """a ** exponent: a number exponent (any base), or a tensor one (positive base)."""
        ...

    def __radd__(self, other):
        ...

    def __rmatmul__(self, other):
        ...

    def __rmul__(self, other):
        ...

    def __rpow__(self, other):
        ...

    def __rsub__(self, other):
        ...

    def __rtruediv__(self, other):
        ...

    def __sub__(self, b: Any) -> Tensor:
        """a - b (broadcasting)."""
        ...

    def __truediv__(self, b: Any) -> Tensor:
        """a / b (broadcasting)."""
        ...

    def abs(self) -> Tensor:
        """|x| (gradient sign(x): 0 at 0 and at NaN, as PyTorch's). Saves sign(x)."""
        ...

    def add(self, b: Any) -> Tensor:
        """a + b (broadcasting)."""
        ...

    def bool(self):
        ...

    def clamp(self, min: float | None=None, max: float | None=None) -> Tensor:
        """x limited to [min, max] (either may be None). Gradient 1 inside, 0 outside."""
        ...

    def clone(self) -> Tensor:
        """A copy of x with its own memory, still connected to the graph."""
        ...

    def contiguous(self):
        ...

    def div(self, b: Any) -> Tensor:
        """a / b (broadcasting)."""
        ...

    def double(self):
        ...

    def eq(self, b: Any) -> Tensor:
        """a == b elementwise, as a bool tensor (no gradient)."""
        ...

    def exp(self) -> Tensor:
        """e ** x. Saves the output."""
        ...

    def expand(self, *shape: Any) -> Tensor:
        """A broadcast view of x with `shape` (-1 keeps a dim). Read-only: it shares elements."""
        ...

    def expand_as(self, other):
        ...

    def flatten(self, start_dim: int=0, end_dim: int=-1) -> Tensor:
        """Merge dims start_dim..end_dim into one (a reshape)."""
        ...

    def float(self):
        ...

    def ge(self, b: Any) -> Tensor:
        """a >= b elementwise, as a bool tensor (no gradient)."""
        ...

    def gelu(self, approximate: str='tanh') -> Tensor:
        """GELU with the tanh approximation (as GPT-2; PyTorch's approximate='tanh').

    The exact erf form is not provided: numpy has no vectorized erf. Saves the input.
    """
        ...

    def gt(self, b: Any) -> Tensor:
        """a > b elementwise, as a bool tensor (no gradient)."""
        ...

    def le(self, b: Any) -> Tensor:
        """a <= b elementwise, as a bool tensor (no gradient)."""
        ...

    def log(self) -> Tensor:
        """Natural logarithm. Saves the input."""
        ...

    def log_softmax(self, axis: int=-1, *, dim: int | None=None) -> Tensor:
        """x - logsumexp(x) along `axis` (default last), computed stably."""
        ...

    def logsumexp(self, axis: Any=None, keepdims: bool=False, *, dim: Any=None, keepdim: bool | None=None) -> Tensor:
        """log(sum(exp(x))) over `axis`, computed stably (the max is subtracted first)."""
        ...

    def long(self):
        ...

    def lt(self, b: Any) -> Tensor:
        """a < b elementwise, as a bool tensor (no gradient)."""
        ...

    def masked_fill(self, mask: Any, value: float) -> Tensor:
        """x with `value` where mask is true (mask broadcasts to x's shape)."""
        ...

    def matmul(self, b: Tensor) -> Tensor:
        """a @ b. 1-D a is a row vector, 1-D b a column vector (the added dim is removed);
    batch dims broadcast. Shape errors name both shapes."""
        ...

    def max(self, axis: Any=None, keepdims: bool=False, *, dim: Any=None, keepdim: bool | None=None) -> Tensor:
        """Largest value over `axis` (None: all); tied maxima share the gradient."""
        ...

    def maximum(self, b: Any) -> Tensor:
        """Elementwise max of a and b (broadcasting); ties share the gradient equally."""
        ...

    def mean(self, axis: Any=None, keepdims: bool=False, *, dim: Any=None, keepdim: bool | None=None) -> Tensor:
        """Mean over `axis` (None: all)."""
        ...

    def min(self, axis: Any=None, keepdims: bool=False, *, dim: Any=None, keepdim: bool | None=None) -> Tensor:
        """Smallest value over `axis` (None: all); tied minima share the gradient."""
        ...

    def minimum(self, b: Any) -> Tensor:
        """Elementwise min of a and b (broadcasting); ties share the gradient equally."""
        ...

    def mul(self, b: Any) -> Tensor:
        """a * b (broadcasting)."""
        ...

    def ne(self, b: Any) -> Tensor:
        """a != b elementwise, as a bool tensor (no gradient)."""
        ...

    def neg(self) -> Tensor:
        """-a."""
        ...

    def permute(self, *axes: Any) -> Tensor:
        """Reorder the dims: out.shape[i] = x.shape[axes[i]]."""
        ...

    def pow(self, exponent: Any) -> Tensor:
        """a ** exponent: a number exponent (any base), or a tensor one (positive base)."""
        ...

    def relu(self) -> Tensor:
        """max(x, 0): NaN stays NaN. Gradient 1 where the output is not 0 (at NaN too, as
    PyTorch's), 0 at and below 0, whatever the incoming gradient holds there. Saves that
    mask."""
        ...

    def reshape(self, *shape: Any) -> Tensor:
        """The same elements in a new shape (one dim may be -1)."""
        ...

    def sigmoid(self) -> Tensor:
        """1 / (1 + e ** -x), computed without overflow. Saves the output."""
        ...

    def softmax(self, axis: int=-1, *, dim: int | None=None) -> Tensor:
        """exp(x) / sum(exp(x)) along `axis` (default last), computed stably."""
        ...

    def softplus(self) -> Tensor:
        """log(1 + e ** x), computed without overflow. Saves the input."""
        ...

    def split(self, split_size_or_sections: int | Sequence[int], axis: int=0, *, dim: int | None=None) -> tuple[Tensor, ...]:
        """Pieces of x along `axis`: equal pieces of a given size (the last may be shorter), or
    pieces with the listed sizes."""
        ...

    def sqrt(self) -> Tensor:
        """Square root. Saves the output."""
        ...

    def squeeze(self, axis: Any=None, *, dim: Any=None) -> Tensor:
        """Drop size-1 dims (all, or those in `axis`; others in `axis` must have size 1)."""
        ...

    def std(self, axis: Any=None, keepdims: bool=False, correction: int=1, *, dim: Any=None, keepdim: bool | None=None) -> Tensor:
        """Standard deviation: sqrt(var(...)); its gradient is 0 over a constant slice."""
        ...

    def sub(self, b: Any) -> Tensor:
        """a - b (broadcasting)."""
        ...

    def sum(self, axis: Any=None, keepdims: bool=False, *, dim: Any=None, keepdim: bool | None=None) -> Tensor:
        """Sum over `axis` (None: all). PyTorch's dim/keepdim are accepted too."""
        ...

    def sum_to_shape(self, shape: tuple[int, ...]) -> Tensor:
        """The reverse of broadcasting: sum x down to `shape` (which x's shape broadcasts from)."""
        ...

    def tanh(self) -> Tensor:
        """Hyperbolic tangent. Saves the output."""
        ...

    def to(self, dtype: Any) -> Tensor:
        """x converted to `dtype` (float32, float64, int64, bool); differentiable between floats.
    Returns x itself when it already has that dtype."""
        ...

    def transpose(self, dim0: int=-2, dim1: int=-1) -> Tensor:
        """Swap two dims (by default the last two). x.T reverses all dims."""
        ...

    def unsqueeze(self, axis: int) -> Tensor:
        """Insert a size-1 dim at `axis` (negative counts from the end of the result)."""
        ...

    def var(self, axis: Any=None, keepdims: bool=False, correction: int=1, *, dim: Any=None, keepdim: bool | None=None) -> Tensor:
        """Variance over `axis` with (n - correction) in the denominator (default 1, unbiased,
    as PyTorch); correction=0 gives the biased variance."""
        ...

    def view(self, *shape):
        ...

def _set_slots(t: TensorBase, data: np.ndarray, version: list[int], node: Function | None, requires_grad: bool) -> Tensor:
    """Set all of t's slots: the one place they are set (Tensor() checks its arguments
    first; the tape's hot paths skip __init__ through make_tensor)."""
    ...

def make_tensor(data: np.ndarray, version: list[int], node: Function | None, requires_grad: bool) -> Tensor:
    """A Tensor around `data` (no copy, no checks) with the version counter `version`
    (shared with the tensor it views, or a new [0]) made by the recorded op `node`."""
    ...

def wrap_array(data: np.ndarray) -> Tensor:
    """A leaf around `data` (no copy, no checks): Tensor._wrap, which the compiled tape
    modules call as a C function."""
    ...
