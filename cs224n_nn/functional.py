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
from .autograd.crf import crf_function as _crf_function

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

    ``p`` must be in [0, 1) (``p = 1`` would divide by a zero keep
    probability; torch returns zeros there, we raise). Returns ``x`` itself
    when not training or when ``p == 0``, as torch does.
    """
    _validate.floating(x, "input")
    p = _validate.drop_probability(p)
    if not training or p == 0.0:
        return x
    return _fn.Dropout.apply(x, _fn.keep_mask(x, p))


def embedding(ids: torch.Tensor, weight: torch.Tensor, padding_idx: int | None = None,
              sparse: bool = False) -> torch.Tensor:
    """Rows ``weight[ids]``; gradient scatter-added into the rows used, none into ``padding_idx``."""
    return _fn.Embedding.apply(ids, weight, padding_idx, sparse)


def max_margin_loss(s: torch.Tensor, s_c: torch.Tensor, margin: float = 1.0,
                    reduction: str = "mean") -> torch.Tensor:
    """The notes' ``max(0, margin + s_c - s)`` (section 4), reduced by ``reduction``."""
    return _fn.MaxMarginLoss.apply(s, s_c, margin, reduction)


def multiclass_max_margin_loss(scores: torch.Tensor, target: torch.Tensor, margin: float = 1.0,
                               weight: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """Equal to ``torch.nn.functional.multi_margin_loss(scores, target, p=1, margin, weight, reduction)``."""
    return _fn.MultiClassMaxMarginLoss.apply(scores, target, margin, weight, reduction)


def softmax_cross_entropy(scores: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                          ignore_index: int = -100, reduction: str = "mean",
                          label_smoothing: float = 0.0) -> torch.Tensor:
    """Equal to ``torch.nn.functional.cross_entropy`` for (N, C) or (C,) scores and int64 class targets."""
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
    if _autocast_on(emissions):
        # As torch runs log_softmax and cross_entropy under autocast: a sum of
        # exponentials over a whole sentence is computed in float32.
        emissions, transitions, start_transitions, end_transitions = (
            x.float() if isinstance(x, torch.Tensor) and x.is_floating_point() else x
            for x in (emissions, transitions, start_transitions, end_transitions))
        with torch.autocast(emissions.device.type, enabled=False):  # and every op inside stays float32
            return _crf_function().apply(emissions, tags, transitions, start_transitions, end_transitions,
                                         mask, reduction)
    return _crf_function().apply(emissions, tags, transitions, start_transitions, end_transitions, mask, reduction)


def _autocast_on(x) -> bool:
    if not isinstance(x, torch.Tensor):
        return False
    try:
        return torch.is_autocast_enabled(x.device.type)
    except TypeError:  # torch < 2.4 takes no device type
        return torch.is_autocast_enabled() if x.device.type == "cuda" else torch.is_autocast_cpu_enabled()
