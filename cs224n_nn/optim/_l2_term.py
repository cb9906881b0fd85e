"""The gradient a descent rule follows, with the L2 term."""

from __future__ import annotations


def l2_gradient(param, grad, *, maximize: bool, weight_decay: float):
    """``g = ±grad + weight_decay * param``, out of place.

    ``maximize`` flips the sign so that descent on ``-f`` ascends ``f``; the
    weight-decay term is the gradient of the L2 penalty
    ``weight_decay/2 * ||param||^2`` (notes section 2.2, Regularization).
    Works on a tensor or a :class:`~cs224n_nn.optim._tensor_list.TensorList`.
    """
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad.add(param, alpha=weight_decay)
    return grad
