"""Matrix product a @ b with numpy's matmul semantics (1-D operands, broadcast batch
dims), on the GEMM kernels. Saves both inputs; the backward is two more products."""

from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd.function import Function
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
