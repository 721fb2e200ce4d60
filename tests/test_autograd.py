"""The tape: order, accumulation, retain_graph, grad(), grad modes, create_graph, memory,
in-place detection and error messages."""

from __future__ import annotations

import gc
import threading
import tracemalloc
import weakref

import numpy as np
import pytest

import tinytape as tt


def leaf(*shape, seed=0, dtype="float64"):
    return tt.randn(*shape, generator=seed, dtype=dtype, requires_grad=True)


def test_simple_gradient_by_hand():
    x = tt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (x * x * 3.0 + x).sum()  # dy/dx = 6x + 1
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [7.0, 13.0, 19.0])
    assert x.grad.dtype == np.float32


def test_shared_subexpression_and_accumulation():
    x = leaf(4)
    a = x.exp()
    y = (a * a + a).sum()  # a used three times: dy/dx = (2a + 1) a
    y.backward()
    e = np.exp(x.numpy())
    np.testing.assert_allclose(x.grad.numpy(), (2 * e + 1) * e, rtol=1e-12)
    # a second graph accumulates into the same .grad
    (x * 2.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), (2 * e + 1) * e + 2, rtol=1e-12)


def test_broadcast_gradient_reduced_to_input_shape():
    a, b = leaf(3, 1, 4), leaf(5, 1, seed=1)
    (a * b).sum().backward()
    assert a.grad.shape == (3, 1, 4) and b.grad.shape == (5, 1)
    np.testing.assert_allclose(a.grad.numpy(), np.broadcast_to(b.numpy().sum(), (3, 1, 4)))
    np.testing.assert_allclose(b.grad.numpy(), np.full((5, 1), a.numpy().sum() * 1.0))


def test_chain_of_100000_ops_has_no_recursion_limit():
    x = tt.tensor(1.0, dtype="float64", requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0000001
    y.backward()
    np.testing.assert_allclose(x.grad.item(), 1.0000001**100_000, rtol=1e-9)


def test_nonscalar_backward_needs_a_gradient():
    x = leaf(2, 3)
    y = x * 2.0
    with pytest.raises(RuntimeError, match=r"only for a scalar output.*shape \(2, 3\)"):
        y.backward()
    y.backward(tt.ones(2, 3, dtype="float64"))
    np.testing.assert_allclose(x.grad.numpy(), 2.0)
    with pytest.raises(ValueError, match=r"gradient of shape \(3,\) for a tensor of shape"):
        (x * 2.0).backward(tt.ones(3, dtype="float64"))


def test_second_backward_through_freed_graph_raises_and_retain_graph_allows_it():
    x = leaf(3)
    y = x.exp().sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp(x.numpy()))
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_backward_frees_saved_tensors():
    x = leaf(3)
    e = x.exp()
    node = e.grad_fn
    e.sum().backward()
    assert node.freed and node._saved is None and node._out is None
    m = x * x  # saves both inputs
    node = m.grad_fn
    assert node._saved == (x, x) and node._saved_versions == (0, 0)
    m.sum().backward()
    assert node.freed and node._saved is None and node._saved_versions is None


def test_backward_on_tensor_without_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tt.ones(3).sum().backward()


def test_functional_grad_does_not_touch_dot_grad():
    x, w = leaf(4, 3), leaf(3, 2, seed=1)
    loss = (x @ w).tanh().sum()
    gx, gw = tt.grad(loss, [x, w], retain_graph=True)
    assert x.grad is None and w.grad is None
    loss.backward()
    np.testing.assert_allclose(gx.numpy(), x.grad.numpy())
    np.testing.assert_allclose(gw.numpy(), w.grad.numpy())


def test_functional_grad_of_intermediate_and_unused():
    x = leaf(3)
    h = x * 3.0
    z = leaf(2, seed=5)
    y = (h * h).sum()
    (gh,) = tt.grad(y, h, retain_graph=True)
    np.testing.assert_allclose(gh.numpy(), 2 * h.numpy())
    with pytest.raises(RuntimeError, match=r"input 1 \(shape \(2,\)\) was not used"):
        tt.grad(y, [x, z], retain_graph=True)
    gx, gz = tt.grad(y, [x, z], allow_unused=True)
    assert gz is None
    np.testing.assert_allclose(gx.numpy(), 18 * x.numpy())
    with pytest.raises(RuntimeError, match="input 0 .* does not require grad"):
        tt.grad(y, [tt.ones(2)])


def test_second_derivative_with_create_graph():
    x = leaf(5)
    y = (x**3).sum()
    (g,) = tt.grad(y, x, create_graph=True)
    np.testing.assert_allclose(g.numpy(), 3 * x.numpy() ** 2)
    (h,) = tt.grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), 6 * x.numpy())


class _TwiceByKernel(tt.Function):
    """2x, with a backward that is not recorded (as a fused kernel's would be)."""

    differentiable_backward = False

    @staticmethod
    def forward(ctx, x):
        return 2 * x.data

    @staticmethod
    def backward(ctx, g):
        return (tt.tensor(2 * g.numpy()),)


def test_create_graph_through_a_backward_that_is_not_recorded_raises():
    x = leaf(2, 3)
    y = _TwiceByKernel.apply(x).sum()
    with pytest.raises(RuntimeError, match="_TwiceByKernel does not support create_graph"):
        tt.grad(y, x, create_graph=True)
    (g,) = tt.grad(_TwiceByKernel.apply(x).sum(), x)  # without create_graph: fine
    np.testing.assert_array_equal(g.numpy(), np.full((2, 3), 2.0, np.float32))


def test_gradient_penalty_through_layer_norm_and_cross_entropy():
    """create_graph through the fused kernels (their backwards recorded as composites):
    the gradient penalty's gradient against central differences of the penalty itself."""
    rng = np.random.default_rng(0)
    w = tt.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    x_data, targets = rng.standard_normal((5, 4)), np.array([0, 2, 1, 2, 0])

    def penalty(w_arr):
        x = tt.tensor(x_data, requires_grad=True)
        loss = tt.cross_entropy(tt.layer_norm(x @ w_arr), targets)
        (gx,) = tt.grad(loss, x, create_graph=True)
        return (gx * gx).sum()

    (dw,) = tt.grad(penalty(w), w)
    eps, numeric = 1e-6, np.zeros((4, 3))
    for idx in np.ndindex(4, 3):
        step = np.zeros((4, 3))
        step[idx] = eps
        numeric[idx] = (
            penalty(tt.tensor(w.numpy() + step)).item()
            - penalty(tt.tensor(w.numpy() - step)).item()
        ) / (2 * eps)
    np.testing.assert_allclose(dw.numpy(), numeric, rtol=1e-6, atol=1e-9)


def test_no_grad_and_enable_grad_are_thread_local():
    x = leaf(2)
    seen = {}

    def other():
        seen["other"] = tt.is_grad_enabled()

    with tt.no_grad():
        y = x * 2.0
        t = threading.Thread(target=other)
        t.start()
        t.join()
        with tt.enable_grad():
            z = x * 2.0
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad
    assert seen["other"] is True

    @tt.no_grad()
    def f(v):
        return v * 2.0

    assert not f(x).requires_grad and tt.is_grad_enabled()


def test_no_grad_in_one_asyncio_task_does_not_reach_the_others():
    """The mode is a ContextVar: two tasks interleaved on one thread keep their own."""
    import asyncio

    x = leaf(2)
    seen = {}

    async def inside_no_grad():
        with tt.no_grad():
            await asyncio.sleep(0)  # the other task runs while this block is open
            seen["no_grad task"] = (x * 2.0).requires_grad

    async def recording():
        await asyncio.sleep(0)
        seen["other task"] = (x * 2.0).requires_grad

    async def both():
        await asyncio.gather(inside_no_grad(), recording())

    asyncio.run(both())
    assert seen == {"no_grad task": False, "other task": True}
    assert tt.is_grad_enabled()


def test_detach_requires_grad_and_retain_grad():
    x = leaf(3)
    h = x * 2.0
    d = h.detach()
    assert not d.requires_grad and d.grad_fn is None
    assert np.shares_memory(d.numpy(), h.numpy())
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), 2 * h.numpy())
    with pytest.raises(TypeError, match="only float32/float64 tensors can require grad"):
        tt.tensor([1, 2]).requires_grad_()
    with pytest.raises(RuntimeError, match="use .detach"):
        h.requires_grad_(False)


def test_unused_forward_frees_itself_without_gc():
    """The graph is owned by the tensors that can reach it: dropping the output frees
    every node (no reference cycles, so plain reference counting does it)."""
    x = leaf(16, 16)
    gc.disable()
    try:
        out = ((x @ x).exp().sum(axis=0).softmax() * 2.0).sum()
        nodes = []
        stack = [out.grad_fn]
        while stack:
            n = stack.pop()
            nodes.append(weakref.ref(n))
            stack.extend(t.grad_fn for t in n.inputs if t.grad_fn is not None)
        assert len(nodes) >= 5
        del out, n, stack
        assert all(r() is None for r in nodes)
    finally:
        gc.enable()


def test_no_memory_growth_over_1000_forward_passes():
    x = leaf(64, 64)
    w = leaf(64, 64, seed=1)

    def forward():
        return (x @ w).tanh().softmax().sum()

    tracemalloc.start()
    for _ in range(1000):  # warm-up: numpy's and tracemalloc's own caches fill once
        forward()
    base = tracemalloc.get_traced_memory()[0]
    for _ in range(1000):
        forward()
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert grown < 64 * 1024, f"memory grew by {grown} bytes over 1000 unused forward passes"


def test_in_place_change_of_a_saved_tensor_raises():
    x = tt.randn(3, 4, generator=0, dtype="float64")  # data: no grad
    w = leaf(4, 2)
    loss = (x @ w).sum()
    x.add_(1.0)
    with pytest.raises(
        RuntimeError,
        match=r"MatMul: a tensor of shape \(3, 4\) .* modified "
        r"in place",
    ):
        loss.backward()


def test_in_place_change_of_a_view_of_a_saved_tensor_raises():
    x = tt.randn(3, 4, generator=0, dtype="float64")
    w = leaf(4, 2)
    loss = (x.T.T @ w).sum()  # saves a view of x
    x[0, 0] = 5.0
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


def test_in_place_on_a_tensor_that_requires_grad_is_refused_while_recording():
    w = leaf(3)
    with pytest.raises(RuntimeError, match="in-place change of a tensor that requires grad"):
        w.add_(1.0)
    with tt.no_grad():
        w.add_(1.0)  # an optimizer step
    h = w * 2.0
    h += 1.0  # rebinds h: history stays immutable
    h.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), 2.0)


def test_errors_name_the_culprit():
    a, b = tt.ones(2, 3), tt.ones(4, 3)
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4, 3\) cannot be broadcast"):
        a + b
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 3\) do not match"):
        a @ b
    with pytest.raises(TypeError, match=r"mul: mixed dtypes float32 .* and float64"):
        a * tt.ones(2, 3, dtype="float64")
    with pytest.raises(ValueError, match=r"reshape: cannot reshape a tensor of shape \(2, 3\)"):
        a.reshape(4, 2)
    with pytest.raises(IndexError, match=r"invalid for a tensor of shape \(2, 3\)"):
        a[5]


def test_leaf_grad_is_a_copy_not_an_alias():
    a, b = leaf(3), leaf(3, seed=1)
    (a + b).sum().backward()
    assert not np.shares_memory(a.grad.numpy(), b.grad.numpy())


def test_creation_and_dtypes():
    assert tt.tensor([1.0, 2.0]).dtype == np.float32
    assert tt.tensor([1, 2]).dtype == np.int64
    assert tt.tensor(np.zeros(2)).dtype == np.float64
    assert tt.zeros(2, 3).shape == (2, 3) and tt.ones((2, 3)).dtype == np.float32
    assert tt.full((2,), 7).dtype == np.int64 and tt.full((2,), 0.5).dtype == np.float32
    np.testing.assert_array_equal(tt.arange(5).numpy(), np.arange(5))
    np.testing.assert_array_equal(
        tt.randn(3, generator=1).numpy(), tt.randn(3, generator=1).numpy()
    )
    g = np.random.default_rng(3)
    assert tt.rand(2, generator=g).numpy().max() < 1
    arr = np.zeros(3, np.float32)
    t = tt.from_numpy(arr)
    arr[0] = 5
    assert t.item() if t.numel() == 1 else t.numpy()[0] == 5
    x = tt.tensor([[1.5, 2.0]])
    assert x.to("float64").dtype == np.float64 and x.double().dtype == np.float64
    assert x.size() == (1, 2) and x.size(1) == 2 and x.numel() == 2 and x.ndim == 2
    assert np.asarray(x).shape == (1, 2) and tt.tensor(3.5).item() == 3.5
    assert "tensor([[1.5, 2. ]])" == repr(x)
    with pytest.raises(TypeError, match="unsupported dtype"):
        tt.zeros(2, dtype="int8")
