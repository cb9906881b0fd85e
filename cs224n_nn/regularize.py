"""L2 regularisation from the notes (section "Regularization").

The notes add to the loss ``J`` a penalty on the weight matrices:

    J_R = J + lambda * sum_i ||W^(i)||_F^2,    ||W||_F^2 = sum_jk W_jk^2

(the notes print the unsquared norm ``||W||_F``; that is a typo, see GUIDE
section 4: the "quadratic nature" they describe and the usual ``2 lambda W``
gradient need the square). "The bias terms are not regularized": a bias only
shifts a unit's output, and shrinking it toward zero buys no smoothness.

What counts as a weight here: a parameter with at least 2 dimensions whose
name does not end in ``"bias"``. That takes in linear and convolution weights
and embedding matrices (the notes' word vectors ``L`` are a weight matrix too)
and leaves out biases and the 1-D scales and shifts of normalisation layers.
To regularise another set, pass the parameters you want to :func:`l2_penalty`.

Relation to an optimizer's ``weight_decay``: the penalty's gradient is
``2 * lambda * W``, while ``torch.optim.SGD(weight_decay=wd)`` adds ``wd * W``
to the gradient. So ``lambda`` in the loss equals SGD (and Adam, AdaGrad,
RMSprop, ...) with ``weight_decay = 2 * lambda`` on the decay group of
:func:`decay_groups`; AdamW's decoupled decay is a different rule.

Nothing here imports Lightning or :mod:`cs224n_nn.ner`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["is_weight", "l2_penalty", "decay_groups"]

ParamsLike = nn.Module | Iterable[Tensor] | Iterable[tuple[str, Tensor]]


def is_weight(name: str, param: Tensor) -> bool:
    """Whether ``param`` is a weight the L2 penalty applies to.

    A weight has ``ndim >= 2``; a name ending in ``"bias"`` is never one.

    >>> is_weight("fc.weight", torch.zeros(3, 4)), is_weight("fc.bias", torch.zeros(3))
    (True, False)
    """
    return param.dim() >= 2 and not name.endswith("bias")


def _check_weight_decay(weight_decay: float) -> float:
    weight_decay = float(weight_decay)
    if not math.isfinite(weight_decay) or weight_decay < 0:
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay}")
    return weight_decay


def _named_parameters(module_or_params: ParamsLike) -> Iterator[tuple[str, Tensor]]:
    """``(name, tensor)`` pairs, each tensor once; bare tensors get the name ``""``."""
    if isinstance(module_or_params, nn.Module):
        yield from module_or_params.named_parameters()  # already removes duplicates
        return
    if isinstance(module_or_params, Tensor):
        raise TypeError("module_or_params must be a Module or an iterable of tensors, got a single Tensor; wrap it in a list")
    seen: set[int] = set()
    for item in module_or_params:
        name, tensor = item if isinstance(item, tuple) else ("", item)
        if not isinstance(tensor, Tensor):
            raise TypeError(f"module_or_params must hold tensors, got {type(tensor).__name__}")
        if id(tensor) not in seen:
            seen.add(id(tensor))
            yield name, tensor


def l2_penalty(module_or_params: ParamsLike, weight_decay: float) -> Tensor:
    """The notes' L2 term ``weight_decay * sum ||W||_F^2`` over the weights only.

    Args:
        module_or_params: a model (its weights are picked by :func:`is_weight`),
            or an iterable of tensors or ``(name, tensor)`` pairs such as
            ``model.named_parameters()`` (same rule; a bare tensor has no name,
            so only its ``ndim`` decides). A tensor listed twice counts once.
        weight_decay: ``lambda >= 0``.

    Returns:
        A 0-dim tensor on the weights' device and dtype, differentiable with
        gradient ``2 * weight_decay * W`` for each weight and none for the
        rest. With no weights at all it is a zero of the first parameter's
        device and dtype (torch's default when there is no parameter).
    """
    weight_decay = _check_weight_decay(weight_decay)
    named = list(_named_parameters(module_or_params))
    weights = [p for name, p in named if is_weight(name, p)]
    if not weights:
        like = named[0][1] if named else torch.empty(())
        return torch.zeros((), dtype=like.dtype, device=like.device)
    # sum of squares, not linalg.norm(...)**2: the same value and an exact 2W gradient
    squared_norms = torch.stack([w.pow(2).sum() for w in weights])
    return weight_decay * squared_norms.sum()


def decay_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Split ``module``'s parameters into optimizer groups that decay weights only.

    Returns ``[{"params": weights, "weight_decay": weight_decay},
    {"params": others, "weight_decay": 0.0}]``, with weights chosen by
    :func:`is_weight`, for any ``torch.optim.Optimizer``::

        torch.optim.SGD(decay_groups(model, 1e-4), lr=0.1)

    Every parameter of ``module`` (frozen ones included; a shared one once)
    is in exactly one group, in ``module.parameters()`` order. A group may be
    empty, which torch optimizers accept. With SGD, ``weight_decay = 2 *
    lambda`` gives the same steps as adding ``l2_penalty(module, lambda)`` to
    the loss.
    """
    weight_decay = _check_weight_decay(weight_decay)
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    decay, no_decay = [], []
    for name, param in _named_parameters(module):
        (decay if is_weight(name, param) else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
