"""Tests for cs224n_nn.init: Xavier / LeCun draws checked against their formulas
(bounds, mean and variance within sampling error) and against torch.nn.init."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cs224n_nn.init import fan_in_and_fan_out, init_module_, lecun_normal_, xavier_normal_, xavier_uniform_

# Number of standard errors a sample statistic may stray from its expectation.
# With a fixed seed the test is deterministic; 5 SE would fail by chance about
# once in 1.7 million fresh seeds.
Z = 5.0


def assert_moments(w: torch.Tensor, var: float, fourth_moment: float) -> None:
    """Mean 0 and variance ``var`` within Z standard errors of the sample mean/variance."""
    x = w.double().flatten()
    n = x.numel()
    mean_se = math.sqrt(var / n)
    assert abs(x.mean().item()) < Z * mean_se, (x.mean().item(), mean_se)
    # The sample second moment estimates var with variance (E[x^4] - var^2) / n.
    var_se = math.sqrt((fourth_moment - var**2) / n)
    assert abs(x.pow(2).mean().item() - var) < Z * var_se, (x.pow(2).mean().item(), var, var_se)


def uniform_moments(bound: float) -> tuple[float, float]:
    return bound**2 / 3, bound**4 / 5  # E[x^2], E[x^4] of U[-a, a]


def normal_moments(std: float) -> tuple[float, float]:
    return std**2, 3 * std**4


SHAPES = [(300, 700), (700, 300), (64, 32, 5, 5), (40, 60, 7)]


@pytest.mark.parametrize("shape", SHAPES)
def test_fans_match_torch(shape):
    w = torch.empty(shape)
    assert fan_in_and_fan_out(w) == nn.init._calculate_fan_in_and_fan_out(w)


def test_fans_of_a_conv_kernel_include_the_receptive_field():
    assert fan_in_and_fan_out(torch.empty(16, 8, 3, 5)) == (8 * 15, 16 * 15)
    assert fan_in_and_fan_out(torch.empty(4, 6)) == (6, 4)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("gain", [1.0, 5.0 / 3.0])
def test_xavier_uniform_bounds_and_moments(shape, gain):
    w = xavier_uniform_(torch.empty(shape), gain=gain)
    fan_in, fan_out = fan_in_and_fan_out(w)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    assert w.abs().max().item() <= bound
    # with >= 200k draws the extremes come within 0.1% of the bound
    assert w.abs().max().item() > 0.999 * bound
    assert_moments(w, *uniform_moments(bound))
    # the notes' variance: 2 / (n_in + n_out), times gain^2
    assert math.isclose(uniform_moments(bound)[0], gain**2 * 2 / (fan_in + fan_out))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_xavier_normal_moments(shape, gain):
    w = xavier_normal_(torch.empty(shape), gain=gain)
    fan_in, fan_out = fan_in_and_fan_out(w)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    assert_moments(w, *normal_moments(std))


@pytest.mark.parametrize(
    "ours, theirs", [(xavier_uniform_, nn.init.xavier_uniform_), (xavier_normal_, nn.init.xavier_normal_)]
)
@pytest.mark.parametrize("shape", [(30, 50), (8, 4, 3, 3)])
def test_same_seed_gives_the_same_weights_as_torch(ours, theirs, shape):
    torch.manual_seed(123)
    mine = ours(torch.empty(shape), gain=1.5)
    torch.manual_seed(123)
    ref = theirs(torch.empty(shape), gain=1.5)
    torch.testing.assert_close(mine, ref, rtol=0, atol=0)


@pytest.mark.parametrize("ours, theirs", [(xavier_uniform_, nn.init.xavier_uniform_), (xavier_normal_, nn.init.xavier_normal_)])
def test_statistics_agree_with_torch_init(ours, theirs):
    # Independent draws (different seeds): the two sample variances must agree
    # within the sampling error of their difference.
    mine = ours(torch.empty(500, 400), generator=torch.Generator().manual_seed(1)).double()
    ref = theirs(torch.empty(500, 400), generator=torch.Generator().manual_seed(2)).double()
    n = mine.numel()
    var = ref.pow(2).mean().item()
    fourth = ref.pow(4).mean().item()
    se_of_difference = math.sqrt(2 * (fourth - var**2) / n)
    assert abs(mine.pow(2).mean().item() - var) < Z * se_of_difference
    assert abs(mine.mean().item() - ref.mean().item()) < Z * math.sqrt(2 * var / n)


@pytest.mark.parametrize("init", [xavier_uniform_, xavier_normal_, lecun_normal_])
def test_generator_reproducible_and_leaves_global_rng_alone(init):
    global_state = torch.get_rng_state()
    a = init(torch.empty(20, 10), generator=torch.Generator().manual_seed(7))
    b = init(torch.empty(20, 10), generator=torch.Generator().manual_seed(7))
    c = init(torch.empty(20, 10), generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(torch.get_rng_state(), global_state)


@pytest.mark.parametrize("init", [xavier_uniform_, xavier_normal_, lecun_normal_])
def test_global_rng_reproducible(init):
    torch.manual_seed(3)
    a = init(torch.empty(5, 6))
    torch.manual_seed(3)
    assert torch.equal(a, init(torch.empty(5, 6)))


@pytest.mark.parametrize("init", [xavier_uniform_, xavier_normal_, lecun_normal_])
def test_in_place_on_a_parameter_without_recording_autograd(init):
    p = nn.Parameter(torch.zeros(6, 4))
    out = init(p)
    assert out is p
    assert p.grad_fn is None and p.requires_grad
    assert p.abs().sum() > 0


@pytest.mark.parametrize("init", [xavier_uniform_, xavier_normal_, lecun_normal_])
@pytest.mark.parametrize("shape", [(), (5,)])
def test_fewer_than_two_dims_is_an_error_naming_tensor(init, shape):
    with pytest.raises(ValueError, match="tensor must have at least 2 dimensions"):
        init(torch.empty(shape))


@pytest.mark.parametrize("init", [xavier_uniform_, xavier_normal_, lecun_normal_])
@pytest.mark.parametrize("gain", [-1.0, float("nan"), float("inf")])
def test_bad_gain_is_an_error_naming_gain(init, gain):
    with pytest.raises(ValueError, match="gain"):
        init(torch.empty(3, 3), gain=gain)


@pytest.mark.parametrize("init", [xavier_uniform_, xavier_normal_, lecun_normal_])
def test_integer_tensor_is_an_error_naming_the_dtype(init):
    with pytest.raises(TypeError, match="floating-point.*int64"):
        init(torch.zeros(3, 3, dtype=torch.long))


@pytest.mark.parametrize("init", [xavier_uniform_, xavier_normal_, lecun_normal_])
def test_zero_element_tensor_is_left_alone(init):
    w = torch.empty(0, 5)
    assert init(w) is w


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_dtype_preserved(dtype):
    w = xavier_uniform_(torch.empty(400, 300, dtype=dtype))
    assert w.dtype == dtype
    bound = math.sqrt(6.0 / 700)
    # bfloat16 rounds to 8 mantissa bits: the bound can be rounded up by half an ulp
    assert w.double().abs().max().item() <= bound * (1 + 2**-8)
    if dtype == torch.float64:
        assert_moments(w, *uniform_moments(bound))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("init", [xavier_uniform_, xavier_normal_, lecun_normal_])
def test_cuda_tensor_and_generator(init):
    g = torch.Generator(device="cuda").manual_seed(0)
    w = init(torch.empty(300, 400, device="cuda"), generator=g)
    assert w.device.type == "cuda"
    assert abs(w.double().mean().item()) < Z * w.double().std().item() / math.sqrt(w.numel())


# -- LeCun normal: what the notes' "Xavier" snippet really is ---------------------


@pytest.mark.parametrize("shape", [(200, 1000), (1000, 200), (32, 16, 5, 5)])
def test_lecun_normal_variance_is_one_over_fan_in(shape):
    w = lecun_normal_(torch.empty(shape))
    fan_in, _ = fan_in_and_fan_out(w)
    assert_moments(w, *normal_moments(1 / math.sqrt(fan_in)))


def test_notes_snippet_is_lecun_normal_not_xavier():
    # The notes: W = randn(fan_in, fan_out) / sqrt(fan_in), in numpy's x @ W
    # layout. torch's layout is the transpose, (fan_out, fan_in), and
    # lecun_normal_ on it draws the same numbers from the same generator state.
    fan_in, fan_out = 1000, 200
    g = torch.Generator().manual_seed(0)
    snippet = torch.randn(fan_in, fan_out, generator=g, dtype=torch.float64) / math.sqrt(fan_in)
    g.manual_seed(0)
    lecun = lecun_normal_(torch.empty(fan_out, fan_in, dtype=torch.float64), generator=g)
    torch.testing.assert_close(lecun.flatten(), snippet.flatten())
    # Its variance is 1/fan_in = 1e-3, while Xavier's is 2/(fan_in+fan_out) ~ 1.67e-3.
    assert_moments(snippet, *normal_moments(1 / math.sqrt(fan_in)))
    xavier_var = 2 / (fan_in + fan_out)
    se = math.sqrt(2 * (1 / fan_in) ** 2 / snippet.numel())
    assert abs(snippet.pow(2).mean().item() - xavier_var) > 100 * se


# -- init_module_ ----------------------------------------------------------------


class DuckLinear(nn.Module):
    """A linear layer that is not torch.nn.Linear but has its attribute names,
    as cs224n_nn.nn.Linear does."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.full((out_features, in_features), 9.0))
        self.bias = nn.Parameter(torch.full((out_features,), 9.0)) if bias else None

    def forward(self, x):
        return x @ self.weight.T + (0 if self.bias is None else self.bias)


def make_model():
    embedding = nn.Embedding(1000, 50, padding_idx=0)
    return nn.ModuleDict(
        {
            "embedding": embedding,
            "hidden": nn.Linear(250, 300),
            "duck": DuckLinear(300, 200),
            "nobias": nn.Linear(200, 100, bias=False),
            "norm": nn.LayerNorm(100),
            "out": nn.Linear(100, 5),
        }
    )


def test_init_module_xavier_weights_zero_biases():
    model = make_model()
    before_embedding = model["embedding"].weight.detach().clone()
    before_norm = [p.detach().clone() for p in model["norm"].parameters()]
    with torch.no_grad():
        for name in ("hidden", "out"):
            model[name].bias.fill_(3.0)
    assert init_module_(model, gain=2.0) is model
    for name in ("hidden", "duck", "nobias", "out"):
        layer = model[name]
        bound = 2.0 * math.sqrt(6.0 / (layer.in_features + layer.out_features))
        assert layer.weight.abs().max().item() <= bound
        assert layer.weight.abs().max().item() > 0.9 * bound
        if layer.bias is not None:
            assert torch.equal(layer.bias, torch.zeros_like(layer.bias))
    big = model["hidden"].weight
    assert_moments(big, *uniform_moments(2.0 * math.sqrt(6.0 / 550)))
    # embeddings and other modules are left as they were
    assert torch.equal(model["embedding"].weight, before_embedding)
    for p, q in zip(model["norm"].parameters(), before_norm):
        assert torch.equal(p, q)


def test_init_module_embeddings_xavier_option_keeps_padding_row_zero():
    model = make_model()
    init_module_(model, embeddings="xavier")
    weight = model["embedding"].weight
    bound = math.sqrt(6.0 / (50 + 1000))
    assert weight.abs().max().item() <= bound
    assert torch.equal(weight[0], torch.zeros(50))
    assert weight[1:].abs().max().item() > 0.99 * bound


def test_init_module_is_reproducible_with_a_generator():
    a = init_module_(make_model(), generator=torch.Generator().manual_seed(5))
    b = init_module_(make_model(), generator=torch.Generator().manual_seed(5))
    for p, q in zip(a.parameters(), b.parameters()):
        if p.shape != (1000, 50):  # embeddings keep their own (different) random init
            assert torch.equal(p, q)


def test_init_module_shared_layer_is_initialised_once():
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.Tanh(), shared)
    torch.manual_seed(0)
    init_module_(model)
    torch.manual_seed(0)
    expected = xavier_uniform_(torch.empty(4, 4))
    assert torch.equal(shared.weight, expected)


def test_init_module_with_cs224n_linear():
    import cs224n_nn.nn as cnn

    model = nn.Sequential(cnn.Linear(30, 20), cnn.Linear(20, 10))
    init_module_(model)
    for layer in model:
        bound = math.sqrt(6.0 / (layer.in_features + layer.out_features))
        assert layer.weight.abs().max().item() <= bound
        assert torch.equal(layer.bias, torch.zeros_like(layer.bias))


def test_init_module_bad_option():
    with pytest.raises(ValueError, match="embeddings"):
        init_module_(make_model(), embeddings="glove")
    with pytest.raises(ValueError, match="gain"):
        init_module_(make_model(), gain=-1)


def test_init_module_lazy_linear_needs_a_forward_pass_first():
    model = nn.Sequential(nn.LazyLinear(4))
    with pytest.raises(ValueError, match="forward pass"):
        init_module_(model)
    model(torch.randn(2, 6))
    init_module_(model)
    assert model[0].weight.abs().max().item() <= math.sqrt(6.0 / 10)
