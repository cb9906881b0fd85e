"""``EpochCSVLogger``: ``metrics.csv`` with one row per epoch.

Lightning's :class:`~pytorch_lightning.loggers.CSVLogger` writes one row per
``log_metrics`` call: training-step rows with only ``train/loss`` and
epoch-end rows with only the dev scores, so most cells are blank.  This
subclass merges everything logged during one epoch into that epoch's row
(``train/loss`` is then the last logged step's value, ``train/loss_epoch``
the epoch mean from :class:`~cs224n_nn.ner.callbacks.EpochTrainingLoss`,
``step`` the last step).  The file is rewritten whole (it is small) through
a temporary file and ``os.replace``.  Rows already in the file are kept, so
a run resumed in its own folder keeps the epochs it did before the
interruption; rows of epochs it redoes are replaced.
"""

from __future__ import annotations

import csv
import os
from typing import Any

from lightning_fabric.loggers.csv_logs import _ExperimentWriter
from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

from cs224n_nn.ner.atomic import atomic_write

__all__ = ["EpochCSVLogger", "read_metrics"]


def _number(text: str) -> float | int | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a ``metrics.csv`` as dicts of numbers (blank cells left out)."""
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: _number(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


class _EpochRowWriter(ExperimentWriter):
    def __init__(self, log_dir: str) -> None:
        self.rows: dict[int, dict[str, Any]] = {}
        self.keys: list[str] = []
        path = os.path.join(log_dir, _ExperimentWriter.NAME_METRICS_FILE)
        if os.path.isfile(path):  # a resumed run: keep what the file holds
            for row in read_metrics(path):
                if "epoch" in row:
                    self.rows[int(row["epoch"])] = row
        super().__init__(log_dir)
        self._resumed_from: int | None = None

    def _check_log_dir_exists(self) -> None:
        # The base class deletes an existing metrics.csv (with a warning); its rows were read above.
        pass

    def log_metrics(self, metrics_dict: dict[str, float], step: int | None = None) -> None:
        values = {k: (v.item() if hasattr(v, "item") else v) for k, v in metrics_dict.items()}
        epoch = int(values.get("epoch", max(self.rows, default=0)))
        if self._resumed_from is None:
            # The first epoch this process logs replaces what an interrupted run left of it and after it.
            self._resumed_from = epoch
            self.rows = {e: r for e, r in self.rows.items() if e < epoch}
        if epoch not in self.rows and self.rows:
            self.save()  # the epochs before are complete: on disk now, so a killed run keeps them
        row = self.rows.setdefault(epoch, {})
        row.update(values)
        row["epoch"] = epoch
        if step is not None:
            row["step"] = step

    def save(self) -> None:
        if not self.rows:
            return
        keys = sorted({k for row in self.rows.values() for k in row} - {"epoch", "step"})
        with atomic_write(self.metrics_file_path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["epoch", "step", *keys])
            writer.writeheader()
            writer.writerows(self.rows[e] for e in sorted(self.rows))


class EpochCSVLogger(CSVLogger):
    """A :class:`~pytorch_lightning.loggers.CSVLogger` writing one merged row per epoch."""

    @property
    @rank_zero_experiment
    def experiment(self) -> _EpochRowWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _EpochRowWriter(log_dir=self.log_dir)
        return self._experiment

    _frozen = False

    def freeze(self) -> None:
        """Ignore what is logged from now on (the re-validation after fit is not an epoch)."""
        self._frozen = True

    def log_metrics(self, metrics, step=None) -> None:
        if not self._frozen:
            super().log_metrics(metrics, step)
