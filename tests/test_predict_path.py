"""The batched ``predict`` path against a straightforward one, sentence by sentence.

``tag_sentences`` encodes a whole batch of sentences as one tensor of windows
(:meth:`WindowEncoder.encode_batch`), runs the network once, decodes the
batch with one Viterbi and converts the ids back to the data's scheme with
one table lookup (:meth:`WindowEncoder.decode_batch`).  Each piece is checked
here against the plain definition: windows built position by position from
the vocabularies, the Viterbi of each sentence on its own, and
:func:`convert_tags` of each sentence's tag strings.
"""

from __future__ import annotations

import itertools
import random

import pytest
import torch

from cs224n_nn.ner.commands import tag_sentences
from cs224n_nn.ner.conll import SCHEMES, Sentence, convert_tags, read_conll
from cs224n_nn.ner.datamodule import SAMPLE_FILES
from cs224n_nn.ner.features import BOS, EOS, WindowEncoder, _key_function, tag_set
from cs224n_nn.ner.model import WindowNERModule

FEATURES = ["word", "casing", "shape", "prefix3", "suffix3"]


@pytest.fixture(autouse=True)
def one_thread():
    """One thread, restored after: on the shared 2-core machine a two-thread barrier
    in every small Viterbi step waits for a core, which turns seconds into minutes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def train():
    return read_conll(SAMPLE_FILES["train"])


@pytest.fixture(scope="module")
def dev_sentences():
    return [s for s in read_conll(SAMPLE_FILES["val"])]


def reference_windows(encoder: WindowEncoder, tokens) -> torch.Tensor:
    """``[L, C, W]`` by the definition: feature ``c`` of window position ``w`` of token ``i``."""
    h = encoder.half_width
    out = []
    for i in range(len(tokens)):
        window = []
        for name, vocab in encoder.vocabs.items():
            key = _key_function(name)
            row = []
            for j in range(i - h, i + h + 1):
                if j < 0:
                    row.append(vocab.index(BOS))
                elif j >= len(tokens):
                    row.append(vocab.index(EOS))
                else:
                    row.append(vocab.stoi.get(vocab.key(key(tokens[j])), vocab.unk_id))
            window.append(row)
        out.append(window)
    return torch.tensor(out, dtype=torch.long).reshape(len(tokens), len(encoder.vocabs), encoder.window)


def edge_sentences(dev_sentences) -> list[Sentence]:
    """Empty lines, one-token sentences, unknown words, and a sentence of 1,500 tokens, among ordinary ones."""
    long = [t for s in dev_sentences[:200] for t in s.tokens][:1500]
    assert len(long) == 1500
    return [
        Sentence.unlabeled([]),
        *(Sentence.unlabeled(list(s.tokens)) for s in dev_sentences[:5]),
        Sentence.unlabeled(["Paris"]),
        Sentence.unlabeled([]),
        Sentence.unlabeled(["xq-Zzv9", "QWERTYUIOP", "ünïcödé", "@@", "1234567"]),
        Sentence.unlabeled(["."]),
        Sentence.unlabeled(long),
        Sentence.unlabeled([]),
    ]


@pytest.mark.parametrize("half_width", [0, 1, 3])
def test_encode_batch_gives_the_windows_of_the_definition(train, dev_sentences, half_width):
    encoder = WindowEncoder.build(train, features=FEATURES, half_width=half_width, scheme="IOBES")
    sentences = edge_sentences(dev_sentences)
    expected = torch.cat([reference_windows(encoder, s.tokens) for s in sentences])
    assert expected.shape == (sum(len(s) for s in sentences), len(FEATURES), 2 * half_width + 1)
    got = encoder.encode_batch([s.tokens for s in sentences])
    assert got.dtype == torch.long and torch.equal(got, expected)
    # unknown words took the unknown id somewhere (the check above covers them)
    assert (expected[:, 0, half_width] == encoder.vocabs["word"].unk_id).any()
    # one sentence at a time, and the memo of token ids cleared or not, the same windows
    encoder._ids_of.clear()
    assert torch.equal(torch.cat([encoder.encode_tokens(s.tokens) for s in sentences]), expected)


def test_encode_batch_of_nothing(train):
    encoder = WindowEncoder.build(train, features=["word", "casing"], half_width=2)
    for batch in ([], [[]], [[], []]):
        assert encoder.encode_batch(batch).shape == (0, 2, 5)


@pytest.mark.parametrize("scheme,source", list(itertools.product(SCHEMES, SCHEMES)))
def test_decode_batch_is_convert_tags_sentence_by_sentence(scheme, source):
    # Random id sequences, the invalid ones too (the argmax decoder makes them).
    tags = tag_set(["LOC", "PER", "MISC"], scheme)
    encoder = WindowEncoder({"word": WindowEncoder.build(
        [Sentence(("a",), ("O",))], features=["word"]).vocabs["word"]}, tags, half_width=1, scheme=scheme,
        source_scheme=source)
    rng = random.Random(f"{scheme}-{source}")
    lengths = [rng.choice([0, 1, 1, 2, 3, 5, 8, 13]) for _ in range(300)]
    sentences = [[rng.randrange(len(tags)) for _ in range(n)] for n in lengths]
    # dense runs of entity tags, where the scheme's boundaries matter most
    sentences += [[rng.choice([1, 2, 3, 4]) for _ in range(6)] for _ in range(100)]
    lengths += [6] * 100
    ids = torch.tensor([i for s in sentences for i in s], dtype=torch.long)
    got = encoder.decode_batch(ids, torch.tensor(lengths))
    expected = [convert_tags([tags[i] for i in s], scheme, source) for s in sentences]
    assert got == expected
    assert encoder.decode_tags(sentences[1]) == expected[1]


def test_decode_batch_rejects_ids_that_do_not_fit(train):
    encoder = WindowEncoder.build(train, features=["word"], half_width=1)
    with pytest.raises(ValueError, match="summing to 3"):
        encoder.decode_batch(torch.tensor([0, 0]), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"tag ids must be in \[0, "):
        encoder.decode_batch(torch.tensor([len(encoder.tags)]), torch.tensor([1]))


def reference_tags(model: WindowNERModule, sentences) -> list[list[str]]:
    """The straightforward path: windows by definition, the Viterbi of each sentence alone, convert_tags."""
    encoder = model.encoder
    kept = [s for s in sentences if len(s)]
    with torch.inference_mode():
        scores = model(torch.cat([reference_windows(encoder, s.tokens) for s in kept]))
    out, at = [], 0
    for s in sentences:
        if not len(s):
            out.append([])
            continue
        ids = model.decode_ids(scores[at:at + len(s)], torch.tensor([len(s)]))
        at += len(s)
        out.append(convert_tags([encoder.tags[i] for i in ids.tolist()], encoder.scheme, encoder.source_scheme))
    return out


@pytest.mark.parametrize("loss,decode", [("cross_entropy", "viterbi"), ("sentence_ll", "viterbi"),
                                         ("max_margin", "viterbi"), ("cross_entropy", "argmax")])
def test_tag_sentences_equals_the_sentence_by_sentence_path(train, dev_sentences, loss, decode):
    torch.manual_seed(0)
    encoder = WindowEncoder.build(train, features=FEATURES, half_width=3, scheme="IOBES")
    model = WindowNERModule(encoder=encoder.state_dict(), word_vectors="none", hidden_dims=[32], loss=loss,
                            decode=decode, feature_dims={"word": 16, "casing": 4, "shape": 4, "prefix3": 4,
                                                         "suffix3": 4}).eval()
    with torch.no_grad():  # an untrained model tags almost everything O: larger scores give every tag a chance
        for p in model.parameters():
            p.mul_(4)
        if loss == "sentence_ll":
            for p in model.network.crf.parameters():
                p.normal_(0, 2)
    sentences = edge_sentences(dev_sentences) + [Sentence.unlabeled(list(s.tokens)) for s in dev_sentences]
    expected = reference_tags(model, sentences)
    assert len({t for s in expected for t in s}) >= 6  # entities of several types and prefixes, not all O
    # predict's batches: one batch of all, and batches that split the text anywhere
    assert tag_sentences(model, sentences) == expected
    for size in (1, 7, 64):
        got = [t for i in range(0, len(sentences), size) for t in tag_sentences(model, sentences[i:i + size])]
        assert got == expected
    assert tag_sentences(model, [Sentence.unlabeled([])] * 3) == [[], [], []]
