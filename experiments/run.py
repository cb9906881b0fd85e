"""``cs224n-nn experiment NAME [--quick] [--out DIR] [--seed N] [--threads N]``
and ``cs224n-nn experiment --list``: run one experiment that reproduces a
claim of the notes (or list them)."""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from experiments._common import cli

HERE = Path(__file__).resolve().parent

# In the order of issue 6 (the maths-only experiments first, then those on NER), then issue 16's.
EXPERIMENTS = (
    "activations",
    "gradient_check",
    "initialisation",
    "decision_boundary",
    "optimizers",
    "schedules",
    "regularisation",
    "ner_activations",
    "objectives",
    "notes_objective",
    "vectorisation",
    "preprocessing",
    # issue 16: the notes' claims nothing tested before
    "dead_units",
    "learning_rates",
    "margin_scaling",
    "xavier_training",
    "adaptive_steps",
    "gradient_cost",
    "fan_in_lr",
    "delta_reuse",
)


def summary(name: str) -> str:
    """First line of the experiment's docstring, read without importing it
    (listing should not pay for torch, Lightning and matplotlib)."""
    doc = ast.get_docstring(ast.parse((HERE / f"{name}.py").read_text())) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def usage() -> str:
    width = max(map(len, EXPERIMENTS))
    lines = ["usage: cs224n-nn experiment NAME [--quick] [--out DIR] [--seed N] [--threads N]",
             "       cs224n-nn experiment --list",
             "", "experiments:"]
    lines += [f"  {name:<{width}}  {summary(name)}" for name in EXPERIMENTS]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "--list"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in EXPERIMENTS:
        print(f"cs224n-nn experiment: unknown experiment {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"experiments.{name}")
    return cli(module.run, name, rest, description=summary(name))


if __name__ == "__main__":
    raise SystemExit(main())
