r"""The notes' layer as one Function: ``a = f(x W^T + b)``, optionally with inverted dropout, and the
output layer fused with its loss.

Notes section 6 ("vectorised backpropagation"): for a layer ``z = W x + b``,
``a = f(z)``, the backward is

* ``delta = f'(z) * dJ/da``   (the activation's ``chain``, :mod:`.activations`),
* ``dW = delta^T x``, ``db = sum(delta)``, ``dx = delta W``   (:func:`.linear.affine_backward`),

so the whole layer is one autograd node where the composition
``tanh(affine(x, W, b))`` makes two. Nothing here re-derives a formula: the
forward maps are those of :class:`.Affine`, the activations and the losses,
and every derivative is the one function that already holds it
(``Activation.chain``, :func:`.linear.affine_backward`, :func:`.linear.affine_jvp`
and the losses' gradient functions). This module only wires them into one pass.

* :class:`DenseLayer`: ``a = f(x W^T + b) * mask``; ``mask`` (optional) is the
  inverted-dropout mask of :func:`.dropout.keep_mask`, drawn outside the
  Function as :class:`.Dropout` does, so gradcheck can re-run it and
  ``torch.func.vmap``'s ``randomness=`` governs the draw.
* :class:`DenseCrossEntropy`: ``J = CE(softmax(x W^T + b), y)``; its backward
  feeds ``delta = (p - onehot(y)) / N`` straight into the output layer's matmuls.
* :class:`DenseMultiMargin`: ``J = multi-class hinge(x W^T + b, y)`` (notes
  section 4 against every wrong class), the same wiring with the hinge's gradient.

**What is saved.** Only what the derivatives read: ``x`` if ``W`` needs a
gradient, ``W`` if ``x`` does, and the one tensor the activation's ``f'`` is
read from (``f(z)`` for sigmoid, tanh, hard tanh and ReLU, ``z`` for soft
sign and leaky ReLU; for the losses, what their gradient reads). Double
backward differentiates the backward through that tensor, so it must be an
*output* of the Function (autograd only tracks inputs and outputs): ``apply``
returns ``(a, hidden)`` where ``hidden`` is that tensor, or None where it is
``a`` itself (no mask, activation read from its output). The functional forms
return ``a`` (or the loss) alone.

**Modes.** ``jvp`` (forward mode: ``dz = dx W^T + x dW^T + db`` then the same
``chain``), double backward (every formula called is out of place under grad
mode), batched backward and ``vmap`` (``generate_vmap_rule``), autocast (the
affine map computes in the autocast dtype, like ``F.linear``; the losses in
float32, as torch's autocast runs ``cross_entropy`` and ``multi_margin_loss``)
and ``torch.compile(fullgraph=True)`` (dynamo traces ``forward`` and
``backward``; :class:`._function.HandWrittenFunction` hides the ``jvp`` it would refuse).
"""

from __future__ import annotations

import torch

from ._amp import autocast_dtype, cast
from ._compiled_chain import backward_chain
from ._function import HandWrittenFunction
from . import _validate
from .activations import ACTIVATIONS, Activation
from .dropout import keep_mask
from .linear import Affine, affine_backward, affine_jvp
from .losses import (MultiClassMaxMarginLoss, SoftmaxCrossEntropy, _loss_tangent, cross_entropy_grad,
                     log_softmax_grad, log_softmax_jvp, multi_margin_grad)

#: The activations' scalar parameters and torch's defaults for them, in ``forward``'s order.
ACTIVATION_PARAMS: dict[str, dict[str, float]] = {
    "hardtanh": {"min_val": -1.0, "max_val": 1.0},
    "leaky_relu": {"negative_slope": 0.01},
}


def activation_named(name) -> Activation:
    """The :class:`.Activation` called ``name``; ValueError naming ``activation`` otherwise."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"activation must be one of {', '.join(map(repr, ACTIVATIONS))}; got {name!r}"
        ) from None


def activation_params(name: str, **params) -> tuple[float, ...]:
    """The checked parameter tuple of activation ``name`` (defaults filled in), in ``forward``'s order.

    ``dense(x, W, b, "leaky_relu", negative_slope=0.2)`` gives ``(0.2,)``; a
    keyword the activation does not take is a TypeError naming it.
    """
    activation_named(name)
    defaults = ACTIVATION_PARAMS.get(name, {})
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        takes = ", ".join(defaults) or "no parameters"
        raise TypeError(f"activation {name!r} takes {takes}; got unexpected {', '.join(unknown)}")
    values = {k: params.get(k, v) for k, v in defaults.items()}
    if name == "hardtanh":
        return _validate.hardtanh_bounds(values["min_val"], values["max_val"])
    return tuple(_validate.real(v, k) for k, v in values.items())


def _mask_check(mask, out: torch.Tensor) -> None:
    _validate.floating(mask, "mask")
    if mask.shape != out.shape:
        raise ValueError(f"mask must have the shape of the layer's output {tuple(out.shape)}, got {tuple(mask.shape)}")


class DenseLayer(HandWrittenFunction):
    r"""``a = f(x W^T + b) * mask`` in one pass (notes sections 2, 6, 7.3 and 7.4).

    ``x`` is ``(..., in)``, ``weight`` ``(out, in)``, ``bias`` ``(out,)`` or
    None, ``activation`` one of ``ACTIVATIONS``' names, ``params`` its
    parameter tuple (:func:`activation_params`), ``mask`` None or the
    ``(..., out)`` inverted-dropout mask of :func:`.keep_mask`.

    Backward: ``g = dJ/da * mask`` (dropout's derivative), ``delta = chain(g, saved)``
    ``= g * f'(z)``, then ``(dx, dW, db) = affine_backward(delta, x, W)``.
    Forward mode: ``dz = affine_jvp(...)``, ``da = chain(dz, saved) * mask``.
    ``apply`` returns ``(a, hidden)``: ``hidden`` is the tensor ``f'`` is read
    from (``f(z)`` before the mask, or ``z``), None when that is ``a`` itself.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x, weight, bias=None, activation="tanh", params=(), mask=None):
        act = activation_named(activation)
        names = tuple(ACTIVATION_PARAMS.get(activation, {}))
        if not isinstance(params, tuple) or len(params) != len(names):
            raise ValueError(f"params must be the tuple {names} of activation {activation!r} "
                             f"(see activation_params), got {params!r}")
        z = Affine.forward(x, weight, bias)  # checks, autocast ("lower", like F.linear), addmm
        y = act.forward(z, *params)
        if mask is None:
            return y, (None if act.saves == "output" else z)
        _mask_check(mask, y)
        out = y * cast(mask, y.dtype)
        return out, (y if act.saves == "output" else z)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, _, activation, params, mask = inputs
        out, hidden = output
        needs_x, needs_w, _ = ctx.needs_input_grad[:3]
        ctx.activation, ctx.params, ctx.dtype = activation, tuple(params), out.dtype
        ctx.set_materialize_grads(False)  # the unused ``hidden`` output costs no zero tensor
        saved = out if hidden is None else hidden
        ctx.save_for_backward(x if needs_w else None, weight if needs_x else None, saved, mask)
        ctx.save_for_forward(x, weight, saved, mask)

    @staticmethod
    def backward(ctx, grad, grad_hidden):
        x, weight, saved, mask = ctx.saved_tensors
        delta = _layer_delta(ACTIVATIONS[ctx.activation], ctx.params, grad, grad_hidden, saved, mask)
        if delta is None:
            return (None,) * 6
        return (*affine_backward(delta, x, weight, *ctx.needs_input_grad[:3]), None, None, None)

    @staticmethod
    def jvp(ctx, x_t, w_t, b_t, _activation_t, _params_t, _mask_t):
        x, weight, saved, mask = ctx.saved_tensors
        act = ACTIVATIONS[ctx.activation]
        z_t = affine_jvp(x, weight, x_t, w_t, b_t, ctx.dtype)
        if z_t is None:  # only the (constant) mask had a tangent
            z_t = saved.new_zeros(saved.shape)
        y_t = act.chain(z_t, saved, *ctx.params)
        out_t = y_t if mask is None else y_t * cast(mask, y_t.dtype)
        if mask is None and act.saves == "output":
            return out_t, None
        return out_t, (y_t if act.saves == "output" else z_t)


def _layer_delta(act: Activation, params, grad, grad_hidden, saved, mask):
    """``delta = dJ/dz`` of :class:`DenseLayer`: ``chain(dJ/da * mask, saved)``, plus what reaches ``hidden``.

    A function of its own so that the dropout product ``dJ/da * mask`` dies when it
    returns: the affine backward that follows (``dx``, ``dW``, ``db``) is where a
    training step's memory peaks, and a name in ``backward`` would keep that product
    alive through it (one activation-sized tensor more than torch's chain of nodes,
    which frees each node's gradient as the next consumes it).
    """
    g = grad if grad is None or mask is None else grad * cast(mask, grad.dtype)
    if grad_hidden is not None and act.saves == "output":  # hidden is f(z): its gradient joins dJ/da
        g = grad_hidden if g is None else g + grad_hidden
    delta = None if g is None else backward_chain(act.chain, g, saved, *params, min_numel=act.compile_min_numel)
    if grad_hidden is not None and act.saves == "input":  # hidden is z itself
        delta = grad_hidden if delta is None else delta + grad_hidden
    return delta


def _rows_of_scores(x: torch.Tensor) -> None:
    """The fused losses score 1-D ``(in,)`` or 2-D ``(N, in)`` inputs, as the losses take (C,) or (N, C) scores."""
    _validate.tensor(x, "input")
    if x.dim() not in (1, 2):
        raise ValueError(f"input must be 1-D (in_features,) or 2-D (N, in_features), got shape {tuple(x.shape)}")


class DenseCrossEntropy(HandWrittenFunction):
    r"""The output layer and its loss in one pass: ``J = CE(softmax(x W^T + b), y)`` (notes sections 6 and 7.2).

    The arguments after ``bias`` are :class:`.SoftmaxCrossEntropy`'s
    (``class_weight`` is its ``weight``). Backward: ``delta = dJ/dz``
    ``= (p - onehot(y)) / N`` in the plain case (:func:`.cross_entropy_grad`;
    plus :func:`.log_softmax_grad` of the ``log p`` output's gradient, which only
    double backward sends), then ``(dx, dW, db) = affine_backward(delta, x, W)``:
    the scores' gradient is never a separate autograd node. ``apply`` returns
    ``(loss, log_probs)``, as ``SoftmaxCrossEntropy`` does. Under autocast the
    scores are computed like ``F.linear`` and the loss in float32 (torch's
    autocast policy for ``cross_entropy``); ``delta`` goes back to the scores'
    dtype before the matmuls, as torch's cast node does.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x, weight, bias, target, class_weight=None, ignore_index=-100, reduction="mean",
                label_smoothing=0.0):
        _rows_of_scores(x)
        scores = Affine.forward(x, weight, bias)
        return SoftmaxCrossEntropy.forward(scores, target, class_weight, ignore_index, reduction, label_smoothing)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias, target, class_weight, ignore_index, reduction, label_smoothing = inputs
        loss, logp = output
        needs_x, needs_w, _ = ctx.needs_input_grad[:3]
        ctx.ignore_index, ctx.reduction, ctx.eps = ignore_index, reduction, float(label_smoothing)
        ctx.dtype = autocast_dtype("lower", x)  # the dtype the scores were computed in
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x if needs_w else None, weight if needs_x else None, logp, target, class_weight)
        ctx.save_for_forward(x, weight, logp, target, class_weight)

    @staticmethod
    def backward(ctx, grad_loss, grad_logp):
        x, weight, logp, target, class_weight = ctx.saved_tensors
        class_weight = None if class_weight is None else class_weight.to(logp.dtype)
        delta = None
        if grad_loss is not None:
            delta = cross_entropy_grad(logp, target, grad_loss, class_weight, ctx.ignore_index, ctx.reduction, ctx.eps)
        if grad_logp is not None:
            through_logp = log_softmax_grad(logp, grad_logp)
            delta = through_logp if delta is None else delta + through_logp
        if delta is None:
            return (None,) * 8
        return (*affine_backward(cast(delta, ctx.dtype), x, weight, *ctx.needs_input_grad[:3]),) + (None,) * 5

    @staticmethod
    def jvp(ctx, x_t, w_t, b_t, *_constant_tangents):
        x, weight, logp, target, class_weight = ctx.saved_tensors
        class_weight = None if class_weight is None else class_weight.to(logp.dtype)
        scores_t = affine_jvp(x, weight, x_t, w_t, b_t, ctx.dtype)
        if scores_t is None:  # only a constant (target, class weights) had a tangent
            scores_t = logp.new_zeros(logp.shape)
        scores_t = scores_t.to(logp.dtype)
        unit = torch.ones(() if ctx.reduction != "none" else logp.shape[:-1], dtype=logp.dtype, device=logp.device)
        d = cross_entropy_grad(logp, target, unit, class_weight, ctx.ignore_index, ctx.reduction, ctx.eps)
        return _loss_tangent(d, scores_t, ctx.reduction, unit), log_softmax_jvp(logp, scores_t)


class DenseMultiMargin(HandWrittenFunction):
    r"""The output layer and the multi-class hinge in one pass: ``J = hinge(x W^T + b, y)`` (notes sections 4 and 6).

    ``J_i = w[y_i]/C sum_{j != y_i} max(0, margin - s_iy + s_ij)^p`` with
    ``s = x W^T + b``, as :class:`.MultiClassMaxMarginLoss` (``class_weight``
    is its ``weight``). Backward: ``delta = dJ/ds`` from :func:`.multi_margin_grad`
    (``1/C`` at each violating class, minus their sum at the target), then
    ``affine_backward``. ``apply`` returns ``(loss, scores)``: the hinge's
    gradient reads the scores, and double backward (for ``p = 2``, where it
    depends on them smoothly) must see them as an output. Under autocast the
    scores are computed like ``F.linear`` and the loss in float32.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x, weight, bias, target, margin=1.0, class_weight=None, reduction="mean", p=1):
        _rows_of_scores(x)
        scores = Affine.forward(x, weight, bias)
        return MultiClassMaxMarginLoss.forward(scores, target, margin, class_weight, reduction, p), scores

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias, target, margin, class_weight, reduction, p = inputs
        loss, scores = output
        needs_x, needs_w, _ = ctx.needs_input_grad[:3]
        ctx.margin, ctx.reduction, ctx.p = float(margin), reduction, int(p)
        ctx.dtype, ctx.loss_dtype, ctx.loss_shape = scores.dtype, loss.dtype, loss.shape
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x if needs_w else None, weight if needs_x else None, scores, target, class_weight)
        ctx.save_for_forward(x, weight, scores, target, class_weight)

    @staticmethod
    def backward(ctx, grad_loss, grad_scores):
        x, weight, scores, target, class_weight = ctx.saved_tensors
        delta = None
        if grad_loss is not None:
            delta = multi_margin_grad(scores.to(ctx.loss_dtype), target, grad_loss, ctx.p, ctx.margin,
                                      None if class_weight is None else class_weight.to(ctx.loss_dtype),
                                      ctx.reduction).to(ctx.dtype)
        if grad_scores is not None:
            delta = grad_scores if delta is None else delta + grad_scores
        if delta is None:
            return (None,) * 8
        return (*affine_backward(delta, x, weight, *ctx.needs_input_grad[:3]),) + (None,) * 5

    @staticmethod
    def jvp(ctx, x_t, w_t, b_t, *_constant_tangents):
        x, weight, scores, target, class_weight = ctx.saved_tensors
        scores_t = affine_jvp(x, weight, x_t, w_t, b_t, ctx.dtype)
        if scores_t is None:  # only a constant (target, class weights) had a tangent
            scores_t = scores.new_zeros(scores.shape)
        unit = torch.ones(ctx.loss_shape, dtype=ctx.loss_dtype, device=scores.device)
        d = multi_margin_grad(scores.to(ctx.loss_dtype), target, unit, ctx.p, ctx.margin,
                              None if class_weight is None else class_weight.to(ctx.loss_dtype), ctx.reduction)
        return _loss_tangent(d, scores_t, ctx.reduction, unit), scores_t


# ------------------------------------------------------------ functional forms (exported by cs224n_nn.functional)


def dense(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, activation: str = "tanh", *,
          dropout: float = 0.0, training: bool = True, **params) -> torch.Tensor:
    """The notes' layer ``f(x W^T + b)`` as one Function (:class:`DenseLayer`); ``act(F.linear(x, W, b))`` in torch.

    ``activation``: ``"sigmoid"``, ``"tanh"``, ``"hardtanh"`` (``min_val``,
    ``max_val``), ``"softsign"``, ``"relu"`` or ``"leaky_relu"``
    (``negative_slope``), the parameters as keywords with torch's defaults.
    ``dropout`` > 0 with ``training`` applies inverted dropout to the output in
    the same pass (``F.dropout(act(F.linear(x, W, b)), dropout, training)``; the
    mask is drawn by :func:`.keep_mask` from torch's RNG).
    """
    checked = activation_params(activation, **params) if params else _default_params(activation)
    return dense_checked(x, weight, bias, activation, checked, dropout, training)


def dense_checked(x, weight, bias, activation: str, params: tuple[float, ...], dropout: float = 0.0,
                  training: bool = True) -> torch.Tensor:
    """:func:`dense` with the parameter tuple already checked (:func:`activation_params`; what ``nn.Dense`` holds)."""
    mask = None
    if dropout and _validate.drop_probability(dropout) and training:
        _validate.affine(x, weight, bias)
        mask = keep_mask(x.new_empty((*x.shape[:-1], weight.shape[0])), dropout)
    return DenseLayer.apply(x, weight, bias, activation, params, mask)[0]


def dense_cross_entropy(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, target: torch.Tensor,
                        reduction: str = "mean", *, class_weight: torch.Tensor | None = None,
                        ignore_index: int = -100, label_smoothing: float = 0.0) -> torch.Tensor:
    """``F.cross_entropy(F.linear(x, W, b), target, ...)`` as one Function (:class:`DenseCrossEntropy`).

    The output layer and softmax cross-entropy fused: the backward feeds
    ``(p - onehot(y)) / N`` straight into the layer's matmuls. ``x`` is
    ``(N, in)`` or ``(in,)``; ``class_weight`` is ``F.cross_entropy``'s ``weight``.
    """
    loss, _ = DenseCrossEntropy.apply(x, weight, bias, target, class_weight, ignore_index, reduction, label_smoothing)
    return loss


def dense_multi_margin(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, target: torch.Tensor,
                       margin: float = 1.0, reduction: str = "mean", *, class_weight: torch.Tensor | None = None,
                       p: int = 1) -> torch.Tensor:
    """``F.multi_margin_loss(F.linear(x, W, b), target, p, margin, class_weight)`` as one Function
    (:class:`DenseMultiMargin`): the output layer and the notes' multi-class max-margin objective fused."""
    loss, _ = DenseMultiMargin.apply(x, weight, bias, target, margin, class_weight, reduction, p)
    return loss


_DEFAULT_PARAMS = {name: activation_params(name) for name in ACTIVATIONS}


def _default_params(name) -> tuple[float, ...]:
    """``activation_params(name)`` with no keywords, looked up (the common call costs no checks)."""
    try:
        return _DEFAULT_PARAMS[name]
    except (KeyError, TypeError):
        activation_named(name)  # raises the ValueError naming ``activation``
        raise
