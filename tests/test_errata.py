"""The notes' errors (docs/errata.md): each wrong form fails, each correct form passes.

For every derivative erratum a tiny Function carries the notes' formula; the
gradient check must reject it and accept ours from cs224n_nn.autograd. The
other rows (gradient-check snippet, dropout, L2, Adam, Xavier) are checked by
what goes wrong with the notes' version.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from cs224n_nn import autograd
from cs224n_nn import functional as F
from cs224n_nn.gradcheck import check_function, numerical_gradient

f64 = torch.float64


def passes(fn, x: torch.Tensor) -> bool:
    """The notes' check and torch's gradcheck must agree; return their verdict."""
    notes = check_function(fn, x).ok
    torch_ = torch.autograd.gradcheck(fn, (x,), raise_exception=False)
    assert notes == torch_, "the notes' check and torch.autograd.gradcheck disagree"
    return notes


def clear_of(x: torch.Tensor, *kinks: float, gap: float = 0.1) -> torch.Tensor:
    for kink in kinks:
        x = torch.where((x - kink).abs() < gap, x + 2.5 * gap, x)
    return x


@pytest.fixture
def z() -> torch.Tensor:
    """Points on both sides of 0 and of +-1, none on a kink."""
    return clear_of(torch.linspace(-3, 3, 25, dtype=f64), -1.0, 0.0, 1.0).requires_grad_()


def uses(out: torch.Tensor, function: type) -> bool:
    return getattr(type(out.grad_fn), "_forward_cls", None) is function


# --------------------------------------------------------------------------
# The notes' formulas as Functions
# --------------------------------------------------------------------------


class NotesSigmoidVectorForm(torch.autograd.Function):
    """Notes section 2: sigma(z)_i = 1/(1+exp(z_i)) (sign lost), with sigma' = sigma(1-sigma)."""

    @staticmethod
    def forward(ctx, z):
        s = 1 / (1 + torch.exp(z))
        ctx.save_for_backward(s)
        return s

    @staticmethod
    def backward(ctx, grad):
        (s,) = ctx.saved_tensors
        return grad * s * (1 - s)


class NotesSigmoidDerivative(torch.autograd.Function):
    """Notes section 7.4: sigma'(z) = -exp(-z)/(1+exp(-z))."""

    @staticmethod
    def forward(ctx, z):
        ctx.save_for_backward(z)
        return 1 / (1 + torch.exp(-z))

    @staticmethod
    def backward(ctx, grad):
        (z,) = ctx.saved_tensors
        return grad * -torch.exp(-z) / (1 + torch.exp(-z))


class NotesHardTanh(torch.autograd.Function):
    """ShowMeAI section 2.4: the first case reads -1 for z < 1 (so it covers (-1, 1) too)."""

    @staticmethod
    def forward(ctx, z):
        ctx.save_for_backward(z)
        # cases in the order printed; the first that holds wins
        return torch.where(z < 1, -torch.ones_like(z), torch.where(z <= 1, z, torch.ones_like(z)))

    @staticmethod
    def backward(ctx, grad):
        (z,) = ctx.saved_tensors
        return grad * ((z >= -1) & (z <= 1)).to(grad.dtype)


class NotesSoftSign(torch.autograd.Function):
    """Notes section 7.4: softsign'(z) = sgn(z)/(1+z)^2."""

    @staticmethod
    def forward(ctx, z):
        ctx.save_for_backward(z)
        return z / (1 + z.abs())

    @staticmethod
    def backward(ctx, grad):
        (z,) = ctx.saved_tensors
        return grad * torch.sign(z) / (1 + z) ** 2


# --------------------------------------------------------------------------
# Derivative errata
# --------------------------------------------------------------------------


def test_sigmoid_vector_form(z):
    assert not passes(NotesSigmoidVectorForm.apply, z)
    assert passes(F.sigmoid, z)
    assert uses(F.sigmoid(z), autograd.Sigmoid)
    torch.testing.assert_close(F.sigmoid(z), 1 / (1 + torch.exp(-z)))
    # the notes' form is sigma(-z), a mirror image: it falls where sigma rises
    torch.testing.assert_close(NotesSigmoidVectorForm.apply(z), F.sigmoid(-z))


def test_sigmoid_derivative(z):
    assert not passes(NotesSigmoidDerivative.apply, z)
    assert passes(F.sigmoid, z)
    # the notes' second equality is the right one: exp(-z)/(1+exp(-z))^2 = s(1-s)
    (grad,) = torch.autograd.grad(F.sigmoid(z).sum(), z)
    s = torch.sigmoid(z.detach())
    torch.testing.assert_close(grad, torch.exp(-z.detach()) / (1 + torch.exp(-z.detach())) ** 2)
    torch.testing.assert_close(grad, s * (1 - s))


def test_hard_tanh_cases(z):
    assert not passes(NotesHardTanh.apply, z)
    assert passes(F.hardtanh, z)
    assert uses(F.hardtanh(z), autograd.HardTanh)
    torch.testing.assert_close(F.hardtanh(z), torch.clamp(z, -1, 1))
    # the misprint changes the function itself on (-1, 1)
    inside = torch.tensor([-0.5, 0.0, 0.5], dtype=f64)
    assert torch.equal(NotesHardTanh.apply(inside), -torch.ones(3, dtype=f64))


def test_soft_sign_derivative(z):
    assert not passes(NotesSoftSign.apply, z)
    assert passes(F.softsign, z)
    assert uses(F.softsign(z), autograd.SoftSign)
    # sgn(z)/(1+z)^2 equals 1/(1+|z|)^2 for z > 0: the error shows only for z < 0
    positive = z.detach()[z.detach() > 0].clone().requires_grad_()
    negative = z.detach()[z.detach() < 0].clone().requires_grad_()
    assert passes(NotesSoftSign.apply, positive)
    assert not passes(NotesSoftSign.apply, negative)
    (grad,) = torch.autograd.grad(F.softsign(z).sum(), z)
    torch.testing.assert_close(grad, 1 / (1 + z.detach().abs()) ** 2)


# --------------------------------------------------------------------------
# The kink convention (matches torch)
# --------------------------------------------------------------------------


def grad_at(fn, points):
    x = torch.tensor(points, dtype=f64, requires_grad=True)
    (grad,) = torch.autograd.grad(fn(x).sum(), x)
    return grad


def test_relu_derivative_at_zero_is_zero():
    torch.testing.assert_close(grad_at(F.relu, [-1.0, 0.0, -0.0, 1.0]), torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=f64))
    torch.testing.assert_close(grad_at(F.relu, [0.0]), grad_at(torch.relu, [0.0]))


@pytest.mark.parametrize("min_val, max_val", [(-1.0, 1.0), (-2.0, 0.5)])
def test_hardtanh_derivative_at_its_corners_is_zero(min_val, max_val):
    points = [min_val - 0.5, min_val, (min_val + max_val) / 2, max_val, max_val + 0.5]
    ours = grad_at(lambda x: F.hardtanh(x, min_val, max_val), points)
    torch.testing.assert_close(ours, torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0], dtype=f64))
    torch.testing.assert_close(ours, grad_at(lambda x: torch.nn.functional.hardtanh(x, min_val, max_val), points))


def test_hardtanh_corners_differ_from_the_notes_closed_interval():
    # the notes write 1 on -1 <= z <= 1; we (and torch) take 0 at the two corners
    corners = [-1.0, 1.0]
    torch.testing.assert_close(grad_at(NotesHardTanh.apply, corners), torch.ones(2, dtype=f64))
    torch.testing.assert_close(grad_at(F.hardtanh, corners), torch.zeros(2, dtype=f64))


@pytest.mark.parametrize("slope", [0.01, 0.2])
def test_leaky_relu_derivative_at_zero_is_the_slope(slope):
    ours = grad_at(lambda x: F.leaky_relu(x, slope), [-1.0, 0.0, 1.0])
    torch.testing.assert_close(ours, torch.tensor([slope, slope, 1.0], dtype=f64))
    torch.testing.assert_close(ours, grad_at(lambda x: torch.nn.functional.leaky_relu(x, slope), [-1.0, 0.0, 1.0]))


def test_softsign_derivative_at_zero_is_one():
    ours = grad_at(F.softsign, [0.0, -0.0])
    torch.testing.assert_close(ours, torch.ones(2, dtype=f64))
    torch.testing.assert_close(ours, grad_at(torch.nn.functional.softsign, [0.0, -0.0]))
    assert grad_at(NotesSoftSign.apply, [0.0]).item() == 0.0  # sgn(0) = 0 in the notes' formula


# --------------------------------------------------------------------------
# The gradient-check snippet
# --------------------------------------------------------------------------

SNIPPET_FIRST_LINE = "f(x) = f(x) # evaluate function value at original point"


def test_the_printed_snippet_does_not_run():
    # ShowMeAI section 2.1 prints this line; Python cannot assign to a call
    with pytest.raises(SyntaxError):
        compile(SNIPPET_FIRST_LINE, "<notes>", "exec")


def notes_snippet_in_torch(f, x):
    """The notes' Snippet 2.1 line for line, with numpy swapped for torch.

    ``old_value = x[ix]`` copies in numpy but is a *view* in torch, so the
    ``x - h`` evaluation silently becomes an evaluation at ``x``.
    """
    fx = f(x)  # evaluate function value at original point  # noqa: F841
    grad = torch.zeros(x.shape, dtype=x.dtype)
    h = 0.00001
    for ix in itertools.product(*map(range, x.shape)):  # np.nditer's multi_index
        old_value = x[ix]
        x[ix] = old_value + h  # increment by h
        fxh_left = f(x)  # evaluate f(x + h)
        x[ix] = old_value - h  # decrement by h
        fxh_right = f(x)  # evaluate f(x - h)
        x[ix] = old_value  # restore to previous value (very important!)
        grad[ix] = (fxh_left - fxh_right) / (2 * h)  # the slope
    return grad


def test_the_snippet_ported_to_torch_halves_the_gradient_ours_does_not():
    x = torch.tensor([0.3, -1.2, 2.0], dtype=f64)
    f = lambda x: (x**3).sum()  # noqa: E731
    true = 3 * x**2
    torch.testing.assert_close(notes_snippet_in_torch(f, x.clone()), true / 2, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(numerical_gradient(f, x), true, rtol=1e-9, atol=1e-9)


def test_the_texts_centred_formula_is_the_one_sided_one():
    # (J(theta+) - J(theta)) / eps is what the blog prints under "centred":
    # its error shrinks like eps, the true centred one like eps^2
    x = torch.tensor([0.5, 1.5], dtype=f64)

    def error(method):
        return (numerical_gradient(lambda x: torch.exp(x).sum(), x, 1e-3, method=method) - torch.exp(x)).abs().max()

    assert error("central") < error("forward") / 100


# --------------------------------------------------------------------------
# Dropout at test time
# --------------------------------------------------------------------------

DRAWS = 4000


def test_inverted_dropout_keeps_the_expectation_and_eval_is_identity():
    keep = 0.8  # the notes' p (keep probability); torch's p is the drop probability 1 - keep
    x = torch.linspace(-2, 2, 40, dtype=f64)
    samples = F.dropout(x.repeat(DRAWS, 1), p=1 - keep, training=True)
    assert uses(F.dropout(x.clone().requires_grad_(), p=1 - keep), autograd.Dropout)
    # each element is x/keep with probability keep, else 0: sd of one draw = |x| sqrt((1-keep)/keep)
    sampling_sd = x.abs() * math.sqrt((1 - keep) / keep / DRAWS)
    assert ((samples.mean(0) - x).abs() <= 5 * sampling_sd + 1e-12).all()
    assert (samples == 0).double().mean().item() == pytest.approx(1 - keep, abs=0.01)
    assert torch.equal(F.dropout(x, p=1 - keep, training=False), x)


def test_the_notes_divide_by_p_at_test_time_does_not_match_training():
    keep = 0.8
    x = torch.linspace(0.5, 2, 40, dtype=f64)
    mask = torch.rand(DRAWS, 40, dtype=f64) < keep
    train_mean = (x * mask).mean(0)  # the notes' training: keep with probability p, no scaling
    sampling_sd = x * math.sqrt(keep * (1 - keep) / DRAWS)
    assert ((train_mean - keep * x).abs() <= 5 * sampling_sd).all()  # E = p x
    notes_test = x / keep  # "divide by p" at test time
    assert ((notes_test - train_mean).abs() > 20 * sampling_sd).all()
    right_test = x * keep  # multiply by p instead
    assert ((right_test - train_mean).abs() <= 5 * sampling_sd).all()


# --------------------------------------------------------------------------
# L2: squared Frobenius norm, biases excluded
# --------------------------------------------------------------------------


def test_l2_penalty_is_squared_and_leaves_biases_alone():
    from cs224n_nn.regularize import l2_penalty

    lam = 0.03
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2)).double()
    weights = [model[0].weight, model[2].weight]
    penalty = l2_penalty(model, lam)
    torch.testing.assert_close(penalty, lam * sum(torch.linalg.matrix_norm(w) ** 2 for w in weights))
    penalty.backward()
    for w in weights:
        torch.testing.assert_close(w.grad, 2 * lam * w.detach())
    for b in (model[0].bias, model[2].bias):
        assert b.grad is None or torch.count_nonzero(b.grad) == 0


def test_the_unsquared_norm_has_another_gradient():
    lam = 0.03
    w = torch.randn(3, 4, dtype=f64, requires_grad=True)
    (notes,) = torch.autograd.grad(lam * torch.linalg.matrix_norm(w), w)  # lambda ||W||_F
    torch.testing.assert_close(notes, lam * w.detach() / torch.linalg.matrix_norm(w.detach()))
    assert not torch.allclose(notes, 2 * lam * w.detach())


# --------------------------------------------------------------------------
# Adam: beta1/beta2 and bias correction
# --------------------------------------------------------------------------


def adam_steps(optimizer_cls, steps=5, **kwargs):
    """Parameters after ``steps`` steps on J = sum(c * w^2) from a fixed start."""
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=f64))
    c = torch.tensor([1.0, 0.1, 10.0, 0.01], dtype=f64)
    optimizer = optimizer_cls([w], **kwargs)
    trajectory = []
    for _ in range(steps):
        optimizer.zero_grad()
        (c * w**2).sum().backward()
        optimizer.step()
        trajectory.append(w.detach().clone())
    return torch.stack(trajectory)


def test_adam_with_bias_correction_matches_torch_step_for_step():
    from cs224n_nn.optim import Adam

    ours = adam_steps(Adam, lr=0.01, betas=(0.9, 0.999), eps=1e-8)
    torch.testing.assert_close(ours, adam_steps(torch.optim.Adam, lr=0.01, betas=(0.9, 0.999), eps=1e-8))
    # the corrected first step is lr * g / (|g| + eps): about lr * sign(g)
    start = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=f64)
    torch.testing.assert_close(start - ours[0], 0.01 * torch.sign(start), rtol=1e-6, atol=0)


def test_adam_without_bias_correction_is_the_notes_snippet_and_differs():
    from cs224n_nn.optim import Adam

    lr, beta1, beta2, eps = 0.01, 0.9, 0.999, 1e-8
    notes = adam_steps(Adam, lr=lr, betas=(beta1, beta2), eps=eps, bias_correction=False)
    assert not torch.allclose(notes, adam_steps(torch.optim.Adam, lr=lr, betas=(beta1, beta2), eps=eps))
    # Snippet 2.5 from m = v = 0: m = (1-beta1) g, v = (1-beta2) g^2, x -= lr m / (sqrt(v) + eps)
    start = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=f64)
    g = 2 * torch.tensor([1.0, 0.1, 10.0, 0.01], dtype=f64) * start
    m, v = (1 - beta1) * g, (1 - beta2) * g**2
    torch.testing.assert_close(notes[0], start - lr * m / (v.sqrt() + eps))
    # With the default betas the uncorrected first step is (1-beta1)/sqrt(1-beta2) = 3.16 times
    # lr: v's bias towards 0 outweighs m's, so it is larger, not smaller (Kingma & Ba, section 3)
    ratio = (start - notes[0]).abs() / lr
    torch.testing.assert_close(ratio, torch.full((4,), (1 - beta1) / math.sqrt(1 - beta2), dtype=f64), rtol=1e-5, atol=0)


# --------------------------------------------------------------------------
# "Xavier" snippet is LeCun normal
# --------------------------------------------------------------------------

FAN_OUT, FAN_IN = 100, 300  # torch's weight layout: (out_features, in_features)


def sample_variance(w: torch.Tensor) -> float:
    return w.double().var().item()


def test_xavier_uniform_bound_and_variance():
    from cs224n_nn.init import xavier_uniform_

    w = xavier_uniform_(torch.empty(FAN_OUT, FAN_IN))
    bound = math.sqrt(6 / (FAN_IN + FAN_OUT))
    assert w.abs().max().item() <= bound * (1 + 1e-6)
    assert w.abs().max().item() > 0.99 * bound  # 30,000 draws reach the edge
    # the sample variance of n uniform draws has relative sd sqrt(0.8/n) ~ 0.5%
    assert sample_variance(w) == pytest.approx(2 / (FAN_IN + FAN_OUT), rel=0.03)


def test_the_notes_xavier_snippet_is_lecun_normal():
    from cs224n_nn.init import lecun_normal_

    snippet = torch.randn(FAN_IN, FAN_OUT) / math.sqrt(FAN_IN)  # the notes' "Xavier"
    lecun = lecun_normal_(torch.empty(FAN_OUT, FAN_IN))
    for w in (snippet, lecun):
        # sd of a normal sample variance: sqrt(2/n) relative ~ 0.8%
        assert sample_variance(w) == pytest.approx(1 / FAN_IN, rel=0.04)
        assert sample_variance(w) != pytest.approx(2 / (FAN_IN + FAN_OUT), rel=0.2)
        assert w.abs().max().item() > math.sqrt(6 / (FAN_IN + FAN_OUT))  # unbounded, unlike Xavier
    # and its comment's "1e-2 standard deviation" is neither
    assert math.sqrt(sample_variance(snippet)) == pytest.approx(1 / math.sqrt(FAN_IN), rel=0.04)
