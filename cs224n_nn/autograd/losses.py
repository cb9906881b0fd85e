r"""Objectives: the notes' max-margin loss (section 4), its multi-class form, and softmax cross-entropy.

``reduction`` is torch's: ``"none"`` keeps one loss per example, ``"sum"`` adds
them, ``"mean"`` divides the sum by the number of examples (for cross-entropy:
by the summed class weights of the examples not ignored, as torch does). The
backward of a reduction hands each example the upstream gradient scaled by
``1`` or ``1/denominator``; :func:`_per_example` does that in one place.
"""

from __future__ import annotations

import torch

from ._function import HandWrittenFunction
from . import _validate
from .activations import _indicator


def _reduce(losses: torch.Tensor, reduction: str, denominator=None) -> torch.Tensor:
    if reduction == "none":
        return losses
    total = losses.sum()
    if reduction == "sum":
        return total
    return total / (losses.numel() if denominator is None else denominator)


def _per_example(grad: torch.Tensor, reduction: str, shape, denominator=None) -> torch.Tensor:
    """The gradient reaching each example's loss from the reduced loss."""
    if reduction == "none":
        return grad
    if reduction == "mean":
        count = 1
        for n in shape:
            count *= n
        grad = grad / (count if denominator is None else denominator)
    return grad.expand(shape)


class MaxMarginLoss(HandWrittenFunction):
    r"""The notes' max-margin objective (section 4): ``J = max(0, margin + s_c - s)``.

    ``s`` scores the true window, ``s_c`` a corrupt one; they broadcast
    against each other. ``dJ/ds_c = 1`` and ``dJ/ds = -1`` where
    ``margin + s_c - s > 0`` (section 5: ``dJ/ds = -dJ/ds_c = -1``), and 0
    elsewhere, including at the kink (as ``relu'(0) = 0``). Values and
    gradients equal ``torch.nn.functional.margin_ranking_loss(s, s_c, 1, margin)``
    away from the kink. Saves ``s`` and ``s_c`` to recompute which terms are active.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(s, s_c, margin=1.0, reduction="mean"):
        _validate.floating(s, "s")
        _validate.floating(s_c, "s_c")
        _validate.same_dtype(s, "s", s_c, "s_c")
        margin = _validate.real(margin, "margin")
        _validate.reduction(reduction)
        try:
            torch.broadcast_shapes(s.shape, s_c.shape)
        except RuntimeError:
            raise ValueError(f"s and s_c must broadcast together, got shapes {tuple(s.shape)} and {tuple(s_c.shape)}") from None
        return _reduce(torch.clamp_min(s_c - s + margin, 0), reduction)

    @staticmethod
    def setup_context(ctx, inputs, output):
        s, s_c, margin, reduction = inputs
        ctx.margin, ctx.reduction = float(margin), reduction
        if any(ctx.needs_input_grad[:2]):
            ctx.save_for_backward(s, s_c)

    @staticmethod
    def backward(ctx, grad):
        s, s_c = ctx.saved_tensors
        active = _indicator(torch.gt, s_c - s + ctx.margin, 0)
        d_sc = active * _per_example(grad, ctx.reduction, active.shape)
        ds = -d_sc.sum_to_size(s.shape) if ctx.needs_input_grad[0] else None
        d_sc = d_sc.sum_to_size(s_c.shape) if ctx.needs_input_grad[1] else None
        return ds, d_sc, None, None


def _as_rows(scores: torch.Tensor, target: torch.Tensor):
    """(C,) scores with a 0-d target are one example: work on (1, C) and (1,)."""
    if scores.dim() == 2:  # already rows (each reshape costs a few microseconds)
        return scores, target
    return scores.reshape(-1, scores.shape[-1]), target.reshape(-1)


def _hinge_terms(x: torch.Tensor, target: torch.Tensor, margin: float) -> torch.Tensor:
    """``margin - x[i, y_i] + x[i, j]`` for every class ``j``, with 0 at ``j = y_i`` (not a competitor)."""
    t = target.unsqueeze(1)
    z = x - x.gather(1, t) + margin
    return z.scatter(1, t, 0)


class MultiClassMaxMarginLoss(HandWrittenFunction):
    r"""Multi-class hinge loss, the max-margin objective of section 4 against every wrong class.

    ``J_i = w[y_i] / C * sum_{j != y_i} max(0, margin - x[i, y_i] + x[i, j])``,
    equal to ``torch.nn.functional.multi_margin_loss(x, y, p=1, margin, weight)``
    (a NaN term counts as 0 there, and here). With ``a_ij = 1`` where a term
    is positive: ``dJ_i/dx_ij = w[y_i]/C * a_ij`` for ``j != y_i`` and
    ``dJ_i/dx_iy = -w[y_i]/C * sum_j a_ij``; 0 at the kink. ``weight`` gets no
    gradient (as in torch). Saves the scores and targets.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(scores, target, margin=1.0, weight=None, reduction="mean"):
        _validate.class_targets(scores, target)
        _validate.class_weight(weight, scores)
        margin = _validate.real(margin, "margin")
        _validate.reduction(reduction)
        x, t = _as_rows(scores, target)
        z = _hinge_terms(x, t, margin)
        # fmax, unlike clamp, drops NaN: torch counts a NaN term as 0 here.
        losses = torch.fmax(z, z.new_zeros(())).sum(1) / x.shape[1]
        if weight is not None:
            losses = losses * weight[t]
        if scores.dim() == 1:
            losses = losses.reshape(target.shape)
        return _reduce(losses, reduction)

    @staticmethod
    def setup_context(ctx, inputs, output):
        scores, target, margin, weight, reduction = inputs
        ctx.margin, ctx.reduction = float(margin), reduction
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(scores, target, weight)

    @staticmethod
    def backward(ctx, grad):
        scores, target, weight = ctx.saved_tensors
        x, t = _as_rows(scores, target)
        active = _indicator(torch.gt, _hinge_terms(x, t, ctx.margin), 0)
        coef = _per_example(grad.reshape(-1) if ctx.reduction == "none" else grad, ctx.reduction, t.shape)
        coef = coef / x.shape[1]
        if weight is not None:
            coef = coef * weight[t]
        d = active * coef.unsqueeze(1)
        target_entry = (-coef * active.sum(1)).unsqueeze(1)
        if torch.is_grad_enabled():
            d = d.scatter(1, t.unsqueeze(1), target_entry)
        else:
            d.scatter_(1, t.unsqueeze(1), target_entry)
        return d.reshape(scores.shape), None, None, None, None


class SoftmaxCrossEntropy(HandWrittenFunction):
    r"""Softmax cross-entropy (the loss of notes section 7.2), equal to ``torch.nn.functional.cross_entropy``.

    With ``log p = x - logsumexp(x)`` (stable for huge scores: the largest
    score is subtracted before ``exp``), ``J_i = -sum_c q_ic log p_ic`` where
    ``q_ic = (1 - eps) w[y_i] [c = y_i] + eps / C * w[c]`` (``eps`` the label
    smoothing, ``w`` the class weights, 1 by default), and ``q_i = 0`` for
    ``y_i = ignore_index``. Its derivative is ``dJ_i/dx_i = p_i * sum_c q_ic - q_i``
    (``p - onehot(y)`` in the plain case); ``weight`` gets no gradient (as in torch).

    ``apply`` returns ``(loss, log_probs)``: ``log p`` is saved for backward,
    and returning it as an output is what lets the double backward
    differentiate through it (its gradient comes back here as ``grad_logp``,
    with ``d log p / dx = I - p 1^T``). :func:`cs224n_nn.functional.softmax_cross_entropy`
    returns the loss alone.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(scores, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        all_counted = _validate.class_targets(scores, target, ignore_index=ignore_index)
        _validate.class_weight(weight, scores)
        _validate.reduction(reduction)
        eps = _validate.real(label_smoothing, "label_smoothing")
        if not 0.0 <= eps <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
        x, t = _as_rows(scores, target)
        # log p = x - logsumexp(x) with the log-sum-exp trick (the row's largest
        # score subtracted before exp, so nothing overflows even at ~1e38):
        # torch's log_softmax kernel computes exactly that in one pass.
        logp = torch.log_softmax(x, 1)
        if _plain(all_counted, weight, eps):
            picked = logp.gather(1, t.unsqueeze(1))  # log p[i, y_i], shape (N, 1)
            if reduction == "none":
                return picked.neg_().reshape(target.shape), logp.reshape(scores.shape)
            total = picked.sum() if reduction == "sum" else picked.mean()
            return total.neg_(), logp.reshape(scores.shape)
        valid, safe_t, w_t = _target_weights(t, weight, ignore_index, x.dtype)
        losses = -logp.gather(1, safe_t.unsqueeze(1)).squeeze(1) * w_t
        if eps:
            smooth = -(logp.sum(1) if weight is None else logp @ weight)
            losses = (1 - eps) * losses + eps / x.shape[1] * smooth
        losses = torch.where(valid, losses, 0)
        if scores.dim() == 1:
            losses = losses.reshape(target.shape)
        return _reduce(losses, reduction, w_t.sum()), logp.reshape(scores.shape)

    @staticmethod
    def setup_context(ctx, inputs, output):
        scores, target, weight, ignore_index, reduction, label_smoothing = inputs
        ctx.ignore_index, ctx.reduction, ctx.eps = ignore_index, reduction, float(label_smoothing)
        # A None grad (an output that was not used) costs nothing instead of a zero tensor.
        ctx.set_materialize_grads(False)
        ctx.plain = False
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(output[1], target, weight)
            # forward cannot hand its finding to the context (a staticmethod);
            # asking again costs one reduction over the targets.
            ctx.plain = _plain(_validate.class_targets(scores, target, ignore_index=ignore_index), weight, ctx.eps)

    @staticmethod
    def backward(ctx, grad_loss, grad_logp):
        logp, target, weight = ctx.saved_tensors
        logp_rows, t = _as_rows(logp, target)
        p = logp_rows.exp()
        d = None
        if grad_loss is not None and ctx.plain and grad_logp is None and not torch.is_grad_enabled():
            # Plain case (every target a class, no weights, no smoothing): p - onehot(y), scaled.
            g = grad_loss.reshape(-1, 1) if ctx.reduction == "none" else grad_loss
            if ctx.reduction == "mean":
                g = g / t.numel()
            d = p.mul_(g).scatter_add_(1, t.unsqueeze(1), g.neg().expand(t.numel(), 1))
            return d.reshape(logp.shape), None, None, None, None, None
        if grad_loss is not None:
            classes = logp_rows.shape[1]
            valid, safe_t, w_t = _target_weights(t, weight, ctx.ignore_index, p.dtype)
            g = _per_example(grad_loss.reshape(-1) if ctx.reduction == "none" else grad_loss,
                             ctx.reduction, t.shape, w_t.sum())
            g = torch.where(valid, g, 0)
            on_target = g * (1 - ctx.eps) * w_t  # coefficient of onehot(y_i) in q_i
            spread = g * (ctx.eps / classes)  # coefficient of w in q_i
            total = on_target + spread * (classes if weight is None else weight.sum())  # sum_c q_ic
            d = p * total.unsqueeze(1)
            smoothing = spread.unsqueeze(1) * (1 if weight is None else weight)
            if torch.is_grad_enabled():
                d = d.scatter_add(1, safe_t.unsqueeze(1), -on_target.unsqueeze(1))
                if ctx.eps:
                    d = d - smoothing
            else:
                d.scatter_add_(1, safe_t.unsqueeze(1), -on_target.unsqueeze(1))
                if ctx.eps:
                    d.sub_(smoothing)
        if grad_logp is not None:
            g_rows = grad_logp.reshape(p.shape)
            through_logp = g_rows - p * g_rows.sum(1, keepdim=True)
            d = through_logp if d is None else d + through_logp
        if d is None:
            return (None,) * 6
        return d.reshape(logp.shape), None, None, None, None, None


def _plain(all_counted: bool | None, weight, eps: float) -> bool:
    """Every target a class index (read and checked), no class weights, no smoothing."""
    return bool(all_counted) and weight is None and not eps


def _target_weights(t: torch.Tensor, weight, ignore_index: int, dtype: torch.dtype):
    """(counted mask, targets safe to index with, weight of each example's target; 0 if ignored)."""
    valid = t != ignore_index
    safe_t = torch.where(valid, t, 0)
    w_t = valid.to(dtype) if weight is None else torch.where(valid, weight[safe_t], 0)
    return valid, safe_t, w_t
