"""Tests generated from the op registry (tinytape.ops.REGISTRY), in the spirit of OpInfo.

For every record and sample: forward against the numpy reference (float32 and float64),
gradcheck in float64, gradgradcheck, the first derivative recorded under create_graph
against the plain one, and for ops on C kernels the C backend against the numpy backend,
forward and backward.

gradgradcheck alone cannot see a create_graph backward (a composite of tensor ops, used
instead of a fused kernel's backward) that is wrong as a first derivative: it checks the
second derivative against finite differences of that same composite. Comparing the two
first derivatives closes the gap; they are two formulas for one quantity, in float64,
so they agree to rounding: within 1e-12 relative, with an absolute floor of 1e-12 times the
gradient's largest entry (or 1, the size of the samples' inputs and of v, if larger) for
entries that cancel to zero, e.g. layer norm over one feature, where the kernel leaves
2e-14 of 1/sqrt(eps) ~ 316-sized terms and the composite exactly 0.

Tolerances: gradcheck uses central differences in float64 with eps = 1e-6 (the record
may choose another step). Truncation error is O(eps^2 |f'''|) ~ 1e-12 and rounding
error ~ 1e-16 |f| / eps ~ 1e-10, so |analytic - numeric| <= 1e-6 + 1e-4 |numeric| has
four orders of magnitude to spare while still catching any wrong derivative.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinytape
from tinytape import backend
from tinytape.ops import REGISTRY
from tinytape.ops.registry import covered_names

GRAD_ATOL, GRAD_RTOL = 1e-6, 1e-4

CASES = [
    pytest.param(info, sample, id=f"{name}-{i}-{sample.name}")
    for name, info in sorted(REGISTRY.items())
    for i, sample in enumerate(info.samples(np.random.default_rng(0), np.float64))
]
DIFF_CASES = [c for c in CASES if c.values[0].differentiable]
GRADGRAD_CASES = [c for c in DIFF_CASES if c.values[0].gradgrad]
KERNEL_CASES = [c for c in CASES if c.values[0].uses_kernel]


def _tensors(sample, dtype=None, requires_grad=True):
    out = []
    for a in sample.tensors:
        if a.dtype.kind == "f":
            a = a.astype(dtype) if dtype is not None else a
            out.append(tinytape.tensor(a, requires_grad=requires_grad))
        else:
            out.append(tinytape.tensor(a))
    return out


def _as_list(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("info,sample", CASES)
def test_forward_matches_reference(info, sample, dtype):
    got = _as_list(info.op(*_tensors(sample, dtype, requires_grad=False), **sample.kwargs))
    arrays = [a.astype(dtype).astype(np.float64) if a.dtype.kind == "f" else a
              for a in sample.tensors]
    want = _as_list(info.ref(*arrays, **sample.kwargs))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        w = np.asarray(w)
        assert g.shape == w.shape, f"{info.name}: shape {g.shape}, expected {w.shape}"
        if w.dtype.kind == "f":
            assert g.dtype == dtype, f"{info.name}: dtype {g.dtype}, expected {np.dtype(dtype)}"
            rtol, atol = (1e-10, 1e-12) if dtype == np.float64 else (info.rtol32, info.atol32)
            np.testing.assert_allclose(g.numpy().astype(np.float64), w, rtol=rtol, atol=atol)
        else:
            np.testing.assert_array_equal(g.numpy(), w)


@pytest.mark.parametrize("info,sample", DIFF_CASES)
def test_gradcheck(info, sample):
    inputs = _tensors(sample)

    def fn(*ts):
        return info.op(*ts, **sample.kwargs)

    assert tinytape.gradcheck(fn, inputs, eps=info.eps, atol=GRAD_ATOL, rtol=GRAD_RTOL)


@pytest.mark.parametrize("info,sample", GRADGRAD_CASES)
def test_gradgradcheck(info, sample):
    inputs = _tensors(sample)

    def fn(*ts):
        return info.op(*ts, **sample.kwargs)

    assert tinytape.gradgradcheck(fn, inputs, eps=info.eps, atol=GRAD_ATOL, rtol=GRAD_RTOL)


def _first_derivatives(info, sample, create_graph: bool):
    """v^T J for a fixed random v, one array per input that requires grad (0 if unused)."""
    inputs = _tensors(sample)
    outs = [o for o in _as_list(info.op(*inputs, **sample.kwargs)) if o.requires_grad]
    rng = np.random.default_rng(1)
    vs = [tinytape.tensor(rng.standard_normal(o.shape)) for o in outs]
    wanted = [t for t in inputs if t.requires_grad]
    grads = tinytape.grad(outs, wanted, vs, create_graph=create_graph, allow_unused=True)
    return [np.zeros(t.shape) if g is None else g.numpy() for g, t in zip(grads, wanted)]


@pytest.mark.parametrize("info,sample", GRADGRAD_CASES)
def test_create_graph_first_derivative_matches_plain(info, sample):
    plain = _first_derivatives(info, sample, create_graph=False)
    recorded = _first_derivatives(info, sample, create_graph=True)
    for i, (p, r) in enumerate(zip(plain, recorded)):
        scale = max(float(np.abs(p).max()), 1.0) if p.size else 1.0
        np.testing.assert_allclose(r, p, rtol=1e-12, atol=1e-12 * scale,
                                   err_msg=f"{info.name}: input {i}, create_graph vs plain")


def test_every_differentiable_op_supports_double_backward():
    missing = sorted(n for n, info in REGISTRY.items() if info.differentiable and not info.gradgrad)
    assert not missing, f"differentiable ops without double backward: {missing}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("info,sample", KERNEL_CASES)
def test_c_backend_matches_numpy_backend(info, sample, dtype):
    if "c" not in backend.available():
        pytest.skip("the C extension is not built")
    results = {}
    for name in ("c", "numpy"):
        with backend.use(name):
            inputs = _tensors(sample, dtype)
            outs = _as_list(info.op(*inputs, **sample.kwargs))
            total = sum((o * tinytape.tensor(np.linspace(-1, 1, o.numel()).reshape(o.shape),
                                             dtype=o.dtype)).sum() for o in outs)
            grads = tinytape.grad(total, [t for t in inputs if t.requires_grad],
                                  allow_unused=True) if total.requires_grad else ()
            results[name] = [o.numpy() for o in outs] + [g.numpy() for g in grads
                                                         if g is not None]
    rtol, atol = (1e-11, 1e-12) if dtype == np.float64 else (2e-5, 2e-6)
    for c_val, np_val in zip(results["c"], results["numpy"]):
        np.testing.assert_allclose(c_val, np_val, rtol=rtol, atol=atol)


def test_every_public_op_has_a_record():
    public = {n for n in tinytape.ops.__all__ if n not in ("REGISTRY", "OpInfo", "Sample")}
    missing = sorted(public - covered_names())
    assert not missing, f"public ops without a registry record: {missing}"
    empty = [n for n, info in REGISTRY.items()
             if not list(info.samples(np.random.default_rng(0), np.float64))]
    assert not empty, f"records without samples: {empty}"
