"""Training end to end: the LM memorizes a short text, and a run resumed from a checkpoint
continues bit for bit like an uninterrupted one."""

from __future__ import annotations

import numpy as np
import pytest

import tinytape as tt
from tinytape.checkpoint import load_checkpoint, save_checkpoint
from tinytape.models import GPT, GPTConfig
from tinytape.optim import AdamW, WarmupCosineLR, clip_grad_norm_, param_groups_for_weight_decay
from tinytape.serialization import CheckpointError

TEXT = "tinytape records every op on a tape and replays it backward."


def char_data():
    chars = sorted(set(TEXT))
    ids = np.array([chars.index(c) for c in TEXT])
    return len(chars), ids[None, :-1], ids[None, 1:]


def test_lm_memorizes_a_short_text():
    vocab, x, y = char_data()
    model = GPT(GPTConfig(vocab_size=vocab, context_length=x.shape[1], d_model=32, n_layers=2,
                          n_heads=4), generator=0)
    opt = AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    for _ in range(200):
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.05:
            break
    assert loss.item() < 0.05
    # and it can say it back, greedily, from the first character
    out = model.generate(x[:, :1], x.shape[1], temperature=0.0)
    np.testing.assert_array_equal(out[0, 1:], y[0])


def _setup(dropout):
    vocab, _, _ = char_data()
    model = GPT(GPTConfig(vocab_size=vocab, context_length=16, d_model=16, n_layers=2,
                          n_heads=2, dropout=dropout), generator=0)
    opt = AdamW(param_groups_for_weight_decay(model.named_parameters(), 0.1), lr=3e-3)
    sched = WarmupCosineLR(opt, warmup_steps=3, total_steps=20)
    return model, opt, sched


def _train(model, opt, sched, data_rng, steps):
    _, x, y = char_data()
    for _ in range(steps):
        start = data_rng.integers(0, x.shape[1] - 16, 4)
        xb = np.stack([x[0, s:s + 16] for s in start])
        yb = np.stack([y[0, s:s + 16] for s in start])
        _, loss = model(xb, yb)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_resume_from_checkpoint_is_bit_for_bit(tmp_path, dropout):
    tt.manual_seed(123)
    model, opt, sched = _setup(dropout)
    data_rng = np.random.default_rng(7)
    _train(model, opt, sched, data_rng, 5)
    path = tmp_path / "ckpt.safetensors"
    default_gen = tt.creation._default_generator
    save_checkpoint(path, model, opt, sched, generators={"data": data_rng, "default": default_gen},
                    extra={"step": 5})
    _train(model, opt, sched, data_rng, 6)
    want = model.state_dict()

    tt.manual_seed(999)  # a different state, to be overwritten by the checkpoint
    model2, opt2, sched2 = _setup(dropout)
    data_rng2 = np.random.default_rng(0)
    extra = load_checkpoint(path, model2, opt2, sched2,
                            generators={"data": data_rng2,
                                        "default": tt.creation._default_generator})
    assert extra == {"step": 5}
    _train(model2, opt2, sched2, data_rng2, 6)
    got = model2.state_dict()
    assert list(got) == list(want)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_loading_a_damaged_checkpoint_is_a_clear_error(tmp_path):
    model, opt, sched = _setup(0.0)
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model, opt, sched)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="ckpt.safetensors"):
        load_checkpoint(path, model)
    other = tmp_path / "plain.safetensors"
    from tinytape.serialization import save_file

    save_file({"a": np.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not a tinytape checkpoint"):
        load_checkpoint(other, model)
