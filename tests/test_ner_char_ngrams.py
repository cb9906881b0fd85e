"""The charN feature: a token's character N-grams, several ids per token, averaged by the network."""

from __future__ import annotations

import pytest
import torch

from cs224n_nn import nn as cnn
from cs224n_nn.errors import ConfigError
from cs224n_nn.ner.conll import Sentence
from cs224n_nn.ner.features import BOS, EOS, NGRAM_SLOTS, WindowEncoder, char_ngrams, check_feature_name
from cs224n_nn.ner.network import DEFAULT_NGRAM_DIM, WindowNERNetwork

TRAIN = [
    Sentence(("Museums", "in", "Paris", "are", "amazing"), ("O", "O", "I-LOC", "O", "O")),
    Sentence(("Parisians", "visited", "Paris", "in", "1996"), ("I-MISC", "O", "I-LOC", "O", "O")),
]


def test_ngrams_of_known_words():
    assert char_ngrams("Paris", 3) == ["<pa", "par", "ari", "ris", "is>"]
    assert char_ngrams("in", 2) == ["<i", "in", "n>"]
    assert char_ngrams("1996", 3) == ["<00", "000", "000", "00>"]  # normalised: digits are 0
    assert char_ngrams("a", 5) == ["<a>"]  # shorter than N: the marked word whole
    long = "internationalization"  # 20 letters: 20 3-grams, the first and last halves kept
    grams = char_ngrams(long, 3)
    assert len(grams) == NGRAM_SLOTS
    assert grams[: NGRAM_SLOTS // 2] == ["<in", "int", "nte", "ter", "ern", "rna"]
    assert grams[NGRAM_SLOTS // 2:] == ["iza", "zat", "ati", "tio", "ion", "on>"]


@pytest.mark.parametrize("name", ["char0", "char10", "chars", "char"])
def test_bad_names_are_config_errors_naming_the_option(name):
    with pytest.raises(ConfigError, match="data.features.*charN"):
        check_feature_name(name)


def test_a_token_takes_one_channel_per_ngram_slot():
    enc = WindowEncoder.build(TRAIN, features=["word", "char3"], half_width=1, affix_min_freq=1)
    grams = enc.vocabs["char3"]
    assert [(c.start, c.stop) for c in enc.channels] == [(0, 1), (1, 1 + NGRAM_SLOTS)]
    w = enc.encode_tokens(["Paris", "xyz"])
    assert w.shape == (2, 1 + NGRAM_SLOTS, 3)
    paris = w[0, 1:, 1].tolist()
    assert grams.decode(paris[:5]) == ["<pa", "par", "ari", "ris", "is>"]
    assert paris[5:] == [grams.pad_id] * (NGRAM_SLOTS - 5)
    # unseen n-grams share <unk>
    assert grams.decode(w[1, 1:4, 1]) == ["<unk>"] * 3
    # past the sentence edge: the boundary id in the first slot, padding after
    assert grams.decode(w[0, 1:3, 0]) == [BOS, "<pad>"] and grams.decode(w[1, 1:3, 2]) == [EOS, "<pad>"]


def test_the_network_averages_the_ngram_vectors_through_our_embedding():
    torch.manual_seed(0)
    enc = WindowEncoder.build(TRAIN, features=["word", "char3"], half_width=1, affix_min_freq=1)
    net = WindowNERNetwork(enc, word_vectors="none", hidden_dims=[4], feature_dims={"word": 5})
    table = net.embeddings[1]
    assert type(table) is cnn.Embedding and table.embedding_dim == DEFAULT_NGRAM_DIM
    assert table.padding_idx == enc.vocabs["char3"].pad_id
    w = enc.encode_tokens(["Paris", "in"])
    x = net.window_vectors(w)  # embedding_dropout is 0 by default
    d = 5 + DEFAULT_NGRAM_DIM
    centre = x[0, d:2 * d]  # window position 1 (the centre) of "Paris"
    ids = enc.vocabs["char3"].encode(["<pa", "par", "ari", "ris", "is>"])
    torch.testing.assert_close(centre[5:], table.weight[ids].mean(0))
    # "in" has two n-grams and ten padding slots, which do not dilute the mean
    ids = enc.vocabs["char3"].encode(["<in", "in>"])
    torch.testing.assert_close(x[1, d + 5:2 * d], table.weight[ids].mean(0))
    # the gradient reaches the n-gram rows, never the padding row
    x.sum().backward()
    assert table.weight.grad[table.padding_idx].abs().sum() == 0
    assert table.weight.grad[ids].abs().sum() > 0


def test_state_dict_round_trip_keeps_the_ngram_channels():
    enc = WindowEncoder.build(TRAIN, features=["word", "casing", "char3", "suffix2"], half_width=2)
    back = WindowEncoder.from_state_dict(enc.state_dict())
    assert back.channels == enc.channels
    text = [["Paris", "is", "amazing"], ["Museums", "1997"]]
    assert torch.equal(back.encode_batch(text), enc.encode_batch(text))
