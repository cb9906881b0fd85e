"""Tests for cs224n_nn.regularize: the notes' L2 penalty (weights only) and the
decay / no-decay optimizer groups."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from cs224n_nn.regularize import decay_groups, is_weight, l2_penalty


def make_model(dtype=torch.float64):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Embedding(20, 4),
        nn.Flatten(),
        nn.Linear(12, 8),
        nn.Tanh(),
        nn.LayerNorm(8),
        nn.Linear(8, 3, bias=False),
    ).to(dtype)


def explicit_penalty(lam, weights):
    """The formula written out: lambda * sum_i sum_jk W_jk^2."""
    total = 0.0
    for w in weights:
        total = total + (w * w).sum()
    return lam * total


def test_is_weight_rule():
    assert is_weight("0.weight", torch.zeros(3, 4))
    assert is_weight("conv.weight", torch.zeros(3, 4, 2, 2))
    assert not is_weight("0.bias", torch.zeros(3))
    assert not is_weight("norm.weight", torch.zeros(3))  # 1-D scale of a norm layer
    assert not is_weight("bilinear.bias", torch.zeros(3, 4))  # never a weight by name
    assert is_weight("", torch.zeros(3, 4))


def test_penalty_value_sums_squared_frobenius_norms_of_weights_only():
    model = make_model()
    lam = 0.3
    weights = [model[0].weight, model[2].weight, model[5].weight]
    expected = lam * sum(torch.linalg.matrix_norm(w, "fro") ** 2 for w in weights)
    torch.testing.assert_close(l2_penalty(model, lam), expected)
    # biases and the LayerNorm's 1-D parameters do not contribute: changing them changes nothing
    with torch.no_grad():
        model[2].bias.fill_(100.0)
        model[4].weight.fill_(100.0)
        model[4].bias.fill_(100.0)
    torch.testing.assert_close(l2_penalty(model, lam), expected)


def test_penalty_gradient_matches_autograd_of_formula_and_2_lambda_w():
    model = make_model()
    lam = 0.25
    l2_penalty(model, lam).backward()
    ours = {name: None if p.grad is None else p.grad.clone() for name, p in model.named_parameters()}

    model.zero_grad()
    weights = [p for name, p in model.named_parameters() if p.dim() >= 2]
    explicit_penalty(lam, weights).backward()

    for name, p in model.named_parameters():
        if p.dim() >= 2:
            torch.testing.assert_close(ours[name], p.grad, rtol=0, atol=1e-15)
            torch.testing.assert_close(ours[name], 2 * lam * p.detach(), rtol=0, atol=1e-15)
        else:  # the penalty does not depend on biases / norm parameters: no gradient reaches them
            assert ours[name] is None, name


def test_penalty_gradcheck_float64():
    w1 = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    w2 = torch.randn(2, 3, 2, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, c, d: l2_penalty([a, c, d], 0.7), (w1, w2, b))
    assert torch.autograd.gradgradcheck(lambda a, c, d: l2_penalty([a, c, d], 0.7), (w1, w2, b))


def test_penalty_accepts_named_parameters_and_counts_shared_once():
    lin = nn.Linear(3, 3)
    model = nn.Sequential(lin, nn.Tanh(), lin)  # the same weight used twice
    expected = 0.5 * lin.weight.pow(2).sum()
    torch.testing.assert_close(l2_penalty(model, 0.5), expected)
    torch.testing.assert_close(l2_penalty(model.named_parameters(), 0.5), expected)
    torch.testing.assert_close(l2_penalty([lin.weight, lin.weight, lin.bias], 0.5), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_penalty_dtype_and_device_follow_the_parameters(dtype):
    model = make_model(dtype)
    out = l2_penalty(model, 1e-3)
    assert out.dim() == 0 and out.dtype == dtype and out.device == model[2].weight.device
    assert out.requires_grad


def test_penalty_without_weights_is_a_zero_of_the_right_dtype():
    model = nn.Sequential(nn.LayerNorm(4)).double()
    out = l2_penalty(model, 0.1)
    assert out.item() == 0.0 and out.dtype == torch.float64
    assert l2_penalty([], 0.1).item() == 0.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_penalty_on_cuda():
    model = make_model(torch.float32).cuda()
    out = l2_penalty(model, 0.1)
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), l2_penalty(model.cpu(), 0.1))


@pytest.mark.parametrize("bad", [-1e-4, float("nan"), float("inf")])
def test_bad_weight_decay_is_an_error_naming_it(bad):
    model = make_model()
    with pytest.raises(ValueError, match="weight_decay"):
        l2_penalty(model, bad)
    with pytest.raises(ValueError, match="weight_decay"):
        decay_groups(model, bad)


def test_bad_container_types():
    with pytest.raises(TypeError, match="single Tensor"):
        l2_penalty(torch.zeros(3, 3), 0.1)
    with pytest.raises(TypeError, match="module must be"):
        decay_groups([torch.zeros(3, 3)], 0.1)


# -- decay_groups ---------------------------------------------------------------


def test_groups_cover_every_parameter_exactly_once():
    model = make_model()
    shared = nn.Linear(8, 8)
    model.append(shared)
    model.append(shared)  # shared module: its parameters must appear once
    frozen = nn.Linear(3, 3)
    frozen.requires_grad_(False)
    model.append(frozen)

    decay, no_decay = decay_groups(model, 1e-2)
    assert decay["weight_decay"] == 1e-2 and no_decay["weight_decay"] == 0.0
    ids = [id(p) for p in decay["params"] + no_decay["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters()}
    assert {id(p) for p in decay["params"]} == {
        id(m.weight) for m in model if isinstance(m, (nn.Linear, nn.Embedding))
    }
    assert all(p.dim() == 1 for p in no_decay["params"])
    # torch accepts the groups as they are
    opt = torch.optim.AdamW(decay_groups(model, 1e-2), lr=1e-3)
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-2, 0.0]


def test_groups_with_an_empty_group_are_accepted_by_torch():
    model = nn.Sequential(nn.Linear(3, 3, bias=False))
    decay, no_decay = decay_groups(model, 0.1)
    assert no_decay["params"] == []
    torch.optim.SGD([decay, no_decay], lr=0.1).step()


def test_l2_in_the_loss_equals_sgd_weight_decay_of_two_lambda():
    lam, lr = 0.05, 0.1
    torch.manual_seed(1)
    y = torch.randint(0, 3, (16,))
    penalised = make_model()
    decayed = copy.deepcopy(penalised)
    ids_x = torch.randint(0, 20, (16, 3))

    opt_a = torch.optim.SGD(penalised.parameters(), lr=lr, momentum=0.9)
    opt_b = torch.optim.SGD(decay_groups(decayed, 2 * lam), lr=lr, momentum=0.9)
    for _ in range(20):
        opt_a.zero_grad()
        loss = nn.functional.cross_entropy(penalised(ids_x), y) + l2_penalty(penalised, lam)
        loss.backward()
        opt_a.step()

        opt_b.zero_grad()
        nn.functional.cross_entropy(decayed(ids_x), y).backward()
        opt_b.step()
    for p, q in zip(penalised.parameters(), decayed.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)
    # and the decay mattered: without it the weights end elsewhere
    plain = make_model()
    opt_c = torch.optim.SGD(plain.parameters(), lr=lr, momentum=0.9)
    for _ in range(20):
        opt_c.zero_grad()
        nn.functional.cross_entropy(plain(ids_x), y).backward()
        opt_c.step()
    assert not torch.allclose(plain[2].weight, decayed[2].weight)
