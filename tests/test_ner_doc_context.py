"""The doc_context feature (cs224n_nn.ner.doc_context): keys, the encoder's bag channels, the network's mean.
The commands that read a checkpoint with it: tests/test_ner_doc_casing.py (both document features)."""

from __future__ import annotations

import torch

from cs224n_nn.ner import doc_context
from cs224n_nn.ner.conll import Sentence
from cs224n_nn.ner.doc_context import DocumentContext, neighbour_keys
from cs224n_nn.ner.documents import Document, document_of_each
from cs224n_nn.ner.features import BOS, EOS, SentenceDataset, StreamingSentences, WindowDataset, WindowEncoder
from cs224n_nn.ner.network import WindowNERNetwork

DOC0 = [
    Sentence(("President", "Clinton", "said", "."), ("O", "S-PER", "O", "O"), document=0),
    Sentence(("Clinton", "met", "Yeltsin", "."), ("S-PER", "O", "S-PER", "O"), document=0),
    Sentence(("Mr", "Clinton", "said", "."), ("O", "S-PER", "O", "O"), document=0),
]
DOC1 = [Sentence(("Clinton", "won", "in", "1992", "."), ("S-PER", "O", "O", "O", "O"), document=1)]


def test_neighbour_keys_mark_the_side_normalise_the_word_and_use_the_boundaries():
    assert neighbour_keys(["President", "Clinton", "said"], 1) == ("L:president", "R:said")
    assert neighbour_keys(["Clinton"], 0) == ("L:<s>", "R:</s>")
    assert neighbour_keys(["in", "1992", "Clinton"], 2) == ("L:0000", "R:</s>")


def test_a_capitalised_token_gets_the_most_frequent_neighbours_of_its_words_other_occurrences():
    doc = DocumentContext(s.tokens for s in DOC0)
    # Clinton in sentence 0: its own "L:president"/"R:said" are left out; "R:said" still occurs once more
    # (sentence 2) and ties break by first sight
    assert doc.keys(DOC0[0].tokens) == [[], ["R:said", "L:<s>", "R:met", "L:mr"], [], []]
    # Clinton in sentence 1: the other two occurrences; "R:said" twice comes first
    assert doc.keys(DOC0[1].tokens)[0] == ["R:said", "L:president", "L:mr"]
    # a word that occurs once has nothing; a lower-case token has nothing even when repeated
    assert doc.keys(DOC0[1].tokens)[2] == [] and doc.keys(DOC0[0].tokens)[2] == []
    # occurrences in any casing count: "museums" gives "Museums" its neighbours
    museums = DocumentContext([["Museums", "open"], ["see", "museums", "today"]])
    assert museums.keys(["Museums", "open"])[0] == ["L:see", "R:today"]


def test_a_token_holds_at_most_slots_keys(monkeypatch):
    words = ["apple", "berry", "cherry", "date", "elder"]
    sentences = [["Smith", w] for w in words]  # neighbours L:<s> five times, each R:word once
    assert DocumentContext(sentences).keys(["Smith", "apple"])[0] == ["L:<s>", "R:berry", "R:cherry", "R:date",
                                                                      "R:elder"]
    monkeypatch.setattr(doc_context, "SLOTS", 2)
    assert DocumentContext(sentences).keys(["Smith", "apple"])[0] == ["L:<s>", "R:berry"]


def test_encoder_builds_the_keys_vocabulary_from_training_documents_and_fills_the_bag_channels():
    enc = WindowEncoder.build(DOC0 + DOC1, features=["word", "doc_context"], half_width=1, affix_min_freq=1)
    vocab = enc.vocabs["doc_context"]
    assert enc.uses_documents and enc.channels[1] == slice(1, 1 + doc_context.SLOTS)
    # DOC1's "Clinton" occurs once in its document: no keys from it
    expected = {k for s, d in zip(DOC0, document_of_each(DOC0)) for ks in d.context.keys(s.tokens) for k in ks}
    assert set(vocab.itos[4:]) == expected
    doc = Document(s.tokens for s in DOC0)
    w = enc.encode_batch([s.tokens for s in DOC0], documents=[doc] * 3)  # [N, C, W]
    centre = w[:, 1:, 1]
    clinton = centre[1]
    assert vocab.decode(clinton[:4]) == doc.context.keys(DOC0[0].tokens)[1] and (clinton[4:] == 0).all()
    assert (centre[0] == 0).all() and (centre[2] == 0).all()  # "President" once, "said" lower case
    # the window's left edge: the boundary id, then padding (as a bag of N-grams)
    assert vocab.decode(w[0, 1:2, 0]) == [BOS] and (w[0, 2:, 0] == 0).all()
    assert vocab.decode(w[3, 1:2, 2]) == [EOS]
    # unknown keys (a document the vocabulary never saw) are <unk>; alone, a sentence gives no keys
    other = Document([["Clinton", "spoke"], ["Clinton", "left"]])
    unseen = enc.encode_batch([["Clinton", "spoke"]], documents=[other])
    assert vocab.decode(unseen[0, 1:3, 1]) == ["L:<s>", vocab.UNK]
    assert (enc.encode_batch([DOC0[0].tokens])[:, 1:, 1] == 0).all()
    assert torch.equal(enc.encode_tokens(DOC0[0].tokens, document=doc), w[:4])


def test_datasets_and_the_stream_give_the_same_document_windows():
    enc = WindowEncoder.build(DOC0 + DOC1, features=["word", "doc_casing", "doc_context"], half_width=1,
                              affix_min_freq=1)
    sentences = DOC0 + DOC1
    expected = torch.cat([enc.encode_tokens(s.tokens, document=d) for s, d in zip(sentences, document_of_each(sentences))])
    assert torch.equal(WindowDataset(enc, sentences).windows, expected)
    assert torch.equal(torch.cat([it["windows"] for it in SentenceDataset(enc, sentences).items]), expected)
    assert torch.equal(torch.cat([it["windows"] for it in StreamingSentences(enc, lambda: iter(sentences))]), expected)
    assert not torch.equal(enc.encode_tokens(DOC0[1].tokens), expected[4:8])


def test_the_network_reads_the_mean_of_a_tokens_key_vectors_and_nothing_for_a_token_without_keys():
    enc = WindowEncoder.build(DOC0 + DOC1, features=["word", "doc_context"], half_width=0, affix_min_freq=1)
    net = WindowNERNetwork(enc, feature_dims={"word": 4, "doc_context": 3}, word_vectors="none", hidden_dims=[5])
    net.eval()
    windows = enc.encode_batch([s.tokens for s in DOC0], documents=[Document(s.tokens for s in DOC0)] * 3)
    x = net.window_vectors(windows)  # [N, 4 + 3]
    table = net.embeddings[1].weight
    ids = windows[1, 1:, 0]
    assert torch.allclose(x[1, 4:], table[ids[ids != 0]].mean(0))
    assert torch.equal(x[0, 4:], torch.zeros(3))
    assert net.embeddings[1].padding_idx == 0 and table.shape == (len(enc.vocabs["doc_context"]), 3)
    # the default size of the feature's vectors
    assert WindowNERNetwork(enc, word_vectors="none").embeddings[1].weight.shape[1] == 16
