"""Affine, Dropout and Embedding against torch's linear, dropout and embedding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd import gradcheck, gradgradcheck

import cs224n_nn.autograd as A
from _torch_db import inverted_dropout
import cs224n_nn.functional as F

TOL = {
    torch.float64: dict(rtol=1e-10, atol=1e-12),
    torch.float32: dict(rtol=1e-5, atol=1e-5),
    torch.float16: dict(rtol=1e-2, atol=1e-2),
    torch.bfloat16: dict(rtol=5e-2, atol=5e-2),
}
# Every matrix test also runs on CUDA where a GPU is present (not generated, so not skipped, elsewhere).
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def grads(f, inputs, upstream=None):
    """f(*inputs) and the gradient of <f(*inputs), upstream> w.r.t. every input that requires grad."""
    out = f(*inputs)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out) if upstream is None else upstream
    wrt = [t for t in inputs if isinstance(t, torch.Tensor) and t.requires_grad]
    return out.detach(), torch.autograd.grad(out, wrt, upstream)


def leaves(*tensors):
    return [t.detach().clone().requires_grad_(True) for t in tensors]


# ---------------------------------------------------------------- affine


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", list(TOL), ids=str)
@pytest.mark.parametrize("x_shape", [(4,), (3, 4), (2, 3, 4), (0, 4), (2, 0, 4)], ids=str)
@pytest.mark.parametrize("with_bias", [True, False])
def test_affine_matches_linear(x_shape, with_bias, dtype, device):
    x, w, b = (torch.randn(s, dtype=torch.float64).to(dtype).to(device) for s in (x_shape, (5, 4), (5,)))
    ours = grads(F.affine, leaves(x, w, b) if with_bias else leaves(x, w) + [None])
    ref = grads(TF.linear, leaves(x, w, b) if with_bias else leaves(x, w) + [None])
    torch.testing.assert_close(ours, ref, **TOL[dtype])


def test_affine_in_features_zero_and_non_contiguous():
    w = torch.randn(5, 0)
    x = torch.randn(3, 0)
    b = torch.randn(5)
    torch.testing.assert_close(grads(F.affine, leaves(x, w, b)), grads(TF.linear, leaves(x, w, b)))
    x = torch.randn(4, 6, 3).transpose(0, 2)  # (3, 6, 4), non-contiguous
    w = torch.randn(4, 5).t()  # (5, 4), non-contiguous
    assert not x.is_contiguous() and not w.is_contiguous()
    torch.testing.assert_close(grads(F.affine, leaves(x, w, b)), grads(TF.linear, leaves(x, w, b)), **TOL[torch.float32])


def test_affine_nan_and_inf_propagate_like_linear():
    x = torch.tensor([[1.0, float("nan")], [float("inf"), 2.0]])
    w, b = torch.randn(3, 2), torch.randn(3)
    ours, ref = grads(F.affine, leaves(x, w, b)), grads(TF.linear, leaves(x, w, b))
    torch.testing.assert_close(ours, ref, equal_nan=True)


def test_affine_gradcheck_and_gradgradcheck():
    x, w, b = leaves(torch.randn(2, 3, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64),
                     torch.randn(5, dtype=torch.float64))
    assert gradcheck(F.affine, (x, w, b))
    assert gradgradcheck(F.affine, (x, w, b))
    assert gradcheck(F.affine, (x, w))


def test_affine_is_the_notes_vectorised_backprop():
    # dW = delta^T a summed over every leading dimension, db = sum delta, dx = delta W.
    x, w, b = leaves(torch.randn(2, 3, 4), torch.randn(5, 4), torch.randn(5))
    delta = torch.randn(2, 3, 5)
    _, (dx, dw, db) = grads(F.affine, (x, w, b), delta)
    torch.testing.assert_close(dw, torch.einsum("nko,nki->oi", delta, x.detach()))
    torch.testing.assert_close(db, delta.sum((0, 1)))
    torch.testing.assert_close(dx, delta @ w.detach())


def test_affine_saves_only_what_the_needed_gradients_use():
    x, w = torch.randn(3, 4), torch.randn(5, 4)
    for needs_x, needs_w, expect in [(True, False, "w"), (False, True, "x"), (False, False, None)]:
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
            F.affine(x.clone().requires_grad_(needs_x), w.clone().requires_grad_(needs_w))
        shapes = [tuple(t.shape) for t in saved]
        assert shapes == ({"w": [(5, 4)], "x": [(3, 4)], None: []}[expect])


@settings(max_examples=30, deadline=None)
@given(lead=st.lists(st.integers(0, 3), max_size=3), fan_in=st.integers(1, 5), fan_out=st.integers(1, 5),
       seed=st.integers(0, 2**16))
def test_affine_property_random_shapes(lead, fan_in, fan_out, seed):
    gen = torch.Generator().manual_seed(seed)
    x, w, b = (torch.randn(s, generator=gen, dtype=torch.float64) for s in ((*lead, fan_in), (fan_out, fan_in), (fan_out,)))
    torch.testing.assert_close(grads(F.affine, leaves(x, w, b)), grads(TF.linear, leaves(x, w, b)))


def test_affine_bad_shapes_and_dtypes():
    x, w, b = torch.randn(3, 4), torch.randn(5, 4), torch.randn(5)
    with pytest.raises(ValueError, match=r"input must have shape \(\.\.\., in_features=4\).*got \(3, 3\)"):
        F.affine(torch.randn(3, 3), w, b)
    with pytest.raises(ValueError, match=r"input must have shape .*got \(\)"):
        F.affine(torch.tensor(1.0), w, b)
    with pytest.raises(ValueError, match=r"weight must be 2-D"):
        F.affine(x, torch.randn(4), b)
    with pytest.raises(ValueError, match=r"bias must have shape \(out_features,\) = \(5,\), got \(4,\)"):
        F.affine(x, w, torch.randn(4))
    with pytest.raises(TypeError, match="input and weight must have the same dtype"):
        F.affine(x.double(), w, b)
    with pytest.raises(TypeError, match="input must be a floating-point tensor"):
        F.affine(torch.ones(3, 4, dtype=torch.int64), w, b)


# ---------------------------------------------------------------- dropout


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_is_torch_inverted_dropout_on_the_documented_draw(p, device):
    """Values and gradient equal torch's ``x * m / (1 - p)`` with ``m = rand_like(x) < 1 - p`` after the same seed."""
    x = torch.randn(1000, 3, device=device)
    torch.manual_seed(7)
    ours = grads(lambda v: F.dropout(v, p), leaves(x))
    torch.manual_seed(7)
    ref = grads(lambda v: inverted_dropout(v, p), leaves(x))
    torch.testing.assert_close(ours, ref)
    torch.manual_seed(7)
    kept = A.keep_mask(x, p) != 0
    torch.manual_seed(7)
    assert torch.equal(kept, torch.rand_like(x) < 1 - p)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_keeps_each_unit_with_probability_one_minus_p(p, dtype):
    """The law torch's dropout samples: the kept fraction of 400,000 units is within 5 binomial sd of 1 - p.

    For half and bfloat16 inputs too (their uniforms are drawn in float32: a bfloat16 uniform near 1 is a
    multiple of 2^-8, which would move P(kept) by up to about 0.4 %, 20 sd at this size). The torch twin,
    ``F.dropout``, is held to the same bound as the harness's own check.
    """
    n, keep = 400_000, 1 - p
    bound = 5 * (keep * p / n) ** 0.5
    torch.manual_seed(11)
    x = torch.ones(n, dtype=dtype)
    for drop in (F.dropout, TF.dropout):
        kept = (drop(x, p) != 0).double().mean().item()
        assert abs(kept - keep) < bound, (drop, kept, keep)
    # Successive draws differ, and the same seed repeats the draw.
    torch.manual_seed(12)
    a, b = A.keep_mask(x, p), A.keep_mask(x, p)
    torch.manual_seed(12)
    assert not torch.equal(a, b) and torch.equal(A.keep_mask(x, p), a)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16], ids=str)
def test_the_mask_is_the_indicator_of_a_uniform_below_keep_prob_bit_for_bit(dtype):
    """keep_mask spells [u < keep_prob] in float arithmetic (ceil of keep_prob - u): after the same
    seed it equals (u < keep_prob) / keep_prob in the input's dtype, with no negative zero, for
    keep probabilities whose float32 value sits between grid points, exactly on one, and at 1."""
    draw = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    x = torch.empty(50_000, dtype=dtype)
    for p in (0.0, 0.1, 0.25, 0.3, 0.5, 0.9, 1 - 2 ** -24, 0.999):
        keep = 1 - p
        torch.manual_seed(5)
        got = A.keep_mask(x, p)
        torch.manual_seed(5)
        u = torch.rand_like(x, dtype=draw)
        expected = (u < keep).to(dtype).div_(keep)
        assert got.dtype == dtype and torch.equal(got, expected), (dtype, p)
        assert not got.signbit().any()



def test_the_mask_drops_a_uniform_exactly_at_keep_prob_and_keeps_one_just_below(monkeypatch):
    below = lambda v: torch.nextafter(torch.tensor(v), torch.tensor(0.0)).item()  # noqa: E731
    u = torch.tensor([0.75, below(0.75), 0.0, below(1.0)])
    monkeypatch.setattr(torch, "rand_like", lambda x, dtype=None: u.clone().to(dtype or x.dtype))
    expected = torch.tensor([0.0, 1 / 0.75, 1 / 0.75, 0.0])
    assert torch.equal(A.keep_mask(torch.empty(4), 0.25), expected)
    assert not A.keep_mask(torch.empty(4), 0.25).signbit().any()


@pytest.mark.parametrize("dtype", list(TOL), ids=str)
def test_dropout_is_inverted_dropout(dtype):
    p = 0.25
    x = torch.rand(4000, dtype=torch.float64).add_(0.5).to(dtype)
    y, (g,) = grads(lambda v: F.dropout(v, p), leaves(x), torch.ones_like(x))
    kept = y != 0
    torch.testing.assert_close(y[kept], (x / (1 - p))[kept], **TOL[dtype])
    torch.testing.assert_close(g, kept.to(dtype) / (1 - p), **TOL[dtype])
    assert abs(kept.double().mean().item() - (1 - p)) < 0.04  # about keep_prob of the units survive


def test_dropout_identity_when_not_training_or_p_zero():
    x = torch.randn(3, 4, requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x


def test_dropout_shapes_and_non_contiguous_and_nan():
    for x in (torch.tensor(2.0), torch.randn(0, 3), torch.randn(2, 3, 4), torch.randn(5, 6).t(),
              torch.tensor([float("nan"), float("inf")] * 50)):
        torch.manual_seed(3)
        ours = grads(lambda v: F.dropout(v, 0.3), leaves(x))
        torch.manual_seed(3)
        ref = grads(lambda v: inverted_dropout(v, 0.3), leaves(x))
        torch.testing.assert_close(ours, ref, equal_nan=True)


def test_dropout_function_gradcheck_with_a_fixed_mask():
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    mask = A.keep_mask(x.detach(), 0.4)
    assert set(mask.unique().tolist()) <= {0.0, 1 / 0.6}
    assert gradcheck(A.Dropout.apply, (x, mask))
    assert gradgradcheck(A.Dropout.apply, (x, mask))


@pytest.mark.parametrize("p", [-0.1, 1.0001, 1.5, float("nan")])
def test_dropout_p_outside_zero_one_is_refused(p):
    with pytest.raises(ValueError, match=r"dropout probability p must be in \[0, 1\]"):
        F.dropout(torch.randn(3), p)


def test_dropout_p_one_gives_zeros_like_torch():
    x = torch.randn(4, 3, requires_grad=True)
    out = F.dropout(x, 1.0)
    twin = TF.dropout(x, 1.0)
    torch.testing.assert_close(out, twin, rtol=0, atol=0)
    assert not out.isnan().any() and torch.equal(out, torch.zeros(4, 3))
    (g,) = torch.autograd.grad(out.sum(), x)
    (g_twin,) = torch.autograd.grad(twin.sum(), x)
    torch.testing.assert_close(g, g_twin, rtol=0, atol=0)
    assert torch.equal(A.keep_mask(x.detach(), 1), torch.zeros(4, 3))


def test_dropout_bad_types():
    with pytest.raises(TypeError, match="p must be a real number"):
        F.dropout(torch.randn(3), "0.5")
    with pytest.raises(TypeError, match="input must be a floating-point tensor"):
        F.dropout(torch.ones(3, dtype=torch.int32), 0.5)
    with pytest.raises(ValueError, match="mask must have the shape of input"):
        A.Dropout.apply(torch.randn(3), torch.ones(4))


# ---------------------------------------------------------------- embedding


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", list(TOL), ids=str)
@pytest.mark.parametrize("ids_shape", [(), (0,), (5,), (2, 3), (2, 0, 3), (2, 3, 4)], ids=str)
@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding_matches_torch(ids_shape, padding_idx, dtype, device):
    weight = torch.randn(6, 3, dtype=torch.float64).to(dtype).to(device)
    ids = torch.randint(0, 6, ids_shape, device=device)
    ours = grads(lambda w: F.embedding(ids, w, padding_idx), leaves(weight))
    ref = grads(lambda w: TF.embedding(ids, w, padding_idx), leaves(weight))
    torch.testing.assert_close(ours, ref, **TOL[dtype])


def test_embedding_repeated_ids_add_up_and_padding_row_gets_nothing():
    weight = torch.randn(4, 2, requires_grad=True)
    ids = torch.tensor([[1, 1, 3], [1, 0, 3]], dtype=torch.int32)
    out = F.embedding(ids, weight, padding_idx=0)
    torch.testing.assert_close(out, weight.detach()[ids.long()])
    (g,) = torch.autograd.grad(out.sum(), weight)
    assert g.tolist() == [[0.0, 0.0], [3.0, 3.0], [0.0, 0.0], [2.0, 2.0]]


@pytest.mark.parametrize("padding_idx", [None, 1, -1])
def test_embedding_sparse_gradient_matches_torch(padding_idx):
    weight = torch.randn(5, 3)
    ids = torch.tensor([[0, 1, 1], [4, 1, 0]])
    upstream = torch.randn(2, 3, 3)
    _, (ours,) = grads(lambda w: F.embedding(ids, w, padding_idx, sparse=True), leaves(weight), upstream)
    _, (ref,) = grads(lambda w: TF.embedding(ids, w, padding_idx, sparse=True), leaves(weight), upstream)
    assert ours.is_sparse and ours.layout == torch.sparse_coo
    torch.testing.assert_close(ours.to_dense(), ref.to_dense())
    torch.testing.assert_close(ours.coalesce().indices(), ref.coalesce().indices())
    if padding_idx == -1:  # counts from the end, as in torch: row 4 (looked up once) gets nothing
        assert torch.equal(ours.to_dense()[4], torch.zeros(3)) and 4 not in ours.coalesce().indices()
    # a sparse gradient lands in .grad like torch's
    w = weight.clone().requires_grad_(True)
    F.embedding(ids, w, sparse=True).sum().backward()
    assert w.grad.is_sparse


def test_embedding_non_contiguous_weight_and_ids():
    weight = torch.randn(3, 7).t()
    ids = torch.randint(0, 7, (4, 3)).t()
    assert not weight.is_contiguous() and not ids.is_contiguous()
    torch.testing.assert_close(grads(lambda w: F.embedding(ids, w), leaves(weight)),
                               grads(lambda w: TF.embedding(ids, w), leaves(weight)))


def test_embedding_gradcheck_and_gradgradcheck():
    weight = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    ids = torch.tensor([[0, 2, 2], [4, 1, 2]])
    assert gradcheck(lambda w: F.embedding(ids, w), (weight,))
    assert gradgradcheck(lambda w: F.embedding(ids, w).pow(2), (weight,))


def test_embedding_saves_only_ids():
    saved = []
    ids = torch.tensor([1, 2])
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        F.embedding(ids, torch.randn(3, 2))
        assert saved == []
        F.embedding(ids, torch.randn(3, 2, requires_grad=True))
    assert len(saved) == 1 and saved[0] is ids


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(0, 4), max_size=3), num=st.integers(1, 6), dim=st.integers(1, 4),
       seed=st.integers(0, 2**16), pad=st.booleans())
def test_embedding_property_random_shapes(shape, num, dim, seed, pad):
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(num, dim, generator=gen, dtype=torch.float64)
    ids = torch.randint(0, num, shape, generator=gen)
    padding_idx = 0 if pad else None
    torch.testing.assert_close(grads(lambda w: F.embedding(ids, w, padding_idx), leaves(weight)),
                               grads(lambda w: TF.embedding(ids, w, padding_idx), leaves(weight)))


def test_embedding_bad_input():
    weight = torch.randn(5, 3)
    with pytest.raises(IndexError, match=r"input \(the ids\) must lie in \[0, 5\).*found id 5"):
        F.embedding(torch.tensor([0, 5]), weight)
    with pytest.raises(IndexError, match=r"found id -1"):
        F.embedding(torch.tensor([[-1, 2]]), weight)
    with pytest.raises(TypeError, match=r"input \(the ids\) must be an int64 or int32 tensor, got torch.float32"):
        F.embedding(torch.tensor([0.0, 1.0]), weight)
    with pytest.raises(TypeError, match="input .* got torch.bool"):
        F.embedding(torch.tensor([True]), weight)
    with pytest.raises(ValueError, match=r"padding_idx must be within \[-5, 5\)"):
        F.embedding(torch.tensor([0]), weight, padding_idx=5)
    with pytest.raises(ValueError, match="weight must be 2-D"):
        F.embedding(torch.tensor([0]), torch.randn(5))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_layers_keep_the_device():
    x, w, b = (torch.randn(s, device="cuda", requires_grad=True) for s in ((3, 4), (5, 4), (5,)))
    ids = torch.tensor([[0, 1], [3, 1]], device="cuda")
    out = F.affine(x, w, b).sum() + F.dropout(x, 0.5).sum() + F.embedding(ids, w, padding_idx=0).sum()
    grads = torch.autograd.grad(out, (x, w, b))
    assert all(g.device == x.device for g in grads)
    with pytest.raises(IndexError, match="found id 9"):
        F.embedding(torch.tensor([9], device="cuda"), w)


def test_embedding_cpu_reads_the_ids_only_after_the_lookup_refused_one(monkeypatch):
    # A good CPU lookup never reduces the ids on the host (index_select checks them itself) ...
    weight = torch.randn(5, 3, requires_grad=True)
    ids = torch.tensor([[0, 4], [2, 2]])
    expected = TF.embedding(ids, weight.detach())

    def no_host_read(*args, **kwargs):
        raise AssertionError("aminmax ran on a good call")

    with monkeypatch.context() as m:
        m.setattr(torch, "aminmax", no_host_read)
        assert torch.equal(F.embedding(ids, weight), expected)
    # ... and a bad one still gets our one-line message, without torch's error chained to it.
    with pytest.raises(IndexError) as bad:
        F.embedding(torch.tensor([[1, 7], [0, -3]]), weight)
    assert str(bad.value) == "input (the ids) must lie in [0, 5) (num_embeddings=5); found id -3"
    assert bad.value.__cause__ is None and bad.value.__suppress_context__


def test_explained_keeps_torch_error_when_it_finds_nothing_wrong():
    from cs224n_nn.autograd import _validate

    def fails():
        raise RuntimeError("not about an index")

    with pytest.raises(RuntimeError, match="not about an index"):
        _validate.explained(fails, lambda: None)
    with pytest.raises(IndexError, match="ours") as ours:
        _validate.explained(fails, lambda: IndexError("ours"))
    assert ours.value.__suppress_context__
    assert torch.equal(_validate.explained(lambda: torch.ones(2), lambda: None), torch.ones(2))


@pytest.mark.parametrize("padding_idx", [0, -1])
def test_embedding_padding_row_gets_no_gradient_in_every_backward_mode(padding_idx):
    # The padding row is zeroed in the summed table (in place only in a plain backward): plain,
    # double backward, batched gradients and vmap over the backward all equal torch's exactly.
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(6, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    ids = torch.tensor([[0, 5, 2], [5, 5, 0]])
    pad_row = padding_idx % weight.shape[0]
    up = torch.randn(2, 3, 3, dtype=torch.float64, generator=gen)
    up[0, 0 if pad_row == 0 else 1] = float("nan")  # at a padding position: must not reach the table
    for create_graph in (False, True):
        v = up.clone().requires_grad_(create_graph)
        ours = torch.autograd.grad(F.embedding(ids, weight, padding_idx), weight, v, create_graph=create_graph)[0]
        ref = torch.autograd.grad(TF.embedding(ids, weight, padding_idx), weight, v, create_graph=create_graph)[0]
        assert torch.equal(ours, ref) and not ours[pad_row].any()
        if create_graph:  # double backward: d(sum of the table's gradient)/d(upstream), 0 at padding positions
            second = torch.autograd.grad(ours.sum(), v)[0]
            assert torch.equal(second, torch.autograd.grad(ref.sum(), v)[0]) and not second[ids == pad_row].any()
    batch = torch.randn(4, 2, 3, 3, dtype=torch.float64, generator=gen)
    ours_b = torch.autograd.grad(F.embedding(ids, weight, padding_idx), weight, batch, is_grads_batched=True)[0]
    ref_b = torch.autograd.grad(TF.embedding(ids, weight, padding_idx), weight, batch, is_grads_batched=True)[0]
    assert torch.equal(ours_b, ref_b) and not ours_b[:, pad_row].any()
    jac = torch.func.jacrev(lambda w: F.embedding(ids, w, padding_idx))(weight.detach())
    ref_jac = torch.func.jacrev(lambda w: TF.embedding(ids, w, padding_idx))(weight.detach())
    assert torch.equal(jac, ref_jac) and not jac[..., pad_row, :].any()
