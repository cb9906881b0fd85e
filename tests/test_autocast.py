"""Mixed precision (issue 11, item 4): torch's autocast policy and float32 derivatives in half precision.

Under ``torch.autocast`` each Function gives the dtype and value its torch twin
gives under the same autocast (affine in the autocast dtype like ``F.linear``,
the losses in float32, activations/dropout/embedding following their input),
and its gradients equal the twin's. Without autocast, float16/bfloat16
backward evaluates in float32 and rounds once, as torch's kernels do.
CUDA variants run only where a GPU is present (``cuda`` marker).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as TF
from torch.func import jvp

import cs224n_nn.functional as F
from cs224n_nn import autograd as A
from cs224n_nn import nn

from conftest import cuda

BF16 = torch.bfloat16
TARGET = torch.tensor([0, 3, 1, 2, 2])


def twin_linear(ours: torch.nn.Linear) -> torch.nn.Linear:
    twin = torch.nn.Linear(ours.in_features, ours.out_features, bias=ours.bias is not None,
                           device=ours.weight.device)
    twin.load_state_dict(ours.state_dict())
    return twin


def grads(out, params):
    return torch.autograd.grad(out.float().sum() if out.dim() else out, params)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4)])
def test_linear_under_cpu_bf16_autocast_matches_torch(bias, shape):
    ours = nn.Linear(4, 3, bias=bias)
    twin = twin_linear(ours)
    x = torch.randn(*shape, requires_grad=True)
    x_twin = x.detach().clone().requires_grad_()
    with torch.autocast("cpu", dtype=BF16):
        out, out_twin = ours(x), twin(x_twin)
    assert out.dtype == out_twin.dtype == BF16
    torch.testing.assert_close(out, out_twin, rtol=0, atol=0)
    upstream = torch.randn(out.shape, dtype=BF16)
    got = torch.autograd.grad(out, [x, *ours.parameters()], upstream)
    expected = torch.autograd.grad(out_twin, [x_twin, *twin.parameters()], upstream)
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype == torch.float32
        torch.testing.assert_close(g, e, rtol=0, atol=0)


def test_linear_float64_is_left_alone_by_autocast_like_torch():
    x, w = torch.randn(2, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    with torch.autocast("cpu", dtype=BF16):
        assert F.affine(x, w).dtype == TF.linear(x, w).dtype == torch.float64


def _train_step(layer, act, loss_fn, x, y):
    with torch.autocast("cpu", dtype=BF16):
        loss = loss_fn(act(layer(x)), y)
    params = list(layer.parameters())
    return loss, torch.autograd.grad(loss, params)


def test_training_step_linear_tanh_cross_entropy_under_autocast_matches_torch():
    ours = nn.Linear(6, 4)
    twin = twin_linear(ours)
    x, y = torch.randn(5, 6), TARGET
    loss, got = _train_step(ours, nn.Tanh(), nn.CrossEntropyLoss(), x, y)
    loss_twin, expected = _train_step(twin, torch.nn.Tanh(), torch.nn.CrossEntropyLoss(), x, y)
    assert loss.dtype == loss_twin.dtype == torch.float32
    torch.testing.assert_close(loss, loss_twin)
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype
        torch.testing.assert_close(g, e)


# (name, ours, twin, inputs) for every Function, float32 inputs, under CPU bf16 autocast
MASK = A.keep_mask(torch.ones(5, 4), 0.5)
CASES = [
    ("sigmoid", F.sigmoid, torch.sigmoid, lambda: (torch.randn(5, 4),)),
    ("tanh", F.tanh, torch.tanh, lambda: (torch.randn(5, 4),)),
    ("hardtanh", F.hardtanh, TF.hardtanh, lambda: (2 * torch.randn(5, 4),)),
    ("softsign", F.softsign, TF.softsign, lambda: (torch.randn(5, 4),)),
    ("relu", F.relu, torch.relu, lambda: (torch.randn(5, 4),)),
    ("leaky_relu", F.leaky_relu, TF.leaky_relu, lambda: (torch.randn(5, 4),)),
    ("affine", F.affine, TF.linear, lambda: (torch.randn(5, 4), torch.randn(3, 4), torch.randn(3))),
    ("dropout", lambda x: A.Dropout.apply(x, MASK), lambda x: x * MASK, lambda: (torch.randn(5, 4),)),
    ("embedding", lambda w: F.embedding(torch.tensor([1, 0, 4]), w),
     lambda w: TF.embedding(torch.tensor([1, 0, 4]), w), lambda: (torch.randn(6, 3),)),
    ("max_margin", F.max_margin_loss,
     lambda s, s_c: TF.margin_ranking_loss(s, s_c, torch.ones_like(s), margin=1.0),
     lambda: (torch.randn(5, dtype=BF16), torch.randn(5, dtype=BF16))),
    ("multi_margin", lambda x: F.multiclass_max_margin_loss(x, TARGET),
     lambda x: TF.multi_margin_loss(x, TARGET), lambda: (torch.randn(5, 4, dtype=BF16),)),
    ("multi_margin_p2", lambda x: F.multiclass_max_margin_loss(x, TARGET, p=2),
     lambda x: TF.multi_margin_loss(x, TARGET, p=2), lambda: (torch.randn(5, 4, dtype=BF16),)),
    ("cross_entropy", lambda x: F.softmax_cross_entropy(x, TARGET), lambda x: TF.cross_entropy(x, TARGET),
     lambda: (3 * torch.randn(5, 4, dtype=BF16),)),
    ("cross_entropy_smoothed", lambda x: F.softmax_cross_entropy(x, TARGET, label_smoothing=0.2),
     lambda x: TF.cross_entropy(x, TARGET, label_smoothing=0.2), lambda: (3 * torch.randn(5, 4, dtype=BF16),)),
]


@pytest.mark.parametrize("name, ours, twin, make", CASES, ids=[c[0] for c in CASES])
def test_every_function_follows_torchs_autocast_policy(name, ours, twin, make):
    args = [a.requires_grad_() for a in make()]
    args_twin = [a.detach().clone().requires_grad_() for a in args]
    with torch.autocast("cpu", dtype=BF16):
        out, out_twin = ours(*args), twin(*args_twin)
    assert out.dtype == out_twin.dtype, name
    torch.testing.assert_close(out, out_twin)
    upstream = torch.randn(out.shape, dtype=out.dtype)
    got = torch.autograd.grad(out, args, upstream)
    expected = torch.autograd.grad(out_twin, args_twin, upstream)
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype
        torch.testing.assert_close(g, e)


@pytest.mark.parametrize("name, ours, twin, make", CASES, ids=[c[0] for c in CASES])
def test_backward_inside_or_outside_autocast_gives_the_same_gradients(name, ours, twin, make):
    args = [a.requires_grad_() for a in make()]
    results = []
    for inside in (False, True):
        with torch.autocast("cpu", dtype=BF16):
            out = ours(*args)
            upstream = torch.ones(out.shape, dtype=out.dtype)
            if inside:
                results.append(torch.autograd.grad(out, args, upstream))
        if not inside:
            results.append(torch.autograd.grad(out, args, upstream))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_affine_jvp_under_autocast_is_in_the_autocast_dtype():
    x, w, b = torch.randn(5, 4), torch.randn(3, 4), torch.randn(3)
    tangents = tuple(torch.randn_like(t) for t in (x, w, b))
    with torch.autocast("cpu", dtype=BF16):
        out, out_t = jvp(F.affine, (x, w, b), tangents)
    assert out.dtype == out_t.dtype == BF16
    expected = (tangents[0] @ w.T + x @ tangents[1].T + tangents[2]).to(BF16)
    torch.testing.assert_close(out_t, expected, rtol=2e-2, atol=5e-2)


ACTIVATIONS = [
    ("sigmoid", F.sigmoid, torch.sigmoid),
    ("tanh", F.tanh, torch.tanh),
    ("hardtanh", F.hardtanh, TF.hardtanh),
    ("relu", F.relu, torch.relu),
    ("leaky_relu", F.leaky_relu, TF.leaky_relu),
]


@pytest.mark.parametrize("dtype", [torch.float16, BF16], ids=str)
@pytest.mark.parametrize("name, ours, twin", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_half_precision_backward_matches_torchs_kernels(name, ours, twin, dtype):
    # torch's derivative kernels compute in float32 and round once; so do we. (torch's
    # CPU sigmoid backward in float16 rounds after each operation instead: there we
    # are within one ulp of it and closer to the exact value.)
    x = torch.cat([torch.linspace(-6, 6, 401), torch.tensor([2.5, 3.0, 3.5, 4.0, -3.2])]).to(dtype)
    upstream = torch.randn(x.shape).to(dtype)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    (ga,) = torch.autograd.grad(ours(xa), xa, upstream)
    (gb,) = torch.autograd.grad(twin(xb), xb, upstream)
    assert ga.dtype == dtype
    if name == "sigmoid" and dtype == torch.float16:
        y = torch.sigmoid(x).double()
        exact = upstream.double() * (1 - y) * y
        assert (ga.double() - exact).abs().sum() <= (gb.double() - exact).abs().sum()
        torch.testing.assert_close(ga, gb, rtol=torch.finfo(dtype).eps, atol=torch.finfo(dtype).tiny)
    else:
        torch.testing.assert_close(ga, gb, rtol=0, atol=0)


def test_tanh_near_saturation_in_bfloat16_matches_torch():
    x = torch.tensor([2.0, 2.5, 2.75, 3.0, 3.25, -2.9], dtype=BF16, requires_grad=True)
    (ours,) = torch.autograd.grad(F.tanh(x), x, torch.ones_like(x))
    (twin,) = torch.autograd.grad(torch.tanh(x), x, torch.ones_like(x))
    torch.testing.assert_close(ours, twin, rtol=0, atol=0)


def test_softsign_float16_large_inputs_do_not_underflow_to_zero():
    x = torch.tensor([255.0, 300.0, -1000.0, 4000.0], dtype=torch.float16, requires_grad=True)
    (g,) = torch.autograd.grad(F.softsign(x).sum(), x)
    exact = 1 / (1 + x.detach().double().abs()) ** 2
    assert (g > 0).all()
    torch.testing.assert_close(g.double(), exact, rtol=5e-2, atol=0)
    # and its jvp, through the same formula
    _, t = jvp(F.softsign, (x.detach(),), (torch.ones_like(x),))
    assert torch.equal(t, g)


@pytest.mark.parametrize("dtype", [torch.float16, BF16], ids=str)
def test_cross_entropy_half_precision_gradient_at_p_near_one_matches_torch(dtype):
    scores = torch.tensor([[12.0, -3.0, 0.5], [0.0, 9.0, -9.0], [1.0, 2.0, 3.0]], dtype=dtype)
    target = torch.tensor([0, 1, 0])
    a, b = scores.clone().requires_grad_(), scores.clone().requires_grad_()
    (ga,) = torch.autograd.grad(F.softmax_cross_entropy(a, target), a)
    (gb,) = torch.autograd.grad(TF.cross_entropy(b, target), b)
    torch.testing.assert_close(ga, gb, rtol=0, atol=float(torch.finfo(dtype).eps) / 4)


# ---------------------------------------------------------------- CUDA (fp16 and bf16 autocast)

@cuda
@pytest.mark.parametrize("dtype", [torch.float16, BF16], ids=str)
def test_linear_under_cuda_autocast_matches_torch(dtype):
    ours = nn.Linear(8, 5).cuda()
    twin = twin_linear(ours)
    x = torch.randn(6, 8, device="cuda", requires_grad=True)
    x_twin = x.detach().clone().requires_grad_()
    with torch.autocast("cuda", dtype=dtype):
        out, out_twin = ours(x), twin(x_twin)
    assert out.dtype == out_twin.dtype == dtype
    torch.testing.assert_close(out, out_twin)
    upstream = torch.randn(out.shape, dtype=dtype, device="cuda")
    got = torch.autograd.grad(out, [x, *ours.parameters()], upstream)
    expected = torch.autograd.grad(out_twin, [x_twin, *twin.parameters()], upstream)
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype
        torch.testing.assert_close(g, e)


@cuda
@pytest.mark.parametrize("dtype", [torch.float16, BF16], ids=str)
def test_training_step_under_cuda_autocast_matches_torch(dtype):
    ours = nn.Linear(6, 4).cuda()
    twin = twin_linear(ours)
    x, y = torch.randn(5, 6, device="cuda"), TARGET.cuda()
    results = []
    for layer, act, loss_fn in ((ours, nn.Tanh(), nn.CrossEntropyLoss()),
                                (twin, torch.nn.Tanh(), torch.nn.CrossEntropyLoss())):
        with torch.autocast("cuda", dtype=dtype):
            loss = loss_fn(act(layer(x)), y)
        results.append((loss, torch.autograd.grad(loss, list(layer.parameters()))))
    (loss, got), (loss_twin, expected) = results
    assert loss.dtype == loss_twin.dtype == torch.float32
    torch.testing.assert_close(loss, loss_twin)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e)


def test_compile_fullgraph_under_autocast_equals_eager():
    layer = nn.Linear(4, 3)
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])

    def step(x):
        with torch.autocast("cpu", dtype=BF16):
            return F.softmax_cross_entropy(F.tanh(layer(x)), y)

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    got, expected = compiled(x), step(x)
    assert got.dtype == expected.dtype == torch.float32
    torch.testing.assert_close(got, expected)
    for g, e in zip(torch.autograd.grad(got, list(layer.parameters())),
                    torch.autograd.grad(expected, list(layer.parameters()))):
        torch.testing.assert_close(g, e)
