"""The notes' errors (docs/errata.md): each wrong form fails, each correct form passes.

For every derivative erratum a tiny Function carries the notes' formula; the
gradient check must reject it and accept ours from cs224n_nn.autograd. The
other rows (gradient-check snippet, dropout, L2, Adam, Xavier, backprop
indices, whitening, AdaGrad) test cs224n-nn's own code against the corrected
formula and show that the notes' printed form gives another value or shape.
A few tests, marked *Demonstration* in their docstrings, exercise only torch
or their own arithmetic to show what the notes' form does; every erratum
they illustrate also has a test of our code (docs/errata.md lists both).
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


# B:291-292 (typographic quotes) and S:430-431 (a bracket left open), as printed
BLOG_NDITER = "it = np.nditer(x, flags=[\u2019multi_index\u2019],\n                op_flags=[\u2019readwrite\u2019])"
SHOWMEAI_NDITER = "it = np.nditer(x, flags=['multi_index',\nop_flags=['readwrite'])"


def test_the_printed_snippet_does_not_run():
    """Demonstration (Python's compiler only): the printed lines of Snippet 2.1 do not compile."""
    # ShowMeAI section 2.1 prints this line; Python cannot assign to a call
    for line in (SNIPPET_FIRST_LINE, BLOG_NDITER, SHOWMEAI_NDITER):
        with pytest.raises(SyntaxError):
            compile(line, "<notes>", "exec")
    compile("it = np.nditer(x, flags=['multi_index'], op_flags=['readwrite'])", "<fixed>", "exec")


def test_our_numerical_gradient_covers_every_index_of_a_matrix():
    # what the snippet's np.nditer loop is for: every element of a 2-D x, against our analytic backward
    x = torch.randn(3, 4, dtype=f64)
    w = torch.randn(4, 2, dtype=f64)
    f = lambda x: F.tanh(F.affine(x, w.T)).sum()  # noqa: E731
    numeric = numerical_gradient(f, x)
    leaf = x.clone().requires_grad_()
    (analytic,) = torch.autograd.grad(f(leaf), leaf)
    assert numeric.shape == x.shape
    torch.testing.assert_close(numeric, analytic, rtol=1e-7, atol=1e-9)


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


def test_our_dropout_module_at_test_time_is_not_divided_by_p():
    from cs224n_nn import nn

    keep = 0.8
    layer = nn.Dropout(p=1 - keep)
    x = torch.linspace(0.5, 2, 40, dtype=f64)
    train_mean = layer(x.repeat(DRAWS, 1)).mean(0)  # training mode: the expectation is x
    layer.eval()
    test_out = layer(x)
    assert torch.equal(test_out, x)
    sampling_sd = x * math.sqrt((1 - keep) / keep / DRAWS)
    assert ((test_out - train_mean).abs() <= 5 * sampling_sd).all()
    assert ((x / keep - train_mean).abs() > 20 * sampling_sd).all()  # ShowMeAI's "divide by p" misses it


def test_the_notes_divide_by_p_at_test_time_does_not_match_training():
    """Demonstration (the test's own arithmetic, no cs224n-nn code): the notes' dropout without
    scaling in training has mean p x, which "divide by p" at test time does not reproduce."""
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
    """Demonstration (torch only): the gradient of the notes' lambda ||W||_F is lambda W / ||W||_F."""
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
    """Our lecun_normal_ has variance 1/fan_in, not Xavier's; the half that draws the notes' snippet
    itself with torch.randn is a demonstration (torch only)."""
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


# --------------------------------------------------------------------------
# Sigmoid layer, per neuron (B:31-33)
# --------------------------------------------------------------------------


def test_sigmoid_layer_per_neuron():
    from cs224n_nn import nn

    torch.manual_seed(0)
    layer, act = nn.Linear(4, 3).double(), nn.Sigmoid()
    x = torch.randn(5, 4, dtype=f64)
    ours = act(layer(x))
    w, b = layer.weight.detach(), layer.bias.detach()
    for i in range(3):
        pre = x @ w[i] + b[i]  # w^(i)T x + b_i
        torch.testing.assert_close(ours[:, i].detach(), 1 / (1 + torch.exp(-pre)))
        assert not torch.allclose(ours[:, i].detach(), 1 / (1 + torch.exp(pre)))  # the blog's B:31


def test_tanh_is_two_sigmoid_two_z_minus_one(z):
    torch.testing.assert_close(F.tanh(z), 2 * F.sigmoid(2 * z) - 1)  # B:428 prints 2 sigma(2x) - 1


# --------------------------------------------------------------------------
# Backprop indices (B:200, B:239, B:248, S:336, S:364, S:372)
# --------------------------------------------------------------------------


def two_layers():
    """z2 = W1 x + b1, a2 = tanh(z2), s = U^T a2 (the notes' network, section 5), with our modules."""
    from cs224n_nn import nn

    torch.manual_seed(1)
    first, second = nn.Linear(4, 3).double(), nn.Linear(3, 2).double()
    x = torch.randn(4, dtype=f64)
    z2 = first(x)
    z2.retain_grad()
    a2 = nn.Tanh()(z2)
    z3 = second(a2)
    z3.retain_grad()
    weights = torch.tensor([1.0, -2.0], dtype=f64)  # J = weights . z3, so delta^(3) = weights
    (weights * z3).sum().backward()
    return first, second, x, z2, a2, z3, weights


def test_bias_gradient_of_neuron_i_is_delta_i():
    first, second, x, z2, a2, z3, delta3 = two_layers()
    delta2 = (1 - a2.detach() ** 2) * (second.weight.detach().T @ delta3)  # f'(z) o (W^T delta)
    torch.testing.assert_close(first.bias.grad, delta2)  # dJ/db_i = delta_i
    torch.testing.assert_close(second.bias.grad, delta3)
    assert not torch.allclose(first.bias.grad, delta2[0].expand(3))  # B:200's delta_1 for every i


def test_weight_gradient_is_the_outer_product_delta_a():
    first, second, x, z2, a2, z3, delta3 = two_layers()
    a2 = a2.detach()
    torch.testing.assert_close(second.weight.grad, torch.outer(delta3, a2))  # [i, j] = delta_i a_j
    # S:336's delta_j a_j: entry (i, j) = delta3[j] * a2[j] needs as many deltas as activations
    # (2 against 3 here: it cannot even be formed); on the first two columns it is another matrix
    notes = torch.stack([delta3[:2] * a2[:2]] * 2)
    assert not torch.allclose(second.weight.grad[:, :2], notes)
    # B:239's sigma_1 a_1^T: one number where the gradient is a 2 x 3 matrix
    assert (delta3[0] * a2[0]).shape == () and second.weight.grad.shape == (2, 3)


def test_error_recursion_is_elementwise_f_prime_times_w_transpose_delta():
    first, second, x, z2, a2, z3, delta3 = two_layers()
    f_prime = 1 - a2.detach() ** 2  # tanh'(z) = 1 - tanh(z)^2
    back = second.weight.detach().T @ delta3
    torch.testing.assert_close(z2.grad, f_prime * back)  # delta^(k) = f'(z^(k)) o (W^T delta^(k+1))
    for j in range(3):  # B:248's single f'(z_j) for every element
        assert not torch.allclose(z2.grad, f_prime[j] * back)


# --------------------------------------------------------------------------
# The bias trick (S:55)
# --------------------------------------------------------------------------


def test_affine_is_the_bias_trick_with_w_and_b():
    torch.manual_seed(2)
    for n in (1, 4):
        x, w, b = torch.randn(n, dtype=f64), torch.randn(n, dtype=f64), torch.randn((), dtype=f64)
        ours = F.affine(x[None], w[None], b[None])[0, 0]
        torch.testing.assert_close(ours, torch.dot(torch.cat([w, b[None]]), torch.cat([x, torch.ones(1, dtype=f64)])))
        printed = torch.cat([w, x]), torch.cat([x, torch.ones(1, dtype=f64)])  # [w^T x] . [x 1]
        if n == 1:
            assert not torch.allclose(torch.dot(*printed), ours)  # w x + x: the bias is gone
        else:
            with pytest.raises(RuntimeError):
                torch.dot(*printed)  # lengths 2n and n + 1


# --------------------------------------------------------------------------
# Whitening (B:556, S:719)
# --------------------------------------------------------------------------


def test_pca_whitening_rotates_by_u_transpose_and_gives_unit_variance():
    from cs224n_nn.preprocess import PCAWhitening

    torch.manual_seed(3)
    n = 2000
    mixing = torch.tensor([[2.0, 0.0, 0.0], [1.5, 0.5, 0.0], [0.3, -1.0, 3.0]], dtype=f64)
    x = torch.randn(n, 3, dtype=f64) @ mixing.T + torch.tensor([5.0, -1.0, 2.0], dtype=f64)
    ours = PCAWhitening(eps=1e-12).fit(x)(x)
    torch.testing.assert_close(ours.T @ ours / n, torch.eye(3, dtype=f64), atol=1e-9, rtol=0)  # variance 1
    # the notes' recipe with examples as columns: X' = U S V^T
    xc = (x - x.mean(0)).T
    u, s, _ = torch.linalg.svd(xc, full_matrices=False)
    rotated = u.T @ xc  # U^T X'
    expected = (rotated * (math.sqrt(n) / s)[:, None]).T  # scaled by sqrt(N)/S: unit variance
    signs = torch.sign((ours * expected).sum(0))  # each principal direction is defined up to its sign
    torch.testing.assert_close(ours, expected * signs, atol=1e-8, rtol=0)
    notes_scale = (rotated / s[:, None]).T  # "divide by the singular values"
    torch.testing.assert_close(notes_scale.T @ notes_scale / n, torch.eye(3, dtype=f64) / n, atol=1e-12, rtol=0)
    printed = ((u @ xc) / s[:, None]).T  # "compute U X'": not the projection onto U's columns
    cov = printed.T @ printed / n
    assert (cov - torch.diag(torch.diagonal(cov))).abs().max() > 1e-3 / n  # still correlated


# --------------------------------------------------------------------------
# Adam's two betas (S:805-806)
# --------------------------------------------------------------------------


def test_adam_moments_use_beta1_and_beta2_not_one_beta():
    from cs224n_nn.optim import Adam

    beta1, beta2 = 0.8, 0.99
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=f64))
    optimizer = Adam([w], lr=0.01, betas=(beta1, beta2))
    grads = []
    for _ in range(2):
        optimizer.zero_grad()
        (w**2).sum().backward()
        grads.append(w.grad.clone())
        optimizer.step()
    g0, g_second = grads
    state = optimizer.state[w]
    torch.testing.assert_close(state["exp_avg"], beta1 * (1 - beta1) * g0 + (1 - beta1) * g_second)
    torch.testing.assert_close(state["exp_avg_sq"], beta2 * (1 - beta2) * g0**2 + (1 - beta2) * g_second**2)
    for beta in (beta1, beta2):  # ShowMeAI: m = beta m + (1 - beta1) g, v = beta v + (1 - beta2) g^2
        notes_m = beta * (1 - beta1) * g0 + (1 - beta1) * g_second
        notes_v = beta * (1 - beta2) * g0**2 + (1 - beta2) * g_second**2
        assert not (torch.allclose(state["exp_avg"], notes_m) and torch.allclose(state["exp_avg_sq"], notes_v))


# --------------------------------------------------------------------------
# AdaGrad: root of the sum, and a hand-set lr (B:626, B:666, S:790)
# --------------------------------------------------------------------------


def adagrad_steps(lr: float, steps: int = 6) -> torch.Tensor:
    """Step sizes of our AdaGrad under the constant gradient g = (1, -3)."""
    from cs224n_nn.optim import AdaGrad

    w = torch.nn.Parameter(torch.zeros(2, dtype=f64))
    optimizer = AdaGrad([w], lr=lr, eps=0.0)
    g = torch.tensor([1.0, -3.0], dtype=f64)
    sizes = []
    for _ in range(steps):
        before = w.detach().clone()
        optimizer.zero_grad()
        (g * w).sum().backward()
        optimizer.step()
        sizes.append((w.detach() - before).abs())
    return torch.stack(sizes)


def test_adagrad_divides_by_the_root_of_the_sum_not_the_rms():
    sizes = adagrad_steps(0.1)
    t = torch.arange(1, 7, dtype=f64)[:, None]
    torch.testing.assert_close(sizes, 0.1 / t.sqrt() * torch.ones(1, 2, dtype=f64))  # lr g / sqrt(t g^2)
    rms_rule = torch.full_like(sizes, 0.1)  # lr g / sqrt(mean g^2) = lr for a constant gradient
    assert not torch.allclose(sizes[1:], rms_rule[1:])


def test_adagrad_step_scales_with_its_hand_set_lr():
    torch.testing.assert_close(adagrad_steps(0.2), 2 * adagrad_steps(0.1))
