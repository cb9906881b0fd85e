"""The compiled single-pass backward (cs224n_nn.autograd._fused) against the eager formulas.

Every fast path must give what the plain path gives: here bit for bit, NaN
and infinities included, in float32 and float64. The size threshold is
lowered for most tests so that small tensors take the compiled path (the
compile cost does not depend on the size; one graph serves every size).
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch
import torch.nn.functional as TF
from torch.autograd import gradcheck, gradgradcheck
from torch.func import grad, vmap

import cs224n_nn.autograd.activations as act
import cs224n_nn.functional as F
from cs224n_nn.autograd import _fused

# (name, ours, torch twin, the kernel its backward uses)
CASES = [
    ("sigmoid", F.sigmoid, torch.sigmoid, act._SIGMOID_KERNEL),
    ("tanh", F.tanh, torch.tanh, act._TANH_KERNEL),
    ("hardtanh", F.hardtanh, TF.hardtanh, act._HARDTANH_KERNEL),
    ("hardtanh(-0.5,2)", lambda x: F.hardtanh(x, -0.5, 2.0), lambda x: TF.hardtanh(x, -0.5, 2.0), act._HARDTANH_KERNEL),
    ("relu", F.relu, torch.relu, act._RELU_KERNEL),
    ("leaky_relu", F.leaky_relu, TF.leaky_relu, act._LEAKY_RELU_KERNEL),
    ("leaky_relu(-0.3)", lambda x: F.leaky_relu(x, -0.3), lambda x: TF.leaky_relu(x, -0.3), act._LEAKY_RELU_KERNEL),
    ("leaky_relu(2.5)", lambda x: F.leaky_relu(x, 2.5), lambda x: TF.leaky_relu(x, 2.5), act._LEAKY_RELU_KERNEL),
]
IDS = [c[0] for c in CASES]
SPECIAL = [0.0, -0.0, 1.0, -1.0, -0.5, 2.0, float("nan"), float("inf"), -float("inf"), 1e-30, 20.0, -20.0]


@pytest.fixture
def small_threshold(monkeypatch):
    monkeypatch.setattr(_fused, "enabled", True)
    monkeypatch.setattr(_fused, "min_numel", 64)


def grad_of(f, x, upstream, **kw):
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(f(x), x, upstream, **kw)
    return g


def eager_grad(f, x, upstream, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(_fused, "enabled", False)
        return grad_of(f, x, upstream)


def inputs(shape, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = 3 * torch.randn(shape, generator=gen, dtype=torch.float64)
    x.view(-1)[: len(SPECIAL)] = torch.tensor(SPECIAL, dtype=torch.float64)
    upstream = torch.randn(shape, generator=gen, dtype=torch.float64)
    upstream.view(-1)[-3:] = torch.tensor([float("inf"), float("nan"), 0.0])
    return x.to(dtype), upstream.to(dtype)


def assert_same(fused, plain, upstream, *, contracted):
    """Bit for bit, except where ``a - b*c`` was left uncontracted (see below)."""
    if not contracted:
        torch.testing.assert_close(fused, plain, rtol=0, atol=0, equal_nan=True)
        return
    # Eager rounds ``a - b*c`` once (an FMA). The compiled loop gets the same
    # FMA from gcc everywhere in float32; in float64 a few elements in the
    # loop's remainder were seen rounded twice, off by under half an ulp of the
    # upstream gradient (torch's own ``grad * (1 - y*y)`` carries an error of
    # that size). Bound: one ulp of |upstream|, NaN/inf in the same places.
    assert torch.equal(fused.isnan(), plain.isnan()) and torch.equal(fused.isinf(), plain.isinf())
    finite = plain.isfinite()
    eps = torch.finfo(plain.dtype).eps
    diff = (fused[finite] - plain[finite]).abs()
    assert (diff <= eps * upstream[finite].abs()).all(), diff.max()
    assert torch.equal(fused[~finite].nan_to_num(0.0), plain[~finite].nan_to_num(0.0))


@pytest.mark.usefixtures("small_threshold")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name,ours,ref,kernel", CASES, ids=IDS)
def test_compiled_backward_is_bit_identical_to_eager(name, ours, ref, kernel, dtype, monkeypatch):
    for shape in [(4096,), (8, 33, 5)]:  # two ranks and sizes: one dynamic graph serves both
        x, upstream = inputs(shape, dtype)
        before = kernel.calls
        fused = grad_of(ours, x, upstream)
        assert kernel.calls == before + 1, "the compiled path was not taken"
        plain = eager_grad(ours, x, upstream, monkeypatch)
        assert fused.shape == x.shape and fused.dtype == dtype
        assert_same(fused, plain, upstream, contracted=name in ("sigmoid", "tanh") and dtype == torch.float64)


@pytest.mark.usefixtures("small_threshold")
@pytest.mark.parametrize("name,ours,ref,kernel", CASES, ids=IDS)
def test_compiled_backward_matches_torch(name, ours, ref, kernel):
    x, upstream = inputs((1000,), torch.float32, seed=1)
    # ordinary values only: at an infinite upstream gradient ReLU differs from torch on purpose
    x, upstream = x[len(SPECIAL) : -3], upstream[len(SPECIAL) : -3]
    before = kernel.calls
    torch.testing.assert_close(grad_of(ours, x, upstream), grad_of(ref, x, upstream), rtol=1e-5, atol=1e-6)
    assert kernel.calls == before + 1


@pytest.mark.usefixtures("small_threshold")
@pytest.mark.parametrize("name,ours,ref,kernel", CASES, ids=IDS)
def test_non_contiguous_tensors(name, ours, ref, kernel, monkeypatch):
    # The compiled copy sees the saved tensor (a fresh, often contiguous output
    # even for a strided input) and the upstream gradient; where either is
    # strided it is skipped. Either way the result is eager's.
    base, _ = inputs((64, 80), torch.float32)
    for x in (base.t(), base[:, ::2]):
        upstream = torch.randn(x.shape)
        g = grad_of(ours, x, upstream)
        torch.testing.assert_close(g, eager_grad(ours, x, upstream, monkeypatch), rtol=0, atol=0, equal_nan=True)
        torch.testing.assert_close(g, grad_of(ref, x, upstream), rtol=1e-5, atol=1e-6, equal_nan=True)
    before = kernel.calls
    grad_of(ours, base.t(), torch.randn(80, 64))  # x.t() in, y.t()-strided out: skipped
    assert kernel.calls == before
    # a non-contiguous upstream gradient (the expanded ones of y.sum()) is left to eager too
    # (finite values: at a NaN input torch's hardtanh with this expanded gradient gives 0, with a dense one g)
    base = torch.randn(64, 80)
    x = base.clone().requires_grad_(True)
    before = kernel.calls
    (g,) = torch.autograd.grad(ours(x).sum(), x)
    assert kernel.calls == before
    torch.testing.assert_close(g, grad_of(ref, base, torch.ones_like(base)), rtol=1e-5, atol=1e-6, equal_nan=True)


@pytest.mark.usefixtures("small_threshold")
@pytest.mark.parametrize("name,ours,ref,kernel", CASES, ids=IDS)
def test_gradcheck_through_the_compiled_path_and_gradgradcheck_through_the_eager_one(name, ours, ref, kernel, monkeypatch):
    monkeypatch.setattr(_fused, "min_numel", 1)
    x = torch.randn(4, 5, dtype=torch.float64)
    x = torch.where((x.abs() < 0.1) | ((x.abs() - 1).abs() < 0.1) | ((x + 0.5).abs() < 0.1), x + 0.3, x)
    x.requires_grad_(True)
    before = kernel.calls
    assert gradcheck(ours, (x,))
    assert kernel.calls > before  # first-order backward ran compiled
    assert gradgradcheck(ours, (x,))  # create_graph: the differentiable eager formula


@pytest.mark.usefixtures("small_threshold")
def test_create_graph_never_uses_the_compiled_path():
    x = torch.randn(256, dtype=torch.float64, requires_grad=True)
    before = act._TANH_KERNEL.calls
    (g,) = torch.autograd.grad(F.tanh(x), x, torch.ones_like(x), create_graph=True)
    assert g.requires_grad and act._TANH_KERNEL.calls == before
    (gg,) = torch.autograd.grad(g.sum(), x)
    y = torch.tanh(x.detach())
    torch.testing.assert_close(gg, -2 * y * (1 - y * y))


@pytest.mark.usefixtures("small_threshold")
def test_torch_func_transforms_use_the_eager_path():
    x = torch.randn(8, 100, dtype=torch.float64)
    before = act._SIGMOID_KERNEL.calls
    got = vmap(grad(lambda v: F.sigmoid(v).sum()))(x)
    assert act._SIGMOID_KERNEL.calls == before
    torch.testing.assert_close(got, torch.sigmoid(x) * (1 - torch.sigmoid(x)))


@pytest.mark.usefixtures("small_threshold")
def test_traced_by_torch_compile_uses_the_eager_formula():
    x = torch.randn(300, requires_grad=True)
    before = act._RELU_KERNEL.calls
    out = torch.compile(lambda v: F.relu(v).pow(2).sum(), backend="aot_eager", fullgraph=True)(x)
    (g,) = torch.autograd.grad(out, x)
    assert act._RELU_KERNEL.calls == before
    torch.testing.assert_close(g, 2 * x.detach().clamp_min(0))


def test_default_threshold_path_is_taken_for_large_tensors(monkeypatch):
    monkeypatch.setattr(_fused, "enabled", True)
    x, upstream = inputs((_fused.min_numel,), torch.float32, seed=2)
    before = act._SIGMOID_KERNEL.calls
    fused = grad_of(F.sigmoid, x, upstream)
    assert act._SIGMOID_KERNEL.calls == before + 1
    torch.testing.assert_close(fused, eager_grad(F.sigmoid, x, upstream, monkeypatch), rtol=0, atol=0, equal_nan=True)
    # one element short of the threshold: eager
    before = act._SIGMOID_KERNEL.calls
    grad_of(F.sigmoid, x[1:], upstream[1:])
    assert act._SIGMOID_KERNEL.calls == before


def test_switched_off_means_eager(monkeypatch):
    monkeypatch.setattr(_fused, "enabled", False)
    monkeypatch.setattr(_fused, "min_numel", 1)
    x, upstream = inputs((500,), torch.float32)
    before = act._RELU_KERNEL.calls
    grad_of(F.relu, x, upstream)
    assert act._RELU_KERNEL.calls == before


@pytest.mark.parametrize("value,expected", [("0", False), ("off", False), ("1", True), ("", True)])
def test_environment_variable_switch(value, expected):
    code = "from cs224n_nn.autograd import _fused; print(_fused.enabled)"
    env = {"CS224N_NN_FUSED": value, "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(expected)


def test_a_failing_compile_warns_once_and_falls_back(monkeypatch):
    monkeypatch.setattr(_fused, "enabled", True)
    monkeypatch.setattr(_fused, "min_numel", 1)

    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(torch, "compile", no_compiler)
    kernel = _fused.Kernel("test", lambda g, y: g * y)
    g, y = torch.randn(10), torch.randn(10)
    with torch.no_grad():
        with pytest.warns(RuntimeWarning, match=r"compiled backward for test .*no C\+\+ compiler.*eager"):
            assert kernel(g, y) is None
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert kernel(g, y) is None  # remembered: no second warning, no second try
    assert kernel.calls == 0


def test_applicable_refuses_what_the_compiled_copy_does_not_cover(monkeypatch):
    monkeypatch.setattr(_fused, "enabled", True)
    monkeypatch.setattr(_fused, "min_numel", 4)
    a = torch.randn(8)
    with torch.no_grad():
        assert _fused.applicable(a, a)
        assert not _fused.applicable(a[:2], a[:2])  # below the threshold
        assert not _fused.applicable(a.half(), a.half())  # float16: eager rounds per operation
        assert not _fused.applicable(a, a.double())
        assert not _fused.applicable(a, a.view(2, 4))
        assert not _fused.applicable(a.view(2, 4).t(), a.view(2, 4).t())
    assert not _fused.applicable(a, a)  # grad mode on: create_graph
