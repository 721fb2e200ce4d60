"""The shared Trainer: seeded batches, progress, metrics, validation, checkpoints and resume."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

import tinytape as tt
from tinytape import nn
from tinytape.checkpoint import load_checkpoint
from tinytape.optim import SGD, Adam, StepLR
from tinytape.serialization import CheckpointError
from tinytape.train import BatchIterator, MetricsLogger, Progress, Trainer, read_metrics
from tinytape.train.trainer import progress_mode


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny matrices: one kernel thread (fast even on a busy machine)."""
    saved = tt.get_num_threads()
    tt.set_num_threads(1)
    yield
    tt.set_num_threads(saved)


def regression_data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (x @ np.array([1.5, -2.0, 0.5], np.float32) + 0.3).astype(np.float32)
    return x, y


# ---------------------------------------------------------------- batches

def test_batches_cover_every_item_once_per_epoch_and_are_seeded():
    x = np.arange(10)
    it = BatchIterator((x,), 4, np.random.default_rng(0))
    epoch1 = [next(it)[0] for _ in range(3)]
    assert [len(b) for b in epoch1] == [4, 4, 2]  # the last, smaller batch is kept
    assert sorted(np.concatenate(epoch1).tolist()) == list(range(10))
    epoch2 = np.concatenate([next(it)[0] for _ in range(3)])
    assert sorted(epoch2.tolist()) == list(range(10))
    assert not np.array_equal(np.concatenate(epoch1), epoch2)  # reshuffled
    again = BatchIterator((x,), 4, np.random.default_rng(0))
    np.testing.assert_array_equal(next(again)[0], epoch1[0])
    other = BatchIterator((x,), 4, np.random.default_rng(1))
    assert not np.array_equal(np.concatenate([next(other)[0] for _ in range(3)]),
                              np.concatenate(epoch1))


def test_batches_keep_arrays_aligned_and_drop_last():
    x, y = np.arange(10), np.arange(10) * 10
    it = BatchIterator((x, y), 3, np.random.default_rng(5), drop_last=True)
    for _ in range(7):
        bx, by = next(it)
        assert len(bx) == 3
        np.testing.assert_array_equal(by, bx * 10)
    unshuffled = BatchIterator((x,), 4, np.random.default_rng(0), shuffle=False)
    np.testing.assert_array_equal(next(unshuffled)[0], [0, 1, 2, 3])


def test_batch_state_restores_the_same_future_batches():
    x = np.arange(11)
    it = BatchIterator((x,), 3, np.random.default_rng(3))
    for _ in range(5):  # into the second epoch
        next(it)
    state = json.loads(json.dumps(it.state_dict()))  # survives JSON (checkpoint metadata)
    want = [next(it)[0] for _ in range(6)]
    fresh = BatchIterator((x,), 3, np.random.default_rng(99))
    fresh.load_state_dict(state)
    for w in want:
        np.testing.assert_array_equal(next(fresh)[0], w)


def test_batch_iterator_rejects_bad_input():
    with pytest.raises(ValueError, match="different lengths"):
        BatchIterator((np.zeros(3), np.zeros(4)), 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="batch_size"):
        BatchIterator((np.zeros(3),), 0, np.random.default_rng(0))


# ---------------------------------------------------------------- training

def make_regression(seed=0, dropout=0.0):
    model = nn.Sequential(nn.Linear(3, 8, generator=seed), nn.Tanh(),
                          nn.Dropout(dropout, generator=seed + 1), nn.Linear(8, 1,
                                                                             generator=seed + 2))
    opt = Adam(model.parameters(), lr=0.02)
    return model, opt


def mse_loss_fn(model, noise=0.0):
    def loss_fn(batch, rng):
        xb, yb = batch
        if noise:  # uses the trainer's noise generator, so resume must restore it
            xb = (xb + rng.normal(0.0, noise, xb.shape)).astype(np.float32)
        pred = model(tt.tensor(xb)).reshape(-1)
        return nn.functional.mse_loss(pred, yb)
    return loss_fn


def test_trainer_lowers_the_loss_and_writes_metrics(tmp_path):
    x, y = regression_data()
    model, opt = make_regression()
    before = float(nn.functional.mse_loss(model(tt.tensor(x)).reshape(-1), y).item())
    evals = []

    def eval_fn():
        assert not model.training and not tt.is_grad_enabled()
        err = float(nn.functional.mse_loss(model(tt.tensor(x)).reshape(-1), y).item())
        evals.append(err)
        return {"val_mse": err}

    path = tmp_path / "m" / "metrics.jsonl"
    trainer = Trainer(model, opt, (x, y), loss_fn=mse_loss_fn(model), steps=60, batch_size=8,
                      seed=0, eval_fn=eval_fn, eval_every=20, log_every=10,
                      metrics=MetricsLogger(path, {"run": "t"}), progress=False)
    result = trainer.fit()
    assert result.step == 60 and trainer.step == 60
    assert model.training  # back in training mode after the evaluations
    assert evals[-1] < before / 10
    assert result.loss < before / 10
    assert [e["step"] for e in result.evals] == [20, 40, 60]
    assert result.items == 60 * 8
    recs = read_metrics(path)
    train = [r for r in recs if r["event"] == "train"]
    assert [r["step"] for r in train] == [10, 20, 30, 40, 50, 60]
    assert all(r["run"] == "t" and r["lr"] == 0.02 and r["items_per_s"] > 0 for r in train)
    assert train[-1]["loss"] < train[0]["loss"]
    val = [r for r in recs if r["event"] == "eval"]
    assert [r["step"] for r in val] == [20, 40, 60]
    assert val[-1]["val_mse"] == pytest.approx(evals[-1])


def test_trainer_with_a_sample_function_and_a_step_function():
    x, y = regression_data()
    model, opt = make_regression()
    seen = []

    def sample(rng, batch_size):
        idx = rng.integers(0, len(x), batch_size)
        seen.append(idx)
        return x[idx], y[idx]

    loss_fn = mse_loss_fn(model)

    def step_fn(batch, rng):
        loss = loss_fn(batch, rng)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.item(), "twice": 2 * loss.item()}

    log = MetricsLogger(keep=True)
    Trainer(model, opt, sample, step_fn=step_fn, steps=30, batch_size=5, seed=1, metrics=log,
            log_every=30, progress=False).fit()
    assert len(seen) == 30 and all(len(i) == 5 for i in seen)
    (rec,) = log.records
    assert rec["twice"] == pytest.approx(2 * rec["loss"])
    with pytest.raises(ValueError, match="exactly one"):
        Trainer(model, opt, (x, y), steps=1)
    with pytest.raises(ValueError, match="batch_size"):
        Trainer(model, opt, (x, y), loss_fn=loss_fn, steps=1, batch_size=0)


def test_a_nan_loss_stops_training():
    x, y = regression_data()
    model, opt = make_regression()
    trainer = Trainer(model, opt, (x, y), loss_fn=lambda b, r: tt.tensor(float("nan")) *
                      model(tt.tensor(b[0])).sum(), steps=5, progress=False)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(FloatingPointError, match="step 1"):
        trainer.fit()
    for k, v in model.state_dict().items():  # stopped before the update
        np.testing.assert_array_equal(v, before[k])


# ---------------------------------------------------------------- checkpoints and resume

def _run(tmp_path, steps, until=None, resume=False, init_seed=0, ckpt_name="ck.safetensors",
         metrics=None):
    x, y = regression_data(n=22)
    model, _ = make_regression(seed=init_seed, dropout=0.2)
    opt = SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = StepLR(opt, step_size=7, gamma=0.5)
    evals = []
    trainer = Trainer(model, opt, (x, y), loss_fn=mse_loss_fn(model, noise=0.1), steps=steps,
                      batch_size=5, seed=11, scheduler=sched, eval_fn=lambda: {"n": len(evals)},
                      eval_every=6, checkpoint_path=tmp_path / ckpt_name, checkpoint_every=4,
                      metrics=metrics, progress=False)
    result = trainer.fit(resume=resume, until=until)
    return model, opt, trainer, result


@pytest.mark.parametrize("stop", [4, 9])  # on a checkpoint step, and between two
def test_resume_equals_an_uninterrupted_run(tmp_path, stop):
    full, full_opt, full_tr, _ = _run(tmp_path, 20, ckpt_name="full.safetensors")
    # interrupted at `stop` (mid-epoch: 22 items in batches of 5), then resumed from disk
    # into objects made with other weights
    _, _, _, first = _run(tmp_path, 20, until=stop)
    assert first.step == stop
    model, opt, trainer, result = _run(tmp_path, 20, resume=True, init_seed=5)
    assert result.resumed_from == stop and result.step == 20
    for (name, a), b in zip(full.state_dict().items(), model.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert opt.param_groups[0]["lr"] == full_opt.param_groups[0]["lr"]
    assert trainer.rng.bit_generator.state == full_tr.rng.bit_generator.state
    assert trainer.data_rng.bit_generator.state == full_tr.data_rng.bit_generator.state
    assert [e["step"] for e in result.evals] == [6, 12, 18, 20]


def test_without_resume_a_run_starts_over(tmp_path):
    _run(tmp_path, 8)
    _, _, _, again = _run(tmp_path, 8)  # the checkpoint exists, but resume=False
    assert again.resumed_from == 0 and again.step == 8
    with pytest.raises(FileNotFoundError):
        _run(tmp_path, 8, resume=tmp_path / "missing.safetensors")


def _flip_bit(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("offset", [-1, -37, -200])  # bytes into the tensors, from the end
def test_a_corrupted_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, offset):
    full, _, full_tr, _ = _run(tmp_path, 20, ckpt_name="full.safetensors")
    _run(tmp_path, 20, until=9)  # checkpoints at steps 4, 8 and 9: latest 9, previous 8
    latest, previous = tmp_path / "ck.safetensors", tmp_path / "ck.prev.safetensors"
    assert previous.exists()
    _flip_bit(latest, offset)
    with pytest.raises(CheckpointError, match="corrupted: the data does not match the checksum"):
        load_checkpoint(latest)
    with pytest.warns(RuntimeWarning, match=r"the latest checkpoint .*ck\.safetensors is "
                      r"unreadable \(.*corrupted.*\); resumed from the previous one, "
                      r".*ck\.prev\.safetensors, at step 8"):
        model, _, trainer, result = _run(tmp_path, 20, resume=True, init_seed=5)
    assert result.resumed_from == 8 and result.step == 20
    for (name, a), b in zip(full.state_dict().items(), model.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert trainer.rng.bit_generator.state == full_tr.rng.bit_generator.state


def test_a_missing_latest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    """A kill between the rename of the latest checkpoint to .prev and the new write."""
    full, _, _, _ = _run(tmp_path, 12, ckpt_name="full.safetensors")
    _run(tmp_path, 12, until=9)
    (tmp_path / "ck.safetensors").unlink()
    with pytest.warns(RuntimeWarning, match="is missing; resumed from the previous one"):
        model, _, _, result = _run(tmp_path, 12, resume=True, init_seed=5)
    assert result.resumed_from == 8 and result.step == 12
    for (name, a), b in zip(full.state_dict().items(), model.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_a_corrupted_checkpoint_without_a_previous_one_is_an_error(tmp_path):
    _run(tmp_path, 12, until=3)  # one checkpoint only
    _flip_bit(tmp_path / "ck.safetensors", -5)
    with pytest.raises(CheckpointError, match="corrupted"):
        _run(tmp_path, 12, resume=True)


# ---------------------------------------------------------------- progress

class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_mode_follows_the_terminal_and_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    assert progress_mode(FakeTTY()) == "bar"
    assert progress_mode(io.StringIO()) == "plain"
    monkeypatch.setenv("CI", "true")
    assert progress_mode(FakeTTY()) == "plain"


def test_progress_bar_redraws_one_line_and_plain_mode_stays_quiet():
    tty = FakeTTY()
    bar = Progress(50, "fit", mode="bar", stream=tty)
    bar._last_draw = -1e9  # force the first redraw
    bar.update(10, items=320, loss=0.5)
    bar.close()
    text = tty.getvalue()
    assert text.startswith("\rfit: [") and "10/50" in text and "loss 0.5" in text
    assert "items/s" in text and "left" in text and text.endswith("\n")
    log = io.StringIO()
    plain = Progress(1000, "fit", mode="plain", stream=log, interval=3600)
    for _ in range(1000):
        plain.update(1, items=4, loss=0.25)
    assert log.getvalue() == ""  # nothing until the interval passes...
    plain.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 1 and "1000/1000" in lines[0] and "\r" not in lines[0]  # ...or the end
    off = io.StringIO()
    quiet = Progress(5, mode="off", stream=off)
    quiet.update(5)
    quiet.close()
    assert off.getvalue() == ""
