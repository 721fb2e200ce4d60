"""LM pretraining: hand-computed n-gram baselines, the windowed evaluation, a tiny model that
beats the bigram baseline, resume, saving with the tokenizer, and the `lm` command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tinytape.cli import main
from tinytape.experiments.protocol import read_results, verdict
from tinytape.models import GPT, GPTConfig
from tinytape.text.corpora import Document
from tinytape.text.tokenizers import ByteBPETokenizer, CharTokenizer
from tinytape.train.lm import (
    LMConfig,
    bits_per_char,
    document_bits,
    encode_stream,
    load_lm,
    ngram_bpc,
    ngram_document_bits,
    prepare_lm_data,
    run_config,
    sample_text,
    token_nll,
    train_lm,
)


def docs(*texts: str) -> list[Document]:
    return [Document(t, None, f"d{i}", f"d{i}") for i, t in enumerate(texts)]


def test_ngram_baselines_by_hand():
    # train: "ab", "a" -> symbols a b <e> a <e>; V = {a, b, <e>, <unk>} = 4, N = 5
    # unigram: P(a) = 3/9, P(b) = 2/9, P(<e>) = 3/9, P(<unk>) = 1/9
    # contexts: <e> twice (-> a, a), a twice (-> b, <e>), b once (-> <e>)
    got = ngram_bpc(docs("ab", "a"), docs("ba"))
    uni = -(math.log2(2 / 9) + math.log2(3 / 9) + math.log2(3 / 9)) / 3
    p_b_after_e = (0 + 4 * 2 / 9) / (2 + 4)
    p_a_after_b = (0 + 4 * 3 / 9) / (1 + 4)
    p_e_after_a = (1 + 4 * 3 / 9) / (2 + 4)
    bi = -(math.log2(p_b_after_e) + math.log2(p_a_after_b) + math.log2(p_e_after_a)) / 3
    assert got["unigram"] == pytest.approx(uni, rel=1e-12)
    assert got["bigram"] == pytest.approx(bi, rel=1e-12)
    # an unseen character is the <unk> symbol
    unk = ngram_bpc(docs("ab", "a"), docs("z"))
    assert unk["unigram"] == pytest.approx(-(math.log2(1 / 9) + math.log2(3 / 9)) / 2)


def test_ngram_document_bits_by_hand():
    # the model of test_ngram_baselines_by_hand; two validation documents "ba" and "b"
    got = ngram_document_bits(docs("ab", "a"), docs("ba", "b"))
    p_b_after_e = (0 + 4 * 2 / 9) / (2 + 4)
    p_a_after_b = (0 + 4 * 3 / 9) / (1 + 4)
    p_e_after_a = (1 + 4 * 3 / 9) / (2 + 4)
    p_e_after_b = (1 + 4 * 3 / 9) / (1 + 4)
    want_bi = [-math.log2(p_b_after_e * p_a_after_b * p_e_after_a),
               -math.log2(p_b_after_e * p_e_after_b)]
    want_uni = [-math.log2(2 / 9 * 3 / 9 * 3 / 9), -math.log2(2 / 9 * 3 / 9)]
    np.testing.assert_allclose(got["bigram"], want_bi, rtol=1e-12)
    np.testing.assert_allclose(got["unigram"], want_uni, rtol=1e-12)
    whole = ngram_bpc(docs("ab", "a"), docs("ba", "b"))  # 5 symbols in all
    assert whole["bigram"] == pytest.approx(sum(want_bi) / 5, rel=1e-12)


def test_stream_layout_and_char_count():
    tok = CharTokenizer.train("abc")
    ids = encode_stream(docs("ab", "c"), tok)
    assert ids.tolist() == [0, 2, 3, 0, 4, 0]
    data = prepare_lm_data(docs("ab", "c"), tok, val_docs=docs("cab"))
    assert data.val_chars == 4 and data.val_ids.tolist() == [0, 4, 2, 3, 0]


@pytest.fixture(scope="module")
def tiny_gpt():
    return GPT(GPTConfig(vocab_size=7, context_length=8, d_model=16, n_layers=1, n_heads=2),
               generator=3)


def test_token_nll_uses_the_longest_context_it_can(tiny_gpt):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 7, 30)
    T = tiny_gpt.config.context_length
    got = token_nll(tiny_gpt, ids, stride=1)
    assert got.shape == (29,)
    for j in range(29):  # target j is ids[j + 1]
        if j < T:  # inside the first window: all earlier tokens
            logits = tiny_gpt(ids[None, :T])[0].numpy()[0].astype(np.float64)
            row = logits[j]
        else:  # the T tokens before it
            logits = tiny_gpt(ids[None, j - T + 1:j + 1])[0].numpy()[0].astype(np.float64)
            row = logits[-1]
        want = np.log(np.exp(row - row.max()).sum()) + row.max() - row[ids[j + 1]]
        assert got[j] == pytest.approx(want, rel=1e-5), j
    # any stride scores every token once; within one window the numbers agree
    for stride in (3, 4, 8):
        other = token_nll(tiny_gpt, ids, stride=stride)
        assert np.all(np.isfinite(other)) and other.shape == (29,)
        np.testing.assert_allclose(other[:T], got[:T], rtol=1e-5)
    total = token_nll(tiny_gpt, ids, stride=4).sum()
    assert bits_per_char(tiny_gpt, ids, 40, stride=4) == pytest.approx(total / math.log(2) / 40)


def test_document_bits_split_the_stream_at_each_end(tiny_gpt):
    tok = CharTokenizer.train("abcde")  # 7 tokens with EOT and the replacement
    texts = ("abcab", "e", "dcbadcbaab")
    ids = encode_stream(docs(*texts), tok)
    nll = token_nll(tiny_gpt, ids, stride=4) / math.log(2)
    got = document_bits(tiny_gpt, ids, tok.eot_id, stride=4)
    # target j predicts ids[j + 1]: a document's targets are its characters and its end
    start = 0
    for i, text in enumerate(texts):
        assert got[i] == pytest.approx(nll[start:start + len(text) + 1].sum(), rel=1e-12)
        start += len(text) + 1
    assert start == len(nll) and got.shape == (3,)
    chars = sum(len(t) + 1 for t in texts)
    assert got.sum() / chars == pytest.approx(bits_per_char(tiny_gpt, ids, chars, stride=4))
    with pytest.raises(ValueError, match="start and end with the EOT"):
        document_bits(tiny_gpt, ids[1:], tok.eot_id)


def alt_docs(n: int, seed: int) -> list[Document]:
    """Each document alternates two random digits ("373737..."). The previous character
    says little about the next (the bigram baseline is near log2 9); the one before it says
    everything, which attention to a fixed offset learns in a few dozen steps."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a, b = (str(v) for v in rng.choice(10, 2, replace=False))
        out.append(Document((a + b) * 16, None, f"a{seed}-{i}", f"a{seed}-{i}"))
    return out


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads (and a busy machine makes spinning threads
    slow)."""
    import tinytape

    before = tinytape.get_num_threads()
    tinytape.set_num_threads(1)
    yield
    tinytape.set_num_threads(before)


TINY = LMConfig(context=16, d_model=32, n_layers=1, n_heads=2, steps=80, batch_size=16,
                lr=1e-2, min_lr=1e-3, warmup=5, eval_every=40, eval_tokens=0, seed=0)


def test_tiny_model_beats_the_bigram_baseline_and_saves_with_its_tokenizer(tmp_path):
    data = prepare_lm_data(alt_docs(60, 0), "char", val_docs=alt_docs(10, 1))
    res = train_lm(data, TINY, tmp_path, resume=False, progress=False)
    base = res["baselines"]
    assert base["bigram"] > 2.5  # close to log2(9) = 3.17 inside documents
    assert res["val_bpc"] < base["bigram"] - 1.5, res
    assert [e["step"] for e in res["evals"]] == [40, 80]
    for name in ("model.safetensors", "ckpt.safetensors", "tokenizer.json", "metrics.jsonl",
                 "config.json"):
        assert (tmp_path / name).exists(), name
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved == json.loads(json.dumps(run_config(TINY, data)))
    model, tok, extra = load_lm(tmp_path / "model.safetensors")
    assert tok.encode("0123") == data.tokenizer.encode("0123")
    assert extra["info"]["val_bpc"] == pytest.approx(res["val_bpc"])
    assert bits_per_char(model, data.val_ids, data.val_chars) == pytest.approx(res["val_bpc"],
                                                                               rel=1e-6)
    # greedy continuation follows the rule it learned
    assert sample_text(model, tok, "4747", 4, temperature=0.0) == "47474747"


def test_resume_continues_bit_for_bit(tmp_path):
    cfg = LMConfig(**{**TINY.__dict__, "steps": 12, "eval_every": 6})
    tok = ByteBPETokenizer.train([d.text for d in alt_docs(20, 0)], 280)
    data = prepare_lm_data(alt_docs(20, 0), tok, val_docs=alt_docs(4, 1))
    whole = train_lm(data, cfg, tmp_path / "a", resume=False, progress=False)
    part = train_lm(data, cfg, tmp_path / "b", resume=False, progress=False, until=5)
    assert part["steps"] == 5 and not (tmp_path / "b" / "model.safetensors").exists()
    rest = train_lm(data, cfg, tmp_path / "b", resume=True, progress=False)
    assert rest["resumed_from"] == 5 and rest["steps"] == 12
    a, b = whole["model"].state_dict(), rest["model"].state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert rest["val_bpc"] == whole["val_bpc"]


def test_lm_command_end_to_end(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, d in enumerate(alt_docs(12, 0)):
        (corpus / f"{i}.txt").write_text(d.text)
    out = tmp_path / "run"
    rc = main(["lm", "train", "--corpus", str(corpus), "--steps", "4", "--d-model", "16",
               "--heads", "2", "--context", "16", "--eval-every", "2", "--warmup", "1",
               "--sample-tokens", "5", "--out", str(out), "--threads", "1",
               "--val-fraction", "0.25"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "bigram" in printed and "unigram" in printed
    results = read_results(out)
    assert results["experiment"] == "lm" and results["metrics"]["steps"] == 4
    bpc = results["metrics"]["val_bpc"]
    assert math.isfinite(bpc) and results["tables"]["bpc"]["rows"][2][1] == bpc
    # the target: per validation document, GPT minus bigram bits/char, with its interval
    t = results["targets"][0]
    lo, hi = t["ci95"]
    assert "per validation document (mean over 3;" in t["name"] and lo < t["value"] < hi
    assert t["verdict"] == verdict(lo, hi, 0.0, higher_is_better=False)
    # the same command resumes the finished run; other settings in the folder are refused
    assert main(["lm", "train", "--corpus", str(corpus), "--steps", "4", "--d-model", "16",
                 "--heads", "2", "--context", "16", "--eval-every", "2", "--warmup", "1",
                 "--sample-tokens", "0", "--out", str(out), "--val-fraction", "0.25"]) == 0
    assert "resuming the run" in capsys.readouterr().out
    assert main(["lm", "train", "--corpus", str(corpus), "--steps", "5", "--d-model", "16",
                 "--heads", "2", "--context", "16", "--out", str(out)]) == 2
    assert "holds a run with other settings" in capsys.readouterr().err
    assert main(["lm", "sample", "--from", str(out), "--prompt", "12", "--tokens", "3"]) == 0
    assert capsys.readouterr().out.startswith("12")


@pytest.mark.parametrize("argv, message", [
    (["lm", "train", "--steps", "-3"], "--steps: steps must be positive"),
    (["lm", "train", "--d-model", "30", "--heads", "4"], "not divisible by n_heads"),
    (["lm", "train", "--corpus", "/no/such/folder"], "no such file or folder"),
    (["lm", "train", "--val-fraction", "1.5"], "--val-fraction"),
    (["lm", "sample", "--from", "/no/such/run"], "cannot load a model"),
    (["lm", "sample", "--tokens", "-1"], "--tokens must be >= 0"),
])
def test_lm_command_usage_errors(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
