"""Vocabulary, normalisation and spelling features (cs224n_nn.ner.vocab)."""

from __future__ import annotations

import io

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cs224n_nn.errors import CheckpointError, ConfigError
from cs224n_nn.ner.vocab import CASING_CATEGORIES, CASING_PAD, Vocab, casing, normalize, word_shape


@pytest.mark.parametrize(
    "token, expected",
    [("Paris", "paris"), ("1996-08-22", "0000-00-00"), ("F16", "f00"), ("EU", "eu"), ("٣", "0"), ("", "")],
)
def test_normalize(token, expected):
    assert normalize(token) == expected


def test_build_counts_orders_and_normalises():
    v = Vocab.build("The the THE Paris paris 1996 1997 a".split())
    assert v.itos == ["<pad>", "<unk>", "the", "0000", "paris", "a"]
    assert (v.pad_id, v.unk_id) == (0, 1)
    assert v.index("PARIS") == v.index("paris") == 4
    assert v.index("2024") == 3
    assert v.index("London") == v.unk_id
    assert v.encode(["The", "Rome", "1066"]) == [2, 1, 3]
    assert v.decode(torch.tensor([2, 4])) == ["the", "paris"]
    assert "PaRiS" in v and "rome" not in v and 3 not in v
    assert len(v) == 6


def test_min_freq_and_max_size():
    tokens = ["a"] * 3 + ["b"] * 2 + ["c"]
    assert Vocab.build(tokens, min_freq=2).itos[2:] == ["a", "b"]
    assert Vocab.build(tokens, max_size=1).itos == ["<pad>", "<unk>", "a"]
    assert Vocab.build(tokens, max_size=0).itos == ["<pad>", "<unk>"]


@pytest.mark.parametrize("kwargs, name", [({"min_freq": 0}, "min_freq"), ({"max_size": -1}, "max_size"),
                                          ({"min_freq": 1.5}, "min_freq"), ({"max_size": True}, "max_size")])
def test_build_rejects_bad_parameters(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        Vocab.build(["a"], **kwargs)


def test_specials_in_text_are_not_duplicated():
    v = Vocab.build(["<unk>", "<pad>", "x"], normalize=False)
    assert v.itos == ["<pad>", "<unk>", "x"]


def test_tag_vocabulary_without_specials():
    tags = Vocab.from_tokens(["O", "I-PER", "I-LOC", "O"], normalize=False, specials=())
    assert tags.itos == ["O", "I-PER", "I-LOC"]
    assert tags.pad_id is None and tags.unk_id is None
    assert tags.index("I-PER") == 1
    with pytest.raises(KeyError, match="B-MISC"):
        tags.index("B-MISC")
    assert "i-per" not in tags  # no normalisation for tags


def test_from_tokens_merges_forms_keeping_first_position():
    v = Vocab.from_tokens(["Paris", "paris", "1999", "2000"])
    assert v.itos == ["<pad>", "<unk>", "paris", "0000"]


def test_constructor_checks():
    with pytest.raises(ValueError, match="unique"):
        Vocab(["<pad>", "<unk>", "a", "a"])
    with pytest.raises(ValueError, match="start with its specials"):
        Vocab(["a", "<pad>", "<unk>"])


def test_state_dict_round_trip_through_weights_only_load():
    v = Vocab.build("Museums in Paris are amazing 42".split(), min_freq=1)
    state = v.state_dict()
    buffer = io.BytesIO()
    torch.save({"vocab": state}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)["vocab"]
    again = Vocab.from_state_dict(loaded)
    assert again == v
    assert again.encode(["PARIS", "17"]) == v.encode(["paris", "99"])
    tags = Vocab.from_tokens(["O", "I-LOC"], normalize=False, specials=())
    assert Vocab.from_state_dict(tags.state_dict()) == tags


@pytest.mark.parametrize(
    "state, fragment",
    [
        ([1, 2], "must be a dict"),
        ({"itos": ["a"]}, "lacks"),
        ({"itos": "abc", "normalize": True, "specials": []}, "'itos' must be a list of strings"),
        ({"itos": ["a", 3], "normalize": True, "specials": []}, "'itos' must be a list of strings"),
        ({"itos": ["a"], "normalize": "yes", "specials": []}, "'normalize' must be a bool"),
        ({"itos": ["a"], "normalize": True, "specials": [None]}, "'specials' must be a list"),
        ({"itos": ["a", "a"], "normalize": True, "specials": []}, "inconsistent"),
        ({"itos": ["a"], "normalize": True, "specials": ["<pad>"]}, "inconsistent"),
    ],
)
def test_malformed_state(state, fragment):
    with pytest.raises(CheckpointError, match=fragment):
        Vocab.from_state_dict(state)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=6), max_size=30), st.booleans())
def test_every_built_token_maps_to_itself(tokens, norm):
    v = Vocab.build(tokens, normalize=norm)
    for t in tokens:
        if t not in v.specials:
            assert v.itos[v.index(t)] == (normalize(t) if norm else t)
    assert Vocab.from_state_dict(v.state_dict()) == v


@pytest.mark.parametrize(
    "token, category",
    [
        ("1996", "numeric"),
        ("1996-08-22", "mainly_numeric"),
        ("3.5", "mainly_numeric"),
        ("museums", "all_lower"),
        ("EU", "all_upper"),
        ("U.S.", "all_upper"),
        ("Paris", "initial_upper"),
        ("McDonald", "initial_upper"),
        ("iPhone4", "contains_digit"),
        ("eBay", "other"),
        (",", "other"),
        ("", "other"),
        ("<pad>", "<pad>"),
    ],
)
def test_casing(token, category):
    assert CASING_CATEGORIES[casing(token)] == category


def test_casing_pad_is_zero_and_ids_are_in_range():
    assert CASING_PAD == 0 and CASING_CATEGORIES[0] == "<pad>"
    for t in ["a", "A", "1", "a1", "-", "Ab1"]:
        assert 1 <= casing(t) < len(CASING_CATEGORIES)


@pytest.mark.parametrize(
    "token, shape",
    [("Paris", "Xxxxx"), ("Museums", "Xxxxx"), ("EU", "XX"), ("1996-08-22", "dddd-dd-dd"),
     ("U.S.", "X.X."), ("McDonald's", "XxXxxxx'x"), ("", "")],
)
def test_word_shape(token, shape):
    assert word_shape(token) == shape
