"""examples/two_layer_network.py: the lecture's procedural backprop (Algorithms 1 and 2)
against the same network as modules on the tape, and both against finite differences."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import tinytape as tt

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "two_layer_network.py"


@pytest.fixture(scope="module")
def ex():
    spec = importlib.util.spec_from_file_location("two_layer_network", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_procedural_and_tape_gradients_agree(ex, seed):
    x, y, alpha, beta = ex.make_problem(seed)
    o = ex.nn_forward(x, y, alpha, beta)
    g_alpha, g_beta = ex.nn_backward(x, y, alpha, beta, o)

    ta, tb = tt.tensor(alpha, requires_grad=True), tt.tensor(beta, requires_grad=True)
    J = ex.NeuralNetwork().forward(tt.tensor(x), y, ta, tb)
    np.testing.assert_allclose(J.item(), o["J"], rtol=1e-13)
    J.backward()
    np.testing.assert_allclose(ta.grad.numpy(), g_alpha, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(tb.grad.numpy(), g_beta, rtol=1e-12, atol=1e-14)

    # tinytape's built-in ops give the same gradients through the fused kernels
    ba, bb = tt.tensor(alpha, requires_grad=True), tt.tensor(beta, requires_grad=True)
    ex.builtin_network(tt.tensor(x), y, ba, bb).backward()
    np.testing.assert_allclose(ba.grad.numpy(), g_alpha, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(bb.grad.numpy(), g_beta, rtol=1e-10, atol=1e-12)


def test_both_pass_finite_differences(ex):
    x, y, alpha, beta = ex.make_problem(3)
    o = ex.nn_forward(x, y, alpha, beta)
    g_alpha, g_beta = ex.nn_backward(x, y, alpha, beta, o)
    n_alpha = ex.numeric_gradient(lambda: ex.nn_forward(x, y, alpha, beta)["J"], alpha)
    n_beta = ex.numeric_gradient(lambda: ex.nn_forward(x, y, alpha, beta)["J"], beta)
    np.testing.assert_allclose(g_alpha, n_alpha, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(g_beta, n_beta, rtol=1e-6, atol=1e-8)

    net = ex.NeuralNetwork()
    inputs = [tt.tensor(alpha, requires_grad=True), tt.tensor(beta, requires_grad=True)]
    assert tt.gradcheck(lambda a, b: net.forward(tt.tensor(x), y, a, b), inputs)


def test_each_module_passes_gradcheck_on_its_own(ex):
    """As the lecture recommends: debug by checking each layer separately."""
    rng = np.random.default_rng(0)
    a = tt.tensor(rng.standard_normal(4), requires_grad=True)
    w = tt.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    assert tt.gradcheck(ex.Linear.apply, [a, w])
    assert tt.gradcheck(ex.Sigmoid.apply, [a])
    assert tt.gradcheck(ex.Softmax.apply, [a])
    p = tt.tensor(rng.uniform(0.1, 1.0, 3), requires_grad=True)
    assert tt.gradcheck(lambda q: ex.CrossEntropy.apply(q, a=np.eye(3)[1]), [p])


def test_a_wrong_backward_is_caught(ex):
    """gradcheck really checks: a module with a subtly wrong backward fails it."""

    class BadSigmoid(ex.Sigmoid):
        @staticmethod
        def backward(ctx, g_b):
            b = ctx.output.data
            return (tt.Tensor(g_b.data * b * (1 - b) * 1.01),)

    a = tt.tensor(np.linspace(-1, 1, 4), requires_grad=True)
    with pytest.raises(tt.GradcheckError, match=r"input 0 \(shape \(4,\)\), element \(0,\)"):
        tt.gradcheck(BadSigmoid.apply, [a])
