"""model.word_dropout: in training, a window's word is looked up as <unk> with the given probability (its
other features kept), as a word that neither the training data nor the pretrained vectors know is at prediction."""

from __future__ import annotations

import pytest
import torch

from cs224n_nn.errors import ConfigError
from cs224n_nn.ner.features import WindowEncoder
from cs224n_nn.ner.model import WindowNERModule
from cs224n_nn.ner.network import WindowNERNetwork
from test_ner_network import TRAIN, batch_of

ARGS = {"word_vectors": "none", "hidden_dims": [6], "dropout": 0.0}


@pytest.fixture(scope="module")
def encoder():
    return WindowEncoder.build(TRAIN, features=("word", "casing"), half_width=1)


def test_word_dropout_makes_words_unk_at_its_rate_and_nothing_else(encoder):
    torch.manual_seed(0)
    network = WindowNERNetwork(encoder.state_dict(), word_dropout=0.2, **ARGS).train()
    windows = batch_of(encoder, TRAIN * 200)["windows"]
    channel = encoder.channels[0].start
    vocab = encoder.vocabs["word"]
    ids = windows[:, channel]
    noisy = network._word_dropout(windows)
    changed = noisy[:, channel] != ids
    assert bool((noisy[:, channel][changed] == vocab.unk_id).all())
    words = ids >= len(vocab.specials)  # <s>, </s> and padding stay what they are
    assert not bool((changed & ~words).any())
    assert float(changed.sum() / words.sum()) == pytest.approx(0.2, abs=0.03)
    other = [c for c in range(windows.shape[1]) if c != channel]
    assert torch.equal(noisy[:, other], windows[:, other])


def test_the_training_loss_reads_unk_where_a_word_is_dropped(encoder):
    """With every word dropped, training sees each window as the same windows with <unk> for every word."""
    torch.manual_seed(0)
    network = WindowNERNetwork(encoder.state_dict(), word_dropout=0.999999, **ARGS).train()
    batch = batch_of(encoder, TRAIN)
    vocab = encoder.vocabs["word"]
    channel = encoder.channels[0].start
    unk = batch["windows"].clone()
    words = unk[:, channel] >= len(vocab.specials)
    unk[:, channel][words] = vocab.unk_id
    torch.testing.assert_close(network.training_loss(batch), network.training_loss({**batch, "windows": unk}),
                               rtol=0, atol=0)


def test_evaluation_sees_the_words_and_zero_is_the_network_without_it(encoder):
    windows = batch_of(encoder, TRAIN)["windows"]
    torch.manual_seed(0)
    dropping = WindowNERNetwork(encoder.state_dict(), word_dropout=0.5, **ARGS)
    torch.manual_seed(0)
    plain = WindowNERNetwork(encoder.state_dict(), **ARGS)
    torch.testing.assert_close(dropping.eval()(windows), plain.eval()(windows), rtol=0, atol=0)
    torch.manual_seed(1)
    a = WindowNERNetwork(encoder.state_dict(), word_dropout=0.0, **ARGS).train()
    torch.manual_seed(1)
    b = WindowNERNetwork(encoder.state_dict(), **ARGS).train()
    batch = batch_of(encoder, TRAIN)
    torch.testing.assert_close(a.training_loss(batch), b.training_loss(batch), rtol=0, atol=0)


def test_the_option_reaches_the_module_and_bad_values_are_named(encoder):
    module = WindowNERModule(encoder=encoder.state_dict(), word_dropout=0.1, **ARGS)
    assert module.network.word_dropout == 0.1 and module.hparams.word_dropout == 0.1
    for p in (-0.1, 1.0):
        with pytest.raises(ConfigError, match=r"model\.word_dropout must be in \[0, 1\)"):
            WindowNERNetwork(encoder.state_dict(), word_dropout=p, **ARGS)
    casing_only = WindowEncoder.build(TRAIN, features=("casing",), half_width=1)
    with pytest.raises(ConfigError, match=r"model\.word_dropout needs the word feature"):
        WindowNERNetwork(casing_only.state_dict(), word_dropout=0.1, **ARGS)
