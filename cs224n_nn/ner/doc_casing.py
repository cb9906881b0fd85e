"""The ``doc_casing`` feature: how a token's word is written elsewhere in its document.

A window sees five words; whether a capitalised word is a name often shows
only further off. "Museums" opening a sentence is capitalised by position,
and the same article may write "museums" in lower case; a name stays
capitalised in the middle of other sentences. This is the non-local
"context aggregation" idea of Ratinov & Roth (2009, "Design Challenges and
Misconceptions in Named Entity Recognition"), reduced to one categorical
feature per token.

For a token whose first character is a letter, with ``w`` its lower-cased
form, count the *other* occurrences of ``w`` in the document:

* ``low``: some are all lower case, none is capitalised inside a sentence;
* ``cap``: some start with a capital at a position other than the first of
  their sentence, none is all lower case;
* ``both``: some of each;
* ``none``: neither (the word occurs nowhere else, or only sentence-initially
  or in mixed forms such as "McDONALD" at a sentence start).

Any other token is ``na``. What a document is: :mod:`cs224n_nn.ner.documents`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

#: The feature's values, in vocabulary order (after the specials).
CATEGORIES = ("na", "none", "low", "cap", "both")


def _forms(tokens: Sequence[str]) -> Iterator[tuple[int, str, bool, bool]]:
    """``(position, lower-cased word, is all lower case, is capitalised inside the sentence)`` of each token
    that starts with a letter."""
    for i, token in enumerate(tokens):
        if token[:1].isalpha():
            yield i, token.lower(), token == token.lower(), i > 0 and token[0].isupper()


class DocumentCasing:
    """The lower-case and mid-sentence-capital counts of each word of one document.

    >>> doc = DocumentCasing([["Museums", "in", "Paris"], ["He", "likes", "museums"]])
    >>> doc.keys(["Museums", "in", "Paris"])
    ['low', 'none', 'none']
    """

    def __init__(self, sentences: Iterable[Sequence[str]]):
        self.lower: Counter[str] = Counter()
        self.capital: Counter[str] = Counter()
        for tokens in sentences:
            for _, word, is_lower, is_capital in _forms(tokens):
                self.lower[word] += is_lower
                self.capital[word] += is_capital

    def keys(self, tokens: Sequence[str]) -> list[str]:
        """The category of each token of one of the document's sentences (its own occurrence left out)."""
        keys = ["na"] * len(tokens)
        for i, word, is_lower, is_capital in _forms(tokens):
            lower = self.lower[word] - is_lower > 0
            capital = self.capital[word] - is_capital > 0
            keys[i] = "both" if lower and capital else "low" if lower else "cap" if capital else "none"
        return keys
