"""The gazetteer feature (cs224n_nn.ner.gazetteer): keys, the k-fold over training documents, checkpoints."""

from __future__ import annotations

import io

import pytest
import torch
from run_helpers import one_line, run, tiny_checkpoint

from cs224n_nn.errors import CheckpointError, ConfigError
from cs224n_nn.ner.checkpoint_format import CHECKPOINT_FORMAT, CHECKPOINT_KEY, load_window_network
from cs224n_nn.ner.conll import Sentence, read_conll
from cs224n_nn.ner.datamodule import CoNLLDataModule
from cs224n_nn.ner.features import BOS, EOS, WindowEncoder
from cs224n_nn.ner.gazetteer import MAX_SPAN, Gazetteer, fold_gazetteers, gazetteer_keys

TRAIN = [
    Sentence(("Museums", "in", "Paris", "are", "amazing"), ("O", "O", "I-LOC", "O", "O"), document=0),
    Sentence(("John", "Smith", "visited", "New", "York", "City"),
             ("I-PER", "I-PER", "O", "I-LOC", "I-LOC", "I-LOC"), document=1),
    Sentence(("New", "York", "beat", "Boston"), ("I-ORG", "I-ORG", "O", "I-ORG"), document=2),
    Sentence(("New", "York", "is", "big"), ("I-LOC", "I-LOC", "O", "O"), document=3),
]


def test_keys_are_the_iobes_position_and_type_of_the_longest_match():
    g = Gazetteer.from_sentences(TRAIN)
    # "New York" is LOC twice and ORG once: its most frequent type wins
    assert g.entries[("New", "York")] == "LOC"
    assert g.match(["Paris", "and", "New", "York", "City", "and", "John", "Smith", "."]) == [
        "S-LOC", "O", "B-LOC", "I-LOC", "E-LOC", "O", "B-PER", "E-PER", "O"]
    # the longest known string starting at a token wins; a prefix of an entry alone is no match
    assert g.match(["New", "York", "beat", "New", "Boston"]) == ["B-LOC", "E-LOC", "O", "O", "S-ORG"]
    # tokens are matched as written (case kept): "paris" is not "Paris"
    assert g.match(["paris", "John"]) == ["O", "O"]
    assert g.match([]) == []


def test_ties_and_overlong_entries():
    g = Gazetteer.from_sentences([Sentence(("Jordan",), ("I-PER",)), Sentence(("Jordan",), ("I-LOC",))])
    assert g.entries == {("Jordan",): "LOC"}  # a tie goes to the first type by name
    long = tuple(f"w{i}" for i in range(MAX_SPAN + 1))
    g = Gazetteer({long: "ORG", long[:MAX_SPAN]: "MISC"})
    assert list(g.entries) == [long[:MAX_SPAN]]
    assert g.match(list(long)) == ["B-MISC"] + ["I-MISC"] * (MAX_SPAN - 2) + ["E-MISC", "O"]


def test_documents_are_numbered_by_docstart_lines(tmp_path):
    path = tmp_path / "docs.conll"
    path.write_text("-DOCSTART- -X- O O\n\nA x O\n\nB x O\n-DOCSTART- -X- O O\n\nC x O\n\n-DOCSTART- -X- O O\nD x O\n")
    assert [(s.tokens[0], s.document) for s in read_conll(path)] == [("A", 0), ("B", 0), ("C", 1), ("D", 2)]


def _unique_entity_documents(n_documents: int) -> list[Sentence]:
    # Document d holds two sentences naming entity "Ed" (only there) and a shared one, "Paris".
    sentences = []
    for d in range(n_documents):
        for _ in range(2):
            sentences.append(Sentence((f"E{d}", "met", "Paris"), ("I-PER", "O", "I-LOC"), document=d))
    return sentences


@pytest.mark.parametrize("folds", [2, 3, 5])
def test_a_training_sentence_never_sees_its_own_documents_entities(folds):
    sentences = _unique_entity_documents(7)
    held_out = fold_gazetteers(sentences, folds)
    assert len(held_out) == len(sentences)
    for s, g in zip(sentences, held_out):
        own = s.tokens[0]
        assert (own,) not in g.entries
        assert g.match(s.tokens)[0] == "O"
        # every entity of a document in another fold is there
        others = {f"E{d}" for d in range(7) if d % folds != s.document % folds}
        assert {k[0] for k in g.entries} == others | {"Paris"}
        assert g.match(s.tokens)[2] == "S-LOC"  # "Paris" is also named in other folds
    assert len({id(g) for g in held_out}) == folds


def test_fold_count_is_checked():
    with pytest.raises(ConfigError, match="data.gazetteer_folds"):
        fold_gazetteers(TRAIN, 1)
    with pytest.raises(ConfigError, match="data.gazetteer_folds"):
        CoNLLDataModule(features=["word", "gazetteer"], gazetteer_folds=True)


def test_encoder_fills_the_gazetteer_channel_per_sentence():
    enc = WindowEncoder.build(TRAIN, features=["word", "gazetteer"], half_width=1)
    assert enc.vocabs["gazetteer"].itos[4:] == gazetteer_keys(["LOC", "ORG", "PER"])
    keys = enc.vocabs["gazetteer"]
    w = enc.encode_batch([["Paris", "is", "New", "York"], ["Smith", "John", "Smith"]])
    centre = keys.decode(w[:, 1, 1])
    assert centre == ["S-LOC", "O", "B-LOC", "E-LOC", "O", "B-PER", "E-PER"]
    # the window's edges hold the boundary ids of the channel
    assert keys.decode(w[0, 1]) == [BOS, "S-LOC", "O"] and keys.decode(w[3, 1]) == ["B-LOC", "E-LOC", EOS]
    # the same token gets different keys in different contexts (not memoised per token)
    assert keys.decode(enc.encode_tokens(["York"])[:, 1, 1]) == ["O"]
    # a given gazetteer replaces the encoder's (the training sentences' held-out ones)
    empty = Gazetteer({})
    assert keys.decode(enc.encode_tokens(["Paris"], empty)[:, 1, 1]) == ["O"]
    with pytest.raises(ValueError, match="gazetteers"):
        enc.encode_batch([["Paris"]], [empty, empty])


def test_training_windows_use_the_held_out_gazetteer_and_dev_the_whole_one():
    dm = CoNLLDataModule(features=["word", "gazetteer"], half_width=0, gazetteer_folds=2)
    dm.setup("fit")
    keys = dm.encoder.vocabs["gazetteer"]
    train = dm.datasets["train"]
    full = dm.encoder.gazetteer
    expected_train, expected_full = [], []
    for s, g in zip(dm.train_sentences, fold_gazetteers(dm.train_sentences, 2)):
        expected_train += g.match(s.tokens)
        expected_full += full.match(s.tokens)
    got = keys.decode(train.windows[:, 1, 0])
    assert got == expected_train and got != expected_full
    # matched with their own gazetteer, the training sentences find more entities than held out
    assert sum(k != "O" for k in expected_full) > sum(k != "O" for k in got)
    val = dm.datasets["val"].items[0]
    tokens = read_conll(dm.val_path)[0].tokens
    assert keys.decode(val["windows"][:, 1, 0]) == full.match(tokens)


def test_state_dict_round_trips_through_a_safe_torch_file():
    enc = WindowEncoder.build(TRAIN, features=["word", "casing", "gazetteer"], half_width=2)
    buffer = io.BytesIO()
    torch.save(enc.state_dict(), buffer)
    buffer.seek(0)
    back = WindowEncoder.from_state_dict(torch.load(buffer, weights_only=True))
    assert back.gazetteer == enc.gazetteer and len(back.gazetteer) == 5
    text = [["Paris", "and", "New", "York", "City"], ["John", "Smith"]]
    assert torch.equal(back.encode_batch(text), enc.encode_batch(text))
    # an encoder without the feature keeps no gazetteer, and states written before it existed still load
    plain = WindowEncoder.build(TRAIN, features=["word"], half_width=2)
    assert "gazetteer" not in plain.state_dict() and WindowEncoder.from_state_dict(plain.state_dict()).gazetteer is None


def test_malformed_gazetteer_state_is_a_checkpoint_error():
    state = WindowEncoder.build(TRAIN, features=["word", "gazetteer"], half_width=1).state_dict()
    state["gazetteer"] = [[["Paris"], 3]]
    with pytest.raises(CheckpointError, match="gazetteer is malformed"):
        WindowEncoder.from_state_dict(state)
    del state["gazetteer"]
    with pytest.raises(CheckpointError, match="gazetteer"):
        WindowEncoder.from_state_dict(state)


def test_a_checkpoint_with_the_gazetteer_and_char_ngrams_predicts(tmp_path, capsys):
    features = ["word", "casing", "gazetteer", "char3"]
    path = tiny_checkpoint(tmp_path, features=features, half_width=2)
    stored = torch.load(path, weights_only=True)
    assert stored[CHECKPOINT_KEY]["format"] == CHECKPOINT_FORMAT == 3
    network = load_window_network(path)
    built = CoNLLDataModule(features=features, half_width=2).encoder
    assert network.encoder.gazetteer == built.gazetteer and len(built.gazetteer) > 100
    assert network.encoder.features == features
    code, out, err = run(capsys, "predict", "--ckpt", str(path), "--text", "Museums in Paris are amazing")
    assert code == 0, err
    tagged = [line.split() for line in out.splitlines() if line and not line.startswith("entities")]
    assert [t[0] for t in tagged] == ["Museums", "in", "Paris", "are", "amazing"]


def test_bad_options_are_one_line_errors_naming_them(tmp_path, capsys):
    common = ("train", "--data.train_path", "sample", "--data.val_path", "sample", "--model.word_vectors", "none",
              "--trainer.max_epochs", "1")
    code, _, err = run(capsys, *common, "--data.features", "[word, gazetteer]", "--data.gazetteer_folds", "1")
    assert code != 0
    one_line(err, "train", "data.gazetteer_folds", "1")
    code, _, err = run(capsys, *common, "--data.features", "[word, gazeteer]")
    assert code != 0
    one_line(err, "train", "data.features", "gazeteer")
