"""Positional encodings against independent oracles: the papers' formulas written out
element by element (not the vectorized code under test), values derived by hand, and
PyTorch attention fed the encodings through its own code paths.

- sinusoidal (Vaswani et al. 2017, section 3.5): PE(pos, 2i) = sin(pos / 10000^(2i/d)),
  PE(pos, 2i+1) = cos(pos / 10000^(2i/d));
- rotary (Su et al., RoFormer, eq. 16): q_m . k_n = Re[sum_i q~_i conj(k~_i) e^{i(m-n) theta_i}]
  with theta_i = base^(-2i/d) and q~_i the complex number of feature pair i; tinytape
  pairs feature i with feature i + d/2 (the GPT-NeoX layout) rather than 2i with 2i+1;
- ALiBi (Press et al. 2022): slopes 2^(-8/n), 2^(-16/n), ... for n a power of two, and for
  other n the first 2^floor(log2 n) of those plus every other slope of twice that many;
  bias -slope * (i - j);
- relative position bias (T5, Raffel et al.): one learned scalar per head and key minus
  query distance j - i, clipped to +-max_distance.

Everything is float64 and compared at rounding level (rtol 1e-12), except through the
torch attention (rtol 1e-10: a softmax and two products of rounding apart).
"""

from __future__ import annotations

import cmath
import math

import numpy as np
import pytest

import tinytape as tt
from tinytape import nn
from tinytape.nn.positional import (
    ALiBi,
    RelativePositionBias,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    alibi_slopes,
)


# ------------------------------------------------------------------ sinusoidal
@pytest.mark.parametrize("d_model", [2, 8, 7, 1])
def test_sinusoidal_table_equals_its_formula(d_model):
    max_len = 50
    pe = SinusoidalPositionalEncoding(d_model, max_len, dtype=np.float64).pe.numpy()
    want = np.empty((max_len, d_model))
    for pos in range(max_len):
        for col in range(d_model):
            i = col // 2
            angle = pos / 10000.0 ** (2 * i / d_model)
            want[pos, col] = math.sin(angle) if col % 2 == 0 else math.cos(angle)
    np.testing.assert_allclose(pe, want, rtol=1e-12, atol=1e-12)


def test_sinusoidal_adds_the_rows_at_the_offset():
    enc = SinusoidalPositionalEncoding(4, 10, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    y = enc(tt.tensor(x), offset=5).numpy()
    pos = np.arange(5, 8)[:, None]
    freq = np.array([1.0, 1.0, 0.01, 0.01])  # 10000^(-2i/4) for pairs i = 0, 1
    table = np.where(np.arange(4) % 2 == 0, np.sin(pos * freq), np.cos(pos * freq))
    np.testing.assert_allclose(y, x + table, rtol=1e-12)
    with pytest.raises(ValueError, match="positions up to 11 requested, but max_len is 10"):
        enc(tt.tensor(x), offset=8)


# ------------------------------------------------------------------ rotary
def _rotated(rope, vectors, positions):
    """Rotate `vectors` (n, d), one per row, as if at `positions` (n,)."""
    out = []
    for vec, pos in zip(vectors, positions):
        out.append(rope(tt.tensor(vec[None, :]), offset=int(pos)).numpy()[0])
    return np.array(out)


def _roformer_score(q, k, m, n, base):
    """RoFormer's closed form for the score of query q at m and key k at n."""
    half = len(q) // 2
    total = 0j
    for i in range(half):
        theta = base ** (-2.0 * i / len(q))
        qc, kc = complex(q[i], q[i + half]), complex(k[i], k[i + half])
        total += qc * kc.conjugate() * cmath.exp(1j * (m - n) * theta)
    return total.real


@pytest.mark.parametrize("head_dim,base", [(8, 10000.0), (2, 10000.0), (16, 100.0)])
def test_rotary_scores_equal_the_roformer_closed_form(head_dim, base):
    rope = RotaryEmbedding(head_dim, 64, base=base, dtype=np.float64)
    rng = np.random.default_rng(1)
    q, k = rng.standard_normal(head_dim), rng.standard_normal(head_dim)
    for m, n in [(0, 0), (5, 2), (2, 5), (63, 0), (17, 40)]:
        rq, rk = _rotated(rope, [q, k], [m, n])
        assert rq @ rk == pytest.approx(_roformer_score(q, k, m, n, base), rel=1e-12,
                                        abs=1e-12)


def test_rotary_scores_depend_only_on_the_distance():
    rope = RotaryEmbedding(8, 64, dtype=np.float64)
    rng = np.random.default_rng(2)
    q, k = rng.standard_normal(8), rng.standard_normal(8)
    for distance in [-7, 0, 3, 20]:
        scores = []
        for m in range(max(0, distance), 40):
            rq, rk = _rotated(rope, [q, k], [m, m - distance])
            scores.append(rq @ rk)
        np.testing.assert_allclose(scores, scores[0], rtol=1e-12, atol=1e-12)
    # and it does depend on it: a rotation that were no rotation (a sign slip) would not
    rq, rk3 = _rotated(rope, [q, k], [3, 0])
    _, rk0 = _rotated(rope, [q, k], [0, 0])
    assert abs(rq @ rk3 - _rotated(rope, [q], [0])[0] @ rk0) > 1e-3


def test_rotary_is_a_rotation_by_position_times_frequency():
    """Pair i of position p turns by the angle p * base^(-2i/d): norms are kept, and the
    first pair turns by exactly p radians."""
    rope = RotaryEmbedding(4, 16, dtype=np.float64)
    x = np.random.default_rng(3).standard_normal((1, 7, 4))
    y = rope(tt.tensor(x)).numpy()
    pair = lambda a, i: a[..., i] + 1j * a[..., i + 2]  # noqa: E731
    for i in range(2):
        theta = 10000.0 ** (-2.0 * i / 4)
        np.testing.assert_allclose(pair(y, i), pair(x, i) * np.exp(1j * np.arange(7) * theta),
                                   rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="head_dim must be even, got 5"):
        RotaryEmbedding(5, 4)


# ------------------------------------------------------------------ ALiBi
def _press_slopes(n):
    """The slopes of Press et al.'s reference code (attention_with_linear_biases), as
    published: a recursion on the nearest power of two."""
    def power_of_2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start ** i for i in range(n)]

    if math.log2(n).is_integer():
        return power_of_2(n)
    closest = 2 ** math.floor(math.log2(n))
    return power_of_2(closest) + _press_slopes(2 * closest)[0::2][: n - closest]


@pytest.mark.parametrize("n_heads", range(1, 17))
def test_alibi_slopes_equal_the_papers(n_heads):
    np.testing.assert_allclose(alibi_slopes(n_heads), _press_slopes(n_heads), rtol=4e-15)


def test_alibi_slopes_by_hand():
    """The paper's examples (8 heads: 1/2 ... 1/256; 16 heads: from 1/sqrt(2)), and the
    interleaving for counts that are not powers of two, derived by hand."""
    np.testing.assert_allclose(alibi_slopes(8), [2.0 ** -k for k in range(1, 9)], rtol=4e-15)
    np.testing.assert_allclose(alibi_slopes(16), [2.0 ** (-k / 2) for k in range(1, 17)],
                               rtol=4e-15)
    np.testing.assert_allclose(alibi_slopes(1), [2.0 ** -8], rtol=4e-15)
    np.testing.assert_allclose(alibi_slopes(3), [2.0 ** -4, 2.0 ** -8, 2.0 ** -2], rtol=4e-15)
    np.testing.assert_allclose(alibi_slopes(6), [2.0 ** -k for k in (2, 4, 6, 8, 1, 3)],
                               rtol=4e-15)


def test_alibi_bias_is_minus_slope_times_distance():
    """-slope (i - j) for the keys the paper's causal model sees (j <= i), and the same
    penalty -slope |i - j| for later keys when attention is not causal."""
    alibi = ALiBi(3, dtype=np.float64)
    slopes = [2.0 ** -4, 2.0 ** -8, 2.0 ** -2]
    bias = alibi(2, 5, offset=3).numpy()  # queries at positions 3 and 4, keys 0..4
    assert bias.shape == (3, 2, 5)
    for h in range(3):
        for i in range(2):
            for j in range(5):
                want = -slopes[h] * (3 + i - j) if j <= 3 + i else -slopes[h] * (j - 3 - i)
                assert bias[h, i, j] == pytest.approx(want, rel=1e-15)


# ------------------------------------------------------------------ relative bias
def test_relative_bias_sign_and_clipping():
    """weight[h, r] = 100 h + (r - max_distance) makes the bias read back the clipped
    key-minus-query distance: the sign and the clipping are visible entry by entry."""
    d = 2
    rel = RelativePositionBias(2, d, dtype=np.float64)
    with tt.no_grad():
        rel.weight.data[...] = 100.0 * np.arange(2)[:, None] + np.arange(-d, d + 1)[None, :]
    bias = rel(3, 6, offset=2).numpy()  # queries at 2, 3, 4; keys 0..5
    for h in range(2):
        for i in range(3):
            for j in range(6):
                assert bias[h, i, j] == 100 * h + min(max(j - (2 + i), -d), d)
    assert bias[0, 0, 0] == -2 and bias[0, 0, 5] == 2 and bias[0, 2, 0] == -2  # clipped
    assert bias[0, 0, 3] == 1  # key one step after the query: +1


def test_relative_bias_gradient_sums_over_the_clipped_distances():
    rel = RelativePositionBias(1, 1, dtype=np.float64)
    rel(3, 3).sum().backward()
    # distances j - i over a 3 x 3 grid: -2, -1 (three times, clipped to -1), 0 (three
    # times), +1 and +2 (three times, clipped to +1)
    np.testing.assert_array_equal(rel.weight.grad.numpy(), [[3.0, 3.0, 3.0]])


# ------------------------------------------------------------------ torch as an oracle
def _torch_attention(mha, x, causal, rotate=None, bias=None):
    """Our MultiHeadAttention's weights, run through torch's scaled_dot_product_attention
    with the encoding applied by torch code: `rotate(q or k)` for rotary, `bias` (H, T, T)
    as a float attention mask for ALiBi and the relative bias."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    b, t, d = x.shape
    h = mha.n_heads
    qkv = F.linear(torch.tensor(x), torch.tensor(mha.qkv.weight.numpy()),
                   torch.tensor(mha.qkv.bias.numpy()))
    q, k, v = (p.reshape(b, t, h, d // h).transpose(1, 2) for p in qkv.split(d, dim=-1))
    if rotate is not None:
        q, k = rotate(q), rotate(k)
    mask = torch.zeros(h, t, t, dtype=torch.float64)
    if bias is not None:
        mask = mask + torch.tensor(bias)
    if causal:
        mask = mask.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), -torch.inf)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    y = y.transpose(1, 2).reshape(b, t, d)
    return F.linear(y, torch.tensor(mha.proj.weight.numpy()),
                    torch.tensor(mha.proj.bias.numpy())).numpy()


def _torch_rotary(base=10000.0):
    """Rotary in the RoFormer / LLaMA reference style: feature pairs as complex numbers
    times e^{i m theta} (pairs (i, i + d/2), as tinytape lays them out)."""
    import torch

    def rotate(x):
        t, hd = x.shape[-2], x.shape[-1]
        theta = base ** (-torch.arange(0, hd // 2, dtype=torch.float64) * 2 / hd)
        turn = torch.polar(torch.ones(t, hd // 2, dtype=torch.float64),
                           torch.arange(t, dtype=torch.float64)[:, None] * theta)
        z = torch.complex(x[..., : hd // 2], x[..., hd // 2:]) * turn
        return torch.cat([z.real, z.imag], dim=-1)

    return rotate


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("relative", ["rotary", "alibi", "relative"])
def test_attention_with_positions_matches_torch(relative, causal):
    pytest.importorskip("torch")
    mha = nn.MultiHeadAttention(12, 3, relative=relative, max_len=16, generator=0).double()
    if relative == "relative":
        with tt.no_grad():
            nn.init.normal_(mha.rel_bias.weight, 0.0, 1.0, generator=1)
    x = np.random.default_rng(4).standard_normal((2, 6, 12))
    ours = mha(tt.tensor(x), is_causal=causal).numpy()
    pos = np.arange(6)
    if relative == "rotary":
        theirs = _torch_attention(mha, x, causal, rotate=_torch_rotary())
    elif relative == "alibi":
        slopes = np.array(_press_slopes(3))
        bias = -slopes[:, None, None] * np.abs(pos[:, None] - pos[None, :])
        theirs = _torch_attention(mha, x, causal, bias=bias)
    else:
        table = mha.rel_bias.weight.numpy()
        dist = np.clip(pos[None, :] - pos[:, None], -mha.rel_bias.max_distance,
                       mha.rel_bias.max_distance)
        theirs = _torch_attention(mha, x, causal, bias=table[:, dist + mha.rel_bias.max_distance])
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("make", [lambda dtype: RotaryEmbedding(8, 64, dtype=dtype),
                                  lambda dtype: SinusoidalPositionalEncoding(6, 64, dtype=dtype),
                                  lambda dtype: ALiBi(12, dtype=dtype)],
                         ids=["rotary", "sinusoidal", "alibi"])
def test_tables_converted_to_float64_are_exact(make):
    """A module built in float32 and converted with .double() gets its tables rounded from
    the float64 values (as if built in float64), not widened from float32 ones (~1e-8 off,
    which a float64 model would carry into every score); .float() gives the float32
    tables back."""
    built64 = dict(make(np.float64).named_buffers())
    built32 = dict(make(np.float32).named_buffers())
    module = make(np.float32).double()
    for name, b in module.named_buffers():
        assert b.dtype == np.float64
        np.testing.assert_array_equal(b.numpy(), built64[name].numpy())
        assert not np.array_equal(b.numpy(), built32[name].numpy().astype(np.float64))
    for name, b in module.float().named_buffers():
        np.testing.assert_array_equal(b.numpy(), built32[name].numpy())
