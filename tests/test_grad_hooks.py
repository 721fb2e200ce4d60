"""The tape's "this leaf's gradient is ready" hook (register_post_accumulate_grad_hook)."""

import gc

import numpy as np
import pytest

import tinytape as tt
from tinytape.autograd import hooks


def _leaf(shape, seed):
    return tt.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def test_hook_sees_the_complete_gradient_before_earlier_leaves_are_done():
    # a used twice (in two ops); w1 feeds the first op of the chain, so its gradient comes
    # last. Each hook records what .grad holds when it runs and which grads exist then.
    a, w1, w2 = _leaf((3,), 0), _leaf((3,), 1), _leaf((3,), 2)
    calls = []

    def record(name):
        return lambda t: calls.append(
            (name, t.grad.numpy().copy(), [w1.grad is None, w2.grad is None])
        )

    for name, t in (("a", a), ("w1", w1), ("w2", w2)):
        t.register_post_accumulate_grad_hook(record(name))
    h = (w1 * a).tanh()  # early op: w1 and a's first use
    loss = ((h * w2) + a * a).sum()  # late op: w2 and a's second use
    loss.backward()
    got = {name: (g, none) for name, g, none in calls}
    assert [c[0] for c in calls].count("a") == 1 and len(calls) == 3
    th = np.tanh(w1.numpy() * a.numpy())
    dh = w2.numpy() * (1 - th**2)
    np.testing.assert_allclose(got["a"][0], dh * w1.numpy() + 2 * a.numpy(), rtol=1e-12)
    np.testing.assert_allclose(got["w1"][0], dh * a.numpy(), rtol=1e-12)
    np.testing.assert_allclose(got["w2"][0], th, rtol=1e-12)
    # w2 is complete after the late op alone: its hook runs while w1 has no gradient yet
    assert got["w2"][1] == [True, False]
    # the hooks ran mid-backward: the order is w2 (late op) before w1 and a (early op)
    assert [c[0] for c in calls].index("w2") < [c[0] for c in calls].index("w1")


def test_hook_accumulates_across_backwards_and_remove_stops_it():
    w = _leaf((2, 2), 3)
    seen = []
    handle = w.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.numpy().copy()))
    (w * 2.0).sum().backward()
    (w * 3.0).sum().backward()
    np.testing.assert_array_equal(seen[0], np.full((2, 2), 2.0))
    np.testing.assert_array_equal(seen[1], np.full((2, 2), 5.0))  # .grad after accumulation
    handle.remove()
    (w * 1.0).sum().backward()
    assert len(seen) == 2 and w.grad.numpy()[0, 0] == 6.0
    assert id(w) not in hooks.post_accumulate_grad_hooks


class _NoGradForSecond(tt.Function):
    """out = a * stop(b): a use of b that needs its gradient but whose backward sends None."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(b)
        return a.data * b.data

    @staticmethod
    def backward(ctx, grad):
        (b,) = ctx.saved_tensors
        return grad * b, None


def test_hook_counts_a_use_whose_gradient_is_none_and_skips_grad_with_inputs():
    w, x = _leaf((4,), 4), _leaf((4,), 5)
    seen = []
    w.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.numpy().copy()))
    # w's uses: one sends None (second argument), one sends x; the hook still runs once
    (_NoGradForSecond.apply(x, w) + w * x).sum().backward()
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], x.numpy())
    (g,) = tt.grad((w * x).sum(), [w])
    assert len(seen) == 1  # grad(..., inputs) touches no .grad: no hook
    np.testing.assert_allclose(g.numpy(), x.numpy())


def test_hook_registry_forgets_dead_tensors_and_rejects_non_leaves():
    w = _leaf((2,), 6)
    w.register_post_accumulate_grad_hook(lambda t: None)
    leaf_id = id(w)
    assert leaf_id in hooks.post_accumulate_grad_hooks
    del w
    gc.collect()
    assert leaf_id not in hooks.post_accumulate_grad_hooks
    v = _leaf((2,), 7)
    with pytest.raises(RuntimeError, match="only leaf tensors"):
        (v * 2).register_post_accumulate_grad_hook(lambda t: None)
    with pytest.raises(RuntimeError, match="does not require grad"):
        tt.tensor([1.0, 2.0]).register_post_accumulate_grad_hook(lambda t: None)
    with pytest.raises(TypeError, match="callable"):
        v.register_post_accumulate_grad_hook(3)


def test_gradients_with_hooks_equal_those_without():
    # the early delivery changes when .grad is written, never its value: a small MLP
    rng = np.random.default_rng(8)
    x = rng.standard_normal((5, 4))
    grads = []
    for with_hooks in (False, True):
        model = tt.nn.Sequential(
            tt.nn.Linear(4, 6, generator=0), tt.nn.GELU(), tt.nn.Linear(6, 3, generator=1)
        ).double()
        handles = (
            [p.register_post_accumulate_grad_hook(lambda t: None) for p in model.parameters()]
            if with_hooks
            else []
        )
        out = model(tt.tensor(x))
        (out * out).sum().backward()
        grads.append([p.grad.numpy().copy() for p in model.parameters()])
        for h in handles:
            h.remove()
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)
