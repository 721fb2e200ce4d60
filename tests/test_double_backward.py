"""Second order: double backward of every registry op against PyTorch, and the functional
API (vjp, jvp, hvp) against finite differences and against torch.autograd.functional.

Double backward against torch: for a sample x, a random output weighting v and a random
input direction w, both libraries compute s = <v^T J(x), w> with create_graph=True and
then ds/dx (a Hessian-vector product of v . f) and ds/dv (= J w, which needs each
backward to be recorded as a function of its incoming gradient). In float64 both are a
few roundings from exact: rtol 1e-10, with an absolute floor of 1e-10 times the largest
entry or 1, whichever is larger (for entries that cancel to zero).

Finite differences: central, step 1e-6 in float64; truncation O(eps^2) ~ 1e-12 and
rounding ~ 1e-16 / eps ~ 1e-10 relative, so rtol 1e-6 (atol 1e-8) has room to spare.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinytape as tt
from tinytape.autograd.functional import hvp, jvp, vjp
from tinytape.ops import REGISTRY

RTOL, FLOOR = 1e-10, 1e-10
FD_EPS, FD_RTOL, FD_ATOL = 1e-6, 1e-6, 1e-8


def _tensors(sample):
    return [tt.tensor(a, requires_grad=True) if a.dtype.kind == "f" else tt.tensor(a)
            for a in sample.tensors]


def _as_list(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _close(ours, theirs, what):
    theirs = np.asarray(theirs, dtype=np.float64)
    floor = FLOOR * max(float(np.abs(theirs).max()), 1.0) if theirs.size else 0.0
    np.testing.assert_allclose(np.asarray(ours), theirs, rtol=RTOL, atol=floor, err_msg=what)


# ------------------------------------------------------------------ torch as an oracle
def _torch_ops():
    """Registry name -> the same function written with torch, called with the sample's
    tensors (as torch float64 tensors) and kwargs."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional

    def reduce(fn):
        def call(x, axis=None, keepdims=False):
            dims = tuple(range(x.ndim)) if axis is None else axis
            return fn(x, dims, keepdims)
        return call

    def cross_entropy(logits, targets, ignore_index=-100, reduction="mean"):
        t = torch.as_tensor(np.asarray(targets), dtype=torch.long)
        out = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), t.reshape(-1),
                              ignore_index=ignore_index, reduction=reduction)
        return out.reshape(t.shape) if reduction == "none" else out

    def self_attention(qkv, n_heads, is_causal=False, dropout_keep=None):
        b, t, width = qkv.shape
        d = width // 3
        q, k, v = (p.reshape(b, t, n_heads, d // n_heads).transpose(1, 2)
                   for p in qkv.split(d, dim=-1))
        scores = q @ k.transpose(-1, -2) / (d // n_heads) ** 0.5
        if is_causal:
            scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), -torch.inf)
        weights = torch.softmax(scores, -1)
        if dropout_keep is not None:
            weights = weights * torch.as_tensor(dropout_keep)
        return (weights @ v).transpose(1, 2).reshape(b, t, d)

    def torch_index(i):
        if isinstance(i, tuple):
            return tuple(torch_index(k) for k in i)
        return torch.as_tensor(i) if isinstance(i, np.ndarray) else i

    def squeeze(x, axis=None):
        return x.squeeze() if axis is None else x.squeeze(axis)

    return {
        "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
        "neg": torch.neg, "pow": lambda x, exponent: x ** exponent,
        "pow_tensor": torch.pow, "exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt,
        "abs": torch.abs, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu,
        "gelu": lambda x: F.gelu(x, approximate="tanh"), "softplus": F.softplus,
        "clamp": lambda x, min=None, max=None: torch.clamp(x, min, max),
        "softmax": lambda x, axis: torch.softmax(x, axis),
        "log_softmax": lambda x, axis: torch.log_softmax(x, axis),
        "logsumexp": reduce(lambda x, d, k: torch.logsumexp(x, d, keepdim=k)),
        "sum": reduce(lambda x, d, k: x.sum(d, keepdim=k)),
        "mean": reduce(lambda x, d, k: x.mean(d, keepdim=k)),
        "var": reduce(lambda x, d, k: x.var(d, keepdim=k)),
        "std": reduce(lambda x, d, k: x.std(d, keepdim=k)),
        "max": reduce(lambda x, d, k: x.amax(d, keepdim=k)),
        "min": reduce(lambda x, d, k: x.amin(d, keepdim=k)),
        "maximum": torch.maximum, "minimum": torch.minimum,
        "where": lambda a, b, cond: torch.where(torch.as_tensor(np.asarray(cond)), a, b),
        "masked_fill": lambda x, mask, value: x.masked_fill(torch.as_tensor(np.asarray(mask)),
                                                            value),
        "matmul": torch.matmul, "linear": F.linear,
        "embedding": lambda w, indices: F.embedding(torch.as_tensor(np.asarray(indices)), w),
        "layer_norm": lambda x, w, b: F.layer_norm(x, (x.shape[-1],), w, b, eps=1e-5),
        "cross_entropy": cross_entropy, "self_attention": self_attention,
        # moving data only: a zero second derivative, but d/dv checks each backward routes
        # its incoming gradient
        "reshape": lambda x, shape: x.reshape(shape),
        "flatten": lambda x, start_dim=0: x.flatten(start_dim),
        "permute": lambda x, axes: x.permute(axes),
        "transpose": lambda x, dim0=-2, dim1=-1: x.transpose(dim0, dim1),
        "expand": lambda x, shape: x.expand(shape), "squeeze": squeeze,
        "unsqueeze": lambda x, axis: x.unsqueeze(axis),
        "cat": lambda *xs, axis: torch.cat(xs, axis),
        "stack": lambda *xs, axis: torch.stack(xs, axis),
        "split": lambda x, split_size_or_sections, axis=0: torch.split(
            x, split_size_or_sections, axis),
        "getitem": lambda x, index: x[torch_index(index)],
        "sum_to_shape": lambda x, shape: x.sum_to_size(shape),
        "to": lambda x, dtype: x.to(getattr(torch, np.dtype(dtype).name)).to(x.dtype),
        "clone": torch.clone,
    }


TORCH_NAMES = sorted(n for n, info in REGISTRY.items() if info.differentiable)
TORCH_CASES = [
    pytest.param(name, sample, id=f"{name}-{i}-{sample.name}")
    for name in TORCH_NAMES
    for i, sample in enumerate(REGISTRY[name].samples(np.random.default_rng(0), np.float64))
]


def _second_order_ours(name, sample, v, w):
    inputs = _tensors(sample)
    outs = _as_list(REGISTRY[name].op(*inputs, **sample.kwargs))
    vs = [tt.tensor(a, requires_grad=True) for a in v]
    wanted = [t for t in inputs if t.requires_grad]
    first = tt.grad(outs, wanted, vs, create_graph=True, allow_unused=True)
    terms = [(f * tt.tensor(c)).sum() for f, c in zip(first, w) if f is not None]
    s = terms[0]
    for term in terms[1:]:
        s = s + term
    second = tt.grad(s, wanted + vs, allow_unused=True)
    return [f.numpy() for f in first], [None if g is None else g.numpy() for g in second]


def _second_order_torch(fn, sample, v, w):
    import torch

    inputs = [torch.tensor(a, requires_grad=True) if a.dtype.kind == "f" else a
              for a in sample.tensors]
    outs = _as_list(fn(*inputs, **sample.kwargs))
    vs = [torch.tensor(a, requires_grad=True) for a in v]
    wanted = [t for t in inputs if isinstance(t, torch.Tensor)]
    first = torch.autograd.grad(outs, wanted, vs, create_graph=True, allow_unused=True)
    s = sum((f * torch.tensor(c)).sum() for f, c in zip(first, w) if f is not None)
    second = torch.autograd.grad(s, wanted + vs, allow_unused=True)
    return ([f.detach().numpy() for f in first],
            [None if g is None else g.numpy(force=True) for g in second])


@pytest.mark.filterwarnings("ignore:.*degrees of freedom")  # torch, on the empty var samples
@pytest.mark.parametrize("name,sample", TORCH_CASES)
def test_double_backward_matches_torch(name, sample):
    fn = _torch_ops()[name]
    out_shapes = [o.shape for o in _as_list(REGISTRY[name].op(*_tensors(sample),
                                                              **sample.kwargs))]
    in_shapes = [a.shape for a in sample.tensors if a.dtype.kind == "f"]
    if sum(int(np.prod(s)) for s in out_shapes) == 0:  # nothing to differentiate: the shapes
        import torch

        args = [torch.tensor(a) if a.dtype.kind == "f" else a for a in sample.tensors]
        assert out_shapes == [tuple(o.shape) for o in _as_list(fn(*args, **sample.kwargs))]
        return
    rng = np.random.default_rng(2)
    v = [rng.standard_normal(s) for s in out_shapes]
    w = [rng.standard_normal(s) for s in in_shapes]
    first, second = _second_order_ours(name, sample, v, w)
    first_t, second_t = _second_order_torch(fn, sample, v, w)
    for i, (a, b) in enumerate(zip(first, first_t)):
        _close(a, b, f"{name}: first derivative, input {i}")
    for i, (a, b) in enumerate(zip(second, second_t)):
        a = np.zeros_like(b) if a is None and b is not None else a
        b = np.zeros_like(a) if b is None and a is not None else b
        if a is not None:
            _close(a, b, f"{name}: second derivative {i} (inputs, then v)")


def test_every_differentiable_op_has_a_torch_twin():
    pytest.importorskip("torch")
    missing = sorted(set(TORCH_NAMES) - set(_torch_ops()))
    assert not missing, f"differentiable ops without a torch version here: {missing}"


# ------------------------------------------------------------------ functional API
def _fd_jvp(f, xs, us, eps=FD_EPS):
    """Central difference of f along the direction us."""
    plus = f(*[tt.tensor(x + eps * u) for x, u in zip(xs, us)])
    minus = f(*[tt.tensor(x - eps * u) for x, u in zip(xs, us)])
    return [(p.numpy().astype(np.float64) - m.numpy()) / (2 * eps)
            for p, m in zip(_as_list(plus), _as_list(minus))]


JVP_CASES = [
    pytest.param(info, sample, id=f"{name}-{i}-{sample.name}")
    for name, info in sorted(REGISTRY.items()) if info.differentiable
    for i, sample in enumerate(info.samples(np.random.default_rng(0), np.float64))
]


@pytest.mark.parametrize("info,sample", JVP_CASES)
def test_jvp_matches_finite_differences_on_every_op(info, sample):
    """jvp is the double-backward trick: it differentiates every op's backward with respect
    to its incoming gradient, so this checks each backward is recorded as a function of it."""
    floats = [a for a in sample.tensors if a.dtype.kind == "f"]
    others = {i: a for i, a in enumerate(sample.tensors) if a.dtype.kind != "f"}

    def f(*xs):
        it = iter(xs)
        args = [tt.tensor(others[i]) if i in others else next(it)
                for i in range(len(sample.tensors))]
        outs = [o for o in _as_list(info.op(*args, **sample.kwargs)) if o.dtype.kind == "f"]
        return tuple(outs)

    rng = np.random.default_rng(3)
    us = [rng.standard_normal(a.shape) for a in floats]
    if info.eps > FD_EPS:  # `to` rounds through float32: its record's wide step 2^-6, along
        us = [np.round(u) for u in us]  # an integer direction, keeps x +- eps u exact there
    _, jv = jvp(f, tuple(tt.tensor(a) for a in floats), tuple(tt.tensor(u) for u in us))
    for got, want in zip(jv, _fd_jvp(f, floats, us, max(info.eps, FD_EPS))):
        np.testing.assert_allclose(got.numpy(), want, rtol=FD_RTOL, atol=FD_ATOL,
                                   err_msg=info.name)


def _mlp_loss(x, w1, w2):
    """A small network with every fused kernel on the way: linear, GELU, layer norm,
    softmax, cross-entropy."""
    h = tt.layer_norm(tt.gelu(x @ w1))
    logits = h @ w2
    return tt.cross_entropy(logits, np.array([0, 2, 1])) + tt.softmax(logits).max()


def _mlp_inputs(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((3, 4)), rng.standard_normal((4, 5)),
            rng.standard_normal((5, 3)))


def test_vjp_matches_finite_differences():
    xs = _mlp_inputs()
    rng = np.random.default_rng(4)

    def f(x, w1):
        return tt.layer_norm(tt.gelu(x @ w1)), tt.softmax(x)

    v = (rng.standard_normal((3, 5)), rng.standard_normal((3, 4)))
    us = [rng.standard_normal((3, 4)), rng.standard_normal((4, 5))]
    out, grads = vjp(f, (tt.tensor(xs[0]), tt.tensor(xs[1])), tuple(tt.tensor(a) for a in v))
    assert not any(o.requires_grad for o in out)
    numeric = sum(float(np.sum(vi * d)) for vi, d in zip(v, _fd_jvp(f, xs[:2], us)))
    analytic = sum(float(np.sum(g.numpy() * u)) for g, u in zip(grads, us))
    assert abs(analytic - numeric) <= FD_RTOL * abs(numeric) + FD_ATOL


def test_hvp_matches_finite_differences_of_the_gradient():
    xs = _mlp_inputs()
    rng = np.random.default_rng(5)
    us = [rng.standard_normal(a.shape) for a in xs]
    value, hv = hvp(_mlp_loss, tuple(tt.tensor(a) for a in xs), tuple(tt.tensor(u) for u in us))
    assert value.shape == () and not value.requires_grad

    def gradient(*ts):
        return tt.grad(_mlp_loss(*ts), list(ts))

    def at(sign):
        return gradient(*[tt.tensor(a + sign * FD_EPS * u, requires_grad=True)
                          for a, u in zip(xs, us)])

    for got, p, m in zip(hv, at(1), at(-1)):
        np.testing.assert_allclose(got.numpy(), (p.numpy() - m.numpy()) / (2 * FD_EPS),
                                   rtol=FD_RTOL, atol=FD_ATOL)


def test_functional_on_a_single_tensor_and_defaults():
    x = tt.tensor(np.array([0.3, -1.2, 2.0]))
    out, g = vjp(lambda t: (t * t).sum(), x)  # v omitted: single-element output
    np.testing.assert_allclose(g.numpy(), 2 * x.numpy())
    _, jv = jvp(lambda t: t.exp(), x, tt.tensor(np.ones(3)))
    np.testing.assert_allclose(jv.numpy(), np.exp(x.numpy()))
    _, hv = hvp(lambda t: (t ** 3).sum(), x, tt.tensor(np.array([1.0, 0.0, 2.0])))
    np.testing.assert_allclose(hv.numpy(), 6 * x.numpy() * np.array([1.0, 0.0, 2.0]))
    # an input the output does not use: zeros, or an error with strict=True
    _, (ga, gb) = vjp(lambda a, b: a.sum(), (x, tt.tensor(np.ones(2))))
    np.testing.assert_array_equal(gb.numpy(), np.zeros(2))
    with pytest.raises(RuntimeError, match=r"does not depend on input 1 \(shape \(2,\)\)"):
        vjp(lambda a, b: a.sum(), (x, tt.tensor(np.ones(2))), strict=True)


def test_functional_create_graph_gives_differentiable_results():
    """hvp with create_graph=True: differentiating it once more gives the third derivative
    of sum(x^4) = 24 x along v twice."""
    x = tt.tensor(np.array([0.5, -1.5]), requires_grad=True)
    v = tt.tensor(np.array([1.0, 2.0]))
    _, hv = hvp(lambda t: (t ** 4).sum(), x, v, create_graph=True)
    np.testing.assert_allclose(hv.numpy(), 12 * x.numpy() ** 2 * v.numpy())
    (third,) = tt.grad((hv * v).sum(), x)
    np.testing.assert_allclose(third.numpy(), 24 * x.numpy() * v.numpy() ** 2)


def test_functional_errors_name_the_shapes():
    x = tt.tensor(np.ones(3))
    with pytest.raises(ValueError, match=r"v can be omitted only .* shapes \[\(3,\)\]"):
        vjp(lambda t: t * 2, x)
    with pytest.raises(ValueError, match=r"v 0 has shape \(2,\), but the input has shape \(3,\)"):
        jvp(lambda t: t * 2, x, tt.tensor(np.ones(2)))
    with pytest.raises(ValueError, match=r"hvp: func must return a single-element Tensor"):
        hvp(lambda t: t * 2, x, x)
    with pytest.raises(TypeError, match="vjp: input 0 is a ndarray, not a Tensor"):
        vjp(lambda t: t, np.ones(3))
    with pytest.raises(TypeError, match="jvp: input 0 has dtype int64"):
        jvp(lambda t: t, tt.tensor(np.arange(3)), tt.tensor(np.arange(3)))


@pytest.mark.parametrize("which", ["vjp", "jvp", "hvp"])
def test_functional_matches_torch(which):
    torch = pytest.importorskip("torch")
    tf = torch.autograd.functional
    F = torch.nn.functional
    xs = _mlp_inputs(1)
    rng = np.random.default_rng(6)

    def ours_f(x, w1, w2):
        return _mlp_loss(x, w1, w2) if which == "hvp" else tt.layer_norm(tt.gelu(x @ w1)) @ w2

    def torch_f(x, w1, w2):
        h = F.layer_norm(F.gelu(x @ w1, approximate="tanh"), (5,), eps=1e-5)
        if which != "hvp":
            return h @ w2
        logits = h @ w2
        return F.cross_entropy(logits, torch.tensor([0, 2, 1])) + torch.softmax(logits, -1).max()

    out_shape = (3, 3)
    vec = [rng.standard_normal(out_shape)] if which == "vjp" else \
        [rng.standard_normal(a.shape) for a in xs]
    ours = {"vjp": vjp, "jvp": jvp, "hvp": hvp}[which]
    v_ours = tt.tensor(vec[0]) if which == "vjp" else tuple(tt.tensor(a) for a in vec)
    v_torch = torch.tensor(vec[0]) if which == "vjp" else tuple(torch.tensor(a) for a in vec)
    out, res = ours(ours_f, tuple(tt.tensor(a) for a in xs), v_ours)
    out_t, res_t = getattr(tf, which)(torch_f, tuple(torch.tensor(a) for a in xs), v_torch)
    _close(out.numpy(), out_t.numpy(), f"{which}: output")
    for i, (a, b) in enumerate(zip(_as_list(res), _as_list(res_t))):
        _close(a.numpy(), b.numpy(), f"{which}: result {i}")


@pytest.mark.parametrize("positional", ["learned", "rotary"])
def test_hessian_vector_product_through_a_gpt(positional):
    """Double backward through a whole Transformer LM (embeddings, fused attention or the
    rotary path, layer norm, GELU, tied output layer, cross-entropy): the Hessian-vector
    product against central differences of the gradient along the same direction."""
    from tinytape.models import GPT, GPTConfig

    cfg = GPTConfig(vocab_size=7, context_length=6, d_model=8, n_layers=1, n_heads=2,
                    positional=positional)
    model = GPT(cfg, generator=0).double()
    params = list(model.parameters())
    rng = np.random.default_rng(7)
    idx, targets = rng.integers(0, 7, (2, 5)), rng.integers(0, 7, (2, 5))
    vs = [rng.standard_normal(p.shape) for p in params]

    def gradient():
        _, loss = model(idx, targets)
        return tt.grad(loss, params, create_graph=True)

    first = gradient()
    dot = (first[0] * tt.tensor(vs[0])).sum()
    for g, v in zip(first[1:], vs[1:]):
        dot = dot + (g * tt.tensor(v)).sum()
    hv = tt.grad(dot, params)

    def shifted(sign):
        with tt.no_grad():
            for p, v in zip(params, vs):
                p.data += sign * FD_EPS * v
        out = [g.numpy() for g in gradient()]
        with tt.no_grad():
            for p, v in zip(params, vs):
                p.data -= sign * FD_EPS * v
        return out

    for h, plus, minus in zip(hv, shifted(1.0), shifted(-1.0)):
        np.testing.assert_allclose(h.numpy(), (plus - minus) / (2 * FD_EPS), rtol=1e-5,
                                   atol=1e-7)
