"""Matrix product a @ b with numpy's matmul semantics (1-D operands, broadcast batch
dims), on the GEMM kernels, and the fused linear map x @ w^T + b. Both save their
matrix inputs; each backward is two more products."""

from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd.function import Function
from ..autograd.grad_mode import _grad_enabled
from ..tensor import Tensor
from ._util import binary_operands
from .registry import OpInfo, Sample, rand, register


class MatMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return backend.matmul(a.data, b.data)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        ga, gb = ctx.needs_input_grad
        grad_a = g @ b.transpose(-1, -2) if ga else None
        grad_b = None
        if gb:
            if b.ndim == 2 and a.ndim > 2:
                # fold a's batch into rows: one (k x rows) @ (rows x n) product, no batch sum
                k, n = b.shape
                grad_b = a.reshape(-1, k).transpose(-1, -2) @ g.reshape(-1, n)
            else:
                grad_b = a.transpose(-1, -2) @ g
        return grad_a, grad_b


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """a @ b. 1-D a is a row vector, 1-D b a column vector (the added dim is removed);
    batch dims broadcast. Shape errors name both shapes."""
    a, b = binary_operands("matmul", a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: 0-d operands are not allowed (shapes {a.shape} and {b.shape})")
    if a.ndim == 1 or b.ndim == 1:
        out = matmul(a.unsqueeze(0) if a.ndim == 1 else a, b.unsqueeze(-1) if b.ndim == 1 else b)
        if a.ndim == 1:
            out = out.squeeze(-2)
        return out.squeeze(-1) if b.ndim == 1 else out
    if a.data.dtype.kind != "f":
        raise TypeError(f"matmul: expected float tensors, got {a.dtype}")
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match: "
                         f"{a.shape[-1]} != {b.shape[-2]}")
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dims of {a.shape} and {b.shape} do not broadcast"
                         ) from None
    return MatMul.apply(a, b)


def _matmul_samples(rng, dtype):
    for sa, sb in [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)),
                   ((3, 4), (2, 4, 5)), ((2, 1, 3, 4), (3, 4, 2)), ((4,), (4, 3)), ((3, 4), (4,)),
                   ((4,), (4,)), ((0, 4), (4, 3)), ((3, 0), (0, 2)), ((1, 1), (1, 1))]:
        yield Sample((rand(rng, sa, dtype), rand(rng, sb, dtype)), name=f"{sa}@{sb}")


register(OpInfo("matmul", matmul, np.matmul, _matmul_samples, uses_kernel=True,
                rtol32=1e-5, atol32=1e-5, aliases=("__matmul__", "__rmatmul__")))


class Linear(Function):
    """y = x @ w^T + b as one node: one GEMM (w read transposed in place), the bias added
    into its output. Saves x and w; the backward is two GEMMs and a column sum."""

    @staticmethod
    def forward(ctx, x, w, b=None):
        ctx.save_for_backward(x, w)
        n_out, n_in = w.shape
        y = backend.gemm(x.data.reshape(-1, n_in), w.data, trans_b=True)
        if b is not None:
            y += b.data
        return y.reshape(x.shape[:-1] + (n_out,))

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        needs = ctx.needs_input_grad
        n_out, n_in = w.shape
        if _grad_enabled():  # create_graph: recorded tensor ops
            g2, x2 = g.reshape(-1, n_out), x.reshape(-1, n_in)
            grad_x = (g2 @ w).reshape(x.shape) if needs[0] else None
            grad_w = g2.transpose() @ x2 if needs[1] else None
            grad_b = g2.sum(axis=0) if len(needs) > 2 and needs[2] else None
        else:
            g2, x2 = g.data.reshape(-1, n_out), x.data.reshape(-1, n_in)
            wrap = Tensor._wrap
            grad_x = wrap(backend.gemm(g2, w.data).reshape(x.shape)) if needs[0] else None
            grad_w = wrap(backend.gemm(g2, x2, trans_a=True)) if needs[1] else None
            grad_b = wrap(g2.sum(axis=0)) if len(needs) > 2 and needs[2] else None
        return (grad_x, grad_w) if len(needs) == 2 else (grad_x, grad_w, grad_b)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight^T + bias, as PyTorch's F.linear: x (..., in), weight (out, in) and
    bias (out,) or None -> (..., out). Errors name the shapes."""
    tensors = (x, weight) if bias is None else (x, weight, bias)
    for t in tensors:
        if not isinstance(t, Tensor):
            raise TypeError(f"linear: expected Tensors, got {type(t).__name__}")
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out, in), got shape {weight.shape}")
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input of shape {x.shape} does not end in "
                         f"{weight.shape[1]} (weight {weight.shape})")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias must have shape ({weight.shape[0]},), got {bias.shape}")
    dtypes = {t.data.dtype for t in tensors}
    if len(dtypes) > 1 or x.data.dtype.kind != "f":
        raise TypeError(f"linear: expected float tensors of one dtype, got "
                        f"{', '.join(str(t.dtype) for t in tensors)}")
    return Linear.apply(*tensors)


def _linear_ref(x, w, b=None):
    y = x @ w.T
    return y if b is None else y + b


def _linear_samples(rng, dtype):
    for sx, out, bias in [((3, 4), 5, True), ((2, 3, 4), 5, True), ((4,), 3, True),
                          ((3, 4), 5, False), ((0, 4), 2, True), ((2, 1), 1, True)]:
        args = (rand(rng, sx, dtype), rand(rng, (out, sx[-1]), dtype))
        if bias:
            args += (rand(rng, (out,), dtype),)
        yield Sample(args, name=f"{sx} -> {out}{'' if bias else ', no bias'}")


register(OpInfo("linear", linear, _linear_ref, _linear_samples, uses_kernel=True,
                rtol32=1e-5, atol32=1e-5))
