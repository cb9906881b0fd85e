r"""Inverted dropout (notes section 7.3).

The notes keep each unit with probability ``p`` and rescale at test time. We
follow torch instead: ``p`` is the probability of *dropping* a unit,
``keep_prob = 1 - p``, and the kept units are divided by ``keep_prob`` during
training, so that the expected activation is unchanged and evaluation is the
identity (see docs/errata.md for the notes' "divide by p").

The random draw is separate from the Function: :func:`keep_mask` draws the
scaled mask with torch's RNG on the input's device (``torch.manual_seed``
reproduces it), and :class:`Dropout` multiplies by it. Keeping the Function
deterministic lets ``gradcheck`` re-run it, and leaves ``torch.func.vmap``'s
``randomness=`` option in charge of the draw.

A unit is kept where a uniform draw ``u ~ U[0, 1)`` falls below ``keep_prob``:
``P(u < keep_prob) = keep_prob``, the same Bernoulli law torch's dropout
samples, from a cheaper draw. torch's CPU ``bernoulli_`` took 1.2-1.4 ms for a
256 x 300 mask on our 2-core machine against 0.4-0.5 ms for ``rand_like`` and
the comparison, and the mask was the largest single cost of the NER training
step. The comparison itself is spelled in float arithmetic (see
:func:`keep_mask`), which gives the same mask faster than a bool tensor.
The masks are therefore not the ones ``torch.nn.functional.dropout`` draws
after the same seed (torch makes no such promise across devices either);
tests compare with torch through the mask itself.
"""

from __future__ import annotations

import torch

from ._amp import LOW_PRECISION
from ._function import HandWrittenFunction
from . import _validate


def keep_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """Mask like ``x`` holding ``1 / keep_prob`` with probability ``keep_prob = 1 - p``, else 0.

    ``p = 1`` (keep_prob 0) keeps nothing: an all-zero mask, as torch's dropout
    returns zeros there, with no division by the zero keep probability.
    """
    p = _validate.drop_probability(p)
    keep_prob = 1.0 - p
    if keep_prob == 0.0:
        return torch.zeros_like(x)
    # Half and bfloat16 uniforms near 1 are 2^-8 apart: draw in float32 so that
    # P(kept) is keep_prob to 2^-24, as for float32 inputs.
    u = torch.rand_like(x, dtype=torch.float32 if x.dtype in LOW_PRECISION else x.dtype)
    # The indicator [u < keep_prob] as floats, without a bool tensor: this CPU writes and
    # converts bool tensors slowly (the comparison and .to() took about 300 us on 256 x 644,
    # these four passes about 130 us). keep_prob - u is exactly positive when u < keep_prob and
    # in (-1, 0] otherwise (both are floats in [0, 1]: the difference keeps its sign and stays
    # above -1), so its ceiling is 1 or -0.0 / 0, and abs makes every zero +0.0: the same
    # tensor as (u < keep_prob).to(u.dtype), bit for bit. In place on the fresh draw; every op
    # here has a vmap batching rule.
    kept = u.neg_().add_(keep_prob).ceil_().abs_()
    return kept.to(x.dtype).div_(keep_prob)


class Dropout(HandWrittenFunction):
    r"""``y = x * mask`` where ``mask`` holds 0 (dropped) or ``1 / keep_prob`` (kept); see :func:`keep_mask`.

    ``dy/dx = mask``: gradients flow only through the units kept in the
    forward pass (notes section 7.3); forward mode ``dy = mask * dx``. ``mask``
    is a constant, never differentiated. Under autocast it follows its input
    (torch's dropout is on no autocast list).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x, mask):
        _validate.floating(x, "input")
        _validate.floating(mask, "mask")
        if mask.shape != x.shape:
            raise ValueError(f"mask must have the shape of input {tuple(x.shape)}, got {tuple(mask.shape)}")
        return x * mask

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[1])
        ctx.save_for_forward(inputs[1])

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad * mask, None

    @staticmethod
    def jvp(ctx, x_t, mask_t):
        (mask,) = ctx.saved_tensors
        return x_t * mask
