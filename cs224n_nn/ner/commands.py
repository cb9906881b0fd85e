"""``cs224n-nn train | evaluate | predict``: the NER commands.

Each is a function ``(argv) -> exit code`` that :mod:`cs224n_nn.cli`
dispatches to.  Bad input raises the project's errors
(:class:`~cs224n_nn.errors.CS224nError`), which the dispatcher prints as one
line with exit status 1; argument-parsing errors print a usage line and
exit with status 2 (argparse's and jsonargparse's convention).

``train`` is Lightning's own CLI (:class:`pytorch_lightning.cli.LightningCLI`):
``--config FILE`` plus dotted overrides such as ``--trainer.max_epochs 3``,
``--model.hidden_dims [200]`` or ``--data.train_path FILE``; ``--print_config``
shows the full configuration.  Every run writes CSV logs (and TensorBoard
logs where ``tensorboard`` is installed), the resolved ``config.yaml``, the
token confusion matrix and two checkpoints (``best.ckpt`` by dev entity F1
and ``last.ckpt``) under ``lightning_logs/version_N/``.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import TextIO

import torch

from cs224n_nn.errors import CheckpointError, ConfigError
from cs224n_nn.ner.conll import Sentence, iter_conll, spans, write_conll

__all__ = ["evaluate", "predict", "tag_sentences", "tokenize", "train"]

DEMO_TEXT = "Museums in Paris are amazing"
# Abbreviations with dots ("U.S."), words with inner hyphens or apostrophes,
# numbers with separators ("1,000.5"), then any single other symbol.
_TOKEN = re.compile(r"(?:[^\W\d_]\.){2,}|\d+(?:[.,]\d+)*|\w+(?:[-'\u2019]\w+)*|[^\w\s]")


ENSEMBLE_HELP = ("checkpoint written by cs224n-nn train; several (models of the same data and features, such as "
                 "other seeds) tag as one, by their mean path score")


def tokenize(text: str) -> list[str]:
    """Split raw text into CoNLL-style tokens ("Paris," -> "Paris", ",")."""
    return _TOKEN.findall(text)


def _quiet_lightning() -> None:
    # "GPU available: False ..." and similar banners are noise for evaluate/predict.
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _exit_code(err: SystemExit) -> int:
    return err.code if isinstance(err.code, int) else (0 if err.code is None else 1)


# ---------------------------------------------------------------------------
# inference helpers


def tag_sentences(model, sentences: Sequence[Sentence]) -> list[list[str]]:
    """Tags (in the data's scheme) of each sentence, with the model as it is (eval mode).

    One pass per batch: the windows of all its sentences in one tensor
    (:meth:`WindowEncoder.encode_batch`), one call of the network, one
    Viterbi over the batch, one conversion back to the data's scheme
    (:meth:`WindowEncoder.decode_batch`).  Empty sentences get ``[]``.
    With a document feature (``doc_casing``, ``doc_context``) the words are counted per document
    among ``sentences`` (:func:`_sentence_batches` keeps documents whole).
    """
    kept = [s for s in sentences if len(s)]
    if not kept:
        return [[] for _ in sentences]
    device = next(model.parameters()).device
    batch = {"windows": model.encoder.encode_batch([s.tokens for s in kept],
                                                   documents=model.encoder.documents_of(kept)).to(device),
             "lengths": torch.tensor([len(s) for s in kept], dtype=torch.long, device=device)}
    with torch.inference_mode():
        tagged = iter(model.predict_step(batch, 0))
    return [next(tagged) if len(s) else [] for s in sentences]


def _format_tagged(tokens: Sequence[str], tags: Sequence[str], scheme: str) -> str:
    width = max((len(t) for t in tokens), default=0)
    lines = [f"{token:<{width}}  {tag}" for token, tag in zip(tokens, tags)]
    found = [f"{' '.join(tokens[s:e])} [{type_}]" for type_, s, e in spans(tags, scheme)]
    lines.append("entities: " + ("; ".join(found) if found else "(none)"))
    return "\n".join(lines)


def _load(paths: Sequence[str], device: str):
    """The LightningModule that ``--ckpt PATH [PATH ...]`` names: one trained model, or several as one ensemble."""
    from cs224n_nn.ner.ensemble import load_window_ensemble
    from cs224n_nn.ner.model import load_window_ner
    from cs224n_nn.ner.tagger import EnsembleModule

    model = load_window_ner(paths[0]) if len(paths) == 1 else EnsembleModule(load_window_ensemble(paths))
    return model.to(_device(device))


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device: unknown device {name!r}; use auto, cpu or cuda[:N]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available")
    return device


def _set_threads(threads: int | None, option: str) -> None:
    if threads is None:
        return
    if threads < 1:
        raise ConfigError(f"{option} must be >= 1, got {threads}")
    torch.set_num_threads(threads)


def _batches(items: Iterable, size: int) -> Iterator[list]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _sentence_batches(sentences: Iterable[Sentence], size: int, encoder) -> Iterator[list[Sentence]]:
    """Batches of about ``size`` sentences; for an encoder with a document feature, of whole documents
    (:func:`~cs224n_nn.ner.documents.iter_documents`), so that no document's counts are split."""
    if not encoder.uses_documents:
        yield from _batches(sentences, size)
        return
    from cs224n_nn.ner.documents import iter_documents

    chunk: list[Sentence] = []
    for document in iter_documents(sentences):
        chunk += document
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# ---------------------------------------------------------------------------
# train


def _throughput_meter():
    """A callback counting training tokens and the seconds spent training (validation excluded)."""
    from pytorch_lightning.callbacks import Callback

    class TrainingThroughput(Callback):
        def __init__(self):
            self.tokens, self.seconds, self._start, self._validating = 0, 0.0, 0.0, 0.0

        def on_train_epoch_start(self, trainer, module):
            self._start, self._validating = time.perf_counter(), 0.0

        def on_validation_start(self, trainer, module):
            self._val_start = time.perf_counter()

        def on_validation_end(self, trainer, module):
            self._validating += time.perf_counter() - self._val_start

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self.tokens += batch["tags"].numel()

        def on_train_epoch_end(self, trainer, module):
            self.seconds += time.perf_counter() - self._start - self._validating

    return TrainingThroughput()


RUN_ROOT = "lightning_logs"  # under the working directory, as Lightning's default loggers put it
_RUN_VERSION_ENV = "CS224N_NN_RUN_VERSION"  # rank 0's version folder, read by the DDP ranks it starts
TRAIN_USAGE = ("usage: cs224n-nn train [--config sample|conll2003|FILE ...] [--SECTION.KEY VALUE ...] [--ckpt_path CKPT]\n"
               "Run `cs224n-nn train --help` for every option.")


def _trainer_defaults() -> dict:
    # Both loggers get the same version folder (set in before_instantiate_classes),
    # so a run's CSV, TensorBoard events, config and checkpoints share version_N.
    loggers = [{"class_path": "cs224n_nn.ner.loggers.EpochCSVLogger", "init_args": {"save_dir": "."}}]
    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        loggers.append({"class_path": "pytorch_lightning.loggers.TensorBoardLogger", "init_args": {"save_dir": "."}})
    return {"logger": loggers, "max_epochs": 10, "accelerator": "auto"}


class _QuietFilter(logging.Filter):
    """Drops Lightning's advertising tips ("💡 Tip: ... litlogger")."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


def _quiet_training() -> None:
    # jsonargparse's notes about LightningCLI's own use of its API: nothing a user can act on.
    os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
    import pytorch_lightning  # noqa: F401 - installs the handler the filter goes on

    # A filter on the handler sees the records of every pytorch_lightning.* logger.
    for handler in logging.getLogger("pytorch_lightning").handlers:
        if not any(isinstance(f, _QuietFilter) for f in handler.filters):
            handler.addFilter(_QuietFilter())
    # Lightning 2.6 calls a torch pytree API that torch 2.13 deprecates, once per run.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated")


def _next_version(root: str) -> int:
    try:
        names = os.listdir(root)
    except OSError:
        return 0
    found = [int(n[len("version_"):]) for n in names if n.startswith("version_") and n[len("version_"):].isdigit()]
    return max(found, default=-1) + 1


_reserved: list[str] = []  # version folders this process created for a run (see _release_reserved)


def _reserve_version(root: str) -> str:
    """The next free ``version_N`` under ``root``, created now.

    Creating the folder is what claims it (``os.mkdir`` fails on a folder
    that exists), so two runs started at the same moment in one directory
    (a seed sweep) get two folders instead of sharing, and mixing, one.
    """
    os.makedirs(root, exist_ok=True)
    number = _next_version(root)
    while True:
        try:
            os.mkdir(os.path.join(root, f"version_{number}"))
        except FileExistsError:  # taken since we listed the folder: try the next one
            number += 1
            continue
        _reserved.append(os.path.join(root, f"version_{number}"))
        return f"version_{number}"


def _release_reserved() -> None:
    """Remove the still-empty folders reserved for a run that failed while being set up."""
    while _reserved:
        try:
            os.rmdir(_reserved.pop())  # only an empty folder: nothing written is ever deleted
        except OSError:
            pass


def _forced_checkpoint_state(checkpoint: dict, monitor: str) -> dict | None:
    """The saved state of the ``--checkpoint.*`` callback (the one monitoring ``monitor``)."""
    for key, state in (checkpoint.get("callbacks") or {}).items():
        if "Checkpoint" in str(key) and isinstance(state, dict) and state.get("monitor") == monitor:
            return state
    return None


def _resolve_configs(argv: list[str]) -> list[str]:
    """``--config sample|conll2003`` -> the shipped file; every config file checked for duplicated keys."""
    from cs224n_nn.configs import resolve_config

    out = []
    expect = False
    for arg in argv:
        if expect:
            arg, expect = resolve_config(arg), False
            _check_yaml_keys(arg)
        elif arg in ("--config", "-c"):
            expect = True
        elif arg.startswith("--config="):
            value = resolve_config(arg.split("=", 1)[1])
            _check_yaml_keys(value)
            arg = "--config=" + value
        out.append(arg)
    return out


def _check_yaml_keys(path: str) -> None:
    """ConfigError naming the file, line and key when a mapping repeats a key (YAML would keep the last)."""
    import yaml

    if not os.path.isfile(path):
        return  # jsonargparse reports a missing config file (exit 2)

    class UniqueKeyLoader(yaml.SafeLoader):
        pass

    def construct_mapping(loader, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"--config {path}:{key_node.start_mark.line + 1}: key {key!r} appears twice "
                                  "in the same mapping (YAML would silently keep the last)")
            seen.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    try:
        with open(path, encoding="utf-8") as f:
            yaml.load(f, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError:
        return  # jsonargparse reports malformed YAML with its line (exit 2)
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"--config {path}: cannot read: {e}") from None


def _make_cli(argv: list[str]):
    from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
    from pytorch_lightning.callbacks import EarlyStopping

    from cs224n_nn.ner.callbacks import BestAndLastCheckpoint
    from cs224n_nn.ner.datamodule import CoNLLDataModule
    from cs224n_nn.ner.model import WindowNERModule

    class NERLightningCLI(LightningCLI):
        run_dir: str | None = None  # version_N of this run, when the default loggers are on
        run_dir_existed = False
        resumed: dict | None = None

        def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
            # Forced callbacks: always present, configurable as --checkpoint.* / --early_stopping.*
            parser.add_lightning_class_args(BestAndLastCheckpoint, "checkpoint")
            parser.set_defaults({"checkpoint.monitor": "val/f1", "checkpoint.mode": "max",
                                 "checkpoint.filename": "best", "checkpoint.save_last": True})
            parser.add_lightning_class_args(EarlyStopping, "early_stopping")
            parser.set_defaults({"early_stopping.monitor": "val/f1", "early_stopping.mode": "max",
                                 "early_stopping.patience": 3})
            # The model's embedding tables take their sizes from the vocabularies.
            parser.link_arguments("data.encoder_state", "model.encoder", apply_on="instantiate")
            parser.add_argument("--demo_text", type=str, default=DEMO_TEXT,
                                help="sentence tagged by the best model at the end ('' to skip)")
            parser.add_argument("--ckpt_path", type=str | None, default=None,
                                help="resume training from this checkpoint (e.g. .../checkpoints/last.ckpt); "
                                     "the run continues in that checkpoint's version folder")
            parser.add_argument("--torch_threads", type=int | None, default=None,
                                help="torch.set_num_threads for this run (1 is fastest for this small model "
                                     "on a busy CPU; default: torch's choice)")

        def before_instantiate_classes(self) -> None:
            config = self.config
            ckpt_path = config.get("ckpt_path")
            stored_dir = None
            if ckpt_path:
                from cs224n_nn.ner.checkpoints import read_checkpoint

                try:
                    checkpoint = read_checkpoint(ckpt_path)
                except CheckpointError as e:
                    raise CheckpointError(f"--ckpt_path {e}") from None
                state = _forced_checkpoint_state(checkpoint, config["checkpoint"]["monitor"])
                stored_dir = state.get("dirpath") if state else None
                self.resumed = {"epoch": checkpoint.get("epoch"), "global_step": checkpoint.get("global_step")}
            self._place_run(stored_dir)

        def _place_run(self, stored_dir: str | None) -> None:
            """One version folder for every default logger; on resume, the checkpoint's own folder."""
            loggers = self.config["trainer"].get("logger")
            if not isinstance(loggers, list):
                return
            ours = [lg for lg in loggers if getattr(lg, "init_args", None) is not None
                    and getattr(lg.init_args, "version", None) is None]
            if not ours:
                return
            roots = {os.path.join(str(lg.init_args.get("save_dir", ".")), str(lg.init_args.get("name") or RUN_ROOT))
                     for lg in ours}
            if len(roots) != 1:
                return
            (root,) = roots
            version = None
            if stored_dir and os.path.basename(os.path.normpath(stored_dir)) == "checkpoints":
                folder = os.path.dirname(os.path.normpath(stored_dir))
                if os.path.realpath(os.path.dirname(folder)) == os.path.realpath(root) and os.path.isdir(folder):
                    version = os.path.basename(folder)
            reserved = False
            if version is None:
                version = os.environ.get(_RUN_VERSION_ENV)
            if not version:
                version, reserved = _reserve_version(root), True
            os.environ[_RUN_VERSION_ENV] = version  # DDP ranks started later land in the same folder
            number = version[len("version_"):]
            for lg in ours:
                # an int where it can be: Lightning's progress bar shows v_num=N then, not the name's tail
                lg.init_args.version = int(number) if version.startswith("version_") and number.isdigit() else version
            self.run_dir = os.path.join(root, version)
            # a folder this run reserved is its own: a failed run removes it again (_remove_empty_run)
            self.run_dir_existed = not reserved and os.path.isdir(self.run_dir)

    with warnings.catch_warnings():
        # Lightning warns whenever args= and sys.argv are both non-empty, which is
        # always the case under `cs224n-nn train ...`; the args given here win.
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        return _run_cli(NERLightningCLI, WindowNERModule, CoNLLDataModule, _resolve_configs(list(argv)))


def _run_cli(cli_class, model_class, data_class, argv: list[str]):
    from jsonargparse import ArgumentError
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    try:
        return cli_class(
            model_class,
            data_class,
            args=argv,
            run=False,
            seed_everything_default=42,
            trainer_defaults=_trainer_defaults(),
            save_config_kwargs={"overwrite": True},
            # hparams.yaml without Lightning's `_instantiator` entry: checkpoints load with load_window_ner
            load_from_checkpoint_support=False,
            parser_kwargs={"prog": "cs224n-nn train", "description": "Train the window NER model (LightningCLI).",
                           "exit_on_error": False, "allow_abbrev": False},
        )
    except ArgumentError as e:
        raise _UsageError(" ".join(str(e).split())) from None
    except MisconfigurationException as e:
        raise ConfigError(_trainer_problem(str(e))) from None


class _UsageError(Exception):
    """A command line jsonargparse rejected (exit 2, with a short usage)."""


def _trainer_problem(message: str) -> str:
    first = " ".join(message.split())
    if "can not run on your system" in first or "accelerator is not available" in first or "backend found" in first:
        return f"--trainer.accelerator: that device is not available on this machine ({first[:200]})"
    return f"trainer options: {first[:300]}"


def _remove_empty_run(cli) -> None:
    """Delete the version folder a failed run created, unless it holds a checkpoint."""
    import shutil

    folder = getattr(cli, "run_dir", None)
    if not folder or cli.run_dir_existed or not os.path.isdir(folder):
        return
    for _, _, files in os.walk(folder):
        if any(name.endswith(".ckpt") for name in files):
            return
    shutil.rmtree(folder, ignore_errors=True)


def train(argv: list[str]) -> int:
    """``cs224n-nn train --config FILE [--section.key value ...]``.

    Trains, re-validates the best checkpoint on the dev file, prints its
    entity P/R/F1 overall and per type, tags ``--demo_text``, draws
    ``curves.png`` in the run folder and ends with the line
    ``best checkpoint: PATH``.
    """
    _quiet_training()
    _reserved.clear()
    try:
        cli = _make_cli(list(argv))
    except SystemExit as e:  # --help / --print_config
        _release_reserved()
        return _exit_code(e)
    except _UsageError as e:
        _release_reserved()
        print(f"cs224n-nn train: error: {e}\n{TRAIN_USAGE}", file=sys.stderr)
        return 2
    except BaseException:
        _release_reserved()
        os.environ.pop(_RUN_VERSION_ENV, None)
        raise
    _reserved.clear()  # the run owns its folder now; _remove_empty_run cleans up after a failure
    try:
        return _train(cli)
    except BaseException:
        _remove_empty_run(cli)
        raise
    finally:
        os.environ.pop(_RUN_VERSION_ENV, None)


def _train(cli) -> int:
    from lightning_fabric.utilities.exceptions import MisconfigurationException
    from pytorch_lightning.plugins.io import TorchCheckpointIO

    from cs224n_nn.ner.callbacks import ConfusionMatrixCSV, EpochTrainingLoss
    from cs224n_nn.ner.checkpoints import AtomicCheckpointIO

    trainer, model, data = cli.trainer, cli.model, cli.datamodule
    _set_threads(cli.config.get("torch_threads"), "torch_threads")
    if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # not a plugin the user chose
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()
    meter = _throughput_meter()
    trainer.callbacks.extend([meter, EpochTrainingLoss(), ConfusionMatrixCSV()])
    if trainer.is_global_zero:
        encoder = data.encoder
        print(f"entity types in {data.train_path}: {', '.join(encoder.entity_types) or '(none)'}", flush=True)
    started = time.perf_counter()
    try:
        trainer.fit(model, datamodule=data, ckpt_path=cli.config.get("ckpt_path"))
    except MisconfigurationException as e:
        raise ConfigError(_trainer_problem(str(e))) from None
    except SystemExit:
        # Lightning turns Ctrl-C into a graceful shutdown and sys.exit(1); name what is on disk.
        if not trainer.interrupted:
            raise
    seconds = time.perf_counter() - started
    # The forced --checkpoint.* callback, not a ModelCheckpoint the user added
    # under trainer.callbacks (trainer.checkpoint_callback is just the first one).
    monitor = cli.config["checkpoint"]["monitor"]
    callback = next((c for c in trainer.checkpoint_callbacks if c.monitor == monitor), trainer.checkpoint_callback)
    best = (callback.best_model_path or callback.last_model_path) if callback else ""
    if trainer.interrupted:
        last = callback.last_model_path if callback else ""
        print(f"training interrupted; last checkpoint: {last or '(none written)'}", file=sys.stderr)
        if last:
            print(f"resume with: cs224n-nn train ... --ckpt_path {last}", file=sys.stderr)
        else:
            _remove_empty_run(cli)
        return 130
    if not best:
        raise CheckpointError("training ended before any checkpoint was written (did validation run?)")
    from cs224n_nn.ner.loggers import EpochCSVLogger
    from cs224n_nn.ner.model import load_window_ner

    # The per-epoch CSV is complete; the re-validation below is not an epoch.
    for logger in trainer.loggers:
        if isinstance(logger, EpochCSVLogger):
            logger.save()
            logger.freeze()
    # Re-validate the trained module with the best weights (Lightning restores
    # them), so the logs keep the run's own hyperparameters.
    results = trainer.validate(model, datamodule=data, ckpt_path=best, verbose=False)
    if not trainer.is_global_zero:
        return 0
    print(f"\ntrained {trainer.current_epoch} epoch(s), {trainer.global_step} steps: {seconds:.1f} s in fit "
          f"(validation included); training alone {meter.tokens / max(meter.seconds, 1e-9):,.0f} tokens/s")
    run_dir = getattr(cli, "run_dir", None)
    if run_dir and os.path.isfile(os.path.join(run_dir, "metrics.csv")):
        from cs224n_nn.ner.plots import plot_run

        try:
            print(f"training curves: {plot_run(run_dir)}")
        except ImportError:
            print("training curves: not drawn (install matplotlib: pip install 'cs224n-nn[plots]')")
    print(f"dev ({data.val_path}), best checkpoint:")
    print(_score_table(results[0] if results else {}, "val"))
    if cli.config.get("demo_text"):
        tokens_ = tokenize(cli.config["demo_text"])
        best_model = load_window_ner(best)  # what `cs224n-nn predict` would load
        tags = tag_sentences(best_model, [Sentence.unlabeled(tokens_)])[0]
        print(_format_tagged(tokens_, tags, best_model.encoder.source_scheme))
    print(f"best checkpoint: {best}", flush=True)
    return 0


def _score_table(metrics: dict, stage: str) -> str:
    """``precision recall f1`` rows: overall, then one per entity type."""
    prefix = f"{stage}/"
    types = sorted(k[len(prefix) + 3:] for k in metrics if k.startswith(prefix + "f1_"))
    rows = [("overall", "")] + [(t, f"_{t}") for t in types]
    lines = [f"{'':<10}{'precision':>10}{'recall':>10}{'f1':>10}"]
    for label, suffix in rows:
        values = [float(metrics.get(f"{prefix}{m}{suffix}", float("nan"))) for m in ("precision", "recall", "f1")]
        lines.append(f"{label:<10}" + "".join(f"{v:>10.4f}" for v in values))
    if f"{prefix}accuracy" in metrics:
        lines.append(f"token accuracy {float(metrics[prefix + 'accuracy']):.4f}")
    return "\n".join(lines)


def _parse_inference_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace | int:
    """Add ``--threads``, parse ``argv`` and apply the options evaluate and predict share.

    ``parser`` must already define ``--batch-size``. Returns the parsed
    arguments, or the exit code when argparse stopped (``--help`` or a usage
    error, already printed); a batch size or thread count below 1 raises
    :class:`ConfigError` naming the option.
    """
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return _exit_code(e)
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    _set_threads(args.threads, "--threads")
    return args


# ---------------------------------------------------------------------------
# evaluate


def evaluate(argv: list[str]) -> int:
    """``cs224n-nn evaluate --ckpt PATH --data FILE``: entity P/R/F1 overall and per type."""
    parser = argparse.ArgumentParser(prog="cs224n-nn evaluate", description="Score a checkpoint on a CoNLL file.")
    parser.add_argument("--ckpt", required=True, nargs="+", metavar="PATH", help=ENSEMBLE_HELP)
    parser.add_argument("--data", required=True, help="CoNLL file with gold tags ('sample' for the packaged dev file)")
    parser.add_argument("--batch-size", type=int, default=256, help="sentences per batch")
    parser.add_argument("--accelerator", default="auto", help="Lightning accelerator (auto, cpu, gpu)")
    parser.add_argument("--by-word-kind", action="store_true",
                        help="also score the entities by their words: training words only, a word only the "
                             "pretrained vectors know, an unknown word")
    args = _parse_inference_args(parser, argv)
    if isinstance(args, int):  # --help, or a usage error argparse has printed
        return args
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    from cs224n_nn.ner.datamodule import resolve_data_path
    from cs224n_nn.ner.features import StreamingSentences, collate_sentences

    _quiet_lightning()
    model = _load(args.ckpt, "cpu")
    path = resolve_data_path(args.data, "test")
    sentences = StreamingSentences(model.encoder, lambda: iter_conll(path), name=str(path))
    loader = DataLoader(sentences, batch_size=args.batch_size, collate_fn=collate_sentences)
    trainer = pl.Trainer(accelerator=args.accelerator, devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    results = trainer.test(model, dataloaders=loader, verbose=False)
    print(f"{path} ({', '.join(args.ckpt)})")
    print(_score_table(results[0], "test"))
    if args.by_word_kind:
        print(_word_kind_table(model, path, args.batch_size))
    return 0


def _word_kind_table(model, path, batch_size: int) -> str:
    """:class:`~cs224n_nn.ner.word_kinds.WordKindScores` of the model's tags for the file, batch by batch."""
    from cs224n_nn.ner.word_kinds import WordKindScores

    scores = WordKindScores(model.encoder, model.encoder.source_scheme)
    model.eval()
    for chunk in _sentence_batches(iter_conll(path), batch_size, model.encoder):
        for sentence, tags in zip(chunk, tag_sentences(model, chunk)):
            scores.update(sentence.tokens, sentence.tags, tags)
    return scores.table()


# ---------------------------------------------------------------------------
# predict


def predict(argv: list[str]) -> int:
    """``cs224n-nn predict --ckpt PATH`` with ``--text``, stdin lines, or ``--conll FILE --output FILE``."""
    parser = argparse.ArgumentParser(
        prog="cs224n-nn predict",
        description="Tag text with a trained checkpoint. Without --text or --conll, each line of stdin is a sentence.",
    )
    parser.add_argument("--ckpt", required=True, nargs="+", metavar="PATH", help=ENSEMBLE_HELP)
    parser.add_argument("--text", help="one sentence to tag")
    parser.add_argument("--conll", help="CoNLL file to tag (written with --output as TOKEN GOLD PRED lines)")
    parser.add_argument("--output", help="where --conll writes its TOKEN GOLD PRED lines ('-' for stdout)")
    parser.add_argument("--batch-size", type=int, default=512, help="sentences per batch")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--whitespace", action="store_true", help="split text on whitespace only")
    args = _parse_inference_args(parser, argv)
    if isinstance(args, int):  # --help, or a usage error argparse has printed
        return args
    if args.conll and args.text is not None:
        raise ConfigError("give either --text or --conll, not both")
    if bool(args.conll) != bool(args.output):
        raise ConfigError("--conll FILE and --output FILE go together")
    model = _load(args.ckpt, args.device)
    if args.conll:
        return _predict_conll(model, args.conll, args.output, args.batch_size)
    split = str.split if args.whitespace else tokenize
    if args.text is not None:
        lines: Iterable[str] = [args.text]
    else:
        # readline, not `for line in sys.stdin`: each answer is printed as soon as its line arrives.
        lines = (line.rstrip("\r\n") for line in iter(sys.stdin.readline, ""))
    for i, line in enumerate(lines):
        sentence = Sentence.unlabeled(split(line))
        (tags,) = tag_sentences(model, [sentence])
        print(("\n" if i else "") + _format_tagged(sentence.tokens, tags, model.encoder.source_scheme), flush=True)
    return 0


def _predict_conll(model, source: str, output: str, batch_size: int) -> int:
    """Tag ``source`` into ``output`` through a temporary file beside it, renamed into place at the end.

    An existing ``output`` stays as it was until the whole input is tagged,
    and untouched when tagging fails; an output that is the input itself
    (also through a link) is refused before anything is written.
    """
    from cs224n_nn.ner.atomic import atomic_write
    from cs224n_nn.ner.datamodule import resolve_data_path

    path = resolve_data_path(source, "test")
    if output != "-":
        if os.path.realpath(output) == os.path.realpath(path) or (
                os.path.exists(output) and os.path.exists(path) and os.path.samefile(output, path)):
            raise ConfigError(f"--output {output}: is the input file --conll {source}; "
                              "write the tagged copy to another file")
        if os.path.isdir(output):
            raise ConfigError(f"--output {output}: is a folder; give a file name")
        folder = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(folder):
            raise ConfigError(f"--output {output}: the folder {folder} does not exist")
    started, n_sentences, n_tokens = time.perf_counter(), 0, 0

    def tag_into(out: TextIO) -> None:
        nonlocal n_sentences, n_tokens
        # One batch of sentences in memory at a time, whatever the file size.
        for chunk in _sentence_batches(iter_conll(path), batch_size, model.encoder):
            write_conll(out, chunk, tag_sentences(model, chunk))
            n_sentences += len(chunk)
            n_tokens += sum(len(s) for s in chunk)

    if output == "-":
        tag_into(sys.stdout)
    else:
        try:
            with atomic_write(output, "w", encoding="utf-8", newline="\n") as out:
                tag_into(out)
        except OSError as e:
            raise ConfigError(f"--output {output}: cannot write: {e.strerror or e}") from None
    seconds = time.perf_counter() - started
    print(f"tagged {n_sentences} sentences ({n_tokens} tokens) in {seconds:.1f} s "
          f"({n_tokens / max(seconds, 1e-9):,.0f} tokens/s) -> {output}", file=sys.stderr)
    return 0
