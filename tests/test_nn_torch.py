"""PyTorch as an oracle: identical weights give the same outputs and gradients.

Skipped cleanly when PyTorch is not installed (.ci/run installs a CPU build). All in
float64, so the comparison is at rounding level (rtol 1e-10): any formula difference
(scaling, masking, layer-norm variance, GELU form, head layout) would show up as O(1e-2).
"""

from __future__ import annotations

import numpy as np
import pytest

import tinytape as tt
from tinytape import nn
from tinytape.models import GPT, GPTConfig

torch = pytest.importorskip("torch")
F = torch.nn.functional
RTOL, ATOL = 1e-10, 1e-10


def T(a):
    return torch.tensor(np.asarray(a), dtype=torch.float64)


def close(ours, theirs, what=""):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else theirs
    np.testing.assert_allclose(np.asarray(ours), theirs, rtol=RTOL, atol=ATOL, err_msg=what)


def _matches_torch(ours, ref, x, g, names=("weight", "bias")):
    """Copy our parameters `names` into the torch module, then compare the outputs and the
    gradients of the input and of those parameters for the output gradient g."""
    with torch.no_grad():
        for name in names:
            getattr(ref, name).copy_(T(getattr(ours, name).numpy()))
    xt, xr = tt.tensor(x, requires_grad=True), T(x).requires_grad_()
    y, yr = ours(xt), ref(xr)
    close(y.numpy(), yr)
    y.backward(tt.tensor(g))
    yr.backward(T(g))
    close(xt.grad.numpy(), xr.grad)
    for name in names:
        close(getattr(ours, name).grad.numpy(), getattr(ref, name).grad)


def test_linear_matches_torch():
    rng = np.random.default_rng(0)
    _matches_torch(nn.Linear(5, 3, generator=0).double(), torch.nn.Linear(5, 3).double(),
                   rng.standard_normal((2, 4, 5)), rng.standard_normal((2, 4, 3)))


def test_layer_norm_matches_torch():
    rng = np.random.default_rng(1)
    ln = nn.LayerNorm(7).double()
    with tt.no_grad():
        nn.init.normal_(ln.weight, 1, 0.5, generator=0)
        nn.init.normal_(ln.bias, 0, 0.5, generator=1)
    _matches_torch(ln, torch.nn.LayerNorm(7).double(),
                   rng.standard_normal((3, 5, 7)) * 3 + 1, rng.standard_normal((3, 5, 7)))


def _torch_mha(ours: nn.MultiHeadAttention):
    d, h = ours.d_model, ours.n_heads
    ref = torch.nn.MultiheadAttention(d, h, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        ref.in_proj_weight.copy_(T(ours.qkv.weight.numpy()))
        ref.in_proj_bias.copy_(T(ours.qkv.bias.numpy()))
        ref.out_proj.weight.copy_(T(ours.proj.weight.numpy()))
        ref.out_proj.bias.copy_(T(ours.proj.bias.numpy()))
    return ref


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])  # without padding: the fused op
def test_multi_head_attention_matches_torch(causal, padded):
    rng = np.random.default_rng(2)
    mha = nn.MultiHeadAttention(12, 3, generator=0).double()
    ref = _torch_mha(mha)
    b, t = 2, 5
    x = rng.standard_normal((b, t, 12))
    pad = np.ones((b, t), bool)
    pad[1, 3:] = False
    g = rng.standard_normal((b, t, 12))
    xt, xr = tt.tensor(x, requires_grad=True), T(x).requires_grad_()
    y = mha(xt, is_causal=causal, padding_mask=pad if padded else None)
    # torch: bool masks are True where attention is NOT allowed
    mask = torch.triu(torch.ones(t, t, dtype=torch.bool), 1) if causal else None
    yr, _ = ref(xr, xr, xr, attn_mask=mask,
                key_padding_mask=torch.tensor(~pad) if padded else None, need_weights=False)
    close(y.numpy(), yr, "output")
    y.backward(tt.tensor(g))
    yr.backward(T(g))
    close(xt.grad.numpy(), xr.grad, "dx")
    close(mha.qkv.weight.grad.numpy(), ref.in_proj_weight.grad, "d in_proj")
    close(mha.proj.weight.grad.numpy(), ref.out_proj.weight.grad, "d out_proj")


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_transformer_block_matches_torch(norm):
    rng = np.random.default_rng(3)
    d, h, ff = 8, 2, 24
    block = nn.TransformerBlock(d, h, d_ff=ff, norm=norm, generator=0).double()
    ref = torch.nn.TransformerEncoderLayer(
        d, h, dim_feedforward=ff, dropout=0.0, batch_first=True, norm_first=(norm == "pre"),
        activation=lambda v: F.gelu(v, approximate="tanh"), dtype=torch.float64)
    ref.self_attn = _torch_mha(block.attn)
    pairs = [(ref.norm1, block.ln1), (ref.norm2, block.ln2), (ref.linear1, block.ffn[0]),
             (ref.linear2, block.ffn[2])]
    with torch.no_grad():
        for theirs, ours in pairs:
            theirs.weight.copy_(T(ours.weight.numpy()))
            theirs.bias.copy_(T(ours.bias.numpy()))
    x = rng.standard_normal((2, 4, d))
    g = rng.standard_normal((2, 4, d))
    xt, xr = tt.tensor(x, requires_grad=True), T(x).requires_grad_()
    causal = torch.triu(torch.ones(4, 4, dtype=torch.bool), 1)
    y = block(xt, is_causal=True)
    yr = ref(xr, src_mask=causal)
    close(y.numpy(), yr, "block output")
    y.backward(tt.tensor(g))
    yr.backward(T(g))
    close(xt.grad.numpy(), xr.grad, "dx")
    close(block.ffn[0].weight.grad.numpy(), ref.linear1.weight.grad, "d linear1")
    close(block.ln1.weight.grad.numpy(), ref.norm1.weight.grad, "d norm1")


def _torch_gpt_loss(model: GPT, idx: np.ndarray, targets: np.ndarray):
    """The GPT forward written directly in torch ops from our weights (learned positions,
    pre-LN, tied head): an independent implementation to compare against."""
    c = model.config
    w = {name: T(p.numpy()).requires_grad_() for name, p in model.named_parameters()}
    b, t = idx.shape
    x = w["wte.weight"][torch.tensor(idx)] + w["wpe.weight"][:t]
    mask = torch.triu(torch.ones(t, t, dtype=torch.bool), 1)
    hd = c.d_model // c.n_heads
    for i in range(c.n_layers):
        p = f"blocks.{i}."
        a = F.layer_norm(x, (c.d_model,), w[p + "ln1.weight"], w[p + "ln1.bias"])
        qkv = a @ w[p + "attn.qkv.weight"].T + w[p + "attn.qkv.bias"]
        q, k, v = qkv.view(b, t, 3, c.n_heads, hd).permute(2, 0, 3, 1, 4)
        s = (q @ k.transpose(-1, -2)) / hd**0.5
        att = torch.softmax(s.masked_fill(mask, float("-inf")), -1) @ v
        att = att.transpose(1, 2).reshape(b, t, c.d_model)
        x = x + att @ w[p + "attn.proj.weight"].T + w[p + "attn.proj.bias"]
        m = F.layer_norm(x, (c.d_model,), w[p + "ln2.weight"], w[p + "ln2.bias"])
        m = F.gelu(m @ w[p + "ffn.0.weight"].T + w[p + "ffn.0.bias"], approximate="tanh")
        x = x + m @ w[p + "ffn.2.weight"].T + w[p + "ffn.2.bias"]
    x = F.layer_norm(x, (c.d_model,), w["ln_f.weight"], w["ln_f.bias"])
    logits = x @ w["wte.weight"].T
    loss = F.cross_entropy(logits.reshape(-1, c.vocab_size), torch.tensor(targets).reshape(-1),
                           ignore_index=-100)
    return logits, loss, w


def test_gpt_logits_loss_and_gradients_match_torch():
    cfg = GPTConfig(vocab_size=17, context_length=8, d_model=12, n_layers=2, n_heads=3)
    model = GPT(cfg, generator=0).double()
    rng = np.random.default_rng(4)
    idx = rng.integers(0, 17, (3, 8))
    targets = rng.integers(0, 17, (3, 8))
    targets[0, :2] = -100
    logits, loss = model(idx, targets)
    ref_logits, ref_loss, w = _torch_gpt_loss(model, idx, targets)
    close(logits.numpy(), ref_logits, "logits")
    close(loss.item(), ref_loss.item(), "loss")
    loss.backward()
    ref_loss.backward()
    for name, p in model.named_parameters():
        close(p.grad.numpy(), w[name].grad, f"grad of {name}")
