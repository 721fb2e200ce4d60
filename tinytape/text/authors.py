"""A seeded synthetic library: many authors, each with books cut into passages.

The lecture's niche task, "predicting the author of children's books", needs a large
related unlabelled corpus and a tiny labelled one. This module writes both, in a made-up
language (nonsense words in English syntax, like Jabberwocky), from latent variables:

- a lexicon of `n_topics` topics, each with its own nouns, verbs and adjectives (pseudo-words,
  Zipf-distributed within the topic);
- per author: a topic mix (most of the weight on 3 topics), a personal re-weighting of each
  topic's words, a sentence style (clauses per sentence, adjectives, prepositional phrases,
  favourite sentence openers and conjunctions, exclamations, dialogue) and two signature
  character names;
- per book: a topic mix drawn around its author's, and two book-specific character names;
- per passage: a main topic from the book's mix; each sentence stays on it or wanders to
  another of the author's topics.

To predict the next word well, a language model must infer the passage's topics and the
author's style from the context so far; those are exactly the features that tell authors
apart, which is why pretraining on other authors' books can help with a new author.
Target authors (held out from the pretraining corpus) have `target_books` books: passages of
the first `validation_books` after the labelled pool's are the validation set (every choice
is made on it), those of the first books the labelled pool, those of the last half the test
set ("passages from other books of the same authors").
"""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass, field

import numpy as np

from .corpora import Document

ONSETS = (
    "b",
    "bl",
    "br",
    "d",
    "dr",
    "f",
    "fl",
    "g",
    "gl",
    "gr",
    "h",
    "k",
    "l",
    "m",
    "n",
    "p",
    "pl",
    "pr",
    "r",
    "s",
    "sk",
    "sl",
    "sn",
    "sp",
    "st",
    "t",
    "th",
    "tr",
    "v",
    "w",
    "z",
    "sh",
    "ch",
    "j",
    "qu",
    "c",
)
VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "oo", "ou", "ee", "oa", "y")
CODAS = ("", "", "", "n", "r", "l", "s", "m", "nd", "st", "ck", "t", "p", "rn", "sh", "mp", "g")
ADJ_SUFFIXES = ("y", "ous", "ish", "ful", "en", "le")
VERB_SUFFIX = "ed"

ARTICLES = ("the", "a")
PREPOSITIONS = (
    "in",
    "on",
    "under",
    "near",
    "with",
    "beyond",
    "behind",
    "across",
    "over",
    "through",
    "beside",
    "around",
)
PRONOUNS = ("he", "she", "they", "it")
CONJUNCTIONS = (
    (", and", "and"),
    (", but", "but"),
    ("; then", "then"),
    (", while", "while"),
    (", so", "so"),
    (" because", "because"),
    (", yet", "yet"),
)
OPENERS = (
    "Then",
    "Suddenly",
    "Meanwhile",
    "Later",
    "At dawn",
    "Once again",
    "Quietly",
    "Of course",
    "That night",
    "Soon",
    "After a while",
    "Still",
    "In the end",
    "Without a word",
    "Far away",
    "Sometimes",
    "Luckily",
    "At last",
    "Oddly",
    "Besides",
)
SAID = ("said", "asked", "whispered", "cried", "called", "muttered", "sang", "laughed")


@dataclass
class LibraryConfig:
    """The knobs of the generator (the defaults make about 1.4M characters)."""

    n_authors: int = 48  # all authors, target ones included
    n_target: int = 8  # held-out authors of the labelled task
    n_topics: int = 8
    words_per_topic: int = 120  # nouns, verbs and adjectives of one topic together
    books_per_author: int = 4  # books of each pretraining author
    target_books: int = 7  # books of each target author: labelled pool, validation,
    #                              and test (the last half, rounded down)
    validation_books: int = 1  # books of each target author for validation
    passages_per_book: int = 24
    sentences_per_passage: tuple[int, int] = (3, 6)  # inclusive range
    zipf: float = 0.5  # exponent of the word frequencies within a topic
    word_bias: float = 0.25  # std of an author's log-weight offsets of topic words
    name_rate: float = 0.12  # highest rate of sentences whose subject is a name
    signature_share: float = 0.3  # of the names used, the share of the author's own two
    style: float = 1.0  # scales the rates of openers, dialogue and exclamations
    syntax: float = 1.0  # scales the word-order and punctuation habits
    layout: float = 1.0  # scales the line-break and indentation habits
    main_topics: int = 2  # topics an author writes about most
    topic_focus: float = 0.95  # share of an author's topic mix on their main topics
    stay_on_topic: float = 0.8  # a sentence keeps its passage's main topic (else: any of
    #                              the author's)
    seed: int = 0

    def __post_init__(self) -> None:
        for key in (
            "n_authors",
            "n_topics",
            "words_per_topic",
            "books_per_author",
            "target_books",
            "passages_per_book",
        ):
            if getattr(self, key) < 1:
                raise ValueError(f"LibraryConfig: {key} must be positive, got {getattr(self, key)}")
        if not 1 <= self.n_target < self.n_authors:
            raise ValueError(
                f"LibraryConfig: n_target must be in [1, n_authors), got {self.n_target}"
            )
        if self.validation_books < 1 or self.target_books < self.validation_books + 2:
            raise ValueError(
                f"LibraryConfig: target_books ({self.target_books}) must be at "
                f"least validation_books ({self.validation_books}, at least 1) "
                f"+ 2 (a labelled and a test book)"
            )
        lo, hi = self.sentences_per_passage
        if not 1 <= lo <= hi:
            raise ValueError(f"LibraryConfig: bad sentences_per_passage {(lo, hi)}")


@dataclass
class Topic:
    nouns: list[str]
    verbs: list[str]
    adjectives: list[str]


@dataclass
class Author:
    """The latent variables of one author."""

    name: str
    topic_mix: np.ndarray  # (n_topics,) sums to 1
    word_bias: np.ndarray  # (n_topics, words_per_topic) log-weight offsets
    signature_names: list[str]
    clause_rate: float  # mean extra clauses per sentence
    adjective_rate: float
    preposition_rate: float
    name_rate: float  # a sentence's subject is a character's name
    pronoun_rate: float
    exclaim_rate: float
    dialogue_rate: float
    openers: list[str]
    opener_rate: float
    conjunctions: list[tuple[str, str]]
    said: list[str]
    adj_after: float = 0.0  # an adjective follows its noun ("the ship red")
    verb_final: float = 0.0  # a clause puts its verb last ("the gull the ship saw")
    ellipsis_rate: float = 0.0  # a sentence ends with "..."
    quote: str = '"'  # the quotation mark of dialogue
    said_first: bool = True  # '"...," said Nim' rather than '"...," Nim said'
    opener_comma: bool = True  # "Then, ..." rather than "Then ..."
    line_break: float = 0.0  # a sentence starts a new line (else follows a space)
    indent: float = 0.0  # a new line is indented by two spaces
    target: bool = False
    extra: dict = field(default_factory=dict)


@dataclass
class Library:
    """All passages (documents labelled by author, grouped by book) and how they were made."""

    config: LibraryConfig
    topics: list[Topic]
    authors: list[Author]
    documents: list[Document]

    @property
    def target_authors(self) -> list[str]:
        return [a.name for a in self.authors if a.target]

    def pretraining_documents(self) -> list[Document]:
        """Passages of the authors that are not targets (to pretrain on, labels unused)."""
        targets = set(self.target_authors)
        return [d for d in self.documents if d.label not in targets]

    def target_split(self) -> tuple[list[Document], list[Document], list[Document]]:
        """(labelled pool, validation, test): passages of the target authors' first books,
        of the next `validation_books` books, and of the last half of their books."""
        c = self.config
        n_test = c.target_books // 2
        n_pool = c.target_books - n_test - c.validation_books
        if n_pool < 1:
            n_test, n_pool = n_test - 1, 1
        pool, val, test = [], [], []
        targets = set(self.target_authors)
        for d in self.documents:
            if d.label in targets:
                book = int(d.group.rsplit("/book", 1)[1])
                (
                    pool if book < n_pool else val if book < n_pool + c.validation_books else test
                ).append(d)
        return pool, val, test

    def describe(self) -> dict:
        return {
            "config": {
                k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.config).items()
            },
            "authors": len(self.authors),
            "targets": self.target_authors,
            "documents": len(self.documents),
            "characters": sum(len(d.text) for d in self.documents),
        }


class _Words:
    """Unique pseudo-words from syllables."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def stem(self, syllables: int) -> str:
        r = self.rng
        return "".join(
            ONSETS[r.integers(len(ONSETS))]
            + VOWELS[r.integers(len(VOWELS))]
            + CODAS[r.integers(len(CODAS))]
            for _ in range(syllables)
        )

    def new(self, suffix: str = "", min_syl: int = 1, max_syl: int = 2) -> str:
        while True:
            w = self.stem(int(self.rng.integers(min_syl, max_syl + 1)))
            w = w + suffix[1:] if suffix and w.endswith(suffix[0]) else w + suffix
            if w not in self.used and len(w) > 2:
                self.used.add(w)
                return w


def _zipf(n: int, s: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** s
    return w / w.sum()


def make_library(config: LibraryConfig | None = None, **overrides: object) -> Library:
    """Generate the library (deterministic for a config and seed)."""
    if config is None:
        config = LibraryConfig(**overrides)  # type: ignore[arg-type]
    elif overrides:
        config = LibraryConfig(**{**asdict(config), **overrides})  # type: ignore[arg-type]
    c = config
    rng = np.random.default_rng([c.seed, 6])
    words = _Words(rng)
    for w in (*ARTICLES, *PREPOSITIONS, *PRONOUNS, *(b for _, b in CONJUNCTIONS)):
        words.used.add(w)
    n_nouns = max(1, c.words_per_topic // 2)
    n_verbs = max(1, c.words_per_topic // 4)
    n_adjs = max(1, c.words_per_topic - n_nouns - n_verbs)
    topics = []
    for _ in range(c.n_topics):
        topics.append(
            Topic(
                [words.new() for _ in range(n_nouns)],
                [words.new(VERB_SUFFIX, 1, 1) for _ in range(n_verbs)],
                [
                    words.new(ADJ_SUFFIXES[rng.integers(len(ADJ_SUFFIXES))], 1, 1)
                    for _ in range(n_adjs)
                ],
            )
        )

    def name() -> str:
        return words.new("", 2, 2).capitalize()

    authors: list[Author] = []
    target_ids = set(rng.choice(c.n_authors, c.n_target, replace=False).tolist())
    for i in range(c.n_authors):
        main = rng.choice(c.n_topics, min(c.main_topics, c.n_topics), replace=False)
        mix = np.full(c.n_topics, (1.0 - c.topic_focus) / c.n_topics)
        mix[main] += c.topic_focus * rng.dirichlet(np.full(len(main), 2.0))
        authors.append(
            Author(
                name=f"{name()} {name()}",
                topic_mix=mix / mix.sum(),
                word_bias=rng.normal(0.0, c.word_bias, (c.n_topics, c.words_per_topic)),
                signature_names=[name(), name()],
                clause_rate=float(rng.uniform(0.0, 1.5)),
                adjective_rate=float(rng.uniform(0.05, 0.7)),
                preposition_rate=float(rng.uniform(0.05, 0.7)),
                name_rate=float(rng.uniform(0.2, 1.0) * c.name_rate),
                pronoun_rate=float(rng.uniform(0.0, 0.3)),
                exclaim_rate=float(rng.uniform(0.0, 0.3) * c.style),
                dialogue_rate=float(rng.uniform(0.0, 0.35) * c.style),
                openers=[OPENERS[j] for j in rng.choice(len(OPENERS), 3, replace=False)],
                opener_rate=float(rng.uniform(0.0, 0.4) * c.style),
                conjunctions=[
                    CONJUNCTIONS[j] for j in rng.choice(len(CONJUNCTIONS), 2, replace=False)
                ],
                said=[SAID[j] for j in rng.choice(len(SAID), 2, replace=False)],
                adj_after=float(c.syntax * rng.beta(0.4, 0.4)),
                verb_final=float(c.syntax * 0.8 * rng.beta(0.4, 0.4)),
                ellipsis_rate=float(c.syntax * rng.uniform(0.0, 0.3)),
                quote="'" if rng.random() < 0.5 * min(c.syntax, 1.0) else '"',
                said_first=bool(rng.random() >= 0.5 * min(c.syntax, 1.0)),
                opener_comma=bool(rng.random() >= 0.5 * min(c.syntax, 1.0)),
                line_break=float(c.layout * rng.beta(0.5, 0.5)),
                indent=float(c.layout * rng.beta(0.5, 0.5)),
                target=i in target_ids,
            )
        )

    base = _zipf(c.words_per_topic, c.zipf)
    docs: list[Document] = []
    for ai, a in enumerate(authors):
        # each author's word distribution per topic: the topic's Zipf law, re-weighted
        probs = np.exp(np.log(base)[None, :] + a.word_bias)
        probs /= probs.sum(axis=1, keepdims=True)
        cdfs = [_cdfs(t, probs[z]) for z, t in enumerate(topics)]
        a.extra["topic_cdf"] = np.cumsum(a.topic_mix).tolist()
        a.extra["signature_share"] = c.signature_share
        n_books = c.target_books if a.target else c.books_per_author
        for b in range(n_books):
            brng = np.random.default_rng([c.seed, 7, ai, b])
            book_cdf = np.cumsum(brng.dirichlet(a.topic_mix * 20.0 + 1e-3)).tolist()
            cast = [*a.signature_names, name(), name()]
            for p in range(c.passages_per_book):
                text = _passage(a, cdfs, book_cdf, cast, c, brng)
                docs.append(Document(text, a.name, f"{a.name}/book{b}#{p}", f"{a.name}/book{b}"))
    return Library(c, topics, authors, docs)


def _draw(cdf: list[float], r: np.random.Generator) -> int:
    """An index drawn with probabilities given by a cumulative sum (last entry: the total)."""
    return min(bisect.bisect_right(cdf, r.random() * cdf[-1]), len(cdf) - 1)


def _cdfs(t: Topic, p: np.ndarray) -> dict[str, tuple[list[float], list[str]]]:
    """Cumulative weights of a topic's nouns, verbs and adjectives for one author."""
    n, v = len(t.nouns), len(t.verbs)
    return {
        "n": (np.cumsum(p[:n]).tolist(), t.nouns),
        "v": (np.cumsum(p[n : n + v]).tolist(), t.verbs),
        "a": (np.cumsum(p[n + v :]).tolist(), t.adjectives),
    }


def _passage(
    a: Author,
    topics: list[dict],
    book_cdf: list[float],
    cast: list[str],
    c: LibraryConfig,
    r: np.random.Generator,
) -> str:
    main = _draw(book_cdf, r)
    author_cdf = a.extra["topic_cdf"]
    n = int(r.integers(c.sentences_per_passage[0], c.sentences_per_passage[1] + 1))
    out = ""
    for i in range(n):
        z = main if r.random() < c.stay_on_topic else _draw(author_cdf, r)
        if i:
            out += (
                ("\n" + ("  " if r.random() < a.indent else ""))
                if r.random() < a.line_break
                else " "
            )
        out += _sentence(a, topics[z], cast, r)
    return out


def _sentence(
    a: Author, t: dict[str, tuple[list[float], list[str]]], cast: list[str], r: np.random.Generator
) -> str:
    def pick(kind: str) -> str:
        cdf, lst = t[kind]  # the author's weights over the topic's words of this kind
        return lst[_draw(cdf, r)]

    def noun_phrase() -> str:
        art = ARTICLES[int(r.random() < 0.35)]
        if r.random() >= a.adjective_rate:
            return f"{art} {pick('n')}"
        if r.random() < a.adj_after:
            return f"{art} {pick('n')} {pick('a')}"
        return f"{art} {pick('a')} {pick('n')}"

    def who() -> str:
        # cast: the author's two signature names, then the book's own two
        own = r.random() < a.extra["signature_share"]
        return cast[int(r.integers(2)) + (0 if own else 2)]

    def subject() -> str:
        u = r.random()
        if u < a.name_rate:
            return who()
        if u < a.name_rate + a.pronoun_rate:
            return PRONOUNS[int(r.integers(len(PRONOUNS)))]
        return noun_phrase()

    def clause() -> str:
        if r.random() < a.verb_final:
            s = f"{subject()} {noun_phrase()} {pick('v')}"
        else:
            s = f"{subject()} {pick('v')} {noun_phrase()}"
        if r.random() < a.preposition_rate:
            s += f" {PREPOSITIONS[int(r.integers(len(PREPOSITIONS)))]} {noun_phrase()}"
        return s

    body = clause()
    for _ in range(min(int(r.poisson(a.clause_rate)), 3)):
        body += f"{a.conjunctions[int(r.integers(len(a.conjunctions)))][0]} {clause()}"
    if r.random() < a.dialogue_rate:
        said, speaker, q = a.said[int(r.integers(2))], who(), a.quote
        tag = f"{said} {speaker}" if a.said_first else f"{speaker} {said}"
        return f"{q}{body[0].upper()}{body[1:]},{q} {tag}."
    if r.random() < a.opener_rate:
        comma = "," if a.opener_comma else ""
        body = f"{a.openers[int(r.integers(len(a.openers)))]}{comma} {body}"
    u = r.random()
    end = "!" if u < a.exclaim_rate else "..." if u < a.exclaim_rate + a.ellipsis_rate else "."
    return body[0].upper() + body[1:] + end
