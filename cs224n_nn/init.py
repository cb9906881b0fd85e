"""Weight initialisation from the notes (section "Parameter Initialization").

The notes recommend, for a weight matrix ``W`` in ``R^{n(l+1) x n(l)}`` feeding
sigmoid or tanh units, Glorot & Bengio's (2010) "Xavier" uniform draw

    W ~ U[-a, a],   a = sqrt(6 / (fan_in + fan_out)),

with every bias set to 0. Its variance ``a^2 / 3 = 2 / (fan_in + fan_out)``
is the compromise between keeping forward activations (needs
``Var = 1/fan_in``) and backward gradients (needs ``Var = 1/fan_out``) at the
same scale from layer to layer.

The notes' code snippet labelled "Xavier", ``randn(fan_in, fan_out) /
sqrt(fan_in)``, is a different scheme: a normal draw with variance
``1/fan_in`` is LeCun normal (LeCun et al., "Efficient BackProp", 1998). It is
offered here under its own name, :func:`lecun_normal_`.

Fan-in and fan-out follow torch's rule, so these functions are drop-in
replacements for ``torch.nn.init``'s: for a weight of shape
``(out_features, in_features)`` ``fan_in = size(1)``, ``fan_out = size(0)``;
for convolution kernels ``(out_channels, in_channels, *kernel)`` both are
multiplied by the receptive field ``prod(kernel)``. The draws consume torch's
random number generator exactly as ``torch.nn.init`` does, so a seed gives the
same weights with either library.

Nothing here imports Lightning or :mod:`cs224n_nn.ner`.
"""

from __future__ import annotations

import math
from typing import Callable, Literal

import torch
from torch import Tensor, nn

__all__ = [
    "fan_in_and_fan_out",
    "xavier_uniform_",
    "xavier_normal_",
    "lecun_normal_",
    "init_module_",
]


def fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)`` of a weight tensor by torch's convention.

    ``tensor`` has shape ``(out, in, *receptive_field)``:
    ``fan_in = in * prod(receptive_field)``, ``fan_out = out * prod(receptive_field)``.

    >>> fan_in_and_fan_out(torch.empty(3, 5))
    (5, 3)
    >>> fan_in_and_fan_out(torch.empty(16, 8, 3, 3))
    (72, 144)
    """
    if tensor.dim() < 2:
        raise ValueError(
            f"tensor must have at least 2 dimensions (out, in, ...) to have a fan-in and "
            f"fan-out; got shape {tuple(tensor.shape)}"
        )
    receptive_field = math.prod(tensor.shape[2:])  # 1 for a plain matrix
    return tensor.size(1) * receptive_field, tensor.size(0) * receptive_field


def _check_gain(gain: float) -> float:
    gain = float(gain)
    if not math.isfinite(gain) or gain < 0:
        raise ValueError(f"gain must be a finite number >= 0, got {gain}")
    return gain


def _check_floating(tensor: Tensor) -> None:
    if not tensor.is_floating_point():
        raise TypeError(f"tensor must have a floating-point dtype to be initialised, got {tensor.dtype}")


def _fill_(tensor: Tensor, gain: float, draw: Callable[[int, int, float], Tensor]) -> Tensor:
    """Shared body of the initialisers: check the arguments, then ``draw(fan_in, fan_out, gain)``.

    ``draw`` fills ``tensor`` in place from its distribution; it runs under
    ``no_grad`` (an initialisation is not part of the model's computation) and
    not at all for an empty tensor, which has no fan to divide by.
    """
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    gain = _check_gain(gain)
    _check_floating(tensor)
    if tensor.numel() == 0:
        return tensor
    with torch.no_grad():
        return draw(fan_in, fan_out, gain)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, *, generator: torch.Generator | None = None) -> Tensor:
    """Fill ``tensor`` in place from the notes' Xavier (Glorot) uniform distribution.

    ``W ~ U[-a, a]`` with ``a = gain * sqrt(6 / (fan_in + fan_out))``, so that
    ``Var(W) = gain^2 * 2 / (fan_in + fan_out)`` (notes, "Parameter
    Initialization"). ``gain`` scales for the nonlinearity that follows
    (``torch.nn.init.calculate_gain``).

    Args:
        tensor: weight of shape ``(out, in, *kernel)``, at least 2-D.
        gain: non-negative scale factor.
        generator: torch Generator to draw from (default: the global one).

    Returns:
        ``tensor``, filled without recording the operation in autograd.
    """

    def draw(fan_in: int, fan_out: int, gain: float) -> Tensor:
        bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
        return tensor.uniform_(-bound, bound, generator=generator)

    return _fill_(tensor, gain, draw)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, *, generator: torch.Generator | None = None) -> Tensor:
    """Fill ``tensor`` in place from the Xavier (Glorot) normal distribution.

    ``W ~ N(0, std^2)`` with ``std = gain * sqrt(2 / (fan_in + fan_out))``: the
    same variance as :func:`xavier_uniform_`, drawn from a Gaussian. Arguments
    and return value as for :func:`xavier_uniform_`.
    """

    def draw(fan_in: int, fan_out: int, gain: float) -> Tensor:
        std = gain * math.sqrt(2.0 / (fan_in + fan_out))
        return tensor.normal_(0.0, std, generator=generator)

    return _fill_(tensor, gain, draw)


def lecun_normal_(tensor: Tensor, gain: float = 1.0, *, generator: torch.Generator | None = None) -> Tensor:
    """Fill ``tensor`` in place from LeCun normal: ``N(0, (gain / sqrt(fan_in))^2)``.

    This is what the notes' snippet labelled "Xavier Initialization",
    ``W = np.random.randn(fan_in, fan_out) / np.sqrt(fan_in)``, computes (see
    GUIDE section 4): the variance ``1/fan_in`` depends on the fan-in only.
    The snippet's ``(fan_in, fan_out)`` shape is numpy's ``x @ W`` layout; here
    the tensor has torch's ``(out, in, *kernel)`` layout and the fan-in is
    computed by :func:`fan_in_and_fan_out`. The draw is a plain (untruncated)
    normal, as in the notes.

    Returns:
        ``tensor``, filled without recording the operation in autograd.
    """

    def draw(fan_in: int, fan_out: int, gain: float) -> Tensor:
        return tensor.normal_(0.0, gain / math.sqrt(fan_in), generator=generator)

    return _fill_(tensor, gain, draw)


def _is_linear(module: nn.Module) -> bool:
    # Duck typing on torch.nn.Linear's attribute names covers torch's Linear
    # and cs224n_nn.nn.Linear (same names) without importing the latter.
    weight = getattr(module, "weight", None)
    if isinstance(weight, Tensor) and nn.parameter.is_lazy(weight):
        raise ValueError(
            f"{type(module).__name__} has an uninitialised lazy weight: run one forward pass "
            "before init_module_ so its shape is known"
        )
    return (
        hasattr(module, "in_features")
        and hasattr(module, "out_features")
        and isinstance(weight, Tensor)
        and weight.dim() == 2
    )


def _is_embedding(module: nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    return (
        hasattr(module, "num_embeddings")
        and hasattr(module, "embedding_dim")
        and isinstance(weight, Tensor)
        and weight.dim() == 2
    )


def init_module_(
    module: nn.Module,
    gain: float = 1.0,
    *,
    embeddings: Literal["keep", "xavier"] = "keep",
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Initialise every linear layer of ``module`` the notes' way, in place.

    For each linear layer (``torch.nn.Linear``, ``cs224n_nn.nn.Linear`` or any
    module with ``in_features``, ``out_features`` and a 2-D ``weight``): the
    weight gets :func:`xavier_uniform_` with ``gain`` and the bias, if any, is
    set to 0 (notes, "Parameter Initialization": "bias units are initialized
    to 0").

    Embedding layers (modules with ``num_embeddings``, ``embedding_dim`` and a
    2-D ``weight``) hold word vectors, not a map from one layer to the next, so
    by default (``embeddings="keep"``) they are left untouched: they may
    already hold pretrained vectors such as GloVe. ``embeddings="xavier"``
    draws them with :func:`xavier_uniform_` (fan-in ``embedding_dim``, fan-out
    ``num_embeddings``) and zeroes the ``padding_idx`` row, if the layer has
    one, as ``torch.nn.Embedding`` does. Every other module (norm layers,
    convolutions, ...) is left as it is.

    Args:
        module: the model; shared submodules are initialised once.
        gain: scale passed to :func:`xavier_uniform_`.
        embeddings: ``"keep"`` or ``"xavier"``.
        generator: torch Generator to draw from (default: the global one).

    Returns:
        ``module``.
    """
    if embeddings not in ("keep", "xavier"):
        raise ValueError(f"embeddings must be 'keep' or 'xavier', got {embeddings!r}")
    gain = _check_gain(gain)
    for sub in module.modules():  # modules() visits a shared submodule once
        if _is_linear(sub):
            xavier_uniform_(sub.weight, gain, generator=generator)
            bias = getattr(sub, "bias", None)
            if isinstance(bias, Tensor):
                with torch.no_grad():
                    bias.zero_()
        elif _is_embedding(sub) and embeddings == "xavier":
            xavier_uniform_(sub.weight, gain, generator=generator)
            padding_idx = getattr(sub, "padding_idx", None)
            if padding_idx is not None:
                with torch.no_grad():
                    sub.weight[padding_idx].zero_()
    return module
