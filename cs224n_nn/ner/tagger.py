"""The Lightning side that every tagger shares: scores per stage and the predict step.

:class:`TaggerModule` logs, after each validation or test pass, the
conlleval entity precision, recall and F1 (overall and per type,
:class:`~cs224n_nn.ner.metrics.EntityF1`) and the token accuracy
(torchmetrics' ``MulticlassAccuracy``) of the tag ids its steps predict,
and tags sentences in ``predict_step``.  Its ``network`` is anything with
an ``encoder`` and a ``tag(batch)``: a
:class:`~cs224n_nn.ner.network.WindowNERNetwork`, which
:class:`~cs224n_nn.ner.model.WindowNERModule` trains, or a
:class:`~cs224n_nn.ner.ensemble.WindowNEREnsemble`, which
:class:`EnsembleModule` evaluates (``cs224n-nn evaluate --ckpt A B C``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from torchmetrics.classification import MulticlassAccuracy

from cs224n_nn.ner.ensemble import WindowNEREnsemble
from cs224n_nn.ner.features import WindowEncoder
from cs224n_nn.ner.metrics import EntityF1

__all__ = ["EnsembleModule", "TaggerModule"]

STAGES = ("val", "test")


class TaggerModule(pl.LightningModule):
    """Entity P/R/F1 and token accuracy per stage, and ``predict_step``, for the ``network`` a subclass sets.

    A subclass assigns ``self.network``, then calls :meth:`_init_metrics`,
    and defines ``_evaluation_step(batch, stage)``, which hands the batch's
    predicted ids to :meth:`_update_metrics` and returns them.
    """

    network: torch.nn.Module

    def _evaluation_step(self, batch: Mapping[str, Any], stage: str) -> torch.Tensor:
        # Abstract: the two taggers predict differently (one network's scores, or an ensemble's mean).
        raise NotImplementedError(f"{type(self).__name__} must define _evaluation_step(batch, stage)")

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        """The batch's predicted tag ids ``[N]`` (callbacks such as ConfusionMatrixCSV read them)."""
        return self._evaluation_step(batch, "val")

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        return self._evaluation_step(batch, "test")

    def _init_metrics(self) -> None:
        tags, scheme = self.encoder.tags, self.encoder.scheme
        self.metrics = torch.nn.ModuleDict({
            stage: torch.nn.ModuleDict({
                "entity": EntityF1(tags, scheme=scheme),
                "accuracy": MulticlassAccuracy(num_classes=len(tags), average="micro"),
            })
            for stage in STAGES
        })

    @property
    def encoder(self) -> WindowEncoder:
        """The network's feature encoder (vocabularies, tags, schemes)."""
        return self.network.encoder

    def _update_metrics(self, preds: torch.Tensor, batch: Mapping[str, Any], stage: str) -> None:
        metrics = self.metrics[stage]
        metrics["entity"].update(preds, batch["tags"], batch["lengths"])
        metrics["accuracy"].update(preds, batch["tags"])

    def _evaluation_epoch_end(self, stage: str) -> None:
        metrics = self.metrics[stage]
        # compute() syncs across processes; the values are then the same on every rank.
        scores = {f"{stage}/{k}": v for k, v in metrics["entity"].compute().items()}
        scores[f"{stage}/accuracy"] = metrics["accuracy"].compute()
        f1 = scores.pop(f"{stage}/f1")
        self.log_dict(scores, prog_bar=False)
        self.log(f"{stage}/f1", f1, prog_bar=True)
        for metric in metrics.values():
            metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._evaluation_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._evaluation_epoch_end("test")

    def predict_step(self, batch: Mapping[str, Any], batch_idx: int) -> list[list[str]]:
        """Tags (in the data's own scheme) for each sentence of the batch."""
        return self.network.tag(batch)


class EnsembleModule(TaggerModule):
    """Evaluates and tags with a :class:`~cs224n_nn.ner.ensemble.WindowNEREnsemble` under Lightning.

    It only scores and tags (nothing to train).  It logs no loss: the
    networks' losses are not one model's.
    """

    def __init__(self, ensemble: WindowNEREnsemble):
        super().__init__()
        self.network = ensemble
        self._init_metrics()

    def _evaluation_step(self, batch: Mapping[str, Any], stage: str) -> torch.Tensor:
        preds = self.network.decode_ids(batch["windows"], batch["lengths"])
        self._update_metrics(preds, batch, stage)
        return preds

