r"""The notes' six element-wise activations (notes section 7.4 "Neuron Unit").

Each activation is one :class:`Activation`: its forward ``y = f(z)`` and its
one derivative formula ``chain(g, saved) = g * f'(z)``, written out of place
as the notes give it. The same ``chain`` line serves

* the Function's ``backward`` (``g`` = the upstream gradient ``dJ/dy``),
* its ``jvp`` (``g`` = the input's tangent: forward mode is ``f'(z) * dz``),
* double backward, ``vmap`` over backward (batched gradients) and forward
  over reverse (``hessian``), since it is made of differentiable, batchable ops,
* the fused layer ``f(x W^T + b)`` of :mod:`cs224n_nn.autograd.layer`.

A plain ``backward()`` of a large tensor runs a compiled copy of the same
``chain`` function (:mod:`._compiled_chain`: one fused pass over memory where
the eager formula makes two to four), and only where that cannot change the
result; every other mode calls ``chain`` itself.

``saves`` names the tensor ``f'`` is read from: the output ``y`` where
``f'`` is a function of it (sigmoid, tanh, hard tanh, ReLU), else the input.
In float16/bfloat16 ``chain`` evaluates in float32 and rounds once
(:func:`._amp.in_float32`), as torch's derivative kernels do.

Kinks (any subgradient is valid there; we match torch so twin comparisons are
exact): ``relu'(0) = 0``, ``hardtanh'`` is 0 at exactly ``min_val`` and
``max_val``, ``leaky_relu'(0) = negative_slope``. A NaN input passes its
gradient through, and an upstream gradient at a saturated unit gives 0 (even
when it is inf or NaN), as in torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ._amp import in_float32
from ._compiled_chain import COMPILE_MIN_NUMEL, SELECT_MIN_NUMEL, backward_chain
from ._function import HandWrittenFunction
from . import _validate


@dataclass(frozen=True)
class Activation:
    """One activation: ``forward(z, *params) -> y`` and its derivative ``chain(g, saved, *params) -> g * f'(z)``.

    ``saves`` is ``"output"`` when ``chain`` reads ``y``, ``"input"`` when it reads ``z``.
    ``compile_min_numel``: the fewest elements for which a plain backward runs the compiled
    copy of ``chain`` (:mod:`._compiled_chain`; lower for the chains that select with ``torch.where``).
    """

    name: str
    forward: Callable[..., torch.Tensor]
    saves: str
    chain: Callable[..., torch.Tensor]
    compile_min_numel: int = COMPILE_MIN_NUMEL


@in_float32
def _sigmoid_chain(g, y):
    # sigma'(z) = sigma(z) (1 - sigma(z)) (notes section 7.4; not the notes' -exp(-z)/(1+exp(-z))).
    return g * (1 - y) * y


@in_float32
def _tanh_chain(g, y):
    # tanh'(z) = 1 - tanh(z)^2.
    return g * (1 - y * y)


@in_float32
def _hardtanh_chain(g, y, min_val, max_val):
    # 1 strictly inside (min_val, max_val), 0 on and beyond the corners; y is on a
    # corner exactly when z is on or beyond it. NaN compares false: it passes g.
    # Two nested wheres, not one on ``(y <= min_val) | (y >= max_val)``: the same
    # values, but inductor does not vectorise the float64 loop of the bool "or"
    # (the compiled backward at 1M float64 elements took 7.9 ms against 1.6-2.2 ms).
    return torch.where(y <= min_val, 0, torch.where(y >= max_val, 0, g))


@in_float32
def _softsign_chain(g, z):
    # softsign'(z) = 1 / (1 + |z|)^2 (not the notes' sgn(z)/(1+z)^2). From z, not y:
    # 1 - |y| loses its relative precision where |y| rounds to 1.
    return g / (1 + z.abs()) ** 2


@in_float32
def _relu_chain(g, y):
    # 1 for z > 0 (y > 0 exactly then), 0 otherwise: relu'(0) = 0.
    return torch.where(y <= 0, 0, g)


@in_float32
def _leaky_relu_chain(g, z, negative_slope):
    # 1 for z > 0, k otherwise (NaN included): leaky_relu'(0) = k. From z: with
    # k < 0 the sign of y does not tell the branch.
    return torch.where(z > 0, g, g * negative_slope)


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("sigmoid", torch.sigmoid, "output", _sigmoid_chain),
        Activation("tanh", torch.tanh, "output", _tanh_chain),
        Activation("hardtanh", torch.clamp, "output", _hardtanh_chain, SELECT_MIN_NUMEL),
        Activation("softsign", lambda z: z / (z.abs() + 1), "input", _softsign_chain),
        Activation("relu", torch.relu, "output", _relu_chain, SELECT_MIN_NUMEL),
        Activation("leaky_relu", torch.nn.functional.leaky_relu, "input", _leaky_relu_chain, SELECT_MIN_NUMEL),
    )
}


def _rules(activation: Activation):
    """``setup_context``, ``backward`` and ``jvp`` of the Function computing ``activation``.

    All three read the one tensor ``activation.saves`` names and call its ``chain``.
    (They close over the function, a bool and an int, not the dataclass: dynamo traces those.)
    """
    chain, saves_output, min_numel = activation.chain, activation.saves == "output", activation.compile_min_numel

    def setup_context(ctx, inputs, output):
        ctx.params = tuple(float(p) for p in inputs[1:])
        saved = output if saves_output else inputs[0]
        ctx.save_for_backward(saved)
        ctx.save_for_forward(saved)

    def backward(ctx, grad):
        (saved,) = ctx.saved_tensors
        return (backward_chain(chain, grad, saved, *ctx.params, min_numel=min_numel),) + (None,) * len(ctx.params)

    def jvp(ctx, x_t, *param_tangents):
        (saved,) = ctx.saved_tensors
        return chain(x_t, saved, *ctx.params)

    return staticmethod(setup_context), staticmethod(backward), staticmethod(jvp)


class Sigmoid(HandWrittenFunction):
    r"""Logistic sigmoid, notes sections 1 and 7.4.

    ``y = 1 / (1 + exp(-z))``; ``dy/dz = y (1 - y)``. (The notes print the
    derivative as ``-exp(-z)/(1+exp(-z))``; see docs/errata.md.) Saves ``y``.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        _validate.floating(x, "input")
        return ACTIVATIONS["sigmoid"].forward(x)

    setup_context, backward, jvp = _rules(ACTIVATIONS["sigmoid"])


class Tanh(HandWrittenFunction):
    r"""Hyperbolic tangent, notes section 7.4 (``tanh(z) = 2 sigma(2z) - 1``, section 9).

    ``y = (exp(z) - exp(-z)) / (exp(z) + exp(-z))``; ``dy/dz = 1 - y^2``. Saves ``y``.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        _validate.floating(x, "input")
        return ACTIVATIONS["tanh"].forward(x)

    setup_context, backward, jvp = _rules(ACTIVATIONS["tanh"])


class HardTanh(HandWrittenFunction):
    r"""Hard tanh, notes section 7.4: ``y = min_val`` for ``z < min_val``, ``z`` in between,
    ``max_val`` above (the notes' ``-1 : z < 1`` is a typo for ``z < -1``).

    ``dy/dz = 1`` for ``min_val < z < max_val`` and 0 otherwise, including at
    exactly ``min_val`` and ``max_val`` (torch's choice; the notes use the closed
    interval). Saves ``y``: ``z`` is strictly inside exactly when ``y`` is.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x, min_val=-1.0, max_val=1.0):
        _validate.floating(x, "input")
        min_val, max_val = _validate.hardtanh_bounds(min_val, max_val)
        return ACTIVATIONS["hardtanh"].forward(x, min_val, max_val)

    setup_context, backward, jvp = _rules(ACTIVATIONS["hardtanh"])


class SoftSign(HandWrittenFunction):
    r"""Soft sign, notes section 7.4: ``y = z / (1 + |z|)``.

    ``dy/dz = 1 / (1 + |z|)^2`` (the notes print ``sgn(z)/(1+z)^2``; see
    docs/errata.md). Saves ``z``.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        _validate.floating(x, "input")
        return ACTIVATIONS["softsign"].forward(x)

    setup_context, backward, jvp = _rules(ACTIVATIONS["softsign"])


class ReLU(HandWrittenFunction):
    r"""Rectified linear unit, notes section 7.4: ``y = max(z, 0)``.

    ``dy/dz = 1`` for ``z > 0`` and 0 otherwise (``relu'(0) = 0``, as torch).
    Saves ``y`` (``y > 0`` exactly when ``z > 0``).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        _validate.floating(x, "input")
        return ACTIVATIONS["relu"].forward(x)

    setup_context, backward, jvp = _rules(ACTIVATIONS["relu"])


class LeakyReLU(HandWrittenFunction):
    r"""Leaky ReLU, notes section 7.4: ``y = z`` for ``z > 0``, ``k z`` otherwise (``k = negative_slope``).

    ``dy/dz = 1`` for ``z > 0`` and ``k`` otherwise, so ``leaky_relu'(0) = k``
    (torch's choice). Saves ``z``.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x, negative_slope=0.01):
        _validate.floating(x, "input")
        negative_slope = _validate.real(negative_slope, "negative_slope")
        return ACTIVATIONS["leaky_relu"].forward(x, negative_slope)

    setup_context, backward, jvp = _rules(ACTIVATIONS["leaky_relu"])
