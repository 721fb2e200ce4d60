"""Text: tokenizers (characters, byte-level BPE), corpora that need no download, and a
seeded synthetic library of authors."""

from .corpora import (
    CorpusError,
    Document,
    fortunes,
    labelled_folder,
    load_corpus,
    pydoc_topics,
    split_documents,
    split_passages,
    text_folder,
    to_passages,
)
from .tokenizers import (
    ByteBPETokenizer,
    CharTokenizer,
    Tokenizer,
    load_tokenizer,
    save_tokenizer,
    train_tokenizer,
)

__all__ = [
    "ByteBPETokenizer", "CharTokenizer", "Tokenizer", "load_tokenizer", "save_tokenizer",
    "train_tokenizer", "CorpusError", "Document", "fortunes", "labelled_folder", "load_corpus",
    "pydoc_topics", "split_documents", "split_passages", "text_folder", "to_passages",
]
