"""Adam and AdamW: momentum on the gradient, RMSProp on its square."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._checks import as_float, check_common
from ._l2_term import l2_gradient
from ._optimizer import Optimizer
from ._tensor_list import maximum_


def adam(
    param,
    grad,
    exp_avg,
    exp_avg_sq,
    max_exp_avg_sq,
    *,
    bias_correction1: float,
    bias_correction2_sqrt: float,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
    amsgrad: bool,
    maximize: bool,
) -> None:
    """One Adam step (Kingma & Ba, 2015, Algorithm 1; notes section 2.9,
    Snippet 2.5; slides "Adaptive Moment Estimation"), in place::

        g      = grad + weight_decay * param           # Adam's L2 (coupled)
        param *= 1 - lr * weight_decay                 # AdamW instead (decoupled,
                                                       #   Loshchilov & Hutter, 2019)
        m      = beta1 * m + (1 - beta1) * g
        v      = beta2 * v + (1 - beta2) * g^2
        v_max  = max(v_max, v)                         # amsgrad (Reddi et al., 2018)
        m_hat  = m / bias_correction1                  # 1 - beta1^step
        v_hat  = v / bias_correction2_sqrt^2           # 1 - beta2^step
        param -= lr * m_hat / (sqrt(v_hat) + eps)

    The caller (:meth:`Adam._step_scalars`) passes the two corrections for
    the parameter's step count, or 1 with ``bias_correction=False``: that is
    the notes' Snippet 2.5 (``m_hat = m``, ``v_hat = v``). The slides add the
    correction: m and v start at zero, and without it the step is off by
    ``(1 - beta1^t) / sqrt(1 - beta2^t)`` (3.2x too large at t = 1 with the
    default betas, about 6.6x around t = 12).

    The last two lines are computed as in section 2 of the paper, with
    ``sqrt(1 - beta2^step)`` folded into the step size and eps:
    ``param -= lr * bc2_sqrt / bc1 * m / (sqrt(v) + eps * bc2_sqrt)``, the
    same number with one pass over ``v`` fewer.

    A sparse gradient (``nn.Embedding(sparse=True)``) takes the lazy update:
    the optimizer sums its repeated rows, then runs exactly this rule on the
    rows it touches (gathered, updated, written back), with the bias
    corrections of the parameter's step count, which advances every step as
    in ``torch.optim.SparseAdam``. Every other row keeps its parameter and
    its m and v (they do not decay), so a step costs O(rows touched). Weight
    decay (either kind) would touch every row and raises ``RuntimeError``.
    """
    if decoupled_weight_decay:
        if weight_decay != 0:
            param.mul_(1 - lr * weight_decay)
        g = l2_gradient(param, grad, maximize=maximize, weight_decay=0)
    else:
        g = l2_gradient(param, grad, maximize=maximize, weight_decay=weight_decay)
    exp_avg.lerp_(g, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    second_moment = exp_avg_sq
    if amsgrad:
        maximum_(max_exp_avg_sq, exp_avg_sq)
        second_moment = max_exp_avg_sq
    denom = second_moment.sqrt().add_(eps * bias_correction2_sqrt)
    param.addcdiv_(exp_avg, denom, value=-lr * bias_correction2_sqrt / bias_correction1)


def check_betas(betas: Any, *, foreach: bool | None) -> None:
    """Adam's ``betas``: a pair in [0, 1), both numbers or both 0-d tensors
    (not tensors with ``foreach=True``), refused in torch.optim.Adam's words."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"Invalid betas: {betas!r} (must be a pair (beta1, beta2))")
    is_tensor = [isinstance(b, Tensor) for b in betas]
    if is_tensor[0] != is_tensor[1]:
        raise ValueError("betas must be either both floats or both Tensors")
    if foreach and is_tensor[0]:
        raise ValueError("betas[0] as a Tensor is not supported for capturable=False and foreach=True")
    for i, beta in enumerate(betas):
        if not 0.0 <= as_float(f"beta{i + 1}", beta) < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {beta} (beta{i + 1} must be in [0, 1))")


class Adam(Optimizer):
    """Drop-in for :class:`torch.optim.Adam`; the rule is :func:`adam`.

    Extra keyword: ``bias_correction=True``; ``False`` is the notes' Snippet
    2.5. ``fused=True`` runs the rule compiled with ``torch.compile`` over
    the whole parameter group, as the default does for groups of at least
    2^20 elements (eager fallback, with one warning, when the compiler is
    unavailable; see :mod:`cs224n_nn.optim._compiled_update`).

    Sparse gradients (``nn.Embedding(sparse=True)``) take the lazy row-wise
    update of :func:`adam` (only with ``weight_decay=0``); in a group that
    mixes them with dense gradients, the dense ones keep the group's path.
    """

    update = staticmethod(adam)
    state_keys = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    supports_sparse = True
    extra_defaults = {"bias_correction": True, "decoupled_weight_decay": False}

    def __init__(
        self,
        params,
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
        bias_correction: bool = True,
    ) -> None:
        name = type(self).__name__
        check_common(name, lr=lr, weight_decay=weight_decay, eps=eps, foreach=foreach, fused=fused,
                     differentiable=differentiable, capturable=capturable)
        check_betas(betas, foreach=foreach)
        if foreach and isinstance(lr, Tensor):
            # As torch.optim.Adam: its foreach kernels take a Python lr (ours would
            # read it with float() each step; the refusal keeps the two interchangeable).
            raise ValueError("lr as a Tensor is not supported for capturable=False and foreach=True")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, foreach=foreach, maximize=maximize,
                        capturable=capturable, differentiable=differentiable, fused=fused,
                        decoupled_weight_decay=decoupled_weight_decay,
                        bias_correction=bias_correction)
        super().__init__(params, defaults)

    def _init_state(self, param: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        state["step"] = torch.tensor(0.0)
        state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def _step_scalars(self, step, fresh, group):
        # The bias corrections of Kingma & Ba (2015), section 3, for this
        # parameter's step count t: 1 - beta1^t and sqrt(1 - beta2^t).
        if not group["bias_correction"]:
            return {"bias_correction1": 1.0, "bias_correction2_sqrt": 1.0}
        beta1, beta2 = (float(b) for b in group["betas"])
        return {"bias_correction1": 1 - beta1**step,
                "bias_correction2_sqrt": (1 - beta2**step) ** 0.5}

    def _hyperparameters(self, group: dict[str, Any]) -> dict[str, Any]:
        beta1, beta2 = group["betas"]
        return dict(lr=float(group["lr"]), beta1=float(beta1), beta2=float(beta2),
                    eps=group["eps"], weight_decay=float(group["weight_decay"]),
                    decoupled_weight_decay=group["decoupled_weight_decay"],
                    amsgrad=group["amsgrad"], maximize=group["maximize"])


class AdamW(Adam):
    """Drop-in for :class:`torch.optim.AdamW`: :func:`adam` with decoupled
    weight decay (``param *= 1 - lr * weight_decay`` before the Adam step;
    Loshchilov & Hutter, "Decoupled Weight Decay Regularization", 2019).
    Sparse gradients need ``weight_decay=0`` (the default here is 1e-2).
    """

    extra_defaults = {"bias_correction": True, "decoupled_weight_decay": True}

    def __init__(
        self,
        params,
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        bias_correction: bool = True,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                         maximize=maximize, capturable=capturable, differentiable=differentiable,
                         fused=fused, decoupled_weight_decay=True, bias_correction=bias_correction)
