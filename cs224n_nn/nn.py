"""Drop-in ``torch.nn`` modules whose forward and backward are the hand-written Functions.

Each class subclasses its ``torch.nn`` twin, so constructor arguments,
parameter names, default initialisation, ``state_dict`` keys, ``repr`` and
``isinstance`` checks are torch's; only ``forward`` is ours (through
:mod:`cs224n_nn.functional`). ``inplace=True`` is accepted where torch has it
and ignored: the output is always a new tensor (an in-place activation would
overwrite the tensor the backward saved).

Kinks follow torch: ``relu'(0) = 0``, ``hardtanh'`` is 0 at ``min_val`` and
``max_val``, ``leaky_relu'(0) = negative_slope``.
"""

from __future__ import annotations

import torch
from torch import nn as _tnn

from . import functional as F
from .autograd import _validate

__all__ = [
    "Sigmoid", "Tanh", "Hardtanh", "Softsign", "ReLU", "LeakyReLU", "Linear", "Dropout", "Embedding",
    "MaxMarginLoss", "MultiClassMaxMarginLoss", "CrossEntropyLoss",
    "CRF",
]


class Sigmoid(_tnn.Sigmoid):
    """``y = 1 / (1 + exp(-x))``, ``dy/dx = y (1 - y)`` (notes section 7.4; the notes' sign typo in docs/errata.md)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return F.sigmoid(input)


class Tanh(_tnn.Tanh):
    """``y = tanh(x) = 2 sigmoid(2x) - 1``, ``dy/dx = 1 - y^2`` (notes sections 7.4 and 9)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return F.tanh(input)


class Hardtanh(_tnn.Hardtanh):
    """``y = clamp(x, min_val, max_val)``; ``dy/dx = 1`` for ``min_val < x < max_val``, else 0 (notes section 7.4).

    At exactly ``min_val``/``max_val`` the derivative is 0 (torch's choice).
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return F.hardtanh(input, self.min_val, self.max_val)


class Softsign(_tnn.Softsign):
    """``y = x / (1 + |x|)``, ``dy/dx = 1 / (1 + |x|)^2`` (notes section 7.4; the notes' typo in docs/errata.md)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return F.softsign(input)


class ReLU(_tnn.ReLU):
    """``y = max(x, 0)``, ``dy/dx = 1`` for ``x > 0``, else 0, so ``relu'(0) = 0`` (notes section 7.4)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return F.relu(input)


class LeakyReLU(_tnn.LeakyReLU):
    """``y = max(x, k x)`` for ``k = negative_slope``; ``dy/dx = 1`` for ``x > 0``, else ``k`` (notes section 7.4)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(input, self.negative_slope)


class Linear(_tnn.Linear):
    """``z = x W^T + b`` (notes section 2); backward ``dW = delta^T x``, ``db = sum delta``, ``dx = delta W`` (section 6).

    ``weight`` is ``(out_features, in_features)`` and both parameters start
    from torch's default initialisation (use :mod:`cs224n_nn.init` for Xavier).
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return F.affine(input, self.weight, self.bias)


class Dropout(_tnn.Dropout):
    """Inverted dropout (notes section 7.3): in training, ``y = x * mask / (1 - p)`` with ``mask ~ Bernoulli(1 - p)``;
    ``dy/dx = mask / (1 - p)``. The identity in ``eval()`` mode.

    ``p`` is the drop probability, as in torch, in [0, 1] (``p = 1`` gives zeros). The mask is
    :func:`cs224n_nn.autograd.keep_mask`'s: the same law as torch's, drawn from a cheaper uniform draw,
    so it is not the mask ``torch.nn.Dropout`` draws after the same seed.
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        _validate.drop_probability(p)
        super().__init__(p, inplace)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return F.dropout(input, self.p, self.training)


class Embedding(_tnn.Embedding):
    """Word-vector lookup ``y[..., :] = weight[ids[...], :]`` (the window of word vectors of notes section 3).

    Backward: the gradient of each position is scatter-added into the row of
    its id; row ``padding_idx`` gets none; ``scale_grad_by_freq`` divides it by
    its id's count in the batch; ``sparse=True`` makes it a sparse COO tensor.
    ``max_norm`` rescales the looked-up rows in place before the lookup, as torch.
    ``Embedding.from_pretrained(...)`` works as in torch.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return F.embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                           self.scale_grad_by_freq, self.sparse)


class MaxMarginLoss(_tnn.Module):
    """The notes' max-margin objective (section 4): ``J = max(0, margin + s_c - s)``, reduced by ``reduction``.

    ``dJ/ds_c = -dJ/ds = 1`` where the margin is violated, else 0 (section 5).
    ``forward(s, s_c)`` takes the scores of true and corrupt windows.
    """

    def __init__(self, margin: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        self.margin = _validate.real(margin, "margin")
        self.reduction = _validate.reduction(reduction)

    def forward(self, s: torch.Tensor, s_c: torch.Tensor) -> torch.Tensor:
        return F.max_margin_loss(s, s_c, self.margin, self.reduction)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, reduction={self.reduction!r}"


class MultiClassMaxMarginLoss(_tnn.MultiMarginLoss):
    """``J_i = w[y_i]/C * sum_{j != y_i} max(0, margin - x_{y_i} + x_j)^p``, the section 4 objective against every
    wrong class (``p = 1``, the notes' hinge) or its square (``p = 2``); the twin of ``torch.nn.MultiMarginLoss``.

    ``dJ_i/dx_j = w[y_i]/C * p max(0, z_j)^(p-1)`` for each violating ``j``; ``dJ_i/dx_{y_i}`` is minus their sum.
    """

    def __init__(self, p: int = 1, margin: float = 1.0, weight: torch.Tensor | None = None,
                 size_average=None, reduce=None, reduction: str = "mean") -> None:
        if p not in (1, 2) or isinstance(p, bool):
            raise ValueError(f"p must be 1 or 2 (as torch.nn.MultiMarginLoss), got {p!r}")
        super().__init__(p, margin, weight, size_average, reduce, reduction)
        _validate.reduction(self.reduction)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.multiclass_max_margin_loss(input, target, self.margin, self.weight, self.reduction, self.p)

    def extra_repr(self) -> str:
        return ("" if self.p == 1 else f"p={self.p}, ") + f"margin={self.margin}, reduction={self.reduction!r}"


class CrossEntropyLoss(_tnn.CrossEntropyLoss):
    """Softmax cross-entropy ``J_i = -log softmax(x_i)[y_i]`` (the loss of notes section 7.2), the twin of
    ``torch.nn.CrossEntropyLoss`` for (C,), (N, C) or (N, C, d1, ...) scores and class-index or
    class-probability targets.

    ``dJ_i/dx_i = softmax(x_i) - onehot(y_i)`` (with class weights and label
    smoothing: ``softmax(x_i) sum_c q_ic - q_i``, see ``SoftmaxCrossEntropy``).
    """

    def __init__(self, weight: torch.Tensor | None = None, size_average=None, ignore_index: int = -100,
                 reduce=None, reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__(weight, size_average, ignore_index, reduce, reduction, label_smoothing)
        _validate.reduction(self.reduction)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.softmax_cross_entropy(input, target, self.weight, self.ignore_index, self.reduction,
                                       self.label_smoothing)

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}, reduction={self.reduction!r}, label_smoothing={self.label_smoothing}"


class CRF(_tnn.Module):
    """Linear-chain CRF over per-token tag scores (Collobert et al. 2011, sentence-level log-likelihood).

    Parameters ``transitions (K, K)`` (row = from, column = to),
    ``start_transitions (K,)`` and ``end_transitions (K,)``, initialised
    uniform(-0.1, 0.1) as pytorch-crf does. ``forward(emissions, tags,
    mask=None, reduction="mean")`` is the negative log-likelihood
    (:func:`cs224n_nn.functional.crf_nll`; batch first: emissions (B, T, K));
    ``decode(emissions, mask=None)`` the best tag path of each sentence by
    Viterbi with the learned scores, as lists of tag ids.
    """

    def __init__(self, num_tags: int, device=None, dtype=None) -> None:
        if isinstance(num_tags, bool) or not isinstance(num_tags, int) or num_tags < 1:
            raise ValueError(f"num_tags must be a positive integer, got {num_tags!r}")
        super().__init__()
        self.num_tags = num_tags
        kw = {"device": device, "dtype": dtype}
        self.transitions = _tnn.Parameter(torch.empty(num_tags, num_tags, **kw))
        self.start_transitions = _tnn.Parameter(torch.empty(num_tags, **kw))
        self.end_transitions = _tnn.Parameter(torch.empty(num_tags, **kw))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for p in (self.transitions, self.start_transitions, self.end_transitions):
            _tnn.init.uniform_(p, -0.1, 0.1)

    def forward(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor | None = None,
                reduction: str = "mean") -> torch.Tensor:
        return F.crf_nll(emissions, tags, self.transitions, self.start_transitions, self.end_transitions,
                         mask, reduction)

    def decode(self, emissions: torch.Tensor, mask: torch.Tensor | None = None) -> list[list[int]]:
        from .autograd.crf import check_crf_inputs, viterbi_decode

        check_crf_inputs(emissions, None, self.transitions, self.start_transitions, self.end_transitions, mask)
        paths = viterbi_decode(emissions, self.transitions, self.start_transitions, self.end_transitions, mask)
        lengths = [emissions.shape[1]] * emissions.shape[0] if mask is None else mask.sum(1).tolist()
        return [row[:n] for row, n in zip(paths.tolist(), lengths)]

    def extra_repr(self) -> str:
        return f"num_tags={self.num_tags}"


# The notes' layer as one Function (cs224n_nn.autograd.layer).
from .autograd.layer import ACTIVATION_PARAMS, activation_params, dense_checked  # noqa: E402


class Dense(_tnn.Linear):
    """The notes' layer ``a = f(x W^T + b)`` (sections 2 and 7.4) as one Function, ``cs224n_nn.autograd.DenseLayer``.

    Backward ``delta = f'(z) * dJ/da``, ``dW = delta^T x``, ``db = sum delta``,
    ``dx = delta W`` (section 6) in one autograd node. ``weight``/``bias`` are
    ``torch.nn.Linear``'s (same shapes, names and default initialisation);
    ``activation`` is one of ``"sigmoid"``, ``"tanh"``, ``"hardtanh"``,
    ``"softsign"``, ``"relu"``, ``"leaky_relu"``, its parameters
    (``min_val``/``max_val``, ``negative_slope``) as keywords. ``dropout`` > 0
    applies inverted dropout (section 7.3) to the output inside the same pass
    while ``training``: ``F.dropout(act(linear(x)), dropout, self.training)``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "tanh",
                 device=None, dtype=None, *, dropout: float = 0.0, **params) -> None:
        checked = activation_params(activation, **params)
        super().__init__(in_features, out_features, bias, device, dtype)
        self.activation = activation
        self.activation_params = dict(zip(ACTIVATION_PARAMS.get(activation, {}), checked))
        self.dropout = _validate.drop_probability(dropout)
        self._params = checked

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return dense_checked(input, self.weight, self.bias, self.activation, self._params, self.dropout,
                             self.training)

    def extra_repr(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in self.activation_params.items())
        dropout = f", dropout={self.dropout}" if self.dropout else ""
        return f"{super().extra_repr()}, activation={self.activation!r}{extra}{dropout}"


__all__ += ["Dense"]
