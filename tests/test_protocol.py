"""The shared experiment protocol: t quantiles against printed tables, intervals against a
hand computation, verdicts, the results.json schema, run folders, optimizer/schedule."""

import json
import math

import numpy as np
import pytest

import tinytape as tt
from tinytape.experiments import protocol as P

# two-sided 95% Student t critical values (any statistics table)
T_975 = {
    1: 12.706205,
    2: 4.302653,
    5: 2.570582,
    9: 2.262157,
    19: 2.093024,
    30: 2.042272,
    120: 1.979930,
}


@pytest.mark.parametrize("df,expected", sorted(T_975.items()))
def test_t_quantile_matches_tables(df, expected):
    assert P.t_quantile(0.975, df) == pytest.approx(expected, abs=2e-6)
    assert P.t_quantile(0.025, df) == pytest.approx(-expected, abs=2e-6)


def test_t_quantile_other_levels_and_normal_limit():
    assert P.t_quantile(0.995, 9) == pytest.approx(3.249836, abs=2e-6)  # 99% two-sided
    assert P.t_quantile(0.95, 4) == pytest.approx(2.131847, abs=2e-6)
    assert P.t_quantile(0.975, 1e6) == pytest.approx(1.959964, abs=1e-5)
    assert P.t_quantile(0.5, 7) == pytest.approx(0.0, abs=1e-9)
    # df = 1 is the Cauchy distribution: quantile tan(pi (p - 1/2))
    assert P.t_quantile(0.9, 1) == pytest.approx(math.tan(math.pi * 0.4), rel=1e-9)


def test_incomplete_beta_special_cases():
    # I_x(1, 1) = x; I_x(a, 1) = x^a; symmetry I_x(a, b) = 1 - I_{1-x}(b, a)
    assert P.regularized_incomplete_beta(1, 1, 0.3) == pytest.approx(0.3, abs=1e-14)
    assert P.regularized_incomplete_beta(2.5, 1, 0.6) == pytest.approx(0.6**2.5, rel=1e-12)
    a, b, x = 3.2, 0.7, 0.45
    assert P.regularized_incomplete_beta(a, b, x) == pytest.approx(
        1 - P.regularized_incomplete_beta(b, a, 1 - x), abs=1e-13
    )
    with pytest.raises(ValueError, match="0 <= x <= 1"):
        P.regularized_incomplete_beta(1, 1, 1.5)
    with pytest.raises(ValueError, match="p must be in"):
        P.t_quantile(1.0, 3)


def test_mean_and_paired_interval_by_hand():
    a = [0.80, 0.85, 0.78, 0.90, 0.82]
    b = [0.70, 0.80, 0.75, 0.79, 0.71]
    d = np.subtract(a, b)
    iv = P.paired_interval(a, b)
    sd = math.sqrt(((d - d.mean()) ** 2).sum() / 4)  # ddof = 1
    half = 2.776445 * sd / math.sqrt(5)  # t_{0.975, 4}
    assert iv.n == 5 and iv.mean == pytest.approx(d.mean(), abs=1e-15)
    assert iv.sd == pytest.approx(sd, rel=1e-12)
    assert (iv.lo, iv.hi) == pytest.approx((d.mean() - half, d.mean() + half), abs=1e-6)
    one = P.mean_interval([3.0])
    assert one.mean == 3.0 and math.isnan(one.lo) and math.isnan(one.sd)


def test_interval_errors_name_the_fault():
    with pytest.raises(ValueError, match="5 and 4 values"):
        P.paired_interval([1, 2, 3, 4, 5], [1, 2, 3, 4])
    with pytest.raises(ValueError, match="finite"):
        P.mean_interval([1.0, float("nan")])
    with pytest.raises(ValueError, match="non-empty"):
        P.mean_interval([])


def test_verdicts():
    iv = P.Interval(0.1, 0.02, 0.18, 0.1, 10)
    assert P.target("x", iv, 0.0).verdict == "met"
    assert P.target("x", iv, 0.2).verdict == "not met"
    assert P.target("x", iv, 0.1).verdict == "inconclusive"
    # lower is better: an error rate below the bound is met
    assert P.target("err", iv, 0.2, higher_is_better=False).verdict == "met"
    assert P.target("err", iv, 0.0, higher_is_better=False).verdict == "not met"
    nan = P.mean_interval([1.0])
    assert P.target("one seed", nan, 0.0).verdict == "inconclusive"
    with pytest.raises(ValueError, match="verdict"):
        P.Target("x", 1.0, (0.0, 2.0), 0.0, "maybe")


def test_protocol_refuses_choices_on_test():
    with pytest.raises(ValueError, match="test"):
        P.Protocol({"train": 10, "test": 5}, [0], {"lr": "test"})


def test_results_roundtrip_and_schema_errors(tmp_path):
    proto = P.Protocol(
        {"train": 100, "validation": 50, "test": 200},
        list(range(3)),
        {"lr": "validation"},
        notes="n",
    )
    iv = P.paired_interval([0.9, 0.8, 0.85], [0.7, 0.62, 0.66])
    t = P.target("a - b", iv, 0.0)
    path = P.write_results(
        tmp_path,
        "demo",
        {"steps": np.int64(5)},
        proto,
        {"acc": np.float32(0.5), "missing": float("nan")},
        [t],
        tables={"main": {"columns": ["arm", "acc"], "rows": [["a", 0.9], ["b", None]]}},
    )
    data = P.read_results(tmp_path)
    assert data["schema"] == P.SCHEMA_VERSION and data["experiment"] == "demo"
    assert data["config"] == {"steps": 5} and data["metrics"]["missing"] is None
    assert data["protocol"]["selection"] == "validation"
    assert data["targets"][0]["ci95"] == pytest.approx([iv.lo, iv.hi])
    assert data["targets"][0]["verdict"] == "met"
    assert not list(tmp_path.glob("*.tmp*"))  # the temporary file was replaced
    md = P.render_results(data)
    assert "| a - b |" in md and "[" in md and "3 seeds (0-2)" in md and "| b | n/a |" in md
    assert P.markdown_table(["x"], [["|a| - 1"]]).splitlines()[2] == "| \\|a\\| - 1 |"

    broken = json.loads(path.read_text())
    broken["targets"][0]["verdict"] = "passed"
    path.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="verdict 'passed'"):
        P.read_results(path)
    path.write_text(json.dumps({"schema": 0}))
    with pytest.raises(ValueError, match="schema 0"):
        P.read_results(path)
    with pytest.raises(ValueError, match="no such results file"):
        P.read_results(tmp_path / "nope.json")
    with pytest.raises(ValueError, match="2 columns but a row of 1"):
        P.write_results(
            tmp_path, "x", {}, proto, {}, [], tables={"t": {"columns": ["a", "b"], "rows": [[1]]}}
        )


def test_prepare_run_dir(tmp_path):
    run = tmp_path / "run"
    assert P.prepare_run_dir(run, {"a": 1}, outputs=["ckpt"]) is False  # fresh
    (run / "ckpt").write_text("x")
    assert P.prepare_run_dir(run, {"a": 1}, outputs=["ckpt"]) is True  # same settings
    with pytest.raises(P.RunMismatch, match="other settings"):
        P.prepare_run_dir(run, {"a": 2}, outputs=["ckpt"])
    assert (run / "ckpt").exists()  # nothing deleted
    assert P.prepare_run_dir(run, {"a": 2}, outputs=["ckpt"], on_mismatch="restart") is False
    assert not (run / "ckpt").exists()
    assert json.loads((run / "config.json").read_text()) == {"a": 2}
    (run / "ckpt").write_text("x")
    assert P.prepare_run_dir(run, {"a": 2}, resume=False, outputs=["ckpt"]) is False
    assert not (run / "ckpt").exists()


def test_warmup_rule_and_schedule():
    assert P.warmup_steps(100, 50) == 49 and P.warmup_steps(5, 50) == 5
    assert P.warmup_steps(0.1, 95) == 9 and P.warmup_steps(0.1, 5) == 1
    assert P.warmup_steps(0, 1) == 0 and P.warmup_steps(0.1, 1) == 0
    with pytest.raises(ValueError, match="warm-up"):
        P.warmup_steps(-1, 10)
    model = tt.nn.Sequential(tt.nn.Linear(3, 4, generator=0), tt.nn.Linear(4, 2, generator=1))
    opt = P.make_optimizer(model, "adamw", lr=0.01, weight_decay=0.1)
    decays = sorted(g["weight_decay"] for g in opt.param_groups)
    assert decays == [0.0, 0.1]  # matrices decayed, biases not
    sched = P.make_schedule(opt, total_steps=10, warmup=2, min_lr_ratio=0.1)
    lrs = []
    for _ in range(11):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 0.0 and lrs[1] == pytest.approx(0.005) and lrs[2] == pytest.approx(0.01)
    assert lrs[10] == pytest.approx(0.001)
    # cosine halfway between warm-up end (2) and total (10): the mean of lr and min_lr
    assert lrs[6] == pytest.approx(0.0055)
    with pytest.raises(ValueError, match="unknown optimizer"):
        P.make_optimizer(model, "lion", lr=0.1)


def test_wilson_interval_by_hand():
    # 45 of 50: p = 0.9, z = 1.959964; the Wilson interval is about [0.786, 0.957]
    iv = P.proportion_interval(45, 50)
    z = 1.959964
    centre = (0.9 + z * z / 100) / (1 + z * z / 50)
    half = z * math.sqrt(0.9 * 0.1 / 50 + z * z / 10000) / (1 + z * z / 50)
    assert iv.mean == 0.9 and (iv.lo, iv.hi) == pytest.approx((centre - half, centre + half))
    assert (iv.lo, iv.hi) == pytest.approx((0.7864, 0.9565), abs=1e-4)
    zero = P.proportion_interval(0, 20)
    assert zero.lo == pytest.approx(0.0, abs=1e-12) and 0 < zero.hi < 0.2
    with pytest.raises(ValueError, match="successes"):
        P.proportion_interval(5, 3)


def test_mean_interval_within_clips_a_rate_to_its_range():
    # two seeds' win rates 0.9 and 1.0: mean 0.95, sd 0.0707, t(0.975, 1) = 12.706, so the
    # t interval is 0.95 -/+ 0.635 = [0.315, 1.585]; a rate's stops at 1
    free = P.mean_interval([0.9, 1.0])
    rate = P.mean_interval([0.9, 1.0], within=P.RATE)
    half = 12.7062047 * math.sqrt(0.005) / math.sqrt(2)
    assert free.hi == pytest.approx(0.95 + half, rel=1e-6) and free.hi > 1.0
    assert rate.hi == 1.0
    assert rate.lo == pytest.approx(free.lo) == pytest.approx(0.95 - half, rel=1e-6)
    assert (rate.mean, rate.sd, rate.n) == (free.mean, free.sd, free.n)
    low = P.mean_interval([0.0, 0.05], within=P.RATE)
    assert low.lo == 0.0 and low.hi == pytest.approx(0.025 + half / 2, rel=1e-6)  # sd halved
    with pytest.raises(ValueError, match="outside within"):
        P.mean_interval([1.5, 1.7], within=P.RATE)


def test_require_counts_names_the_first_field_below_one():
    from types import SimpleNamespace

    P.require_counts(SimpleNamespace(steps=1, seeds=3), ("steps", "seeds"))
    with pytest.raises(ValueError, match="^seeds must be at least 1, got 0$"):
        P.require_counts(SimpleNamespace(steps=5, seeds=0, width=-1), ("steps", "seeds", "width"))
