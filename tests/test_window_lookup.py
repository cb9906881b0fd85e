"""The window lookup and concatenation as one Function (cs224n_nn.autograd.WindowLookup) against the
composition it replaces: one cs224n_nn Embedding per feature (torch.where over a split table) and
torch.cat, in every autograd mode, and in the NER network."""

from __future__ import annotations

import re

import pytest
import torch
from torch.autograd import forward_ad as fwAD
from torch.autograd import gradcheck, gradgradcheck

import cs224n_nn.functional as cf
from cs224n_nn.autograd import WindowLookup
from cs224n_nn.autograd.window import split_lookup

B, W = 3, 5


def setup(dtype=torch.float64, sparse=False, seed=0, pad=0):
    """ids (B, 3, W); a word table split at 6 of 10 rows (the trained part first), a casing table of 4
    rows with padding row ``pad``, and a bag vector (B, W, 2) passed through."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.stack([torch.randint(0, 10, (B, W), generator=gen),
                       torch.randint(0, 4, (B, W), generator=gen),
                       torch.zeros(B, W, dtype=torch.long)], dim=1)
    ids[0, 0, :3] = torch.tensor([5, 6, 0])  # both sides of the split, and the padding id of the word table
    ids[1, 1, 0] = 0  # casing padding
    trained = torch.randn(6, 3, dtype=dtype, generator=gen).requires_grad_()
    frozen = torch.randn(4, 3, dtype=dtype, generator=gen)  # no gradient, as in the NER model
    casing = torch.randn(4, 2, dtype=dtype, generator=gen).requires_grad_()
    bag = torch.randn(B, W, 2, dtype=dtype, generator=gen).requires_grad_()
    layout = ((0, ((0, pad, sparse), (6, None, False))), (1, ((0, pad, sparse),)), (None, ()))
    return ids, layout, (trained, frozen, casing, bag)


def composed(ids, tensors, sparse=False):
    """What the NER network computed before: one embedding per table, torch.where over the split, cat."""
    trained, frozen, casing, bag = tensors
    words = split_lookup(ids[:, 0], 6, lambda i: cf.embedding(i, trained, padding_idx=0, sparse=sparse),
                         lambda i: cf.embedding(i, frozen))
    parts = [words, cf.embedding(ids[:, 1], casing, padding_idx=0, sparse=sparse), bag]
    return torch.cat(parts, dim=-1).flatten(1)


def fused(ids, layout):
    return lambda *tensors: WindowLookup.apply(ids, layout, *tensors)


def test_values_and_gradients_equal_the_composition_bit_for_bit():
    ids, layout, tensors = setup(torch.float32)
    out = WindowLookup.apply(ids, layout, *tensors)
    ref = composed(ids, tensors)
    assert out.shape == (B, W * (3 + 2 + 2)) and torch.equal(out, ref)
    up = torch.randn_like(out)
    wanted = [t for t in tensors if t.requires_grad]
    ours = torch.autograd.grad(out, wanted, up)
    theirs = torch.autograd.grad(ref, wanted, up)
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)
    assert ours[0][0].abs().sum() == 0 and ours[1][0].abs().sum() == 0  # the padding rows get nothing


def test_sparse_tables_get_the_sparse_gradient_the_composition_gets():
    ids, layout, tensors = setup(torch.float64, sparse=True)
    up = torch.randn(B, W * 7, dtype=torch.float64)
    wanted = (tensors[0], tensors[2])
    ours = torch.autograd.grad(WindowLookup.apply(ids, layout, *tensors), wanted, up)
    theirs = torch.autograd.grad(composed(ids, tensors, sparse=True), wanted, up)
    for a, b in zip(ours, theirs):
        assert a.is_sparse and b.is_sparse
        torch.testing.assert_close(a.to_dense(), b.to_dense(), rtol=0, atol=0)


def test_gradcheck_gradgradcheck_forward_mode_and_batched_in_float64():
    # No padding row: its zero gradient is a convention (torch's), not the derivative gradcheck computes.
    ids, layout, tensors = setup(pad=None)
    f = fused(ids, layout)
    assert gradcheck(f, tensors, check_forward_ad=True, check_batched_grad=True, check_batched_forward_grad=True)
    assert gradgradcheck(f, tensors, check_fwd_over_rev=True, check_rev_over_rev=True)


def test_forward_mode_equals_the_composition():
    ids, layout, tensors = setup()
    tangents = [torch.randn_like(t) for t in tensors]
    tangents[1] = None  # the frozen part has no tangent
    with fwAD.dual_level():
        duals = [t.detach() if v is None else fwAD.make_dual(t.detach(), v) for t, v in zip(tensors, tangents)]
        ours = fwAD.unpack_dual(WindowLookup.apply(ids, layout, *duals)).tangent
        theirs = fwAD.unpack_dual(composed(ids, duals)).tangent
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    # Without a padding row (reverse mode gives it no gradient by convention, forward mode its tangent).
    ids, layout, tensors = setup(pad=None)
    jac_fwd = torch.func.jacfwd(fused(ids, layout), argnums=(0, 2, 3))(*tensors)
    jac_rev = torch.func.jacrev(fused(ids, layout), argnums=(0, 2, 3))(*tensors)
    torch.testing.assert_close(jac_fwd, jac_rev)


def test_vmap_over_batched_gradients():
    ids, layout, tensors = setup()
    out = WindowLookup.apply(ids, layout, *tensors)
    ups = torch.randn(4, *out.shape, dtype=out.dtype)
    wanted = (tensors[0], tensors[2], tensors[3])
    batched = torch.autograd.grad(out, wanted, ups, is_grads_batched=True, retain_graph=True)
    for i in range(4):
        one = torch.autograd.grad(out, wanted, ups[i], retain_graph=True)
        for a, b in zip(batched, one):
            torch.testing.assert_close(a[i], b)


def test_autocast_follows_the_tables_dtype_and_compile_traces_it():
    ids, layout, tensors = setup(torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = WindowLookup.apply(ids, layout, *tensors)
        ref = composed(ids, tensors)
    assert out.dtype == ref.dtype == torch.float32 and torch.equal(out, ref)
    compiled = torch.compile(fused(ids, layout), fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(*tensors), composed(ids, tensors))


@pytest.mark.parametrize("bad, message", [
    ("id past the end", "found id 10"),
    ("negative id", "found id -1"),
    ("float ids", "int32/int64 (B, C, W)"),
    ("too few tensors", "layout reads 4 tensors after ids, got 3"),
    ("channel", "layout names channel 7, but ids has 3 channels"),
    ("split gap", "serve consecutive ids from 0"),
    ("bag shape", "must be (B, W, d)"),
    ("padding_idx", "padding_idx must be within [-4, 4)"),
])
def test_bad_input_is_one_clear_error(bad, message):
    ids, layout, tensors = setup()
    if bad == "id past the end":
        ids[0, 0, 0] = 10
    elif bad == "negative id":
        ids[0, 0, 0] = -1
    elif bad == "float ids":
        ids = ids.double()
    elif bad == "too few tensors":
        tensors = tensors[:3]
    elif bad == "channel":
        layout = ((7, ((0, 0, False), (6, None, False))),) + layout[1:]
    elif bad == "split gap":
        layout = ((0, ((0, 0, False), (5, None, False))),) + layout[1:]
    elif bad == "padding_idx":
        layout = layout[:1] + ((1, ((0, 4, False),)),) + layout[2:]
    elif bad == "bag shape":
        tensors = (*tensors[:3], tensors[3][:, :2])
    with pytest.raises((ValueError, IndexError, TypeError), match=re.escape(message)):
        WindowLookup.apply(ids, layout, *tensors)


# ---------------------------------------------------------------- in the NER network

from cs224n_nn.ner.conll import Sentence  # noqa: E402
from cs224n_nn.ner.features import WindowEncoder, collate_sentences, encode_sentence  # noqa: E402
from cs224n_nn.ner.network import WindowNERNetwork  # noqa: E402

TRAIN = [
    Sentence(("Museums", "in", "Paris", "are", "amazing"), ("O", "O", "I-LOC", "O", "O")),
    Sentence(("John", "Smith", "visited", "Berlin", "."), ("I-PER", "I-PER", "O", "I-LOC", "O")),
]


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_the_network_looks_up_its_windows_in_one_call_with_the_same_numbers(sparse, monkeypatch):
    """Word (split: the pretrained-only words 'Rome' and 'Madrid' in a frozen second table), casing and
    character 3-grams (a bag, averaged outside): the fused lookup and the per-table path agree on the
    window vectors, the loss and every gradient."""
    encoder = WindowEncoder.build(TRAIN, features=("word", "casing", "char3"), half_width=1,
                                  extra_words=["Rome", "Madrid"])
    torch.manual_seed(0)
    network = WindowNERNetwork(encoder.state_dict(), word_vectors="none", hidden_dims=[6], dropout=0.0)
    word = network.embeddings[network.encoder.features.index("word")]
    assert word.frozen is not None and word.n_trained < word.num_embeddings  # the table is split
    for table in (word.trained, network.embeddings[1]):
        table.sparse = sparse
    test = [Sentence(("Rome", "and", "Paris", "."), ("I-LOC", "O", "I-LOC", "O"))]  # a frozen-table word
    batch = collate_sentences([encode_sentence(encoder, s) for s in TRAIN + test])
    calls = []
    real = WindowLookup.apply
    monkeypatch.setattr(WindowLookup, "apply", lambda *a: calls.append(1) or real(*a))
    params = [p for p in network.parameters() if p.requires_grad]
    fused_x = network.window_vectors(batch["windows"])
    fused_loss = network.training_loss(batch)
    fused_grads = torch.autograd.grad(fused_loss, params)
    assert len(calls) == 2  # one lookup per forward
    monkeypatch.setattr(type(network), "_window_layout", lambda self, windows: None)  # the per-table path
    assert torch.equal(network.window_vectors(batch["windows"]), fused_x)
    loss = network.training_loss(batch)
    assert torch.equal(loss, fused_loss)
    for ours, theirs in zip(fused_grads, torch.autograd.grad(loss, params)):
        assert ours.is_sparse == theirs.is_sparse
        assert torch.equal(ours.to_dense(), theirs.to_dense()) if ours.is_sparse else torch.equal(ours, theirs)
    assert len(calls) == 2


def test_a_table_the_fused_lookup_does_not_cover_takes_the_per_table_path():
    encoder = WindowEncoder.build(TRAIN, features=("word", "casing"), half_width=1)
    network = WindowNERNetwork(encoder.state_dict(), word_vectors="none", hidden_dims=[6], dropout=0.0)
    windows = collate_sentences([encode_sentence(encoder, s) for s in TRAIN])["windows"]
    assert network._window_layout(windows) is not None
    network.embeddings[1].max_norm = 1.0  # renormalises rows in place before the lookup: not fused
    assert network._window_layout(windows) is None
    network.embeddings[1].max_norm = None
    twin = torch.nn.Embedding(network.embeddings[1].num_embeddings, network.embeddings[1].embedding_dim)
    network.embeddings[1] = twin  # torch's own table (the benchmark's twin): not fused either
    assert network._window_layout(windows) is None
    assert network.window_vectors(windows).shape == (windows.shape[0], 3 * (network.embeddings[0].embedding_dim + 8))
