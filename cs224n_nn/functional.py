"""Functional API over the hand-written Functions, named and called like ``torch.nn.functional``.

Each function is a thin call into :mod:`cs224n_nn.autograd`, where the
formulas, derivatives and input checks live. Use them as drop-in replacements::

    import cs224n_nn.functional as cf
    h = cf.tanh(cf.affine(x, W, b))          # torch.tanh(F.linear(x, W, b))
    loss = cf.softmax_cross_entropy(h @ U.T, y)
"""

from __future__ import annotations

import torch

from . import autograd as _fn
from .autograd import _validate

__all__ = [
    "sigmoid", "tanh", "hardtanh", "softsign", "relu", "leaky_relu", "affine", "dropout", "embedding",
    "max_margin_loss", "multiclass_max_margin_loss", "softmax_cross_entropy",
    "crf_nll",
]


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """``1 / (1 + exp(-x))``; derivative ``y (1 - y)`` (notes section 7.4)."""
    return _fn.Sigmoid.apply(x)


def tanh(x: torch.Tensor) -> torch.Tensor:
    """``tanh(x)``; derivative ``1 - y^2`` (notes section 7.4)."""
    return _fn.Tanh.apply(x)


def hardtanh(x: torch.Tensor, min_val: float = -1.0, max_val: float = 1.0) -> torch.Tensor:
    """``clamp(x, min_val, max_val)``; derivative 1 strictly inside, 0 outside and at the corners (notes 7.4)."""
    return _fn.HardTanh.apply(x, min_val, max_val)


def softsign(x: torch.Tensor) -> torch.Tensor:
    """``x / (1 + |x|)``; derivative ``1 / (1 + |x|)^2`` (notes section 7.4)."""
    return _fn.SoftSign.apply(x)


def relu(x: torch.Tensor) -> torch.Tensor:
    """``max(x, 0)``; derivative 1 for ``x > 0``, else 0 (``relu'(0) = 0``; notes section 7.4)."""
    return _fn.ReLU.apply(x)


def leaky_relu(x: torch.Tensor, negative_slope: float = 0.01) -> torch.Tensor:
    """``x`` for ``x > 0``, else ``negative_slope * x``; derivative 1 or ``negative_slope`` (at 0: the slope)."""
    return _fn.LeakyReLU.apply(x, negative_slope)


def affine(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ weight.T + bias`` (notes sections 2 and 6), same as ``torch.nn.functional.linear``."""
    return _fn.Affine.apply(x, weight, bias)


def dropout(x: torch.Tensor, p: float = 0.5, training: bool = True) -> torch.Tensor:
    """Inverted dropout (notes section 7.3): zero each element with probability ``p``, scale the rest by ``1/(1-p)``.

    ``p`` in [0, 1]; ``p = 1`` drops everything and returns zeros (gradient 0),
    as torch does. Returns ``x`` itself when not training or when ``p == 0``, as torch does.
    """
    _validate.floating(x, "input")
    p = _validate.drop_probability(p)
    if not training or p == 0.0:
        return x
    return _fn.Dropout.apply(x, _fn.keep_mask(x, p))


def embedding(ids: torch.Tensor, weight: torch.Tensor, padding_idx: int | None = None,
              max_norm: float | None = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
              sparse: bool = False) -> torch.Tensor:
    """Rows ``weight[ids]``; gradient scatter-added into the rows used, none into ``padding_idx``.

    The arguments of ``torch.nn.functional.embedding``: with ``max_norm`` the
    looked-up rows of ``weight`` whose ``norm_type``-norm exceeds it are first
    rescaled to norm ``max_norm`` in place (outside autograd, as torch does);
    ``scale_grad_by_freq`` divides each position's gradient by its id's count
    in ``ids``; ``sparse`` makes the gradient a sparse COO tensor.
    """
    if max_norm is not None:
        _validate.embedding(ids, weight, padding_idx)
        _fn.renorm_rows_(weight, ids, _validate.real(max_norm, "max_norm"), _validate.real(norm_type, "norm_type"))
    return _fn.Embedding.apply(ids, weight, padding_idx, sparse, scale_grad_by_freq)


def max_margin_loss(s: torch.Tensor, s_c: torch.Tensor, margin: float = 1.0,
                    reduction: str = "mean") -> torch.Tensor:
    """The notes' ``max(0, margin + s_c - s)`` (section 4), reduced by ``reduction``."""
    return _fn.MaxMarginLoss.apply(s, s_c, margin, reduction)


def multiclass_max_margin_loss(scores: torch.Tensor, target: torch.Tensor, margin: float = 1.0,
                               weight: torch.Tensor | None = None, reduction: str = "mean",
                               p: int = 1) -> torch.Tensor:
    """``J_i = w[y_i]/C sum_{j != y_i} max(0, margin - x_y + x_j)^p`` (p 1 or 2), equal to
    ``torch.nn.functional.multi_margin_loss(scores, target, p, margin, weight, reduction=reduction)``;
    0-d scores are one class (loss 0), as in torch."""
    return _fn.MultiClassMaxMarginLoss.apply(scores, target, margin, weight, reduction, p)


def softmax_cross_entropy(scores: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                          ignore_index: int = -100, reduction: str = "mean",
                          label_smoothing: float = 0.0) -> torch.Tensor:
    """Equal to ``torch.nn.functional.cross_entropy``: (C,), (N, C) or (N, C, d1, ...) scores, int64 class
    indices or class probabilities as targets (notes section 7.2)."""
    loss, _ = _fn.SoftmaxCrossEntropy.apply(scores, target, weight, ignore_index, reduction, label_smoothing)
    return loss


def crf_nll(emissions: torch.Tensor, tags: torch.Tensor, transitions: torch.Tensor,
            start_transitions: torch.Tensor, end_transitions: torch.Tensor, mask: torch.Tensor | None = None,
            reduction: str = "mean") -> torch.Tensor:
    """Linear-chain CRF negative log-likelihood ``log Z - s(y)`` (Collobert et al. 2011's sentence-level objective).

    emissions (B, T, K), tags (B, T) int64, transitions (K, K) from row tag to
    column tag, start/end (K,), mask a left-aligned bool (B, T) or None;
    reduction ``none`` (B,), ``sum`` or ``mean`` over the batch. Equals minus
    ``torchcrf.CRF(K, batch_first=True)``'s log-likelihood with the same
    parameters; the formulas are in :mod:`cs224n_nn.autograd.crf`.
    """
    return _fn.CRFNegLogLikelihood.apply(emissions, tags, transitions, start_transitions, end_transitions,
                                         mask, reduction)


# The fused layers, each one Function (cs224n_nn.autograd.layer): the notes' layer
# f(x W^T + b) with dropout in the same pass, and the output layer fused with its loss.
from .autograd.layer import dense, dense_cross_entropy, dense_multi_margin  # noqa: E402

__all__ += ["dense", "dense_cross_entropy", "dense_multi_margin"]
