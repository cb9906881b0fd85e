r"""The notes' six element-wise activations (notes section 7.4 "Neuron Unit").

Each Function computes its forward with torch's fused element-wise kernel for
the same formula and writes its derivative by hand in ``backward``. What each
saves is the least its derivative needs: the output ``y`` where ``f'`` is a
function of it (sigmoid, tanh, ReLU), the input otherwise, and nothing at all
when the input does not require a gradient.

Kinks (any subgradient is valid there; we match torch so twin comparisons are
exact): ``relu'(0) = 0``, ``hardtanh'`` is 0 at exactly ``min_val`` and
``max_val``, ``leaky_relu'(0) = negative_slope``.

Speed: the backward of sigmoid and tanh runs two element-wise kernels on a
fresh temporary. When the caller asked for ``create_graph`` (grad mode is on
inside ``backward``) the same formula is written with out-of-place ops so that
autograd can differentiate it again (double backward, ``gradgradcheck``).
"""

from __future__ import annotations

import torch
from torch.autograd import Function

from . import _validate


class Sigmoid(Function):
    r"""Logistic sigmoid, notes sections 1 and 7.4.

    ``y = 1 / (1 + exp(-z))``; ``dy/dz = y (1 - y)``. (The notes print the
    derivative as ``-exp(-z)/(1+exp(-z))``; see docs/errata.md.) Saves ``y``.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        _validate.floating(x, "input")
        return torch.sigmoid(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        gy = grad * y
        # grad * y * (1 - y) == gy - gy * y: one fused multiply-add on gy.
        if torch.is_grad_enabled():
            return torch.addcmul(gy, gy, y, value=-1)
        return gy.addcmul_(gy, y, value=-1)


class Tanh(Function):
    r"""Hyperbolic tangent, notes section 7.4 (``tanh(z) = 2 sigma(2z) - 1``, section 9).

    ``y = (exp(z) - exp(-z)) / (exp(z) + exp(-z))``; ``dy/dz = 1 - y^2``. Saves ``y``.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        _validate.floating(x, "input")
        return torch.tanh(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        gy = grad * y
        # grad * (1 - y^2) == grad - gy * y.
        if torch.is_grad_enabled():
            return torch.addcmul(grad, gy, y, value=-1)
        return torch.addcmul(grad, gy, y, value=-1, out=gy)


class HardTanh(Function):
    r"""Hard tanh, notes section 7.4: ``y = min_val`` for ``z < min_val``, ``z`` in between,
    ``max_val`` above (the notes' ``-1 : z < 1`` is a typo for ``z < -1``).

    ``dy/dz = 1`` for ``min_val < z < max_val`` and 0 otherwise, including at
    exactly ``min_val`` and ``max_val`` (torch's choice; the notes use the closed
    interval). NaN inputs pass the gradient through, as in torch. Saves ``z``.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x, min_val=-1.0, max_val=1.0):
        _validate.floating(x, "input")
        min_val, max_val = _validate.hardtanh_bounds(min_val, max_val)
        return torch.clamp(x, min_val, max_val)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, min_val, max_val = inputs
        ctx.bounds = (float(min_val), float(max_val))
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        low, high = ctx.bounds
        saturated = torch.logical_or(x <= low, x >= high)
        return grad.masked_fill(saturated, 0), None, None


class SoftSign(Function):
    r"""Soft sign, notes section 7.4: ``y = z / (1 + |z|)``.

    ``dy/dz = 1 / (1 + |z|)^2`` (the notes print ``sgn(z)/(1+z)^2``; see
    docs/errata.md). Saves ``z``: ``1 - |y|`` would give the same value but
    loses its relative precision where ``|y|`` rounds to 1.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        _validate.floating(x, "input")
        return x / (1 + x.abs())

    @staticmethod
    def setup_context(ctx, inputs, output):
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        if torch.is_grad_enabled():
            return grad / (1 + x.abs()).square()
        denom = x.abs().add_(1).square_()
        return torch.div(grad, denom, out=denom)


class ReLU(Function):
    r"""Rectified linear unit, notes section 7.4: ``y = max(z, 0)``.

    ``dy/dz = 1`` for ``z > 0`` and 0 otherwise (``relu'(0) = 0``, as torch).
    Saves ``y`` (``y > 0`` exactly when ``z > 0``); a NaN input passes its
    gradient through, as in torch.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        _validate.floating(x, "input")
        return torch.relu(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad.masked_fill(y <= 0, 0)


class LeakyReLU(Function):
    r"""Leaky ReLU, notes section 7.4: ``y = z`` for ``z > 0``, ``k z`` otherwise (``k = negative_slope``).

    ``dy/dz = 1`` for ``z > 0`` and ``k`` otherwise, so ``leaky_relu'(0) = k``
    (torch's choice). Saves ``z`` (with ``k < 0`` the sign of ``y`` does not
    tell the branch).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x, negative_slope=0.01):
        _validate.floating(x, "input")
        negative_slope = _validate.real(negative_slope, "negative_slope")
        return torch.nn.functional.leaky_relu(x, negative_slope)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, negative_slope = inputs
        ctx.negative_slope = float(negative_slope)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return torch.where(x > 0, grad, grad * ctx.negative_slope), None
