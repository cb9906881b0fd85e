r"""Objectives: the notes' max-margin loss (section 4), its multi-class form, and softmax cross-entropy.

``reduction`` is torch's: ``"none"`` keeps one loss per example, ``"sum"`` adds
them, ``"mean"`` divides the sum by the number of examples (for cross-entropy:
by the summed class weights of the examples not ignored, as torch does). The
backward of a reduction hands each example the upstream gradient scaled by
``1`` or ``1/denominator``; :func:`_per_example` does that in one place.

Each loss's derivative is one public function (:func:`max_margin_grad`,
:func:`multi_margin_grad`, :func:`cross_entropy_grad`) that its ``backward``
calls with the upstream gradient and its ``jvp`` with a unit one: a loss
``J(x)`` has tangent ``dJ = sum_c dJ/dx_c dx_c`` (:func:`_loss_tangent`).
Under ``torch.autocast`` the losses compute in float32, as torch's autocast
puts ``cross_entropy``, ``multi_margin_loss`` and ``margin_ranking_loss``; in
float16/bfloat16 without autocast the gradients are evaluated in float32 and
rounded once.
"""

from __future__ import annotations

import torch

from ._amp import autocast_inputs, cast, in_float32
from ._function import HandWrittenFunction
from . import _validate


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
        return grad.reshape(shape)
    if reduction == "mean":
        count = 1
        for n in shape:
            count *= n
        grad = grad / (count if denominator is None else denominator)
    return grad.expand(shape)


def _class_dim(t: torch.Tensor) -> int:
    """Where the classes are: dim 1 of (N, C, d1, ...) and (N, C), the last of (C,) (and of 0-d scores)."""
    return 1 if t.dim() >= 2 else -1


def _class_rows(t: torch.Tensor) -> torch.Tensor:
    """(N, C, d1, ...) -> (N d1 ..., C) with the classes last; (N, C) as is; (C,) -> (1, C)."""
    if t.dim() == 2:
        return t
    if t.dim() == 1:
        return t.reshape(1, -1)
    return t.movedim(1, -1).reshape(-1, t.shape[1])


def _from_class_rows(rows: torch.Tensor, shape) -> torch.Tensor:
    """The inverse of :func:`_class_rows` for a tensor of ``shape``."""
    if len(shape) == 2:
        return rows
    if len(shape) == 1:
        return rows.reshape(shape)
    return rows.reshape(shape[0], *shape[2:], shape[1]).movedim(-1, 1)


def _loss_tangent(grad_x: torch.Tensor, x_t: torch.Tensor, reduction: str, loss: torch.Tensor) -> torch.Tensor:
    """``dJ = sum_c dJ/dx_c dx_c`` per example (``"none"``) or in total, from the gradient at a unit upstream."""
    product = grad_x * x_t.to(grad_x.dtype)
    if reduction == "none":
        return product.sum(_class_dim(product)).reshape(loss.shape)
    return product.sum()


def _unit(loss: torch.Tensor) -> torch.Tensor:
    """The upstream gradient 1 for each entry of ``loss`` (what a jvp pushes through the gradient formula)."""
    return torch.ones_like(loss)


def _broadcast_check(s, s_c):
    if s.shape == s_c.shape:  # the usual case, settled without torch.broadcast_shapes (~12 us a call here)
        return
    try:
        torch.broadcast_shapes(s.shape, s_c.shape)
    except RuntimeError:
        raise ValueError(f"s and s_c must broadcast together, got shapes {tuple(s.shape)} and {tuple(s_c.shape)}") from None


@in_float32
def max_margin_grad(s, s_c, grad, margin: float, reduction: str, shape):
    r"""``(dJ/ds, dJ/ds_c)`` of ``J = reduce(max(0, margin + s_c - s))`` for upstream ``grad`` (notes section 5).

    ``dJ/ds_c = -dJ/ds = 1`` per active term (``margin + s_c - s > 0``), 0
    elsewhere and at the kink, times the reduction's share of ``grad``; each is
    summed back to its input's ``shape`` (broadcasting). The public formula
    :class:`MaxMarginLoss` reuses. ``shape = (shape of s, shape of s_c)``.
    """
    active = s_c - s + margin > 0
    # where, not active * g: a 0/1 float mask costs a cast, and an infinite upstream gradient gives 0 at an
    # inactive term (as torch's margin_ranking_loss does) where 0 * inf would give NaN.
    d_sc = torch.where(active, _per_example(grad, reduction, active.shape), 0)
    return (-d_sc).sum_to_size(shape[0]), d_sc.sum_to_size(shape[1])


class MaxMarginLoss(HandWrittenFunction):
    r"""The notes' max-margin objective (section 4): ``J = max(0, margin + s_c - s)``.

    ``s`` scores the true window, ``s_c`` a corrupt one; they broadcast
    against each other. Backward :func:`max_margin_grad`: ``dJ/ds_c = 1`` and
    ``dJ/ds = -1`` where ``margin + s_c - s > 0`` (section 5), 0 elsewhere,
    including at the kink. Forward mode: ``dJ = reduce(active * (ds_c - ds))``.
    Values and gradients equal ``torch.nn.functional.margin_ranking_loss(s, s_c, 1, margin)``
    away from the kink. Saves ``s`` and ``s_c``.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(s, s_c, margin=1.0, reduction="mean"):
        s, s_c = autocast_inputs("float32", s, s_c)
        _validate.floating(s, "s")
        _validate.floating(s_c, "s_c")
        _validate.same_dtype(s, "s", s_c, "s_c")
        margin = _validate.real(margin, "margin")
        _validate.reduction(reduction)
        _broadcast_check(s, s_c)
        return _reduce(torch.clamp_min(s_c - s + margin, 0), reduction)

    @staticmethod
    def setup_context(ctx, inputs, output):
        s, s_c, margin, reduction = inputs
        ctx.margin, ctx.reduction, ctx.dtype = float(margin), reduction, output.dtype
        ctx.save_for_backward(s, s_c)
        ctx.save_for_forward(s, s_c)

    @staticmethod
    def backward(ctx, grad):
        s, s_c = ctx.saved_tensors
        s, s_c = cast(s, grad.dtype), cast(s_c, grad.dtype)  # (they differ where autocast cast the inputs)
        ds, d_sc = max_margin_grad(s, s_c, grad, ctx.margin, ctx.reduction, (s.shape, s_c.shape))
        return ds, d_sc, None, None

    @staticmethod
    def jvp(ctx, s_t, s_c_t, margin_t, reduction_t):
        s, s_c = (t.to(ctx.dtype) for t in ctx.saved_tensors)
        active = (s_c - s + ctx.margin > 0).to(ctx.dtype)
        change = torch.zeros((), dtype=ctx.dtype, device=s.device)
        if s_c_t is not None:
            change = change + s_c_t.to(ctx.dtype)
        if s_t is not None:
            change = change - s_t.to(ctx.dtype)
        return _reduce(active * change, ctx.reduction)


def _as_rows(scores: torch.Tensor, target: torch.Tensor):
    """(C,) scores with a 0-d target are one example, and 0-d scores one example of one class: (N, C) and (N,)."""
    if scores.dim() == 2:
        return scores, target
    if scores.dim() == 0:
        return scores.reshape(1, 1), target.reshape(-1)
    return scores.reshape(-1, scores.shape[-1]), target.reshape(-1)


def _hinge_terms(x: torch.Tensor, target: torch.Tensor, margin: float) -> torch.Tensor:
    """``margin - x[i, y_i] + x[i, j]`` for every class ``j``, with 0 at ``j = y_i`` (not a competitor)."""
    t = target.unsqueeze(1)
    z = x - x.gather(1, t) + margin
    return z.scatter(1, t, 0)


@in_float32
def multi_margin_grad(scores, target, grad, p: int = 1, margin: float = 1.0, weight=None, reduction="mean"):
    r"""``dJ/dscores`` of the multi-class hinge loss for upstream ``grad`` (notes section 4, every wrong class).

    With ``z_ij = margin - x_iy + x_ij`` (``y = y_i``) and
    ``J_i = w[y_i]/C sum_{j != y} max(0, z_ij)^p``:
    ``dJ_i/dx_ij = w[y_i]/C * p max(0, z_ij)^(p-1)`` (for ``p = 1``: 1 where
    ``z_ij > 0``, 0 at the kink) for ``j != y``, and ``dJ_i/dx_iy`` is minus
    their sum. A NaN term gets 0 (torch counts it as 0 in the loss). The
    public formula :class:`MultiClassMaxMarginLoss` reuses for backward and jvp.
    """
    x, t = _as_rows(scores, target)
    z = _hinge_terms(x, t, margin)
    slope = (z > 0).to(x.dtype) if p == 1 else torch.where(z > 0, 2 * z, 0)
    # dJ_i/dx_i for a unit upstream gradient, then times each example's share of ``grad``: torch's
    # order, so an infinite upstream gradient gives what it gives there (NaN at an inactive term,
    # +-inf at the active ones and the target).
    unit = slope / x.shape[1] if weight is None else slope * (weight[t] / x.shape[1]).unsqueeze(1)
    unit = unit.scatter(1, t.unsqueeze(1), -unit.sum(1, keepdim=True))
    return (unit * _per_example(grad, reduction, t.shape).unsqueeze(1)).reshape(scores.shape)


class MultiClassMaxMarginLoss(HandWrittenFunction):
    r"""Multi-class hinge loss, the max-margin objective of section 4 against every wrong class.

    ``J_i = w[y_i] / C * sum_{j != y_i} max(0, margin - x[i, y_i] + x[i, j])^p`` (``p`` 1 or 2),
    equal to ``torch.nn.functional.multi_margin_loss(x, y, p, margin, weight)``
    (a NaN term counts as 0 there, and here); 0-d scores are one class (``C = 1``,
    loss 0), as in torch. Backward :func:`multi_margin_grad`; forward mode
    ``dJ = sum_j dJ/dx_j dx_j`` from the same formula (torch has no forward AD
    for this loss: tests compare with the reverse-mode Jacobian). ``weight``
    gets no gradient (as in torch). Saves the scores, targets and weights.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(scores, target, margin=1.0, weight=None, reduction="mean", p=1):
        scores, weight = autocast_inputs("float32", scores, weight)
        # The targets' values are read for our message only once gather has refused one, where it can.
        _validate.class_targets(scores, target, allow_scalar=True,
                                values_now=not _validate.kernel_refuses_bad_indices(scores))
        _validate.class_weight(weight, scores)
        margin = _validate.real(margin, "margin")
        _validate.reduction(reduction)
        if p not in (1, 2) or isinstance(p, bool):
            raise ValueError(f"p must be 1 or 2 (as torch.nn.functional.multi_margin_loss), got {p!r}")
        x, t = _as_rows(scores, target)
        z = _validate.explained(lambda: _hinge_terms(x, t, margin), lambda: _validate.bad_targets(t, x.shape[1]))
        # max(z, 0) with a NaN term counted as 0, as torch counts it: fmax(z, 0) elementwise, but
        # clamp_min + nan_to_num run vectorised (fmax against a 0-d zero took 106 us at 4096 x 9, these 22 us).
        hinge = torch.clamp_min(z, 0).nan_to_num(0.0, float("inf"))
        losses = (hinge if p == 1 else hinge * hinge).sum(1) / x.shape[1]
        if weight is not None:
            losses = losses * weight[t]
        if scores.dim() < 2:
            losses = losses.reshape(target.shape)
        return _reduce(losses, reduction)

    @staticmethod
    def setup_context(ctx, inputs, output):
        scores, target, margin, weight, reduction, p = inputs
        ctx.margin, ctx.reduction, ctx.p = float(margin), reduction, int(p)
        ctx.dtype, ctx.loss_shape = output.dtype, output.shape
        ctx.save_for_backward(scores, target, weight)
        ctx.save_for_forward(scores, target, weight)

    @staticmethod
    def backward(ctx, grad):
        scores, target, weight = ctx.saved_tensors
        d = multi_margin_grad(scores, target, grad, ctx.p, ctx.margin, weight, ctx.reduction)
        return d, None, None, None, None, None

    @staticmethod
    def jvp(ctx, scores_t, target_t, margin_t, weight_t, reduction_t, p_t):
        scores, target, weight = ctx.saved_tensors
        unit = torch.ones(ctx.loss_shape, dtype=ctx.dtype, device=scores.device)
        if scores_t is None:  # only the (non-differentiable) weight had a tangent
            return torch.zeros_like(unit)
        d = multi_margin_grad(scores.to(ctx.dtype), target, unit, ctx.p, ctx.margin,
                              None if weight is None else weight.to(ctx.dtype), ctx.reduction)
        return _loss_tangent(d, scores_t, ctx.reduction, unit)


@in_float32
def _cross_entropy_losses(logp, target, weight, ignore_index: int, reduction: str, eps: float, all_counted: bool,
                          scores_shape):
    """``reduce(J_i)``, ``J_i = -sum_c q_ic log p_ic``, from the rows of ``log p`` (float32 for half precision)."""
    if target.is_floating_point():
        q = _class_rows(target) * (1 - eps) + eps / logp.shape[1]
        losses = -(logp * (q if weight is None else q * weight)).sum(1)
        examples = scores_shape[:1] + scores_shape[2:] if len(scores_shape) >= 2 else ()
        return _reduce(losses.reshape(examples), reduction)
    t = target.reshape(-1)
    if all_counted and weight is None and not eps:  # every target a class: no masks needed
        picked = logp.gather(1, t.unsqueeze(1))  # log p[i, y_i], shape (N, 1)
        if reduction == "none":
            return picked.neg().reshape(target.shape)
        return (picked.sum() if reduction == "sum" else picked.mean()).neg()
    valid, safe_t, w_t = _target_weights(t, weight, ignore_index, logp.dtype)
    losses = -logp.gather(1, safe_t.unsqueeze(1)).squeeze(1) * w_t
    if eps:
        smooth = -(logp.sum(1) if weight is None else (logp * weight).sum(1))
        losses = (1 - eps) * losses + eps / logp.shape[1] * smooth
    losses = torch.where(valid, losses, 0).reshape(target.shape)
    return _reduce(losses, reduction, w_t.sum())


@in_float32
def cross_entropy_grad(logp, target, grad, weight=None, ignore_index: int = -100, reduction: str = "mean",
                       label_smoothing: float = 0.0):
    r"""``dJ/dscores`` of softmax cross-entropy from ``log p`` and the upstream ``grad`` (notes section 7.2).

    With ``q_ic = (1 - eps) w[y_i] [c = y_i] + eps / C * w[c]`` (``eps`` the
    label smoothing, ``w`` the class weights, 1 by default; ``q_i = 0`` for
    ``y_i = ignore_index``), or for class-probability targets
    ``q_ic = w[c] ((1 - eps) t_ic + eps / C)``: ``dJ_i/dx_i = p_i * sum_c q_ic - q_i``,
    i.e. ``p - onehot(y)`` in the plain case, times each example's share of
    ``grad`` (``"mean"``: ``1/sum of w[y_i]`` for indices, ``1/N`` for
    probabilities, as torch). ``logp`` is ``(C,)``, ``(N, C)`` or ``(N, C, d1, ...)``.
    The public formula :class:`SoftmaxCrossEntropy` reuses for backward and
    jvp, and the fused output layer for its backward.
    """
    rows = _class_rows(logp)
    classes = rows.shape[1]
    p = rows.exp()
    if target.is_floating_point():
        q = _class_rows(target) * (1 - label_smoothing) + label_smoothing / classes
        if weight is not None:
            q = q * weight
        g = _per_example(grad, reduction, (rows.shape[0],))
        return _from_class_rows((p * q.sum(1, keepdim=True) - q) * g.unsqueeze(1), logp.shape)
    t = target.reshape(-1)
    valid, safe_t, w_t = _target_weights(t, weight, ignore_index, p.dtype)
    g = torch.where(valid, _per_example(grad, reduction, t.shape, w_t.sum()), 0)
    on_target = g * (1 - label_smoothing) * w_t  # coefficient of onehot(y_i) in q_i
    total = on_target  # sum_c q_ic
    if label_smoothing:  # (only then: g * 0 would make an infinite upstream gradient NaN in every class)
        spread = g * (label_smoothing / classes)  # coefficient of w in q_i
        total = on_target + spread * (classes if weight is None else weight.sum())
    d = (p * total.unsqueeze(1)).scatter_add(1, safe_t.unsqueeze(1), -on_target.unsqueeze(1))
    if label_smoothing:
        d = d - spread.unsqueeze(1) * (1 if weight is None else weight)
    return _from_class_rows(d, logp.shape)


@in_float32
def cross_entropy_target_grad(logp, grad, weight=None, reduction: str = "mean", label_smoothing: float = 0.0):
    r"""``dJ/dt`` for class-probability targets: ``-(1 - eps) w[c] log p_ic`` times each example's share of ``grad``."""
    rows = _class_rows(logp)
    d = -(1 - label_smoothing) * rows * _per_example(grad, reduction, (rows.shape[0],)).unsqueeze(1)
    if weight is not None:
        d = d * weight
    return _from_class_rows(d, logp.shape)


@in_float32
def log_softmax_grad(logp, grad_logp):
    r"""``dJ/dx = g - p sum_c g_c`` through ``log p = x - logsumexp(x)`` (``d log p / dx = I - 1 p^T``), per row."""
    return grad_logp - logp.exp() * grad_logp.sum(_class_dim(logp), keepdim=True)


@in_float32
def log_softmax_jvp(logp, x_t):
    r"""``d log p = dx - sum_c p_c dx_c`` per row (the tangent of ``log p = x - logsumexp(x)``)."""
    return x_t - (logp.exp() * x_t).sum(_class_dim(logp), keepdim=True)


class SoftmaxCrossEntropy(HandWrittenFunction):
    r"""Softmax cross-entropy (the loss of notes section 7.2), equal to ``torch.nn.functional.cross_entropy``.

    With ``log p = x - logsumexp(x)`` (stable for huge scores: the largest
    score is subtracted before ``exp``), ``J_i = -sum_c q_ic log p_ic`` where
    ``q_ic = (1 - eps) w[y_i] [c = y_i] + eps / C * w[c]`` (``eps`` the label
    smoothing, ``w`` the class weights, 1 by default), and ``q_i = 0`` for
    ``y_i = ignore_index``; for class-probability targets ``t`` (shaped like
    the scores) ``q_ic = w[c] ((1 - eps) t_ic + eps / C)``. Scores are ``(C,)``,
    ``(N, C)`` or ``(N, C, d1, ...)`` (classes on dim 1), as in torch. Its
    derivative (:func:`cross_entropy_grad`) is ``dJ_i/dx_i = p_i * sum_c q_ic - q_i``
    (``p - onehot(y)`` in the plain case); probability targets get
    ``dJ/dt_ic = -(1 - eps) w[c] log p_ic`` (:func:`cross_entropy_target_grad`);
    ``weight`` gets no gradient (as in torch).

    ``apply`` returns ``(loss, log_probs)``: ``log p`` is saved for backward,
    and returning it as an output is what lets the double backward
    differentiate through it (its gradient comes back here as ``grad_logp``,
    :func:`log_softmax_grad`). ``jvp`` gives both tangents: ``dJ`` from
    :func:`cross_entropy_grad` and ``d log p`` from :func:`log_softmax_jvp`.
    :func:`cs224n_nn.functional.softmax_cross_entropy` returns the loss alone.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(scores, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        scores, weight, target = autocast_inputs("float32", scores, weight, target)
        _, all_counted = _validate.cross_entropy_targets(scores, target, ignore_index)
        _validate.class_weight(weight, scores)
        _validate.reduction(reduction)
        eps = _validate.real(label_smoothing, "label_smoothing")
        if not 0.0 <= eps <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
        # log p = x - logsumexp(x) with the log-sum-exp trick (the row's largest
        # score subtracted before exp, so nothing overflows even at ~1e38):
        # torch's log_softmax kernel computes exactly that in one pass. Computed
        # in the scores' own layout so that the output is no view (forward AD
        # wants an output tangent laid out like its primal).
        logp_out = torch.log_softmax(scores, 1 if scores.dim() >= 2 else 0)
        logp = _class_rows(logp_out)
        return _cross_entropy_losses(logp, target, weight, ignore_index, reduction, eps, bool(all_counted),
                                     scores.shape), logp_out

    @staticmethod
    def setup_context(ctx, inputs, output):
        scores, target, weight, ignore_index, reduction, label_smoothing = inputs
        ctx.ignore_index, ctx.reduction, ctx.eps = ignore_index, reduction, float(label_smoothing)
        ctx.loss_shape = output[0].shape
        # A None grad (an output that was not used) costs nothing instead of a zero tensor.
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(output[1], target, weight)
        ctx.save_for_forward(output[1], target, weight)

    @staticmethod
    def backward(ctx, grad_loss, grad_logp):
        logp, target, weight = ctx.saved_tensors
        weight = None if weight is None else weight.to(logp.dtype)
        target_in = target.to(logp.dtype) if target.is_floating_point() else target
        d = d_target = None
        if grad_loss is not None:
            d = cross_entropy_grad(logp, target_in, grad_loss, weight, ctx.ignore_index, ctx.reduction, ctx.eps)
            if ctx.needs_input_grad[1]:  # class-probability targets are differentiable, as in torch
                d_target = cross_entropy_target_grad(logp, grad_loss, weight, ctx.reduction, ctx.eps)
        if grad_logp is not None:
            through_logp = log_softmax_grad(logp, grad_logp)
            d = through_logp if d is None else d + through_logp
        return d, d_target, None, None, None, None

    @staticmethod
    def jvp(ctx, scores_t, target_t, weight_t, ignore_index_t, reduction_t, label_smoothing_t):
        logp, target, weight = ctx.saved_tensors
        weight = None if weight is None else weight.to(logp.dtype)
        target_in = target.to(logp.dtype) if target.is_floating_point() else target
        unit = torch.ones(ctx.loss_shape, dtype=logp.dtype, device=logp.device)
        loss_t, logp_t = torch.zeros_like(unit), torch.zeros_like(logp)
        if scores_t is not None:
            scores_t = scores_t.to(logp.dtype)
            d = cross_entropy_grad(logp, target_in, unit, weight, ctx.ignore_index, ctx.reduction, ctx.eps)
            loss_t = _loss_tangent(d, scores_t, ctx.reduction, unit)
            logp_t = log_softmax_jvp(logp, scores_t)
        if target_t is not None and target.is_floating_point():
            d_target = cross_entropy_target_grad(logp, unit, weight, ctx.reduction, ctx.eps)
            loss_t = loss_t + _loss_tangent(d_target, target_t, ctx.reduction, unit)
        return loss_t, logp_t


def _target_weights(t: torch.Tensor, weight, ignore_index: int, dtype: torch.dtype):
    """(counted mask, targets safe to index with, weight of each example's target; 0 if ignored)."""
    valid = t != ignore_index
    safe_t = torch.where(valid, t, 0)
    w_t = valid.to(dtype) if weight is None else torch.where(valid, weight[safe_t], 0)
    return valid, safe_t, w_t
