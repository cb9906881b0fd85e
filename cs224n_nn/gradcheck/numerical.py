"""The notes' numerical gradient, and the analytic gradient held against it.

Notes, section 2.1 ("Gradient checking"): perturb the i-th parameter by
``+eps`` and ``-eps``, run two forward passes, and take the centred difference

    dJ/dtheta_i  ~  (J(theta + eps e_i) - J(theta - eps e_i)) / (2 eps),

whose error is O(eps^2) by Taylor's theorem, against O(eps) for the one-sided
difference ``(J(theta + eps e_i) - J(theta)) / eps``. The notes' own snippet
does not run as printed (``f(x) = f(x)``, its text calls the one-sided formula
"centred", and its names ``fxh_left``/``fxh_right`` are swapped); see
docs/errata.md. Here:

- :func:`numerical_gradient` is the notes' check, for any ``f`` from a tensor
  to a scalar, with the one-sided variant behind ``method="forward"``;
- :func:`gradient_errors` compares, input by input, the analytic gradient of
  ``sum(fn(*inputs) * v)`` with :func:`numerical_gradient` and finds the worst
  element;
- :func:`check_function` sums that up in one :class:`GradientCheck`.

This module imports only torch.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

METHODS = ("central", "forward")


# --------------------------------------------------------------------------
# The notes' numerical gradient
# --------------------------------------------------------------------------


def _validate_eps(eps: float, name: str = "eps") -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        raise TypeError(f"{name} must be a positive float, got {type(eps).__name__}")
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"{name} must be a positive finite float, got {eps!r}")
    return float(eps)


def _validate_floating(x: object, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def _as_float(value: object) -> float:
    """The scalar that ``f`` returned, in float64; a tensor counts as its sum."""
    if isinstance(value, torch.Tensor):
        return value.detach().to(torch.float64).sum().item()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"f must return a tensor or a real number, got {type(value).__name__}")


def numerical_gradient(
    f: Callable[[torch.Tensor], object],
    x: torch.Tensor,
    eps: float = 1e-5,
    *,
    method: str = "central",
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Finite-difference gradient of ``f`` at ``x`` (notes, section 7.1).

    ``method="central"`` (the notes' check, error O(eps^2))::

        g_i = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)

    ``method="forward"`` (the one-sided difference, error O(eps), for comparison)::

        g_i = (f(x + eps e_i) - f(x)) / eps

    Args:
        f: maps ``x`` to a scalar (a tensor with one element or a Python number).
            If it returns a larger tensor, the gradient is that of ``f(x).sum()``.
            It is called under ``torch.no_grad()``.
        x: floating-point tensor of any shape; each element is perturbed *in
            place* (so an ``f`` that reads ``x`` through a closure, like the
            notes' model parameters, sees the change) and restored bit for bit
            afterwards, even when ``f`` raises.
        eps: the perturbation, > 0. Its quotient uses the step actually stored
            in ``x``'s dtype, so rounding of ``x + eps`` in float32 does not bias it.
        dtype: dtype of the returned gradient (float64 by default: the
            difference of two nearly equal numbers needs the precision).

    Returns:
        A tensor shaped like ``x``, on ``x``'s device, of ``dtype``.
    """
    _validate_floating(x, "x")
    eps = _validate_eps(eps)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if any(stride == 0 and size > 1 for stride, size in zip(x.stride(), x.shape)):
        # An expanded tensor shares one element between many indices: perturbing
        # "one" element would perturb them all.
        raise ValueError("x has overlapping memory (an expanded view); pass x.clone()")
    central = method == "central"
    grad = torch.zeros(x.shape, dtype=dtype, device=x.device)
    with torch.no_grad():
        f_x = None if central else _as_float(f(x))
        for index in itertools.product(*(range(size) for size in x.shape)):
            old = x[index].clone()
            upper, lower = old + eps, (old - eps if central else old)
            try:
                x[index] = upper
                f_upper = _as_float(f(x))
                if central:
                    x[index] = lower
                    f_lower = _as_float(f(x))
                else:
                    f_lower = f_x
            finally:
                x[index] = old  # restore (the notes: "very important!")
            step = upper.to(torch.float64).item() - lower.to(torch.float64).item()
            if step == 0.0:
                raise ValueError(
                    f"eps={eps!r} is below the resolution of {x.dtype} at x{list(index)}={old.item()!r}"
                )
            grad[index] = (f_upper - f_lower) / step
    return grad


# --------------------------------------------------------------------------
# Analytic against numerical, input by input
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class WorstElement:
    """The element where the analytic and the numerical gradient disagree most."""

    input: str  # the input's name, e.g. "x" or "input 1"
    index: tuple[int, ...]
    analytic: float
    numerical: float

    def __str__(self) -> str:
        return f"{self.input}{list(self.index)}: analytic {self.analytic:.6g}, numerical {self.numerical:.6g}"


@dataclass(frozen=True)
class InputError:
    """How far one input's analytic gradient is from the central difference."""

    input: str
    max_abs_error: float
    max_rel_error: float
    worst: WorstElement | None  # None for an empty input


@dataclass(frozen=True)
class GradientCheck:
    """Worst disagreement between the analytic and the numerical gradient.

    ``max_rel_error`` is ``max_i |a_i - n_i| / max(|a_i|, |n_i|, floor)``:
    relative where the gradient is large, absolute (scaled by ``1/floor``)
    where both are near zero, so that round-off on an exact zero does not
    read as a 100% error. ``inputs`` holds the same per input.
    """

    max_abs_error: float
    max_rel_error: float
    rtol: float
    inputs: tuple[InputError, ...] = ()

    @property
    def ok(self) -> bool:
        return self.max_rel_error <= self.rtol  # False for nan

    @property
    def worst(self) -> WorstElement | None:
        """The worst element over every input (by relative error)."""
        ranked = [e for e in self.inputs if e.worst is not None]
        if not ranked:
            return None
        return max(ranked, key=lambda e: math.inf if math.isnan(e.max_rel_error) else e.max_rel_error).worst


def floating_outputs(out: object) -> tuple[torch.Tensor, ...]:
    """The floating-point tensors ``fn`` returned: one tensor, or those of a tuple/list."""
    outs = out if isinstance(out, (tuple, list)) else (out,)
    floats = tuple(o for o in outs if isinstance(o, torch.Tensor) and o.is_floating_point())
    if not floats:
        raise TypeError(f"fn must return a floating-point tensor (or a tuple holding one), got {type(out).__name__}")
    return floats


def random_cotangents(outs: Sequence[torch.Tensor], seed: int) -> tuple[torch.Tensor, ...]:
    """A fixed random ``v`` per output, drawn from ``seed`` on the CPU (so every device sees the same)."""
    generator = torch.Generator().manual_seed(seed)
    return tuple(
        torch.randn(o.shape, generator=generator, dtype=torch.float64).to(device=o.device, dtype=o.dtype) for o in outs
    )


def projection(outs: Sequence[torch.Tensor], vs: Sequence[torch.Tensor]) -> torch.Tensor:
    """``J = sum_k sum(out_k * v_k)``: the scalar whose gradient is the vector-Jacobian product with ``v``."""
    return sum((o * v).sum() for o, v in zip(outs, vs))


def _input_error(name: str, analytic: torch.Tensor, numeric: torch.Tensor, floor: float) -> InputError:
    if analytic.numel() == 0:
        return InputError(name, 0.0, 0.0, None)
    diff = (analytic - numeric).abs()
    rel = diff / torch.maximum(analytic.abs(), numeric.abs()).clamp_min(floor)
    # nan ranks first: a nan gradient is the worst there is
    flat = int(torch.where(rel.isnan(), math.inf, rel).argmax())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), rel.shape)) if rel.dim() else ()
    worst = WorstElement(name, index, analytic[index].item(), numeric[index].item())
    return InputError(name, diff.max().item(), rel.max().item(), worst)


def gradient_errors(
    fn: Callable[..., object],
    inputs: Sequence[object],
    wrt: Sequence[int],
    *,
    names: Sequence[str] | None = None,
    eps: float = 1e-5,
    floor: float = 1e-3,
    seed: int = 0,
) -> tuple[InputError, ...]:
    """Per input ``i`` in ``wrt``: the analytic gradient of ``J = sum(fn(*inputs) * v)`` against the central difference.

    ``v`` is a fixed random tensor per output (drawn from ``seed``): unlike a
    plain sum, a random ``v`` also catches a backward that mishandles its
    incoming gradient. ``inputs[i]`` must require grad; the central
    difference perturbs a clone of it, never the caller's tensor.
    """
    outs = floating_outputs(fn(*inputs))
    vs = random_cotangents(outs, seed)
    analytic = torch.autograd.grad(projection(outs, vs), [inputs[i] for i in wrt], allow_unused=True)
    names = names or [f"input {i}" for i in range(len(inputs))]
    errors = []
    for i, grad in zip(wrt, analytic):
        point = inputs[i].detach().clone()

        def objective(xi: torch.Tensor, i: int = i) -> torch.Tensor:
            return projection(floating_outputs(fn(*inputs[:i], xi, *inputs[i + 1 :])), vs)

        numeric = numerical_gradient(objective, point, eps, dtype=torch.float64)
        grad = torch.zeros_like(numeric) if grad is None else grad.to(torch.float64)
        errors.append(_input_error(names[i], grad, numeric, floor))
    return tuple(errors)


def check_function(
    fn: Callable[..., object],
    *inputs: object,
    eps: float = 1e-5,
    rtol: float = 1e-6,
    floor: float = 1e-3,
    seed: int = 0,
    dtype: torch.dtype | None = torch.float64,
) -> GradientCheck:
    """Compare ``fn``'s analytic gradient with the notes' central difference.

    The scalar checked is ``J = sum(fn(*inputs) * v)`` (see
    :func:`gradient_errors`); when ``fn`` returns a tuple, the sum runs over
    its floating-point outputs. The gradient is taken for every
    floating-point input with ``requires_grad=True``; other inputs (ids,
    targets) are passed unchanged. ``fn`` must be deterministic (re-seed
    inside it for dropout).

    Floating inputs are detached and cast to ``dtype`` (float64 by default;
    ``None`` keeps theirs); the caller's tensors and their ``.grad`` are never
    written.

    ``ok`` holds when every element's error, relative to
    ``max(|analytic|, |numerical|, floor)``, is at most ``rtol``
    (see :class:`GradientCheck`); ``worst`` names the worst element.
    """
    eps = _validate_eps(eps)
    rtol = _validate_eps(rtol, "rtol")
    floor = _validate_eps(floor, "floor")
    inputs = tuple(
        x.detach().to(dtype or x.dtype).requires_grad_(x.requires_grad)
        if isinstance(x, torch.Tensor) and x.is_floating_point()
        else x
        for x in inputs
    )
    wrt = [
        i for i, x in enumerate(inputs) if isinstance(x, torch.Tensor) and x.is_floating_point() and x.requires_grad
    ]
    if not wrt:
        raise ValueError("check_function needs at least one floating-point input with requires_grad=True")
    errors = gradient_errors(fn, inputs, wrt, eps=eps, floor=floor, seed=seed)
    if any(math.isnan(e.max_rel_error) or math.isnan(e.max_abs_error) for e in errors):
        return GradientCheck(math.nan, math.nan, rtol, errors)
    return GradientCheck(
        max((e.max_abs_error for e in errors), default=0.0), max((e.max_rel_error for e in errors), default=0.0), rtol, errors
    )
