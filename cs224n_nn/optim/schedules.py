"""Learning-rate annealing from the notes (section 2.7, "Learning
Strategies") as :class:`torch.optim.lr_scheduler.LRScheduler` subclasses.

``t`` is the number of times ``scheduler.step()`` has been called (the
scheduler's ``last_epoch``): per optimizer step under Lightning's
``"interval": "step"``, per epoch under the default ``"epoch"``.

Each schedule has two forms, as torch's own: ``get_lr`` is *chainable* (it
multiplies the optimizer's current lr by the step-to-step ratio, so it
composes with other schedulers), and ``_get_closed_form_lr`` gives
``lr0 * multiplier(t)`` from the initial learning rates (used by
``step(epoch)``). The tests hold the two equal.
"""

from __future__ import annotations

import math
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


def _check_real(name: str, value: Any, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"Invalid {name}: {value!r} (must be a finite number)")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"Invalid {name}: {value!r} (must be {'> 0' if positive else '>= 0'})")
    return float(value)


class _Annealing(LRScheduler):
    """Shared by the three schedules: lr_t = lr_0 * multiplier(t)."""

    def multiplier(self, t: int) -> float:
        """``lr_t / lr_0``: the closed form."""
        raise NotImplementedError

    def ratio(self, t: int) -> float:
        """``lr_t / lr_{t-1}`` for t >= 1: what one ``step()`` multiplies by."""
        raise NotImplementedError

    def get_lr(self) -> list[Any]:
        lrs = [group["lr"] for group in self.optimizer.param_groups]
        if self.last_epoch <= 0:
            return lrs
        r = self.ratio(self.last_epoch)
        return lrs if r == 1.0 else [lr * r for lr in lrs]

    def _get_closed_form_lr(self) -> list[float]:
        m = self.multiplier(self.last_epoch)
        return [base_lr * m for base_lr in self.base_lrs]


class StepAnnealing(_Annealing):
    """Multiply the learning rate by ``factor`` after every ``step_size``
    steps: ``lr_t = lr_0 * factor ** (t // step_size)`` (notes 2.7: "reduce
    the learning rate by a factor x after every n iterations"; the same as
    ``torch.optim.lr_scheduler.StepLR`` with ``gamma=factor``).
    """

    def __init__(self, optimizer: Optimizer, step_size: int, factor: float = 0.5, last_epoch: int = -1):
        if isinstance(step_size, bool) or not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"Invalid step_size: {step_size!r} (must be an integer >= 1)")
        self.step_size = step_size
        self.factor = _check_real("factor", factor, positive=True)
        super().__init__(optimizer, last_epoch)

    def multiplier(self, t: int) -> float:
        return self.factor ** (t // self.step_size)

    def ratio(self, t: int) -> float:
        return self.factor if t % self.step_size == 0 else 1.0


class ExponentialDecay(_Annealing):
    """``lr_t = lr_0 * exp(-k * t)`` (notes 2.7, "exponential decay").

    ``k >= 0``; ``k = 0`` keeps the learning rate constant.
    """

    def __init__(self, optimizer: Optimizer, k: float, last_epoch: int = -1):
        self.k = _check_real("k", k)
        super().__init__(optimizer, last_epoch)

    def multiplier(self, t: int) -> float:
        return math.exp(-self.k * t)

    def ratio(self, t: int) -> float:
        return math.exp(-self.k)


class InverseTimeDecay(_Annealing):
    """``lr_t = lr_0 * tau / max(t, tau)`` (notes 2.7): constant for the
    first ``tau`` steps, then decaying as ``1/t``.
    """

    def __init__(self, optimizer: Optimizer, tau: float, last_epoch: int = -1):
        self.tau = _check_real("tau", tau, positive=True)
        super().__init__(optimizer, last_epoch)

    def multiplier(self, t: int) -> float:
        return self.tau / max(t, self.tau)

    def ratio(self, t: int) -> float:
        return max(t - 1, self.tau) / max(t, self.tau)
