"""tinytape.distributed and DistributedDataParallel.

The first tests run in this process (a group of one, sharding, seeding). The others start
`mpiexec -n 2 python tests/mpi_worker.py CASE` (with a timeout) and compare what the two
ranks computed with one process doing the same work in float64. They need the `mpi` extra;
without it they skip, unless TINYTAPE_REQUIRE_MPI=1 (set by .ci/mpi.sh), where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import mpi_worker as W
import numpy as np
import pytest

import tinytape as tt
import tinytape.distributed as dist
from tinytape.checkpoint import module_generators
from tinytape.nn.parallel import DistributedDataParallel
from tinytape.optim import AdamW

WORKER = os.path.join(os.path.dirname(__file__), "mpi_worker.py")
TOL = 1e-10  # float64: two ranks against one process


@pytest.fixture(autouse=True)
def one_thread_no_group():
    saved = tt.get_num_threads()
    tt.set_num_threads(1)
    dist.destroy_process_group()
    yield
    dist.destroy_process_group()
    tt.set_num_threads(saved)


# ---------------------------------------------------------------------------- one process


def test_group_of_one_without_a_launcher(monkeypatch):
    for name in dist.launcher_world_size.__globals__["LAUNCHER_SIZE_VARIABLES"]:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="init_process_group"):
        dist.all_reduce(np.ones(2))
    assert not dist.is_initialized() and dist.get_world_size() == 1
    g = dist.init_process_group()
    assert (g.rank, g.size, dist.get_rank(), dist.get_world_size()) == (0, 1, 0, 1)
    t = tt.tensor([1.0, 2.0])
    dist.all_reduce(t, dist.ReduceOp.AVG)
    dist.broadcast(t)
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0])
    parts = [np.zeros(2, np.float32)]
    dist.all_gather(parts, t)
    np.testing.assert_array_equal(parts[0], [1.0, 2.0])
    with pytest.raises(ValueError, match="tensor_list has 2 entries for a group of 1"):
        dist.all_gather([np.zeros(2), np.zeros(2)], t)
    with pytest.raises(
        ValueError,
        match=r"tensor_list\[0\] is float64\[3\], the tensor sent is "
        r"float32\[2\]",
    ):
        dist.all_gather([np.zeros(3)], t)
    with pytest.raises(ValueError, match="src 1 is not a rank"):
        dist.broadcast(t, src=1)
    with pytest.raises(ValueError, match="op must be one of"):
        dist.all_reduce(t, "mean")
    with pytest.raises(TypeError, match="Tensor or a numpy array"):
        dist.all_reduce([1.0])
    assert dist.gather_runs(dist.shard_runs(["a", "b"]), 2) == ["a", "b"]
    assert list(dist.run_in_rounds(str.upper, ["a", "b", "c"])) == ["A", "B", "C"]
    assert dist.on_rank_zero(lambda: 7) == 7
    with pytest.raises(ZeroDivisionError):
        dist.on_rank_zero(lambda: 1 / 0)
    with dist.group_of_one() as alone:
        assert dist.get_world_size() == 1 and alone is not g
    assert dist.init_process_group() is g


def test_launcher_without_mpi4py_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py fails
    monkeypatch.setitem(sys.modules, "mpi4py.MPI", None)
    with pytest.raises(RuntimeError, match=r"MPI launcher with 2 processes.*tinytape\[mpi\]"):
        dist.init_process_group()
    assert not dist.is_initialized()


def test_shard_range_and_shard_batch_cover_the_batch_once():
    for n in (7, 8, 2):
        spans = [dist.shard_range(n, r, 2) for r in range(2)]
        assert spans[0][0] == 0 and spans[0][1] == spans[1][0] and spans[1][1] == n
        assert abs((spans[0][1] - spans[0][0]) - (spans[1][1] - spans[1][0])) <= 1
    assert [dist.shard_range(10, r, 3) for r in range(3)] == [(0, 4), (4, 7), (7, 10)]
    x, y = np.arange(14).reshape(7, 2), np.arange(7)
    parts = [dist.shard_batch((x, y), r, 2) for r in range(2)]
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), x)
    np.testing.assert_array_equal(parts[1][1], [4, 5, 6])
    with pytest.raises(ValueError, match="batch of 1 items cannot be split over 2 ranks"):
        dist.shard_batch(np.zeros(1), 0, 2)
    with pytest.raises(ValueError, match="different lengths"):
        dist.shard_batch((np.zeros(3), np.zeros(2)), 0, 2)


def test_distributed_sampler_matches_pytorch():
    torch_data = pytest.importorskip("torch.utils.data")
    for n, world, drop in ((10, 3, False), (10, 3, True), (4, 2, False)):
        for rank in range(world):
            ours = list(dist.DistributedSampler(n, world, rank, shuffle=False, drop_last=drop))
            theirs = list(
                torch_data.DistributedSampler(range(n), world, rank, shuffle=False, drop_last=drop)
            )
            assert ours == theirs, (n, world, rank, drop)
    # shuffled: every rank the same permutation, a new one per epoch
    s = [dist.DistributedSampler(9, 3, r, seed=1) for r in range(3)]
    first = sorted(i for x in s for i in x)
    assert first == list(range(9))
    order0 = [list(x) for x in s]
    for x in s:
        x.set_epoch(1)
    assert [list(x) for x in s] != order0
    with pytest.raises(ValueError, match="rank 3 is not in"):
        dist.DistributedSampler(9, 3, 3)


def test_seed_rank_generators_differ_by_rank_and_repeat():
    model = W.tiny_gpt(0, dropout=0.3)
    (gen,) = module_generators(model).values()
    draws = {}
    for rank in (0, 1, 0):
        noise = dist.seed_rank_generators(model, 5, rank)
        draws.setdefault(rank, []).append((gen.random(3).tolist(), noise.random(2).tolist()))
    assert draws[0][0] == draws[0][1]  # the same seed and rank: the same streams
    assert draws[0][0][0] != draws[1][0][0] and draws[0][0][1] != draws[1][0][1]
    noise_later = dist.seed_rank_generators(model, 5, 0, step=3).random(2).tolist()
    assert noise_later != draws[0][0][1]


def test_ddp_in_a_group_of_one_leaves_gradients_alone():
    with pytest.raises(RuntimeError, match="init_process_group"):
        DistributedDataParallel(W.tiny_gpt(0))
    dist.init_process_group()
    model = W.tiny_gpt(0)
    ref = W.tiny_gpt(0)
    ddp = DistributedDataParallel(model)
    assert ddp._handles == [] and list(ddp.state_dict())[0].startswith("module.")
    x, y = W.global_batch(0, 4)
    ddp(x, y)[1].backward()
    ref(x, y)[1].backward()
    for p, q in zip(model.parameters(), ref.parameters()):
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())
    with pytest.raises(TypeError, match="wraps a Module"):
        DistributedDataParallel(lambda x: x)


# ---------------------------------------------------------------------------- two processes


def _mpiexec() -> str | None:
    local = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return local if os.path.exists(local) else shutil.which("mpiexec")


def _need_mpi() -> str:
    exe = _mpiexec()
    if exe is not None and dist.is_available():
        return exe
    why = "needs mpi4py and mpiexec: pip install '.[mpi]'"
    if os.environ.get("TINYTAPE_REQUIRE_MPI") == "1":
        pytest.fail(why + " (TINYTAPE_REQUIRE_MPI=1)")
    pytest.skip(why)


def _env() -> dict[str, str]:
    """This environment with one kernel thread and without a launcher's variables (the
    processes started get their own)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in dist.launcher_world_size.__globals__["LAUNCHER_SIZE_VARIABLES"]:
        env.pop(name, None)
    return env


def run_mpi(
    case: str, out, *args: str, n: int = 2, timeout: float = 180, check: bool = True
) -> subprocess.CompletedProcess:
    cmd = [_need_mpi(), "-n", str(n), sys.executable, WORKER, case, str(out), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env())
    if check:
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _load(out, name: str, rank: int) -> dict[str, np.ndarray]:
    with np.load(os.path.join(out, f"{name}_rank{rank}.npz")) as f:
        return {k: f[k] for k in f}


def _assert_params_close(got: dict, want: dict, tol: float = TOL) -> None:
    for name, value in want.items():
        err = np.max(np.abs(got[name] - value))
        assert err <= tol, f"{name}: max difference {err:.3g} > {tol}"


def test_collectives_on_two_ranks(tmp_path):
    run_mpi("collectives", tmp_path)
    for rank in (0, 1):
        got = _load(tmp_path, "collectives", rank)
        np.testing.assert_array_equal(got["sum"], np.arange(6.0).reshape(2, 3) * 3)  # 1 + 2
        np.testing.assert_array_equal(got["avg"], np.full(4, 1.5))
        np.testing.assert_array_equal(got["max"], [1, 0])
        np.testing.assert_array_equal(got["noncontig"], np.arange(12.0).reshape(3, 4)[:, ::2] * 3)
        np.testing.assert_array_equal(got["bcast"], np.full(3, 11.0))  # rank 1's
        np.testing.assert_array_equal(got["gather"], [[0, 0], [1, 10]])
        np.testing.assert_array_equal(got["objects"], [0, 1])
        assert got["runs"].tolist() == ["aa", "bb", "cc", "dd", "ee"]
        assert got["run_items"].tolist() == [[0, 2, 4], [1, 3]][rank]
        assert got["rounds"].tolist() == [
            ["aa", "1", "0"], ["bb", "1", "1"], ["cc", "1", "0"], ["dd", "1", "1"],
            ["ee", "1", "0"],
        ]  # fmt: skip
        assert got["on_rank_zero"] == 10 and got["ran"].tolist() == [[0], []][rank]
        assert got["errors"].tolist() == [
            "ZeroDivisionError: division by zero",
            # rank 0 raises the error itself, the others a RuntimeError with its message
            ["UnpicklableError", "RuntimeError: UnpicklableError"][rank] + ": cannot pickle lock",
        ]
        assert got["alone"].tolist() == [0, 1, 3] and got["after"].tolist() == [2]


def test_ddp_two_ranks_equal_one_process_with_the_double_batch(tmp_path):
    run_mpi("ddp", tmp_path)
    # the reference: one process, rank 0's initial weights, batches of 2 * PER_RANK
    model = W.tiny_gpt(100)
    assert np.max(np.abs(W.tiny_gpt(101).wte.weight.numpy() - model.wte.weight.numpy())) > 0.01
    opt = AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    for step in range(W.STEPS):
        _, loss = model(*W.global_batch(step, 2 * W.PER_RANK))
        opt.zero_grad()
        loss.backward()
        opt.step()
    opt.zero_grad()
    for micro in (W.STEPS, W.STEPS + 1):
        model(*W.global_batch(micro, 2 * W.PER_RANK))[1].backward()
    opt.step()
    want = W.params(model)
    for rank in (0, 1):
        got = _load(tmp_path, "ddp", rank)
        # several buckets; in every backward, all but the last start while gradients of
        # other parameters are still to come (backward still running)
        n = int(got["buckets"])
        assert n > 2 and len(got["waiting"]) == (W.STEPS + 1) * n
        started_early = (got["waiting"].reshape(-1, n) > 0).sum(axis=1)
        assert (started_early == n - 1).all(), got["waiting"]
        _assert_params_close(got, want)


def test_ddp_unused_parameters_refused_or_averaged(tmp_path):
    run_mpi("unused", tmp_path)
    for rank in (0, 1):
        with open(tmp_path / f"unused_rank{rank}.json") as f:
            got = json.load(f)
        assert "gave no gradient to 2 parameter(s) (1.weight, 1.bias)" in got["False"]["message"]
        assert "find_unused_parameters=True" in got["False"]["message"]
        # x = (rank + 1) * ones(4, 3): d(sum)/dW = 4 (rank + 1) per entry; two backwards
        # without zero_grad: averaged (4 + 8) / 2 = 6, then (6 + 4(rank + 1)) averaged = 12
        assert got["True"]["message"] == ""
        np.testing.assert_array_equal(got["True"]["grad0"], np.full((2, 3), 12.0))
        np.testing.assert_array_equal(got["True"]["grad1"], np.zeros((2, 2)))


def test_dropout_streams_per_rank(tmp_path):
    run_mpi("dropout", tmp_path)
    # the reference: one process runs each rank's shard with that rank's dropout stream,
    # accumulates, and halves: the mean of the two ranks' gradients
    model = W.tiny_gpt(100, dropout=0.3)
    (gen,) = module_generators(model).values()
    streams = {}
    for rank in (0, 1):
        dist.seed_rank_generators(model, 5, rank)
        streams[rank] = gen.bit_generator.state
    assert streams[0] != streams[1]
    opt = AdamW(model.parameters(), lr=1e-2)
    for step in range(W.STEPS):
        opt.zero_grad()
        batch = W.global_batch(step, 2 * W.PER_RANK)
        for rank in (0, 1):
            gen.bit_generator.state = streams[rank]
            model(*dist.shard_batch(batch, rank, 2))[1].backward()
            streams[rank] = gen.bit_generator.state
        for p in model.parameters():
            p.grad.data *= 0.5
        opt.step()
    want = W.params(model)
    for rank in (0, 1):
        _assert_params_close(_load(tmp_path, "dropout", rank), want)


def _trainer_reference(out, until: int | None = None):
    trainer, model = W.make_trainer(str(out), 6, str(out / "metrics.jsonl"))
    result = trainer.fit(resume=True, until=until)
    return W.params(model), result


def test_trainer_two_ranks_equal_one_and_resume_at_another_world_size(tmp_path):
    ref_dir, two, two_then_one, one_then_two = (tmp_path / n for n in ("ref", "a", "b", "c"))
    for d in (ref_dir, two, two_then_one, one_then_two):
        d.mkdir()
    want, ref = _trainer_reference(ref_dir)
    # two ranks, the whole run: the same parameters, one metrics file with the same losses
    run_mpi("trainer", two, "6", "0")
    for rank in (0, 1):
        got = _load(two, "trainer6", rank)
        _assert_params_close(got, want)
        np.testing.assert_allclose(got["evals"], [e["p0"] for e in ref.evals], rtol=0, atol=TOL)
    ref_log = [json.loads(x) for x in open(ref_dir / "metrics.jsonl")]
    two_log = [json.loads(x) for x in open(two / "metrics.jsonl")]
    assert [r["event"] for r in two_log] == [r["event"] for r in ref_log]
    for a, b in zip(two_log, ref_log):
        for key in ("loss", "grad_norm", "lr", "p0"):
            if key in b:
                assert abs(a[key] - b[key]) <= TOL, (key, a, b)
    # two ranks stop at step 3; one process resumes; and the other way round
    run_mpi("trainer", two_then_one, "6", "3")
    assert not (two_then_one / "trainer6_rank0.npz").exists()
    got, result = _trainer_reference(two_then_one)
    assert result.resumed_from == 3
    _assert_params_close(got, want)
    _trainer_reference(one_then_two, until=3)
    run_mpi("trainer", one_then_two, "6", "0")
    for rank in (0, 1):
        _assert_params_close(_load(one_then_two, "trainer6", rank), want)


def _tinytape(out, *args: str, n: int = 1, timeout: float = 300) -> tuple[str, dict]:
    """`python -m tinytape ARGS --out OUT`, alone or under mpiexec -n n: (stdout, the
    results.json written)."""
    exe = _need_mpi()
    cmd = ([exe, "-n", str(n)] if n > 1 else []) + [
        sys.executable,
        "-m",
        "tinytape",
        *args,
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env())
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout, json.loads((out / "results.json").read_text())


def _without(record: dict, keys: tuple[str, ...]) -> dict:
    return {k: v for k, v in record.items() if k not in keys}


TIMINGS = ("seconds", "pretrain_seconds", "elapsed", "items_per_s", "train_seconds")


def test_lm_train_command_two_ranks(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rng = np.random.default_rng(0)
    words = ["tape", "grad", "node", "leaf", "rank", "batch", "step", "loss"]
    for i in range(12):
        (corpus / f"{i}.txt").write_text(" ".join(rng.choice(words, 60)) + ".\n")
    args = ["lm", "train", "--corpus", str(corpus), "--steps", "6", "--d-model", "16",
            "--context", "16", "--layers", "1", "--heads", "2", "--batch-size", "6",
            "--eval-every", "3", "--warmup", "1", "--sample-tokens", "10"]  # fmt: skip
    runs = {n: _tinytape(tmp_path / f"run{n}", *args, n=n) for n in (1, 2)}
    logs = {n: (tmp_path / f"run{n}" / "metrics.jsonl").read_text().splitlines() for n in runs}
    assert runs[2][0].count("GPT d_model 16") == 1  # rank 0 alone prints
    assert len(logs[2]) == len(logs[1])  # and logs
    # float32 training: equal up to rounding
    two, one = runs[2][1]["metrics"], runs[1][1]["metrics"]  # the shared results schema
    assert abs(two["val_bpc"] - one["val_bpc"]) < 1e-4
    assert len(two["evals"]) == len(one["evals"]) > 0
    for a, b in zip(two["evals"], one["evals"]):
        assert a["step"] == b["step"] and abs(a["val_bpc"] - b["val_bpc"]) < 1e-4


def test_layerwise_command_two_ranks_equal_one_process(tmp_path):
    """The sweep's (activation, seed) jobs shared out over 2 ranks (3 seeds: 2 and 1):
    every run's numbers, the tables, the targets and the metrics records are those of one
    process, exactly."""
    args = ["layerwise", "--quick", "--width", "16", "--depth", "2", "--depths", "1,2",
            "--labels-per-class", "10,all", "--seeds", "3", "--steps", "10",
            "--eval-every", "5", "--pretrain-steps", "8", "--supervised-steps", "5",
            "--progress", "off", "--no-plot"]  # fmt: skip
    runs = {n: _tinytape(tmp_path / f"run{n}", *args, "--workers", "1", n=n) for n in (1, 2)}
    (_, one), (out2, two) = runs[1], runs[2]
    assert out2.count("layer-wise pretraining:") == 1 and "2 MPI ranks x 1 thread" in out2
    assert (two["metrics"]["ranks"], one["metrics"]["ranks"]) == (2, 1)
    assert len(one["metrics"]["runs"]) == len(two["metrics"]["runs"]) > 3 * 5
    for a, b in zip(two["metrics"]["runs"], one["metrics"]["runs"]):
        assert _without(a, TIMINGS) == _without(b, TIMINGS)
    assert two["tables"] == one["tables"] and two["targets"] == one["targets"]
    logs = [
        [_without(json.loads(x), TIMINGS) for x in open(tmp_path / f"run{n}" / "metrics.jsonl")]
        for n in (1, 2)
    ]
    assert len(logs[0]) > 50 and logs[1] == logs[0]  # rank 0 alone wrote, in the jobs' order


def test_authors_command_two_ranks(tmp_path):
    """Pretraining data-parallel with the same global batch (float32: equal up to rounding),
    then the (k, seed) comparisons shared out over the ranks: from the same pretrained model,
    every row (accuracy, choice, validation scores) exactly that of one process."""
    from test_authors import _folder

    books = _folder(tmp_path / "books")
    args = ["authors", "--corpus", str(books), "--ks", "1,2", "--seeds", "2",
            "--pretrain-steps", "6", "--batch-size", "6", "--d-model", "16", "--heads", "2",
            "--context", "32", "--vocab-size", "300", "--ft-min-steps", "2",
            "--ft-max-steps", "2", "--passage-chars", "60", "--threads", "1",
            "--workers", "1"]  # fmt: skip
    _, one = _tinytape(tmp_path / "one", *args)
    out2, two = _tinytape(tmp_path / "two", *args, n=2)
    assert out2.count("pretraining a GPT") == 1 and "2 MPI ranks" in out2
    lm1, lm2 = one["metrics"]["lm"], two["metrics"]["lm"]
    assert lm2["steps"] == lm1["steps"] == 6
    assert abs(lm2["val_bpc"] - lm1["val_bpc"]) < 1e-4
    curves = [
        [
            r["loss"]
            for r in map(json.loads, open(tmp_path / run / "metrics.jsonl"))
            if r["event"] == "train" and r.get("phase") == "pretrain"
        ]
        for run in ("one", "two")
    ]
    assert len(curves[0]) > 0 and np.allclose(curves[1], curves[0], rtol=0, atol=1e-5)
    # the comparisons alone, from the one-process run's pretrained model
    _, shared = _tinytape(
        tmp_path / "shared", *args, "--pretrained", str(tmp_path / "one" / "pretrain"), n=2
    )
    rows1, rows2 = one["metrics"]["rows"], shared["metrics"]["rows"]
    assert len(rows1) == 2 * 2 * 5
    assert [_without(r, TIMINGS) for r in rows2] == [_without(r, TIMINGS) for r in rows1]
    assert shared["tables"] == one["tables"] and shared["targets"] == one["targets"]
    results = [
        r for r in map(json.loads, open(tmp_path / "shared" / "metrics.jsonl"))
        if r["event"] == "result"
    ]  # fmt: skip
    assert len(results) == len(rows1)  # rank 0 logged every rank's rows, once
    rows_file = (tmp_path / "shared" / "rows.jsonl").read_text().splitlines()
    assert [json.loads(x)["accuracy"] for x in rows_file] == [r["accuracy"] for r in rows1]
    # interrupted after the first comparison (and a torn line): 2 ranks resume the other
    # three (a round of 2, then 1) and end with the same rows
    (tmp_path / "shared" / "rows.jsonl").write_text("\n".join(rows_file[:5]) + '\n{"to')
    said, again = _tinytape(
        tmp_path / "shared", *args, "--pretrained", str(tmp_path / "one" / "pretrain"), n=2
    )
    assert "resuming: 1 of 4 (k, seed) comparisons done" in said
    assert [_without(r, TIMINGS) for r in again["metrics"]["rows"]] == [
        _without(r, TIMINGS) for r in rows1
    ]


def test_icl_command_two_ranks_equal_one_process(tmp_path):
    """The (condition, seed) and copy runs shared out over 2 ranks in rounds (5 runs: 2, 2
    and 1): every run's record, the summary, tables and targets are those of one process,
    exactly but for the seconds; rank 0 alone prints and appends to runs.jsonl, and 2 ranks
    resume an interrupted run from it."""
    args = ["icl", "--quick", "--steps", "5", "--copy-steps", "5", "--seeds", "2",
            "--copy-seeds", "1", "--threads", "1", "--progress", "off", "--no-plot"]  # fmt: skip
    _, one = _tinytape(tmp_path / "one", *args, "--workers", "1")
    out2, two = _tinytape(tmp_path / "two", *args, "--workers", "2", n=2)
    assert out2.count("| p_bursty | in-context |") == 1 and "with 2 MPI ranks" in out2
    m1, m2 = one["metrics"], two["metrics"]
    assert (m1["ranks"], m2["ranks"], m2["workers"]) == (1, 2, 1)  # the ranks are the workers
    assert len(m1["tradeoff"]) == 4 and len(m1["copy"]) == 1
    for kind in ("tradeoff", "copy"):
        assert [_without(r, TIMINGS) for r in m2[kind]] == [_without(r, TIMINGS) for r in m1[kind]]
    assert m2["summary"] == m1["summary"]
    assert two["tables"] == one["tables"] and two["targets"] == one["targets"]
    lines = (tmp_path / "two" / "runs.jsonl").read_text().splitlines()
    assert len(lines) == 5  # once per run: rank 0 alone wrote
    # interrupted after 3 runs: 2 ranks train the other 2 (one round) and end the same
    (tmp_path / "two" / "runs.jsonl").write_text("\n".join(lines[:3]) + "\n")
    said, again = _tinytape(tmp_path / "two", *args, n=2)
    assert "(3 taken from an earlier run)" in said
    for kind in ("tradeoff", "copy"):
        assert [_without(r, TIMINGS) for r in again["metrics"][kind]] == [
            _without(r, TIMINGS) for r in m1[kind]
        ]
    assert len((tmp_path / "two" / "runs.jsonl").read_text().splitlines()) == 5


@pytest.mark.parametrize(
    "how, message",
    [
        ("raise", "rank 1 of 2 stopped with RuntimeError: rank 1 fails on purpose; aborting"),
        ("exit", "rank 1 exited while rank 0 waited in all_reduce"),
        ("kill", "signal 9"),
    ],
)
def test_a_rank_that_dies_stops_the_others(tmp_path, how, message):
    t0 = time.perf_counter()
    proc = run_mpi("die", tmp_path, how, check=False, timeout=60)
    seconds = time.perf_counter() - t0
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert seconds < 30, f"the job took {seconds:.0f} s to stop"
