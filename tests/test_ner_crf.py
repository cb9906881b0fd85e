"""The window NER model trained with the sentence-level log-likelihood (``model.loss: sentence_ll``)."""

from __future__ import annotations

import itertools

import pytest
import pytorch_lightning as pl
import torch

import cs224n_nn.functional as cF
from cs224n_nn.errors import ConfigError
from cs224n_nn.ner.commands import tag_sentences
from cs224n_nn.ner.conll import Sentence, read_conll
from cs224n_nn.ner.datamodule import SAMPLE_FILES, CoNLLDataModule
from cs224n_nn.ner.features import WindowEncoder
from cs224n_nn.ner.model import FORBIDDEN_SCORE, WindowNERModule, load_window_ner

TRAIN = [
    Sentence(("Museums", "in", "Paris", "are", "amazing"), ("O", "O", "I-LOC", "O", "O")),
    Sentence(("John", "Smith", "visited", "New", "York", "."), ("I-PER", "I-PER", "O", "I-LOC", "I-LOC", "O")),
]


@pytest.fixture(scope="module")
def encoder():
    return WindowEncoder.build(TRAIN, features=("word", "casing"), half_width=1)


def crf_model(encoder, **kwargs):
    return WindowNERModule(encoder=encoder.state_dict(), word_vectors="none", hidden_dims=[6], loss="sentence_ll",
                           **kwargs)


def sentence_batch(encoder, sentences):
    return {
        "windows": torch.cat([encoder.encode_tokens(s.tokens) for s in sentences]),
        "tags": torch.cat([encoder.encode_tags(s.tags) for s in sentences]),
        "lengths": torch.tensor([len(s) for s in sentences]),
    }


def test_loss_is_the_crf_nll_of_the_tag_scores_with_forbidden_moves_masked(encoder):
    model = crf_model(encoder)
    assert model.trains_on_sentences
    start, trans, end = model.network.crf_scores()
    assert (trans[~model.network.allowed_trans] == FORBIDDEN_SCORE).all()
    assert torch.equal(trans[model.network.allowed_trans], model.network.crf.transitions[model.network.allowed_trans])
    assert (start[~model.network.allowed_start] == FORBIDDEN_SCORE).all() and (end[~model.network.allowed_end] == FORBIDDEN_SCORE).all()
    batch = sentence_batch(encoder, TRAIN)
    scores = model(batch["windows"])
    loss = model.objective(scores, batch["tags"], batch["lengths"])
    # by hand: one sentence at a time, mean over the two
    by_hand, at = [], 0
    for s in TRAIN:
        n = len(s)
        by_hand.append(cF.crf_nll(scores[None, at:at + n], batch["tags"][None, at:at + n], trans, start, end))
        at += n
    torch.testing.assert_close(loss, torch.stack(by_hand).mean())
    loss.backward()
    grad = model.network.crf.transitions.grad
    assert grad[model.network.allowed_trans].abs().sum() > 0  # learned jointly with the network
    assert (grad[~model.network.allowed_trans] == 0).all()  # forbidden moves stay forbidden
    assert model.network.classifier[0].weight.grad.abs().sum() > 0


def test_window_batches_are_refused_with_the_option_to_fix(encoder):
    model = crf_model(encoder)
    batch = sentence_batch(encoder, TRAIN)
    with pytest.raises(ConfigError, match="data.sentence_batches"):
        model.objective(model(batch["windows"]), batch["tags"])


def test_decoding_uses_the_learned_transitions(encoder):
    model = crf_model(encoder).eval()
    with torch.no_grad():
        model.network.crf.transitions.normal_(0, 3)
        model.network.crf.start_transitions.normal_(0, 3)
        model.network.crf.end_transitions.normal_(0, 3)
    batch = sentence_batch(encoder, TRAIN)
    scores = model(batch["windows"]).detach()
    start, trans, end = model.network.crf_scores()
    ids = model.decode_ids(scores, batch["lengths"])
    at = 0
    for n in batch["lengths"].tolist():
        e = scores[at:at + n]

        def score(path):
            return float(start[path[0]] + end[path[-1]] + sum(e[t, path[t]] for t in range(n))
                         + sum(trans[path[t - 1], path[t]] for t in range(1, n)))

        best = max(itertools.product(range(len(encoder.tags)), repeat=n), key=score) if n <= 5 else None
        if best is not None:
            assert ids[at:at + n].tolist() == list(best)
        at += n
    # the learned scores matter: the same emissions with the fixed rules decode differently somewhere
    rules = WindowNERModule(encoder=encoder.state_dict(), word_vectors="none", hidden_dims=[6], loss="max_margin")
    assert not torch.equal(ids, rules.decode_ids(scores, batch["lengths"]))


def test_sample_corpus_training_checkpoint_round_trip_and_predict(tmp_path):
    pl.seed_everything(0)
    data = CoNLLDataModule(features=["word", "casing", "suffix3"], batch_size=64, eval_batch_size=64)
    model = WindowNERModule(encoder=data.encoder_state, word_vectors="none", hidden_dims=[16], loss="sentence_ll",
                            lr=0.01, dropout=0.1)
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=30, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    before = model.network.crf.transitions.detach().clone()
    trainer.fit(model, datamodule=data)
    # training batches were whole sentences, grouped to about batch_size tokens
    loader = data.train_dataloader()
    batch = next(iter(loader))
    assert "lengths" in batch and batch["lengths"].sum() == batch["tags"].numel()
    tokens = sum(len(s) for s in read_conll(SAMPLE_FILES["train"]))
    assert loader.batch_size == round(64 * len(data.datasets["train"]) / tokens)
    assert not torch.equal(model.network.crf.transitions.detach(), before)
    f1 = trainer.callback_metrics["val/f1"]
    assert f1 > 0.3  # 30 steps on the sample corpus already find entities
    path = tmp_path / "crf.ckpt"
    trainer.save_checkpoint(path)
    loaded = load_window_ner(path)
    assert loaded.loss_name == "sentence_ll"
    torch.testing.assert_close(loaded.network.crf.transitions, model.network.crf.transitions)
    sentences = read_conll(SAMPLE_FILES["val"])[:40]
    model.eval()
    assert tag_sentences(loaded, sentences) == tag_sentences(model, sentences)
    assert tag_sentences(loaded, [Sentence.unlabeled("Museums in Paris are amazing".split())])[0][2].endswith("LOC")


def test_sentence_batches_false_with_sentence_ll_fails_clearly():
    data = CoNLLDataModule(features=["word"], sentence_batches=False, batch_size=64)
    model = WindowNERModule(encoder=data.encoder_state, word_vectors="none", hidden_dims=[4], loss="sentence_ll")
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(ConfigError, match="sentence_ll"):
        trainer.fit(model, datamodule=data)


def test_window_losses_keep_window_batches():
    data = CoNLLDataModule(features=["word"], batch_size=16)
    model = WindowNERModule(encoder=data.encoder_state, word_vectors="none", hidden_dims=[4])
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=data)
    batch = next(iter(data.train_dataloader()))
    assert "lengths" not in batch and batch["windows"].shape[0] == 16
