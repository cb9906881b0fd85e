"""Gradient checking: the notes' numerical gradient and a suite over every Function.

Notes, section 7.1 ("Gradient Check"): perturb the i-th parameter by
``+eps`` and ``-eps``, run two forward passes, and take the centred difference

    dJ/dtheta_i  ~  (J(theta + eps e_i) - J(theta - eps e_i)) / (2 eps),

whose error is O(eps^2) by Taylor's theorem, against O(eps) for the one-sided
difference ``(J(theta + eps e_i) - J(theta)) / eps``. The notes' own snippet
does not run as printed (``f(x) = f(x)``, its text calls the one-sided formula
"centred", and its names ``fxh_left``/``fxh_right`` are swapped); see
docs/errata.md. Here:

- :func:`numerical_gradient` is the notes' check, for any ``f`` from a tensor
  to a scalar, with the one-sided variant behind ``method="forward"``;
- :func:`check_function` compares the analytic gradient (autograd through a
  hand-written ``backward``) with :func:`numerical_gradient`;
- :func:`check_all` runs that check plus ``torch.autograd.gradcheck`` and
  ``gradgradcheck`` in float64 for every Function of :mod:`cs224n_nn.autograd`;
- :func:`main` is ``cs224n-nn gradcheck`` (also ``python -m cs224n_nn.gradcheck``).

This module imports only torch (never Lightning) so that the command starts fast.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
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
# One function: analytic against numerical
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class GradientCheck:
    """Worst disagreement between the analytic and the numerical gradient.

    ``max_rel_error`` is ``max_i |a_i - n_i| / max(|a_i|, |n_i|, floor)``:
    relative where the gradient is large, absolute (scaled by ``1/floor``)
    where both are near zero, so that round-off on an exact zero does not
    read as a 100% error.
    """

    max_abs_error: float
    max_rel_error: float
    rtol: float

    @property
    def ok(self) -> bool:
        return self.max_rel_error <= self.rtol  # False for nan


def _errors(analytic: torch.Tensor, numeric: torch.Tensor, floor: float) -> tuple[float, float]:
    if analytic.numel() == 0:
        return 0.0, 0.0
    diff = (analytic - numeric).abs()
    scale = torch.maximum(analytic.abs(), numeric.abs()).clamp_min(floor)
    return diff.max().item(), (diff / scale).max().item()


def check_function(
    fn: Callable[..., torch.Tensor],
    *inputs: object,
    eps: float = 1e-5,
    rtol: float = 1e-6,
    floor: float = 1e-3,
    seed: int = 0,
    dtype: torch.dtype | None = torch.float64,
) -> GradientCheck:
    """Compare ``fn``'s analytic gradient with the notes' central difference.

    The scalar checked is ``J = sum(fn(*inputs) * v)`` with ``v`` a fixed
    random tensor (drawn from ``seed``): unlike a plain sum, a random ``v``
    also catches a backward that mishandles its incoming gradient.
    The gradient is taken for every floating-point input with
    ``requires_grad=True``; other inputs (ids, targets) are passed unchanged.
    ``fn`` must be deterministic (re-seed inside it for dropout).

    Floating inputs are detached and cast to ``dtype`` (float64 by default;
    ``None`` keeps theirs); the caller's tensors and their ``.grad`` are never
    written, and the central difference perturbs a clone.

    ``ok`` holds when every element's error, relative to
    ``max(|analytic|, |numerical|, floor)``, is at most ``rtol``
    (see :class:`GradientCheck`).
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

    out = fn(*inputs)
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        raise TypeError(f"fn must return a floating-point tensor, got {type(out).__name__}")
    generator = torch.Generator().manual_seed(seed)
    v = torch.randn(out.shape, generator=generator, dtype=torch.float64).to(device=out.device, dtype=out.dtype)

    analytic = torch.autograd.grad((out * v).sum(), [inputs[i] for i in wrt], allow_unused=True)
    worst_abs = worst_rel = 0.0
    for i, grad in zip(wrt, analytic):
        point = inputs[i].detach().clone()

        def objective(xi: torch.Tensor, i: int = i) -> torch.Tensor:
            return (fn(*inputs[:i], xi, *inputs[i + 1 :]) * v).sum()

        numeric = numerical_gradient(objective, point, eps, dtype=torch.float64)
        grad = torch.zeros_like(numeric) if grad is None else grad.to(torch.float64)
        abs_error, rel_error = _errors(grad, numeric, floor)
        worst_abs, worst_rel = max(worst_abs, abs_error), max(worst_rel, rel_error)
        if math.isnan(abs_error) or math.isnan(rel_error):
            worst_abs = worst_rel = math.nan
            break
    return GradientCheck(worst_abs, worst_rel, rtol)


# --------------------------------------------------------------------------
# Every Function: the suite
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportRow:
    """One case of :func:`check_all`."""

    name: str  # the case, starting with the Function's name
    function: str  # the cs224n_nn.autograd class it exercises
    max_rel_error: float  # the notes' check (central difference)
    max_abs_error: float
    notes_ok: bool
    gradcheck_ok: bool
    gradgradcheck_ok: bool
    uses_function: bool  # the graph really runs through that Function's backward
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.notes_ok and self.gradcheck_ok and self.gradgradcheck_ok and self.uses_function


@dataclass(frozen=True)
class Report:
    """The rows of :func:`check_all`; ``ok`` when every row passed."""

    rows: tuple[ReportRow, ...]

    @property
    def ok(self) -> bool:
        return bool(self.rows) and all(row.ok for row in self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def table(self) -> str:
        """The report as a fixed-width text table, one line per case."""
        headers = ("Function", "worst rel. error", "gradcheck", "gradgradcheck")
        cells = [
            (
                row.name + ("" if row.uses_function else " (not via its Function!)"),
                f"{row.max_rel_error:.2e}" + ("" if row.notes_ok else " FAIL"),
                "ok" if row.gradcheck_ok else "FAIL",
                "ok" if row.gradgradcheck_ok else "FAIL",
            )
            for row in self.rows
        ]
        widths = [max(len(line[k]) for line in [headers, *cells]) for k in range(len(headers))]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in [headers, *cells]]
        lines.insert(1, "  ".join("-" * width for width in widths))
        failed = [row for row in self.rows if not row.ok]
        if failed:
            lines.append(f"\nFAILED: {len(failed)} of {len(self.rows)} cases")
            lines += [f"  {row.name}: {row.error}" for row in failed if row.error]
        else:
            lines.append(f"\nok: all {len(self.rows)} cases passed")
        return "\n".join(lines)


def _clear_of_kinks(x: torch.Tensor, kinks: Sequence[float], gap: float = 0.1) -> torch.Tensor:
    """Move every element within ``gap`` of a kink by ``2.5 gap``.

    The kinks used here are 1 apart, so one shift lands clear of all of them;
    finite differences straddling a kink would measure a one-sided slope.
    """
    near = torch.zeros_like(x, dtype=torch.bool)
    for kink in kinks:
        near |= (x - kink).abs() < gap
    return torch.where(near, x + 2.5 * gap, x)


def _hinge_gaps(generator: torch.Generator, shape: Sequence[int]) -> torch.Tensor:
    """Values of ``margin + s_c - s`` at least 0.2 away from the hinge at 0, both signs."""
    magnitude = 0.2 + 0.8 * torch.rand(shape, generator=generator, dtype=torch.float64)
    sign = torch.where(torch.rand(shape, generator=generator, dtype=torch.float64) < 0.5, -1.0, 1.0)
    return sign * magnitude


def _graph_runs_through(out: torch.Tensor, function: type) -> bool:
    """Whether ``out``'s autograd graph holds a backward node of ``function``."""
    seen, stack = set(), [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if getattr(type(node), "_forward_cls", None) is function:
            return True
        stack.extend(next_node for next_node, _ in node.next_functions)
    return False


# A case builds (fn, inputs): fn takes exactly the float64 inputs to check.
_Case = tuple[str, str, Callable[[torch.Generator, torch.device], tuple[Callable[..., torch.Tensor], tuple]]]


def _cases(seed: int) -> list[_Case]:
    # Imported here, not at the top: numerical_gradient needs no Functions.
    from cs224n_nn import functional as F

    def randn(generator, *shape):
        return torch.randn(shape, generator=generator, dtype=torch.float64)

    def activation(call, kinks=()):
        def build(generator, device):
            x = _clear_of_kinks(3 * randn(generator, 3, 4), kinks)
            return call, (x.to(device),)

        return build

    def affine(bias):
        def build(generator, device):
            x, weight = randn(generator, 2, 3, 4), randn(generator, 5, 4)
            if not bias:
                return (lambda x, w: F.affine(x, w)), (x.to(device), weight.to(device))
            return F.affine, (x.to(device), weight.to(device), randn(generator, 5).to(device))

        return build

    def dropout(generator, device):
        def fn(x):
            # The same mask on every call: re-seed inside, then restore the
            # caller's RNG state so checking has no side effect.
            devices = [x.device] if x.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                return F.dropout(x, p=0.3, training=True)

        return fn, (randn(generator, 4, 5).to(device),)

    def embedding(generator, device):
        ids = torch.tensor([[0, 2, 2], [5, 0, 1]], device=device)  # repeats exercise the scatter-add
        return (lambda weight: F.embedding(ids, weight)), (randn(generator, 6, 3).to(device),)

    def max_margin(generator, device):
        s_c = randn(generator, 6)
        s = 1.0 + s_c - _hinge_gaps(generator, (6,))  # so margin + s_c - s = gap
        return (lambda s, s_c: F.max_margin_loss(s, s_c, margin=1.0)), (s.to(device), s_c.to(device))

    def multiclass_margin(weighted):
        def build(generator, device):
            n, classes = 5, 4
            target = torch.randint(classes, (n,), generator=generator)
            # margin - s_y + s_j = gap_j for j != y: no hinge at its corner
            scores = -1.0 + _hinge_gaps(generator, (n, classes))
            scores[torch.arange(n), target] = 0.0
            scores = scores + randn(generator, n, 1)  # a row offset changes no margin
            weight = (0.5 + torch.rand(classes, generator=generator, dtype=torch.float64)).to(device)
            target = target.to(device)
            if weighted:
                return (lambda s: F.multiclass_max_margin_loss(s, target, margin=1.0, weight=weight)), (scores.to(device),)
            return (lambda s: F.multiclass_max_margin_loss(s, target, margin=1.0)), (scores.to(device),)

        return build

    def cross_entropy(options):
        def build(generator, device):
            n, classes = 6, 5
            target = torch.randint(classes, (n,), generator=generator)
            extra = {}
            if options:
                target[1] = -100  # ignored row
                extra = dict(
                    weight=(0.5 + torch.rand(classes, generator=generator, dtype=torch.float64)).to(device),
                    ignore_index=-100,
                    label_smoothing=0.1,
                )
            target = target.to(device)
            return (lambda s: F.softmax_cross_entropy(s, target, **extra)), (3 * randn(generator, n, classes).to(device),)

        return build

    return [
        ("Sigmoid", "Sigmoid", activation(F.sigmoid)),
        ("Tanh", "Tanh", activation(F.tanh)),
        ("HardTanh", "HardTanh", activation(F.hardtanh, kinks=(-1.0, 1.0))),
        ("SoftSign", "SoftSign", activation(F.softsign, kinks=(0.0,))),  # its 2nd derivative jumps at 0
        ("ReLU", "ReLU", activation(F.relu, kinks=(0.0,))),
        ("LeakyReLU", "LeakyReLU", activation(lambda x: F.leaky_relu(x, negative_slope=0.1), kinks=(0.0,))),
        ("Affine", "Affine", affine(bias=True)),
        ("Affine (no bias)", "Affine", affine(bias=False)),
        ("Dropout", "Dropout", dropout),
        ("Embedding", "Embedding", embedding),
        ("MaxMarginLoss", "MaxMarginLoss", max_margin),
        ("MultiClassMaxMarginLoss", "MultiClassMaxMarginLoss", multiclass_margin(weighted=False)),
        ("MultiClassMaxMarginLoss (weight)", "MultiClassMaxMarginLoss", multiclass_margin(weighted=True)),
        ("SoftmaxCrossEntropy", "SoftmaxCrossEntropy", cross_entropy(options=False)),
        (
            "SoftmaxCrossEntropy (weight, ignore_index, smoothing)",
            "SoftmaxCrossEntropy",
            cross_entropy(options=True),
        ),
    ]


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def _torch_check(check: Callable[..., bool], fn: Callable[..., torch.Tensor], inputs: tuple, errors: list[str]) -> bool:
    """Run ``torch.autograd.gradcheck`` or ``gradgradcheck``, noting why it failed."""
    try:
        return check(fn, inputs)
    except torch.autograd.gradcheck.GradcheckError as error:
        errors.append(f"{check.__name__}: {_first_line(error)}")
        return False


def _run_case(name, function_name, build, *, eps, rtol, seed, device) -> ReportRow:
    from cs224n_nn import autograd

    function = getattr(autograd, function_name)
    generator = torch.Generator().manual_seed(seed)
    notes = gradcheck_ok = gradgradcheck_ok = uses_function = False
    rel = abs_ = math.nan
    errors = []
    try:
        fn, inputs = build(generator, device)
        inputs = tuple(x.requires_grad_() for x in inputs)
        uses_function = _graph_runs_through(fn(*inputs), function)
        if not uses_function:
            errors.append(f"the graph has no {function_name} backward node")
        result = check_function(fn, *inputs, eps=eps, rtol=rtol)
        rel, abs_, notes = result.max_rel_error, result.max_abs_error, result.ok
        if not notes:
            errors.append(f"notes' check: worst relative error {rel:.2e} > {rtol:.0e}")
        gradcheck_ok = _torch_check(torch.autograd.gradcheck, fn, inputs, errors)
        gradgradcheck_ok = _torch_check(torch.autograd.gradgradcheck, fn, inputs, errors)
    except Exception as error:  # a crashing Function is a failed row, not a crashed report
        errors.append(_first_line(error))
    return ReportRow(
        name, function_name, rel, abs_, notes, gradcheck_ok, gradgradcheck_ok, uses_function, "; ".join(errors) or None
    )


def check_all(
    *, eps: float = 1e-5, rtol: float = 1e-6, seed: int = 0, device: str | torch.device = "cpu"
) -> Report:
    """Check every Function of :mod:`cs224n_nn.autograd` three ways, in float64.

    For each case (every Function, plus variants that take another backward
    path): the notes' central difference via :func:`check_function`,
    ``torch.autograd.gradcheck`` and ``torch.autograd.gradgradcheck``, on
    inputs drawn from ``seed`` and kept clear of kinks (activations away
    from 0 and +-1, hinge margins at least 0.2 from their corner). Dropout
    keeps one mask by re-seeding inside the checked function; Embedding is
    checked with respect to its weight, the losses with respect to the scores.
    The caller's RNG state is left as it was.
    """
    eps = _validate_eps(eps)
    rtol = _validate_eps(rtol, "rtol")
    device = torch.device(device)
    # gradgradcheck draws its random grad_outputs from the global generator
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        rows = tuple(
            _run_case(name, function_name, build, eps=eps, rtol=rtol, seed=seed, device=device)
            for name, function_name, build in _cases(seed)
        )
    return Report(rows)


# --------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------


def _positive_float(text: str) -> float:
    try:
        return _validate_eps(float(text), "value")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """``cs224n-nn gradcheck``: print the report of :func:`check_all`; 1 if any case fails."""
    parser = argparse.ArgumentParser(
        prog="cs224n-nn gradcheck",
        description="Check every hand-written backward of cs224n_nn.autograd against the notes' "
        "central difference, torch.autograd.gradcheck and gradgradcheck (float64).",
    )
    parser.add_argument("--eps", type=_positive_float, default=1e-5, help="step of the central difference (default 1e-5)")
    parser.add_argument(
        "--rtol", type=_positive_float, default=1e-6, help="largest worst-case relative error that passes (default 1e-6)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    parser.add_argument("--device", default="cpu", help="device to check on, e.g. cpu, cuda, cuda:1 (default cpu)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        device = torch.device(args.device)
    except RuntimeError:
        parser.error(f"argument --device: not a device: {args.device!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("argument --device: CUDA is not available on this machine")

    report = check_all(eps=args.eps, rtol=args.rtol, seed=args.seed, device=device)
    print(f"cs224n-nn gradcheck: float64 on {device}, eps={args.eps:g}, seed={args.seed}\n")
    print(report.table())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
