"""``check_all``: :func:`~cs224n_nn.gradcheck.verify.verify` over every Function of :mod:`cs224n_nn.autograd`.

Each case gives a Function (through :mod:`cs224n_nn.functional`) float64
inputs drawn from a seed and kept clear of kinks (activations away from 0 and
+-1, hinge margins at least 0.2 from their corner), and torch's own op as the
reference. Every mode is required of our Functions: "not implemented" is a
failure here. Dropout keeps one mask, drawn once and passed to
``Dropout.apply`` as a constant input, so that the checked function is
deterministic (and vmap needs no ``randomness=``); Embedding is checked with
respect to its weight (the ids pass through), the losses with respect to the
scores (targets pass through, class weights are constants).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .numerical import _validate_eps
from .verify import FAIL, MODES, NOT_IMPLEMENTED, OK, REQUIRED, Verification, verify

# The columns of the report: a title and the modes it sums up.
COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("gradcheck", ("gradcheck_fast", "gradcheck_full")),
    ("gradgradcheck", ("gradgradcheck",)),
    ("forward AD", ("forward_ad",)),
    ("batched grad", ("batched_grad",)),
    ("batched fwd grad", ("batched_forward_grad",)),
    ("vmap", ("vmap",)),
    ("compile", ("compile",)),
    ("strided", ("non_contiguous",)),
    ("fp32/fp16/bf16", ("float32", "float16", "bfloat16")),
    ("devices", ("devices",)),
    ("reference", ("reference",)),
)


def _cell(verification: Verification, modes: Sequence[str]) -> str:
    checks = [verification[m] for m in modes]
    statuses = {c.status for c in checks}
    if any(c.status == FAIL and not c.detail.startswith(REQUIRED) for c in checks):
        return "FAIL"
    if FAIL in statuses or NOT_IMPLEMENTED in statuses:
        return "n/i"
    return "ok" if OK in statuses else "-"


@dataclass(frozen=True)
class ReportRow:
    """One case of :func:`check_all`: its :class:`Verification` and whether it runs through its Function."""

    name: str  # the case, starting with the Function's name
    function: str  # the cs224n_nn.autograd class it exercises
    verification: Verification
    uses_function: bool  # the graph really runs through that Function's backward

    @property
    def ok(self) -> bool:
        return self.verification.ok and self.uses_function

    def _passed(self, *modes: str) -> bool:
        return all(self.verification[m].status == OK for m in modes)

    @property
    def notes_ok(self) -> bool:
        return self._passed("notes")

    @property
    def gradcheck_ok(self) -> bool:
        return self._passed("gradcheck_fast", "gradcheck_full")

    @property
    def gradgradcheck_ok(self) -> bool:
        return self._passed("gradgradcheck")

    @property
    def max_rel_error(self) -> float:
        notes = self.verification.notes
        return math.nan if notes is None else notes.max_rel_error

    @property
    def max_abs_error(self) -> float:
        notes = self.verification.notes
        return math.nan if notes is None else notes.max_abs_error

    @property
    def error(self) -> str | None:
        """Why the case failed, one ``mode: reason`` per failed check; None when it passed."""
        reasons = [f"{c.name}: {c.detail}" for c in self.verification if not c.ok]
        if not self.uses_function:
            reasons.insert(0, f"the graph has no {self.function} backward node")
        return "; ".join(reasons) or None


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
        """The report as a fixed-width text table, one line per case, one column per mode."""
        headers = ("Function", "worst rel. error", *(title for title, _ in COLUMNS))
        cells = [
            (
                row.name + ("" if row.uses_function else " (not via its Function!)"),
                f"{row.max_rel_error:.2e}" + ("" if row.notes_ok else " FAIL"),
                *(_cell(row.verification, modes) for _, modes in COLUMNS),
            )
            for row in self.rows
        ]
        widths = [max(len(line[k]) for line in [headers, *cells]) for k in range(len(headers))]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in [headers, *cells]]
        lines.insert(1, "  ".join("-" * width for width in widths))
        lines.append("(n/i: not implemented, which fails here: every mode is required of our Functions; -: not run)")
        failed = [row for row in self.rows if not row.ok]
        if failed:
            lines.append(f"\nFAILED: {len(failed)} of {len(self.rows)} cases")
            for row in failed:
                lines.append(f"  {row.name}:")
                if not row.uses_function:
                    lines.append(f"    the graph has no {row.function} backward node")
                lines += [f"    {c.name}: {c.detail}" for c in row.verification if not c.ok]
                lines += [f"    {c.name}: worst element {c.worst}" for c in row.verification if not c.ok and c.worst]
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


def _graph_runs_through(out: object, function: type) -> bool:
    """Whether ``out``'s autograd graph holds a backward node of ``function``."""
    outs = out if isinstance(out, (tuple, list)) else (out,)
    seen, stack = set(), [o.grad_fn for o in outs if isinstance(o, torch.Tensor)]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if getattr(type(node), "_forward_cls", None) is function:
            return True
        stack.extend(next_node for next_node, _ in node.next_functions)
    return False


# A case: (name, Function name, build(generator, device) -> (fn, inputs, reference, verify options)).
_Build = Callable[[torch.Generator, torch.device], tuple[Callable[..., torch.Tensor], tuple, Callable[..., torch.Tensor], dict]]
_Case = tuple[str, str, _Build]


def _cases(seed: int) -> list[_Case]:
    # Imported here, not at the top: numerical_gradient and verify need no Functions.
    import torch.nn.functional as TF

    from cs224n_nn import autograd
    from cs224n_nn import functional as F

    def randn(generator, *shape):
        return torch.randn(shape, generator=generator, dtype=torch.float64)

    def activation(call, reference, kinks=()):
        def build(generator, device):
            x = _clear_of_kinks(3 * randn(generator, 3, 4), kinks)
            return call, (x.to(device),), reference, {}

        return build

    def affine(bias):
        def build(generator, device):
            x, weight = randn(generator, 2, 3, 4).to(device), randn(generator, 5, 4).to(device)
            if not bias:
                return (lambda x, weight: F.affine(x, weight)), (x, weight), (lambda x, weight: TF.linear(x, weight)), {}
            return F.affine, (x, weight, randn(generator, 5).to(device)), TF.linear, {}

        return build

    # Every tensor a case needs is one of its inputs (ids and targets pass
    # through, masks and class weights are ``nondiff``), so that verify moves
    # it with the device row and casts it with the dtype rows.

    def dropout(generator, device):
        # One mask, drawn once: the checked function is deterministic and
        # takes no RNG under vmap.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            mask = autograd.keep_mask(torch.empty(4, 5, dtype=torch.float64), 0.3)
        inputs = (randn(generator, 4, 5).to(device), mask.to(device))
        return autograd.Dropout.apply, inputs, (lambda x, mask: x * mask), dict(nondiff=(1,))

    def embedding(generator, device):
        ids = torch.tensor([[0, 2, 2], [5, 0, 1]], device=device)  # repeats exercise the scatter-add
        return F.embedding, (ids, randn(generator, 6, 3).to(device)), TF.embedding, {}

    def max_margin(generator, device):
        s_c = randn(generator, 6)
        s = 1.0 + s_c - _hinge_gaps(generator, (6,))  # so margin + s_c - s = gap
        return (
            (lambda s, s_c: F.max_margin_loss(s, s_c, margin=1.0)),
            (s.to(device), s_c.to(device)),
            (lambda s, s_c: (1.0 + s_c - s).clamp_min(0).mean()),
            {},
        )

    def multiclass_margin(weighted):
        def build(generator, device):
            n, classes = 5, 4
            target = torch.randint(classes, (n,), generator=generator)
            # margin - s_y + s_j = gap_j for j != y: no hinge at its corner
            scores = -1.0 + _hinge_gaps(generator, (n, classes))
            scores[torch.arange(n), target] = 0.0
            scores = scores + randn(generator, n, 1)  # a row offset changes no margin
            weight = 0.5 + torch.rand(classes, generator=generator, dtype=torch.float64)
            inputs = (scores.to(device), target.to(device))
            if weighted:
                return (
                    (lambda s, target, weight: F.multiclass_max_margin_loss(s, target, margin=1.0, weight=weight)),
                    (*inputs, weight.to(device)),
                    (lambda s, target, weight: TF.multi_margin_loss(s, target, p=1, margin=1.0, weight=weight)),
                    dict(nondiff=(2,)),
                )
            return (
                (lambda s, target: F.multiclass_max_margin_loss(s, target, margin=1.0)),
                inputs,
                (lambda s, target: TF.multi_margin_loss(s, target, p=1, margin=1.0)),
                {},
            )

        return build

    def cross_entropy(options):
        def build(generator, device):
            n, classes = 6, 5
            target = torch.randint(classes, (n,), generator=generator)
            scores = 3 * randn(generator, n, classes)
            if not options:
                return F.softmax_cross_entropy, (scores.to(device), target.to(device)), TF.cross_entropy, {}
            target[1] = -100  # ignored row
            weight = 0.5 + torch.rand(classes, generator=generator, dtype=torch.float64)
            extra = dict(ignore_index=-100, label_smoothing=0.1)
            return (
                (lambda s, target, weight: F.softmax_cross_entropy(s, target, weight=weight, **extra)),
                (scores.to(device), target.to(device), weight.to(device)),
                (lambda s, target, weight: TF.cross_entropy(s, target, weight=weight, **extra)),
                dict(nondiff=(2,)),
            )

        return build

    cases: list[_Case] = [
        ("Sigmoid", "Sigmoid", activation(F.sigmoid, torch.sigmoid)),
        ("Tanh", "Tanh", activation(F.tanh, torch.tanh)),
        ("HardTanh", "HardTanh", activation(F.hardtanh, TF.hardtanh, kinks=(-1.0, 1.0))),
        ("SoftSign", "SoftSign", activation(F.softsign, TF.softsign, kinks=(0.0,))),  # its 2nd derivative jumps at 0
        ("ReLU", "ReLU", activation(F.relu, torch.relu, kinks=(0.0,))),
        (
            "LeakyReLU",
            "LeakyReLU",
            activation(lambda x: F.leaky_relu(x, negative_slope=0.1), lambda x: TF.leaky_relu(x, 0.1), kinks=(0.0,)),
        ),
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
    # Functions that other parts of the contract add (GUIDE section 3): checked
    # as soon as they exist, so that the coverage test keeps meaning "every".
    if hasattr(autograd, "DenseLayer") and hasattr(F, "dense"):

        def dense(generator, device):
            x, weight, bias = randn(generator, 4, 3), randn(generator, 5, 3), randn(generator, 5)
            return (
                (lambda x, weight, bias: F.dense(x, weight, bias, activation="tanh")),
                (x.to(device), weight.to(device), bias.to(device)),
                (lambda x, weight, bias: torch.tanh(TF.linear(x, weight, bias))),
                {},
            )

        cases.append(("DenseLayer (tanh)", "DenseLayer", dense))

        def dense_loss(ours, native):
            def build(generator, device):
                x, weight, bias = randn(generator, 4, 3), randn(generator, 5, 3), randn(generator, 5)
                target = torch.randint(5, (4,), generator=generator)
                return (
                    (lambda x, weight, bias: ours(x, weight, bias, target.to(device))),
                    (x.to(device), weight.to(device), bias.to(device)),
                    (lambda x, weight, bias: native(TF.linear(x, weight, bias), target.to(device))),
                    {},
                )

            return build

        cases.append(("DenseCrossEntropy", "DenseCrossEntropy", dense_loss(F.dense_cross_entropy, TF.cross_entropy)))
        cases.append(("DenseMultiMargin", "DenseMultiMargin", dense_loss(F.dense_multi_margin, TF.multi_margin_loss)))
    if hasattr(autograd, "WindowLookup"):
        from cs224n_nn.autograd.window import split_lookup

        def window(generator, device):
            # B = 2 windows of W = 3 positions, two features: a word table split at 4 of its 6 ids
            # (both halves trained here) and a casing table; repeats exercise the scatter-add.
            ids = torch.tensor([[[0, 4, 5], [1, 0, 3]], [[3, 3, 4], [2, 2, 0]]], device=device)
            layout = ((0, ((0, None, False), (4, None, False))), (1, ((0, None, False),)))

            def reference(ids, low, high, casing):
                words = split_lookup(ids[:, 0], 4, lambda i: TF.embedding(i, low), lambda i: TF.embedding(i, high))
                return torch.cat([words, TF.embedding(ids[:, 1], casing)], dim=-1).flatten(1)

            tables = (randn(generator, 4, 3), randn(generator, 2, 3), randn(generator, 4, 2))
            return ((lambda ids, low, high, casing: autograd.WindowLookup.apply(ids, layout, low, high, casing)),
                    (ids, *(t.to(device) for t in tables)), reference, {})

        cases.append(("WindowLookup (split table)", "WindowLookup", window))
    if hasattr(autograd, "CRFNegLogLikelihood") and hasattr(F, "crf_nll"):

        def crf(generator, device):
            n, steps, tags = 2, 4, 3
            emissions = randn(generator, n, steps, tags)
            gold = torch.randint(tags, (n, steps), generator=generator)
            parameters = (randn(generator, tags, tags), randn(generator, tags), randn(generator, tags))
            inputs = (emissions, gold, *parameters)
            return F.crf_nll, tuple(t.to(device) for t in inputs), _crf_nll_by_enumeration, {}

        cases.append(("CRFNegLogLikelihood", "CRFNegLogLikelihood", crf))
    return cases


def _crf_nll_by_enumeration(emissions, tags, transitions, start, end):
    """The CRF's mean negative log-likelihood by scoring every one of the ``K^T`` tag paths (small K, T only).

    ``score(y) = start[y_1] + sum_t emissions[t, y_t] + sum_t transitions[y_t, y_t+1] + end[y_T]``;
    ``NLL = logsumexp over all paths - score(gold)``: no forward algorithm, so
    an independent reference for :func:`cs224n_nn.functional.crf_nll`.
    """
    batch, steps, k = emissions.shape
    paths = torch.cartesian_prod(*[torch.arange(k, device=emissions.device)] * steps).reshape(-1, steps)

    def score(y):  # y: (P, T) paths -> (B, P) scores
        unary = emissions[:, torch.arange(steps), y].sum(-1)  # (B, P)
        binary = transitions[y[:, :-1], y[:, 1:]].sum(-1) + start[y[:, 0]] + end[y[:, -1]]  # (P,)
        return unary + binary

    total = score(paths).logsumexp(-1)
    gold = torch.stack([score(tags[b : b + 1])[b] for b in range(batch)]).squeeze(-1)
    return (total - gold).mean()


def _run_case(name, function_name, build, *, device, options) -> ReportRow:
    from cs224n_nn import autograd

    function = getattr(autograd, function_name)
    generator = torch.Generator().manual_seed(options["seed"])
    fn, inputs, reference, extra = build(generator, device)
    constants = extra.get("nondiff", ())
    probe = tuple(x.detach().requires_grad_(x.is_floating_point() and i not in constants) for i, x in enumerate(inputs))
    uses_function = _graph_runs_through(fn(*probe), function)
    verification = verify(fn, *inputs, reference=reference, require=MODES, **options, **extra)
    verification = Verification(name, verification.checks, verification.options, verification.notes)
    return ReportRow(name, function_name, verification, uses_function)


def check_all(
    *,
    eps: float = 1e-5,
    rtol: float = 1e-6,
    seed: int = 0,
    device: str | torch.device = "cpu",
    compile: bool = False,
    compile_backend: str = "aot_eager",
    functions: Sequence[str] | None = None,
) -> Report:
    """:func:`verify` every Function of :mod:`cs224n_nn.autograd`, every mode required, in float64.

    One row per case (every Function, plus variants that take another
    backward path), one column per mode: the notes' central difference
    (``eps``, ``rtol``), gradcheck (fast and full), gradgradcheck, forward
    AD, batched gradients (backward and forward), vmap, strided inputs,
    float32/float16/bfloat16 against float64, every other device, and torch's
    twin as the reference. ``torch.compile(fullgraph=True)`` costs seconds per
    case, so it runs only with ``compile=True`` (``compile_backend``
    "aot_eager" or "inductor"). ``functions`` (names such as "Tanh") keeps
    only their cases. The caller's RNG state is left as it was.
    """
    eps = _validate_eps(eps)
    rtol = _validate_eps(rtol, "rtol")
    device = torch.device(device)
    cases = _cases(seed)
    if functions is not None:
        functions = [functions] if isinstance(functions, str) else list(functions)
        known = sorted({function for _, function, _ in cases})
        unknown = [name for name in functions if name not in known]
        if unknown:
            raise ValueError(f"functions names unknown Function(s) {unknown}; the Functions are {known}")
        cases = [case for case in cases if case[1] in functions]
    options = dict(eps=eps, rtol=rtol, seed=seed, compile_backend=compile_backend, skip=() if compile else ("compile",))
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        rows = tuple(
            _run_case(name, function_name, build, device=device, options=options)
            for name, function_name, build in cases
        )
    return Report(rows)
