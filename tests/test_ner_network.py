"""The split of the NER model (issue 14, item 4): the plain network, the thin LightningModule, the
checkpoint format and the confusion-matrix callback."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from cs224n_nn.ner.callbacks import ConfusionMatrixCSV
from cs224n_nn.ner.checkpoints import CHECKPOINT_FORMAT, CHECKPOINT_KEY, load_window_network
from cs224n_nn.ner.conll import Sentence
from cs224n_nn.ner.features import WindowEncoder, collate_sentences, encode_sentence
from cs224n_nn.ner.model import WindowNERModule, load_window_ner
from cs224n_nn.ner.network import WindowNERNetwork

ROOT = Path(__file__).resolve().parents[1]
TRAIN = [
    Sentence(("Museums", "in", "Paris", "are", "amazing"), ("O", "O", "I-LOC", "O", "O")),
    Sentence(("John", "Smith", "visited", "New", "York", "."), ("I-PER", "I-PER", "O", "I-LOC", "I-LOC", "O")),
    Sentence(("Paris", "is", "in", "France"), ("I-LOC", "O", "O", "I-LOC")),
]
ARGS = {"word_vectors": "none", "hidden_dims": [6], "dropout": 0.0}


@pytest.fixture(scope="module")
def encoder():
    return WindowEncoder.build(TRAIN, features=("word", "casing"), half_width=1)


def batch_of(encoder, sentences):
    return collate_sentences([encode_sentence(encoder, s) for s in sentences])


@pytest.mark.parametrize("loss", ["cross_entropy", "max_margin", "sentence_ll"])
def test_the_module_computes_what_its_network_computes(encoder, loss):
    torch.manual_seed(3)
    module = WindowNERModule(encoder=encoder.state_dict(), loss=loss, **ARGS)
    torch.manual_seed(3)
    network = WindowNERNetwork(encoder.state_dict(), loss=loss, **ARGS)  # same seed: the same initial weights
    assert isinstance(network, torch.nn.Module) and not isinstance(network, pl.LightningModule)
    batch = batch_of(encoder, TRAIN)
    torch.testing.assert_close(module(batch["windows"]), network(batch["windows"]), rtol=0, atol=0)
    torch.testing.assert_close(module.training_loss(batch), network.training_loss(batch), rtol=0, atol=0)
    assert module.predict_step(batch, 0) == network.tag(batch)
    # the module's state is the network's, under the network's own keys (checkpoint format 2)
    assert list(module.state_dict()) == list(network.state_dict())
    assert [n for n, _ in module.named_parameters()] == [f"network.{n}" for n, _ in network.named_parameters()]


def test_module_state_dict_round_trips_through_the_network(encoder):
    torch.manual_seed(0)
    module = WindowNERModule(encoder=encoder.state_dict(), **ARGS)
    torch.manual_seed(1)
    other = WindowNERModule(encoder=encoder.state_dict(), **ARGS)
    assert not torch.equal(module.network.classifier[0].weight, other.network.classifier[0].weight)
    other.load_state_dict(module.state_dict())  # strict: no key missing or unexpected
    for key, value in module.state_dict().items():
        assert torch.equal(other.state_dict()[key], value), key
    bare = WindowNERNetwork(encoder.state_dict(), **ARGS)
    bare.load_state_dict(module.state_dict())
    assert torch.equal(bare.classifier[0].weight, module.network.classifier[0].weight)
    with pytest.raises(RuntimeError, match="Missing key"):
        other.load_state_dict({k: v for k, v in module.state_dict().items() if k != "classifier.0.weight"})


def _fit(encoder, tmp_path, callbacks):
    torch.manual_seed(0)
    module = WindowNERModule(encoder=encoder.state_dict(), **ARGS)
    items = [encode_sentence(encoder, s) for s in TRAIN]
    loader = DataLoader(items, batch_size=2, collate_fn=collate_sentences)
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=pl.loggers.CSVLogger(tmp_path),
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=callbacks)
    trainer.fit(module, train_dataloaders=loader, val_dataloaders=loader)
    (result,) = trainer.validate(module, dataloaders=loader, verbose=False)
    return module, trainer, loader, result


def test_confusion_csv_is_the_callbacks_and_counts_every_token(encoder, tmp_path):
    module, trainer, loader, result = _fit(encoder, tmp_path / "with", [ConfusionMatrixCSV()])
    path = Path(trainer.log_dir) / "val_confusion.csv"
    rows = list(csv.reader(path.open(encoding="utf-8")))
    tags = list(encoder.tags)
    assert rows[0] == ["gold \\ predicted", *tags] and [r[0] for r in rows[1:]] == tags
    counts = torch.tensor([[int(v) for v in r[1:]] for r in rows[1:]])
    # what the last validation predicted, counted by (gold, predicted)
    expected = torch.zeros(len(tags), len(tags), dtype=torch.long)
    module.eval()
    with torch.no_grad():
        for batch in loader:
            preds = module.decode_ids(module(batch["windows"]), batch["lengths"])
            for g, p in zip(batch["tags"].tolist(), preds.tolist()):
                expected[g, p] += 1
    assert torch.equal(counts, expected) and counts.sum() == sum(len(s) for s in TRAIN)
    assert counts.trace() / counts.sum() == pytest.approx(result["val/accuracy"])
    # the model itself writes nothing: without the callback there is no file
    _, bare_trainer, _, _ = _fit(encoder, tmp_path / "without", [])
    assert not (Path(bare_trainer.log_dir) / "val_confusion.csv").exists()


def test_checkpoint_rebuilds_module_and_plain_network(encoder, tmp_path):
    module = WindowNERModule(encoder=encoder.state_dict(), loss="sentence_ll", **ARGS)
    with torch.no_grad():
        module.network.crf.transitions.normal_()
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    trainer.strategy.connect(module)
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    stored = torch.load(path, weights_only=True)
    assert stored[CHECKPOINT_KEY]["format"] == CHECKPOINT_FORMAT == 3
    assert "crf.transitions" in stored["state_dict"] and not any(k.startswith("network.") for k in stored["state_dict"])
    loaded, network = load_window_ner(path), load_window_network(path)
    assert isinstance(loaded, WindowNERModule) and type(network) is WindowNERNetwork and not network.training
    batch = batch_of(encoder, TRAIN)
    assert network.tag(batch) == loaded.predict_step(batch, 0) == module.eval().predict_step(batch, 0)
    torch.testing.assert_close(network.crf.transitions, module.network.crf.transitions)


def test_checkpoint_with_word_vectors_of_another_size_rebuilds(encoder, tmp_path):
    """A GloVe file of 4 dimensions sets the word table's width; loading (without the file) reads it back."""
    vectors = tmp_path / "v.txt"
    vectors.write_text("paris 0.1 0.2 0.3 0.4\njohn 0.5 0.6 0.7 0.8\n")
    module = WindowNERModule(encoder=encoder.state_dict(), word_vectors=str(vectors),
                             **{k: v for k, v in ARGS.items() if k != "word_vectors"})
    assert module.network.embeddings[0].embedding_dim == 4
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    trainer.strategy.connect(module)
    path = tmp_path / "v.ckpt"
    trainer.save_checkpoint(path)
    batch = batch_of(encoder, TRAIN)
    with torch.no_grad():
        torch.testing.assert_close(load_window_network(path)(batch["windows"]), module.eval()(batch["windows"]))


def test_network_and_its_loading_need_no_lightning(tmp_path):
    # A fresh process: building, loading and tagging with the plain network imports no Lightning.
    code = (
        "import sys\n"
        "from cs224n_nn.ner.checkpoint_format import read_checkpoint, load_window_network\n"
        "from cs224n_nn.ner.network import WindowNERNetwork\n"
        "print(sorted(m for m in ('pytorch_lightning', 'lightning', 'torchmetrics') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
