"""From sentences to the window tensors the classifier reads.

The notes' window classifier (section "Neural networks: window
classification") labels the centre word of a window of ``2 * half_width + 1``
words, e.g. "museums in **Paris** are amazing" for ``half_width = 2``; its
input is the concatenation of the window's word vectors
``x = [x_{c-2}, ..., x_{c+2}]``.  Windows that reach past the sentence edge
are filled with the boundary tokens ``<s>`` (left) and ``</s>`` (right), so
the model can tell "first word of the sentence" from "unknown word".

Each token is described by one or more *features* (channels), each a small
vocabulary whose ids index an embedding table of its own:

==============  ==============================================  ================
name            key of a token                                  vocabulary
==============  ==============================================  ================
``word``        :func:`~cs224n_nn.ner.vocab.normalize` (lower,   training words
                digits -> 0)                                    (+ pretrained)
``form``        the token as written, digits -> 0 (case kept:    training forms
                "May" and "may" are two keys)
``casing``      :func:`~cs224n_nn.ner.vocab.casing` category     fixed, 7 entries
``shape``       :func:`~cs224n_nn.ner.vocab.word_shape`          training shapes
``prefixN``     first N characters, lower-cased                  training affixes
``suffixN``     last N characters, lower-cased                   training affixes
``charN``       the character N-grams of ``<w>`` (``w``          training N-grams
                normalised, ``<``/``>`` its edges), up to
                ``NGRAM_SLOTS`` ids per token, their vectors
                averaged by the network
``gazetteer``   IOBES position and type of the token in the      fixed: ``O``,
                longest training entity string matched in its    ``B/I/E/S-type``
                sentence (:mod:`cs224n_nn.ner.gazetteer`)
``doc_casing``  how the token's word is written elsewhere in     fixed, 5 entries
                its document: lower case, capitalised inside
                a sentence, both, neither
                (:mod:`cs224n_nn.ner.doc_casing`)
``doc_context`` the words next to the other occurrences of a     training keys
                capitalised token's word in its document, up to
                ``doc_context.SLOTS`` ids, their vectors averaged
                by the network (:mod:`cs224n_nn.ner.doc_context`)
==============  ==============================================  ================

A feature takes one id per token, except the bags: ``charN``'s ``NGRAM_SLOTS``
channels hold the token's N-grams (the first and last halves of a longer
word's), ``doc_context``'s ``doc_context.SLOTS`` its neighbour keys, padded
with id 0.  The ``gazetteer`` key depends on the whole
sentence, not the token alone; training sentences are matched with the
gazetteer of the other folds of training documents
(:func:`~cs224n_nn.ner.gazetteer.fold_gazetteers`), everything else with the
whole training split's, which the encoder keeps.  The ``doc_casing`` and
``doc_context`` keys depend on the sentence's document
(:class:`~cs224n_nn.ner.documents.Document`): the datasets group each
document's sentences, and a sentence encoded without one is a document of
its own.

One window is a ``LongTensor[C, W]`` (``C`` channels, one per feature or
one per slot of a bag; ``W`` positions); a
batch is ``[B, C, W]``.  Training shuffles windows freely
(:class:`WindowDataset`); evaluation and prediction keep whole sentences
together (:class:`SentenceDataset`, :class:`StreamingSentences` and
:func:`collate_sentences`), because entity F1 is computed per sentence.

Every vocabulary, the tag set and the schemes live in a
:class:`WindowEncoder` whose :meth:`~WindowEncoder.state_dict` holds only
plain Python types, so a checkpoint loads with ``weights_only=True``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset, IterableDataset

from cs224n_nn.errors import CheckpointError, ConfigError, DataFormatError
from cs224n_nn.ner.conll import SCHEMES, Sentence, convert_tags, detect_scheme, entity_types
from cs224n_nn.ner.doc_casing import CATEGORIES as DOC_CASINGS
from cs224n_nn.ner.doc_context import SLOTS as DOC_CONTEXT_SLOTS
from cs224n_nn.ner.documents import Document, document_of_each, iter_documents
from cs224n_nn.ner.gazetteer import Gazetteer, gazetteer_keys
from cs224n_nn.ner.vocab import CASING_CATEGORIES, Vocab, cased_form, casing, normalize, word_shape

__all__ = [
    "BOS",
    "EOS",
    "NGRAM_SLOTS",
    "SPECIALS",
    "SentenceDataset",
    "StreamingSentences",
    "WindowDataset",
    "WindowEncoder",
    "check_feature_name",
    "collate_sentences",
    "encode_sentence",
    "tag_set",
]

BOS = "<s>"
EOS = "</s>"
# Every feature vocabulary starts with these four ids: 0 padding, 1 unknown,
# 2 and 3 the sentence boundaries that fill windows past the edges.
SPECIALS = (Vocab.PAD, Vocab.UNK, BOS, EOS)
FIXED_FEATURES = ("word", "form", "casing", "shape", "gazetteer", "doc_casing", "doc_context")
# Features whose keys come from the token's document, not the token alone.
DOCUMENT_FEATURES = ("doc_casing", "doc_context")
_AFFIX = re.compile(r"(prefix|suffix)([1-9])\Z")
_NGRAM = re.compile(r"char([1-9])\Z")
# Channels of a charN feature: the N-grams a token can hold (a word of L
# characters has L + 3 - N of them); CoNLL-2003 words rarely pass 12 letters.
NGRAM_SLOTS = 12
# Distinct tokens whose ids an encoder remembers (WindowEncoder.token_ids).
_MEMO_LIMIT = 1_000_000


def check_feature_name(name: str) -> str:
    """``name`` if it is a known feature, else ConfigError listing the valid names."""
    if name in FIXED_FEATURES or _AFFIX.match(str(name)) or _NGRAM.match(str(name)):
        return name
    raise ConfigError(
        f"data.features: unknown feature {name!r}; choose among word, form, casing, shape, gazetteer, doc_casing, "
        "doc_context, prefixN, suffixN, charN (N = 1..9)"
    )


def char_ngrams(token: str, n: int) -> list[str]:
    """The character ``n``-grams of ``<normalize(token)>``, at most ``NGRAM_SLOTS`` (a longer word: its first and
    last halves); a word shorter than ``n - 2`` gives its marked form whole.

    >>> char_ngrams("Paris", 3)
    ['<pa', 'par', 'ari', 'ris', 'is>']
    """
    marked = f"<{normalize(token)}>"
    grams = [marked[i:i + n] for i in range(len(marked) - n + 1)] or [marked]
    if len(grams) > NGRAM_SLOTS:
        half = NGRAM_SLOTS // 2
        grams = grams[:half] + grams[len(grams) - (NGRAM_SLOTS - half):]
    return grams


def feature_width(name: str) -> int:
    """Channels feature ``name`` takes per token: ``NGRAM_SLOTS`` for ``charN``, ``doc_context.SLOTS`` for
    ``doc_context``, else 1."""
    if name == "doc_context":
        return DOC_CONTEXT_SLOTS
    return NGRAM_SLOTS if _NGRAM.match(name) else 1


def _key_function(name: str) -> Callable[[str], str]:
    """The string under which feature ``name`` looks a token up in its vocabulary (``charN``: the list of them).

    ``gazetteer`` keys depend on the sentence (:meth:`WindowEncoder.encode_batch`
    fills them in); looked up by token alone a token is ``O``.
    """
    if name == "word":
        return lambda token: token  # the word Vocab normalises by itself
    if name == "form":
        return cased_form
    if name == "gazetteer":
        return lambda token: "O"
    if name == "doc_casing":  # filled in per document by encode_batch
        return lambda token: "na"
    if name == "doc_context":  # likewise; a token alone has no other occurrence
        return lambda token: []
    ngram = _NGRAM.match(name)
    if ngram:
        n = int(ngram.group(1))
        return lambda token: char_ngrams(token, n)
    if name == "casing":
        return lambda token: CASING_CATEGORIES[casing(token)]
    if name == "shape":
        return word_shape
    kind, n = _AFFIX.match(name).groups()
    n = int(n)
    if kind == "prefix":
        return lambda token: token[:n].lower()
    return lambda token: token[-n:].lower()


def tag_set(types: Iterable[str], scheme: str) -> list[str]:
    """Every tag of ``scheme`` for these entity types, ``O`` first (id 0).

    The full set, not only the tags seen in training, so that any sequence
    the constrained decoder may produce has an id.
    """
    prefixes = {"IOB1": "BI", "IOB2": "BI", "IOBES": "BIES"}[scheme]
    return ["O"] + [f"{p}-{t}" for t in sorted(types) for p in prefixes]


class WindowEncoder:
    """Feature vocabularies, tag set and window size: turns sentences into id tensors.

    Args:
        vocabs: feature name -> :class:`Vocab` (keys in feature order).
        tags: the tag strings in the *training* scheme; id ``i`` is ``tags[i]``.
        half_width: words on each side of the centre (window ``2h+1``).
        scheme: the training scheme (``IOB2`` or ``IOBES`` usually).
        source_scheme: the scheme of the training file, used to read gold
            tags and to write predictions back in the data's own scheme.
    """

    def __init__(
        self,
        vocabs: Mapping[str, Vocab],
        tags: Sequence[str],
        *,
        half_width: int,
        scheme: str,
        source_scheme: str,
        trained_words: int | None = None,
        gazetteer: Gazetteer | None = None,
    ):
        if not vocabs:
            raise ConfigError("data.features: at least one feature is needed")
        for name in vocabs:
            check_feature_name(name)
        if isinstance(half_width, bool) or not isinstance(half_width, int) or half_width < 0:
            raise ConfigError(f"data.half_width must be an integer >= 0, got {half_width!r}")
        for option, value in (("data.tag_scheme", scheme), ("data.scheme", source_scheme)):
            if value not in SCHEMES:
                raise ConfigError(f"{option}: unknown tag scheme {value!r}; choose one of {', '.join(SCHEMES)}")
        self.vocabs = dict(vocabs)
        self.features = list(self.vocabs)
        if ("gazetteer" in self.features) != (gazetteer is not None):
            raise ConfigError("the gazetteer feature needs a gazetteer (and a gazetteer needs the feature): "
                              "build the encoder with WindowEncoder.build")
        self.gazetteer = gazetteer
        # Channels of each feature in a window's [C, W] ids, in feature order.
        self.channels: list[slice] = []
        for name in self.features:
            start = self.channels[-1].stop if self.channels else 0
            self.channels.append(slice(start, start + feature_width(name)))
        self.tags = list(tags)
        self.tag_index = {t: i for i, t in enumerate(self.tags)}
        self.half_width = half_width
        self.scheme = scheme
        self.source_scheme = source_scheme
        # Word ids >= trained_words come from pretrained_vocab only: no training
        # window holds them, so their vectors never receive a gradient.
        n_words = len(self.vocabs["word"]) if "word" in self.vocabs else 0
        self.trained_words = n_words if trained_words is None else int(trained_words)
        if not 0 <= self.trained_words <= n_words:
            raise ConfigError(f"trained_words must be in [0, {n_words}], got {trained_words!r}")
        self._keys = [_key_function(name) for name in self.features]
        # A boundary position's N-gram channels: the boundary id, then padding.
        edge = [(v.index(BOS), v.index(EOS), v.pad_id or 0, s.stop - s.start)
                for v, s in zip(self.vocabs.values(), self.channels)]
        self._bos_ids = tuple(i for b, _, pad, width in edge for i in (b, *[pad] * (width - 1)))
        self._eos_ids = tuple(i for _, e, pad, width in edge for i in (e, *[pad] * (width - 1)))
        self._gazetteer_channel = (self.channels[self.features.index("gazetteer")].start
                                  if gazetteer is not None else None)
        self._doc_casing_channel = (self.channels[self.features.index("doc_casing")].start
                                    if "doc_casing" in self.vocabs else None)
        self._doc_context_channels = (self.channels[self.features.index("doc_context")]
                                      if "doc_context" in self.vocabs else None)
        self._ids_of: dict[str, tuple[int, ...]] = {}
        self._conversion: tuple[torch.Tensor, list[str]] | None = None  # built by _conversion_table

    # -- construction -----------------------------------------------------

    @classmethod
    def build(
        cls,
        sentences: Sequence[Sentence],
        *,
        features: Sequence[str] = ("word", "casing"),
        half_width: int = 2,
        scheme: str = "IOBES",
        source_scheme: str = "auto",
        min_freq: int = 1,
        affix_min_freq: int = 2,
        extra_words: Iterable[str] = (),
    ) -> WindowEncoder:
        """Build the vocabularies from training sentences.

        ``min_freq`` applies to words, ``affix_min_freq`` to shapes,
        affixes, N-grams and ``doc_context`` keys (rare ones share ``<unk>``, which teaches the model what an
        unseen affix looks like).  ``extra_words`` (e.g. the most frequent
        words of a pretrained table) are appended to the word vocabulary so
        that dev and user text find their pretrained vector.  With the
        ``gazetteer`` feature the encoder keeps the gazetteer of all of
        ``sentences`` (:class:`~cs224n_nn.ner.gazetteer.Gazetteer`).
        """
        if not sentences:
            raise ConfigError("cannot build vocabularies from an empty training set")
        features = [check_feature_name(f) for f in features]
        if len(set(features)) != len(features):
            raise ConfigError(f"data.features: a feature is listed twice in {list(features)}")
        if source_scheme == "auto":
            source_scheme = detect_scheme(s.tags for s in sentences)
        tokens = [t for s in sentences for t in s.tokens]
        types = entity_types(s.tags for s in sentences)
        vocabs: dict[str, Vocab] = {}
        trained_words = None
        gazetteer = None
        for name in features:
            key = _key_function(name)
            if name == "word":
                vocab = Vocab.build(tokens, min_freq=min_freq, specials=SPECIALS)
                trained_words = len(vocab)
                extra = [w for w in extra_words if w not in vocab]
                if extra:
                    vocab = Vocab.from_tokens([*vocab.itos[len(SPECIALS) :], *extra], specials=SPECIALS)
            elif name == "casing":
                vocab = Vocab.from_tokens(CASING_CATEGORIES[1:], normalize=False, specials=SPECIALS)
            elif name == "gazetteer":
                gazetteer = Gazetteer.from_sentences(sentences, source_scheme)
                vocab = Vocab.from_tokens(gazetteer_keys(types), normalize=False, specials=SPECIALS)
            elif name == "doc_casing":
                vocab = Vocab.from_tokens(DOC_CASINGS, normalize=False, specials=SPECIALS)
            elif name == "doc_context":
                keys = (k for s, d in zip(sentences, document_of_each(sentences))
                        for token_keys in d.context.keys(s.tokens) for k in token_keys)
                vocab = Vocab.build(keys, min_freq=affix_min_freq, normalize=False, specials=SPECIALS)
            elif _NGRAM.match(name):
                grams = (g for t in tokens for g in key(t))
                vocab = Vocab.build(grams, min_freq=affix_min_freq, normalize=False, specials=SPECIALS)
            else:
                vocab = Vocab.build(map(key, tokens), min_freq=affix_min_freq, normalize=False, specials=SPECIALS)
            vocabs[name] = vocab
        return cls(
            vocabs, tag_set(types, scheme) if scheme in SCHEMES else [], half_width=half_width,
            scheme=scheme, source_scheme=source_scheme, trained_words=trained_words, gazetteer=gazetteer,
        )

    # -- encoding ---------------------------------------------------------

    @property
    def window(self) -> int:
        """Positions per window, ``2 * half_width + 1``."""
        return 2 * self.half_width + 1

    def clear_memo(self) -> None:
        """Forget the remembered token ids and the conversion table (the state of a freshly loaded encoder)."""
        self._ids_of.clear()
        self._conversion = None

    def token_ids(self, token: str) -> tuple[int, ...]:
        """The ids of ``token`` in every channel, in feature order (memoised; ``gazetteer``: its ``O`` id)."""
        ids = self._ids_of.get(token)
        if ids is None:
            found: list[int] = []
            for vocab, key, channels in zip(self.vocabs.values(), self._keys, self.channels):
                if channels.stop - channels.start == 1:
                    found.append(vocab.stoi.get(vocab.key(key(token)), vocab.unk_id))
                else:
                    grams = [vocab.stoi.get(g, vocab.unk_id) for g in key(token)]
                    found += grams + [vocab.pad_id] * (channels.stop - channels.start - len(grams))
            ids = tuple(found)
            # Word types repeat (100,000 tokens of news hold about 20,000): each
            # is looked up once; the bound keeps an endless stream from growing it.
            if len(self._ids_of) < _MEMO_LIMIT:
                self._ids_of[token] = ids
        return ids

    def encode_tokens(self, tokens: Sequence[str], gazetteer: Gazetteer | None = None,
                      document: Document | None = None) -> torch.Tensor:
        """The windows of every token of one sentence: ``LongTensor[L, C, W]`` (``gazetteer``, ``document``:
        see :meth:`encode_batch`)."""
        return self.encode_batch([tokens], None if gazetteer is None else [gazetteer],
                                 None if document is None else [document])

    @property
    def uses_documents(self) -> bool:
        """Whether a sentence's windows depend on its document (the ``doc_casing`` or ``doc_context`` feature)."""
        return any(name in DOCUMENT_FEATURES for name in self.features)

    def documents_of(self, sentences: Sequence[Sentence]) -> list[Document] | None:
        """What :meth:`encode_batch` takes as ``documents`` for ``sentences``: each one's document
        (:func:`~cs224n_nn.ner.documents.document_of_each`), or None when the encoder does not use them."""
        return document_of_each(sentences) if self.uses_documents else None

    def encode_batch(self, sentences: Sequence[Sequence[str]],
                     gazetteers: Sequence[Gazetteer] | None = None,
                     documents: Sequence[Document] | None = None) -> torch.Tensor:
        """The windows of every token of several sentences laid end to end: ``LongTensor[N, C, W]``.

        The same windows as ``torch.cat([encode_tokens(s) for s in sentences])``,
        built with one tensor for the whole batch: each sentence is padded
        with ``h`` boundary columns on each side and the padded sentences are
        laid end to end as rows of ``[M, C]`` ids (``M = N + 2h S``); window
        ``w`` of the token at flat position ``n`` of sentence ``j`` is row
        ``n + 2h j + w``.  The ids of a token come from :meth:`token_ids`
        once per *distinct* token of the batch: the Python work per token is
        one dictionary lookup.

        The ``gazetteer`` channel is then overwritten with each sentence's
        matches (:meth:`Gazetteer.match`), by the encoder's own gazetteer or,
        for training sentences, ``gazetteers[j]`` for sentence ``j`` (the
        held-out folds' one, :func:`~cs224n_nn.ner.gazetteer.fold_gazetteers`).
        Likewise the ``doc_casing`` and ``doc_context`` channels with ``documents[j]``,
        sentence ``j``'s document (:func:`~cs224n_nn.ner.documents.document_of_each`);
        without ``documents`` each sentence is a document of its own.
        """
        h, width = self.half_width, self.window
        if gazetteers is not None and len(gazetteers) != len(sentences):
            raise ValueError(f"encode_batch: {len(gazetteers)} gazetteers for {len(sentences)} sentences")
        if documents is not None and len(documents) != len(sentences):
            raise ValueError(f"encode_batch: {len(documents)} documents for {len(sentences)} sentences")
        # Row 0 holds the <s> ids, row 1 the </s> ids, row r >= 2 the (r-2)-th distinct token's.
        rows: dict[str, int] = {}
        row_of = rows.setdefault
        index: list[int] = []
        lengths: list[int] = []
        for tokens in sentences:
            index += [0] * h
            # setdefault gives a new token the next free row, a seen one its row.
            index += [row_of(t, len(rows) + 2) for t in tokens]
            index += [1] * h
            lengths.append(len(tokens))
        n = sum(lengths)
        if n == 0:
            return torch.empty(0, len(self.features), width, dtype=torch.long)
        table = torch.tensor([self._bos_ids, self._eos_ids, *map(self.token_ids, rows)], dtype=torch.long)
        padded = table[torch.tensor(index, dtype=torch.long)]  # [M, C]
        if self._gazetteer_channel is not None:
            matchers = [self.gazetteer] * len(sentences) if gazetteers is None else gazetteers
            padded[:, self._gazetteer_channel] = self._sentence_keyed_ids(
                "gazetteer", (g.match(tokens) for g, tokens in zip(matchers, sentences)))
        if self.uses_documents:
            docs = [Document([tokens]) for tokens in sentences] if documents is None else documents
            if self._doc_casing_channel is not None:
                padded[:, self._doc_casing_channel] = self._sentence_keyed_ids(
                    "doc_casing", (d.casing.keys(tokens) for d, tokens in zip(docs, sentences)))
            if self._doc_context_channels is not None:
                padded[:, self._doc_context_channels] = self._sentence_keyed_ids(
                    "doc_context", (d.context.keys(tokens) for d, tokens in zip(docs, sentences)))
        # unfold gives [M - 2h, C, W]: window i covers padded rows i .. i + 2h.
        windows = padded.unfold(0, width, 1)
        sentence = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths, dtype=torch.long))
        return windows[torch.arange(n) + 2 * h * sentence]

    def _sentence_keyed_ids(self, feature: str, keys: Iterable[Sequence]) -> torch.Tensor:
        """The channels of a feature whose keys depend on more than the token (``gazetteer``, ``doc_casing``,
        ``doc_context``), as :meth:`encode_batch`'s padded rows: each sentence's ``keys`` (one per token; for a
        bag, a list per token) between the boundary ids. ``[M]`` for one channel, ``[M, slots]`` for a bag."""
        vocab = self.vocabs[feature]
        stoi, slots = vocab.stoi, feature_width(feature)
        if slots == 1:
            bos, eos = [stoi[BOS]] * self.half_width, [stoi[EOS]] * self.half_width
            ids: list[int] = []
            for sentence_keys in keys:
                ids += bos
                ids += map(stoi.__getitem__, sentence_keys)
                ids += eos
            return torch.tensor(ids, dtype=torch.long)
        # A bag: at the edges the encoder's boundary rows (the boundary id, then padding, as for charN);
        # a token's ids, then padding.
        pad, unk = vocab.pad_id or 0, vocab.unk_id
        channels = self.channels[self.features.index(feature)]
        bos = [list(self._bos_ids[channels])] * self.half_width
        eos = [list(self._eos_ids[channels])] * self.half_width
        rows: list[list[int]] = []
        for sentence_keys in keys:
            rows += bos
            for token_keys in sentence_keys:
                ids = [stoi.get(k, unk) for k in token_keys[:slots]]
                rows.append(ids + [pad] * (slots - len(ids)))
            rows += eos
        return torch.tensor(rows, dtype=torch.long)

    def encode_tags(self, tags: Sequence[str], *, where: str = "", lines: Sequence[int] = (),
                    path: str | None = None) -> torch.Tensor:
        """Gold tags (in the source scheme) as training-scheme ids, ``LongTensor[L]``.

        A tag that is not valid, or whose entity type the training data
        lacks, is a :class:`DataFormatError`: with ``path`` and the tokens'
        file ``lines`` it names ``path:line`` and the tag as written there;
        otherwise ``where`` prefixes the message.
        """
        def fail(i: int | None, reason: str, fallback: str) -> DataFormatError:
            if path is not None and i is not None and i < len(lines):
                return DataFormatError(f"tag {tags[i]!r} {reason}", path=path, line=lines[i])
            return DataFormatError(f"{where}{fallback}")

        try:
            converted = convert_tags(tags, self.source_scheme, self.scheme)
        except ValueError as e:
            position = re.search(r"at position (\d+)", str(e))
            raise fail(int(position.group(1)) if position else None,
                       f"does not fit the file's {self.source_scheme} tag scheme", str(e)) from None
        try:
            return torch.tensor([self.tag_index[t] for t in converted], dtype=torch.long)
        except KeyError as e:
            i = converted.index(e.args[0])
            raise fail(i, f"has an entity type the training data lacks (known types: {', '.join(self.entity_types)})",
                       f"tag {e.args[0]!r} has an entity type the training data lacks "
                       f"(known tags: {', '.join(self.tags)})") from None

    @property
    def entity_types(self) -> list[str]:
        """The entity types of the tag set, sorted (``LOC, MISC, ORG, PER`` for CoNLL-2003)."""
        return sorted({t.split("-", 1)[1] for t in self.tags if "-" in t})

    def decode_tags(self, ids: Iterable[int]) -> list[str]:
        """Predicted ids -> tags in the *source* scheme (the data's own)."""
        ids = torch.as_tensor([int(i) for i in ids], dtype=torch.long)
        return self.decode_batch(ids, torch.tensor([ids.numel()]))[0]

    def decode_batch(self, ids: torch.Tensor, lengths: torch.Tensor | Sequence[int]) -> list[list[str]]:
        """:meth:`decode_tags` of every sentence of a batch: ids ``[N]`` laid end to end, ``lengths [S]``.

        :func:`~cs224n_nn.ner.conll.convert_tags` reads a sentence's chunks and
        writes them again; whether a token opens or closes a chunk depends only
        on its own tag and its neighbours' (conlleval's rules, and IOB1's
        ``B-`` on whether the previous token is of the same type), so the
        converted tag of token ``t`` is a function of ``(y_{t-1}, y_t,
        y_{t+1})``, ``None`` past the sentence's edges.  That function is
        tabulated once from ``convert_tags`` itself on every such triple
        (:meth:`_conversion_table`) and applied to the whole batch as one
        tensor lookup.
        """
        table, names = self._conversion_table()
        ids = torch.as_tensor(ids).reshape(-1).to("cpu", torch.long)
        lengths = torch.as_tensor(lengths).reshape(-1).to("cpu", torch.long)
        if ids.numel() != int(lengths.sum()):
            raise ValueError(f"decode_batch: {ids.numel()} ids for sentence lengths summing to {int(lengths.sum())}")
        k = len(self.tags)
        if ids.numel() and not (0 <= int(ids.min()) and int(ids.max()) < k):
            raise ValueError(f"decode_batch: tag ids must be in [0, {k}), got {int(ids.min())}..{int(ids.max())}")
        ends = lengths.cumsum(0)
        starts = ends - lengths
        edge = torch.full((1,), k, dtype=torch.long)  # the "no neighbour" id
        prev = torch.cat([edge, ids[:-1]])
        after = torch.cat([ids[1:], edge])
        full = lengths > 0
        prev[starts[full]] = k
        after[ends[full] - 1] = k
        converted = list(map(names.__getitem__, table[prev, ids, after].tolist()))
        return [converted[s:e] for s, e in zip(starts.tolist(), ends.tolist())]

    def _conversion_table(self) -> tuple[torch.Tensor, list[str]]:
        """``table [K+1, K, K+1]`` and ``names``: ``names[table[a, b, c]]`` is tag ``b`` converted to the source
        scheme between neighbours ``a`` and ``c`` (id ``K``: no neighbour), read off :func:`convert_tags`."""
        if self._conversion is None:
            k = len(self.tags)
            number: dict[str, int] = {}  # converted tag -> its index in names (first seen first)
            flat = []
            for a, b, c in itertools.product(range(k + 1), range(k), range(k + 1)):
                left = [self.tags[a]] if a < k else []
                right = [self.tags[c]] if c < k else []
                tag = convert_tags([*left, self.tags[b], *right], self.scheme, self.source_scheme)[len(left)]
                flat.append(number.setdefault(tag, len(number)))
            self._conversion = (torch.tensor(flat, dtype=torch.long).reshape(k + 1, k, k + 1), list(number))
        return self._conversion

    # -- checkpoints ------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Plain types only, safe for ``torch.load(weights_only=True)``."""
        return {
            "features": {name: vocab.state_dict() for name, vocab in self.vocabs.items()},
            "tags": list(self.tags),
            "half_width": self.half_width,
            "scheme": self.scheme,
            "source_scheme": self.source_scheme,
            "trained_words": self.trained_words,
            **({"gazetteer": self.gazetteer.state_dict()} if self.gazetteer is not None else {}),
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> WindowEncoder:
        """Rebuild an encoder saved by :meth:`state_dict`; CheckpointError if malformed."""
        try:
            vocabs = {name: Vocab.from_state_dict(v) for name, v in state["features"].items()}
            return cls(
                vocabs, list(state["tags"]), half_width=state["half_width"],
                scheme=state["scheme"], source_scheme=state["source_scheme"],
                trained_words=state.get("trained_words"),
                gazetteer=Gazetteer.from_state_dict(state["gazetteer"]) if "gazetteer" in state else None,
            )
        except CheckpointError:
            raise
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise CheckpointError(f"the checkpoint's feature encoder is malformed ({type(e).__name__}: {e})") from None


# ---------------------------------------------------------------------------
# datasets


class WindowDataset(Dataset):
    """Every window of some sentences, for shuffled training.

    Holds ``windows: LongTensor[N, C, W]`` and ``tags: LongTensor[N]`` for the
    ``N`` tokens; item ``i`` is ``{"windows": [C, W], "tags": []}``, so the
    default collate stacks a batch.  ``gazetteers``: the one each sentence is
    matched with (training: :func:`~cs224n_nn.ner.gazetteer.fold_gazetteers`),
    by default the encoder's.
    """

    def __init__(self, encoder: WindowEncoder, sentences: Sequence[Sentence], *, name: str = "<data>",
                 gazetteers: Sequence[Gazetteer] | None = None):
        windows, tags = [], []
        documents = encoder.documents_of(sentences)
        for i, s in enumerate(sentences):
            windows.append(encoder.encode_tokens(s.tokens, None if gazetteers is None else gazetteers[i],
                                                 None if documents is None else documents[i]))
            tags.append(encoder.encode_tags(s.tags, where=f"{name}: sentence {i + 1}: ", lines=s.lines, path=name))
        self.windows = torch.cat(windows)
        self.tags = torch.cat(tags)

    def __len__(self) -> int:
        return self.tags.numel()

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"windows": self.windows[i], "tags": self.tags[i]}


def encode_sentence(
    encoder: WindowEncoder, sentence: Sentence, where: str = "", labeled: bool = True, path: str | None = None,
    gazetteer: Gazetteer | None = None, document: Document | None = None,
) -> dict[str, Any]:
    """One sentence as ``{"windows": [L, C, W], "tags": [L]}`` (tags all 0 when not ``labeled``).

    ``gazetteer`` replaces the encoder's for this sentence (a training sentence's held-out one);
    ``document``: the sentence's document (the ``doc_casing`` and ``doc_context`` features; default: the sentence alone).
    """
    if labeled:
        tags = encoder.encode_tags(sentence.tags, where=where, lines=sentence.lines, path=path)
    else:
        tags = torch.zeros(len(sentence), dtype=torch.long)
    return {"windows": encoder.encode_tokens(sentence.tokens, gazetteer, document), "tags": tags}


class SentenceDataset(Dataset):
    """Whole sentences (evaluation, ``sentence_ll`` training): item ``i`` is one sentence's windows and tags.

    ``gazetteers`` as for :class:`WindowDataset`.
    """

    def __init__(self, encoder: WindowEncoder, sentences: Sequence[Sentence], *, name: str = "<data>",
                 gazetteers: Sequence[Gazetteer] | None = None):
        documents = encoder.documents_of(sentences)
        self.items = [
            encode_sentence(encoder, s, f"{name}: sentence {i + 1}: ", True, name,
                            None if gazetteers is None else gazetteers[i], None if documents is None else documents[i])
            for i, s in enumerate(sentences)
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


class StreamingSentences(IterableDataset):
    """Sentences encoded one at a time as they are read (prediction on large input).

    ``source`` is a callable returning a fresh iterator of :class:`Sentence`
    (e.g. ``lambda: iter_conll(path)``), so memory stays bounded by one
    batch whatever the input size (with a document feature: by one
    document, :func:`~cs224n_nn.ner.documents.iter_documents`).  With
    ``labeled=False`` the gold tags are ignored (raw text).
    """

    def __init__(self, encoder: WindowEncoder, source: Callable[[], Iterator[Sentence]], *, labeled: bool = True,
                 name: str = "<input>"):
        self.encoder = encoder
        self.source = source
        self.labeled = labeled
        self.name = name

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # One sentence at a time, or one document at a time where the encoder counts documents' words.
        groups = iter_documents(self.source()) if self.encoder.uses_documents else ([s] for s in self.source())
        i = 0
        for group in groups:
            for s, document in zip(group, self.encoder.documents_of(group) or [None] * len(group)):
                i += 1
                if len(s):
                    yield encode_sentence(self.encoder, s, f"{self.name}: sentence {i}: ", self.labeled, self.name,
                                          document=document)


def collate_sentences(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Lay whole sentences end to end.

    Returns ``windows [N, C, W]``, ``tags [N]`` and ``lengths [S]``, the
    layout :class:`~cs224n_nn.ner.metrics.EntityF1` expects.
    """
    return {
        "windows": torch.cat([it["windows"] for it in items]),
        "tags": torch.cat([it["tags"] for it in items]),
        "lengths": torch.tensor([len(it["tags"]) for it in items], dtype=torch.long),
    }
