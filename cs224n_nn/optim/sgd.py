"""Stochastic gradient descent with momentum and Nesterov momentum."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._checks import check_common, check_nonnegative
from ._l2_term import l2_gradient
from ._optimizer import Optimizer


def sgd(
    param,
    grad,
    momentum_buffer,
    *,
    first: bool,
    lr: float,
    momentum: float,
    dampening: float,
    nesterov: bool,
    weight_decay: float,
    maximize: bool,
    lr_in_velocity: bool,
) -> None:
    """One SGD step, in place, on a tensor (or a :class:`TensorList`).

    With ``g = grad + weight_decay * param`` (``-grad`` when maximising):

    * no momentum (notes 2.7, "Learning Strategies"):
      ``param -= lr * g``
    * momentum, torch's form (Sutskever et al., 2013, as torch.optim.SGD)::

          b = momentum * b + (1 - dampening) * g     # b = g at the first step
          param -= lr * (g + momentum * b  if nesterov else  b)

    * momentum, the notes' form (section 2.8, Snippet 2.2,
      ``lr_in_velocity=True``): the velocity carries the learning rate::

          v = momentum * v - (1 - dampening) * lr * g   # v = -lr * g first
          param += (momentum * v - lr * g  if nesterov else  v)

    While ``lr`` is constant, ``v == -lr * b`` and both forms take the same
    steps. When ``lr`` changes (a schedule), torch's form rescales the whole
    remembered velocity by the new ``lr`` at once, while the notes' form keeps
    the old velocity at the old ``lr`` and lets it fade by ``momentum`` per
    step; only new gradients see the new ``lr``. The buffer is stored under
    ``momentum_buffer`` in either form (``b`` or ``v``).
    """
    g = l2_gradient(param, grad, maximize=maximize, weight_decay=weight_decay)
    if momentum == 0:
        param.add_(g, alpha=-lr)
        return
    if lr_in_velocity:
        if first:
            momentum_buffer.copy_(g).mul_(-lr)
        else:
            momentum_buffer.mul_(momentum).add_(g, alpha=-(1 - dampening) * lr)
        if nesterov:
            param.add_(momentum_buffer, alpha=momentum).add_(g, alpha=-lr)
        else:
            param.add_(momentum_buffer)
        return
    if first:
        momentum_buffer.copy_(g)
    else:
        momentum_buffer.mul_(momentum).add_(g, alpha=1 - dampening)
    direction = g.add(momentum_buffer, alpha=momentum) if nesterov else momentum_buffer
    param.add_(direction, alpha=-lr)


class SGD(Optimizer):
    """Drop-in for :class:`torch.optim.SGD`; the rule is :func:`sgd`.

    Extra keyword: ``lr_in_velocity=False``; ``True`` keeps the notes'
    velocity ``v = mu*v - lr*g`` (Snippet 2.2) instead of torch's buffer.
    Sparse gradients (``nn.Embedding(sparse=True)``) are accepted, as in
    torch: without momentum only the rows they touch change; with momentum
    every row's velocity decays each step, so the gradient is made dense
    first (torch.optim.SGD's sparse momentum buffer takes the same steps).
    """

    update = staticmethod(sgd)
    state_keys = ("momentum_buffer",)
    supports_sparse = True
    extra_defaults = {"lr_in_velocity": False}

    def __init__(
        self,
        params,
        lr: float | Tensor = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float | Tensor = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
        lr_in_velocity: bool = False,
    ) -> None:
        check_common("SGD", lr=lr, weight_decay=weight_decay, foreach=foreach, fused=fused,
                     differentiable=differentiable)
        check_nonnegative("momentum", momentum)
        check_nonnegative("dampening", dampening)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(
                f"Invalid nesterov=True with momentum={momentum}, dampening={dampening}: "
                "Nesterov momentum requires momentum > 0 and dampening == 0"
            )
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, foreach=foreach,
                        differentiable=differentiable, fused=fused, lr_in_velocity=lr_in_velocity)
        super().__init__(params, defaults)

    def _init_state(self, param: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        if group["momentum"] != 0:
            state["momentum_buffer"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def _step_scalars(self, step, fresh, group):
        return {"first": fresh}

    def _sparse_touches_every_row(self, group: dict[str, Any]) -> bool:
        return group["momentum"] != 0

    def _hyperparameters(self, group: dict[str, Any]) -> dict[str, Any]:
        return dict(lr=float(group["lr"]), momentum=group["momentum"], dampening=group["dampening"],
                    nesterov=group["nesterov"], weight_decay=float(group["weight_decay"]),
                    maximize=group["maximize"], lr_in_velocity=group["lr_in_velocity"])
