"""Lightning callbacks for reliable training runs: checkpoints, exact resume, non-finite gradients.

:class:`BestAndLastCheckpoint`
    Lightning's :class:`~pytorch_lightning.callbacks.ModelCheckpoint` with
    ``save_last=True`` (2.6) rewrites ``last.ckpt`` only at the epochs where
    it also writes a top-k file: after a run whose best epoch is not its
    final one, ``last.ckpt`` holds the best epoch and the final weights are
    saved nowhere.  This subclass writes ``last.ckpt`` at the end of every
    epoch (``best.ckpt`` still only when the monitored score improves).

:class:`EpochTrainingLoss`
    Logs ``train/loss_epoch``, the mean training loss of each epoch
    (weighted by windows per batch), beside the epoch's dev scores.

:class:`RNGStateCheckpoint`
    Lightning 2.x checkpoints hold the weights, the optimizer and the loop
    counters, but not the random number generators.  A run resumed from an
    end-of-epoch checkpoint therefore draws a different shuffling order and
    different dropout masks from an uninterrupted one, even with
    ``seed_everything`` and ``deterministic=True``.  This callback stores
    the generators' states in the checkpoint (as plain tensors and ints, so
    the file still loads with ``torch.load(..., weights_only=True)``) and
    puts them back before training resumes; an interrupted run then ends
    with the same weights, bit for bit, as an uninterrupted one
    (``tests/test_resume.py``; limits in ``docs/scaling.md``).

:class:`NonFiniteGradientStop`
    :class:`~cs224n_nn.ner.model.WindowNERModule` already stops when the
    *loss* is NaN or infinite.  A finite loss can still have an infinite
    gradient (an overflow in the backward pass); one optimizer step later
    every weight it touches is NaN.  This callback checks the gradients
    after the backward pass, before clipping and the optimizer step, and
    stops with :class:`~cs224n_nn.ner.model.NonFiniteLossError` naming the
    global step and the first bad parameter.

:class:`ConfusionMatrixCSV`
    Writes ``val_confusion.csv`` (and ``test_confusion.csv`` after a test
    run): the token confusion matrix of the last evaluation, gold tags as
    rows, predicted tags as columns, beside the logger's files.  The
    training command adds it; a Trainer without a logger writes nothing.
"""

from __future__ import annotations

import csv
import os
import random
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torchmetrics.classification import MulticlassConfusionMatrix

from cs224n_nn.ner.atomic import atomic_write
from cs224n_nn.ner.model import NonFiniteLossError

__all__ = ["BestAndLastCheckpoint", "ConfusionMatrixCSV", "EpochTrainingLoss", "NonFiniteGradientStop",
           "RNGStateCheckpoint"]


class RNGStateCheckpoint(pl.Callback):
    """Save the random generators' states in each checkpoint; restore them on resume.

    Kept: torch's CPU generator (shuffling of a ``RandomSampler`` without
    its own generator, dropout on CPU), each CUDA device's generator
    (dropout on GPU) and Python's ``random``; NumPy's global generator
    where NumPy is installed.  Under DDP the checkpoint holds rank 0's
    states and every rank restores them: ``seed_everything`` gives all ranks
    the same streams, and Lightning's ``DistributedSampler`` shuffles from
    ``seed + epoch``, not from these generators.
    """

    def state_dict(self) -> dict[str, Any]:
        # Called by the Trainer at the moment a checkpoint is written.
        state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": _python_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        numpy_state = _numpy_state()
        if numpy_state is not None:
            state["numpy"] = numpy_state
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Called once when fitting resumes from a checkpoint, before the first
        # batch is drawn, so the next epoch's shuffle is the one the
        # uninterrupted run would have drawn.
        torch.set_rng_state(state_dict["torch"])
        random.setstate(_python_state_from(state_dict["python"]))
        cuda = state_dict.get("cuda")
        if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        if "numpy" in state_dict:
            _set_numpy_state(state_dict["numpy"])


def _python_state() -> dict[str, Any]:
    # random.getstate() is (version, tuple of 625 ints, gauss_next): plain
    # types, but a tensor keeps the checkpoint compact.
    version, internal, gauss = random.getstate()
    return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss}


def _python_state_from(state: dict[str, Any]) -> tuple:
    return state["version"], tuple(int(v) for v in state["internal"].tolist()), state["gauss"]


def _numpy_state() -> dict[str, Any] | None:
    try:
        import numpy as np
    except ImportError:
        return None
    name, keys, pos, has_gauss, cached = np.random.get_state()
    # NumPy arrays would need an allow-list under weights_only=True; a tensor does not.
    return {"name": name, "keys": torch.from_numpy(keys.astype("int64")), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _set_numpy_state(state: dict[str, Any]) -> None:
    import numpy as np

    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state((state["name"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"]))


class NonFiniteGradientStop(pl.Callback):
    """Stop training when a gradient holds NaN or inf, naming the step and the parameter.

    Runs in ``on_before_optimizer_step``: after the backward pass, before
    gradient clipping (which would spread a NaN norm to every gradient)
    and before the update.
    """

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        for name, param in pl_module.named_parameters():
            grad = param.grad
            if grad is not None and grad.is_sparse:  # lazy embedding updates: check the stored rows
                grad = grad._values()
            # One reduction per tensor; .item() syncs with the device once per parameter.
            if grad is not None and not bool(torch.isfinite(grad).all()):
                kind = "nan" if bool(torch.isnan(grad).any()) else "inf"
                raise NonFiniteLossError(
                    f"the gradient of {name} holds {kind} at step {trainer.global_step} "
                    f"(epoch {trainer.current_epoch}); lower model.lr or set trainer.gradient_clip_val"
                )


class BestAndLastCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that also rewrites ``last.ckpt`` at every epoch end, not only with a new best.

    Lightning saves ``last.ckpt`` from ``on_validation_end`` (or
    ``on_train_epoch_end`` when there is no validation) only when a top-k
    file was written at the same step; here, when it was not, the last
    checkpoint is written anyway.  Everything else (``best_model_path``,
    ``best_model_score``, resume state) is Lightning's.
    """

    def _save_last_anyway(self, trainer: pl.Trainer, at_train_epoch_end: bool) -> None:
        if (self.save_last and not self._should_skip_saving_checkpoint(trainer)
                and self._should_save_on_train_epoch_end(trainer) == at_train_epoch_end):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self._save_last_anyway(trainer, at_train_epoch_end=True)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        self._save_last_anyway(trainer, at_train_epoch_end=False)


class EpochTrainingLoss(pl.Callback):
    """Log ``train/loss_epoch``: the epoch's mean training loss, weighted by windows per batch."""

    def __init__(self) -> None:
        self._sum, self._count = 0.0, 0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._sum, self._count = 0.0, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:
            n = batch["tags"].numel()
            self._sum += float(loss.detach()) * n
            self._count += n

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._count:
            pl_module.log("train/loss_epoch", self._sum / self._count, on_step=False, on_epoch=True, sync_dist=True)


class ConfusionMatrixCSV(pl.Callback):
    """Save the token confusion matrix of each validation (and test) as ``{stage}_confusion.csv`` in the log folder.

    Rows are gold tags, columns predicted tags, in the order of
    ``pl_module.encoder.tags``; the predictions are what the module's
    ``validation_step`` / ``test_step`` return (tag ids ``[N]`` for
    ``batch["tags"]``).  Counts are summed over processes under DDP (the
    metric's ``compute()``) and rank 0 writes the file, replacing the
    previous epoch's atomically.  Nothing is written during the sanity check
    or when the Trainer has no logger (``cs224n-nn evaluate``: no log folder,
    and the working directory is not one).
    """

    def __init__(self) -> None:
        self._matrix: MulticlassConfusionMatrix | None = None

    def _start(self, pl_module: pl.LightningModule) -> None:
        self._matrix = MulticlassConfusionMatrix(num_classes=len(pl_module.encoder.tags)).to(pl_module.device)

    def _update(self, outputs, batch) -> None:
        if self._matrix is not None and isinstance(outputs, torch.Tensor):
            self._matrix.update(outputs, batch["tags"])

    def _write(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        matrix, self._matrix = self._matrix, None
        if matrix is None or trainer.logger is None or trainer.sanity_checking:
            return
        counts = matrix.compute()  # a collective under DDP: every rank computes
        # Under DDP, trainer.log_dir is a collective too (rank 0 broadcasts it):
        # every rank must read it, or rank 0 waits for the others forever.
        log_dir = trainer.log_dir
        if not trainer.is_global_zero or log_dir is None:
            return
        os.makedirs(log_dir, exist_ok=True)
        tags = pl_module.encoder.tags
        with atomic_write(os.path.join(log_dir, f"{stage}_confusion.csv"), "w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow(["gold \\ predicted", *tags])
            for tag, row in zip(tags, counts.tolist()):
                out.writerow([tag, *row])

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start(pl_module)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._update(outputs, batch)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer, pl_module, "val")

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start(pl_module)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._update(outputs, batch)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer, pl_module, "test")
