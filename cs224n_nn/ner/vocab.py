"""Vocabularies (token <-> id) and the spelling features of a word.

The window classifier of the notes (section "Neural networks: window
classification") looks each word up in an embedding matrix ``L``; the row
is the word's id in a :class:`Vocab`.

Normalisation (:func:`normalize`)
    ``token.lower()`` with every decimal digit (Unicode category Nd)
    replaced by ``"0"``: ``"Paris" -> "paris"``, ``"1996-08-22" ->
    "0000-00-00"``.  Lower-casing merges a word's sentence-initial and
    inner forms (the casing feature below keeps what it removes);
    zeroing digits maps every date, score and price of one shape to a
    single entry, which a rare number could not earn by itself.

Casing (:func:`casing`, :data:`CASING_CATEGORIES`)
    One small id per token describing its spelling, for a second embedding
    beside the word vector (Collobert et al. 2011, "Natural Language
    Processing (almost) from Scratch", add such a "caps" feature).  Id 0
    is the padding of windows that reach past the sentence edge.

Word shape (:func:`word_shape`)
    A finer spelling pattern: upper-case letters -> ``X``, lower-case ->
    ``x``, digits -> ``d``, anything else kept, and a run of one symbol
    longer than four cut to four: ``"Paris" -> "Xxxxx"``, ``"Museums" ->
    "Xxxxx"``, ``"1996-08-22" -> "dddd-dd-dd"``, ``"U.S." -> "X.X."``.
    Build a ``Vocab`` of shapes (``normalize=False``) to embed it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cs224n_nn.errors import CheckpointError, ConfigError

__all__ = [
    "CASING_CATEGORIES",
    "CASING_PAD",
    "Vocab",
    "cased_form",
    "casing",
    "normalize",
    "word_shape",
]

_DIGIT = re.compile(r"\d")


def normalize(token: str) -> str:
    """Lower-case ``token`` and replace each digit with ``"0"`` (module docstring)."""
    return cased_form(token.lower())


def cased_form(token: str) -> str:
    """``token`` with each digit replaced by ``"0"`` and its case kept: the key of the ``form`` feature.

    >>> cased_form("May"), cased_form("may"), cased_form("1996")
    ('May', 'may', '0000')
    """
    return _DIGIT.sub("0", token)


class Vocab:
    """An ordered list of strings and the id of each.

    Ids start with the ``specials`` (by default ``PAD`` = 0, ``UNK`` = 1),
    then the entries.  With ``normalize=True`` every token is passed through
    :func:`normalize` before it is stored or looked up; a tag set uses
    ``normalize=False, specials=()`` so its ids are exactly its tags.
    Looking up a token that is absent gives ``unk_id``; a vocabulary without
    ``UNK`` raises ``KeyError`` naming the token.
    """

    PAD = "<pad>"
    UNK = "<unk>"

    def __init__(self, itos: Sequence[str], *, normalize: bool = True, specials: Sequence[str] = (PAD, UNK)):
        """Use :meth:`build` or :meth:`from_tokens`; this takes ``itos`` as final (specials first)."""
        self.itos: list[str] = list(itos)
        self.normalize = bool(normalize)
        self.specials: tuple[str, ...] = tuple(specials)
        self.stoi: dict[str, int] = {s: i for i, s in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("vocabulary entries are not unique")
        if tuple(self.itos[: len(self.specials)]) != self.specials:
            raise ValueError(f"vocabulary must start with its specials {self.specials}")

    # -- construction -------------------------------------------------------

    @classmethod
    def build(
        cls,
        tokens: Iterable[str],
        *,
        min_freq: int = 1,
        max_size: int | None = None,
        normalize: bool = True,
        specials: Sequence[str] = (PAD, UNK),
    ) -> Vocab:
        """Count ``tokens`` (training text) and keep those seen ``min_freq`` times or more.

        Entries are ordered by decreasing count, ties alphabetically, so the
        same text always gives the same ids.  ``max_size`` caps the number
        of entries besides the specials.
        """
        if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
            raise ConfigError(f"min_freq must be an integer >= 1, got {min_freq!r}")
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 0):
            raise ConfigError(f"max_size must be None or an integer >= 0, got {max_size!r}")
        key = _normalizer(normalize)
        counts = Counter(key(t) for t in tokens)
        for special in specials:
            counts.pop(special, None)
        ranked = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
        if max_size is not None:
            ranked = ranked[:max_size]
        return cls([*specials, *ranked], normalize=normalize, specials=specials)

    @classmethod
    def from_tokens(
        cls, tokens: Iterable[str], *, normalize: bool = True, specials: Sequence[str] = (PAD, UNK)
    ) -> Vocab:
        """A vocabulary of exactly these tokens, in this order, after the specials.

        Repeats (also those that become equal after normalisation) keep their
        first position: ``Vocab.from_tokens(["O", "I-PER"], normalize=False,
        specials=())`` gives ``O`` id 0 and ``I-PER`` id 1.
        """
        key = _normalizer(normalize)
        itos = list(dict.fromkeys([*specials, *(key(t) for t in tokens)]))
        return cls(itos, normalize=normalize, specials=specials)

    # -- lookup ----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return isinstance(token, str) and self.key(token) in self.stoi

    def __iter__(self):
        return iter(self.itos)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocab):
            return NotImplemented
        return (self.itos, self.normalize, self.specials) == (other.itos, other.normalize, other.specials)

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, normalize={self.normalize}, specials={self.specials})"

    def key(self, token: str) -> str:
        """The form under which ``token`` is stored (normalised or not)."""
        return normalize(token) if self.normalize else token

    def index(self, token: str) -> int:
        """The id of ``token``; ``unk_id`` when absent (``KeyError`` if there is no ``UNK``)."""
        i = self.stoi.get(self.key(token))
        if i is not None:
            return i
        if self.unk_id is None:
            raise KeyError(f"{token!r} is not in the vocabulary (which has no {self.UNK} entry)")
        return self.unk_id

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """The id of each token."""
        return [self.index(t) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """The entry of each id (accepts ints or 0-d tensors)."""
        return [self.itos[int(i)] for i in ids]

    @property
    def pad_id(self) -> int | None:
        """Id of ``PAD``, or None when this vocabulary has none."""
        return self.stoi.get(self.PAD) if self.PAD in self.specials else None

    @property
    def unk_id(self) -> int | None:
        """Id of ``UNK``, or None when this vocabulary has none."""
        return self.stoi.get(self.UNK) if self.UNK in self.specials else None

    # -- checkpoints ---------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Plain ``str``/``bool``/``list`` data, safe for ``torch.load(weights_only=True)``."""
        return {"itos": list(self.itos), "normalize": self.normalize, "specials": list(self.specials)}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> Vocab:
        """Rebuild a vocabulary saved by :meth:`state_dict`; CheckpointError if it is malformed."""
        if not isinstance(state, Mapping):
            raise CheckpointError(f"vocabulary state must be a dict, got {type(state).__name__}")
        missing = {"itos", "normalize", "specials"} - set(state)
        if missing:
            raise CheckpointError(f"vocabulary state lacks {sorted(missing)}")
        itos, norm, specials = state["itos"], state["normalize"], state["specials"]
        if not isinstance(itos, (list, tuple)) or not all(isinstance(s, str) for s in itos):
            raise CheckpointError("vocabulary state 'itos' must be a list of strings")
        if not isinstance(specials, (list, tuple)) or not all(isinstance(s, str) for s in specials):
            raise CheckpointError("vocabulary state 'specials' must be a list of strings")
        if not isinstance(norm, bool):
            raise CheckpointError(f"vocabulary state 'normalize' must be a bool, got {norm!r}")
        try:
            return cls(itos, normalize=norm, specials=specials)
        except ValueError as e:
            raise CheckpointError(f"vocabulary state is inconsistent: {e}") from None


def _normalizer(enabled: bool):
    return normalize if enabled else (lambda t: t)


# ---------------------------------------------------------------------------
# spelling features

CASING_CATEGORIES = (
    "<pad>",  # 0: window positions past the sentence edge
    "numeric",  # only digits: "1996"
    "mainly_numeric",  # more than half digits: "1996-08-22", "3.5"
    "all_lower",  # "museums"
    "all_upper",  # "EU", "BRUSSELS"
    "initial_upper",  # "Paris", "McDonald"
    "contains_digit",  # a digit, yet none of the above: "iPhone4"
    "other",  # punctuation, mixed case ("eBay"), symbols
)
CASING_PAD = 0
_CASING_ID = {name: i for i, name in enumerate(CASING_CATEGORIES)}


def casing(token: str) -> int:
    """The id in :data:`CASING_CATEGORIES` of ``token``'s spelling.

    Checked in the order of the list: digits first, then letter case.  The
    padding token ``Vocab.PAD`` gets :data:`CASING_PAD`, so windows padded
    with that string need no special case.
    """
    if token == Vocab.PAD:
        return CASING_PAD
    digits = sum(c.isdigit() for c in token)
    if token and digits == len(token):
        name = "numeric"
    elif digits > len(token) / 2:
        name = "mainly_numeric"
    elif token.islower():
        name = "all_lower"
    elif token.isupper():
        name = "all_upper"
    elif token[:1].isupper():
        name = "initial_upper"
    elif digits:
        name = "contains_digit"
    else:
        name = "other"
    return _CASING_ID[name]


def word_shape(token: str) -> str:
    """``token``'s spelling pattern, runs cut to four (module docstring)."""
    out: list[str] = []
    run = 0
    for c in token:
        s = "X" if c.isupper() else "x" if c.islower() else "d" if c.isdigit() else c
        run = run + 1 if out and out[-1] == s else 1
        if run <= 4:
            out.append(s)
    return "".join(out)
