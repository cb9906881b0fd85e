"""Documents: the sentences the document features (``doc_casing``, ``doc_context``) read together.

A window sees a handful of words; what a word is often shows only further
off, where the same article uses it again. Two features look there (the
non-local "context aggregation" of Ratinov & Roth 2009, "Design Challenges
and Misconceptions in Named Entity Recognition"):
:mod:`~cs224n_nn.ner.doc_casing` (how the word is written elsewhere) and
:mod:`~cs224n_nn.ner.doc_context` (which words stand next to it elsewhere).

A document is what ``-DOCSTART-`` lines delimit in a CoNLL file
(:attr:`~cs224n_nn.ner.conll.Sentence.document`), cut after
:data:`MAX_DOCUMENT_SENTENCES` sentences so that a file without those lines
is read in bounded pieces; a sentence tagged on its own (``predict --text``,
each line of stdin) is a document of one sentence.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property

from cs224n_nn.ner.conll import Sentence
from cs224n_nn.ner.doc_casing import DocumentCasing
from cs224n_nn.ner.doc_context import DocumentContext

__all__ = ["MAX_DOCUMENT_SENTENCES", "Document", "document_of_each", "iter_documents"]

#: Sentences after which a document is cut: a file without ``-DOCSTART-`` lines is one
#: document, and its sentences must not all wait in memory for their counts.
MAX_DOCUMENT_SENTENCES = 2000


class Document:
    """The tokens of one document's sentences, and what each document feature counts in them
    (computed on first use, once for all the document's sentences).

    >>> doc = Document([["Museums", "in", "Paris"], ["He", "likes", "museums"]])
    >>> doc.casing.keys(["Museums", "in", "Paris"])
    ['low', 'none', 'none']
    """

    def __init__(self, sentences: Iterable[Sequence[str]]):
        self.sentences = [list(tokens) for tokens in sentences]

    @cached_property
    def casing(self) -> DocumentCasing:
        return DocumentCasing(self.sentences)

    @cached_property
    def context(self) -> DocumentContext:
        return DocumentContext(self.sentences)


def iter_documents(sentences: Iterable[Sentence]) -> Iterator[list[Sentence]]:
    """Consecutive sentences of one document (same :attr:`Sentence.document`), at most
    :data:`MAX_DOCUMENT_SENTENCES` at a time."""
    document: list[Sentence] = []
    for sentence in sentences:
        if document and (sentence.document != document[-1].document or len(document) == MAX_DOCUMENT_SENTENCES):
            yield document
            document = []
        document.append(sentence)
    if document:
        yield document


def document_of_each(sentences: Sequence[Sentence]) -> list[Document]:
    """The :class:`Document` of each sentence (one object shared by the sentences of a document)."""
    out: list[Document] = []
    for document in iter_documents(sentences):
        out += [Document(s.tokens for s in document)] * len(document)
    return out
