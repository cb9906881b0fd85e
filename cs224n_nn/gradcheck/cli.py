"""``cs224n-nn gradcheck`` (also ``python -m cs224n_nn.gradcheck``).

Without ``--target``: the report of :func:`~cs224n_nn.gradcheck.suite.check_all`
over our own Functions. With ``--target MODULE:NAME --input SPEC ...``: the
table of :func:`~cs224n_nn.gradcheck.verify.verify` for anyone's Function or
callable, on random inputs built from the specs.

Exit status: 0 when every check passes, 1 when one fails, 2 for bad
arguments or a target that cannot be imported (one line on stderr, no
traceback). Imports only torch and this package (never Lightning).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Sequence

import torch

from .numerical import _validate_eps
from .suite import check_all
from .verify import MODES, first_line, verify

PROG = "cs224n-nn gradcheck"

_SPEC = re.compile(r"^\s*(?P<dtype>[a-z][a-z0-9]*)\s*\[(?P<shape>[^\]]*)\]\s*(?:<\s*(?P<high>[^\s]+)\s*)?$")


class UsageError(Exception):
    """A bad argument: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) and exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse's name
        print(f"{PROG}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def parse_spec(spec: str, generator: torch.Generator) -> torch.Tensor:
    """A random tensor from a spec: ``float64[3,4]`` (normal), ``int64[5]<10`` (ids in [0, 10)), ``float32[]`` (0-d)."""
    match = _SPEC.match(spec)
    if not match:
        raise UsageError(f"--input {spec!r}: expected DTYPE[SHAPE] or DTYPE[SHAPE]<HIGH, e.g. float64[3,4] or int64[5]<10")
    dtype = getattr(torch, match["dtype"], None)
    if not isinstance(dtype, torch.dtype) or dtype.is_complex or dtype == torch.bool:
        raise UsageError(f"--input {spec!r}: {match['dtype']!r} is not a real torch dtype (e.g. float64, float32, int64)")
    text = match["shape"].strip()
    try:
        shape = [int(d) for d in text.split(",")] if text else []
    except ValueError:
        raise UsageError(f"--input {spec!r}: the shape must be integers separated by commas, got [{text}]") from None
    if any(d < 0 for d in shape):
        raise UsageError(f"--input {spec!r}: sizes must be >= 0")
    high = match["high"]
    if dtype.is_floating_point:
        if high is not None:
            raise UsageError(f"--input {spec!r}: '<HIGH' is for integer inputs only")
        return torch.randn(shape, generator=generator, dtype=torch.float64).to(dtype)
    if high is None:
        raise UsageError(f"--input {spec!r}: an integer input needs an upper bound, e.g. {match['dtype']}[{text}]<10")
    try:
        bound = int(high)
    except ValueError:
        raise UsageError(f"--input {spec!r}: the bound after '<' must be an integer, got {high!r}") from None
    if bound < 1:
        raise UsageError(f"--input {spec!r}: the bound after '<' must be >= 1, got {bound}")
    return torch.randint(bound, shape, generator=generator, dtype=dtype)


def load(target: str, option: str = "--target") -> object:
    """``MODULE:NAME`` (NAME may be dotted) imported; the current folder is importable, as with ``python -m``."""
    module_name, sep, name = target.partition(":")
    if not sep or not module_name or not name:
        raise UsageError(f"{option} {target!r}: expected MODULE:NAME, e.g. mypkg.ops:Swish")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj = importlib.import_module(module_name)
    except Exception as error:  # any failure to import is the user's module, reported in one line
        raise UsageError(f"{option} {target!r}: cannot import {module_name!r}: {first_line(error)}") from None
    for part in name.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"{option} {target!r}: {module_name!r} has no attribute {name!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UsageError(f"{option} {target!r}: {name!r} is a {type(obj).__name__}, not a Function or callable")
    return obj


def _positive_float(text: str) -> float:
    try:
        return _validate_eps(float(text), "value")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Without --target: check every hand-written Function of cs224n_nn.autograd "
        "(the notes' central difference, gradcheck, gradgradcheck, forward AD, batched gradients, vmap, "
        "strided inputs, low precision, devices, torch's twin), every mode required. "
        "With --target: the same battery on your own Function or callable.",
        epilog="exit status: 0 all checks pass, 1 a check fails, 2 bad arguments or an un-importable target",
    )
    parser.add_argument("--eps", type=_positive_float, default=1e-5, help="step of the central difference (default 1e-5)")
    parser.add_argument(
        "--rtol", type=_positive_float, default=1e-6, help="largest worst-case relative error that passes (default 1e-6)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    parser.add_argument("--device", default="cpu", help="device to check on, e.g. cpu, cuda, cuda:1 (default cpu)")
    parser.add_argument(
        "--compile", action="store_true", help="also run torch.compile(fullgraph=True) over our Functions (seconds each; --target always runs it)"
    )
    parser.add_argument(
        "--backend", default="aot_eager", help="torch.compile backend: aot_eager (default, fast) or inductor"
    )
    parser.add_argument(
        "--function", metavar="NAME", action="append", default=None, help="check only this Function of ours (repeatable), e.g. Tanh"
    )
    target = parser.add_argument_group("your own Function")
    target.add_argument("--target", metavar="MODULE:NAME", help="a torch.autograd.Function subclass or a callable")
    target.add_argument(
        "--input",
        metavar="SPEC",
        action="append",
        default=[],
        help="one example input per --input: DTYPE[SHAPE] (random normal), or DTYPE[SHAPE]<HIGH for integers in [0, HIGH)",
    )
    target.add_argument("--reference", metavar="MODULE:NAME", help="a callable whose values and gradients must match")
    target.add_argument(
        "--require", metavar="MODE", action="append", default=[], choices=MODES, help=f"a mode that must be implemented: {', '.join(MODES)}"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``cs224n-nn gradcheck``: print the report (or the table of ``--target``); 0 ok, 1 a failure, 2 bad arguments."""
    parser = _parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        device = torch.device(args.device)
    except RuntimeError:
        parser.error(f"argument --device: not a device: {args.device!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("argument --device: CUDA is not available on this machine")
    if (args.compile or args.target) and args.backend not in torch.compiler.list_backends(exclude_tags=()):
        parser.error(f"argument --backend: unknown torch.compile backend {args.backend!r}")

    if args.target is not None and args.function:
        parser.error("argument --function: checks our own Functions, not a --target")
    if args.target is None:
        for option in ("input", "reference", "require"):
            if getattr(args, option):
                parser.error(f"argument --{option}: needs --target")
        try:
            report = check_all(
                eps=args.eps, rtol=args.rtol, seed=args.seed, device=device, compile=args.compile,
                compile_backend=args.backend, functions=args.function,
            )  # fmt: skip
        except ValueError as error:
            parser.error(f"argument --function: {error}")
        print(f"{PROG}: float64 on {device}, eps={args.eps:g}, seed={args.seed}\n")
        print(report.table())
        return 0 if report.ok else 1

    try:
        fn = load(args.target)
        reference = load(args.reference, "--reference") if args.reference else None
        if not args.input:
            raise UsageError("--target needs at least one --input SPEC, e.g. --input float64[3,4]")
        generator = torch.Generator().manual_seed(args.seed)
        inputs = [parse_spec(spec, generator).to(device) for spec in args.input]
        if not any(x.is_floating_point() for x in inputs):
            raise UsageError("--input: at least one input must be floating-point, e.g. float64[3,4]")
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    result = verify(
        fn, *inputs, reference=reference, require=args.require, eps=args.eps, rtol=args.rtol, seed=args.seed,
        compile_backend=args.backend,
    )  # fmt: skip
    print(result.table())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
