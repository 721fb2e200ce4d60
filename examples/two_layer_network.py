"""The lecture's two-layer network, twice: procedural and as modules on the tape.

    x -> a = alpha x -> z = sigmoid(a) -> b = beta z -> y_hat = softmax(b) -> J = -y^T log y_hat

1. `nn_forward` / `nn_backward`: Algorithms 1 and 2, written out by hand with numpy
   (including the softmax Jacobian diag(y_hat) - y_hat y_hat^T).
2. `NeuralNetwork`: the same network built from module objects, each a tinytape
   `Function` with a forward and a backward exactly as in the lecture's module
   pseudocode. Running forward records each module on the tape; `J.backward()`
   replays the tape in reverse, so no NNBackward has to be written.

Run it to see that both give the same gradients and pass finite-difference checks:

    python examples/two_layer_network.py
"""

from __future__ import annotations

import numpy as np

import tinytape as tt

# ---------------------------------------------------------------- 1. procedural


def sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


def softmax_vec(v: np.ndarray) -> np.ndarray:
    e = np.exp(v - v.max())
    return e / e.sum()


def nn_forward(x: np.ndarray, y: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> dict:
    """Algorithm 1. x: (M,), y: one-hot (K,), alpha: (D, M), beta: (K, D)."""
    a = alpha @ x
    z = sigmoid(a)
    b = beta @ z
    y_hat = softmax_vec(b)
    J = -y @ np.log(y_hat)
    return {"x": x, "a": a, "z": z, "b": b, "y_hat": y_hat, "J": J}


def nn_backward(x, y, alpha, beta, o: dict) -> tuple[np.ndarray, np.ndarray]:
    """Algorithm 2: the parameter gradients g_alpha (D, M) and g_beta (K, D)."""
    z, y_hat = o["z"], o["y_hat"]
    g_y_hat = -y / y_hat
    g_b = g_y_hat @ (np.diag(y_hat) - np.outer(y_hat, y_hat))
    g_beta = np.outer(g_b, z)
    g_z = beta.T @ g_b
    g_a = g_z * z * (1 - z)
    g_alpha = np.outer(g_a, x)
    return g_alpha, g_beta


# ---------------------------------------------------------------- 2. modules on the tape


class Linear(tt.Function):
    """b = omega a. Saves a and omega."""

    @staticmethod
    def forward(ctx, a, omega):
        ctx.save_for_backward(a, omega)
        return omega.data @ a.data

    @staticmethod
    def backward(ctx, g_b):
        a, omega = ctx.saved_tensors
        g_omega = tt.Tensor(np.outer(g_b.data, a.data))
        g_a = tt.Tensor(omega.data.T @ g_b.data)
        return g_a, g_omega


class Sigmoid(tt.Function):
    """b = sigma(a). Saves the output b."""

    @staticmethod
    def forward(ctx, a):
        ctx.save_output()
        return sigmoid(a.data)

    @staticmethod
    def backward(ctx, g_b):
        b = ctx.output.data
        return (tt.Tensor(g_b.data * b * (1 - b)),)


class Softmax(tt.Function):
    """b = softmax(a). Saves the output b."""

    @staticmethod
    def forward(ctx, a):
        ctx.save_output()
        return softmax_vec(a.data)

    @staticmethod
    def backward(ctx, g_b):
        b = ctx.output.data
        return (tt.Tensor(g_b.data @ (np.diag(b) - np.outer(b, b))),)


class CrossEntropy(tt.Function):
    """b = -a^T log a_hat for a gold one-hot a (not differentiated) and a prediction a_hat."""

    @staticmethod
    def forward(ctx, a_hat, a):
        ctx.save_for_backward(a_hat)
        ctx.gold = a
        return np.asarray(-a @ np.log(a_hat.data))

    @staticmethod
    def backward(ctx, g_b):
        (a_hat,) = ctx.saved_tensors
        return (tt.Tensor(-g_b.data * (ctx.gold / a_hat.data)),)


class NeuralNetwork:
    """The lecture's NeuralNetwork(Module): forward applies the modules, the tape does the rest."""

    def forward(self, x: tt.Tensor, y: np.ndarray, alpha: tt.Tensor, beta: tt.Tensor) -> tt.Tensor:
        a = Linear.apply(x, alpha)
        z = Sigmoid.apply(a)
        b = Linear.apply(z, beta)
        y_hat = Softmax.apply(b)
        return CrossEntropy.apply(y_hat, a=y)

    def backward(self, J: tt.Tensor, alpha: tt.Tensor, beta: tt.Tensor):
        J.backward()
        return alpha.grad, beta.grad


def builtin_network(x: tt.Tensor, y: np.ndarray, alpha: tt.Tensor, beta: tt.Tensor) -> tt.Tensor:
    """The same network from tinytape's built-in ops (fused log-softmax + cross-entropy)."""
    b = beta @ (alpha @ x).sigmoid()
    return tt.cross_entropy(b.unsqueeze(0), np.array([int(np.argmax(y))]))


def make_problem(seed: int = 0, m: int = 5, d: int = 4, k: int = 3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(m)
    y = np.eye(k)[rng.integers(k)]
    return x, y, rng.standard_normal((d, m)) * 0.5, rng.standard_normal((k, d)) * 0.5


def numeric_gradient(f, p: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar f() with respect to the array p (edited in place)."""
    g = np.zeros_like(p)
    for i in np.ndindex(p.shape):
        old = p[i]
        p[i] = old + eps
        up = f()
        p[i] = old - eps
        down = f()
        p[i] = old
        g[i] = (up - down) / (2 * eps)
    return g


def main() -> None:
    x, y, alpha, beta = make_problem()
    o = nn_forward(x, y, alpha, beta)
    g_alpha, g_beta = nn_backward(x, y, alpha, beta, o)

    net = NeuralNetwork()
    ta = tt.tensor(alpha, requires_grad=True)
    tb = tt.tensor(beta, requires_grad=True)
    J = net.forward(tt.tensor(x), y, ta, tb)
    t_alpha, t_beta = net.backward(J, ta, tb)

    n_alpha = numeric_gradient(lambda: nn_forward(x, y, alpha, beta)["J"], alpha)
    n_beta = numeric_gradient(lambda: nn_forward(x, y, alpha, beta)["J"], beta)
    print(f"J = {o['J']:.6f} (procedural), {J.item():.6f} (tape)")
    tape_err = max(np.abs(g_alpha - t_alpha.numpy()).max(), np.abs(g_beta - t_beta.numpy()).max())
    print(f"max |procedural - tape| gradient:      {tape_err:.2e}")
    print(f"max |procedural - finite difference|:  "
          f"{max(np.abs(g_alpha - n_alpha).max(), np.abs(g_beta - n_beta).max()):.2e}")
    ok = tt.gradcheck(lambda a, b: net.forward(tt.tensor(x), y, a, b),
                      [tt.tensor(alpha, requires_grad=True), tt.tensor(beta, requires_grad=True)])
    print(f"tinytape.gradcheck of the module network: {'passed' if ok else 'FAILED'}")


if __name__ == "__main__":
    main()
