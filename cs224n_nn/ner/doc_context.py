"""The ``doc_context`` feature: which words stand next to a token's word elsewhere in its document.

"Clinton" alone in a window is a person or an organisation's part; the same
article also writes "President Clinton said". Ratinov & Roth (2009, "Design
Challenges and Misconceptions in Named Entity Recognition") give each token
the context words of the *other* occurrences of its word in the document
("context aggregation"); this is that feature, cut to one neighbour on each
side.

For a token that starts with a capital letter, with ``w`` its lower-cased
form, take every other occurrence of ``w`` in the document (any casing) and
its two neighbours, each keyed by side: ``L:x`` for the word ``x`` before it
(``L:<s>`` at a sentence start), ``R:x`` for the word after (``R:</s>`` at
the end), ``x`` normalised as the word feature is
(:func:`~cs224n_nn.ner.vocab.normalize`). The token's keys are the
:data:`SLOTS` most frequent of them (ties: the first seen first); any other
token has none. The network averages the vectors of a token's keys, as it
does a bag of character N-grams (:mod:`cs224n_nn.ner.network`).

What a document is: :mod:`cs224n_nn.ner.documents`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from cs224n_nn.ner.vocab import normalize

__all__ = ["SLOTS", "DocumentContext", "neighbour_keys"]

#: Keys a token holds at most (channels of the feature in a window).
SLOTS = 8


def neighbour_keys(tokens: Sequence[str], i: int) -> tuple[str, str]:
    """The side-marked keys of token ``i``'s two neighbours in its sentence.

    >>> neighbour_keys(["President", "Clinton", "said"], 1)
    ('L:president', 'R:said')
    """
    left = "<s>" if i == 0 else normalize(tokens[i - 1])
    right = "</s>" if i + 1 == len(tokens) else normalize(tokens[i + 1])
    return f"L:{left}", f"R:{right}"


class DocumentContext:
    """The neighbour keys of each word's occurrences in one document (words that start with a letter).

    >>> doc = DocumentContext([["Clinton", "met", "him"], ["President", "Clinton", "said"]])
    >>> doc.keys(["Clinton", "met", "him"])
    [['L:president', 'R:said'], [], []]
    """

    def __init__(self, sentences: Iterable[Sequence[str]]):
        self.neighbours: defaultdict[str, Counter[str]] = defaultdict(Counter)
        for tokens in sentences:
            for i, token in enumerate(tokens):
                if token[:1].isalpha():
                    self.neighbours[token.lower()].update(neighbour_keys(tokens, i))

    def keys(self, tokens: Sequence[str]) -> list[list[str]]:
        """The keys of each token of one of the document's sentences (its own occurrence left out)."""
        out: list[list[str]] = []
        for i, token in enumerate(tokens):
            counts = self.neighbours.get(token.lower()) if token[:1].isupper() else None
            if not counts:
                out.append([])
                continue
            own = neighbour_keys(tokens, i)
            # Leaving this occurrence out lowers at most two counts by one, so the
            # top SLOTS of what is left lie among the top SLOTS + 2 of the whole.
            # (most_common keeps first-seen order among equal counts; sorted is stable.)
            top = [(key, n - own.count(key)) for key, n in counts.most_common(SLOTS + 2)]
            top.sort(key=lambda kn: -kn[1])
            out.append([key for key, n in top[:SLOTS] if n > 0])
        return out
