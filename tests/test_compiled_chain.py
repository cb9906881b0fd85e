"""The compiled copy of each activation's ``chain`` (cs224n_nn.autograd._compiled_chain):
equal to the eager formula bit for bit, and never used where it could change the result."""

from __future__ import annotations

import pytest
import torch
import torch.autograd.forward_ad as fwAD

import cs224n_nn.functional as F
from cs224n_nn import _compile
from cs224n_nn.autograd import _compiled_chain as cc
from cs224n_nn.autograd import _plain, _private
from cs224n_nn.autograd.activations import ACTIVATIONS

BIG = cc.COMPILE_MIN_NUMEL
PARAMS = {"hardtanh": (-1.0, 1.0), "leaky_relu": (0.01,)}


def hard_inputs(name: str, dtype: torch.dtype, extra: int = 3):
    """(g, saved) with the kinks, corners, NaN and an infinite upstream gradient at a saturated unit.

    ``BIG + extra`` elements: ``extra`` not a multiple of the vector width leaves a scalar remainder.
    """
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(BIG + extra, generator=gen, dtype=dtype) * 3
    z[:4] = torch.tensor([0.0, 1.0, -1.0, float("nan")], dtype=dtype)
    z[4] = -5.0  # saturated for hardtanh and relu
    g = torch.randn(z.shape, generator=gen, dtype=dtype)
    g[4] = float("inf")
    act = ACTIVATIONS[name]
    saved = act.forward(z, *PARAMS.get(name, ())) if act.saves == "output" else z
    return g, saved


def compiled_calls(monkeypatch) -> list:
    """A list that grows by one each time a compiled copy is called."""
    calls = []
    real = cc.compiled_copy

    def counting(chain):
        compiled = real(chain)

        def call(*args):
            calls.append(chain.__name__)
            return compiled(*args)

        return call

    monkeypatch.setattr(cc, "compiled_copy", counting)
    return calls


@pytest.mark.slow
@pytest.mark.parametrize("extra", [3, 37, 64 * 1001 + 13])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_the_compiled_chain_equals_the_eager_formula_bit_for_bit(name, dtype, extra, monkeypatch):
    act = ACTIVATIONS[name]
    g, saved = hard_inputs(name, dtype, extra)
    calls = compiled_calls(monkeypatch)
    with torch.no_grad():
        fast = cc.backward_chain(act.chain, g, saved, *PARAMS.get(name, ()))
    assert calls == [act.chain.__name__] and not _compile._failed  # it really ran compiled
    eager = act.chain(g, saved, *PARAMS.get(name, ()))
    assert fast.dtype == eager.dtype and fast.shape == eager.shape
    assert torch.equal(fast.isnan(), eager.isnan())
    assert torch.equal(fast.nan_to_num(0.0), eager.nan_to_num(0.0))


@pytest.mark.slow
def test_a_large_backward_takes_the_compiled_copy_and_matches_torch(monkeypatch):
    calls = compiled_calls(monkeypatch)
    x = torch.randn(BIG * 2).requires_grad_()
    g = torch.randn(BIG * 2)
    (ours,) = torch.autograd.grad(F.relu(x), x, g)
    (theirs,) = torch.autograd.grad(torch.relu(x), x, g)
    assert calls == ["_relu_chain"]
    assert torch.equal(ours, theirs)


@pytest.mark.slow
def test_the_dense_layer_backward_takes_the_compiled_copy(monkeypatch):
    calls = compiled_calls(monkeypatch)
    x = torch.randn(BIG // 64, 64, dtype=torch.float64).requires_grad_()
    w = torch.randn(64, 64, dtype=torch.float64).requires_grad_()
    b = torch.randn(64, dtype=torch.float64).requires_grad_()
    up = torch.randn(BIG // 64, 64, dtype=torch.float64)  # contiguous, as a next layer's matmul gives
    grads = torch.autograd.grad(F.dense(x, w, b, activation="tanh"), (x, w, b), up)
    assert calls == ["_tanh_chain"]
    expected = torch.autograd.grad(torch.tanh(torch.nn.functional.linear(x, w, b)), (x, w, b), up)
    for ours, theirs in zip(grads, expected):
        torch.testing.assert_close(ours, theirs)


@pytest.mark.slow
def test_each_activation_compiles_from_its_own_size(monkeypatch):
    """The chains that select (hard tanh, ReLU, leaky ReLU) compile from SELECT_MIN_NUMEL elements;
    the arithmetic ones (sigmoid, tanh, soft sign) stay eager there, up to COMPILE_MIN_NUMEL."""
    selecting = {"hardtanh", "relu", "leaky_relu"}
    assert cc.SELECT_MIN_NUMEL < cc.COMPILE_MIN_NUMEL
    assert {n for n, a in ACTIVATIONS.items() if a.compile_min_numel == cc.SELECT_MIN_NUMEL} == selecting
    assert all(a.compile_min_numel == cc.COMPILE_MIN_NUMEL for n, a in ACTIVATIONS.items() if n not in selecting)
    calls = compiled_calls(monkeypatch)
    for name in ACTIVATIONS:
        for numel in (cc.SELECT_MIN_NUMEL - 1, cc.SELECT_MIN_NUMEL):
            x = torch.randn(numel).requires_grad_()
            g = torch.randn(numel)
            ours = torch.autograd.grad(getattr(F, name)(x), x, g)[0]
            theirs = torch.autograd.grad(getattr(torch.nn.functional, name)(x), x, g)[0]
            torch.testing.assert_close(ours, theirs)
    assert calls == ["_hardtanh_chain", "_relu_chain", "_leaky_relu_chain"]  # at SELECT_MIN_NUMEL, not below
    layer_calls = len(calls)
    x = torch.randn(cc.SELECT_MIN_NUMEL // 64, 64).requires_grad_()
    w = torch.randn(64, 64).requires_grad_()
    torch.autograd.grad(F.dense(x, w, None, activation="relu"), x, torch.randn(cc.SELECT_MIN_NUMEL // 64, 64))
    assert calls[layer_calls:] == ["_relu_chain"]  # the fused layer uses the activation's own size


@pytest.mark.parametrize("case", [
    "grad mode", "too small", "mixed dtypes", "float16", "bfloat16", "not contiguous",
    "other shape", "autocast", "subclass", "meta device",
])
def test_each_guard_keeps_its_case_eager(case):
    g, saved = torch.randn(BIG), torch.rand(BIG)
    with torch.no_grad():
        assert cc.eligible(g, saved)  # the baseline passes every guard
        if case == "grad mode":
            with torch.enable_grad():
                assert not cc.eligible(g, saved)
        elif case == "too small":
            assert not cc.eligible(g[: BIG - 1], saved[: BIG - 1])
        elif case == "mixed dtypes":
            assert not cc.eligible(g, saved.double())
        elif case in ("float16", "bfloat16"):
            dtype = getattr(torch, case)
            assert not cc.eligible(g.to(dtype), saved.to(dtype))
        elif case == "not contiguous":
            g2, s2 = torch.randn(2, BIG)[:, ::2], torch.rand(2, BIG)[:, ::2]
            assert g2.numel() >= BIG and not cc.eligible(g2, s2)
        elif case == "other shape":
            assert not cc.eligible(g.view(2, -1), saved)
        elif case == "autocast":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                assert not cc.eligible(g, saved)
        elif case == "subclass":
            assert not cc.eligible(torch.nn.Parameter(g, requires_grad=False), saved)
        elif case == "meta device":
            assert not cc.eligible(g.to("meta"), saved.to("meta"))


def test_a_forward_mode_tangent_keeps_it_eager():
    g, saved = torch.randn(BIG), torch.rand(BIG)
    with torch.no_grad(), fwAD.dual_level():
        dual = fwAD.make_dual(g, torch.ones_like(g))
        assert cc.eligible(g, saved)
        assert not cc.eligible(dual, saved) and not cc.eligible(g, fwAD.make_dual(saved, saved))


def test_batched_gradients_and_transforms_stay_eager(monkeypatch):
    calls = compiled_calls(monkeypatch)
    x = torch.randn(BIG).requires_grad_()
    y = F.sigmoid(x)
    v = torch.randn(2, BIG)
    (batched,) = torch.autograd.grad(y, x, v, is_grads_batched=True)  # legacy batched tensors
    s = torch.sigmoid(x.detach())
    torch.testing.assert_close(batched, v * s * (1 - s))
    _, vjp = torch.func.vjp(F.sigmoid, x.detach())
    (one,) = torch.func.vmap(vjp)(v)  # functorch batched tensors
    torch.testing.assert_close(one, batched)
    assert calls == []


def test_double_backward_records_the_eager_formula(monkeypatch):
    calls = compiled_calls(monkeypatch)
    x = torch.randn(BIG, dtype=torch.float64).requires_grad_()
    up = torch.randn(BIG, dtype=torch.float64)
    (g,) = torch.autograd.grad(F.tanh(x), x, up, create_graph=True)
    assert calls == [] and g.grad_fn is not None  # recorded: eager ops under grad mode
    (gg,) = torch.autograd.grad(g, x, up)  # a plain backward again (through tanh's y): compiled is fine
    t = torch.tanh(x.detach())
    torch.testing.assert_close(gg, -2 * t * (1 - t * t) * up * up)


def test_inside_torch_compile_the_eager_formula_is_traced(monkeypatch):
    monkeypatch.setattr(torch.compiler, "_is_compiling_flag", True)
    g, saved = torch.randn(BIG), torch.rand(BIG)
    with torch.no_grad():
        assert not cc.eligible(g, saved)


def test_without_the_private_functorch_tests_it_stays_eager(monkeypatch):
    monkeypatch.setattr(_plain, "TRANSFORM_TESTS", _plain.TRANSFORM_TESTS[:2] + ("_C._functorch.is_legacy_batchedtensor_renamed",))
    g, saved = torch.randn(BIG), torch.rand(BIG)
    with torch.no_grad():
        assert not cc.eligible(g, saved)
    assert _private.lookup(*_plain.TRANSFORM_TESTS) is None
    x = torch.randn(BIG).requires_grad_()
    up = torch.randn(BIG)
    (grad,) = torch.autograd.grad(F.relu(x), x, up)  # the eager path still gives the gradient
    assert torch.equal(grad, torch.where(x.detach() > 0, up, 0))


def test_a_failed_compilation_warns_once_then_runs_eagerly(monkeypatch):
    def broken(fn, **kwargs):
        def call(*args):
            raise RuntimeError("no C++ compiler")
        return call

    monkeypatch.setattr(cc.torch, "compile", broken)
    monkeypatch.setattr(cc, "_compiled", {})
    monkeypatch.setattr(_compile, "_failed", False)
    x = torch.randn(BIG).requires_grad_()
    up = torch.randn(BIG)
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        (first,) = torch.autograd.grad(F.sigmoid(x), x, up)
    assert _compile._failed
    s = torch.sigmoid(x.detach())
    torch.testing.assert_close(first, up * s * (1 - s))
    g, saved = torch.randn(BIG), torch.rand(BIG)
    with torch.no_grad():
        assert not cc.eligible(g, saved)  # no second try in this process


def test_the_embedding_gradient_summed_in_place_equals_the_out_of_place_sum(monkeypatch):
    # The plain-backward spelling (index_add_ into the fresh zero table) against the one
    # vmap and double backward get (index_add), on ids with many repeats.
    ids = torch.randint(0, 50, (64, 7), generator=torch.Generator().manual_seed(0))
    weight = torch.randn(50, 8, dtype=torch.float64, requires_grad=True)
    up = torch.randn(64, 7, 8, dtype=torch.float64)
    (plain,) = torch.autograd.grad(F.embedding(ids, weight), weight, up)
    monkeypatch.setattr("cs224n_nn.autograd.embedding.plain_backward", lambda *t: False)
    (out_of_place,) = torch.autograd.grad(F.embedding(ids, weight), weight, up)
    assert torch.equal(plain, out_of_place)
    theirs = torch.autograd.grad(torch.nn.functional.embedding(ids, weight), weight, up)[0]
    torch.testing.assert_close(plain, theirs)
    # batched gradients through the same Function take the out-of-place sum
    monkeypatch.undo()
    v = torch.randn(3, 64, 7, 8, dtype=torch.float64)
    (batched,) = torch.autograd.grad(F.embedding(ids, weight), weight, v, is_grads_batched=True)
    for i in range(3):
        torch.testing.assert_close(batched[i], torch.autograd.grad(F.embedding(ids, weight), weight, v[i])[0])
