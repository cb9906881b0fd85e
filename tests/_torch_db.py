"""Harness that runs PyTorch's own test databases against cs224n_nn.

torch ships, inside its wheel, the cases its own test suite uses for every
operator (``common_methods_invocations.op_db``, one ``OpInfo`` per op) and
every module (``common_modules.module_db``, one ``ModuleInfo`` per class).
Nobody on this project wrote them, so they are an outside measure of
"drop-in": this file maps each of our Functions and modules onto its torch
twin's entry, and holds, in one place, the few cases our API refuses on
purpose (:data:`REFUSALS`) with the reason for each.

The tests that use it: ``tests/test_torch_opinfo.py`` and
``tests/test_torch_moduleinfo.py``. They follow the unpacking of torch's own
``test_ops.py`` / ``test_ops_gradients.py`` / ``test_modules.py`` (see
``torch.testing._internal.common_utils.TestGradients._check_helper``).
"""

from __future__ import annotations

import contextlib
import functools
import re
import sys
import types
import unittest
import unittest.mock
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch.utils import _pytree as pytree

from torch.testing._utils import wrapper_set_seed

import cs224n_nn.functional as cf
import cs224n_nn.nn as cnn


def _import_torch_testing():
    """Import torch's test databases; ``expecttest`` is their only extra dependency.

    ``common_utils`` imports ``expecttest`` only to subclass its ``TestCase``
    for torch's own unittest classes, which we never instantiate. When the
    package is absent (it is not a dependency of ours), a stand-in module with
    a plain ``unittest.TestCase`` lets the databases import unchanged.
    """
    try:
        import expecttest  # noqa: F401
    except ImportError:
        stand_in = types.ModuleType("expecttest")
        stand_in.TestCase = unittest.TestCase
        stand_in.ACCEPT = False
        sys.modules["expecttest"] = stand_in
    from torch.testing._internal import common_methods_invocations, common_modules, common_utils
    return common_methods_invocations, common_modules, common_utils


_cmi, _cm, _cu = _import_torch_testing()

DEVICE = "cpu"
DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
SEED = 0

# Errors an API may raise for bad input (ours name the argument; torch's are RuntimeError mostly).
INPUT_ERRORS = (TypeError, ValueError, IndexError, RuntimeError, NotImplementedError)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# --------------------------------------------------------------------------------------------------
# The twins: torch's OpInfo name -> our function, called the way the OpInfo calls its op
# --------------------------------------------------------------------------------------------------

def _embedding(weight, idx, **kwargs):
    # The OpInfo's op is ``lambda weight, idx, **kw: F.embedding(idx, weight, **kw)`` (weight first so
    # that torch's gradient tests see it as ``sample.input``); ours takes the same reordering.
    return cf.embedding(idx, weight, **kwargs)


def _dropout(input, *args, **kwargs):
    # The OpInfo's op seeds torch's RNG with 42 before each call (``wrapper_set_seed``); ours is wrapped
    # the same way, and so is its reference (``torch_dropout``), so both draw the same mask.
    return wrapper_set_seed(cf.dropout, input, *args, **kwargs)


def inverted_dropout(input, p=0.5, training=True, inplace=False):
    """torch's inverted dropout ``x * m / (1 - p)``, ``m ~ Bernoulli(1 - p)``, in torch ops, with the draw
    cs224n_nn.autograd.dropout.keep_mask documents: ``m = u < 1 - p`` for ``u = torch.rand_like(x)``
    (float32 uniforms for half and bfloat16 inputs).

    ``torch.nn.functional.dropout`` samples the same law with ``bernoulli_``, a different stream: after
    the same seed its mask differs from ours, so values are compared with this formula instead, and the
    law itself (the kept fraction) is tested in test_linear_dropout_embedding.
    """
    if not training or p == 0:
        return input
    if p == 1:
        return input * 0.0  # torch returns zeros (and a zero gradient), no division by keep_prob 0
    low_precision = input.dtype in (torch.float16, torch.bfloat16)
    u = torch.rand_like(input, dtype=torch.float32 if low_precision else input.dtype)
    return input * ((u < 1 - p).to(input.dtype) / (1 - p))


def torch_dropout(input, *args, **kwargs):
    """:func:`inverted_dropout` seeded as the dropout OpInfo seeds its op (the reference of ``_dropout``)."""
    return wrapper_set_seed(inverted_dropout, input, *args, **kwargs)


@dataclass(frozen=True)
class OpTwin:
    """One torch OpInfo and the cs224n_nn function that must behave like it.

    ``ours`` has the OpInfo op's calling convention: ``ours(sample.input, *sample.args, **sample.kwargs)``.
    ``kwarg_names`` maps a torch keyword onto ours where the spelling differs (none do today: our
    functional API took torch's keyword names; the table is the one place to record a difference).
    ``to_functional`` turns (input, args) into torch.nn.functional's positional order, for REFUSALS.
    """

    torch_name: str
    ours_name: str
    ours: Callable[..., Any]
    kwarg_names: dict[str, str] = field(default_factory=dict)
    to_functional: Callable[[Any, tuple], tuple] = lambda input, args: (input, *args)
    #: What ours is compared with, when not the OpInfo's op itself (dropout: the same law, another draw).
    reference: Callable[..., Any] | None = None

    def call_ours(self, input, *args, **kwargs):
        return self.ours(input, *args, **{self.kwarg_names.get(k, k): v for k, v in kwargs.items()})

    @property
    def opinfo(self):
        return opinfo(self.torch_name)

    @property
    def torch_op(self) -> Callable[..., Any]:
        """The function whose values and gradients ours must match: ``reference`` or the OpInfo's op."""
        return self.reference or self.opinfo.op


OP_TWINS: dict[str, OpTwin] = {t.torch_name: t for t in (
    OpTwin("sigmoid", "sigmoid", cf.sigmoid),
    OpTwin("tanh", "tanh", cf.tanh),
    OpTwin("nn.functional.hardtanh", "hardtanh", cf.hardtanh),
    OpTwin("nn.functional.softsign", "softsign", cf.softsign),
    OpTwin("nn.functional.relu", "relu", cf.relu),
    OpTwin("nn.functional.leaky_relu", "leaky_relu", cf.leaky_relu),
    OpTwin("nn.functional.linear", "affine", cf.affine),
    OpTwin("nn.functional.embedding", "embedding", _embedding,
           to_functional=lambda weight, args: (args[0], weight)),
    OpTwin("nn.functional.dropout", "dropout", _dropout, reference=torch_dropout),
    OpTwin("nn.functional.multi_margin_loss", "multiclass_max_margin_loss", cf.multiclass_max_margin_loss),
    OpTwin("nn.functional.cross_entropy", "softmax_cross_entropy", cf.softmax_cross_entropy),
)}


@functools.cache
def opinfo(torch_name: str):
    """The OpInfo named ``torch_name`` (its default variant); fails loudly if torch renamed it."""
    found = [o for o in _cmi.op_db if o.name == torch_name and o.variant_test_name == ""]
    if len(found) != 1:
        raise LookupError(f"op_db has {len(found)} default OpInfos named {torch_name!r}")
    return found[0]


def op_dtypes(torch_name: str) -> list[torch.dtype]:
    """Our four dtypes, as far as the OpInfo declares them on CPU."""
    supported = opinfo(torch_name).supported_dtypes(DEVICE)
    return [d for d in DTYPES if d in supported]


def op_backward_dtypes(torch_name: str) -> set[torch.dtype]:
    return set(opinfo(torch_name).supported_backward_dtypes(DEVICE))


# --------------------------------------------------------------------------------------------------
# Module twins: torch.nn class -> ours, constructed with the same arguments
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModuleTwin:
    torch_cls: type
    ours_cls: type
    # (forward args, module) -> torch.nn.functional's positional order, for REFUSALS (options: module_options).
    to_functional: Callable[[tuple, torch.nn.Module], tuple] = lambda args, m: tuple(args)

    @property
    def name(self) -> str:
        return self.torch_cls.__name__


MODULE_TWINS: dict[str, ModuleTwin] = {t.name: t for t in (
    ModuleTwin(torch.nn.Sigmoid, cnn.Sigmoid),
    ModuleTwin(torch.nn.Tanh, cnn.Tanh),
    ModuleTwin(torch.nn.Hardtanh, cnn.Hardtanh),
    ModuleTwin(torch.nn.Softsign, cnn.Softsign),
    ModuleTwin(torch.nn.ReLU, cnn.ReLU),
    ModuleTwin(torch.nn.LeakyReLU, cnn.LeakyReLU),
    ModuleTwin(torch.nn.Linear, cnn.Linear),
    ModuleTwin(torch.nn.Dropout, cnn.Dropout),
    ModuleTwin(torch.nn.Embedding, cnn.Embedding, to_functional=lambda args, m: (args[0], m.weight)),
    ModuleTwin(torch.nn.MultiMarginLoss, cnn.MultiClassMaxMarginLoss),
    ModuleTwin(torch.nn.CrossEntropyLoss, cnn.CrossEntropyLoss),
)}


def module_options(m: torch.nn.Module) -> dict[str, Any]:
    """The functional keywords a torch module passes on (for REFUSALS predicates)."""
    names = ("p", "margin", "weight", "reduction", "ignore_index", "label_smoothing", "negative_slope",
             "min_val", "max_val", "padding_idx", "max_norm", "norm_type", "scale_grad_by_freq", "sparse")
    return {n: getattr(m, n) for n in names if hasattr(m, n)}


@functools.cache
def moduleinfos(torch_cls: type) -> tuple:
    """module_db's entries for ``torch_cls`` (torch.nn.Dropout has none in torch 2.13; its OpInfo covers it)."""
    return tuple(mi for mi in _cm.module_db if mi.module_cls is torch_cls)


# --------------------------------------------------------------------------------------------------
# REFUSALS: every case our API refuses on purpose, with the reason. The ONE place for them.
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Refusal:
    """A torch case that our twin deliberately refuses.

    ``applies(args, kwargs)`` sees the call in ``torch.nn.functional``'s positional order
    (e.g. ``(input, target)`` for the losses, ``(idx, weight)`` for embedding) and its keywords.
    The test then asserts that ours raises one of INPUT_ERRORS whose message matches ``match``
    (it must name the keyword or the shape it refuses).
    """

    twins: tuple[str, ...]  # OpInfo names and/or torch.nn class names
    applies: Callable[[tuple, dict], bool]
    match: str
    reason: str


# Empty today: every case of op_db and module_db for our twins is supported. (Class-probability targets
# and (N, C, d1, ...) scores for cross-entropy, p=2 and 0-d scores for the multi-margin loss, Dropout
# p=1, Embedding max_norm / scale_grad_by_freq, refused on main before issue 11, are supported; where
# torch itself raises on CPU, e.g. sparse=True with scale_grad_by_freq, ours is checked to raise too.)
# A new refusal goes here, e.g.
#   Refusal(("nn.functional.cross_entropy", "CrossEntropyLoss"),
#           applies=lambda args, kwargs: args[1].is_floating_point(),
#           match=r"target must be an int64", reason="class-probability targets are not supported")
REFUSALS: tuple[Refusal, ...] = (
)


@dataclass(frozen=True)
class Deviation:
    """A gradient where ours deliberately differs from torch's, for an elementwise op.

    ``where(input)`` marks the input positions; there ``accept(ours_grad, cotangent)`` must hold
    for ours instead of equality with torch (elsewhere the comparison is unchanged).
    """

    twins: tuple[str, ...]
    where: Callable[[torch.Tensor], torch.Tensor]
    accept: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    reason: str


DEVIATIONS: tuple[Deviation, ...] = (
    Deviation(("nn.functional.softsign", "Softsign"), where=lambda x: x.isinf(),
              accept=lambda g, cot: g == 0,
              reason="at x = +-inf ours gives the notes' derivative 1/(1+|x|)^2 = 0; torch differentiates its "
                     "composite x/(1+|x|) by autograd and gets 1/(1+|x|) - |x|/(1+|x|)^2 = 0 - inf/inf = NaN"),
    Deviation(("nn.functional.hardtanh", "Hardtanh"), where=lambda x: x.isnan(),
              accept=lambda g, cot: (g == 0) | (g == cot),
              reason="at x = NaN torch's CPU hardtanh_backward is not consistent with itself: its vectorised "
                     "lanes give 0 and its scalar tail passes the gradient (reference sample of 9 elements: "
                     "0, 0, 1); ours may give either, nothing else"),
)


def deviations_for(twin_name: str) -> tuple[Deviation, ...]:
    return tuple(d for d in DEVIATIONS if twin_name in d.twins)


def refusal_for(twin_name: str, args: tuple, kwargs: dict) -> Refusal | None:
    for r in REFUSALS:
        if twin_name in r.twins and r.applies(args, kwargs):
            return r
    return None


def assert_refused(refusal: Refusal, call: Callable[[], Any]) -> None:
    """Ours must raise a clear input error naming what it refuses."""
    try:
        call()
    except INPUT_ERRORS as e:
        if not re.search(refusal.match, str(e)):
            raise AssertionError(
                f"refused with {type(e).__name__}({e}) but the message does not match {refusal.match!r}"
            ) from e
        return
    raise AssertionError(f"expected a refusal ({refusal.reason}) but the call succeeded")


# --------------------------------------------------------------------------------------------------
# Samples: generated once per (op, dtype, kind) with a fixed seed; each test gets fresh copies
# --------------------------------------------------------------------------------------------------

def _describe(x) -> str:
    if isinstance(x, torch.Tensor):
        kind = "" if x.is_floating_point() else dtype_name(x.dtype)[:1] + re.sub(r"\D", "", dtype_name(x.dtype))
        return "(" + ",".join(map(str, x.shape)) + ")" + kind
    if isinstance(x, float):
        return f"{x:g}"
    return str(x)


def describe_call(input, args, kwargs, name: str = "") -> str:
    parts = [_describe(input), *(_describe(a) for a in args)] + ([name.replace(" ", "_")] if name else [])
    parts += [f"{k}={_describe(v)}" for k, v in kwargs.items()]
    return "-".join(parts)


# torch's reference inputs for the elementwise ops include random tensors of about a million elements
# ((1029, 917), (1024, 1024), contiguous and not) meant for vectorised-kernel tails. Ours are torch ops on
# the same tensors, and four dtypes x five ops of them cost minutes on a 2-core CI box, so an input larger
# than this is cut to its leading rows (same values kind, same strides, odd row length kept): the id says so.
MAX_ELEMENTS = 128 * 128


def _limited(sample):
    x = sample.input
    if not isinstance(x, torch.Tensor) or x.numel() <= MAX_ELEMENTS or x.dim() < 2 or \
            any(isinstance(a, torch.Tensor) for a in (*sample.args, *sample.kwargs.values())):
        return sample
    rows = max(1, MAX_ELEMENTS // (x.numel() // x.shape[0]))
    cut = x.detach()[:rows].requires_grad_(x.requires_grad)
    out = type(sample)(cut, args=sample.args, kwargs=sample.kwargs,
                       output_process_fn_grad=sample.output_process_fn_grad)
    out.name = "rows-of-(" + ",".join(map(str, x.shape)) + ")"
    return out


@contextlib.contextmanager
def _generating():
    """Deterministic generation, without torch's per-iterator stack crawl.

    torch's sample iterators call ``common_utils.extract_test_fn`` to find the running unittest
    ``TestCase`` (only to attach the current sample to it for error messages) by ``inspect.stack()``,
    which reads the source of every frame: half a second each under pytest's deep stack, most of this
    suite's collection time. Under pytest there is no such TestCase and it returns None after the
    crawl; answering None at once is the same result.
    """
    from torch.testing._internal.opinfo import core as _core
    with _cu.freeze_rng_state(), \
            unittest.mock.patch.object(_cu, "extract_test_fn", lambda: None), \
            unittest.mock.patch.object(_core, "extract_test_fn", lambda: None):
        torch.manual_seed(SEED)
        yield


@functools.cache
def op_samples(torch_name: str, dtype: torch.dtype, kind: str, requires_grad: bool) -> tuple:
    """torch's ``sample_inputs`` / ``reference_inputs`` / ``error_inputs`` for the op, deterministic."""
    op = opinfo(torch_name)
    with _generating():
        if kind == "sample":
            return tuple(op.sample_inputs(DEVICE, dtype, requires_grad=requires_grad))
        if kind == "reference":
            return tuple(map(_limited, op.reference_inputs(DEVICE, dtype, requires_grad=requires_grad)))
        if kind == "error":
            return tuple(op.error_inputs(DEVICE))
    raise ValueError(kind)


def has_reference_inputs(torch_name: str) -> bool:
    return opinfo(torch_name).reference_inputs_func is not None


def has_error_inputs(torch_name: str) -> bool:
    return opinfo(torch_name).error_inputs_func is not None


def clone_tree(tree, requires_grad: Callable[[torch.Tensor], bool] = lambda t: t.requires_grad):
    """Fresh leaf copies of every tensor in ``tree`` (a test must never share a leaf with another)."""
    def copy(t):
        if not isinstance(t, torch.Tensor):
            return t
        c = t.detach().clone()
        return c.requires_grad_() if requires_grad(t) and (c.is_floating_point() or c.is_complex()) else c
    return pytree.tree_map(copy, tree)


@functools.cache
def module_inputs(torch_cls: type, dtype: torch.dtype, requires_grad: bool, training: bool = True) -> tuple:
    out = []
    with _generating():
        for mi in moduleinfos(torch_cls):
            out.extend((mi, x) for x in mi.module_inputs_func(
                mi, device=DEVICE, dtype=dtype, requires_grad=requires_grad, training=training))
    return tuple(out)


@functools.cache
def module_error_inputs(torch_cls: type, dtype: torch.dtype) -> tuple:
    out = []
    with _generating():
        for mi in moduleinfos(torch_cls):
            if mi.module_error_inputs_func is not None:
                out.extend((mi, x) for x in mi.module_error_inputs_func(
                    mi, device=DEVICE, dtype=dtype, requires_grad=False, training=True))
    return tuple(out)


def module_dtypes(torch_cls: type) -> list[torch.dtype]:
    declared = set()
    for mi in moduleinfos(torch_cls):
        declared |= set(mi.dtypes)
    return [d for d in DTYPES if d in declared]


# --------------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------------

# torch.testing.assert_close's defaults per dtype (float64 1e-7/1e-7, float32 1.3e-6/1e-5,
# float16 1e-3/1e-5, bfloat16 1.6e-2/1e-5) unless an entry here says why an op needs more.
# Keys: (OpInfo name or torch.nn class name, dtype) -> dict(rtol=, atol=).
#
# Cross-entropy in float16: the gradient p * sum(q) - q is a difference of probabilities in [0, 1], with
# p = exp(log p) read back from the float16 log-probabilities the forward saves (torch's log_softmax
# saves its float16 output the same way). Half an ulp of log p becomes a few ulps of the difference where
# p ~ q, so the error is set by the probabilities' scale, not the result's: ours and torch's kernel land
# at different points of that band (module_db, 105 cases: largest |ours - float64| 7.8e-3, torch's
# 1.5e-2; in at most 14 cases 1-2 elements of ours are 1-4 float16 ulps further than torch's). atol = 1e-3, about two
# float16 ulps at 0.5, times the unit-scale cotangent. (op_db's cross_entropy cases pass without it.)
_CE_FLOAT16 = dict(rtol=1e-3, atol=1e-3)
TOLERANCES: dict[tuple[str, torch.dtype], dict[str, float]] = {
    ("CrossEntropyLoss", torch.float16): _CE_FLOAT16,
}

_DEFAULT_TOL = {torch.float64: (1e-7, 1e-7), torch.float32: (1.3e-6, 1e-5),
                torch.float16: (1e-3, 1e-5), torch.bfloat16: (1.6e-2, 1e-5)}


def tolerance(twin_name: str, dtype: torch.dtype) -> dict[str, float]:
    rtol, atol = _DEFAULT_TOL.get(dtype, (0.0, 0.0))
    return TOLERANCES.get((twin_name, dtype), dict(rtol=rtol, atol=atol))


def assert_same(ours, theirs, twin_name: str, dtype: torch.dtype, what: str, truth=None) -> None:
    """Ours equals torch's twin: same dtype, shape, layout, NaN where torch has NaN, and values close.

    Close means within the dtype's tolerance of torch's value, or, where ``truth`` (the same case
    computed by torch in float64) is given, no further from the truth than torch's own value is
    (or within the dtype's tolerance of it). The second clause is the drop-in measure below
    float64: torch's composite ops (softsign) and its half-precision reductions (embedding's
    scatter-add) round at every step, where ours computes in float32 and rounds once, so the two
    can differ by more than a rounding step while ours is the closer one.
    """
    if isinstance(theirs, torch.Tensor) and theirs.layout == torch.sparse_coo:
        assert isinstance(ours, torch.Tensor) and ours.layout == torch.sparse_coo, \
            f"{what}: torch gives a sparse COO tensor, ours gives {getattr(ours, 'layout', type(ours))}"
        ours, theirs = ours.to_dense(), theirs.to_dense()
        truth = truth.to_dense() if truth is not None else None
    tol = tolerance(twin_name, dtype)
    if truth is None or dtype == torch.float64:
        torch.testing.assert_close(ours, theirs, equal_nan=True, msg=lambda m: f"{what}: {m}", **tol)
        return
    assert isinstance(ours, torch.Tensor), f"{what}: ours is a {type(ours).__name__}"
    assert (ours.dtype, ours.shape) == (theirs.dtype, theirs.shape), \
        f"{what}: ours is {ours.dtype} {tuple(ours.shape)}, torch's {theirs.dtype} {tuple(theirs.shape)}"
    o, t, x = ours.double(), theirs.double(), truth.to(torch.float64)
    assert torch.equal(o.isnan(), t.isnan()), f"{what}: NaN at other places than torch's"
    near_torch = torch.isclose(o, t, equal_nan=True, **tol)
    no_worse = (o - x).abs() <= torch.maximum((t - x).abs(), tol["atol"] + tol["rtol"] * x.abs())
    bad = ~(near_torch | no_worse | (o.isnan() & t.isnan()) | (o == t))
    if bad.any():
        i = bad.nonzero()[0].tolist()
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.numel()} elements differ from torch's beyond {tol} and are further "
            f"from the float64 value than torch's; first at {i}: ours {o[tuple(i)].item()!r}, "
            f"torch {t[tuple(i)].item()!r}, float64 {x[tuple(i)].item()!r}")


def differentiable_leaves(tree) -> list[torch.Tensor]:
    return [t for t in pytree.tree_leaves(tree) if isinstance(t, torch.Tensor) and t.requires_grad]


def cotangents_like(outputs, seed: int = SEED) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(o.shape, generator=g, dtype=torch.float64).to(o.dtype) for o in outputs]


def grads(outputs, inputs, cotangents) -> list[torch.Tensor | None]:
    pairs = [(o, c) for o, c in zip(outputs, cotangents) if o.requires_grad]
    if not pairs or not inputs:
        return [None] * len(inputs)
    return list(torch.autograd.grad([o for o, _ in pairs], inputs, [c for _, c in pairs], allow_unused=True))


def assert_same_grads(ours_g, theirs_g, inputs, twin_name, dtype, truth_g=None) -> None:
    truth_g = truth_g if truth_g is not None else [None] * len(theirs_g)
    for i, (a, b, x, t) in enumerate(zip(ours_g, theirs_g, inputs, truth_g)):
        if b is None:
            assert a is None or not a.to_dense().any(), f"grad {i}: torch gives none, ours is nonzero"
            continue
        assert a is not None, f"grad {i}: torch gives a gradient of shape {tuple(b.shape)}, ours gives None"
        assert_same(a, b, twin_name, dtype, f"grad of input {i} (shape {tuple(x.shape)})", truth=t)


# --------------------------------------------------------------------------------------------------
# Gradient checks, as torch's TestGradients._check_helper runs them
# --------------------------------------------------------------------------------------------------

def gradcheck_fn(fn: Callable, sample) -> tuple[Callable, tuple]:
    """(f, inputs) for gradcheck: the sample's tensors that require grad become f's arguments."""
    all_args = (sample.input, *sample.args, *sample.kwargs.values())
    gradcheck_args = tuple(x for x in all_args if isinstance(x, torch.Tensor) and x.requires_grad)

    def f(*inputs):
        it = iter(inputs)
        pick = lambda x: next(it) if isinstance(x, torch.Tensor) and x.requires_grad else x  # noqa: E731
        input = pick(sample.input)
        args = [pick(x) for x in sample.args]
        kwargs = {k: pick(v) for k, v in sample.kwargs.items()}
        out = fn(input, *args, **kwargs)
        return sample.output_process_fn_grad(out) if sample.output_process_fn_grad is not None else out

    return f, gradcheck_args


# Our claims beyond torch's own flags (the issue asks every Function for them; torch's OpInfo does not
# because ATen lacks them): the multi-margin loss has forward AD in ours (issue 11 item 2), checked
# against the numerical (= reverse-mode) Jacobian, and forward-over-reverse (``hessian``).
EXTRA_CHECKS: dict[str, frozenset[str]] = {
    "nn.functional.multi_margin_loss": frozenset({"forward_ad", "fwgrad_bwgrad"}),
}


def op_checks(torch_name: str) -> list[str]:
    """Which of torch's four gradient tests the OpInfo's flags ask for (plus EXTRA_CHECKS)."""
    op = opinfo(torch_name)
    checks = []
    if op.supports_autograd:
        checks.append("grad")
    if op.supports_gradgrad:
        checks.append("gradgrad")
    if op.supports_fwgrad_bwgrad:
        checks.append("fwgrad_bwgrad")
    if op.supports_forward_ad:
        checks.append("forward_ad")
    for extra in sorted(EXTRA_CHECKS.get(torch_name, ())):
        if extra not in checks:
            checks.append(extra)
    return checks


def run_check(torch_name: str, check: str, f: Callable, inputs: tuple) -> None:
    """One of torch's gradient tests with the OpInfo's own flags (test_ops_gradients / _fwd_gradients)."""
    op = opinfo(torch_name)
    extra = check in EXTRA_CHECKS.get(torch_name, ())
    common = dict(check_grad_dtypes=True, nondet_tol=op.gradcheck_nondet_tol,
                  fast_mode=True if op.gradcheck_fast_mode is None else op.gradcheck_fast_mode, raise_exception=True)
    if check == "grad":
        ok = torch.autograd.gradcheck(f, inputs, check_batched_grad=op.check_batched_grad, check_forward_ad=False,
                                      check_backward_ad=True, check_undefined_grad=True,
                                      check_batched_forward_grad=False, **common)
    elif check == "forward_ad":
        ok = torch.autograd.gradcheck(f, inputs, check_forward_ad=True, check_backward_ad=False,
                                      check_batched_grad=False, check_undefined_grad=True,
                                      check_batched_forward_grad=True if extra else op.check_batched_forward_grad,
                                      **common)
    elif check == "gradgrad":
        ok = all(torch.autograd.gradgradcheck(f, inputs, gen_non_contig_grad_outputs=nc,
                                              check_batched_grad=op.check_batched_gradgrad, **common)
                 for nc in (False, True))
    elif check == "fwgrad_bwgrad":
        ok = all(torch.autograd.gradgradcheck(f, inputs, gen_non_contig_grad_outputs=nc, check_fwd_over_rev=True,
                                              check_rev_over_rev=False, check_batched_grad=False,
                                              check_undefined_grad=False, **common)
                 for nc in (False, True))
    else:
        raise ValueError(check)
    assert ok
