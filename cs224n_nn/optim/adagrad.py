"""AdaGrad: a per-coordinate learning rate from the sum of squared gradients."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._checks import check_common, check_nonnegative
from ._l2_term import l2_gradient
from ._optimizer import Optimizer


def adagrad(
    param,
    grad,
    state_sum,
    *,
    step,
    lr: float,
    lr_decay: float,
    weight_decay: float,
    eps: float,
    maximize: bool,
    eps_inside_sqrt: bool,
) -> None:
    """One AdaGrad step (Duchi, Hazan & Singer, 2011; notes section 2.9,
    Snippet 2.3), in place::

        g      = grad + weight_decay * param
        lr_t   = lr / (1 + (step - 1) * lr_decay)
        sum   += g * g
        param -= lr_t * g / (sqrt(sum) + eps)       # torch.optim.Adagrad
        param -= lr_t * g / sqrt(sum + eps)         # the notes, eps_inside_sqrt=True

    For a sparse gradient (``nn.Embedding(sparse=True)``) the optimizer runs
    this rule on the rows it touches only: the sum and the parameter of every
    other row stay as they are, which is what lets AdaGrad give rare words
    large steps.
    """
    g = l2_gradient(param, grad, maximize=maximize, weight_decay=weight_decay)
    step_lr = lr / (1 + (step - 1) * lr_decay)
    state_sum.addcmul_(g, g, value=1)
    std = state_sum.add(eps).sqrt_() if eps_inside_sqrt else state_sum.sqrt().add_(eps)
    param.addcdiv_(g, std, value=-step_lr)


class AdaGrad(Optimizer):
    """Drop-in for :class:`torch.optim.Adagrad`; the rule is :func:`adagrad`.

    Extra keyword: ``eps_inside_sqrt=False``; ``True`` uses the notes'
    ``sqrt(sum + eps)`` (Snippet 2.3) instead of torch's ``sqrt(sum) + eps``.
    Sparse gradients are supported (without weight decay, as in torch).
    """

    update = staticmethod(adagrad)
    state_keys = ("sum",)
    supports_sparse = True
    extra_defaults = {"eps_inside_sqrt": False}

    def __init__(
        self,
        params,
        lr: float | Tensor = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        eps_inside_sqrt: bool = False,
    ) -> None:
        check_common("Adagrad", lr=lr, weight_decay=weight_decay, eps=eps, foreach=foreach,
                     fused=fused, differentiable=differentiable)
        check_nonnegative("lr_decay", lr_decay)
        check_nonnegative("initial_accumulator_value", initial_accumulator_value)
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, fused=fused,
                        eps_inside_sqrt=eps_inside_sqrt)
        super().__init__(params, defaults)

    def _init_state(self, param: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        state["step"] = torch.tensor(0.0)
        state["sum"] = torch.full_like(param, group["initial_accumulator_value"],
                                       memory_format=torch.preserve_format)

    def _step_scalars(self, step, fresh, group):
        return {"step": step}

    def _hyperparameters(self, group: dict[str, Any]) -> dict[str, Any]:
        return dict(lr=float(group["lr"]), lr_decay=group["lr_decay"],
                    weight_decay=group["weight_decay"], eps=group["eps"],
                    maximize=group["maximize"], eps_inside_sqrt=group["eps_inside_sqrt"])
