"""Adadelta: AdaGrad with decaying averages and a unit-correct step."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._checks import check_common, check_in_range
from ._l2_term import l2_gradient
from ._optimizer import Optimizer


def adadelta(
    param,
    grad,
    square_avg,
    acc_delta,
    *,
    lr: float,
    rho: float,
    eps: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    """One Adadelta step (Zeiler, 2012, Algorithm 1), in place::

        g          = grad + weight_decay * param
        E[g^2]     = rho * E[g^2] + (1 - rho) * g^2
        delta      = sqrt(E[dx^2] + eps) / sqrt(E[g^2] + eps) * g
        E[dx^2]    = rho * E[dx^2] + (1 - rho) * delta^2
        param     -= lr * delta

    The slides list it among the fixes for AdaGrad's ever-shrinking step
    (notes section 2.9): a decaying average replaces AdaGrad's sum, and the
    ratio of RMS values gives the step the units of ``param``, so the
    default ``lr`` is 1.
    """
    g = l2_gradient(param, grad, maximize=maximize, weight_decay=weight_decay)
    square_avg.mul_(rho).addcmul_(g, g, value=1 - rho)
    std = square_avg.add(eps).sqrt_()
    delta = acc_delta.add(eps).sqrt_().div_(std).mul_(g)
    acc_delta.mul_(rho).addcmul_(delta, delta, value=1 - rho)
    param.add_(delta, alpha=-lr)


class Adadelta(Optimizer):
    """Drop-in for :class:`torch.optim.Adadelta`; the rule is :func:`adadelta`."""

    update = staticmethod(adadelta)
    state_keys = ("square_avg", "acc_delta")

    def __init__(
        self,
        params,
        lr: float | Tensor = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        capturable: bool = False,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        check_common("Adadelta", lr=lr, weight_decay=weight_decay, eps=eps, foreach=foreach,
                     fused=None, differentiable=differentiable, capturable=capturable)
        check_in_range("rho", rho, 0.0, 1.0, high_inclusive=True)
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, foreach=foreach,
                        capturable=capturable, maximize=maximize, differentiable=differentiable,
                        fused=None)
        super().__init__(params, defaults)

    def _init_state(self, param: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        state["step"] = torch.tensor(0.0)
        state["square_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["acc_delta"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def _hyperparameters(self, group: dict[str, Any]) -> dict[str, Any]:
        return dict(lr=float(group["lr"]), rho=group["rho"], eps=group["eps"],
                    weight_decay=group["weight_decay"], maximize=group["maximize"])
