"""Tf-idf features of passages, no pretraining: a bag of words and character n-grams.

Both weigh a term by (1 + log count) * idf, idf = ln((1 + n) / (1 + df)) + 1 over the n
passages they are fitted on (scikit-learn's `sublinear_tf=True, smooth_idf=True`), and scale
each row to unit length. The vocabulary and the idf come from the passages given to `fit`
(the labelled training passages only).

- `BagOfWords`: lower-cased runs of letters or digits; punctuation, case, line breaks and
  word order are thrown away.
- `CharNgrams`: every run of `lo` to `hi` characters of the raw text, case, punctuation and
  whitespace included: the standard authorship baseline (Stamatatos 2009, "A survey of modern
  authorship attribution methods"), which sees the punctuation, quotation, indentation,
  line-break and short word-order habits the bag of words cannot.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

WORD = re.compile(r"[^\W\d_]+|\d+", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-cased runs of letters or digits."""
    return WORD.findall(text.lower())


def char_ngrams(text: str, lo: int, hi: int) -> list[str]:
    """Every substring of lo to hi characters, in order of length, then position."""
    return [text[i : i + n] for n in range(lo, hi + 1) for i in range(len(text) - n + 1)]


@dataclass
class TfIdf:
    """Sublinear tf-idf rows of unit length over a fixed vocabulary (see the module doc)."""

    vocab: dict[str, int]
    idf: np.ndarray
    terms: Callable[[str], list[str]]

    @classmethod
    def fit_terms(
        cls,
        texts: Sequence[str],
        terms: Callable[[str], list[str]],
        max_features: int | None = None,
    ) -> TfIdf:
        """Vocabulary and idf of texts; with max_features, the terms most frequent over all
        the texts (ties: alphabetical)."""
        df: Counter[str] = Counter()
        total: Counter[str] = Counter()
        for t in texts:
            counts = Counter(terms(t))
            df.update(counts.keys())
            total.update(counts)
        kept = sorted(df)
        if max_features is not None and len(kept) > max_features:
            kept = sorted(sorted(kept, key=lambda w: -total[w])[:max_features])
        n = len(texts)
        idf = np.array([math.log((1 + n) / (1 + df[w])) + 1.0 for w in kept])
        return cls({w: i for i, w in enumerate(kept)}, idf, terms)

    @property
    def size(self) -> int:
        return len(self.vocab)

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), size) float64 features."""
        X = np.zeros((len(texts), len(self.vocab)))
        for i, t in enumerate(texts):
            for w, c in Counter(self.terms(t)).items():
                j = self.vocab.get(w)
                if j is not None:
                    X[i, j] = 1.0 + math.log(c)
        X *= self.idf
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        return X / np.maximum(norms, 1e-12)


class BagOfWords(TfIdf):
    """Tf-idf of lower-cased words."""

    @classmethod
    def fit(cls, texts: Sequence[str]) -> BagOfWords:
        return cls.fit_terms(texts, words)  # type: ignore[return-value]


class CharNgrams(TfIdf):
    """Tf-idf of character n-grams, lo <= n <= hi, of the raw text."""

    @classmethod
    def fit(
        cls, texts: Sequence[str], lo: int = 1, hi: int = 4, max_features: int | None = 30000
    ) -> CharNgrams:
        if not 1 <= lo <= hi:
            raise ValueError(f"CharNgrams: need 1 <= lo <= hi, got lo={lo}, hi={hi}")
        return cls.fit_terms(
            texts,
            lambda t: char_ngrams(t, lo, hi),  # type: ignore[return-value]
            max_features,
        )
