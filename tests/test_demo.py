"""`python -m tinytape demo`: the whole course end to end (--quick) and its report; the
stage failure paths; the gradient self-check stage (`check`) and the report writer."""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import re

import pytest

import tinytape as tt
from tinytape import checks, report
from tinytape.cli import demo, main
from tinytape.experiments.protocol import (
    Protocol,
    mean_interval,
    paired_interval,
    read_results,
    target,
    write_results,
)

#: the header of each stage's own table in the report (from its results.json)
TABLE_HEADERS = {
    "checks": "| check | passed | max error |",
    "layerwise": "| labels per class | 10 | all |",
    "lm": "| model | validation bits/char |",
    "authors": "|",
    "icl": "| condition | prior pairs | accuracy |",
    "rlhf": "| method | win vs SFT |",
}
#: the plot each stage must show when matplotlib is installed
PLOTS = {"layerwise": "layerwise.png", "lm": "lm_curve.png", "authors": "authors.png",
         "icl": "icl.png", "rlhf": "rlhf_frontier.png"}
NUMBER_ROW = re.compile(r"^\|.*\|\s*[-+]?\d+(\.\d+)?(e[-+]?\d+)?( \[[-+\d., ]+\])?\s*\|")


@pytest.fixture(autouse=True)
def _keep_threads():
    saved = tt.get_num_threads()
    yield
    tt.set_num_threads(saved)


def sections(text: str) -> dict[str, str]:
    """The report's '## ' sections by heading."""
    parts = re.split(r"^## ", text, flags=re.M)
    return {p.split("\n", 1)[0].strip(): p for p in parts[1:]}


def stage_section(text: str, i: int, name: str) -> str:
    heading = f"{i}. {report.STAGES[name][0]}"
    found = sections(text)
    assert heading in found, f"no heading {heading!r} in the report: {list(found)}"
    return found[heading]


def available(name: str) -> bool:
    stage = next(s for s in demo.STAGES if s.name == name)
    return demo._available(stage)


# --------------------------------------------------------------------------- end to end
def test_demo_quick_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["demo", "--quick", "--quiet", "--out", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    summary = json.loads((out / "demo.json").read_text())
    text = (out / "report.md").read_text()
    assert text.startswith("# tinytape demo report")
    assert [s["name"] for s in summary["stages"]] == list(demo.STAGE_NAMES)
    assert summary["quick"] is True and summary["wall_seconds"] > 0
    ran = [s for s in summary["stages"] if s["status"] != "not available"]
    assert {"checks", "layerwise"} <= {s["name"] for s in ran}
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["name"] for r in records] == [s["name"] for s in ran]
    for i, st in enumerate(summary["stages"], 1):
        name = st["name"]
        section = stage_section(text, i, name)
        assert f"[{i}/{len(demo.STAGES)}] {name}:" in printed  # a progress line per stage
        if st["status"] == "not available":
            assert not available(name)
            assert "Not available" in section
            continue
        assert st["status"] == "ok", f"{name}: {st.get('error')}"
        assert st["wall_seconds"] > 0 and st["cpu_seconds"] > 0
        assert st["headline"], f"{name}: no headline figure"
        folder = out / name
        results, why = report.load_results(str(folder))
        assert results, f"{name}: {why}"
        assert (folder / "log.txt").stat().st_size > 0
        assert TABLE_HEADERS[name] in section, f"{name}: its table is missing:\n{section}"
        rows = [ln for ln in section.splitlines() if NUMBER_ROW.match(ln)]
        assert rows, f"{name}: no table row with numbers:\n{section}"
        assert f"({name}/results.json)" in section  # the figures are linked
        assert "Protocol: " in section
        if results["targets"]:
            assert "| target | value | 95% interval | bound | verdict |" in section
        if name in PLOTS:
            if report.have_matplotlib():
                assert (folder / PLOTS[name]).is_file()
                assert f"]({name}/{PLOTS[name]})" in section
            else:
                assert "pip install 'tinytape[plot]'" in section
    results = {s["name"]: s for s in summary["stages"]}
    assert all(c["passed"] for c in _all_checks(out))
    assert results["checks"]["headline"] == "failed checks (none): 0 (met)"
    if results.get("lm", {}).get("status") == "ok":
        lm = stage_section(text, 3, "lm")
        assert "(lm/model.safetensors)" in lm  # checkpoints are listed
        assert (out / "lm" / "model.safetensors").is_file()
        assert "A sample from the model" in lm
    if not report.have_matplotlib():
        assert "No plots in this report" in text


def _all_checks(out) -> list[dict]:
    r = read_results(out / "checks")["metrics"]
    assert r["passed"] is True
    return r["kernels"] + r["ops"] + r["modules"]


# --------------------------------------------------------------------------- failures
def test_failed_and_missing_stages_are_reported(tmp_path, monkeypatch, capsys):
    real_call = demo._call

    def call(argv):
        if argv[0] == "check":
            raise RuntimeError("boom in the check stage")
        return real_call(argv)

    def bad_lm(quick, out):  # a negative size: the stage's own one-line error, exit 2
        return [["lm", "train", "--steps", "-5", "--out", out]]

    stages = tuple(dataclasses.replace(s, calls=bad_lm) if s.name == "lm" else s
                   for s in demo.STAGES)
    monkeypatch.setattr(demo, "_call", call)
    monkeypatch.setattr(demo, "STAGES", stages)
    monkeypatch.setitem(demo.COMMAND_MODULES, "icl", "tinytape.cli.no_such_module")
    out = tmp_path / "run"
    rc = main(["demo", "--quick", "--stages", "checks,lm,icl", "--out", str(out)])
    printed = capsys.readouterr()
    assert rc == 1
    summary = json.loads((out / "demo.json").read_text())
    status = {s["name"]: (s["status"], s.get("exit_code")) for s in summary["stages"]}
    assert status == {"checks": ("failed", 1), "lm": ("failed", 2), "icl": ("not available", None)}
    assert "FAILED: checks, lm" in printed.out
    assert "Traceback" not in printed.out + printed.err
    text = (out / "report.md").read_text()
    assert "RuntimeError: boom in the check stage" in stage_section(text, 1, "checks")
    lm = stage_section(text, 2, "lm")
    assert "**Stage failed**" in lm and "steps must be positive" in lm
    assert "Not available" in stage_section(text, 3, "icl")
    assert "Traceback" in (out / "checks" / "log.txt").read_text()  # kept for debugging


@pytest.mark.parametrize("argv,message", [
    (["--threads", "0"], "--threads must be at least 1"),
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--stages", "checks,nope"], "--stages: choose from"),
])
def test_bad_arguments_give_one_line_and_exit_2(tmp_path, capsys, argv, message):
    rc = main(["demo", "--out", str(tmp_path / "run"), *argv])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    path = tmp_path / "a-file"
    path.write_text("x")
    assert main(["demo", "--out", str(path)]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_help_explains_the_arguments(capsys):
    with pytest.raises(SystemExit) as e:
        main(["demo", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--quick", "--seed", "--threads", "--out", "--stages", "--quiet"):
        assert flag in text
    assert "report.md" in text and "demo.json" in text


def test_quick_and_default_stage_arguments_parse():
    """Every call of every stage, quick and default, is accepted by its command's parser."""
    for stage in demo.STAGES:
        if not demo._available(stage):
            continue
        for quick in (True, False):
            for argv in stage.calls(quick, "somewhere"):
                module = __import__(demo.COMMAND_MODULES[argv[0]], fromlist=["add_parser"])
                parser = argparse.ArgumentParser()
                module.add_parser(parser.add_subparsers(dest="command"))
                args = parser.parse_args(argv + ["--seed", "1", "--threads", "1"])
                assert callable(args.func)


# --------------------------------------------------------------------------- log capture
def test_tee_keeps_the_last_state_of_a_progress_bar():
    screen, log = io.StringIO(), io.StringIO()
    tee = demo._Tee(screen, log, show=True)
    tee.write("start\n[#...] 1/4\r[##..] 2/4\x1b[K\r[####] 4/4")
    tee.write("\x1b[K\ndone\n")
    assert log.getvalue() == "start\n[####] 4/4\ndone\n"
    assert screen.getvalue().startswith("start\n[#...]")
    quiet = demo._Tee(io.StringIO(), io.StringIO(), show=False)
    quiet.write("hidden\n")
    assert quiet.stream.getvalue() == "" and quiet.log.getvalue() == "hidden\n"
    assert not quiet.isatty()


# --------------------------------------------------------------------------- self-checks
def _check_parser() -> argparse.ArgumentParser:
    from tinytape.cli import check

    parser = argparse.ArgumentParser()
    check.add_parser(parser.add_subparsers(dest="command"))
    return parser


def test_check_command_writes_its_results(tmp_path, capsys):
    args = _check_parser().parse_args(["check", "--quick", "--out", str(tmp_path)])
    assert args.func(args) == 0
    saved = read_results(tmp_path)
    assert saved["experiment"] == "check" and saved["targets"][0]["verdict"] == "met"
    r = saved["metrics"]
    assert r["passed"] and not r["second_order"]
    names = {c["name"] for c in r["ops"]}
    assert {"matmul", "softmax", "layer_norm", "cross_entropy", "gelu"} <= names
    assert all(c["size"] > 0 for c in r["ops"])
    assert any(m["name"].startswith("lecture MLP") for m in r["modules"])
    assert max(c["error"] for c in r["ops"] + r["modules"]) < 1e-4
    assert "all passed" in capsys.readouterr().out


def test_gradient_checks_catch_a_wrong_backward(monkeypatch):
    from tinytape.ops import unary

    real = unary.Gelu.backward

    def wrong(ctx, g):
        return tuple(1.5 * t for t in real(ctx, g))

    monkeypatch.setattr(unary.Gelu, "backward", staticmethod(wrong))
    ops = {c.name: c for c in checks.op_gradchecks(seed=0)}
    assert not ops["gelu"].passed and ops["gelu"].error > 1e-3
    assert ops["tanh"].passed and ops["matmul"].passed
    modules = {c.name: c for c in checks.module_gradchecks(seed=0)}
    assert not modules["TransformerBlock (pre-norm)"].passed  # its feed-forward uses GELU
    assert modules["LayerNorm"].passed


def test_projection_error_is_small_for_a_right_gradient():
    x = tt.tensor([[0.3, -1.2], [2.0, 0.5]], dtype=tt.float64, requires_grad=True)
    assert checks.projection_error(lambda a: (a @ a).tanh(), [x]) < 1e-8


# --------------------------------------------------------------------------- the report
def _summary(stages: list[dict]) -> dict:
    return {"command": "python -m tinytape demo", "quick": False, "stages": stages,
            "wall_seconds": 1.0, "cpu_seconds": 1.0}


def _lm_results(folder) -> dict:
    """A small lm results.json in the shared schema, written to folder."""
    proto = Protocol({"train documents": 90, "validation documents": 10}, [0], {})
    t = target("GPT - bigram, validation bits/char (lower is better)", mean_interval([-0.9]),
               0.0, higher_is_better=False)
    write_results(folder, "lm", {"steps": 100}, proto, {"val_bpc": 2.5}, [t],
                  {"bpc": {"caption": "validation bits per character",
                           "columns": ["model", "validation bits/char"],
                           "rows": [["bigram (smoothed)", 3.4], ["GPT, 100 steps", 2.5]]}})
    return read_results(folder)


def test_report_without_matplotlib_says_how_to_get_the_plots(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "have_matplotlib", lambda: False)
    lm = _lm_results(tmp_path / "lm")
    stages = [{"name": "lm", "status": "ok", "wall_seconds": 2.0, "cpu_seconds": 1.5,
               "commands": [["lm", "train"]], "headline": report.headline(lm)},
              {"name": "icl", "status": "not available", "command": "icl"}]
    text = open(report.write_report(str(tmp_path), _summary(stages)), encoding="utf-8").read()
    assert "No plots in this report" in text and "pip install 'tinytape[plot]'" in text
    assert "| GPT, 100 steps | 2.500 |" in text
    assert "GPT - bigram, validation bits/char (lower is better): -0.9 (inconclusive)" in text
    assert "| GPT - bigram, validation bits/char (lower is better) | -0.900 | n/a | 0.000 | " \
           "inconclusive |" in text
    assert "Protocol: splits: train documents 90, validation documents 10" in text
    assert "**Not available**" in text


def test_report_refuses_a_results_file_in_another_shape(tmp_path):
    (tmp_path / "authors").mkdir()
    odd = {"accuracy": 0.75, "seconds": 3.0, "summary": "changed"}
    (tmp_path / "authors" / "results.json").write_text(json.dumps(odd))
    stages = [{"name": "authors", "status": "ok", "wall_seconds": 1.0, "cpu_seconds": 1.0}]
    text = report.render(str(tmp_path), _summary(stages))
    assert "(no results to show: " in text and "results schema None, expected 1" in text
    assert report.headline(None) == ""


def test_headline_shows_the_first_target_with_its_interval(tmp_path):
    proto = Protocol({"test": 50}, [0, 1, 2], {})
    t = target("a - b", paired_interval([0.9, 0.8, 0.85], [0.7, 0.62, 0.66]), 0.0)
    write_results(tmp_path, "x", {}, proto, {}, [t])
    lo, hi = t.ci95
    assert report.headline(read_results(tmp_path)) == \
        f"a - b: {t.value:.3g} [{lo:.3g}, {hi:.3g}] (met)"


def test_markdown_table():
    table = report.md_table(["a", "b"], [["x", 1.23456], ["y", None]])
    assert table.splitlines() == ["| a | b |", "| --- | ---: |", "| x | 1.235 |", "| y | - |"]


def test_console_command_runs_the_demo(monkeypatch, capsys):
    """`tinytape demo ...` (the console script calls tinytape.cli.main() with sys.argv)."""
    monkeypatch.setattr("sys.argv", ["tinytape", "demo", "--help"])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 0 and "tinytape demo" in capsys.readouterr().out


def test_ctrl_c_stops_the_demo_and_still_writes_the_report(tmp_path, monkeypatch):
    def call(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "_call", call)
    out = tmp_path / "run"
    assert main(["demo", "--quiet", "--stages", "checks,lm", "--out", str(out)]) == 130
    summary = json.loads((out / "demo.json").read_text())
    assert [(s["name"], s["status"]) for s in summary["stages"]] == [
        ("checks", "interrupted"), ("lm", "skipped")]
    text = (out / "report.md").read_text()
    assert "the demo was interrupted" in stage_section(text, 2, "lm")


@pytest.mark.parametrize("argv", [["rlhf"], ["lm", "train"], ["lm", "sample", "--from", "x"],
                                  ["authors"], ["icl"], ["layerwise"], ["check"]])
def test_every_command_rejects_a_negative_seed(capsys, argv):
    assert main([*argv, "--seed", "-3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--seed must be >= 0, got -3" in err


@pytest.mark.parametrize("argv", [["rlhf"], ["lm", "train"], ["lm", "sample", "--from", "x"],
                                  ["authors"], ["icl"], ["layerwise"], ["check"], ["selfcheck"],
                                  ["demo"]])
def test_every_command_rejects_zero_threads(capsys, argv):
    assert main([*argv, "--threads", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--threads must be at least 1, got 0" in err


def test_every_stage_command_is_a_command_of_the_cli(capsys):
    """The report tells users to rerun a stage with `python -m tinytape <command> ...`."""
    from tinytape.cli import COMMANDS

    for stage in demo.STAGES:
        assert stage.command in COMMANDS
        with pytest.raises(SystemExit) as e:
            main([stage.command, "--help"])
        assert e.value.code == 0
    capsys.readouterr()
