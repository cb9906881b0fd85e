"""Max-margin, multi-class max-margin and softmax cross-entropy against torch's losses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd import gradcheck, gradgradcheck

import cs224n_nn.autograd as A
import cs224n_nn.functional as F
import cs224n_nn.nn as nn

TOL = {
    torch.float64: dict(rtol=1e-10, atol=1e-12),
    torch.float32: dict(rtol=1e-5, atol=1e-6),
    torch.float16: dict(rtol=1e-2, atol=2e-3),
    torch.bfloat16: dict(rtol=5e-2, atol=2e-2),
}
REDUCTIONS = ["mean", "sum", "none"]
# Every matrix test also runs on CUDA where a GPU is present (not generated, so not skipped, elsewhere).
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def value_and_grads(f, *inputs):
    """f(*inputs) and the gradient of <f, upstream> w.r.t. every input that requires grad."""
    out = f(*inputs)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(out)
    wrt = [t for t in inputs if t.requires_grad]
    return out.detach(), torch.autograd.grad(out, wrt, upstream)


def leaf(t):
    return t.detach().clone().requires_grad_(True)


def margin_ranking(s, s_c, margin=1.0, reduction="mean"):
    """torch's twin of the notes' objective: max(0, -y (s - s_c) + margin) with y = 1."""
    return TF.margin_ranking_loss(s, s_c, torch.ones_like(s), margin=margin, reduction=reduction)


# ---------------------------------------------------------------- max-margin


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", list(TOL), ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(), (0,), (7,), (2, 3, 4)], ids=str)
def test_max_margin_matches_margin_ranking_loss(shape, reduction, dtype, device):
    s, s_c = (torch.randn(shape, dtype=torch.float64).to(dtype).to(device) for _ in range(2))
    ours = value_and_grads(lambda a, b: F.max_margin_loss(a, b, 0.5, reduction), leaf(s), leaf(s_c))
    ref = value_and_grads(lambda a, b: margin_ranking(a, b, 0.5, reduction), leaf(s), leaf(s_c))
    torch.testing.assert_close(ours, ref, equal_nan=True, **TOL[dtype])


def test_max_margin_is_the_notes_objective_and_its_kink():
    s = torch.tensor([3.0, 1.0, 0.0, 2.0], requires_grad=True)
    s_c = torch.tensor([0.0, 1.0, 2.0, 1.0], requires_grad=True)
    losses = F.max_margin_loss(s, s_c, reduction="none")
    assert losses.tolist() == [0.0, 1.0, 3.0, 0.0]  # max(0, 1 + s_c - s); the last sits on the kink
    ds, dsc = torch.autograd.grad(losses.sum(), (s, s_c))
    assert dsc.tolist() == [0.0, 1.0, 1.0, 0.0] and ds.tolist() == [-0.0, -1.0, -1.0, -0.0]


def test_max_margin_broadcasts_and_handles_non_contiguous_and_nan():
    s = leaf(torch.randn(5, 1))
    s_c = leaf(torch.randn(3, 5).t())  # (5, 3) corrupt windows per true one, non-contiguous
    torch.testing.assert_close(value_and_grads(F.max_margin_loss, s, s_c),
                               value_and_grads(lambda a, b: margin_ranking(a.expand_as(b), b), s, s_c))
    s = leaf(torch.tensor([float("nan"), 1.0, float("inf")]))
    s_c = leaf(torch.tensor([0.0, float("nan"), 0.0]))
    for reduction in REDUCTIONS:
        torch.testing.assert_close(value_and_grads(lambda a, b: F.max_margin_loss(a, b, 1.0, reduction), s, s_c),
                                   value_and_grads(lambda a, b: margin_ranking(a, b, 1.0, reduction), s, s_c),
                                   equal_nan=True)


def test_an_infinite_upstream_gradient_gives_what_torch_gives():
    # max_margin like margin_ranking_loss (a composite of clamp: 0 at an inactive term, not 0 * inf);
    # the multi-margin loss like torch's kernel, which scales a unit gradient: NaN there (0 * inf).
    inf = float("inf")
    s, s_c = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 0.0])  # an inactive term, an active one
    for reduction, upstream in (("sum", torch.tensor(inf)), ("none", torch.full((2,), inf))):
        a, b, a2, b2 = leaf(s), leaf(s_c), leaf(s), leaf(s_c)
        ours = torch.autograd.grad(F.max_margin_loss(a, b, 1.0, reduction), (a, b), upstream)
        theirs = torch.autograd.grad(margin_ranking(a2, b2, 1.0, reduction), (a2, b2), upstream)
        torch.testing.assert_close(ours, theirs, equal_nan=True)
        assert ours[1][0] == 0 and ours[1][1] == inf
    x, t = torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.2, 0.1]]), torch.tensor([0, 1])
    for p in (1, 2):
        a, b = leaf(x), leaf(x)
        ours = torch.autograd.grad(F.multiclass_max_margin_loss(a, t, reduction="sum", p=p), a, torch.tensor(inf))
        theirs = torch.autograd.grad(TF.multi_margin_loss(b, t, p=p, reduction="sum"), b, torch.tensor(inf))
        torch.testing.assert_close(ours, theirs, equal_nan=True)
        assert ours[0][0].isnan().all() and ours[0][1].isinf().all()
    # cross-entropy without label smoothing: (p - onehot) * inf, NaN only at the target (0 * inf is not formed)
    for weight in (None, torch.tensor([1.0, 2.0, 0.5])):
        a, b = leaf(x), leaf(x)
        ours = torch.autograd.grad(F.softmax_cross_entropy(a, t, weight, reduction="sum"), a, torch.tensor(inf))
        theirs = torch.autograd.grad(TF.cross_entropy(b, t, weight, reduction="sum"), b, torch.tensor(inf))
        torch.testing.assert_close(ours, theirs, equal_nan=True)
        assert ours[0].isnan().sum() == 2 and ours[0].isinf().sum() == 4


def test_max_margin_gradcheck():
    s = leaf(torch.randn(6, dtype=torch.float64))
    s_c = leaf(s.detach() + torch.tensor([-3, -2, -0.5, 0.5, 2, 3], dtype=torch.float64))
    for reduction in REDUCTIONS:
        assert gradcheck(lambda a, b: F.max_margin_loss(a, b, 1.0, reduction), (s, s_c))
        assert gradgradcheck(lambda a, b: F.max_margin_loss(a, b, 1.0, reduction), (s, s_c))


# ---------------------------------------------------------------- multi-class max-margin


def _scores_and_target(n, classes, dtype=torch.float64, device="cpu"):
    scores = torch.randn(n, classes, dtype=torch.float64).to(dtype).to(device)
    return scores, torch.randint(0, classes, (n,), device=device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", list(TOL), ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n", [0, 1, 6])
def test_multiclass_matches_multi_margin_loss(n, weighted, reduction, dtype, device):
    scores, target = _scores_and_target(n, 5, dtype, device)
    weight = torch.rand(5, dtype=torch.float64).to(dtype).to(device) if weighted else None
    ours = value_and_grads(lambda x: F.multiclass_max_margin_loss(x, target, 0.7, weight, reduction), leaf(scores))
    if dtype in (torch.float16, torch.bfloat16) and device == "cpu":
        # torch has no half-precision multi_margin_loss on CPU: compare with it in float32
        # on the same (already rounded) inputs.
        scores, weight = scores.float(), None if weight is None else weight.float()
        ours = ours[0].float(), tuple(t.float() for t in ours[1])
    ref = value_and_grads(lambda x: TF.multi_margin_loss(x, target, 1, 0.7, weight, reduction=reduction), leaf(scores))
    if n == 0 and reduction != "none":
        # torch reduces no losses to uninitialised memory here; we give sum 0 and mean NaN,
        # as torch's other losses (and tensor.sum() / tensor.mean()) do.
        assert ours[0].item() == 0 if reduction == "sum" else torch.isnan(ours[0])
        ours, ref = ours[1], ref[1]
    torch.testing.assert_close(ours, ref, equal_nan=True, **TOL[dtype])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_multiclass_one_example_non_contiguous_and_nan(reduction):
    x = leaf(torch.randn(4))
    target = torch.tensor(2)
    torch.testing.assert_close(value_and_grads(lambda v: F.multiclass_max_margin_loss(v, target, reduction=reduction), x),
                               value_and_grads(lambda v: TF.multi_margin_loss(v, target, reduction=reduction), x))
    x = leaf(torch.randn(5, 6).t())
    target = torch.randint(0, 5, (6,))
    x.data[0, 1], x.data[2, 3] = float("nan"), float("inf")
    torch.testing.assert_close(value_and_grads(lambda v: F.multiclass_max_margin_loss(v, target, reduction=reduction), x),
                               value_and_grads(lambda v: TF.multi_margin_loss(v, target, reduction=reduction), x),
                               equal_nan=True)


def test_multiclass_gradcheck():
    scores = leaf(torch.randn(5, 4, dtype=torch.float64) * 3)
    target = torch.randint(0, 4, (5,))
    weight = torch.rand(4, dtype=torch.float64)
    for reduction in REDUCTIONS:
        f = lambda x: F.multiclass_max_margin_loss(x, target, 1.0, weight, reduction)  # noqa: E731
        assert gradcheck(f, (scores,))
        assert gradgradcheck(f, (scores,))


# ---------------------------------------------------------------- softmax cross-entropy


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", list(TOL), ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.15])
@pytest.mark.parametrize("n", [0, 1, 6])
def test_cross_entropy_matches_torch(n, label_smoothing, weighted, reduction, dtype, device):
    scores, target = _scores_and_target(n, 5, dtype, device)
    if n > 2:
        target[1] = -100  # ignored
    weight = torch.rand(5, dtype=torch.float64).add(0.5).to(dtype).to(device) if weighted else None
    kwargs = dict(weight=weight, reduction=reduction, label_smoothing=label_smoothing)
    ours = value_and_grads(lambda x: F.softmax_cross_entropy(x, target, **kwargs), leaf(scores))
    ref = value_and_grads(lambda x: TF.cross_entropy(x, target, **kwargs), leaf(scores))
    torch.testing.assert_close(ours, ref, equal_nan=True, **TOL[dtype])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_one_example_custom_ignore_index_and_non_contiguous(reduction):
    x = leaf(torch.randn(4))
    for target in (torch.tensor(1), torch.tensor(3)):
        torch.testing.assert_close(
            value_and_grads(lambda v: F.softmax_cross_entropy(v, target, ignore_index=3, reduction=reduction), x),
            value_and_grads(lambda v: TF.cross_entropy(v, target, ignore_index=3, reduction=reduction), x),
            equal_nan=True)
    x = leaf(torch.randn(5, 6).t())
    target = torch.randint(0, 5, (6,))
    torch.testing.assert_close(value_and_grads(lambda v: F.softmax_cross_entropy(v, target, reduction=reduction), x),
                               value_and_grads(lambda v: TF.cross_entropy(v, target, reduction=reduction), x))


def test_cross_entropy_is_stable_for_huge_scores_and_matches_torch_on_inf_nan():
    x = leaf(torch.tensor([[1e4, -1e4, 0.0], [3e38, 3e38, -3e38]]))
    target = torch.tensor([1, 0])
    out, (g,) = value_and_grads(lambda v: F.softmax_cross_entropy(v, target, reduction="none"), x)
    assert torch.isfinite(out).all() and torch.isfinite(g).all()
    torch.testing.assert_close((out, (g,)), value_and_grads(lambda v: TF.cross_entropy(v, target, reduction="none"), x))
    x = leaf(torch.tensor([[float("inf"), 0.0, 1.0], [float("nan"), 0.0, 1.0], [-float("inf"), 0.0, 1.0]]))
    target = torch.tensor([1, 1, 2])
    torch.testing.assert_close(value_and_grads(lambda v: F.softmax_cross_entropy(v, target, reduction="none"), x),
                               value_and_grads(lambda v: TF.cross_entropy(v, target, reduction="none"), x),
                               equal_nan=True)


def test_cross_entropy_plain_gradient_is_softmax_minus_onehot():
    x = leaf(torch.randn(3, 4, dtype=torch.float64))
    target = torch.tensor([0, 3, 1])
    (g,) = torch.autograd.grad(F.softmax_cross_entropy(x, target, reduction="sum"), x)
    torch.testing.assert_close(g, torch.softmax(x.detach(), 1) - TF.one_hot(target, 4).double())


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
def test_cross_entropy_gradcheck_and_double_backward(reduction, label_smoothing):
    x = leaf(torch.randn(5, 4, dtype=torch.float64))
    target = torch.tensor([0, 3, -100, 1, 3])
    weight = torch.rand(4, dtype=torch.float64) + 0.5
    f = lambda v: F.softmax_cross_entropy(v, target, weight, reduction=reduction, label_smoothing=label_smoothing)  # noqa: E731
    assert gradcheck(f, (x,))
    assert gradgradcheck(f, (x,))
    # the Hessian itself agrees with torch's
    t = lambda v: TF.cross_entropy(v, target, weight, reduction=reduction, label_smoothing=label_smoothing)  # noqa: E731
    h1 = torch.autograd.functional.hessian(lambda v: f(v).sum(), x.detach())
    h2 = torch.autograd.functional.hessian(lambda v: t(v).sum(), x.detach())
    torch.testing.assert_close(h1, h2)


def test_cross_entropy_log_probs_output_has_a_gradient_too():
    x = leaf(torch.randn(3, 4, dtype=torch.float64))
    target = torch.tensor([1, 2, 0])
    assert gradcheck(lambda v: A.SoftmaxCrossEntropy.apply(v, target, None, -100, "mean", 0.0), (x,))
    _, logp = A.SoftmaxCrossEntropy.apply(x, target, None, -100, "mean", 0.0)
    torch.testing.assert_close(logp, torch.log_softmax(x, 1))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 5), classes=st.integers(1, 5), scale=st.floats(0.01, 100.0), seed=st.integers(0, 2**16),
       reduction=st.sampled_from(REDUCTIONS), smoothing=st.sampled_from([0.0, 0.1]))
def test_losses_property_random_shapes(n, classes, scale, seed, reduction, smoothing):
    gen = torch.Generator().manual_seed(seed)
    x = scale * torch.randn(n, classes, generator=gen, dtype=torch.float64)
    target = torch.randint(0, classes, (n,), generator=gen)
    torch.testing.assert_close(
        value_and_grads(lambda v: F.softmax_cross_entropy(v, target, reduction=reduction, label_smoothing=smoothing), leaf(x)),
        value_and_grads(lambda v: TF.cross_entropy(v, target, reduction=reduction, label_smoothing=smoothing), leaf(x)),
        equal_nan=True)
    torch.testing.assert_close(
        value_and_grads(lambda v: F.multiclass_max_margin_loss(v, target, reduction=reduction), leaf(x)),
        value_and_grads(lambda v: TF.multi_margin_loss(v, target, reduction=reduction), leaf(x)),
        equal_nan=True)
    s, s_c = leaf(x[:, 0]), leaf(x.sum(1))
    torch.testing.assert_close(value_and_grads(lambda a, b: F.max_margin_loss(a, b, 1.0, reduction), s, s_c),
                               value_and_grads(lambda a, b: margin_ranking(a, b, 1.0, reduction), s, s_c),
                               equal_nan=True)


# ---------------------------------------------------------------- bad input

LOSSES = {
    "multiclass": lambda x, t, **kw: F.multiclass_max_margin_loss(x, t, **kw),
    "cross_entropy": lambda x, t, **kw: F.softmax_cross_entropy(x, t, **kw),
}


@pytest.mark.parametrize("name", LOSSES)
def test_targets_out_of_range_or_wrong_dtype_or_shape_are_refused(name):
    loss = LOSSES[name]
    x = torch.randn(3, 4)
    with pytest.raises(IndexError, match=r"target must lie in \[0, 4\).*found 4"):
        loss(x, torch.tensor([0, 4, 1]))
    with pytest.raises(IndexError, match=r"target must lie in \[0, 4\).*found -2"):
        loss(x, torch.tensor([0, -2, 1]))
    # cross-entropy also takes class probabilities (a floating target shaped like the scores)
    for dtype in (torch.int32, torch.bool) if name == "cross_entropy" else (torch.int32, torch.float32, torch.bool):
        with pytest.raises(TypeError, match=rf"target must be an int64 .*got {dtype}"):
            loss(x, torch.tensor([0, 1, 1]).to(dtype))
    with pytest.raises(ValueError, match=r"target must have shape \(3,\) for input of shape \(3, 4\), got \(2,\)"):
        loss(x, torch.tensor([0, 1]))
    if name == "cross_entropy":
        with pytest.raises(ValueError, match=r"target of class probabilities must have the shape of input \(3, 4\)"):
            loss(x, torch.tensor([0, 1, 1]).float())
        with pytest.raises(ValueError, match=r"target must have shape \(2, 4\) for input of shape \(2, 3, 4\)"):
            loss(torch.randn(2, 3, 4), torch.tensor([0, 1]))
        with pytest.raises(ValueError, match="ignore_index is not supported with class-probability targets"):
            loss(x, torch.rand(3, 4), ignore_index=1)
    else:
        with pytest.raises(ValueError, match=r"input must be 1-D \(C,\) or 2-D \(N, C\)"):
            loss(torch.randn(2, 3, 4), torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="input must be a floating-point tensor"):
        loss(torch.ones(3, 4, dtype=torch.int64), torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match=r"weight must have shape \(C,\) = \(4,\), got \(3,\)"):
        loss(x, torch.tensor([0, 1, 1]), weight=torch.ones(3))


def test_ignore_index_is_the_only_extra_target_allowed():
    x = torch.randn(3, 4)
    F.softmax_cross_entropy(x, torch.tensor([0, -100, 1]))
    with pytest.raises(IndexError, match=r"or ignore_index=-100; found -1"):
        F.softmax_cross_entropy(x, torch.tensor([0, -1, 1]))
    with pytest.raises(IndexError, match=r"found -100"):
        F.multiclass_max_margin_loss(x, torch.tensor([0, -100, 1]))
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\]"):
        F.softmax_cross_entropy(x, torch.tensor([0, 1, 1]), label_smoothing=1.5)


@pytest.mark.parametrize("call", [
    lambda r: F.max_margin_loss(torch.randn(3), torch.randn(3), reduction=r),
    lambda r: F.multiclass_max_margin_loss(torch.randn(3, 4), torch.tensor([0, 1, 2]), reduction=r),
    lambda r: F.softmax_cross_entropy(torch.randn(3, 4), torch.tensor([0, 1, 2]), reduction=r),
], ids=["max_margin", "multiclass", "cross_entropy"])
def test_unknown_reduction_is_refused(call):
    with pytest.raises(ValueError, match=r"reduction must be one of 'none', 'mean', 'sum'; got 'avg'"):
        call("avg")


def test_max_margin_bad_input():
    with pytest.raises(ValueError, match=r"s and s_c must broadcast together, got shapes \(3,\) and \(4,\)"):
        F.max_margin_loss(torch.randn(3), torch.randn(4))
    with pytest.raises(TypeError, match="s_c must be a floating-point tensor"):
        F.max_margin_loss(torch.randn(3), torch.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match="s and s_c must have the same dtype"):
        F.max_margin_loss(torch.randn(3), torch.randn(3, dtype=torch.float64))
    with pytest.raises(TypeError, match="margin must be a real number"):
        F.max_margin_loss(torch.randn(3), torch.randn(3), margin=None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_losses_keep_the_device():
    scores = torch.randn(6, 4, device="cuda", requires_grad=True)
    target = torch.tensor([0, 3, 1, -100, 2, 2], device="cuda")
    loss = F.softmax_cross_entropy(scores, target) + F.multiclass_max_margin_loss(scores, target.clamp_min(0))
    loss = loss + F.max_margin_loss(scores[:, 0], scores[:, 1])
    (g,) = torch.autograd.grad(loss, scores)
    assert loss.device == scores.device and g.device == scores.device
    with pytest.raises(IndexError, match="target must lie in"):
        F.softmax_cross_entropy(scores, torch.tensor([0, 9, 1, 1, 2, 2], device="cuda"))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_plain_path_equals_general_path(reduction):
    # Every target a class, no weights, no smoothing: the short path. Unit
    # class weights give the same mathematics through the general path.
    torch.manual_seed(3)
    x = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 5, (7,))
    upstream = torch.randn(7, dtype=torch.float64) if reduction == "none" else torch.tensor(1.7, dtype=torch.float64)
    plain = F.softmax_cross_entropy(x, t, reduction=reduction)
    general = F.softmax_cross_entropy(x, t, weight=torch.ones(5, dtype=torch.float64), reduction=reduction)
    (g_plain,) = torch.autograd.grad(plain, x, upstream)
    (g_general,) = torch.autograd.grad(general, x, upstream)
    torch.testing.assert_close(plain, general, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(g_plain, g_general, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(g_plain, torch.autograd.grad(
        TF.cross_entropy(x, t, reduction=reduction), x, upstream)[0], rtol=1e-12, atol=1e-14)


def test_cross_entropy_ignore_index_inside_the_class_range_is_not_plain():
    # ignore_index = 0 is a valid class number: targets equal to it must be ignored, not scored.
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 1, 2, 0])
    ours = F.softmax_cross_entropy(x, t, ignore_index=0)
    ref = TF.cross_entropy(x, t, ignore_index=0)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(torch.autograd.grad(ours, x)[0], torch.autograd.grad(ref, x)[0])



@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_multi_margin_p2_matches_torch(reduction, weighted):
    x = torch.randn(6, 4, dtype=torch.float64)
    t = torch.tensor([0, 3, 1, 2, 2, 1])
    w = torch.rand(4, dtype=torch.float64) + 0.5 if weighted else None
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours = F.multiclass_max_margin_loss(a, t, 0.7, w, reduction, p=2)
    twin = torch.nn.functional.multi_margin_loss(b, t, p=2, margin=0.7, weight=w, reduction=reduction)
    torch.testing.assert_close(ours, twin)
    upstream = torch.randn(ours.shape, dtype=torch.float64)
    torch.testing.assert_close(torch.autograd.grad(ours, a, upstream)[0], torch.autograd.grad(twin, b, upstream)[0])
    module = nn.MultiClassMaxMarginLoss(p=2, margin=0.7, weight=w, reduction=reduction)
    torch.testing.assert_close(module(x, t), twin.detach())
    assert torch.autograd.gradcheck(lambda v: F.multiclass_max_margin_loss(v, t, 0.7, w, reduction, p=2), (a,))


@pytest.mark.parametrize("target", [torch.tensor(0), torch.tensor([0])])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_multi_margin_takes_0d_scores_like_torch(target, reduction):
    x = torch.tensor(0.3, requires_grad=True)
    ours = F.multiclass_max_margin_loss(x, target, reduction=reduction)
    twin = torch.nn.functional.multi_margin_loss(x, target, reduction=reduction)
    assert ours.shape == twin.shape
    torch.testing.assert_close(ours, twin)
    torch.testing.assert_close(torch.autograd.grad(ours.sum(), x)[0], torch.autograd.grad(twin.sum(), x)[0])
    with pytest.raises(IndexError, match=r"target must lie in \[0, 1\)"):
        F.multiclass_max_margin_loss(x, torch.tensor(1))


def test_multiclass_cpu_reads_the_targets_only_after_gather_refused_one(monkeypatch):
    x = torch.randn(3, 4, requires_grad=True)
    target = torch.tensor([0, 3, 1])
    expected = TF.multi_margin_loss(x.detach(), target)

    def no_host_read(*args, **kwargs):
        raise AssertionError("aminmax ran on a good call")

    with monkeypatch.context() as m:
        m.setattr(torch, "aminmax", no_host_read)
        assert torch.equal(F.multiclass_max_margin_loss(x, target), expected)
    for bad, found in (([0, 4, 1], 4), ([0, -2, 1], -2)):
        with pytest.raises(IndexError) as error:
            F.multiclass_max_margin_loss(x, torch.tensor(bad))
        assert str(error.value) == f"target must lie in [0, 4); found {found}"
        assert error.value.__suppress_context__


def test_multiclass_hinge_drops_nan_exactly_as_fmax():
    # clamp_min + nan_to_num stands for fmax(z, 0): the same value and sign at NaN, +-inf, +-0.
    x = torch.tensor([[float("nan"), 0.0, -1.0, 2.0], [float("inf"), -float("inf"), -0.0, 1.0],
                      [-1.0, -2.0, 5.0, 0.0]], dtype=torch.float64)
    target = torch.tensor([1, 3, 2])
    for margin in (1.0, 0.0, -0.0):
        ours = F.multiclass_max_margin_loss(x, target, margin=margin, reduction="none")
        ref = TF.multi_margin_loss(x, target, margin=margin, reduction="none")
        torch.testing.assert_close(ours, ref, equal_nan=True, rtol=0, atol=0)
        assert torch.equal(torch.signbit(ours), torch.signbit(ref))


def test_max_margin_equal_shapes_skip_the_broadcast_check_but_others_keep_it(monkeypatch):
    s, s_c = torch.randn(4), torch.randn(4)
    with monkeypatch.context() as m:
        m.setattr(torch, "broadcast_shapes", lambda *a: (_ for _ in ()).throw(AssertionError("called")))
        torch.testing.assert_close(F.max_margin_loss(s, s_c), torch.clamp(1 + s_c - s, min=0).mean())
    torch.testing.assert_close(F.max_margin_loss(s, s_c[:1]), torch.clamp(1 + s_c[:1] - s, min=0).mean())
    with pytest.raises(ValueError, match="must broadcast together"):
        F.max_margin_loss(s, torch.randn(3))
