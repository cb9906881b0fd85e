"""The doc_casing feature (cs224n_nn.ner.doc_casing): categories, documents, and every path that encodes them
(with doc_context too, for the commands)."""

from __future__ import annotations

import pytest
import torch
from run_helpers import run, tiny_checkpoint

from cs224n_nn.ner import documents
from cs224n_nn.ner.conll import Sentence, read_conll
from cs224n_nn.ner.datamodule import CoNLLDataModule
from cs224n_nn.ner.doc_casing import CATEGORIES, DocumentCasing
from cs224n_nn.ner.documents import Document, document_of_each, iter_documents
from cs224n_nn.ner.features import BOS, EOS, SentenceDataset, StreamingSentences, WindowDataset, WindowEncoder

DOC0 = [
    Sentence(("Museums", "in", "Paris", "are", "amazing", "."), ("O", "O", "I-LOC", "O", "O", "O"), document=0),
    Sentence(("She", "likes", "museums", "in", "Paris", "."), ("O", "O", "O", "O", "I-LOC", "O"), document=0),
]
DOC1 = [
    Sentence(("Apple", "sells", "apple", "juice", "and", "Apple", "phones"),
             ("I-ORG", "O", "O", "O", "O", "I-ORG", "O"), document=1),
]


def test_each_token_is_categorised_by_the_other_occurrences_of_its_word():
    doc = DocumentCasing(s.tokens for s in DOC0)
    # Museums: lower case elsewhere; in: lower elsewhere; Paris: capitalised mid-sentence in the other
    # sentence; are, amazing: nowhere else; ".": not a word
    assert doc.keys(DOC0[0].tokens) == ["low", "low", "cap", "none", "none", "na"]
    # She opens its sentence and occurs nowhere else; museums' other form "Museums" is sentence-initial
    assert doc.keys(DOC0[1].tokens) == ["none", "none", "none", "low", "cap", "na"]
    apple = DocumentCasing([DOC1[0].tokens]).keys(DOC1[0].tokens)
    # "Apple" (first): lower "apple" and mid-sentence "Apple" elsewhere; "apple": only the mid-sentence "Apple"
    assert apple[:3] == ["both", "none", "cap"] and apple[5] == "low"
    # a document of one sentence whose words occur once: all none, non-words na
    assert DocumentCasing([["Hello", "world", "42"]]).keys(["Hello", "world", "42"]) == ["none", "none", "na"]
    assert DocumentCasing([[]]).keys([]) == []


def test_documents_are_consecutive_sentences_with_one_id_and_are_cut_when_long(monkeypatch):
    sentences = DOC0 + DOC1 + [Sentence(("x",), ("O",), document=0)]  # a later document 0 is a new one
    assert [len(d) for d in iter_documents(sentences)] == [2, 1, 1]
    docs = document_of_each(sentences)
    assert docs[0] is docs[1] and docs[1] is not docs[2] and docs[2] is not docs[3]
    assert docs[0].sentences == [list(s.tokens) for s in DOC0]
    monkeypatch.setattr(documents, "MAX_DOCUMENT_SENTENCES", 2)
    assert [len(d) for d in iter_documents([Sentence(("a",), ("O",))] * 5)] == [2, 2, 1]


def test_encoder_fills_the_channel_from_the_document_given_or_the_sentence_alone():
    enc = WindowEncoder.build(DOC0 + DOC1, features=["word", "doc_casing"], half_width=1)
    keys = enc.vocabs["doc_casing"]
    assert keys.itos[4:] == list(CATEGORIES) and enc.uses_documents
    doc = Document(s.tokens for s in DOC0)
    w = enc.encode_batch([s.tokens for s in DOC0], documents=[doc, doc])
    assert keys.decode(w[:6, 1, 1]) == doc.casing.keys(DOC0[0].tokens)
    assert keys.decode(w[0, 1]) == [BOS, "low", "low"] and keys.decode(w[5, 1]) == ["none", "na", EOS]
    # without documents, each sentence is its own: "Paris" occurs once in the first sentence
    alone = enc.encode_batch([DOC0[0].tokens])
    assert keys.decode(alone[:, 1, 1]) == ["none", "none", "none", "none", "none", "na"]
    assert torch.equal(enc.encode_tokens(DOC0[0].tokens, document=doc), w[:6])
    assert not WindowEncoder.build(DOC0, features=["word"], half_width=1).uses_documents
    with pytest.raises(ValueError, match="encode_batch: 1 documents for 2 sentences"):
        enc.encode_batch([s.tokens for s in DOC0], documents=[doc])


def test_datasets_and_the_stream_count_words_per_document():
    enc = WindowEncoder.build(DOC0 + DOC1, features=["word", "casing", "doc_casing"], half_width=1)
    sentences = DOC0 + DOC1
    expected = torch.cat([enc.encode_tokens(s.tokens, document=d) for s, d in zip(sentences, document_of_each(sentences))])
    assert torch.equal(WindowDataset(enc, sentences).windows, expected)
    assert torch.equal(torch.cat([it["windows"] for it in SentenceDataset(enc, sentences).items]), expected)
    streamed = list(StreamingSentences(enc, lambda: iter(sentences)))
    assert torch.equal(torch.cat([it["windows"] for it in streamed]), expected)
    # the document counts matter: the first sentence alone encodes differently
    assert not torch.equal(enc.encode_tokens(DOC0[0].tokens), expected[:6])


def test_training_and_dev_windows_use_their_files_documents():
    dm = CoNLLDataModule(features=["word", "doc_casing"], half_width=0)
    dm.setup("fit")
    keys = dm.encoder.vocabs["doc_casing"]
    got = keys.decode(dm.datasets["train"].windows[:, 1, 0])
    expected = [k for s, d in zip(dm.train_sentences, document_of_each(dm.train_sentences)) for k in d.casing.keys(s.tokens)]
    assert got == expected
    dev = read_conll(dm.val_path)
    dev_keys = [k for it in dm.datasets["val"].items for k in keys.decode(it["windows"][:, 1, 0])]
    assert dev_keys == [k for s, d in zip(dev, document_of_each(dev)) if len(s) for k in d.casing.keys(s.tokens)]


@pytest.mark.parametrize("document_features", [["doc_casing"], ["doc_context"], ["doc_casing", "doc_context"]])
def test_a_checkpoint_with_a_document_feature_evaluates_and_predicts_whole_documents(tmp_path, capsys,
                                                                                    document_features):
    features = ["word", "casing", *document_features]
    path = tiny_checkpoint(tmp_path, features=features, half_width=1)
    data = tmp_path / "two_documents.conll"
    data.write_text("-DOCSTART- -X- O O\n\nMuseums NNS O O\nopen VB O O\n\nsee VB O O\nmuseums NNS O O\n\n"
                    "-DOCSTART- -X- O O\n\nParis NNP I-NP I-LOC\n\n")
    out_file = tmp_path / "tagged.conll"
    code, _, err = run(capsys, "predict", "--ckpt", str(path), "--conll", str(data), "--output", str(out_file),
                       "--batch-size", "1")
    assert code == 0, err
    # batches of whole documents: with --batch-size 1 the first document's two sentences still go together
    from cs224n_nn.ner.commands import _sentence_batches
    from cs224n_nn.ner.model import load_window_ner

    model = load_window_ner(path)
    assert [len(b) for b in _sentence_batches(read_conll(data), 1, model.encoder)] == [2, 1]
    assert [len(line.split()) for line in out_file.read_text().split("\n\n")[0].splitlines()] == [3, 3]
    code, out, err = run(capsys, "evaluate", "--ckpt", str(path), "--data", str(data), "--by-word-kind")
    assert code == 0 and "overall" in out, err
    code, out, err = run(capsys, "predict", "--ckpt", str(path), "--text", "Museums in Paris are amazing")
    assert code == 0 and out.splitlines()[0].split()[0] == "Museums", err
