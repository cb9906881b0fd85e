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
    """Tags (in the data's scheme) of each sentence, with the model as it is (eval mode)."""
    from cs224n_nn.ner.features import collate_sentences, encode_sentence

    items = [encode_sentence(model.encoder, s, labeled=False) for s in sentences if len(s)]
    if not items:
        return [[] for _ in sentences]
    batch = collate_sentences(items)
    device = next(model.parameters()).device
    batch["windows"], batch["lengths"] = batch["windows"].to(device), batch["lengths"].to(device)
    with torch.inference_mode():
        tagged = iter(model.predict_step(batch, 0))
    return [next(tagged) if len(s) else [] for s in sentences]


def _format_tagged(tokens: Sequence[str], tags: Sequence[str], scheme: str) -> str:
    width = max((len(t) for t in tokens), default=0)
    lines = [f"{token:<{width}}  {tag}" for token, tag in zip(tokens, tags)]
    found = [f"{' '.join(tokens[s:e])} [{type_}]" for type_, s, e in spans(tags, scheme)]
    lines.append("entities: " + ("; ".join(found) if found else "(none)"))
    return "\n".join(lines)


def _load(path: str, device: str):
    from cs224n_nn.ner.model import load_window_ner

    model = load_window_ner(path)
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


def _trainer_defaults() -> dict:
    loggers = [{"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {"save_dir": "."}}]
    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        loggers.append({"class_path": "pytorch_lightning.loggers.TensorBoardLogger", "init_args": {"save_dir": "."}})
    return {"logger": loggers, "max_epochs": 10, "accelerator": "auto"}


def _make_cli(argv: list[str]):
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
    from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

    from cs224n_nn.ner.datamodule import CoNLLDataModule
    from cs224n_nn.ner.model import WindowNERModule

    class NERLightningCLI(LightningCLI):
        def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
            # Forced callbacks: always present, configurable as --checkpoint.* / --early_stopping.*
            parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
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
                                help="resume training from this checkpoint (e.g. .../checkpoints/last.ckpt)")
            parser.add_argument("--torch_threads", type=int | None, default=None,
                                help="torch.set_num_threads for this run (1 is fastest for this small model "
                                     "on a busy CPU; default: torch's choice)")

    with warnings.catch_warnings():
        # Lightning warns whenever args= and sys.argv are both non-empty, which is
        # always the case under `cs224n-nn train ...`; the args given here win.
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        return _run_cli(NERLightningCLI, WindowNERModule, CoNLLDataModule, argv)


def _run_cli(cli_class, model_class, data_class, argv: list[str]):
    return cli_class(
        model_class,
        data_class,
        args=argv,
        run=False,
        seed_everything_default=42,
        trainer_defaults=_trainer_defaults(),
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"prog": "cs224n-nn train", "description": "Train the window NER model (LightningCLI)."},
    )


def train(argv: list[str]) -> int:
    """``cs224n-nn train --config FILE [--section.key value ...]``.

    Trains, re-validates the best checkpoint on the dev file, prints its
    entity P/R/F1 overall and per type, tags ``--demo_text`` and ends with
    the line ``best checkpoint: PATH``.
    """
    try:
        cli = _make_cli(list(argv))
    except SystemExit as e:  # --help, or a parse error already printed by jsonargparse
        return _exit_code(e)
    trainer, model, data = cli.trainer, cli.model, cli.datamodule
    _set_threads(cli.config.get("torch_threads"), "torch_threads")
    meter = _throughput_meter()
    trainer.callbacks.append(meter)
    started = time.perf_counter()
    trainer.fit(model, datamodule=data, ckpt_path=cli.config.get("ckpt_path"))
    seconds = time.perf_counter() - started
    # The forced --checkpoint.* callback, not a ModelCheckpoint the user added
    # under trainer.callbacks (trainer.checkpoint_callback is just the first one).
    monitor = cli.config["checkpoint"]["monitor"]
    callback = next((c for c in trainer.checkpoint_callbacks if c.monitor == monitor), trainer.checkpoint_callback)
    best = (callback.best_model_path or callback.last_model_path) if callback else ""
    if not best:
        raise CheckpointError("training ended before any checkpoint was written (did validation run?)")
    if trainer.interrupted:
        print("training interrupted; reporting the best checkpoint so far", file=sys.stderr)
    from cs224n_nn.ner.model import load_window_ner

    # Re-validate the trained module with the best weights (Lightning restores
    # them), so the logs keep the run's own hyperparameters.
    results = trainer.validate(model, datamodule=data, ckpt_path=best, verbose=False)
    if not trainer.is_global_zero:
        return 0
    print(f"\ntrained {trainer.current_epoch} epoch(s), {trainer.global_step} steps: {seconds:.1f} s in fit "
          f"(validation included); training alone {meter.tokens / max(meter.seconds, 1e-9):,.0f} tokens/s")
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
    parser.add_argument("--ckpt", required=True, help="checkpoint written by cs224n-nn train")
    parser.add_argument("--data", required=True, help="CoNLL file with gold tags ('sample' for the packaged dev file)")
    parser.add_argument("--batch-size", type=int, default=256, help="sentences per batch")
    parser.add_argument("--accelerator", default="auto", help="Lightning accelerator (auto, cpu, gpu)")
    args = _parse_inference_args(parser, argv)
    if isinstance(args, int):  # --help, or a usage error argparse has printed
        return args
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    from cs224n_nn.ner.datamodule import resolve_data_path
    from cs224n_nn.ner.features import StreamingSentences, collate_sentences
    from cs224n_nn.ner.model import load_window_ner

    _quiet_lightning()
    model = load_window_ner(args.ckpt)
    path = resolve_data_path(args.data, "test")
    sentences = StreamingSentences(model.encoder, lambda: iter_conll(path), name=str(path))
    loader = DataLoader(sentences, batch_size=args.batch_size, collate_fn=collate_sentences)
    trainer = pl.Trainer(accelerator=args.accelerator, devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    results = trainer.test(model, dataloaders=loader, verbose=False)
    print(f"{path} ({args.ckpt})")
    print(_score_table(results[0], "test"))
    return 0


# ---------------------------------------------------------------------------
# predict


def predict(argv: list[str]) -> int:
    """``cs224n-nn predict --ckpt PATH`` with ``--text``, stdin lines, or ``--conll FILE --output FILE``."""
    parser = argparse.ArgumentParser(
        prog="cs224n-nn predict",
        description="Tag text with a trained checkpoint. Without --text or --conll, each line of stdin is a sentence.",
    )
    parser.add_argument("--ckpt", required=True, help="checkpoint written by cs224n-nn train")
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
    lines = [args.text] if args.text is not None else (line.rstrip("\r\n") for line in sys.stdin)
    first = True
    for chunk in _batches(lines, args.batch_size):
        sentences = [Sentence.unlabeled(split(line)) for line in chunk]
        for sentence, tags in zip(sentences, tag_sentences(model, sentences)):
            if not first:
                print()
            first = False
            print(_format_tagged(sentence.tokens, tags, model.encoder.source_scheme), flush=args.text is None)
    return 0


def _predict_conll(model, source: str, output: str, batch_size: int) -> int:
    from cs224n_nn.ner.datamodule import resolve_data_path

    path = resolve_data_path(source, "test")
    started, n_sentences, n_tokens = time.perf_counter(), 0, 0
    try:
        out: TextIO = sys.stdout if output == "-" else open(output, "w", encoding="utf-8", newline="\n")
    except OSError as e:
        raise ConfigError(f"--output {output}: cannot write: {e.strerror}") from None
    try:
        # One batch of sentences in memory at a time, whatever the file size.
        for chunk in _batches(iter_conll(path), batch_size):
            write_conll(out, chunk, tag_sentences(model, chunk))
            n_sentences += len(chunk)
            n_tokens += sum(len(s) for s in chunk)
    finally:
        if out is not sys.stdout:
            out.close()
    seconds = time.perf_counter() - started
    print(f"tagged {n_sentences} sentences ({n_tokens} tokens) in {seconds:.1f} s "
          f"({n_tokens / max(seconds, 1e-9):,.0f} tokens/s) -> {output}", file=sys.stderr)
    return 0
