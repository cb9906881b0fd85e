"""Entity scores split by what the model knows of the entity's words (cs224n_nn.ner.word_kinds) and
``cs224n-nn evaluate --by-word-kind``."""

from __future__ import annotations

import pytest

from cs224n_nn.errors import ConfigError
from cs224n_nn.ner.features import WindowEncoder
from cs224n_nn.ner.word_kinds import WORD_KINDS, WordKindScores
from run_helpers import run, tiny_checkpoint
from test_ner_network import TRAIN


@pytest.fixture(scope="module")
def encoder():
    # "berlin" comes from the pretrained words only; "zzyzx" is unknown to both
    return WindowEncoder.build(TRAIN, features=("word", "casing"), half_width=1, extra_words=["berlin"])


def test_entities_are_grouped_by_their_least_known_word(encoder):
    scores = WordKindScores(encoder, "IOB1")
    tokens = ["Paris", "in", "Berlin", "in", "New", "Zzyzx", "."]
    gold = ["I-LOC", "O", "I-LOC", "O", "I-LOC", "I-LOC", "O"]
    # Paris right, Berlin right, "New Zzyzx" cut short to "New" (wrong), and "in" tagged as a person (wrong)
    predicted = ["I-LOC", "I-PER", "I-LOC", "O", "I-LOC", "O", "O"]
    scores.update(tokens, gold, predicted)
    assert scores.counts == {
        "training": {"tp": 1, "found": 3, "gold": 1},   # Paris; found Paris, "in", "New"
        "pretrained": {"tp": 1, "found": 1, "gold": 1},  # Berlin
        "unknown": {"tp": 0, "found": 0, "gold": 1},     # New Zzyzx
    }
    rows = {label: rest for label, *rest in scores.rows()}
    assert rows[WORD_KINDS["training"]] == [1, pytest.approx(1 / 3), 1.0, pytest.approx(0.5)]
    assert rows[WORD_KINDS["pretrained"]] == [1, 1.0, 1.0, 1.0]
    assert rows[WORD_KINDS["unknown"]] == [1, 0.0, 0.0, 0.0]  # nothing found: 0, as conlleval prints
    assert scores.table().splitlines()[0].split()[-4:] == ["gold", "precision", "recall", "f1"]


def test_the_word_feature_is_needed():
    casing_only = WindowEncoder.build(TRAIN, features=("casing",), half_width=1)
    with pytest.raises(ConfigError, match="--by-word-kind needs a model with the word feature"):
        WordKindScores(casing_only, "IOB1")


def test_evaluate_prints_the_split_whose_groups_add_up(tmp_path, capsys):
    ckpt = str(tiny_checkpoint(tmp_path))
    code, out, err = run(capsys, "evaluate", "--ckpt", ckpt, "--data", "sample", "--by-word-kind")
    assert code == 0, err
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("entities with"))
    table = lines[head + 1:head + 4]
    assert [line[:42].strip() for line in table] == list(WORD_KINDS.values())
    from cs224n_nn.ner.conll import read_conll, spans
    from cs224n_nn.ner.datamodule import resolve_data_path

    gold = sum(len(spans(s.tags, "IOB1")) for s in read_conll(resolve_data_path("sample", "test")))
    assert sum(int(line[42:48]) for line in table) == gold
    code, plain, _ = run(capsys, "evaluate", "--ckpt", ckpt, "--data", "sample")
    assert plain.splitlines() == lines[:head]  # the usual table first, unchanged
