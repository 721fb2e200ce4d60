"""tinytape.profiler: exact call counts on a small graph, and times that add up."""

import numpy as np
import pytest

import tinytape as tt
from tinytape import backend, profiler


def _leaves():
    rng = np.random.default_rng(0)
    x = tt.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    w = tt.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    b = tt.tensor(rng.standard_normal(2), requires_grad=True)
    return x, w, b


def _forward(x, w, b):
    h = tt.linear(x, w, b)  # Linear: one GEMM
    return (h * h).tanh().sum()  # Mul, Tanh, Sum


def _counts(prof):
    return {(r.name, r.kind): r.calls for r in prof.rows()}


def _with_c(counts, kernels):
    """The expected counts, plus the C kernel calls when the C backend is in use."""
    return {**counts, **kernels} if backend.name() == "c" else counts


def test_forward_calls_are_counted_exactly_and_an_op_contains_its_kernel():
    x, w, b = _leaves()
    with profiler.profile() as prof:
        _forward(x, w, b)
    assert _counts(prof) == _with_c(
        {
            ("Linear", "forward"): 1,
            ("Mul", "forward"): 1,
            ("Tanh", "forward"): 1,
            ("Sum", "forward"): 1,
        },
        {("gemm", "kernel"): 1, ("mul", "kernel"): 1},
    )
    linear = prof.row("Linear", "forward")
    gemm = prof.row("gemm", "kernel")
    # the only GEMM ran inside Linear's forward (and the mul kernel inside Mul's): Linear's
    # total is its self time plus the GEMM's
    nested = gemm.total_s if gemm is not None else 0.0
    assert linear.total_s == pytest.approx(linear.self_s + nested, rel=1e-9, abs=1e-12)
    # nothing else is nested: the self times add up to the top-level ops' totals
    top = sum(prof.row(n, "forward").total_s for n in ("Linear", "Mul", "Tanh", "Sum"))
    assert sum(r.self_s for r in prof.rows()) == pytest.approx(top, rel=1e-9, abs=1e-12)
    assert top <= prof.wall_s


def test_backward_calls_are_counted_exactly_and_nest_in_the_backward_pass():
    x, w, b = _leaves()
    loss = _forward(x, w, b)
    with profiler.profile() as prof:
        loss.backward()
    # Sum's backward expands (Expand); Tanh's (one kernel call, tanh_bwd) and Mul's (g*h
    # twice: two mul kernels) are written on arrays when nothing is recorded (no op of their
    # own); Mul's two gradients are summed into Linear's (Add: the add kernel); Linear's
    # backward is two GEMMs.
    assert _counts(prof) == _with_c(
        {
            ("run_backward", "engine"): 1,
            ("Sum", "backward"): 1,
            ("Tanh", "backward"): 1,
            ("Mul", "backward"): 1,
            ("Linear", "backward"): 1,
            ("Expand", "forward"): 1,
            ("Add", "forward"): 1,
        },
        {
            ("gemm", "kernel"): 2,
            ("tanh_bwd", "kernel"): 1,
            ("mul", "kernel"): 2,
            ("add", "kernel"): 1,
        },
    )
    rows = prof.rows()
    for r in rows:
        assert r.total_s >= r.self_s >= 0.0
    engine = prof.row("run_backward", "engine")
    # every call ran inside the one backward pass: the self times add up to its total
    assert sum(r.self_s for r in rows) == pytest.approx(engine.total_s, rel=1e-9, abs=1e-12)
    backwards = sum(r.total_s for r in rows if r.kind == "backward")
    assert engine.total_s >= backwards
    assert engine.total_s <= prof.wall_s
    # and the gradients are those of an unprofiled run
    x2, w2, b2 = _leaves()
    _forward(x2, w2, b2).backward()
    for t, t2 in ((x, x2), (w, w2), (b, b2)):
        np.testing.assert_array_equal(t.grad.numpy(), t2.grad.numpy())


def test_unrecorded_fast_paths_are_counted_under_no_grad():
    x, w, _ = _leaves()
    with profiler.profile() as prof, tt.no_grad():
        y = -(x.tanh() * 2.0 + 1.0)
    assert _counts(prof) == _with_c(
        {
            ("Tanh", "forward"): 1,
            ("Mul", "forward"): 1,
            ("Add", "forward"): 1,
            ("Neg", "forward"): 1,
        },
        {("mul", "kernel"): 1, ("add", "kernel"): 1},  # a tensor and a number: the kernels
    )
    np.testing.assert_allclose(y.numpy(), -(np.tanh(x.numpy()) * 2 + 1), rtol=1e-15)


@pytest.mark.parametrize("clock", ["wall", "cpu"])
def test_both_clocks_count_alike_and_nest_consistently(clock):
    x, w, b = _leaves()
    loss = _forward(x, w, b)
    with profiler.profile(clock=clock) as prof:
        loss.backward()
    assert prof.row("Add", "forward").calls == 1 and prof.row("Linear", "backward").calls == 1
    engine = prof.row("run_backward", "engine")
    assert sum(r.self_s for r in prof.rows()) == pytest.approx(engine.total_s, rel=1e-9, abs=1e-12)
    assert all(r.total_s >= r.self_s >= 0.0 for r in prof.rows())
    with pytest.raises(ValueError, match="clock"):
        with profiler.profile(clock="gpu"):
            pass


def test_table_is_sorted_by_total_time_and_names_every_row():
    x, w, b = _leaves()
    with profiler.profile() as prof:
        _forward(x, w, b).backward()
    lines = prof.table().splitlines()
    assert lines[0].split()[:3] == ["name", "kind", "calls"]
    body = lines[2:-1]
    assert len(body) == len(prof.rows())
    totals = [float(line.split()[3]) for line in body]
    assert totals == sorted(totals, reverse=True)
    assert [line.split()[0] for line in body] == [r.name for r in prof.rows("total")]
    assert len(prof.table(sort_by="calls", row_limit=2).splitlines()) == 2 + 2 + 1
    with pytest.raises(ValueError, match="sort_by"):
        prof.table(sort_by="cpu_time")


def test_profiles_do_not_nest_and_state_is_restored_after_an_error():
    native = backend._state.native
    with pytest.raises(ZeroDivisionError):
        with profiler.profile():
            with pytest.raises(RuntimeError, match="already running"):
                with profiler.profile():
                    pass
            raise ZeroDivisionError
    assert profiler.active is False
    assert backend._state.native is native
    x, w, b = _leaves()
    _forward(x, w, b).backward()  # not recorded: nothing is left behind
    assert profiler._totals == {} and profiler._stack == []


def test_an_op_that_raises_is_counted_and_leaves_the_profile_consistent():
    x, w, _ = _leaves()
    with profiler.profile() as prof:
        with pytest.raises(ValueError, match="broadcast"):
            x * w
        x.tanh()
    assert prof.row("Tanh", "forward").calls == 1
    assert prof.row("Mul", "forward").calls == 1
