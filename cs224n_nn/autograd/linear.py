r"""The affine layer ``z = W a + b`` (notes section 2) and its vectorised backprop (section 6).

Rows are examples, as in torch: ``a`` has shape ``(..., in)``, ``W`` is
``(out, in)``, ``b`` is ``(out,)`` and ``z = a @ W.T + b`` has shape
``(..., out)``. With ``delta = dJ/dz`` flattened to ``(M, out)`` over all the
leading dimensions, section 6's outer products summed over the batch become

* ``dJ/dW = delta^T a``   (``(out, M) @ (M, in)``, the notes' ``delta a^T``),
* ``dJ/db = sum over rows of delta``,
* ``dJ/da = delta W``     (the notes' ``W^T delta``).
"""

from __future__ import annotations

import math

import torch

from ._function import HandWrittenFunction
from . import _validate


def _rows(t: torch.Tensor) -> torch.Tensor:
    """View ``(..., k)`` as ``(M, k)``, copying only when the strides do not allow a view.

    ``M`` is spelled out because ``-1`` is ambiguous when ``k == 0``.
    """
    if t.dim() == 2:  # the usual batch of rows: nothing to do (a reshape costs microseconds)
        return t
    return t.reshape(math.prod(t.shape[:-1]), t.shape[-1])


class Affine(HandWrittenFunction):
    r"""``z = x @ W.T + b`` (notes sections 2 and 6); equal to ``torch.nn.functional.linear``.

    Backward: ``dx = delta W``, ``dW = delta^T x`` and ``db = sum(delta)`` over
    every leading dimension. Saves ``x`` only if ``W`` needs a gradient and
    ``W`` only if ``x`` does.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x, weight, bias=None):
        _validate.affine(x, weight, bias)
        a = _rows(x)
        z = torch.mm(a, weight.t()) if bias is None else torch.addmm(bias, a, weight.t())
        return z if x.dim() == 2 else z.reshape(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, _ = inputs
        needs_x, needs_w, _ = ctx.needs_input_grad
        ctx.save_for_backward(x if needs_w else None, weight if needs_x else None)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        needs_x, needs_w, needs_b = ctx.needs_input_grad
        delta = _rows(grad)
        dx = dw = db = None
        if needs_x:
            dx = torch.mm(delta, weight)
            if grad.dim() != 2:
                dx = dx.reshape(*grad.shape[:-1], weight.shape[1])
        if needs_w:
            dw = torch.mm(delta.t(), _rows(x))
        if needs_b:
            db = delta.sum(0)
        return dx, dw, db
