"""The six activations against their torch twins, the gradient checks, kinks, bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd import gradcheck, gradgradcheck

import cs224n_nn.autograd as A
import cs224n_nn.functional as F

# (name, ours, torch twin); the twins use torch's own autograd formulas.
TWINS = [
    ("sigmoid", F.sigmoid, torch.sigmoid),
    ("tanh", F.tanh, torch.tanh),
    ("hardtanh", F.hardtanh, TF.hardtanh),
    ("hardtanh(-0.5,2)", lambda x: F.hardtanh(x, -0.5, 2.0), lambda x: TF.hardtanh(x, -0.5, 2.0)),
    ("softsign", F.softsign, TF.softsign),
    ("relu", F.relu, torch.relu),
    ("leaky_relu", F.leaky_relu, TF.leaky_relu),
    ("leaky_relu(0.2)", lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2)),
    ("leaky_relu(-0.3)", lambda x: F.leaky_relu(x, -0.3), lambda x: TF.leaky_relu(x, -0.3)),
]
IDS = [name for name, _, _ in TWINS]

TOL = {
    torch.float64: dict(rtol=1e-10, atol=1e-12),
    torch.float32: dict(rtol=1e-5, atol=1e-6),
    torch.float16: dict(rtol=5e-3, atol=1e-3),
    torch.bfloat16: dict(rtol=3e-2, atol=1e-2),
}
DTYPES = list(TOL)
# Every matrix test also runs on CUDA where a GPU is present (not generated, so not skipped, elsewhere).
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def value_and_grad(f, x, upstream):
    x = x.detach().requires_grad_(True)
    y = f(x)
    (g,) = torch.autograd.grad(y, x, upstream)
    return y.detach(), g


def assert_twin(ours, ref, x, **tol):
    upstream = torch.randn(x.shape, dtype=torch.float64).to(x.dtype).to(x.device)
    y1, g1 = value_and_grad(ours, x, upstream)
    y2, g2 = value_and_grad(ref, x, upstream)
    torch.testing.assert_close(y1, y2, equal_nan=True, **tol)
    torch.testing.assert_close(g1, g2, equal_nan=True, **tol)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name,ours,ref", TWINS, ids=IDS)
def test_matches_torch_over_dtypes_and_shapes(name, ours, ref, dtype, device):
    for shape in [(), (0,), (3, 0, 2), (7,), (2, 3, 5)]:
        x = (3 * torch.randn(shape, dtype=torch.float64)).to(dtype).to(device)
        assert_twin(ours, ref, x, **TOL[dtype])


@pytest.mark.parametrize("name,ours,ref", TWINS, ids=IDS)
def test_non_contiguous_input(name, ours, ref):
    base = 3 * torch.randn(6, 8)
    for x in (base.t(), base[:, ::2], base.unsqueeze(0).expand(3, 6, 8)):
        assert not x.is_contiguous()
        assert_twin(ours, ref, x, **TOL[torch.float32])


@pytest.mark.parametrize("name,ours,ref", [t for t in TWINS if t[0] != "softsign"], ids=[i for i in IDS if i != "softsign"])
def test_inf_and_nan_match_torch(name, ours, ref):
    x = torch.tensor([float("inf"), -float("inf"), float("nan"), 0.0, 1.0, -1.0, 5.0])
    assert_twin(ours, ref, x, **TOL[torch.float32])


def test_softsign_at_infinity_uses_the_limit_of_its_derivative():
    # softsign(+-inf) = inf/inf is NaN in torch and here (same formula); the
    # derivative 1/(1+|x|)^2 tends to 0, which we return, where torch's
    # composite autograd returns NaN.
    x = torch.tensor([float("inf"), -float("inf"), float("nan")], requires_grad=True)
    y = F.softsign(x)
    assert torch.isnan(y).all()
    (g,) = torch.autograd.grad(y.sum(), x)
    assert g[:2].tolist() == [0.0, 0.0] and torch.isnan(g[2])


@pytest.mark.parametrize("name,ours,ref", TWINS, ids=IDS)
def test_gradcheck_and_gradgradcheck_float64(name, ours, ref):
    x = torch.randn(4, 5, dtype=torch.float64)
    # Keep clear of the kinks at 0 and at the hard-tanh corners (-1, -0.5, 1, 2).
    x = torch.where((x.abs() < 0.1) | ((x.abs() - 1).abs() < 0.1) | ((x + 0.5).abs() < 0.1), x + 0.3, x)
    x.requires_grad_(True)
    assert gradcheck(ours, (x,))
    assert gradgradcheck(ours, (x,))


@pytest.mark.parametrize("name,ours,ref", TWINS, ids=IDS)
def test_double_backward_matches_torch(name, ours, ref):
    x = torch.randn(3, 4, dtype=torch.float64)
    upstream = torch.randn(3, 4, dtype=torch.float64)
    results = []
    for f in (ours, ref):
        xg = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(f(xg), xg, upstream, create_graph=True)
        # Piecewise-linear derivatives do not depend on x: no graph, second derivative 0.
        if g.requires_grad:
            (gg,) = torch.autograd.grad(g.pow(2).sum(), xg, allow_unused=True, materialize_grads=True)
        else:
            gg = torch.zeros_like(x)
        results.append((g.detach(), gg))
    torch.testing.assert_close(results[0], results[1])


@pytest.mark.parametrize("name,ours,ref", TWINS, ids=IDS)
def test_in_place_and_differentiable_backward_branches_agree(name, ours, ref):
    # backward takes an in-place fast path unless create_graph=True; both must agree.
    x = torch.randn(50, requires_grad=True)
    upstream = torch.randn(50)
    (fast,) = torch.autograd.grad(ours(x), x, upstream)
    (graph,) = torch.autograd.grad(ours(x), x, upstream, create_graph=True)
    torch.testing.assert_close(fast, graph.detach(), rtol=0, atol=0)


def test_kink_convention_matches_torch():
    x = torch.tensor([-1.0, 0.0, 1.0], requires_grad=True)
    (g,) = torch.autograd.grad(F.relu(x).sum(), x)
    assert g.tolist() == [0.0, 0.0, 1.0]  # relu'(0) = 0
    (g,) = torch.autograd.grad(F.hardtanh(x).sum(), x)
    assert g.tolist() == [0.0, 1.0, 0.0]  # 0 at exactly min_val and max_val
    (g,) = torch.autograd.grad(F.hardtanh(x, -0.5, 0.0).sum(), x)
    assert g.tolist() == [0.0, 0.0, 0.0]
    (g,) = torch.autograd.grad(F.leaky_relu(x, 0.1).sum(), x)
    assert g.tolist() == pytest.approx([0.1, 0.1, 1.0])  # leaky_relu'(0) = negative_slope


class _SavedTensors:
    """Record every tensor a Function saves for backward."""

    def __enter__(self):
        self.saved = []
        self._hooks = torch.autograd.graph.saved_tensors_hooks(lambda t: self.saved.append(t) or t, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self._hooks.__exit__(*exc)


@pytest.mark.parametrize("name,ours,ref", TWINS, ids=IDS)
def test_saves_nothing_without_grad(name, ours, ref):
    with _SavedTensors() as rec:
        ours(torch.randn(5))
    assert rec.saved == []


@pytest.mark.parametrize("fn", [F.sigmoid, F.tanh, F.relu], ids=["sigmoid", "tanh", "relu"])
def test_saves_only_the_output_where_the_derivative_needs_it(fn):
    x = torch.randn(5, requires_grad=True)
    with _SavedTensors() as rec:
        y = fn(x)
    assert len(rec.saved) == 1 and rec.saved[0].data_ptr() == y.data_ptr()


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(0, 4), min_size=0, max_size=3),
    scale=st.floats(0.01, 50.0),
    index=st.integers(0, len(TWINS) - 1),
    seed=st.integers(0, 2**16),
)
def test_property_random_shapes_and_values(shape, scale, index, seed):
    name, ours, ref = TWINS[index]
    gen = torch.Generator().manual_seed(seed)
    x = scale * torch.randn(shape, generator=gen, dtype=torch.float64)
    assert_twin(ours, ref, x, **TOL[torch.float64])


@pytest.mark.parametrize("name,ours,ref", TWINS, ids=IDS)
@pytest.mark.parametrize("bad", [torch.tensor([1, 2]), torch.tensor([True, False]), torch.tensor([1j])], ids=["int", "bool", "complex"])
def test_integer_bool_and_complex_tensors_are_refused(name, ours, ref, bad):
    with pytest.raises(TypeError, match=r"input must be a floating-point tensor.*got torch\."):
        ours(bad)


def test_non_tensor_and_bad_arguments_are_refused():
    with pytest.raises(TypeError, match="input must be a torch.Tensor, got list"):
        F.sigmoid([1.0, 2.0])
    with pytest.raises(ValueError, match="min_val must not be greater than max_val"):
        F.hardtanh(torch.randn(3), 1.0, -1.0)
    with pytest.raises(TypeError, match="negative_slope must be a real number"):
        F.leaky_relu(torch.randn(3), "0.1")


def test_functions_are_autograd_functions_with_a_vmap_rule():
    for cls in (A.Sigmoid, A.Tanh, A.HardTanh, A.SoftSign, A.ReLU, A.LeakyReLU):
        assert issubclass(cls, torch.autograd.Function)
        assert cls.generate_vmap_rule is True
        assert "setup_context" in vars(cls) and "backward" in vars(cls)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name,ours,ref", TWINS, ids=IDS)
def test_cuda_outputs_and_gradients_stay_on_the_device(name, ours, ref):
    x = torch.randn(4, 5, device="cuda", requires_grad=True)
    y = ours(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    assert y.device == x.device and g.device == x.device
