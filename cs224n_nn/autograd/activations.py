r"""The notes' six element-wise activations (notes section 7.4 "Neuron Unit").

Each Function computes its forward with torch's fused element-wise kernel for
the same formula and writes its derivative by hand in ``backward``. What each
saves is the least its derivative needs: the output ``y`` where ``f'`` is a
function of it (sigmoid, tanh, ReLU), the input otherwise, and nothing at all
when the input does not require a gradient.

Kinks (any subgradient is valid there; we match torch so twin comparisons are
exact): ``relu'(0) = 0``, ``hardtanh'`` is 0 at exactly ``min_val`` and
``max_val``, ``leaky_relu'(0) = negative_slope``.

Speed: each backward is two or three element-wise kernels, reusing a fresh
temporary in place. On large contiguous float32/float64 tensors (at least
``_fused.min_numel`` elements, outside ``create_graph``, ``torch.compile``
tracing and ``torch.func`` transforms) the same formula runs as one loop
compiled by ``torch.compile`` (:mod:`._fused`; ``CS224N_NN_FUSED=0`` turns it
off), falling back to the eager kernels wherever that is unavailable; it
gives the eager result bit for bit in float32 (float64: within one ulp of the
upstream gradient, see tests/test_fused_backward.py). When the caller asked
for ``create_graph`` (grad mode is on inside ``backward``) the same formula is
written with out-of-place ops (the ``_*_grad`` functions, which are also what
gets compiled) so that autograd can differentiate it again (double backward,
``gradgradcheck``).
Masks are 0/1 tensors of the input's dtype, written by the comparison itself
(:func:`_indicator`): on CPU a bool mask fed to ``where``, ``masked_fill`` or a
multiplication, or cast to float, runs 10-25 times slower than the arithmetic.
The masked products are exact: ``g - g*1 = 0``, ``g*1 = g``, ``g*k = g*k``.
"""

from __future__ import annotations

import torch

from ._function import HandWrittenFunction
from . import _fused, _validate


def _indicator(compare, a: torch.Tensor, b, *, reuse_a: bool = False) -> torch.Tensor:
    """``compare(a, b)`` as 1.0/0.0 in ``a``'s dtype (never differentiated).

    The fast path writes the comparison into a float tensor with ``out=``
    (into ``a`` itself when the caller says it is a temporary: on CPU every
    fresh large tensor costs page faults, so backward allocates as little as
    torch's own). With grad mode on (double backward, and ``torch.func``
    transforms, which have no batching rule for ``out=``) it casts a bool mask.
    """
    if torch.is_grad_enabled():
        return compare(a, b).to(a.dtype)
    return compare(a, b, out=a if reuse_a else torch.empty_like(a, memory_format=torch.contiguous_format))


def _save_output(ctx, inputs, output):
    """``setup_context`` of the activations whose derivative is a function of ``y``."""
    if ctx.needs_input_grad[0]:
        ctx.save_for_backward(output)


class Sigmoid(HandWrittenFunction):
    r"""Logistic sigmoid, notes sections 1 and 7.4.

    ``y = 1 / (1 + exp(-z))``; ``dy/dz = y (1 - y)``. (The notes print the
    derivative as ``-exp(-z)/(1+exp(-z))``; see docs/errata.md.) Saves ``y``.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        _validate.floating(x, "input")
        return torch.sigmoid(x)

    setup_context = staticmethod(_save_output)

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return _SIGMOID_KERNEL.backward(grad, y, _sigmoid_grad_inplace)


def _sigmoid_grad(grad, y):
    # grad * y * (1 - y) == gy - gy * y: one fused multiply-add on gy.
    gy = grad * y
    return torch.addcmul(gy, gy, y, value=-1)


def _sigmoid_grad_inplace(grad, y):
    gy = grad * y
    return gy.addcmul_(gy, y, value=-1)


_SIGMOID_KERNEL = _fused.Kernel("sigmoid", _sigmoid_grad)


class Tanh(HandWrittenFunction):
    r"""Hyperbolic tangent, notes section 7.4 (``tanh(z) = 2 sigma(2z) - 1``, section 9).

    ``y = (exp(z) - exp(-z)) / (exp(z) + exp(-z))``; ``dy/dz = 1 - y^2``. Saves ``y``.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        _validate.floating(x, "input")
        return torch.tanh(x)

    setup_context = staticmethod(_save_output)

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return _TANH_KERNEL.backward(grad, y, _tanh_grad_inplace)


def _tanh_grad(grad, y):
    # grad * (1 - y^2) == grad - gy * y.
    gy = grad * y
    return torch.addcmul(grad, gy, y, value=-1)


def _tanh_grad_inplace(grad, y):
    gy = grad * y
    return torch.addcmul(grad, gy, y, value=-1, out=gy)


_TANH_KERNEL = _fused.Kernel("tanh", _tanh_grad)


class HardTanh(HandWrittenFunction):
    r"""Hard tanh, notes section 7.4: ``y = min_val`` for ``z < min_val``, ``z`` in between,
    ``max_val`` above (the notes' ``-1 : z < 1`` is a typo for ``z < -1``).

    ``dy/dz = 1`` for ``min_val < z < max_val`` and 0 otherwise, including at
    exactly ``min_val`` and ``max_val`` (torch's choice; the notes use the closed
    interval). NaN inputs pass the gradient through, as in torch. Saves ``y``:
    ``z`` is strictly inside exactly when ``y`` is strictly inside.
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
            ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return _HARDTANH_KERNEL.backward(grad, y, _hardtanh_grad_inplace, *ctx.bounds), None, None


def _hardtanh_grad(grad, y, low, high):
    # grad * (1 - saturated); saturated is 1.0 where y <= low or y >= high (never for NaN).
    # max of two 0/1 indicators rather than a bool "or": the compiled float64
    # loop of the "or" form was measured 4x slower (not vectorised).
    saturated = torch.maximum((y <= low).to(grad.dtype), (y >= high).to(grad.dtype))
    return torch.addcmul(grad, grad, saturated, value=-1)


def _hardtanh_grad_inplace(grad, y, low, high):
    if low == -high:  # the usual symmetric bounds: one comparison
        saturated = _indicator(torch.ge, y.abs(), high, reuse_a=True)
    else:
        saturated = torch.maximum(_indicator(torch.le, y, low), _indicator(torch.ge, y, high))
    return torch.addcmul(grad, grad, saturated, value=-1, out=saturated)


_HARDTANH_KERNEL = _fused.Kernel("hardtanh", _hardtanh_grad)


class SoftSign(HandWrittenFunction):
    r"""Soft sign, notes section 7.4: ``y = z / (1 + |z|)``.

    ``dy/dz = 1 / (1 + |z|)^2`` (the notes print ``sgn(z)/(1+z)^2``; see
    docs/errata.md). Saves ``z``: ``1 - |y|`` would give the same value but
    loses its relative precision where ``|y|`` rounds to 1.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        _validate.floating(x, "input")
        return x / x.abs().add_(1)

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


class ReLU(HandWrittenFunction):
    r"""Rectified linear unit, notes section 7.4: ``y = max(z, 0)``.

    ``dy/dz = 1`` for ``z > 0`` and 0 otherwise (``relu'(0) = 0``, as torch).
    Saves ``y`` (``y > 0`` exactly when ``z > 0``); a NaN input passes its
    gradient through, as in torch. (An infinite or NaN *upstream* gradient
    at a unit that is off gives NaN here, 0 in torch.)
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        _validate.floating(x, "input")
        return torch.relu(x)

    setup_context = staticmethod(_save_output)

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return _RELU_KERNEL.backward(grad, y, _relu_grad_inplace)


def _relu_grad(grad, y):
    # grad * (1 - off), off = 1.0 where y <= 0; NaN compares false: its gradient passes, as in torch.
    off = (y <= 0).to(grad.dtype)
    return torch.addcmul(grad, grad, off, value=-1)


def _relu_grad_inplace(grad, y):
    off = _indicator(torch.le, y, 0)
    return torch.addcmul(grad, grad, off, value=-1, out=off)


_RELU_KERNEL = _fused.Kernel("relu", _relu_grad)


class LeakyReLU(HandWrittenFunction):
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
        k = ctx.negative_slope
        if not torch.is_grad_enabled() and _fused.applicable(grad, x):
            # The two values the eager slope below takes, rounded the same way.
            positive = torch.ones((), dtype=x.dtype, device=x.device)
            positive = positive.clamp_min_(k) if 0 <= k <= 1 else positive.mul_(1 - k).add_(k)
            fused = _LEAKY_RELU_KERNEL(grad, x, positive, k)
            if fused is not None:
                return fused, None
        slope = _indicator(torch.gt, x, 0)  # 1 where x > 0; 0 elsewhere, NaN included (as torch)
        if 0 <= k <= 1:
            slope.clamp_min_(k)  # max(1, k) = 1 and max(0, k) = k, exactly
        else:
            slope.mul_(1 - k).add_(k)  # 1 - k + k may round by an ulp for large |k|
        if torch.is_grad_enabled():
            return grad * slope, None
        return slope.mul_(grad), None


def _leaky_relu_grad_from_slopes(grad, x, positive, negative):
    # grad * slope, slope = positive where x > 0 and negative (k) elsewhere, NaN included.
    return torch.where(x > 0, positive, negative) * grad


_LEAKY_RELU_KERNEL = _fused.Kernel("leaky_relu", _leaky_relu_grad_from_slopes)
