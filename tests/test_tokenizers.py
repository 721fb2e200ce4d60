"""Tokenizers: exact round trips (unicode included), hand-checked BPE merges, save/load."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytape.text.tokenizers import (
    EOT,
    PRETOKENIZE,
    ByteBPETokenizer,
    CharTokenizer,
    load_tokenizer,
    train_tokenizer,
)

UNICODE = "naïve café — 日本語 😀 x_y__z ²³ \t\n  end"
CORPUS = ["the cat sat on the mat.", "the dog sat on the log!", "naïve café, 日本語 😀",
          "def f(x_1, y__2):\n    return x_1 ** 2  # ok\n"]


def test_char_tokenizer_ids_and_round_trip():
    tok = CharTokenizer.train(["abca", "cb"])
    assert tok.chars == ["a", "b", "c"]
    assert tok.vocab_size == 5 and tok.eot_id == 0 and tok.unk_id == 1
    assert tok.encode("cab") == [4, 2, 3]
    assert tok.decode([0, 4, 2, 3, 0]) == f"{EOT}cab{EOT}"
    assert tok.decode([0, 4, 2, 0], skip_special=True) == "ca"
    uni = CharTokenizer.train([UNICODE])
    assert uni.decode(uni.encode(UNICODE)) == UNICODE


def test_char_tokenizer_unknown_characters():
    tok = CharTokenizer.train("abc")
    assert tok.encode("abz") == [2, 3, tok.unk_id]
    assert tok.decode(tok.encode("abz")) == "ab\ufffd"
    with pytest.raises(ValueError, match="'z'"):
        tok.encode("abz", errors="strict")
    with pytest.raises(ValueError, match="not in"):
        tok.decode([99])


def test_bpe_merges_by_hand():
    # pieces "ab", " ab", " ab": (a, b) occurs 3 times -> 256; then (" ", 256) twice -> 257
    tok = ByteBPETokenizer.train(["ab ab ab"], vocab_size=300)
    assert tok.merges == [(97, 98), (32, 256)]
    assert tok.vocab_size == 259 and tok.eot_id == 258
    assert tok.encode("ab ab") == [256, 257]
    assert tok.encode("abab") == [256, 256]
    assert tok.encode("ba") == [98, 97]
    assert tok.token_bytes(257) == b" ab"


def test_bpe_stops_at_vocab_size_and_min_frequency():
    assert len(ByteBPETokenizer.train(["ab ab ab"], vocab_size=258).merges) == 1
    # every pair occurs once: nothing reaches min_frequency=2
    assert ByteBPETokenizer.train(["abcdef"], vocab_size=400).merges == []
    with pytest.raises(ValueError, match="at least 257"):
        ByteBPETokenizer.train(["x"], vocab_size=100)


def test_bpe_never_merges_across_pieces():
    tok = ByteBPETokenizer.train(["a b " * 50], vocab_size=400)
    # pieces are "a", " b", " " ...: " b" can merge, "a" + " " never does
    assert (97, 32) not in tok.merges
    assert (32, 98) in tok.merges


def test_bpe_round_trip_on_a_corpus_and_compression():
    tok = ByteBPETokenizer.train(CORPUS * 3, vocab_size=320)
    for text in [*CORPUS, UNICODE, "", "unseen wörds ∑ 🙂"]:
        assert tok.decode(tok.encode(text)) == text
    ids = tok.encode(CORPUS[0])
    assert len(ids) < len(CORPUS[0].encode("utf-8")) / 2
    # the literal special string is plain text to encode()
    assert tok.eot_id not in tok.encode(EOT)
    assert tok.decode(tok.encode(EOT)) == EOT
    assert tok.decode([*tok.encode("a"), tok.eot_id, *tok.encode("b")]) == f"a{EOT}b"


def test_bpe_decode_of_a_cut_multibyte_character_does_not_raise():
    tok = ByteBPETokenizer.train(["x"], vocab_size=257)
    ids = tok.encode("é")  # two bytes, no merges
    assert len(ids) == 2
    assert tok.decode(ids[:1]) == "\ufffd"


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60))
def test_pretokenizer_covers_every_character(text):
    assert "".join(re.findall(PRETOKENIZE, text)) == text


_BPE = ByteBPETokenizer.train(CORPUS * 5, vocab_size=350)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=80))
def test_bpe_round_trip_any_text(text):
    assert _BPE.decode(_BPE.encode(text)) == text


def test_save_and_load(tmp_path):
    for tok in (CharTokenizer.train(CORPUS), ByteBPETokenizer.train(CORPUS * 3, 300)):
        path = tmp_path / f"{tok.kind}.json"
        tok.save(path)
        again = load_tokenizer(path)
        assert type(again) is type(tok)
        assert again.vocab_size == tok.vocab_size and again.eot_id == tok.eot_id
        for text in CORPUS:
            assert again.encode(text) == tok.encode(text)
        assert load_tokenizer(json.loads(path.read_text(encoding="utf-8"))).encode(
            CORPUS[2]) == tok.encode(CORPUS[2])
    with pytest.raises(ValueError, match="not a tinytape tokenizer"):
        load_tokenizer({"type": "wordpiece"})
    with pytest.raises(ValueError, match="not defined before"):
        ByteBPETokenizer([(300, 1)])


def test_train_tokenizer_by_name():
    assert isinstance(train_tokenizer("char", CORPUS), CharTokenizer)
    assert train_tokenizer("bpe", CORPUS, 280).vocab_size <= 280
    with pytest.raises(ValueError, match="unknown tokenizer"):
        train_tokenizer("words", CORPUS)
