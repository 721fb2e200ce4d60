"""tinytape.nn: the Module API, and a float64 gradcheck of every layer on its own and of
whole blocks (the lecture's advice: check each module separately)."""

from __future__ import annotations

import numpy as np
import pytest

import tinytape as tt
from tinytape import nn
from tinytape.models import GPT, GPTConfig, SequenceClassifier
from tinytape.nn import functional as NF


def x64(*shape, seed=0, scale=1.0):
    return tt.tensor(np.random.default_rng(seed).standard_normal(shape) * scale,
                     requires_grad=True)


def params_and(module, *inputs):
    """Inputs followed by the module's parameters, for gradcheck over all of them."""
    return list(inputs) + list(module.parameters())


def check_module(module, *inputs, **kwargs):
    module.double()
    n = len(inputs)

    def fn(*args):
        return module(*args[:n], **kwargs)

    assert tt.gradcheck(fn, params_and(module, *inputs), atol=1e-6, rtol=1e-4)


# ------------------------------------------------------------------ layer gradchecks
def test_linear_gradcheck():
    check_module(nn.Linear(4, 3, generator=0), x64(2, 4))
    check_module(nn.Linear(4, 3, bias=False, generator=0), x64(2, 5, 4))


def test_embedding_gradcheck():
    emb = nn.Embedding(7, 3, generator=0).double()
    ids = np.array([[0, 6, 6], [2, 2, 1]])
    assert tt.gradcheck(lambda w: tt.embedding(w, ids), [emb.weight])


def test_layer_norm_gradcheck():
    ln = nn.LayerNorm(5)
    ln.double()
    with tt.no_grad():
        nn.init.normal_(ln.weight, 1.0, 0.3, generator=1)
        nn.init.normal_(ln.bias, 0.0, 0.3, generator=2)
    check_module(ln, x64(3, 5))


@pytest.mark.parametrize("act", [nn.ReLU(), nn.GELU(), nn.Sigmoid(), nn.Tanh(), nn.Softmax()])
def test_activation_gradcheck(act):
    x = tt.tensor(np.random.default_rng(0).uniform(0.1, 1, (3, 4))
                  * np.where(np.arange(12).reshape(3, 4) % 2, 1, -1), requires_grad=True)
    assert tt.gradcheck(act, [x])


def test_dropout_gradcheck_and_scaling():
    x = x64(50, 40)
    assert tt.gradcheck(lambda t: NF.dropout(t, 0.3, True, generator=7), [x])
    y = NF.dropout(tt.ones(100, 100), 0.25, True, generator=1).numpy()
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.02
    drop = nn.Dropout(0.5, generator=3)
    a, b = drop(tt.ones(10, 10)).numpy(), drop(tt.ones(10, 10)).numpy()
    assert not np.array_equal(a, b), "successive calls must draw new masks"
    drop.eval()
    np.testing.assert_array_equal(drop(tt.ones(3, 3)).numpy(), 1.0)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_losses_gradcheck(smoothing):
    logits = x64(4, 5, seed=1)
    targets = np.array([0, 4, -100, 2])
    loss = nn.CrossEntropyLoss(ignore_index=-100, label_smoothing=smoothing)
    assert tt.gradcheck(lambda z: loss(z, targets), [logits])
    y = tt.tensor(np.random.default_rng(2).random((4, 5)))
    assert tt.gradcheck(lambda z: nn.MSELoss()(z, y), [logits])
    assert tt.gradcheck(lambda z: nn.BCEWithLogitsLoss()(z, y), [logits])


def test_label_smoothing_value_by_hand():
    logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    t = np.array([0, 2])
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    eps = 0.2
    want = np.mean([(1 - eps) * -logp[i, t[i]] - eps * logp[i].mean() for i in range(2)])
    got = nn.CrossEntropyLoss(label_smoothing=eps)(tt.tensor(logits), t).item()
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_bce_is_stable_for_large_logits():
    z = tt.tensor([[-1e4, 1e4]], dtype="float64")
    y = tt.tensor([[0.0, 1.0]], dtype="float64")
    assert nn.BCEWithLogitsLoss()(z, y).item() == 0.0
    np.testing.assert_allclose(nn.BCEWithLogitsLoss()(z, 1 - y).item(), 1e4)


@pytest.mark.parametrize("relative", [None, "rotary", "alibi", "relative"])
def test_attention_gradcheck(relative):
    mha = nn.MultiHeadAttention(8, 2, relative=relative, max_len=16, generator=0)
    pad = np.array([[True] * 4, [True, True, True, False]])
    check_module(mha, x64(2, 4, 8), is_causal=True, padding_mask=pad)


@pytest.mark.parametrize("causal", [True, False])
def test_fused_attention_gradcheck(causal):
    """No relative positions, padding mask or cache: the heads run as one fused op."""
    check_module(nn.MultiHeadAttention(8, 2, generator=0), x64(2, 4, 8), is_causal=causal)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_fused_attention_equals_separate_ops(causal, dropout):
    """The fused path against the tensor-op path (forced by an all-True padding mask) on
    identical weights and dropout draws: outputs and every gradient, float64."""
    x = x64(3, 5, 12)
    results = []
    for pad in (None, np.ones((3, 5), bool)):
        mha = nn.MultiHeadAttention(12, 3, dropout=dropout, generator=0).double()
        xi = tt.tensor(x, requires_grad=True)
        y = mha(xi, is_causal=causal, padding_mask=pad)
        (y * tt.tensor(np.linspace(-1, 1, y.numel()).reshape(y.shape))).sum().backward()
        results.append([y.numpy(), xi.grad.numpy()] + [p.grad.numpy() for p in mha.parameters()])
    for fused, separate in zip(*results):
        np.testing.assert_allclose(fused, separate, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_block_gradcheck(norm):
    block = nn.TransformerBlock(8, 2, d_ff=12, norm=norm, generator=0)
    check_module(block, x64(2, 3, 8), is_causal=True)


def test_gpt_loss_gradcheck_fast_mode():
    model = GPT(GPTConfig(vocab_size=11, context_length=8, d_model=8, n_layers=2, n_heads=2),
                generator=0).double()
    idx = np.random.default_rng(0).integers(0, 11, (2, 6))
    assert tt.gradcheck(lambda *ps: model(idx, idx)[1], list(model.parameters()),
                        fast_mode=True, atol=1e-6, rtol=1e-4)


# ------------------------------------------------------------------ attention semantics
def test_causal_attention_ignores_the_future():
    mha = nn.MultiHeadAttention(8, 2, generator=0)
    x = tt.randn(1, 5, 8, generator=1)
    y1 = mha(x, is_causal=True).numpy()
    x2 = x.numpy().copy()
    x2[0, 3:] += 10.0  # change the future
    y2 = mha(tt.tensor(x2), is_causal=True).numpy()
    np.testing.assert_allclose(y1[0, :3], y2[0, :3], rtol=1e-5, atol=1e-6)
    assert not np.allclose(y1[0, 3:], y2[0, 3:])


def test_padding_mask_ignores_padded_keys():
    mha = nn.MultiHeadAttention(8, 2, generator=0)
    x = tt.randn(1, 4, 8, generator=1).numpy()
    pad = np.array([[True, True, True, False]])
    y1 = mha(tt.tensor(x), padding_mask=pad).numpy()
    x[0, 3] = 99.0
    y2 = mha(tt.tensor(x), padding_mask=pad).numpy()
    np.testing.assert_allclose(y1[0, :3], y2[0, :3], rtol=1e-5, atol=1e-6)


def test_fully_masked_row_is_finite():
    q = tt.randn(1, 2, 4, generator=0)
    out = NF.scaled_dot_product_attention(q, q, q, attn_mask=np.zeros((2, 2), bool))
    assert np.isfinite(out.numpy()).all()


@pytest.mark.parametrize("positional", ["learned", "sinusoidal", "rotary", "alibi",
                                        "relative", "none"])
def test_kv_cache_matches_full_forward(positional):
    cfg = GPTConfig(vocab_size=23, context_length=16, d_model=16, n_layers=2, n_heads=2,
                    positional=positional)
    model = GPT(cfg, generator=0).eval()
    idx = np.random.default_rng(1).integers(0, 23, (2, 12))
    full = model(idx)[0].numpy()
    caches = model.new_caches()
    parts = [model(idx[:, a:b], caches=caches)[0].numpy()
             for a, b in [(0, 5), (5, 6), (6, 12)]]
    np.testing.assert_allclose(np.concatenate(parts, axis=1), full, rtol=1e-5, atol=1e-5)


def test_generate_with_and_without_cache_agree():
    model = GPT(GPTConfig(vocab_size=13, context_length=10, d_model=16, n_heads=2), generator=0)
    start = np.array([[1, 2, 3]])
    a = model.generate(start, 12, temperature=0.0, use_cache=True)
    b = model.generate(start, 12, temperature=0.0, use_cache=False)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (1, 15)
    s1 = model.generate(start, 5, temperature=1.0, top_k=3, generator=4)
    s2 = model.generate(start, 5, temperature=1.0, top_k=3, generator=4)
    np.testing.assert_array_equal(s1, s2)


def test_top_k_only_samples_the_k_best():
    from tinytape.models.gpt import sample_next

    logits = np.array([[0.0, 5.0, 1.0, 4.0]] * 500)
    picks = sample_next(logits, 1.0, 2, np.random.default_rng(0))
    assert set(picks) == {1, 3}


# ------------------------------------------------------------------ Module API
def test_parameters_tying_state_dict_and_freezing():
    model = GPT(GPTConfig(vocab_size=10, context_length=8, d_model=8, n_heads=2), generator=0)
    names = [n for n, _ in model.named_parameters()]
    assert len(names) == len(set(names)) and "wte.weight" in names
    assert model.lm_head is None  # tied: logits use wte.weight
    sd = model.state_dict()
    assert "wte.weight" in sd and not any("pe" == k.split(".")[-1] for k in sd)
    other = GPT(GPTConfig(vocab_size=10, context_length=8, d_model=8, n_heads=2), generator=1)
    other.load_state_dict(sd)
    idx = np.array([[1, 2, 3]])
    np.testing.assert_array_equal(model(idx)[0].numpy(), other(idx)[0].numpy())

    bad = dict(sd)
    bad.pop("ln_f.weight")
    bad["extra.weight"] = np.zeros(3)
    with pytest.raises(KeyError, match=r"missing keys: \['ln_f.weight'\].*unexpected keys: "
                                       r"\['extra.weight'\]"):
        other.load_state_dict(bad)
    missing, unexpected = other.load_state_dict(bad, strict=False)
    assert missing == ["ln_f.weight"] and unexpected == ["extra.weight"]
    wrong = dict(sd)
    wrong["wte.weight"] = np.zeros((3, 3))
    with pytest.raises(ValueError, match=r"wte.weight has shape \(3, 3\) in the state but "
                                         r"\(10, 8\)"):
        other.load_state_dict(wrong)

    model.blocks[0].requires_grad_(False)
    frozen = model.num_parameters() - model.num_parameters(trainable_only=True)
    assert frozen == sum(p.numel() for p in model.blocks[0].parameters())
    model(idx, idx)[1].backward()
    assert all(p.grad is None for p in model.blocks[0].parameters())
    assert model.wte.weight.grad is not None
    model.zero_grad()
    assert model.wte.weight.grad is None


def test_module_repr_and_registration():
    seq = nn.Sequential(nn.Linear(3, 4, generator=0), nn.ReLU(), nn.Linear(4, 2, generator=0))
    text = repr(seq)
    assert text.startswith("Sequential(\n  (0): Linear(3, 4, bias=True)")
    assert seq.num_parameters() == 3 * 4 + 4 + 4 * 2 + 2
    assert len(list(seq.parameters())) == 4
    seq.eval()
    assert not any(m.training for m in seq.modules())

    class Bare(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.zeros(2))

    with pytest.raises(AttributeError, match="super"):
        Bare()


def test_classifier_pooling_respects_padding():
    clf = SequenceClassifier.encoder(
        GPTConfig(vocab_size=12, context_length=8, d_model=8, n_heads=2), 3, generator=0)
    ids = np.array([[1, 2, 3, 0, 0]])
    mask = np.array([[True, True, True, False, False]])
    a = clf(ids, mask).numpy()
    ids2 = ids.copy()
    ids2[0, 3:] = 7
    np.testing.assert_allclose(clf(ids2, mask).numpy(), a, rtol=1e-5, atol=1e-6)
    last = SequenceClassifier(GPT(GPTConfig(vocab_size=12, context_length=8, d_model=8,
                                            n_heads=2), generator=0), 3, pooling="last",
                              generator=0)
    assert last(ids, mask).shape == (1, 3)
    with pytest.raises(ValueError, match="pooling must be one of"):
        SequenceClassifier(last.trunk, 3, pooling="max")


@pytest.mark.parametrize("pooling", ["mean", "last", "ffn"])
def test_classifier_poolings_by_hand_and_gradcheck(pooling):
    """Each pooling against the same features computed by hand from the trunk's layers, in
    float64, then a gradcheck of the whole classifier (padding included)."""
    cfg = GPTConfig(vocab_size=12, context_length=8, d_model=8, n_layers=2, n_heads=2, d_ff=12)
    clf = SequenceClassifier(GPT(cfg, generator=0), 3, pooling=pooling, generator=1).double()
    ids = np.array([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8]])
    mask = np.array([[True, True, True, False, False], [True] * 5])
    trunk, n = clf.trunk, mask.sum(axis=1)
    x = trunk.wpe(trunk.wte(ids), 0).numpy()
    hidden = []
    for block in trunk.blocks:
        a = x + block.attn(block.ln1(tt.tensor(x)), True, mask).numpy()
        ffn = block.ffn
        hidden.append(ffn.activation(ffn[0](block.ln2(tt.tensor(a)))).numpy())
        x = a + ffn(block.ln2(tt.tensor(a))).numpy()
    final = trunk.ln_f(tt.tensor(x)).numpy()
    mean = lambda h: (h * mask[..., None]).sum(axis=1) / n[:, None]  # noqa: E731
    want = {"mean": mean(final), "last": final[np.arange(2), n - 1],
            "ffn": np.concatenate([mean(h) for h in hidden], axis=1)}[pooling]
    assert want.shape[1] == {"mean": 8, "last": 8, "ffn": 2 * 12}[pooling]
    clf.eval()
    logits = clf(ids, mask).numpy()
    np.testing.assert_allclose(logits, want @ clf.head.weight.numpy().T + clf.head.bias.numpy(),
                               rtol=1e-12, atol=1e-12)
    assert not trunk.blocks[0].ffn.activation._forward_hooks  # the ffn hooks were removed
    assert tt.gradcheck(lambda *ps: clf(ids, mask).sum(), list(clf.parameters()),
                        fast_mode=True, atol=1e-6, rtol=1e-4)


def test_forward_hooks_run_replace_and_remove():
    lin = nn.Linear(3, 2, generator=0).double()
    x = tt.tensor(np.ones((1, 3)))
    seen = []
    handle = lin.register_forward_hook(lambda m, args, out: seen.append((m, args[0], out)))
    y = lin(x)
    assert seen == [(lin, x, y)]
    with lin.register_forward_hook(lambda m, args, out: out * 2.0):
        np.testing.assert_allclose(lin(x).numpy(), 2 * y.numpy())
    np.testing.assert_allclose(lin(x).numpy(), y.numpy())  # the doubling hook is gone
    handle.remove()
    handle.remove()  # a second remove is harmless
    lin(x)
    assert len(seen) == 3
    assert nn.Linear(3, 2)._forward_hooks == {}  # other modules never saw the hooks


def test_bad_configs_and_inputs_raise():
    with pytest.raises(ValueError, match="not divisible"):
        GPTConfig(d_model=10, n_heads=3)
    with pytest.raises(ValueError, match="positional must be one of"):
        GPTConfig(positional="bogus")
    model = GPT(GPTConfig(vocab_size=5, context_length=4, d_model=8, n_heads=2), generator=0)
    with pytest.raises(ValueError, match="longer than the context length 4"):
        model(np.zeros((1, 5), np.int64))
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 5\)"):
        model(np.array([[0, 9]]))
    with pytest.raises(ValueError, match=r"Linear\(3, 2\): input of shape \(4, 5\)"):
        nn.Linear(3, 2)(tt.ones(4, 5))


def test_evaluating_turns_off_dropout_and_the_tape_and_restores_each_submodule():
    drop = nn.Dropout(0.5, generator=3)
    model = nn.Sequential(nn.Linear(4, 4, generator=0), drop)
    x = tt.tensor(np.ones((2, 4), np.float32))
    expected = model[0](x).numpy()  # dropout in eval mode is the identity
    drop.eval()  # a mixed state: the container trains, the dropout does not
    with nn.evaluating(model):
        assert not any(m.training for m in model.modules())
        y = model(x)
        np.testing.assert_array_equal(y.numpy(), expected)
        assert not y.requires_grad  # nothing recorded
    assert model.training and not drop.training  # each module's own mode back
    drop.train()
    with pytest.raises(RuntimeError, match="inside"):
        with nn.evaluating(model):
            raise RuntimeError("inside")
    assert all(m.training for m in model.modules())
    assert model(x).requires_grad
