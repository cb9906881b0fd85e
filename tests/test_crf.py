"""The hand-written linear-chain CRF: values, gradients, transforms, errors and decoding.

References: brute-force enumeration of every tag path (small K, T) and
pytorch-crf 0.7.2 (a dev dependency, used as the reference only).
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torchcrf
from torch.autograd import gradcheck, gradgradcheck
from torch.func import grad, jacfwd, jacrev, vmap

import cs224n_nn.autograd as A
import cs224n_nn.functional as F
import cs224n_nn.nn as cnn

MASKS = {
    "full": None,
    "ragged": [[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]],
}


def problem(b=3, t=4, k=3, seed=0, dtype=torch.float64, mask="ragged", scale=1.0):
    g = torch.Generator().manual_seed(seed)
    emissions = (torch.randn(b, t, k, generator=g, dtype=dtype) * scale).requires_grad_()
    tags = torch.randint(0, k, (b, t), generator=g)
    trans = (torch.randn(k, k, generator=g, dtype=dtype) * scale).requires_grad_()
    start = torch.randn(k, generator=g, dtype=dtype).requires_grad_()
    end = torch.randn(k, generator=g, dtype=dtype).requires_grad_()
    m = MASKS[mask]
    m = None if m is None else torch.tensor(m, dtype=torch.bool)[:b, :t]
    return emissions, tags, trans, start, end, m


def brute_force_nll(emissions, tags, trans, start, end, mask):
    """-log P(gold) by enumerating all K^L paths of every sentence (autograd gives its gradient)."""
    b, t, k = emissions.shape
    out = []
    for i in range(b):
        n = t if mask is None else int(mask[i].sum())
        e = emissions[i, :n]

        def score(path):
            s = start[path[0]] + end[path[-1]] + sum(e[j, path[j]] for j in range(n))
            return s + sum(trans[path[j - 1], path[j]] for j in range(1, n))

        all_scores = torch.stack([score(p) for p in itertools.product(range(k), repeat=n)])
        out.append(torch.logsumexp(all_scores, 0) - score(tags[i, :n].tolist()))
    return torch.stack(out)


def brute_force_best(emissions, trans, start, end, mask):
    b, t, k = emissions.shape
    best = []
    for i in range(b):
        n = t if mask is None else int(mask[i].sum())
        e = emissions[i, :n]

        def score(path):
            return float(start[path[0]] + end[path[-1]] + sum(e[j, path[j]] for j in range(n))
                         + sum(trans[path[j - 1], path[j]] for j in range(1, n)))

        best.append(list(max(itertools.product(range(k), repeat=n), key=score)))
    return best


def params(inputs):
    emissions, _, trans, start, end, _ = inputs
    return [emissions, trans, start, end]


@pytest.mark.parametrize("mask", list(MASKS))
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_value_and_gradients_equal_brute_force(mask, reduction):
    inputs = problem(mask=mask)
    ours = F.crf_nll(*inputs, reduction=reduction)
    brute = brute_force_nll(*inputs)
    brute = {"none": brute, "sum": brute.sum(), "mean": brute.mean()}[reduction]
    torch.testing.assert_close(ours, brute)
    up = torch.randn(ours.shape, dtype=torch.float64)
    torch.testing.assert_close(torch.autograd.grad(ours, params(inputs), up),
                               torch.autograd.grad(brute, params(inputs), up))


@pytest.mark.parametrize("mask", list(MASKS))
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_equals_minus_pytorch_crf(mask, reduction):
    emissions, tags, _, _, _, m = problem(b=3, t=4, k=5, seed=3, mask=mask)
    ref = torchcrf.CRF(5, batch_first=True).double()
    ps = [emissions, ref.transitions, ref.start_transitions, ref.end_transitions]
    theirs = -ref(emissions, tags, m, reduction=reduction)
    ours = F.crf_nll(emissions, tags, ref.transitions, ref.start_transitions, ref.end_transitions, m, reduction)
    torch.testing.assert_close(ours, theirs)
    up = torch.rand(ours.shape, dtype=torch.float64)
    torch.testing.assert_close(torch.autograd.grad(ours, ps, up), torch.autograd.grad(theirs, ps, up))


def test_module_equals_pytorch_crf_and_its_decode():
    torch.manual_seed(0)
    ref = torchcrf.CRF(6, batch_first=True)
    ours = cnn.CRF(6)
    assert {n for n, _ in ours.named_parameters()} == {"transitions", "start_transitions", "end_transitions"}
    for p in ours.parameters():  # pytorch-crf's initialisation
        assert p.abs().max() <= 0.1 and p.std() > 0.01
    ours.load_state_dict(ref.state_dict())
    emissions = torch.randn(4, 9, 6) * 3
    tags = torch.randint(0, 6, (4, 9))
    mask = torch.arange(9).unsqueeze(0) < torch.tensor([9, 5, 1, 7]).unsqueeze(1)
    torch.testing.assert_close(ours(emissions, tags, mask), -ref(emissions, tags, mask, reduction="mean"))
    assert ours.decode(emissions, mask) == ref.decode(emissions, mask)
    assert ours.decode(emissions) == ref.decode(emissions)


@pytest.mark.parametrize("mask", list(MASKS))
def test_decode_equals_brute_force(mask):
    emissions, _, trans, start, end, m = problem(b=3, t=4, k=3, seed=7, mask=mask, scale=2.0)
    crf = cnn.CRF(3).double()
    with torch.no_grad():
        crf.transitions.copy_(trans)
        crf.start_transitions.copy_(start)
        crf.end_transitions.copy_(end)
    assert crf.decode(emissions.detach(), m) == brute_force_best(emissions, trans, start, end, m)


# Two cases (each runs ~10 numerical Jacobians): the ragged mask with per-sentence
# losses, and the full mask with the batch mean.
@pytest.mark.parametrize("mask, reduction", [("ragged", "none"), ("full", "mean")])
def test_gradcheck_gradgradcheck_forward_ad_batched(mask, reduction):
    emissions, tags, trans, start, end, m = problem(b=2, t=3, k=3, mask=mask)
    f = lambda e, a, s, z: F.crf_nll(e, tags, a, s, z, m, reduction)  # noqa: E731
    inputs = (emissions, trans, start, end)
    assert gradcheck(f, inputs, check_forward_ad=True, check_batched_grad=True, check_backward_ad=True)
    assert gradgradcheck(f, inputs, check_fwd_over_rev=True, check_batched_grad=True)


def test_jvp_is_the_gradient_dotted_with_the_tangents():
    emissions, tags, trans, start, end, m = problem()
    f = lambda e, a, s, z: F.crf_nll(e, tags, a, s, z, m, "sum")  # noqa: E731
    primals = (emissions.detach(), trans.detach(), start.detach(), end.detach())
    tangents = tuple(torch.randn_like(p) for p in primals)
    _, jvp_out = torch.func.jvp(f, primals, tangents)
    grads = torch.autograd.grad(f(emissions, trans, start, end), (emissions, trans, start, end))
    torch.testing.assert_close(jvp_out, sum((g * t).sum() for g, t in zip(grads, tangents)))


def test_backward_is_hand_written():
    inputs = problem()
    loss = F.crf_nll(*inputs)
    assert type(loss.grad_fn).__name__ == "CRFNegLogLikelihoodBackward"
    assert issubclass(A.CRFNegLogLikelihood, torch.autograd.Function)


def test_torch_func_transforms():
    emissions, tags, trans, start, end, m = problem(b=4, t=4, k=3, mask="full")
    per_sentence = vmap(lambda e, y: F.crf_nll(e.unsqueeze(0), y.unsqueeze(0), trans, start, end, None, "sum"))
    torch.testing.assert_close(per_sentence(emissions, tags), F.crf_nll(emissions, tags, trans, start, end, None, "none"))
    f = lambda a: F.crf_nll(emissions.detach(), tags, a, start.detach(), end.detach())  # noqa: E731
    torch.testing.assert_close(jacrev(f)(trans.detach()), jacfwd(f)(trans.detach()))
    torch.testing.assert_close(grad(f)(trans.detach()), torch.autograd.grad(f(trans), trans)[0])
    # second derivative through the hand-written backward, against brute force
    h = lambda a: brute_force_nll(emissions.detach(), tags, a, start.detach(), end.detach(), None).sum()  # noqa: E731
    torch.testing.assert_close(jacrev(grad(lambda a: f(a) * 4))(trans.detach()), jacrev(grad(h))(trans.detach()))


def test_large_scores_over_400_tokens_stay_finite():
    g = torch.Generator().manual_seed(0)
    emissions = (torch.randn(2, 400, 9, generator=g) * 30 + 30).requires_grad_()
    tags = torch.randint(0, 9, (2, 400), generator=g)
    crf = cnn.CRF(9)
    with torch.no_grad():
        crf.transitions.mul_(300)  # scores of +-30
    mask = torch.ones(2, 400, dtype=torch.bool)
    mask[1, 250:] = False
    loss = crf(emissions, tags, mask, reduction="none")
    assert torch.isfinite(loss).all() and (loss > 0).all()
    loss.sum().backward()
    for p in (emissions, *crf.parameters()):
        assert torch.isfinite(p.grad).all()
    # marginals sum to one per token: the emission gradient sums to 0 over tags
    torch.testing.assert_close(emissions.grad.sum(2), torch.zeros(2, 400), atol=1e-4, rtol=0)
    ref = torchcrf.CRF(9, batch_first=True)
    ref.load_state_dict(crf.state_dict())
    torch.testing.assert_close(loss, -ref(emissions, tags, mask, reduction="none"), rtol=1e-5, atol=1e-2)


def test_float32_and_float64_agree():
    inputs64 = problem(b=4, t=6, k=5, mask="full")
    inputs32 = tuple(x.detach().float().requires_grad_() if isinstance(x, torch.Tensor) and x.is_floating_point()
                     else x for x in inputs64)
    torch.testing.assert_close(F.crf_nll(*inputs32).double(), F.crf_nll(*inputs64), rtol=1e-5, atol=1e-5)


def test_tags_under_a_false_mask_are_ignored():
    emissions, tags, trans, start, end, m = problem()
    padded = tags.masked_fill(~m, -100)
    torch.testing.assert_close(F.crf_nll(emissions, padded, trans, start, end, m, "none"),
                               F.crf_nll(emissions, tags, trans, start, end, m, "none"))


@pytest.mark.parametrize(
    "change, error, names",
    [
        (lambda p: {**p, "emissions": p["emissions"][0]}, ValueError, "emissions"),
        (lambda p: {**p, "emissions": p["emissions"][:, :0]}, ValueError, "emissions"),
        (lambda p: {**p, "tags": p["tags"][:, :2]}, ValueError, "tags"),
        (lambda p: {**p, "tags": p["tags"].int()}, TypeError, "tags"),
        (lambda p: {**p, "tags": p["tags"] + 3}, IndexError, "tags"),
        (lambda p: {**p, "tags": p["tags"] - 5}, IndexError, "tags"),
        (lambda p: {**p, "transitions": p["transitions"][:2]}, ValueError, "transitions"),
        (lambda p: {**p, "transitions": p["transitions"].float()}, TypeError, "transitions"),
        (lambda p: {**p, "start_transitions": p["start_transitions"][:2]}, ValueError, "start_transitions"),
        (lambda p: {**p, "end_transitions": p["end_transitions"][None]}, ValueError, "end_transitions"),
        (lambda p: {**p, "mask": p["mask"][:, :2]}, ValueError, "mask"),
        (lambda p: {**p, "mask": p["mask"].long()}, TypeError, "mask"),
        (lambda p: {**p, "mask": torch.cat([p["mask"][:, 1:], p["mask"][:, :1]], 1)}, ValueError, "first column"),
        (lambda p: {**p, "mask": torch.tensor([[1, 1, 1, 1], [1, 0, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)},
         ValueError, "left-aligned"),
        (lambda p: {**p, "reduction": "token_mean"}, ValueError, "reduction"),
    ],
)
def test_bad_input_names_the_argument(change, error, names):
    keys = ["emissions", "tags", "transitions", "start_transitions", "end_transitions", "mask"]
    given = change(dict(zip(keys, problem())))
    with pytest.raises(error, match=names):
        F.crf_nll(**given)


def test_module_rejects_bad_num_tags_and_decode_checks_shapes():
    with pytest.raises(ValueError, match="num_tags"):
        cnn.CRF(0)
    with pytest.raises(ValueError, match="emissions"):
        cnn.CRF(3).decode(torch.randn(2, 4, 5))
    with pytest.raises(ValueError, match="first column"):
        cnn.CRF(3).decode(torch.randn(2, 4, 3), torch.zeros(2, 4, dtype=torch.bool))


def test_autocast_runs_the_crf_in_float32():
    emissions, tags, trans, start, end, m = problem(dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = emissions.to(torch.bfloat16)  # what a Linear layer hands over under autocast
        loss = F.crf_nll(half, tags, trans, start, end, m)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, F.crf_nll(half.float(), tags, trans, start, end, m))
    loss.backward()
    assert trans.grad is not None and torch.isfinite(trans.grad).all()


def test_torch_compile_fullgraph():
    emissions, tags, trans, start, end, m = problem(b=2, t=3, k=3)
    f = lambda e, a, s, z: F.crf_nll(e, tags, a, s, z, m)  # noqa: E731
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    inputs = (emissions, trans, start, end)
    torch.testing.assert_close(compiled(*inputs), f(*inputs))
    torch.testing.assert_close(torch.autograd.grad(compiled(*inputs), inputs), torch.autograd.grad(f(*inputs), inputs))
