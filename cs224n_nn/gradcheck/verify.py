"""``verify``: every check torch knows, on anyone's Function or callable, in one table.

torch checks an autograd.Function one flag at a time (``gradcheck``'s
``check_forward_ad``, ``check_batched_grad``, ...), and ``torch.library.opcheck``
only registered custom ops. :func:`verify` runs the whole battery and reports
one :class:`Check` per mode (the names below are also what ``require`` takes):

========================  ================================================================
``forward``               ``fn(*inputs)`` runs in float64 (if not, nothing else is tried)
``notes``                 the notes' central difference (section 2.1), worst relative error per input
``gradcheck_fast``        ``torch.autograd.gradcheck(fast_mode=True)``
``gradcheck_full``        ``torch.autograd.gradcheck`` (the full Jacobian)
``gradgradcheck``         ``torch.autograd.gradgradcheck(fast_mode=True)`` (double backward)
``forward_ad``            ``gradcheck(check_forward_ad=True, fast_mode=True)``: the ``jvp``
``batched_grad``          ``gradcheck(check_batched_grad=True)``: backward under vmap
``batched_forward_grad``  ``gradcheck(check_batched_forward_grad=True)``: ``jvp`` under vmap
``vmap``                  ``torch.func.vmap`` of ``fn``, and the gradient through it, against a loop
``compile``               ``torch.compile(fullgraph=True)`` values and gradients against eager
``non_contiguous``        strided inputs against contiguous ones
``float32``, ``float16``,  values and gradients in that dtype against float64 at the same
``bfloat16``              (rounded) inputs
``devices``               every other available device (CUDA) against the CPU
``reference``             values and gradients against ``reference`` (float64)
========================  ================================================================

A mode the Function does not implement (no ``jvp``, no vmap rule, a
``once_differentiable`` backward, a dtype without kernels, or a ``jvp`` that
torch.compile cannot trace) reads
"not implemented" with torch's reason and is no failure, unless it is
named in ``require``. A mode that cannot run here (no reference given, no
second device, no input that can be strided) reads "skipped".

Everything runs on detached float64 copies of the inputs (floating inputs are
checked, the others passed through); the caller's tensors and RNG state are
left as they were. ``fn`` must be deterministic.
"""

from __future__ import annotations

import inspect
import math
import re
import types
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch.autograd.gradcheck import GradcheckError

from .numerical import (
    GradientCheck,
    WorstElement,
    _validate_eps,
    floating_outputs,
    gradient_errors,
    projection,
    random_cotangents,
)

MODES = (
    "forward",
    "notes",
    "gradcheck_fast",
    "gradcheck_full",
    "gradgradcheck",
    "forward_ad",
    "batched_grad",
    "batched_forward_grad",
    "vmap",
    "compile",
    "non_contiguous",
    "float32",
    "float16",
    "bfloat16",
    "devices",
    "reference",
)

OK, FAIL, NOT_IMPLEMENTED, SKIPPED = "ok", "FAIL", "not implemented", "skipped"
REQUIRED = "required, but not implemented: "  # how a FAIL of a required mode begins

# Tolerances of a low-precision run against float64 at the same rounded
# inputs, as (dtype, rtol, atol relative to the largest magnitude): eight
# units of each dtype's epsilon (float16 9.8e-4, bfloat16 7.8e-3; float32's
# 1.2e-7 is far below what its row asks). A backward that reads the rounded
# output (sigmoid's s(1 - s) near saturation) loses that much even in
# torch's own kernels, which pass these rows.
LOW_PRECISION = {
    "float32": (torch.float32, 1e-4, 1e-5),
    "float16": (torch.float16, 8e-3, 8e-3),
    "bfloat16": (torch.bfloat16, 6.25e-2, 6.25e-2),
}

# torch's words for "this Function lacks the mode" (not a wrong answer).
_NOT_IMPLEMENTED = (
    "You must implement the jvp function",
    "does not have vmap support",
    "generate_vmap_rule",
    "once_differentiable",
    "differentiate twice",
    "not implemented for 'Half'",
    "not implemented for 'BFloat16'",
    "has not been implemented yet",  # forward AD of an aten op
    "derivative for aten::",  # "... is not implemented": double backward of an aten op
)

# Graph breaks that are torch's limits rather than the Function's mistakes:
# dynamo (torch 2.13) traces no autograd.Function with a custom jvp or vjp.
_COMPILE_UNSUPPORTED = ("Unsupported custom jvp", "Unsupported custom vjp")

_DEFAULTS = dict(
    eps=1e-5,  # step of the notes' central difference
    rtol=1e-6,  # worst relative error the notes' check passes
    floor=1e-3,  # below it a gradient counts as zero (see GradientCheck)
    atol_torch=1e-5,  # torch.autograd.gradcheck's atol
    rtol_torch=1e-3,  # and rtol (torch's defaults)
    compare_rtol=1e-7,  # float64 comparisons: vmap, compile, strides, devices, reference
    compare_atol=1e-9,  # relative to the largest magnitude
    seed=0,
    batch_size=3,  # samples of the vmap check
    compile_backend="aot_eager",  # "inductor" for the full compiler
    skip=(),  # modes not to run (reported as skipped)
    nondiff=(),  # positions of floating inputs that are constants (class weights, masks): cast and moved, not checked
    names=None,  # input names for the table (default: fn's parameter names)
)


# --------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Mismatch:
    """The element where two runs that should agree differ most."""

    what: str  # e.g. "output 0", "grad x"
    index: tuple[int, ...]
    got: float
    expected: float

    def __str__(self) -> str:
        return f"{self.what}{list(self.index)}: got {self.got:.6g}, expected {self.expected:.6g}"


@dataclass(frozen=True)
class Check:
    """One row of :func:`verify`: a mode, its status and why."""

    name: str  # one of MODES
    status: str  # "ok", "FAIL", "not implemented", "skipped"
    detail: str = ""
    worst: WorstElement | Mismatch | None = None  # set for a failed comparison

    @property
    def ok(self) -> bool:
        return self.status != FAIL


@dataclass(frozen=True)
class Verification:
    """What :func:`verify` found: one :class:`Check` per mode."""

    target: str
    checks: tuple[Check, ...]
    options: dict = field(default_factory=dict, compare=False)
    notes: GradientCheck | None = None  # the notes' check in numbers, when it ran

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def failed(self) -> tuple[str, ...]:
        """Names of the failed checks, in table order."""
        return tuple(check.name for check in self.checks if not check.ok)

    @property
    def worst(self) -> WorstElement | Mismatch | None:
        """The worst element of the first failed check that has one."""
        return next((c.worst for c in self.checks if not c.ok and c.worst is not None), None)

    def __getitem__(self, name: str) -> Check:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(f"no check named {name!r}; the checks are {[c.name for c in self.checks]}")

    def __iter__(self):
        return iter(self.checks)

    def table(self) -> str:
        """A fixed-width table, one line per check, then the worst element of each failure."""
        headers = ("check", "result", "detail")
        cells = [(c.name, c.status, c.detail) for c in self.checks]
        widths = [max(len(line[k]) for line in [headers, *cells]) for k in range(2)]
        lines = [f"verify({self.target})"]
        for line in [headers, *cells]:
            lines.append(f"{line[0]:<{widths[0]}}  {line[1]:<{widths[1]}}  {line[2]}".rstrip())
        lines.insert(2, f"{'-' * widths[0]}  {'-' * widths[1]}  {'-' * 6}")
        if self.ok:
            passed = sum(c.status == OK for c in self.checks)
            lines.append(f"\nok: {passed} checks passed, {len(self.checks) - passed} not implemented or skipped")
        else:
            lines.append(f"\nFAILED: {', '.join(self.failed)}")
            worst: dict[str, list[str]] = {}  # one line per distinct worst element
            for c in self.checks:
                if not c.ok and c.worst is not None:
                    worst.setdefault(str(c.worst), []).append(c.name)
            lines += [f"  {', '.join(names)}: worst element {element}" for element, names in worst.items()]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


class _NotImplementedMode(Exception):
    """Raised by a check when the mode does not apply to this function."""


class _Skip(Exception):
    """Raised by a check that cannot run here; the message says why."""


class _Failed(Exception):
    """Raised by a comparison that failed; carries the worst element."""

    def __init__(self, message: str, worst: WorstElement | Mismatch | None = None):
        super().__init__(message)
        self.worst = worst


def first_line(error: BaseException) -> str:
    """``Type: first line of the message``: one line for the table."""
    for line in str(error).strip().splitlines():
        if line.strip():
            return f"{type(error).__name__}: {line.strip()}"
    return type(error).__name__


def _not_implemented_reason(error: BaseException) -> str | None:
    """torch's reason, when ``error`` says a mode is missing rather than wrong."""
    text = str(error)
    for marker in _NOT_IMPLEMENTED:
        if marker in text:
            for line in text.strip().splitlines():
                if marker in line:
                    return line.strip()
    return None


def _graph_break(error: BaseException) -> str | None:
    """The graph break ``torch.compile(fullgraph=True)`` hit: what and where, in one line."""
    if not any(cls.__name__ in ("Unsupported", "UserError") for cls in type(error).__mro__):
        return None
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    what = lines[0] if lines else type(error).__name__
    explanation = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Explanation:")), "")
    where = [line for line in lines if line.startswith("File ") and __file__ not in line]  # not our wrapper
    at = f" ({where[-1]})" if where else ""
    return f"graph break: {what}" + (f": {explanation}" if explanation else "") + at


def _call_of(fn: object) -> tuple[Callable[..., object], str]:
    if isinstance(fn, type) and issubclass(fn, torch.autograd.Function):
        return fn.apply, fn.__name__
    if not callable(fn):
        raise TypeError(f"fn must be a torch.autograd.Function subclass or a callable, got {type(fn).__name__}")
    return fn, getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__


def _input_names(fn: object, count: int) -> list[str]:
    """The parameter names of ``fn`` (of its ``forward`` for a Function), if there are ``count``."""
    target = fn.forward if isinstance(fn, type) and issubclass(fn, torch.autograd.Function) else fn
    try:
        params = [
            p.name
            for p in inspect.signature(target).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    if params and params[0] == "ctx":
        params = params[1:]
    if len(params) >= count:
        return params[:count]
    return [f"input {i}" for i in range(count)]


def _compare(what: str, got: torch.Tensor | None, expected: torch.Tensor | None, rtol: float, atol: float) -> None:
    """Raise :class:`_Failed` unless ``|got - expected| <= atol * max|expected| + rtol * |expected|``."""
    if got is None and expected is None:
        return
    if got is None or expected is None:
        zero = got if expected is None else expected
        got = torch.zeros_like(zero) if got is None else got
        expected = torch.zeros_like(zero) if expected is None else expected
    if got.shape != expected.shape:
        raise _Failed(f"{what}: shape {tuple(got.shape)}, expected {tuple(expected.shape)}")
    got, expected = got.detach().to("cpu", torch.float64), expected.detach().to("cpu", torch.float64)
    if got.numel() == 0:
        return
    scale = expected.abs().max().item()
    scale = scale if math.isfinite(scale) and scale > 0 else 1.0
    excess = (got - expected).abs() - (atol * scale + rtol * expected.abs())
    # a nan on one side only is a mismatch; nan on both agrees (as torch.testing's equal_nan)
    excess = torch.where(got.isnan() & expected.isnan(), -1.0, torch.nan_to_num(excess, nan=math.inf))
    if excess.max().item() > 0:
        flat = int(excess.argmax())
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), got.shape)) if got.dim() else ()
        worst = Mismatch(what, index, got[index].item(), expected[index].item())
        error = ((got - expected).abs().max() / scale).item()
        raise _Failed(f"{what} differs by {error:.2e} of its largest magnitude (rtol {rtol:g})", worst)


# --------------------------------------------------------------------------
# The subject: fn and its float64 inputs
# --------------------------------------------------------------------------


@dataclass
class _Subject:
    call: Callable[..., object]
    inputs: tuple  # floating ones float64, detached, requiring grad
    names: list[str]
    wrt: list[int]  # indices of the floating inputs
    options: dict
    reference: Callable[..., object] | None
    notes: GradientCheck | None = None

    def cast(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None, transform=None) -> tuple:
        """The inputs, floating ones converted (and requiring grad), others moved."""
        out = []
        for i, x in enumerate(self.inputs):
            if isinstance(x, torch.Tensor):
                cast = dtype if dtype is not None and x.is_floating_point() else x.dtype
                x = x.detach().to(device=device or x.device, dtype=cast)
                if transform is not None:
                    x = transform(x)
                if i in self.wrt:
                    x = x.detach().requires_grad_()  # detach keeps a strided layout
            out.append(x)
        return tuple(out)

    def values_and_grads(self, call, inputs):
        """Outputs of ``call`` and the gradients of ``sum(out * v)`` w.r.t. the floating inputs."""
        outs = floating_outputs(call(*inputs))
        vs = random_cotangents(outs, self.options["seed"])
        wrt = [inputs[i] for i in self.wrt]
        grads = torch.autograd.grad(projection(outs, vs), wrt, allow_unused=True)
        return outs, grads

    def compare_runs(self, label, got, expected, rtol, atol):
        (outs, grads), (ref_outs, ref_grads) = got, expected
        if len(outs) != len(ref_outs):
            raise _Failed(f"{label}: {len(outs)} floating outputs, expected {len(ref_outs)}")
        for k, (o, r) in enumerate(zip(outs, ref_outs)):
            _compare(f"output {k}", o, r, rtol, atol)
        for i, g, r in zip(self.wrt, grads, ref_grads):
            _compare(f"grad {self.names[i]}", g, r, rtol, atol)


# --------------------------------------------------------------------------
# The checks: each returns a detail string or raises
# --------------------------------------------------------------------------


def _check_forward(s: _Subject) -> str:
    outs = floating_outputs(s.call(*s.inputs))
    return ", ".join(f"{tuple(o.shape)} {str(o.dtype).removeprefix('torch.')}" for o in outs)


def _check_notes(s: _Subject) -> str:
    o = s.options
    errors = gradient_errors(s.call, s.inputs, s.wrt, names=s.names, eps=o["eps"], floor=o["floor"], seed=o["seed"])
    worst_abs = max((e.max_abs_error for e in errors), default=0.0)
    worst_rel = max((e.max_rel_error for e in errors), default=0.0)
    if any(math.isnan(e.max_rel_error) for e in errors):
        worst_abs = worst_rel = math.nan
    s.notes = GradientCheck(worst_abs, worst_rel, o["rtol"], errors)
    detail = ", ".join(f"{e.input} {e.max_rel_error:.1e}" for e in errors)
    if not s.notes.ok:
        raise _Failed(f"worst rel. error {detail} (rtol {o['rtol']:g})", s.notes.worst)
    return f"worst rel. error {detail}"


def _gradcheck(s: _Subject, check=torch.autograd.gradcheck, **flags) -> str:
    tolerances = dict(atol=s.options["atol_torch"], rtol=s.options["rtol_torch"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "inputs are not double precision" etc.
        try:
            check(s.call, s.inputs, **tolerances, **flags)
        except GradcheckError as error:
            worst = s.notes.worst if s.notes is not None and not s.notes.ok else None
            raise _Failed(_gradcheck_reason(error, s.names), worst) from error
    return ""


def _gradcheck_reason(error: BaseException, names: Sequence[str]) -> str:
    """The informative line of a GradcheckError, with torch's "input i" named."""
    reason = _not_implemented_reason(error)
    if reason:
        raise _NotImplementedMode(reason)
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    line = lines[0].rstrip(",") if lines else type(error).__name__

    def named(match: re.Match) -> str:
        i = int(match[1])
        return f"input {i} ({names[i]})" if i < len(names) and names[i] != f"input {i}" else match[0]

    return re.sub(r"input (\d+)", named, line)


def _forward_ad_worst(s: _Subject) -> WorstElement | None:
    """For a failed jvp: the output element where ``jvp`` along a random tangent differs most from the central difference."""
    import torch.autograd.forward_ad as fwAD

    generator = torch.Generator().manual_seed(s.options["seed"] + 1)
    eps, worst, worst_rel = s.options["eps"], None, -1.0
    for i in s.wrt:
        x = s.inputs[i].detach()
        tangent = torch.randn(x.shape, generator=generator, dtype=torch.float64).to(x.device)
        try:
            with fwAD.dual_level():
                args = list(s.inputs)
                args[i] = fwAD.make_dual(x, tangent)
                outs = floating_outputs(s.call(*args))
                analytic = [fwAD.unpack_dual(o).tangent for o in outs]
        except Exception:
            return None
        with torch.no_grad():
            args = list(s.inputs)
            args[i] = x + eps * tangent
            upper = floating_outputs(s.call(*args))
            args[i] = x - eps * tangent
            lower = floating_outputs(s.call(*args))
        for k, (a, hi, lo) in enumerate(zip(analytic, upper, lower)):
            numeric = ((hi - lo) / (2 * eps)).to(torch.float64)
            a = torch.zeros_like(numeric) if a is None else a.to(torch.float64)
            if a.numel() == 0:
                continue
            rel = (a - numeric).abs() / torch.maximum(a.abs(), numeric.abs()).clamp_min(s.options["floor"])
            rel = torch.nan_to_num(rel, nan=math.inf)
            if rel.max().item() > worst_rel:
                flat = int(rel.argmax())
                index = tuple(int(j) for j in torch.unravel_index(torch.tensor(flat), rel.shape)) if rel.dim() else ()
                worst_rel = rel.max().item()
                name = f"output {k} along a random tangent of {s.names[i]}, at "
                worst = WorstElement(name, index, a[index].item(), numeric[index].item())
    return worst


def _check_forward_ad(s: _Subject) -> str:
    try:
        return _gradcheck(
            s, check_forward_ad=True, check_backward_ad=False, check_undefined_grad=False, fast_mode=True
        )
    except _Failed as failure:
        raise _Failed(str(failure), _forward_ad_worst(s)) from failure


def _check_batched_forward_grad(s: _Subject) -> str:
    return _gradcheck(
        s,
        check_forward_ad=True,
        check_batched_forward_grad=True,
        check_backward_ad=False,
        check_undefined_grad=False,
        fast_mode=True,
    )


def _batched(s: _Subject) -> tuple[tuple, tuple]:
    """``batch_size`` different samples of the floating inputs, stacked on dim 0, and the in_dims."""
    generator = torch.Generator().manual_seed(s.options["seed"] + 2)
    batch, in_dims = [], []
    for i, x in enumerate(s.inputs):
        if i in s.wrt:
            noise = torch.randn((s.options["batch_size"], *x.shape), generator=generator, dtype=torch.float64)
            steps = torch.arange(s.options["batch_size"], dtype=torch.float64).reshape(-1, *[1] * x.dim())
            batch.append((x.detach() + 0.01 * steps * noise.to(x.device)).requires_grad_())
            in_dims.append(0)
        else:
            batch.append(x)
            in_dims.append(None)
    return tuple(batch), tuple(in_dims)


def _check_vmap(s: _Subject) -> str:
    """``torch.func.vmap(fn)`` over a batch of samples, and the backward of its output, against a loop.

    The gradient is taken by ordinary autograd through the vmapped forward
    (how a vmapped model trains), so that the Function's vmap rule is
    differentiated; ``batched_grad`` covers vmap over the backward itself.
    """
    batch, in_dims = _batched(s)
    size = s.options["batch_size"]

    def sample(b):
        return tuple(x[b].detach().requires_grad_() if d == 0 else x for x, d in zip(batch, in_dims))

    loop = [s.values_and_grads(s.call, sample(b)) for b in range(size)]
    # the loop's v for every sample, drawn outside vmap (random ops inside it would need randomness=)
    cotangents = random_cotangents(loop[0][0], s.options["seed"])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "performance drop ... batching rule": speed, not correctness
            outs = torch.func.vmap(lambda *xs: floating_outputs(s.call(*xs)), in_dims=in_dims)(*batch)
            stacked = [v.expand(size, *v.shape) for v in cotangents]
            grads = torch.autograd.grad(projection(outs, stacked), [batch[i] for i in s.wrt], allow_unused=True)
    except Exception as error:
        reason = _not_implemented_reason(error)
        if reason:
            raise _NotImplementedMode(reason) from error
        raise _Failed(first_line(error)) from error
    for b in range(size):
        got = (tuple(o[b] for o in outs), tuple(None if g is None else g[b] for g in grads))
        try:
            s.compare_runs("vmap", got, loop[b], s.options["compare_rtol"], s.options["compare_atol"])
        except _Failed as failure:
            raise _Failed(f"sample {b}: {failure}", failure.worst) from failure
    return f"{size} samples: values and gradients equal a loop"


def _fresh(call: Callable[..., object]) -> Callable[..., object]:
    """A wrapper with its own code object, so dynamo's cache for it starts empty on every verify()."""

    def compiled(*args):
        return call(*args)

    return types.FunctionType(compiled.__code__.replace(), compiled.__globals__, "compiled", None, compiled.__closure__)


def _check_compile(s: _Subject) -> str:
    backend = s.options["compile_backend"]
    eager = s.values_and_grads(s.call, s.cast())
    try:
        compiled = torch.compile(_fresh(s.call), fullgraph=True, backend=backend)
        got = s.values_and_grads(compiled, s.cast())
    except Exception as error:
        reason = _graph_break(error)
        if reason and any(marker in str(error) for marker in _COMPILE_UNSUPPORTED):
            raise _NotImplementedMode(reason) from error  # torch's limit, not the Function's mistake
        raise _Failed(reason or first_line(error)) from error
    s.compare_runs("compile", got, eager, s.options["compare_rtol"], s.options["compare_atol"])
    return f"backend={backend}, fullgraph: values and gradients equal eager"


def _strided(x: torch.Tensor) -> torch.Tensor:
    """``x``'s values in a non-contiguous layout: column-major (a transpose's) for a matrix,
    every other element of a wider tensor for a vector."""
    if x.dim() >= 2 and x.shape[-1] > 1 and x.shape[-2] > 1:
        return x.mT.contiguous().mT
    wide = torch.zeros((*x.shape[:-1], 2 * x.shape[-1]), dtype=x.dtype, device=x.device)
    wide[..., ::2] = x
    return wide[..., ::2]


def _check_non_contiguous(s: _Subject) -> str:
    strided = [i for i, x in enumerate(s.inputs) if isinstance(x, torch.Tensor) and x.dim() and x.numel() > 1]
    if not strided:
        raise _Skip("no input has two or more elements")
    expected = s.values_and_grads(s.call, s.cast())
    inputs = s.cast(transform=lambda x: _strided(x) if x.dim() and x.numel() > 1 else x)
    assert not any(inputs[i].is_contiguous() for i in strided)
    s.compare_runs("non-contiguous", s.values_and_grads(s.call, inputs), expected, 1e-12, 1e-14)
    return f"{', '.join(s.names[i] for i in strided)} strided: equal to contiguous"


def _check_low_precision(s: _Subject, mode: str) -> str:
    dtype, rtol, atol = LOW_PRECISION[mode]
    low = s.cast(dtype)
    try:
        got = s.values_and_grads(s.call, low)
    except Exception as error:
        reason = _not_implemented_reason(error)
        if reason:
            raise _NotImplementedMode(reason) from error
        raise _Failed(first_line(error)) from error
    rounded = tuple(
        x.detach().double().requires_grad_(i in s.wrt) if isinstance(x, torch.Tensor) and x.is_floating_point() else x
        for i, x in enumerate(low)
    )
    s.compare_runs(mode, got, s.values_and_grads(s.call, rounded), rtol, atol)
    dtypes = sorted({str(o.dtype).removeprefix("torch.") for o in got[0]})
    return f"output {', '.join(dtypes)}; rtol {rtol:g} against float64"


def available_devices() -> list[torch.device]:
    """Every device other than the CPU that this machine has (CUDA devices)."""
    if not torch.cuda.is_available():
        return []
    return [torch.device("cuda", i) for i in range(torch.cuda.device_count())]


def _check_devices(s: _Subject) -> str:
    devices = [d for d in available_devices() if d != _device_of(s.inputs)]
    if not devices:
        raise _Skip("no device other than cpu")
    expected = s.values_and_grads(s.call, s.cast())
    for device in devices:
        try:
            got = s.values_and_grads(s.call, s.cast(device=device))
        except Exception as error:
            raise _Failed(f"{device}: {first_line(error)}") from error
        try:
            s.compare_runs(str(device), got, expected, s.options["compare_rtol"], s.options["compare_atol"])
        except _Failed as failure:
            raise _Failed(f"{device}: {failure}", failure.worst) from failure
    return ", ".join(str(d) for d in devices) + " equal to " + str(_device_of(s.inputs))


def _device_of(inputs: Iterable[object]) -> torch.device:
    return next((x.device for x in inputs if isinstance(x, torch.Tensor)), torch.device("cpu"))


def _check_reference(s: _Subject) -> str:
    if s.reference is None:
        raise _Skip("no reference given")
    got = s.values_and_grads(s.call, s.cast())
    expected = s.values_and_grads(s.reference, s.cast())
    s.compare_runs("reference", got, expected, s.options["compare_rtol"], s.options["compare_atol"])
    return "values and gradients equal the reference"


_CHECKS: dict[str, Callable[[_Subject], str]] = {
    "forward": _check_forward,
    "notes": _check_notes,
    "gradcheck_fast": lambda s: _gradcheck(s, fast_mode=True),
    "gradcheck_full": lambda s: _gradcheck(s, fast_mode=False),
    "gradgradcheck": lambda s: _gradcheck(s, check=torch.autograd.gradgradcheck, fast_mode=True),
    "forward_ad": _check_forward_ad,
    "batched_grad": lambda s: _gradcheck(s, check_batched_grad=True, fast_mode=True),
    "batched_forward_grad": _check_batched_forward_grad,
    "vmap": _check_vmap,
    "compile": _check_compile,
    "non_contiguous": _check_non_contiguous,
    "float32": lambda s: _check_low_precision(s, "float32"),
    "float16": lambda s: _check_low_precision(s, "float16"),
    "bfloat16": lambda s: _check_low_precision(s, "bfloat16"),
    "devices": _check_devices,
    "reference": _check_reference,
}
assert tuple(_CHECKS) == MODES


def _run(name: str, subject: _Subject, required: bool) -> Check:
    try:
        detail = _CHECKS[name](subject)
        return Check(name, OK, detail)
    except _Skip as skip:
        return Check(name, SKIPPED, str(skip))
    except _NotImplementedMode as missing:
        if required:
            return Check(name, FAIL, f"{REQUIRED}{missing}")
        return Check(name, NOT_IMPLEMENTED, str(missing))
    except _Failed as failure:
        return Check(name, FAIL, str(failure), failure.worst)
    except Exception as error:  # a crashing check is a failed row, not a crashed report
        reason = _not_implemented_reason(error)
        if reason and not required:
            return Check(name, NOT_IMPLEMENTED, reason)
        if reason:
            return Check(name, FAIL, f"{REQUIRED}{reason}")
        return Check(name, FAIL, first_line(error))


def _options(options: dict) -> dict:
    unknown = sorted(set(options) - set(_DEFAULTS))
    if unknown:
        raise TypeError(f"verify() got unknown option(s) {unknown}; the options are {sorted(_DEFAULTS)}")
    merged = {**_DEFAULTS, **options}
    for key in ("eps", "rtol", "floor", "atol_torch", "rtol_torch", "compare_rtol", "compare_atol"):
        merged[key] = _validate_eps(merged[key], key)
    if isinstance(merged["batch_size"], bool) or not isinstance(merged["batch_size"], int) or merged["batch_size"] < 1:
        raise ValueError(f"batch_size must be a positive int, got {merged['batch_size']!r}")
    merged["skip"] = _modes(merged["skip"], "skip")
    nondiff = (merged["nondiff"],) if isinstance(merged["nondiff"], int) else tuple(merged["nondiff"])
    if any(isinstance(i, bool) or not isinstance(i, int) for i in nondiff):
        raise TypeError(f"nondiff must hold input positions (ints), got {merged['nondiff']!r}")
    merged["nondiff"] = nondiff
    return merged


def _modes(modes: object, option: str) -> tuple[str, ...]:
    if isinstance(modes, str):
        modes = (modes,)
    modes = tuple(modes)
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ValueError(f"{option} names unknown mode(s) {unknown}; the modes are {list(MODES)}")
    return modes


def verify(
    fn: type[torch.autograd.Function] | Callable[..., object],
    *inputs: object,
    reference: Callable[..., object] | None = None,
    require: Sequence[str] = (),
    **options: object,
) -> Verification:
    """Run every check of :data:`MODES` on ``fn`` at ``inputs``; one :class:`Check` each.

    Args:
        fn: a ``torch.autograd.Function`` subclass (its ``apply`` is called) or
            any callable of tensors returning a tensor or a tuple of them
            (the floating-point ones are checked).
        inputs: example inputs. Floating-point tensors are checked (as
            detached float64 copies); integer tensors and other values are
            passed through (tensors moved to each device checked).
        reference: a callable with ``fn``'s signature whose values and
            gradients ``fn`` must equal (say torch's own op).
        require: modes that must be implemented: "not implemented" there is
            a failure.
        options: ``eps``, ``rtol``, ``floor`` (the notes' check),
            ``atol_torch``/``rtol_torch`` (torch's gradcheck),
            ``compare_rtol``/``compare_atol`` (float64 comparisons), ``seed``,
            ``batch_size`` (vmap), ``nondiff`` (positions of floating inputs that
            are constants, such as class weights: cast with the dtype rows and
            moved with the device row, never differentiated), ``compile_backend`` ("aot_eager" by default,
            "inductor" for the full compiler), ``skip`` (modes not to run),
            ``names`` (input names for the table).

    Returns:
        A :class:`Verification`: ``.ok``, ``.failed``, ``.table()``,
        ``[mode]`` for one :class:`Check`, ``.worst`` for the worst element.
    """
    call, target = _call_of(fn)
    options = _options(options)
    required = set(_modes(require, "require"))
    if reference is not None and not callable(reference):
        raise TypeError(f"reference must be callable, got {type(reference).__name__}")
    nondiff = options["nondiff"]
    floating = [i for i, x in enumerate(inputs) if isinstance(x, torch.Tensor) and x.is_floating_point()]
    if any(i not in floating for i in nondiff):
        raise ValueError(f"nondiff={nondiff} must name positions of floating-point tensor inputs {floating}")
    wrt = [i for i in floating if i not in nondiff]
    if not wrt:
        raise ValueError("verify needs at least one floating-point tensor among the inputs (not in nondiff)")
    names = list(options["names"]) if options["names"] is not None else _input_names(fn, len(inputs))
    if len(names) != len(inputs):
        raise ValueError(f"names has {len(names)} entries for {len(inputs)} inputs")
    float64 = tuple(
        x.detach().to(torch.float64).requires_grad_(i in wrt) if i in floating else x for i, x in enumerate(inputs)
    )
    subject = _Subject(call, float64, names, wrt, options, reference)

    checks = []
    devices = [d for d in {x.device for x in float64 if isinstance(x, torch.Tensor)} if d.type == "cuda"]
    # gradgradcheck and the batched checks draw from the global generators
    with torch.random.fork_rng(devices=devices):
        for name in MODES:
            if name in options["skip"]:
                checks.append(Check(name, SKIPPED, "skipped by option"))
            elif checks and checks[0].status == FAIL:
                checks.append(Check(name, SKIPPED, "the forward failed"))
            else:
                checks.append(_run(name, subject, name in required))
    return Verification(target, tuple(checks), options, subject.notes)


def assert_verified(
    fn: type[torch.autograd.Function] | Callable[..., object],
    *inputs: object,
    reference: Callable[..., object] | None = None,
    require: Sequence[str] = (),
    **options: object,
) -> Verification:
    """:func:`verify` for pytest: raise ``AssertionError`` whose message is the table when a check fails."""
    result = verify(fn, *inputs, reference=reference, require=require, **options)
    if not result.ok:
        raise AssertionError("\n" + result.table())
    return result
