"""Sentences -> window tensors (cs224n_nn.ner.features) and the data module."""

from __future__ import annotations

import io

import pytest
import torch

from cs224n_nn.errors import ConfigError, DataFormatError
from cs224n_nn.ner.conll import Sentence, spans
from cs224n_nn.ner.datamodule import SAMPLE_FILES, CoNLLDataModule
from cs224n_nn.ner.features import (
    BOS,
    EOS,
    SentenceDataset,
    StreamingSentences,
    WindowDataset,
    WindowEncoder,
    collate_sentences,
    tag_set,
)
from cs224n_nn.ner.vocab import CASING_CATEGORIES, Vocab

TRAIN = [
    Sentence(("Museums", "in", "Paris", "are", "amazing"), ("O", "O", "I-LOC", "O", "O")),
    Sentence(("John", "Smith", "visited", "New", "York", "."), ("I-PER", "I-PER", "O", "I-LOC", "I-LOC", "O")),
    Sentence(("EU", "rejects", "German", "call"), ("I-ORG", "O", "I-MISC", "O")),
]


def encoder(features=("word", "casing", "shape", "suffix3"), half_width=2, scheme="IOBES"):
    return WindowEncoder.build(TRAIN, features=features, half_width=half_width, scheme=scheme, affix_min_freq=1)


def test_windows_are_the_notes_window_with_boundary_tokens():
    enc = encoder(features=("word",))
    words = enc.vocabs["word"]
    w = enc.encode_tokens(["Museums", "in", "Paris", "are", "amazing"])
    assert w.shape == (5, 1, 5) and w.dtype == torch.long
    # centre word "Paris": the notes' window "museums in paris are amazing"
    assert words.decode(w[2, 0]) == ["museums", "in", "paris", "are", "amazing"]
    # the first word's window reaches past the left edge, the last one's past the right
    assert words.decode(w[0, 0]) == [BOS, BOS, "museums", "in", "paris"]
    assert words.decode(w[4, 0]) == ["paris", "are", "amazing", EOS, EOS]


@pytest.mark.parametrize("half_width", [0, 1, 3])
def test_window_width_follows_half_width(half_width):
    enc = encoder(features=("word",), half_width=half_width)
    w = enc.encode_tokens(["EU", "rejects", "German", "call"])
    assert w.shape == (4, 1, 2 * half_width + 1)
    # the centre column is the token itself
    assert enc.vocabs["word"].decode(w[:, 0, half_width]) == ["eu", "rejects", "german", "call"]


def test_each_feature_has_its_own_ids():
    enc = encoder()
    w = enc.encode_tokens(["Paris", "1996", "xyzzy"])
    h = enc.half_width
    casing_vocab, shape_vocab, suffix_vocab = enc.vocabs["casing"], enc.vocabs["shape"], enc.vocabs["suffix3"]
    assert casing_vocab.decode(w[:, 1, h]) == ["initial_upper", "numeric", "all_lower"]
    assert shape_vocab.decode(w[:1, 2, h]) == ["Xxxxx"]
    assert suffix_vocab.decode(w[:1, 3, h]) == ["ris"]
    # unseen word, shape and suffix share <unk>
    assert w[1, 0, h] == enc.vocabs["word"].unk_id and w[1, 2, h] == shape_vocab.unk_id
    assert w[2, 3, h] == suffix_vocab.unk_id
    # casing has every category whatever the training data shows
    assert set(CASING_CATEGORIES[1:]) <= set(casing_vocab.itos)


def test_form_keeps_case_and_counts_like_an_affix():
    sentences = [*TRAIN, Sentence(("May", "may", "Paris", "1997"), ("I-PER", "O", "I-LOC", "O"))]
    enc = WindowEncoder.build(sentences, features=("word", "form"), half_width=0, affix_min_freq=2)
    forms, words = enc.vocabs["form"], enc.vocabs["word"]
    # "Paris" is seen twice: its own form; "May" and "may" once each: <unk>, while
    # the word feature folds both into "may"
    assert "Paris" in forms and "paris" not in forms and "May" not in forms
    w = enc.encode_tokens(["Paris", "paris", "May", "may", "2001"])
    assert forms.decode(w[:1, 1, 0]) == ["Paris"]
    assert (w[1:, 1, 0] == forms.unk_id).all()
    assert words.decode(w[2:4, 0, 0]) == ["may", "may"]
    # digits map to 0 with the case kept, so years share one form
    enc = WindowEncoder.build(sentences, features=("form",), half_width=0, affix_min_freq=1)
    assert enc.vocabs["form"].decode(enc.encode_tokens(["2001", "May"])[:, 0, 0]) == ["0000", "May"]


def test_extra_words_extend_the_word_vocabulary_only():
    enc = WindowEncoder.build(TRAIN, features=("word", "casing"), extra_words=["london", "paris", "2000"])
    words = enc.vocabs["word"]
    assert "london" in words and "0000" in words  # digits normalised like every word
    assert words.itos.count("paris") == 1
    assert len(enc.vocabs["casing"]) == len(encoder(features=("word", "casing")).vocabs["casing"])


def test_unknown_feature_and_scheme_are_config_errors():
    with pytest.raises(ConfigError, match="unknown feature 'wordz'.*prefixN"):
        WindowEncoder.build(TRAIN, features=("wordz",))
    with pytest.raises(ConfigError, match="listed twice"):
        WindowEncoder.build(TRAIN, features=("word", "word"))
    with pytest.raises(ConfigError, match="IOBX.*IOB1, IOB2, IOBES"):
        WindowEncoder.build(TRAIN, scheme="IOBX")
    with pytest.raises(ConfigError, match="half_width"):
        WindowEncoder.build(TRAIN, half_width=-1)


def test_tags_are_converted_to_the_training_scheme_and_back():
    enc = encoder(scheme="IOBES")
    assert enc.source_scheme == "IOB1"  # detected from the data
    assert enc.tags == tag_set(["LOC", "MISC", "ORG", "PER"], "IOBES") and enc.tags[0] == "O"
    gold = TRAIN[1].tags
    ids = enc.encode_tags(gold)
    assert [enc.tags[i] for i in ids] == ["B-PER", "E-PER", "O", "B-LOC", "E-LOC", "O"]
    assert enc.decode_tags(ids) == list(gold)
    # the entities are the same in either scheme
    assert spans([enc.tags[i] for i in ids], "IOBES") == spans(gold, "IOB1")


def test_unseen_entity_type_names_the_file_and_sentence():
    enc = encoder()
    with pytest.raises(DataFormatError, match="dev.conll: sentence 2: tag 'S-DATE'"):
        SentenceDataset(enc, [TRAIN[0], Sentence(("Monday",), ("I-DATE",))], name="dev.conll")


def test_state_dict_is_plain_data_and_round_trips():
    enc = encoder()
    buffer = io.BytesIO()
    torch.save(enc.state_dict(), buffer)
    buffer.seek(0)
    again = WindowEncoder.from_state_dict(torch.load(buffer, weights_only=True))
    tokens = ["Museums", "in", "Berlin", "are", "amazing"]
    assert torch.equal(again.encode_tokens(tokens), enc.encode_tokens(tokens))
    assert again.tags == enc.tags and again.scheme == enc.scheme and again.source_scheme == enc.source_scheme
    assert again.vocabs == enc.vocabs


def test_window_dataset_and_sentence_collate():
    enc = encoder()
    train = WindowDataset(enc, TRAIN)
    assert len(train) == sum(len(s) for s in TRAIN)
    batch = torch.utils.data.default_collate([train[i] for i in range(4)])
    assert batch["windows"].shape == (4, 4, 5) and batch["tags"].shape == (4,)
    dev = SentenceDataset(enc, TRAIN)
    batch = collate_sentences([dev[0], dev[1]])
    assert batch["lengths"].tolist() == [5, 6]
    assert batch["windows"].shape[0] == batch["tags"].shape[0] == 11
    # the concatenation is the sentences' own windows, in order
    assert torch.equal(batch["windows"][5:], enc.encode_tokens(TRAIN[1].tokens))


def test_streaming_reads_lazily():
    enc = encoder()
    read = []

    def source():
        for s in TRAIN * 1000:
            read.append(s)
            yield s

    stream = iter(StreamingSentences(enc, source))
    next(stream)
    next(stream)
    assert len(read) == 2  # nothing read ahead beyond what was asked for


def test_data_module_sample_keyword_and_batches():
    dm = CoNLLDataModule(train_path="sample", val_path="sample", features=["word", "casing"], batch_size=16,
                         eval_batch_size=8)
    assert dm.train_path == SAMPLE_FILES["train"] and dm.train_path.is_file()
    dm.setup("fit")
    train_batch = next(iter(dm.train_dataloader()))
    assert train_batch["windows"].shape == (16, 2, 5)
    val_batch = next(iter(dm.val_dataloader()))
    assert val_batch["lengths"].numel() == 8 and val_batch["lengths"].sum() == val_batch["tags"].numel()
    # the model's view of the vocabularies is plain data
    assert isinstance(dm.encoder_state["features"]["word"]["itos"], list)


def test_data_module_rejects_bad_options(tmp_path):
    with pytest.raises(ConfigError, match="data.tag_scheme"):
        CoNLLDataModule(tag_scheme="BIO")
    with pytest.raises(ConfigError, match="data.batch_size"):
        CoNLLDataModule(batch_size=0)
    dm = CoNLLDataModule(train_path=str(tmp_path / "missing.conll"))
    with pytest.raises(DataFormatError, match="missing.conll"):
        dm.encoder_state


def test_vocabularies_share_the_special_ids():
    enc = encoder()
    for vocab in enc.vocabs.values():
        assert vocab.itos[:4] == [Vocab.PAD, Vocab.UNK, BOS, EOS]
