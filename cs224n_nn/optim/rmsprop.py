"""RMSProp: divide the gradient by a running RMS of recent gradients."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._checks import check_common, check_nonnegative
from ._l2_term import l2_gradient
from ._optimizer import Optimizer


def rmsprop(
    param,
    grad,
    square_avg,
    grad_avg,
    momentum_buffer,
    *,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: bool,
    maximize: bool,
) -> None:
    """One RMSProp step (Hinton, Coursera lecture 6e, 2012; notes section 2.9,
    Snippet 2.4, where ``decay_rate`` is ``alpha``), in place::

        g       = grad + weight_decay * param
        E[g^2]  = alpha * E[g^2] + (1 - alpha) * g^2
        E[g]    = alpha * E[g] + (1 - alpha) * g                  # centered only
        rms     = sqrt(E[g^2] - E[g]^2 if centered else E[g^2]) + eps
        b       = momentum * b + g / rms                          # momentum > 0
        param  -= lr * (b if momentum > 0 else g / rms)

    ``centered`` (Graves, 2013) divides by an estimate of the standard
    deviation instead of the RMS.
    """
    g = l2_gradient(param, grad, maximize=maximize, weight_decay=weight_decay)
    square_avg.mul_(alpha).addcmul_(g, g, value=1 - alpha)
    if centered:
        grad_avg.lerp_(g, 1 - alpha)
        rms = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
    else:
        rms = square_avg.sqrt()
    rms.add_(eps)
    if momentum > 0:
        momentum_buffer.mul_(momentum).addcdiv_(g, rms)
        param.add_(momentum_buffer, alpha=-lr)
    else:
        param.addcdiv_(g, rms, value=-lr)


class RMSProp(Optimizer):
    """Drop-in for :class:`torch.optim.RMSprop`; the rule is :func:`rmsprop`."""

    update = staticmethod(rmsprop)
    state_keys = ("square_avg", "grad_avg", "momentum_buffer")

    def __init__(
        self,
        params,
        lr: float | Tensor = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        check_common("RMSprop", lr=lr, weight_decay=weight_decay, eps=eps, foreach=foreach,
                     fused=None, differentiable=differentiable, capturable=capturable)
        check_nonnegative("alpha", alpha)
        check_nonnegative("momentum", momentum)
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, capturable=capturable, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, fused=None)
        super().__init__(params, defaults)

    def _init_state(self, param: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        state["step"] = torch.tensor(0.0)
        state["square_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        if group["momentum"] > 0:
            state["momentum_buffer"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        if group["centered"]:
            state["grad_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def _hyperparameters(self, group: dict[str, Any]) -> dict[str, Any]:
        return dict(lr=float(group["lr"]), alpha=group["alpha"], eps=group["eps"],
                    weight_decay=group["weight_decay"], momentum=group["momentum"],
                    centered=group["centered"], maximize=group["maximize"])
