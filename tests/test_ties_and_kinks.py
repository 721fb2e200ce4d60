"""Ties and kinks: the registry's kink samples (max/min ties, relu/abs at 0, clamp on its
bounds, std of a constant slice, maximum/minimum of equal values), where finite
differences do not apply, checked against the reference forward, against each record's
documented rule (docs/subgradients.md), and against PyTorch's gradient where installed;
and the comparison ops at equal values.

Everything is float64 and exact or a few roundings off: rtol 1e-12.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinytape as tt
from tinytape.ops import REGISTRY

KINK_CASES = [
    pytest.param(info, sample, id=f"{name}-{i}-{sample.name}")
    for name, info in sorted(REGISTRY.items()) if info.kink_samples is not None
    for i, sample in enumerate(info.kink_samples(np.random.default_rng(0), np.float64))
]


def _run(info, sample):
    inputs = [tt.tensor(a, requires_grad=True) for a in sample.tensors]
    out = info.op(*inputs, **sample.kwargs)
    g = np.random.default_rng(1).standard_normal(out.shape)
    grads = tt.grad(out, inputs, tt.tensor(g), allow_unused=True)
    return out.numpy(), g, [gr.numpy() for gr in grads]


def test_every_record_with_kink_samples_has_a_rule():
    names = {c.values[0].name for c in KINK_CASES}
    assert {"relu", "abs", "clamp", "max", "min", "maximum", "minimum", "std"} <= names
    assert all(REGISTRY[n].subgradient is not None for n in names)


@pytest.mark.parametrize("info,sample", KINK_CASES)
def test_kink_samples_hit_their_kinks(info, sample):
    """The samples really sit on the kink (or nothing here would be tested)."""
    x = sample.tensors[0]
    kw = sample.kwargs
    if info.name in ("relu", "abs"):
        hit = (x == 0).any()
    elif info.name == "clamp":
        hit = any((x == kw[b]).any() for b in ("min", "max") if b in kw)
    elif info.name in ("maximum", "minimum"):
        a, b = np.broadcast_arrays(*sample.tensors)
        hit = (a == b).any()
    elif info.name in ("max", "min"):
        extreme = np.max if info.name == "max" else np.min
        hit = ((x == extreme(x, axis=kw["axis"], keepdims=True)).sum() >
               np.size(extreme(x, axis=kw["axis"], keepdims=True))) or x.size == 1
    else:  # std
        hit = (np.std(x, axis=kw["axis"]) == 0).any()
    assert hit, f"{info.name} sample {sample.name} has no tie or kink"


@pytest.mark.parametrize("info,sample", KINK_CASES)
def test_gradient_at_kinks_follows_the_documented_rule(info, sample):
    out, g, grads = _run(info, sample)
    np.testing.assert_allclose(out, info.ref(*sample.tensors, **sample.kwargs), rtol=1e-12)
    want = info.subgradient(g, *sample.tensors, **sample.kwargs)
    for i, (got, w) in enumerate(zip(grads, want)):
        assert np.isfinite(got).all(), f"{info.name}: a non-finite gradient at a kink"
        np.testing.assert_allclose(got, w, rtol=1e-12, atol=1e-15,
                                   err_msg=f"{info.name}: input {i}")


def _torch_fn(name, torch):
    return {
        "relu": torch.relu, "abs": torch.abs,
        "clamp": lambda x, min=None, max=None: torch.clamp(x, min, max),
        "maximum": torch.maximum, "minimum": torch.minimum,
        "max": lambda x, axis, keepdims: x.amax(
            tuple(range(x.ndim)) if axis is None else axis, keepdim=keepdims),
        "min": lambda x, axis, keepdims: x.amin(
            tuple(range(x.ndim)) if axis is None else axis, keepdim=keepdims),
        "std": lambda x, axis, keepdims: x.std(axis, keepdim=keepdims),
    }[name]


@pytest.mark.parametrize("info,sample", KINK_CASES)
def test_gradient_at_kinks_matches_torch(info, sample):
    torch = pytest.importorskip("torch")
    _, g, grads = _run(info, sample)
    ts = [torch.tensor(a, requires_grad=True) for a in sample.tensors]
    out = _torch_fn(info.name, torch)(*ts, **sample.kwargs)
    want = torch.autograd.grad(out, ts, torch.tensor(g))
    for i, (got, w) in enumerate(zip(grads, want)):
        np.testing.assert_allclose(got, w.numpy(), rtol=1e-12, atol=1e-15,
                                   err_msg=f"{info.name}: input {i}")


COMPARISONS = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
               "gt": np.greater, "ge": np.greater_equal}


@pytest.mark.parametrize("name", sorted(COMPARISONS))
def test_comparison_samples_have_equal_values(name):
    """Each comparison sees equal pairs, so one wired to its strict or non-strict twin
    (le to lt, ge to gt, eq to ne) fails the forward test against its reference."""
    samples = list(REGISTRY[name].samples(np.random.default_rng(0), np.float64))
    ties = [s for s in samples if s.tensors[0].size and s.tensors[1].size
            and np.equal(*s.tensors).any()]
    assert len(ties) >= 3, f"{name}: only {len(ties)} samples with equal values"
    twin = {"eq": "ne", "ne": "eq", "lt": "le", "le": "lt", "gt": "ge", "ge": "gt"}[name]
    assert any((COMPARISONS[twin](*s.tensors) != COMPARISONS[name](*s.tensors)).any()
               and not np.array_equal(COMPARISONS[twin](*s.tensors),
                                      REGISTRY[name].op(*map(tt.tensor, s.tensors)).numpy())
               for s in ties)


@pytest.mark.parametrize("name", sorted(COMPARISONS))
def test_comparisons_at_equal_values_match_torch(name):
    torch = pytest.importorskip("torch")
    a = np.array([[-1.0, 0.0, 0.5], [2.0, -0.0, np.inf]])
    b = np.array([[-1.0, 0.0, 1.0], [1.0, 0.0, np.inf]])  # equal, -0 == 0, inf == inf
    ours = REGISTRY[name].op(tt.tensor(a), tt.tensor(b)).numpy()
    theirs = getattr(torch, name)(torch.tensor(a), torch.tensor(b)).numpy()
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(REGISTRY[name].op(tt.tensor(a), 0.0).numpy(),
                                  getattr(torch, name)(torch.tensor(a), 0.0).numpy())
