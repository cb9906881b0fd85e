"""Hyperparameter checks shared by the optimizers.

Every failure is a ``ValueError`` whose message names the parameter and its
value in torch.optim's words ("Invalid rho value: 1.1"), so code that
matches torch's messages matches ours.
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor


def as_float(name: str, value: Any) -> float:
    """``value`` as a Python float; ``ValueError`` naming ``name`` unless it is a
    finite real number or a one-element tensor holding one."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"Tensor {name} must be 1-element, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"Invalid {name} value: {value!r} (must be a real number)")
    if not math.isfinite(value):
        raise ValueError(f"Invalid {name} value: {value} (must be finite)")
    return float(value)


def check_nonnegative(name: str, value: Any) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is finite and >= 0."""
    if as_float(name, value) < 0:
        raise ValueError(f"Invalid {name} value: {value} (must be >= 0)")


def check_in_range(name: str, value: Any, low: float, high: float, *, high_inclusive: bool = False) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``low <= value < high`` (or ``<= high``)."""
    v = as_float(name, value)
    ok = low <= v <= high if high_inclusive else low <= v < high
    if not ok:
        bracket = "]" if high_inclusive else ")"
        raise ValueError(f"Invalid {name} value: {value} (must be in [{low}, {high}{bracket})")


#: The torch.optim keywords our optimizers accept but refuse to switch on,
#: with the reason; the one list docs/optim.md and the tests read.
REFUSED_KEYWORDS: dict[str, str] = {
    "capturable": "CUDA-graph capture needs the step count kept on the device and every bias "
                  "correction computed there; our rules read it on the host (use torch.optim for CUDA graphs)",
    "differentiable": "step() runs under no_grad; torch's differentiable mode would need every "
                      "in-place update rewritten out of place",
}


def check_common(
    cls_name: str,
    *,
    lr: Any,
    weight_decay: Any,
    foreach: bool | None,
    fused: bool | None,
    differentiable: bool,
    capturable: bool = False,
    eps: Any = None,
) -> None:
    """The checks every optimizer makes: lr, eps, weight decay and the path flags.

    ``differentiable`` and ``capturable`` are refused here, for every
    optimizer, with the reason from :data:`REFUSED_KEYWORDS`.
    """
    check_nonnegative("lr", lr)
    check_nonnegative("weight_decay", weight_decay)
    if eps is not None:
        check_nonnegative("eps", eps)
    if foreach and fused:
        raise ValueError(f"{cls_name}: foreach=True and fused=True cannot both be set")
    for key, on in (("differentiable", differentiable), ("capturable", capturable)):
        if on:
            raise ValueError(f"{cls_name}: {key}=True is not supported: {REFUSED_KEYWORDS[key]}")
