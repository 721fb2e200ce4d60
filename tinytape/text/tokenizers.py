"""Tokenizers: characters, and byte-level byte-pair encoding (BPE), both trained on a corpus.

    tok = CharTokenizer.train(texts)                 # one id per character seen in texts
    tok = ByteBPETokenizer.train(texts, vocab_size=512)
    ids = tok.encode("naïve café")                   # list of ints
    assert tok.decode(ids) == "naïve café"           # exact, unicode included
    tok.save("tokenizer.json"); tok = load_tokenizer("tokenizer.json")

Both reserve one special token, ``<|endoftext|>`` (``tok.eot_id``), that separates
documents in a language-model stream; `encode` never produces it from text (the literal
string ``"<|endoftext|>"`` in a text is encoded like any other characters).

A byte-level BPE starts from the 256 byte values, so it encodes every string; the merges
(learned from the most frequent adjacent pairs, never across the pieces of the pre-tokenizer
pattern, after GPT-2) only make the encoding shorter. A character tokenizer only knows the
characters it saw in training: others become ``<|unk|>`` (or raise, with errors="strict").
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Union

EOT = "<|endoftext|>"
UNK = "<|unk|>"
REPLACEMENT = "\ufffd"

#: GPT-2's pre-tokenizer with the standard library's `re`: a contraction, a run of letters,
#: of digits or of other symbols (each with at most one leading space), or whitespace.
#: Every character falls in exactly one piece, so "".join(pieces) == text.
PRETOKENIZE = r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""


class CharTokenizer:
    """One id per character: 0 is <|endoftext|>, 1 is <|unk|>, then the characters in
    sorted order."""

    kind = "char"

    def __init__(self, chars: Iterable[str]) -> None:
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"CharTokenizer: every symbol must be one character, got {c!r}")
        if len(set(chars)) != len(chars):
            raise ValueError("CharTokenizer: repeated characters in the vocabulary")
        self.chars: list[str] = chars
        self.eot_id, self.unk_id = 0, 1
        self._ids = {c: i + 2 for i, c in enumerate(chars)}
        self._symbols = [EOT, REPLACEMENT, *chars]

    @classmethod
    def train(cls, texts: Iterable[str] | str) -> CharTokenizer:
        """The characters that occur in texts, sorted."""
        if isinstance(texts, str):
            texts = [texts]
        seen: set[str] = set()
        for t in texts:
            seen.update(t)
        return cls(sorted(seen))

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + 2

    def encode(self, text: str, errors: str = "replace") -> list[int]:
        """Ids of text's characters; unknown ones become unk_id (errors="replace") or raise
        ValueError (errors="strict")."""
        if errors not in ("replace", "strict"):
            raise ValueError(f"CharTokenizer.encode: errors must be 'replace' or 'strict', "
                             f"got {errors!r}")
        ids = self._ids
        if errors == "strict":
            missing = set(text) - ids.keys()
            if missing:
                raise ValueError(f"CharTokenizer.encode: characters not in the vocabulary: "
                                 f"{''.join(sorted(missing))!r}")
        unk = self.unk_id
        return [ids.get(c, unk) for c in text]

    def decode(self, ids: Iterable[int], skip_special: bool = False) -> str:
        """The text of ids; <|endoftext|> is written out unless skip_special, <|unk|> is
        U+FFFD."""
        sym = self._symbols
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(sym):
                raise ValueError(f"CharTokenizer.decode: id {i} is not in [0, {len(sym)})")
            if skip_special and i == self.eot_id:
                continue
            out.append(sym[i])
        return "".join(out)

    def token_chars(self, ids: Sequence[int]) -> int:
        """How many characters of text the ids stand for (special tokens count one)."""
        return len(ids)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "chars": "".join(self.chars)}

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer as JSON."""
        save_tokenizer(self, path)

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


class ByteBPETokenizer:
    """Byte-level BPE: ids 0-255 are bytes, 256... the learned merges in order, and the last
    id is <|endoftext|>."""

    kind = "byte_bpe"

    def __init__(self, merges: Sequence[tuple[int, int]], pattern: str = PRETOKENIZE) -> None:
        self.merges: list[tuple[int, int]] = [(int(a), int(b)) for a, b in merges]
        self.pattern = pattern
        self._re = re.compile(pattern)
        self._bytes: list[bytes] = [bytes([i]) for i in range(256)]
        self._ranks: dict[tuple[int, int], int] = {}
        for rank, (a, b) in enumerate(self.merges):
            new = 256 + rank
            if not (0 <= a < new and 0 <= b < new):
                raise ValueError(f"ByteBPETokenizer: merge {rank} ({a}, {b}) refers to an id "
                                 f"not defined before it")
            if (a, b) in self._ranks:
                raise ValueError(f"ByteBPETokenizer: merge ({a}, {b}) is repeated")
            self._ranks[(a, b)] = rank
            self._bytes.append(self._bytes[a] + self._bytes[b])
        self.eot_id = 256 + len(self.merges)
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def train(cls, texts: Iterable[str] | str, vocab_size: int, min_frequency: int = 2,
              pattern: str = PRETOKENIZE) -> ByteBPETokenizer:
        """Learn merges until vocab_size ids (256 bytes + merges + 1 special), or until no
        pair occurs min_frequency times. Deterministic: the same texts give the same merges."""
        if vocab_size < 257:
            raise ValueError(f"ByteBPETokenizer.train: vocab_size must be at least 257 (256 "
                             f"bytes and <|endoftext|>), got {vocab_size}")
        if isinstance(texts, str):
            texts = [texts]
        pat = re.compile(pattern)
        counts: Counter[str] = Counter()
        for t in texts:
            counts.update(pat.findall(t))
        words = [list(w.encode("utf-8")) for w in counts]
        freqs = list(counts.values())
        pair_counts: dict[tuple[int, int], int] = {}
        where: dict[tuple[int, int], set[int]] = {}
        for wi, (w, f) in enumerate(zip(words, freqs)):
            for pair in zip(w, w[1:]):
                pair_counts[pair] = pair_counts.get(pair, 0) + f
                where.setdefault(pair, set()).add(wi)
        merges: list[tuple[int, int]] = []
        while 256 + len(merges) + 1 < vocab_size and pair_counts:
            best = max(pair_counts, key=pair_counts.__getitem__)
            if pair_counts[best] < min_frequency:
                break
            new = 256 + len(merges)
            merges.append(best)
            for wi in sorted(where.pop(best, ())):
                w, f = words[wi], freqs[wi]
                for pair in zip(w, w[1:]):
                    c = pair_counts[pair] - f
                    if c:
                        pair_counts[pair] = c
                    else:
                        del pair_counts[pair]
                w = _merge(w, best, new)
                words[wi] = w
                for pair in zip(w, w[1:]):
                    pair_counts[pair] = pair_counts.get(pair, 0) + f
                    where.setdefault(pair, set()).add(wi)
            pair_counts.pop(best, None)
        return cls(merges, pattern)

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.merges) + 1

    def _encode_piece(self, piece: str) -> list[int]:
        ids = self._cache.get(piece)
        if ids is not None:
            return ids
        ids = list(piece.encode("utf-8"))
        ranks = self._ranks
        while len(ids) > 1:
            best = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, 1 << 60))
            rank = ranks.get(best)
            if rank is None:
                break
            ids = _merge(ids, best, 256 + rank)
        if len(self._cache) < 200_000:
            self._cache[piece] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """Ids of text (its UTF-8 bytes, merged); never produces <|endoftext|>."""
        out: list[int] = []
        for piece in self._re.findall(text):
            out.extend(self._encode_piece(piece))
        return out

    def token_bytes(self, i: int) -> bytes:
        """The bytes an id stands for (b"" for <|endoftext|>)."""
        return b"" if i == self.eot_id else self._bytes[i]

    def decode(self, ids: Iterable[int], skip_special: bool = False) -> str:
        """The text of ids; bytes that are not valid UTF-8 (a cut-off sample) become U+FFFD;
        <|endoftext|> is written out unless skip_special."""
        parts: list[str] = []
        buf = bytearray()
        n = self.vocab_size
        for i in ids:
            i = int(i)
            if not 0 <= i < n:
                raise ValueError(f"ByteBPETokenizer.decode: id {i} is not in [0, {n})")
            if i == self.eot_id:
                parts.append(buf.decode("utf-8", errors="replace"))
                buf = bytearray()
                if not skip_special:
                    parts.append(EOT)
            else:
                buf += self._bytes[i]
        parts.append(buf.decode("utf-8", errors="replace"))
        return "".join(parts)

    def token_chars(self, ids: Sequence[int]) -> int:
        """How many characters of text the ids stand for (special tokens count one)."""
        return len(self.decode(ids, skip_special=True)) + sum(1 for i in ids if i == self.eot_id)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "merges": [list(m) for m in self.merges],
                "pattern": self.pattern}

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer as JSON."""
        save_tokenizer(self, path)

    def __repr__(self) -> str:
        return f"ByteBPETokenizer(vocab_size={self.vocab_size})"


Tokenizer = Union[CharTokenizer, ByteBPETokenizer]


def _merge(ids: list[int], pair: tuple[int, int], new: int) -> list[int]:
    """ids with every non-overlapping occurrence of pair (left to right) replaced by new."""
    a, b = pair
    out: list[int] = []
    i, n = 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def train_tokenizer(kind: str, texts: Sequence[str], vocab_size: int = 512) -> Tokenizer:
    """"char" or "bpe" (byte-level BPE with vocab_size ids), trained on texts."""
    if kind == "char":
        return CharTokenizer.train(texts)
    if kind in ("bpe", "byte_bpe"):
        return ByteBPETokenizer.train(texts, vocab_size)
    raise ValueError(f"unknown tokenizer {kind!r}: use 'char' or 'bpe'")


def tokenizer_from_dict(d: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from its to_dict()."""
    kind = d.get("type")
    if kind == CharTokenizer.kind:
        return CharTokenizer(d["chars"])
    if kind == ByteBPETokenizer.kind:
        return ByteBPETokenizer([tuple(m) for m in d["merges"]], d.get("pattern", PRETOKENIZE))
    raise ValueError(f"not a tinytape tokenizer (type {kind!r})")


def save_tokenizer(tok: Tokenizer, path: str | os.PathLike) -> None:
    """Write tok.to_dict() as JSON (UTF-8)."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(tok.to_dict(), f, ensure_ascii=False)


def load_tokenizer(source: str | os.PathLike | dict[str, Any]) -> Tokenizer:
    """A tokenizer from a JSON file written by save(), or from a to_dict()."""
    if isinstance(source, dict):
        return tokenizer_from_dict(source)
    with open(source, encoding="utf-8") as f:
        return tokenizer_from_dict(json.load(f))
