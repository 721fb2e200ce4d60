"""Self-checks of an install: the C kernels against numpy, the gradients against finite
differences.

The lecture's point about module-based autodiff: each module is easy to debug on its own,
"just run a finite-difference check on each layer separately". This runs that check on
every differentiable op of the registry (tinytape.ops.REGISTRY, every sample input) and on
a few modules with all their parameters, from the lecture's Linear-Sigmoid-Linear-softmax
network up to a small GPT, in float64 with `tt.gradcheck`.

    from tinytape import checks
    results = checks.run_all(seed=0)     # {"kernels": [...], "ops": [...], "modules": [...]}
    print(checks.format_table(results))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: finite-difference tolerances of the gradient checks (those of tests/test_ops.py)
GRAD_ATOL, GRAD_RTOL = 1e-6, 1e-4


@dataclass
class Check:
    """One check: what was checked, whether it passed, and its measured error."""

    group: str  # "kernel", "op" or "module"
    name: str
    passed: bool
    #: largest relative disagreement found (C vs numpy; analytic vs numeric gradient)
    error: float
    #: how many things were compared (samples, or elements of the inputs and parameters)
    size: int
    seconds: float
    detail: str = ""


# --------------------------------------------------------------------------- kernels
def kernel_checks(seed: int = 0) -> list[Check]:
    """Every C kernel against its numpy reference (tinytape.selfcheck's cases), float32 and
    float64. Empty when the C extension is not built."""
    from . import backend, selfcheck

    if "c" not in backend.available():
        return []
    out = []
    for dtype in (np.float32, np.float64):
        for name, fn in selfcheck._cases(np.random.default_rng(seed), dtype).items():
            t0 = time.perf_counter()
            with backend.use("c"):
                got = fn()
            with backend.use("numpy"):
                want = fn()
            err = max(float(np.max(np.abs(g - w) / (1.0 + np.abs(w)), initial=0.0))
                      for g, w in zip(got, want))
            tol = selfcheck.TOLERANCE[dtype]
            out.append(Check("kernel", f"{name} {np.dtype(dtype).name}", err <= tol, err,
                             sum(int(w.size) for w in want), time.perf_counter() - t0,
                             f"tolerance {tol:.0e}"))
    return out


# --------------------------------------------------------------------------- gradients
def projection_error(fn: Callable[..., Any], inputs: Sequence[Any], eps: float = 1e-6,
                     seed: int = 0) -> float:
    """|v^T J u (backward pass) - d/dt v^T f(x + t u) (central difference)| / (1 + |numeric|)
    for random directions u (over the inputs that require grad) and v (over the outputs):
    one number that says how far the tape's gradient is from the finite difference."""
    import tinytape as tt

    rng = np.random.default_rng(seed)
    diff = [t for t in inputs if isinstance(t, tt.Tensor) and t.requires_grad]
    us = [rng.standard_normal(t.shape) for t in diff]

    def outputs() -> list[Any]:
        out = fn(*inputs)
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        return [o for o in outs if isinstance(o, tt.Tensor) and o.data.dtype.kind == "f"]

    with tt.enable_grad():
        outs = outputs()
    vs = [rng.standard_normal(o.shape) for o in outs]
    live = [(o, v) for o, v in zip(outs, vs) if o.requires_grad]
    analytic = 0.0
    if live:
        grads = tt.grad([o for o, _ in live], diff, [tt.tensor(v, dtype=o.dtype) for o, v in live],
                        allow_unused=True)
        analytic = sum(float(np.sum(g.data * u)) for g, u in zip(grads, us) if g is not None)

    def weighted(sign: float) -> float:
        saved = [t.data.copy() for t in diff]
        for t, u in zip(diff, us):
            t.data[...] = t.data + sign * eps * u
        try:
            with tt.no_grad():
                return sum(float(np.sum(o.data * v)) for o, v in zip(outputs(), vs))
        finally:
            for t, s in zip(diff, saved):
                t.data[...] = s

    numeric = (weighted(1.0) - weighted(-1.0)) / (2 * eps)
    return abs(analytic - numeric) / (1.0 + abs(numeric))


def _run_gradcheck(fn: Callable[..., Any], inputs: Sequence[Any], eps: float,
                   second_order: bool) -> tuple[bool, str]:
    import tinytape as tt

    try:
        ok = tt.gradcheck(fn, inputs, eps=eps, atol=GRAD_ATOL, rtol=GRAD_RTOL)
        if ok and second_order:
            ok = tt.gradgradcheck(fn, inputs, eps=eps, atol=GRAD_ATOL, rtol=GRAD_RTOL)
        return bool(ok), ""
    except tt.GradcheckError as e:
        return False, str(e).splitlines()[0][:200]


def op_gradchecks(seed: int = 0, second_order: bool = False) -> list[Check]:
    """gradcheck (and gradgradcheck where the record allows, if second_order) of every
    differentiable registry op on every one of its float64 sample inputs."""
    import tinytape as tt

    from .ops import REGISTRY

    out = []
    for name, info in sorted(REGISTRY.items()):
        if not info.differentiable:
            continue
        t0 = time.perf_counter()
        passed, err, n, detail = True, 0.0, 0, ""
        for sample in info.samples(np.random.default_rng(seed), np.float64):
            inputs = [tt.tensor(a, requires_grad=a.dtype.kind == "f") for a in sample.tensors]
            if not any(t.requires_grad and t.data.size for t in inputs):
                continue

            def fn(*ts: Any, _info: Any = info, _kw: dict = sample.kwargs) -> Any:
                return _info.op(*ts, **_kw)

            ok, why = _run_gradcheck(fn, inputs, info.eps, second_order and info.gradgrad)
            err = max(err, projection_error(fn, inputs, info.eps, seed))
            n += 1
            if not ok and passed:
                passed, detail = False, f"{sample.name or 'sample'}: {why}"
        what = "gradcheck + gradgradcheck" if second_order and info.gradgrad else "gradcheck"
        out.append(Check("op", name, passed, err, n, time.perf_counter() - t0,
                         detail or what))
    return out


def _modules(seed: int) -> list[tuple[str, Any, list[Any], dict[str, Any]]]:
    """(name, module, inputs, call kwargs) of the module checks, all in float64."""
    import tinytape as tt
    from tinytape import nn
    from tinytape.models import GPT, GPTConfig

    rng = np.random.default_rng(seed)

    def x(*shape: int) -> Any:
        return tt.tensor(rng.standard_normal(shape), requires_grad=True)

    class LectureNet(nn.Module):
        """The lecture's network: J = CE(y, softmax(beta sigma(alpha x)))."""

        def __init__(self) -> None:
            super().__init__()
            self.alpha = nn.Linear(6, 5, generator=seed)
            self.beta = nn.Linear(5, 4, generator=seed + 1)

        def forward(self, inp: Any, target: Any) -> Any:
            return tt.cross_entropy(self.beta(self.alpha(inp).sigmoid()), target)

    class GPTLoss(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gpt = GPT(GPTConfig(vocab_size=7, context_length=6, d_model=8, n_layers=2,
                                     n_heads=2), generator=seed)

        def forward(self, idx: Any, targets: Any) -> Any:
            return self.gpt(idx, targets)[1]

    ids = rng.integers(0, 7, (2, 5))
    return [
        ("lecture MLP: Linear, Sigmoid, Linear, softmax cross-entropy", LectureNet(),
         [x(3, 6), tt.tensor(rng.integers(0, 4, 3))], {}),
        ("LayerNorm", nn.LayerNorm(6), [x(3, 6)], {}),
        ("MultiHeadAttention (causal)", nn.MultiHeadAttention(8, 2, generator=seed), [x(2, 4, 8)],
         {"is_causal": True}),
        ("TransformerBlock (pre-norm)", nn.TransformerBlock(8, 2, d_ff=12, generator=seed),
         [x(2, 4, 8)], {"is_causal": True}),
        ("GPT loss (2 blocks, d_model 8)", GPTLoss(),
         [tt.tensor(ids), tt.tensor(np.roll(ids, -1, axis=1))], {}),
    ]


def module_gradchecks(seed: int = 0) -> list[Check]:
    """gradcheck of a few modules with respect to their inputs and all their parameters."""
    out = []
    for name, module, inputs, kwargs in _modules(seed):
        module.double()
        params = list(module.parameters())
        n = len(inputs)
        everything = list(inputs) + params

        def fn(*args: Any, _m: Any = module, _n: int = n, _kw: dict = kwargs) -> Any:
            return _m(*args[:_n], **_kw)

        t0 = time.perf_counter()
        ok, why = _run_gradcheck(fn, everything, 1e-6, False)
        err = projection_error(fn, everything, 1e-6, seed)
        size = sum(int(t.data.size) for t in everything if t.requires_grad)
        out.append(Check("module", name, ok, err, size, time.perf_counter() - t0,
                         why or f"inputs + {len(params)} parameter tensors"))
    return out


def run_all(seed: int = 0, second_order: bool = True, verbose: bool = False) -> dict[str, Any]:
    """All the checks; {"kernels", "ops", "modules": [Check as dict], "passed", "seconds"}."""
    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    for key, fn in (("kernels", lambda: kernel_checks(seed)),
                    ("ops", lambda: op_gradchecks(seed, second_order)),
                    ("modules", lambda: module_gradchecks(seed))):
        checks = fn()
        if verbose:
            passed = sum(c.passed for c in checks)
            print(f"  {key}: {passed}/{len(checks)} passed", flush=True)
        results[key] = [asdict(c) for c in checks]
    results["passed"] = all(c["passed"] for k in ("kernels", "ops", "modules")
                            for c in results[k])
    results["c_extension"] = bool(results["kernels"])
    results["seconds"] = time.perf_counter() - t0
    return results


def format_table(results: dict[str, Any]) -> str:
    """A plain-text table: per group, passed/total and the largest error, then each failure
    and each module."""
    lines = [f"{'check':<62}{'passed':>10}{'max error':>12}"]
    for key, label in (("kernels", "C kernels vs numpy (float32, float64)"),
                       ("ops", "op gradients vs finite differences (float64)"),
                       ("modules", "module gradients vs finite differences")):
        checks = results.get(key, [])
        if not checks:
            lines.append(f"{label:<62}{'-':>10}{'-':>12}")
            continue
        passed = sum(c["passed"] for c in checks)
        worst = max(c["error"] for c in checks)
        lines.append(f"{label:<62}{f'{passed}/{len(checks)}':>10}{worst:>12.1e}")
        for c in checks:
            if key == "modules" or not c["passed"]:
                mark = "ok" if c["passed"] else "FAIL"
                lines.append(f"  {c['name'][:58]:<60}{mark:>10}{c['error']:>12.1e}")
    return "\n".join(lines)
