r"""The affine layer ``z = W a + b`` (notes section 2) and its vectorised backprop (section 6).

Rows are examples, as in torch: ``a`` has shape ``(..., in)``, ``W`` is
``(out, in)``, ``b`` is ``(out,)`` and ``z = a @ W.T + b`` has shape
``(..., out)``. With ``delta = dJ/dz`` flattened to ``(M, out)`` over all the
leading dimensions, section 6's outer products summed over the batch become

* ``dJ/dW = delta^T a``   (``(out, M) @ (M, in)``, the notes' ``delta a^T``),
* ``dJ/db = sum over rows of delta``,
* ``dJ/da = delta W``     (the notes' ``W^T delta``).

Forward mode is the product rule: ``dz = da W^T + a dW^T + db``.
Under ``torch.autocast`` the map computes in the autocast dtype, like
``torch.nn.functional.linear`` (:func:`._amp.autocast_inputs`, policy ``"lower"``).
"""

from __future__ import annotations

import math

import torch

from ._amp import autocast_inputs, cast
from ._function import HandWrittenFunction
from . import _validate


def _rows(t: torch.Tensor) -> torch.Tensor:
    """View ``(..., k)`` as ``(M, k)``, copying only when the strides do not allow a view.

    ``M`` is spelled out because ``-1`` is ambiguous when ``k == 0``.
    """
    if t.dim() == 2:
        return t
    return t.reshape(math.prod(t.shape[:-1]), t.shape[-1])


def affine_backward(delta, x, weight, needs_x: bool, needs_w: bool, needs_b: bool):
    r"""``(dx, dW, db) = (delta W, delta^T x, sum of delta over the leading dims)`` (notes section 6).

    The public formula of the affine map's backward: :class:`Affine` and the
    fused layer (:mod:`.layer`) call it. ``delta = dJ/dz`` has shape
    ``(..., out)``; ``x`` ``(..., in)`` and ``weight`` ``(out, in)`` are used in
    ``delta``'s dtype (under autocast: the dtype the forward computed in).
    Entries not needed are None (their saved tensor may be None too).
    """
    rows = _rows(delta)
    dx = dw = db = None
    if needs_x:
        dx = torch.mm(rows, cast(weight, delta.dtype)).reshape(*delta.shape[:-1], weight.shape[1])
    if needs_w:
        dw = torch.mm(rows.t(), cast(_rows(x), delta.dtype))
    if needs_b:
        db = rows.sum(0)
    return dx, dw, db


def affine_jvp(x, weight, x_t, w_t, b_t, dtype: torch.dtype):
    r"""``dz = dx W^T + x dW^T + db`` in ``dtype``, for tangents that may be None (then zero).

    The public forward-mode formula of the affine map.
    """
    out_shape = (*x.shape[:-1], weight.shape[0])
    z_t = None
    if x_t is not None:
        z_t = torch.mm(_rows(x_t.to(dtype)), weight.to(dtype).t())
    if w_t is not None:
        term = torch.mm(_rows(x.to(dtype)), w_t.to(dtype).t())
        z_t = term if z_t is None else z_t + term
    z_t = None if z_t is None else z_t.reshape(out_shape)
    if b_t is not None:
        z_t = b_t.to(dtype).expand(out_shape) if z_t is None else z_t + b_t.to(dtype)
    return z_t


class Affine(HandWrittenFunction):
    r"""``z = x @ W.T + b`` (notes sections 2 and 6); equal to ``torch.nn.functional.linear``.

    Backward (:func:`affine_backward`): ``dx = delta W``, ``dW = delta^T x`` and
    ``db = sum(delta)`` over every leading dimension; forward mode
    (:func:`affine_jvp`): ``dz = dx W^T + x dW^T + db``. Saves ``x`` only if ``W`` needs a gradient
    and ``W`` only if ``x`` does (forward mode keeps both).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x, weight, bias=None):
        x, weight, bias = autocast_inputs("lower", x, weight, bias)
        _validate.affine(x, weight, bias)
        a = _rows(x)
        z = torch.mm(a, weight.t()) if bias is None else torch.addmm(bias, a, weight.t())
        return z if x.dim() == 2 else z.reshape(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, _ = inputs
        needs_x, needs_w, _ = ctx.needs_input_grad
        ctx.dtype = output.dtype
        # dW needs x and dx needs W: save only what the wanted gradients read.
        ctx.save_for_backward(x if needs_w else None, weight if needs_x else None)
        ctx.save_for_forward(x, weight)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        return affine_backward(grad, x, weight, *ctx.needs_input_grad)

    @staticmethod
    def jvp(ctx, x_t, w_t, b_t):
        x, weight = ctx.saved_tensors
        return affine_jvp(x, weight, x_t, w_t, b_t, ctx.dtype)
