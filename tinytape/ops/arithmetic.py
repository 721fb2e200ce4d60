"""Elementwise arithmetic (+ - * / ** and negation) with numpy broadcasting, and
comparisons (no gradient). Broadcast gradients are reduced to each input's shape
centrally by the engine (Tensor.sum_to_shape)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import backend, profiler
from ..autograd.function import Function, apply_op
from ..autograd.grad_mode import _grad_enabled
from ..tensor import Tensor, make_tensor, wrap_array
from ._util import binary_operands, broadcast_error
from .registry import (
    BROADCAST_PAIRS,
    OpInfo,
    Sample,
    away_from_zero,
    positive,
    rand,
    register,
    with_ties,
)


def _binary_op(cls: type[Function], name: str, doc: str) -> Callable[[Any, Any], Tensor]:
    """The function of a binary elementwise op (add, mul ...; also Tensor's operator):
    a (op) b by the Function cls, whose kernel is a numpy ufunc or its backend function
    (tinytape.backend.add ...: a C kernel where it applies, else the ufunc), with
    broadcasting; a Python number takes the dtype of the tensor operand."""
    kernel = cls.kernel

    def op(a: Any, b: Any) -> Tensor:
        grad_enabled = _grad_enabled()
        if not grad_enabled:
            if profiler.active:
                return profiler.call_unprofiled(cls.__name__, "forward", op, a, b)
            # Nothing is recorded (no_grad, or a backward pass without create_graph): the
            # kernel alone on the arrays, no node and no ctx. For two tensors of one dtype,
            # or a float tensor and a Python number (converted as as_tensor does); other
            # operands, and shapes that do not broadcast, take the general path, which
            # raises the errors.
            x = y = None
            if isinstance(a, Tensor):
                x = a.data
                if isinstance(b, Tensor):
                    y = b.data
                    if y.dtype is not x.dtype:
                        y = None
                elif (type(b) is float or type(b) is int) and x.dtype.kind == "f":
                    y = np.asarray(b, x.dtype)  # a 0-d array: numpy takes it faster
            elif (
                (type(a) is float or type(a) is int)
                and isinstance(b, Tensor)
                and b.data.dtype.kind == "f"
            ):
                y = b.data
                x = np.asarray(a, y.dtype)
            if y is not None:
                try:
                    data = kernel(x, y)
                except ValueError:
                    pass
                else:
                    return make_tensor(data, [0], None, False)
        if isinstance(a, Tensor) and type(b) is float and a.data.dtype.kind == "f":
            b = wrap_array(np.asarray(b, a.data.dtype))  # t + 0.5: as_tensor would
        elif not (isinstance(a, Tensor) and isinstance(b, Tensor) and a.data.dtype == b.data.dtype):
            a, b = binary_operands(name, a, b)
        try:
            return apply_op(cls, (a, b), grad_enabled)
        except ValueError as e:
            if "broadcast" in str(e):
                raise broadcast_error(name, a, b) from None
            raise

    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    return op


def _pair_samples(make_b=rand, make_a=rand):
    def samples(rng, dtype):
        for sa, sb in BROADCAST_PAIRS:
            yield Sample((make_a(rng, sa, dtype), make_b(rng, sb, dtype)), name=f"{sa}{sb}")

    return samples


# ------------------------------------------------------------------ add
class Add(Function):
    kernel = staticmethod(backend.add)

    @staticmethod
    def forward(ctx, a, b):
        return ctx.kernel(a.data, b.data)

    @staticmethod
    def backward(ctx, g):
        return g, g


add = _binary_op(Add, "add", "a + b (broadcasting).")

register(
    OpInfo(
        "add",
        add,
        np.add,
        _pair_samples(),
        uses_kernel=True,
        aliases=("__add__", "__radd__"),
    )
)


class Sub(Function):
    kernel = staticmethod(backend.sub)

    @staticmethod
    def forward(ctx, a, b):
        return ctx.kernel(a.data, b.data)

    @staticmethod
    def backward(ctx, g):
        return g, -g


sub = _binary_op(Sub, "sub", "a - b (broadcasting).")

register(
    OpInfo(
        "sub",
        sub,
        np.subtract,
        _pair_samples(),
        uses_kernel=True,
        aliases=("__sub__", "__rsub__"),
    )
)


class Mul(Function):
    kernel = staticmethod(backend.mul)

    @staticmethod
    def forward(ctx, a, b):
        if ctx.record:
            ga, gb = ctx.needs_input_grad
            ctx.save_for_backward(a if gb else None, b if ga else None)
        return ctx.kernel(a.data, b.data)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        if _grad_enabled():  # create_graph: recorded
            return (g * b if b is not None else None), (g * a if a is not None else None)
        g = g.data
        return (wrap_array(backend.mul(g, b.data)) if b is not None else None), (
            wrap_array(backend.mul(g, a.data)) if a is not None else None
        )


mul = _binary_op(Mul, "mul", "a * b (broadcasting).")

register(
    OpInfo(
        "mul",
        mul,
        np.multiply,
        _pair_samples(),
        uses_kernel=True,
        aliases=("__mul__", "__rmul__"),
    )
)


class Div(Function):
    kernel = staticmethod(backend.div)

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.kernel(a.data, b.data)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        ga, gb = ctx.needs_input_grad
        return (g / b if ga else None), (-g * a / (b * b) if gb else None)


div = _binary_op(Div, "div", "a / b (broadcasting).")

register(
    OpInfo(
        "div",
        div,
        np.true_divide,
        _pair_samples(away_from_zero),
        uses_kernel=True,
        aliases=("__truediv__", "__rtruediv__"),
    )
)


class Neg(Function):
    kernel = np.negative

    @staticmethod
    def forward(ctx, a):
        return ctx.kernel(a.data)

    @staticmethod
    def backward(ctx, g):
        return (-g,)


def neg(a: Tensor) -> Tensor:
    """-a."""
    if not _grad_enabled() and isinstance(a, Tensor):
        if profiler.active:
            return profiler.call_unprofiled("Neg", "forward", neg, a)
        return wrap_array(Neg.kernel(a.data))  # nothing recorded: no node, no ctx
    return Neg.apply(a)


def _unary_samples(make=rand):
    def samples(rng, dtype):
        for shape in [(), (1,), (5,), (3, 4), (2, 1, 3), (0, 3)]:
            yield Sample((make(rng, shape, dtype),), name=str(shape))

    return samples


register(OpInfo("neg", neg, np.negative, _unary_samples(), aliases=("__neg__",)))


class PowScalar(Function):
    @staticmethod
    def forward(ctx, a, exponent):
        ctx.save_for_backward(a)
        ctx.exponent = exponent
        return a.data ** a.data.dtype.type(exponent)

    @staticmethod
    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        p = ctx.exponent
        if p == 2:
            return (g * (a * 2.0),)
        return (g * (a ** (p - 1)) * p,)


class PowTensor(Function):
    kernel = np.power

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        ctx.save_output()
        return ctx.kernel(a.data, b.data)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        ga, gb = ctx.needs_input_grad
        y = ctx.output
        return (g * b * a ** (b - 1.0) if ga else None), (g * y * a.log() if gb else None)


_pow_tensor = _binary_op(PowTensor, "pow", "a ** b for a tensor exponent (positive base).")


def pow(a: Any, exponent: Any) -> Tensor:
    """a ** exponent: a number exponent (any base), or a tensor one (positive base)."""
    if isinstance(exponent, (int, float, np.number)) and isinstance(a, Tensor):
        if a.data.dtype.kind != "f":
            raise TypeError(f"pow: base must be a float tensor, got {a.dtype}")
        return PowScalar.apply(a, exponent=float(exponent))
    return _pow_tensor(a, exponent)


def _pow_samples(rng, dtype):
    for shape in [(), (4,), (3, 4), (0, 2)]:
        for p in (2.0, 3.0, 0.5, -1.5):
            base = positive(rng, shape, dtype) if p != int(p) else rand(rng, shape, dtype)
            yield Sample((base,), {"exponent": p}, name=f"{shape}^{p}")


def _pow_tensor_samples(rng, dtype):
    for sa, sb in [((3, 4), (3, 4)), ((3, 4), (4,)), ((), (2, 3)), ((0, 2), (2,))]:
        yield Sample((positive(rng, sa, dtype), rand(rng, sb, dtype)), name=f"{sa}{sb}")


register(
    OpInfo(
        "pow",
        lambda a, exponent: pow(a, exponent),
        lambda a, exponent: np.power(a, exponent),
        _pow_samples,
        aliases=("__pow__",),
    )
)
register(OpInfo("pow_tensor", pow, np.power, _pow_tensor_samples, aliases=("__rpow__",)))


# ------------------------------------------------------------------ comparisons
def _compare(op: str, ufunc: np.ufunc, a: Any, b: Any) -> Tensor:
    """A bool tensor, not recorded. A Python number compares as it is (no cast)."""
    if isinstance(a, Tensor) and isinstance(b, (int, float, np.number)):
        a_data, b_data = a.data, b
    else:
        a, b = binary_operands(op, a, b)
        a_data, b_data = a.data, b.data
    try:
        return wrap_array(np.asarray(ufunc(a_data, b_data)))
    except ValueError:
        raise broadcast_error(op, *(t for t in (a, b) if isinstance(t, Tensor))) from None


def eq(a: Any, b: Any) -> Tensor:
    """a == b elementwise, as a bool tensor (no gradient)."""
    return _compare("eq", np.equal, a, b)


def ne(a: Any, b: Any) -> Tensor:
    """a != b elementwise, as a bool tensor (no gradient)."""
    return _compare("ne", np.not_equal, a, b)


def lt(a: Any, b: Any) -> Tensor:
    """a < b elementwise, as a bool tensor (no gradient)."""
    return _compare("lt", np.less, a, b)


def le(a: Any, b: Any) -> Tensor:
    """a <= b elementwise, as a bool tensor (no gradient)."""
    return _compare("le", np.less_equal, a, b)


def gt(a: Any, b: Any) -> Tensor:
    """a > b elementwise, as a bool tensor (no gradient)."""
    return _compare("gt", np.greater, a, b)


def ge(a: Any, b: Any) -> Tensor:
    """a >= b elementwise, as a bool tensor (no gradient)."""
    return _compare("ge", np.greater_equal, a, b)


def logical_not(a: Tensor) -> Tensor:
    """~a for a bool tensor."""
    if a.data.dtype != np.bool_:
        raise TypeError(f"logical_not: expected a bool tensor, got {a.dtype}")
    return wrap_array(np.logical_not(a.data))


def logical_and(a: Any, b: Any) -> Tensor:
    """a & b for bool tensors."""
    return _compare("logical_and", np.logical_and, a, b)


def logical_or(a: Any, b: Any) -> Tensor:
    """a | b for bool tensors."""
    return _compare("logical_or", np.logical_or, a, b)


for _name, _fn, _ref, _dunder in [
    ("eq", eq, np.equal, "__eq__"),
    ("ne", ne, np.not_equal, "__ne__"),
    ("lt", lt, np.less, "__lt__"),
    ("le", le, np.less_equal, "__le__"),
    ("gt", gt, np.greater, "__gt__"),
    ("ge", ge, np.greater_equal, "__ge__"),
]:
    # values on a small grid: equal pairs occur, so `le` and `lt` (say) give different results
    register(
        OpInfo(
            _name,
            _fn,
            _ref,
            _pair_samples(with_ties, with_ties),
            differentiable=False,
            gradgrad=False,
            aliases=(_dunder,),
        )
    )


def _bool_samples(rng, dtype):
    for sa, sb in [((3, 4), (3, 4)), ((3, 4), (4,)), ((), (2,))]:
        yield Sample((rng.random(sa) < 0.5, rng.random(sb) < 0.5), name=f"{sa}{sb}")


register(
    OpInfo(
        "logical_and",
        logical_and,
        np.logical_and,
        _bool_samples,
        differentiable=False,
        gradgrad=False,
        aliases=("__and__",),
    )
)
register(
    OpInfo(
        "logical_or",
        logical_or,
        np.logical_or,
        _bool_samples,
        differentiable=False,
        gradgrad=False,
        aliases=("__or__",),
    )
)
register(
    OpInfo(
        "logical_not",
        logical_not,
        np.logical_not,
        lambda rng, dtype: iter([Sample((rng.random((3, 4)) < 0.5,))]),
        differentiable=False,
        gradgrad=False,
        aliases=("__invert__",),
    )
)
