"""A gazetteer: the entity strings of the training split and their types, matched in new text.

Collobert et al. (2011, "Natural Language Processing (Almost) from
Scratch", in their section on gazetteers) add to each word of the window a
feature saying whether it is part of a known entity name, which lifted
their window network's CoNLL-2003 test F1 (sentence-level training,
language-model embeddings) from 88.67 to 89.59.  Ours is built from the
training split only: every entity chunk of the training file (its tokens as
written) with the type it was most often tagged with.  Matching a sentence
finds, left to right, the longest known string starting at each token (at
most ``MAX_SPAN`` tokens) and gives every token of it an IOBES position and
the type (``S-LOC``; ``B-PER``, ``I-PER``, ``E-PER``); other tokens get ``O``.

Leakage: matched against the sentences it was built from, every training
entity is found, so a network trained on those keys learns to trust them
completely and then misses the dev entities the list lacks.  Training
sentences are therefore matched with the gazetteer of the *other* folds of
training documents (:func:`fold_gazetteers`, k-fold over ``-DOCSTART-``
documents); dev, test and ``predict`` use the gazetteer of the whole
training split, which the encoder keeps in its ``state_dict``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cs224n_nn.errors import CheckpointError, ConfigError
from cs224n_nn.ner.conll import Sentence, detect_scheme, spans

__all__ = ["MAX_SPAN", "Gazetteer", "check_folds", "fold_gazetteers", "gazetteer_keys"]

# Longest entity string (in tokens) kept and matched: bounds the work per
# token; CoNLL-2003's training entities longer than this are a handful.
MAX_SPAN = 8


def gazetteer_keys(types: Iterable[str]) -> list[str]:
    """Every key a token can get: ``O`` then ``B-``, ``I-``, ``E-``, ``S-`` of each type (the feature's vocabulary)."""
    return ["O"] + [f"{p}-{t}" for t in sorted(types) for p in "BIES"]


def check_folds(folds: Any) -> int:
    """``folds`` if it is an integer >= 2, else ConfigError naming ``data.gazetteer_folds``."""
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"data.gazetteer_folds must be an integer >= 2, got {folds!r}")
    return folds


class Gazetteer:
    """Known entity strings (token tuples) -> entity type, matched longest first.

    Args:
        entries: ``(token, ..., token) -> type``; strings longer than
            :data:`MAX_SPAN` tokens are left out.
    """

    def __init__(self, entries: Mapping[Sequence[str], str]):
        self.entries: dict[tuple[str, ...], str] = {
            tuple(k): str(v) for k, v in entries.items() if 0 < len(k) <= MAX_SPAN
        }
        # The longest entry starting with each first token: tokens that start
        # no entry (most of them) cost one set lookup.
        self._longest: dict[str, int] = {}
        for key in self.entries:
            self._longest[key[0]] = max(self._longest.get(key[0], 0), len(key))

    @classmethod
    def from_sentences(cls, sentences: Iterable[Sentence], scheme: str = "auto") -> Gazetteer:
        """Every entity chunk of labelled ``sentences``, each with the type it carries most often (ties: first by name)."""
        sentences = list(sentences)
        if scheme == "auto":
            scheme = detect_scheme(s.tags for s in sentences) if sentences else "IOB2"
        counts: dict[tuple[str, ...], Counter] = defaultdict(Counter)
        for s in sentences:
            for type_, start, end in spans(s.tags, scheme):
                counts[s.tokens[start:end]][type_] += 1
        return cls({k: min(c, key=lambda t: (-c[t], t)) for k, c in counts.items()})

    def __len__(self) -> int:
        return len(self.entries)

    def __eq__(self, other: object) -> bool:
        return self.entries == other.entries if isinstance(other, Gazetteer) else NotImplemented

    def match(self, tokens: Sequence[str]) -> list[str]:
        """The key of every token: its IOBES position and type in the longest known string covering it, or ``O``.

        Left to right: at each token not yet covered, the longest entry
        starting there wins and the scan resumes after it.
        """
        keys = ["O"] * len(tokens)
        longest, entries = self._longest, self.entries
        i, n = 0, len(tokens)
        while i < n:
            span = longest.get(tokens[i], 0)
            found = 0
            for length in range(min(span, n - i), 0, -1):
                type_ = entries.get(tuple(tokens[i:i + length]))
                if type_ is not None:
                    found = length
                    break
            if not found:
                i += 1
                continue
            if found == 1:
                keys[i] = f"S-{type_}"
            else:
                keys[i] = f"B-{type_}"
                keys[i + 1:i + found - 1] = [f"I-{type_}"] * (found - 2)
                keys[i + found - 1] = f"E-{type_}"
            i += found
        return keys

    # -- checkpoints ------------------------------------------------------

    def state_dict(self) -> list[list]:
        """``[[tokens, type], ...]`` (plain lists and strings, safe for ``weights_only=True``), sorted."""
        return [[list(k), v] for k, v in sorted(self.entries.items())]

    @classmethod
    def from_state_dict(cls, state: Sequence[Sequence]) -> Gazetteer:
        try:
            entries = {}
            for tokens, type_ in state:
                if not isinstance(type_, str) or not all(isinstance(t, str) for t in tokens):
                    raise TypeError(f"entry {tokens!r}: {type_!r} is not a list of strings and a type")
                entries[tuple(tokens)] = type_
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"the checkpoint's gazetteer is malformed ({type(e).__name__}: {e})") from None
        return cls(entries)


def fold_gazetteers(sentences: Sequence[Sentence], folds: int, scheme: str = "auto") -> list[Gazetteer]:
    """The gazetteer each training sentence is matched with: built from the documents of the *other* folds.

    Document ``d`` (:attr:`Sentence.document`) is in fold ``d % folds``; the
    sentences of fold ``f`` all get the gazetteer of every sentence outside
    fold ``f``, so no sentence sees its own document's entities.  Returns one
    :class:`Gazetteer` per sentence (the ``folds`` distinct ones shared).
    """
    folds = check_folds(folds)
    sentences = list(sentences)
    if scheme == "auto":
        scheme = detect_scheme(s.tags for s in sentences) if sentences else "IOB2"
    held_out = [
        Gazetteer.from_sentences([s for s in sentences if s.document % folds != f], scheme) for f in range(folds)
    ]
    return [held_out[s.document % folds] for s in sentences]
