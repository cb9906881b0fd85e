"""The window NER network's training as a LightningModule.

:class:`WindowNERModule` is a thin LightningModule around
:class:`~cs224n_nn.ner.network.WindowNERNetwork` (the notes' window
classifier as a plain torch module, with its maths): it says what a
training, validation, test and predict step is, builds the optimizer and
schedule of :mod:`cs224n_nn.optim`, adds the optional L2 penalty
``lambda * sum ||W||_F^2`` without biases (:func:`cs224n_nn.regularize.l2_penalty`),
logs the loss, and decides whether the large embedding tables take sparse
gradients from the optimizer and the Trainer's settings.  The scores it
logs (entity P/R/F1, token accuracy) and its predict step are those of
:class:`~cs224n_nn.ner.tagger.TaggerModule`, which it extends.  The Trainer
decides where it runs (no device or loop code here).

The module's state is its network's: its ``state_dict()`` carries the
network's own keys, which are the checkpoint file's (format and safe loading:
:mod:`cs224n_nn.ner.checkpoint_format`; :func:`load_window_ner` is re-exported
here).  The token confusion matrix CSV is written by the
:class:`~cs224n_nn.ner.callbacks.ConfusionMatrixCSV` callback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from cs224n_nn import optim as coptim
from cs224n_nn.errors import CS224nError, ConfigError
from cs224n_nn.ner.checkpoint_format import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_KEY,
    READABLE_FORMATS,
    load_window_ner,
    upgrade_state_dict,
)
from cs224n_nn.ner.network import (  # the network's names, importable from here as before the split
    ACTIVATIONS,
    DECODERS,
    DEFAULT_AFFIX_DIM,
    DEFAULT_DIMS,
    FORBIDDEN_SCORE,
    LOSSES,
    SPARSE_MIN_ROWS,
    WindowClassifier,
    WindowNERNetwork,
    WORD_VECTORS,
    WordEmbedding,
    check_number,
    choose,
)
from cs224n_nn.ner.tagger import TaggerModule
from cs224n_nn.regularize import l2_penalty

__all__ = [
    "ACTIVATIONS",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_KEY",
    "DECODERS",
    "FORBIDDEN_SCORE",
    "LOSSES",
    "NonFiniteLossError",
    "OPTIMIZERS",
    "READABLE_FORMATS",
    "SCHEDULES",
    "SPARSE_MIN_ROWS",
    "WindowClassifier",
    "WindowNERModule",
    "WindowNERNetwork",
    "WordEmbedding",
    "load_window_ner",
    "upgrade_state_dict",
]

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
# The network's arguments, passed through from the module's.
NETWORK_ARGS = ("feature_dims", "word_vectors", "freeze_word_vectors", "unknown_init", "hidden_dims", "activation",
                "dropout", "embedding_dropout", "loss", "margin", "decode", "word_dropout", "label_smoothing")
_NETWORK = "network."


class NonFiniteLossError(CS224nError, FloatingPointError):
    """The training loss became NaN or infinite; names the step."""


def _state_out(module: torch.nn.Module, state: dict[str, Any], prefix: str, local_metadata) -> None:
    # The module's weights are all its network's: keep the network's own keys
    # (checkpoint format 2, files written before the split) rather than "network.*".
    inner = prefix + _NETWORK
    for key in [k for k in state if k.startswith(inner)]:
        state[prefix + key[len(inner):]] = state.pop(key)


def _state_in(module: torch.nn.Module, state: dict[str, Any], prefix: str, *args) -> None:
    # The inverse of _state_out, before the keys are matched to the submodules.
    inner = prefix + _NETWORK
    for key in [k for k in state if k.startswith(prefix) and not k.startswith(inner)]:
        state[inner + key[len(prefix):]] = state.pop(key)


class WindowNERModule(TaggerModule):
    """Window classifier for NER trained under Lightning (the maths: :mod:`cs224n_nn.ner.network`).

    Args:
        encoder: the feature encoder's ``state_dict()``; the training command
            fills it in from the data module (``data.encoder_state``).
        feature_dims, word_vectors, freeze_word_vectors, unknown_init,
        hidden_dims, activation, dropout, embedding_dropout, loss, margin,
        decode, word_dropout, label_smoothing: the network's (:class:`~cs224n_nn.ner.network.WindowNERNetwork`).
            With ``loss: sentence_ll`` training batches are whole sentences.
        optimizer: ``sgd``, ``adagrad``, ``adadelta``, ``rmsprop``, ``adam`` or ``adamw``;
            ``lr`` its learning rate, ``optimizer_args`` its other keywords.
        schedule: ``none``, ``step_annealing``, ``exponential_decay`` or
            ``inverse_time_decay`` with ``schedule_args``, stepped per ``schedule_interval``.
        weight_decay: ``lambda`` of the L2 penalty added to the loss (biases excluded).
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
        word_dropout: float = 0.0,
        label_smoothing: float = 0.0,
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
        choose("model.optimizer", optimizer, OPTIMIZERS)
        choose("model.schedule", schedule, SCHEDULES)
        choose("model.schedule_interval", schedule_interval, ("epoch", "step"))
        # Checked here, before the Trainer prints its model summary: an L2 weight
        # below 0 rewards large weights.
        check_number("model.weight_decay", weight_decay, 0.0, strict=False)
        check_number("model.lr", lr, 0.0, strict=True)
        self.network = WindowNERNetwork(encoder, **{name: self.hparams[name] for name in NETWORK_ARGS})
        self.register_state_dict_post_hook(_state_out)
        self.register_load_state_dict_pre_hook(_state_in)
        self._init_metrics()

    # -- the network's, for the steps and the commands ---------------------

    @property
    def loss_name(self) -> str:
        return self.network.loss_name

    @property
    def trains_on_sentences(self) -> bool:
        """Whether training batches must hold whole sentences (``loss: sentence_ll``)."""
        return self.network.trains_on_sentences

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """Scores ``[B, K]`` for windows ``[B, C, W]`` of feature ids."""
        return self.network(windows)

    def data_loss(self, scores: torch.Tensor, tags: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The network's loss (:meth:`WindowNERNetwork.data_loss`), without the L2 penalty."""
        return self.network.data_loss(scores, tags, lengths)

    def decode_ids(self, scores: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Tag ids ``[N]`` for sentences laid end to end (:meth:`WindowNERNetwork.decode_ids`)."""
        return self.network.decode_ids(scores, lengths)

    def _with_penalty(self, loss: torch.Tensor) -> torch.Tensor:
        if self.hparams.weight_decay:
            loss = loss + l2_penalty(self.network, self.hparams.weight_decay)
        return loss

    def objective(self, scores: torch.Tensor, tags: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The chosen loss, plus the L2 penalty when ``weight_decay > 0``."""
        return self._with_penalty(self.network.data_loss(scores, tags, lengths))

    def training_loss(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The training objective of a batch: :meth:`objective`'s value, by the fewest Function calls
        (:meth:`WindowNERNetwork.training_loss`)."""
        return self._with_penalty(self.network.training_loss(batch))

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

    def _evaluation_step(self, batch: Mapping[str, Any], stage: str) -> torch.Tensor:
        scores = self(batch["windows"])
        n = batch["tags"].numel()
        self.log(f"{stage}/loss", self.data_loss(scores, batch["tags"], batch["lengths"]), batch_size=n, sync_dist=True)
        preds = self.decode_ids(scores, batch["lengths"])
        self._update_metrics(preds, batch, stage)
        return preds

    # -- optimizer, schedule and sparse gradients -------------------------

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
        for table in self.network.sparse_tables():
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
