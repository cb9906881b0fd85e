"""Numerical faults (issue 7, item 5).

- a loss that becomes NaN/inf stops ``cs224n-nn train`` with one line naming
  the step (the check lives in ``WindowNERModule.training_step``);
- a gradient that becomes NaN/inf while the loss is finite stops training too
  (:class:`cs224n_nn.ner.callbacks.NonFiniteGradientStop`);
- gradient clipping is the Trainer's ``gradient_clip_val`` (reachable as
  ``--trainer.gradient_clip_val``) and is really applied to our optimizers;
- the Functions meet NaN and inf as their torch twins do.  The activations
  and the three losses on NaN/inf *scores* are covered in test_activations.py
  and test_losses.py, ``affine`` with a non-finite input in
  test_linear_dropout_embedding.py; here: non-finite weights and biases,
  losses at -inf / +inf extremes, and upstream gradients that are not finite.
"""

from __future__ import annotations

import re

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as TF

import cs224n_nn.functional as F
from cs224n_nn.cli import main
from cs224n_nn.ner.callbacks import NonFiniteGradientStop
from cs224n_nn.ner.datamodule import CoNLLDataModule
from cs224n_nn.ner.model import NonFiniteLossError, WindowNERModule

INF, NAN = float("inf"), float("nan")
TINY = ["--model.word_vectors", "none", "--model.hidden_dims", "[4]", "--data.features", "[word, casing]",
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "20", "--trainer.limit_val_batches", "1",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--trainer.logger", "false", "--demo_text", ""]


@pytest.fixture(scope="module")
def data():
    return CoNLLDataModule(features=["word", "casing"], batch_size=32)


def tiny_model(data, **kwargs):
    return WindowNERModule(encoder=data.encoder_state, word_vectors="none", hidden_dims=[6], **kwargs)


def trainer(*callbacks, **kwargs):
    return pl.Trainer(accelerator="cpu", max_epochs=1, limit_val_batches=0, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, callbacks=list(callbacks), **kwargs)


# -- a loss that blows up ---------------------------------------------------------


def test_huge_learning_rate_stops_train_with_the_step(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["train", *TINY, "--model.optimizer", "sgd", "--model.lr", "1e38"])
    err = capsys.readouterr().err.strip()
    assert code == 1, err
    (line,) = err.splitlines()
    match = re.fullmatch(r"cs224n-nn train: error: the training loss became (nan|inf|-inf) at step (\d+) .*", line)
    assert match, line
    # step 0 starts from Xavier weights (finite loss); the first giant update breaks it
    assert int(match.group(2)) >= 1


# -- a gradient that blows up while the loss is finite -----------------------------


class InjectInfGradient(pl.Callback):
    """After the backward pass of ``step``, put an inf into one gradient (test helper)."""

    def __init__(self, step: int):
        self.step = step

    def on_after_backward(self, trainer, pl_module):
        if trainer.global_step == self.step:
            pl_module.network.classifier[0].weight.grad[0, 0] = INF


def test_non_finite_gradient_stops_before_the_update(data):
    model = tiny_model(data)
    run = trainer(InjectInfGradient(3), NonFiniteGradientStop(), max_steps=10)
    with pytest.raises(NonFiniteLossError, match=r"gradient of network\.classifier\.0\.weight holds inf at step 3 \(epoch 0\)"):
        run.fit(model, datamodule=data)
    assert run.global_step == 3
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the poisoned step never ran


def test_without_the_callback_the_weights_turn_non_finite(data):
    # Shows what the callback prevents, so the test above can fail.
    model = tiny_model(data, optimizer="sgd", lr=0.1)
    run = trainer(InjectInfGradient(3), max_steps=4)
    run.fit(model, datamodule=data)
    assert not torch.isfinite(model.network.classifier[0].weight).all()


def test_nan_gradient_is_named_nan(data):
    class InjectNan(InjectInfGradient):
        def on_after_backward(self, trainer, pl_module):
            if trainer.global_step == self.step:
                pl_module.network.classifier[-1].bias.grad[0] = NAN

    with pytest.raises(NonFiniteLossError, match=r"gradient of network\.classifier\.\d+\.bias holds nan at step 0"):
        trainer(InjectNan(0), NonFiniteGradientStop(), max_steps=2).fit(tiny_model(data), datamodule=data)


# -- gradient clipping --------------------------------------------------------------


class RecordingClip(WindowNERModule):
    """Records the total gradient norm and largest gradient before and after Lightning clips."""

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        self.record.setdefault("before", []).append(self._grad_sizes())
        super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
        self.record.setdefault("after", []).append(self._grad_sizes())

    def _grad_sizes(self):
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item()
        return norm, max(g.abs().max().item() for g in grads)


def recording_model(data, **kwargs):
    model = RecordingClip(encoder=data.encoder_state, word_vectors="none", hidden_dims=[6], **kwargs)
    model.record = {}
    return model


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_gradient_clip_by_norm_is_applied(data, optimizer):
    limit = 1e-3
    model = recording_model(data, optimizer=optimizer)
    trainer(max_steps=6, gradient_clip_val=limit).fit(model, datamodule=data)
    before, after = ([norm for norm, _ in model.record[k]] for k in ("before", "after"))
    assert len(before) == len(after) == 6
    assert min(before) > limit  # clipping had work to do
    assert max(after) <= limit * (1 + 1e-5)


def test_gradient_clip_by_value_is_applied(data):
    limit = 1e-4
    model = recording_model(data)
    trainer(max_steps=4, gradient_clip_val=limit, gradient_clip_algorithm="value").fit(model, datamodule=data)
    assert min(largest for _, largest in model.record["before"]) > limit
    assert max(largest for _, largest in model.record["after"]) <= limit


def test_without_a_clip_value_gradients_are_untouched(data):
    model = recording_model(data)
    trainer(max_steps=2).fit(model, datamodule=data)
    assert model.record["before"] == model.record["after"]


def test_gradient_clipping_is_a_train_option(tmp_path, monkeypatch):
    from cs224n_nn.ner.commands import _make_cli

    monkeypatch.chdir(tmp_path)
    cli = _make_cli([*TINY, "--trainer.gradient_clip_val", "0.25", "--trainer.gradient_clip_algorithm", "value"])
    assert cli.trainer.gradient_clip_val == 0.25 and cli.trainer.gradient_clip_algorithm == "value"


# -- Functions on non-finite input: what the other test files leave out ---------------


def leaf(x):
    return x.detach().clone().requires_grad_(True)


def value_and_grads(f, *inputs, upstream=None):
    inputs = [leaf(x) for x in inputs]
    out = f(*inputs)
    grads = torch.autograd.grad(out, inputs, out.new_ones(out.shape) if upstream is None else upstream,
                                allow_unused=True)
    return out.detach(), grads


@pytest.mark.parametrize("where", ["weight", "bias", "both"])
def test_affine_with_non_finite_weight_or_bias(where):
    x = torch.randn(3, 4)
    w, b = torch.randn(2, 4), torch.randn(2)
    if where in ("weight", "both"):
        w[0, 1], w[1, 2] = INF, NAN
    if where in ("bias", "both"):
        b[0], b[1] = -INF, NAN
    torch.testing.assert_close(value_and_grads(F.affine, x, w, b), value_and_grads(TF.linear, x, w, b), equal_nan=True)


# Each backward is g * f'(x) as the notes write it (out of place), so an
# infinite upstream gradient gives inf, or 0 where f'(x) = 0, as torch does.
# (The earlier fused g - g*m form gave inf - inf = NaN there.)
ACTIVATIONS = [
    pytest.param(F.sigmoid, torch.sigmoid, id="sigmoid"),
    pytest.param(F.tanh, torch.tanh, id="tanh"),
    pytest.param(F.hardtanh, TF.hardtanh, id="hardtanh"),
    pytest.param(F.relu, torch.relu, id="relu"),
    pytest.param(F.leaky_relu, TF.leaky_relu, id="leaky_relu"),
    # softsign is left out: torch differentiates its composite x / (1 + |x|),
    # which itself gives inf - inf = NaN here; ours is the closed form.
]


@pytest.mark.parametrize("ours, ref", ACTIVATIONS)
def test_activation_with_non_finite_upstream_gradient(ours, ref):
    x = torch.tensor([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0])
    upstream = torch.tensor([INF, -INF, NAN, INF, NAN, -INF, 1.0])
    torch.testing.assert_close(value_and_grads(ours, x, upstream=upstream), value_and_grads(ref, x, upstream=upstream),
                               equal_nan=True)


EXTREME = torch.tensor([[-INF, 0.0, 1.0], [-INF, -INF, 2.0], [-INF, -INF, -INF], [INF, INF, 0.0], [1e30, -1e30, 0.0]])
TARGET = torch.tensor([2, 2, 0, 1, 1])


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_cross_entropy_at_the_extremes(reduction):
    torch.testing.assert_close(
        value_and_grads(lambda s: F.softmax_cross_entropy(s, TARGET, reduction=reduction), EXTREME),
        value_and_grads(lambda s: TF.cross_entropy(s, TARGET, reduction=reduction), EXTREME), equal_nan=True)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_multiclass_max_margin_at_the_extremes(reduction):
    torch.testing.assert_close(
        value_and_grads(lambda s: F.multiclass_max_margin_loss(s, TARGET, reduction=reduction), EXTREME),
        value_and_grads(lambda s: TF.multi_margin_loss(s, TARGET, reduction=reduction), EXTREME), equal_nan=True)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_max_margin_at_the_extremes(reduction):
    s = torch.tensor([INF, -INF, INF, -INF, 0.0, 1e38, NAN])
    s_c = torch.tensor([INF, -INF, -INF, INF, INF, -1e38, -INF])

    def twin(a, b):
        return TF.margin_ranking_loss(a, b, torch.ones_like(a), margin=1.0, reduction=reduction)

    torch.testing.assert_close(value_and_grads(lambda a, b: F.max_margin_loss(a, b, reduction=reduction), s, s_c),
                               value_and_grads(twin, s, s_c), equal_nan=True)
