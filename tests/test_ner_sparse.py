"""Lazy (sparse-gradient) embedding updates in the window NER model (issue 5).

The model gives its large tables sparse gradients when the run allows it, so
an optimizer step touches only the rows a batch used. These tests pin down
when that happens, that the sparse run trains the same model where the
mathematics says it must (SGD without momentum is linear in the gradient:
lazy and dense steps are the same), and that rows no batch used stay put.
"""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from cs224n_nn.errors import ConfigError
from cs224n_nn.ner import network as network_module
from cs224n_nn.ner.callbacks import NonFiniteGradientStop
from cs224n_nn.ner.conll import Sentence
from cs224n_nn.ner.features import WindowEncoder
from cs224n_nn.ner.model import NonFiniteLossError, WindowNERModule

TRAIN = [
    Sentence(("Museums", "in", "Paris", "are", "amazing"), ("O", "O", "I-LOC", "O", "O")),
    Sentence(("John", "Smith", "visited", "New", "York", "."), ("I-PER", "I-PER", "O", "I-LOC", "I-LOC", "O")),
    Sentence(("Rome", "is", "old"), ("I-LOC", "O", "O")),
]


@pytest.fixture(scope="module")
def encoder():
    return WindowEncoder.build(TRAIN, features=("word", "casing"), half_width=1)


@pytest.fixture(autouse=True)
def every_table_is_large(monkeypatch):
    # The toy vocabulary has a dozen words; let every table count as large.
    monkeypatch.setattr(network_module, "SPARSE_MIN_ROWS", 1)


def model_for(encoder, **kwargs):
    torch.manual_seed(0)
    return WindowNERModule(encoder=encoder.state_dict(), word_vectors="none", hidden_dims=[6], dropout=0.0,
                           **kwargs)


def batch_of(encoder, sentences):
    windows = torch.cat([encoder.encode_tokens(s.tokens) for s in sentences])
    tags = torch.cat([encoder.encode_tags(s.tags) for s in sentences])
    return windows, tags


def table_flags(model):
    return [t.sparse for t in model.network.sparse_tables()]


def train(model, optimizer, batches):
    for windows, tags in batches:
        optimizer.zero_grad(set_to_none=True)
        model.objective(model(windows), tags).backward()
        optimizer.step()


def test_default_adam_run_uses_sparse_tables(encoder):
    model = model_for(encoder)
    assert model.network.sparse_tables() and not any(table_flags(model))  # dense until the optimizer is known
    optimizer = model.configure_optimizers()
    assert all(table_flags(model))
    windows, tags = batch_of(encoder, TRAIN[:1])
    model.objective(model(windows), tags).backward()
    assert all(t.weight.grad.is_sparse for t in model.network.sparse_tables())
    assert not model.network.classifier[0].weight.grad.is_sparse
    optimizer.step()


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"optimizer": "sgd", "optimizer_args": {"momentum": 0.9}}, "momentum"),
        ({"optimizer": "adamw"}, "weight_decay"),  # AdamW's default decay touches every row
        ({"optimizer": "adadelta"}, "no sparse"),
        ({"optimizer": "rmsprop"}, "no sparse"),
        ({"weight_decay": 1e-4}, "model.weight_decay"),
    ],
)
def test_runs_that_cannot_be_lazy_stay_dense(encoder, kwargs, reason):
    model = model_for(encoder, **kwargs)
    optimizer = model.configure_optimizers()
    assert not any(table_flags(model))
    assert reason in model.lazy_embeddings_allowed(optimizer)


@pytest.mark.parametrize("trainer_args, reason", [({"gradient_clip_val": 1.0}, "gradient_clip_val")])
def test_trainer_options_that_need_dense_gradients(encoder, trainer_args, reason):
    model = model_for(encoder)
    model.trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                               enable_model_summary=False, **trainer_args)
    model.configure_optimizers()
    assert not any(table_flags(model))


def test_insisting_on_sparse_tables_names_the_obstacle(encoder):
    with pytest.raises(ConfigError, match=r"model.sparse_embeddings is true but .*momentum"):
        model_for(encoder, optimizer="sgd", optimizer_args={"momentum": 0.5},
                  sparse_embeddings=True).configure_optimizers()


def test_sparse_embeddings_false_keeps_dense_tables(encoder):
    model = model_for(encoder, sparse_embeddings=False)
    model.configure_optimizers()
    assert not any(table_flags(model))


def test_lazy_sgd_equals_dense_sgd(encoder):
    # Plain SGD is linear in the gradient: updating only the touched rows is
    # exactly the dense update (the other rows' gradient is zero).
    batches = [batch_of(encoder, [s]) for s in TRAIN] * 2
    runs = []
    for sparse in (True, False):
        model = model_for(encoder, optimizer="sgd", lr=0.5, sparse_embeddings=sparse)
        optimizer = model.configure_optimizers()
        assert all(table_flags(model)) == sparse
        train(model, optimizer, batches)
        runs.append(model)
    lazy, dense = runs
    for (name, p), q in zip(dense.named_parameters(), lazy.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-6, atol=1e-7, msg=name)
    untrained = model_for(encoder).network.sparse_tables()[0].weight
    assert not torch.equal(lazy.network.sparse_tables()[0].weight, untrained)  # the tables did train


def test_lazy_adam_leaves_unused_rows_alone(encoder):
    model = model_for(encoder)
    optimizer = model.configure_optimizers()
    word_table = model.network.sparse_tables()[0]
    before = word_table.weight.detach().clone()
    windows, tags = batch_of(encoder, TRAIN[:1])
    train(model, optimizer, [(windows, tags)] * 3)
    used = torch.unique(windows[:, 0])  # windows: (tokens, features, positions); feature 0 is the word
    moved = (word_table.weight.detach() != before).any(dim=1)
    unused = torch.ones_like(moved)
    unused[used] = False
    assert moved[used].any()
    assert not moved[unused].any()  # dense Adam would have moved none either (zero gradient), but swept them


def test_nonfinite_check_reads_sparse_gradients(encoder):
    model = model_for(encoder)
    model.configure_optimizers()
    windows, tags = batch_of(encoder, TRAIN[:1])
    model.objective(model(windows), tags).backward()
    grad = model.network.sparse_tables()[0].weight.grad
    grad._values()[0, 0] = float("nan")

    class Run:
        global_step, current_epoch = 4, 0

    with pytest.raises(NonFiniteLossError, match=r"embeddings\.0\.(trained\.)?weight holds nan at step 4"):
        NonFiniteGradientStop().on_before_optimizer_step(Run(), model, None)
