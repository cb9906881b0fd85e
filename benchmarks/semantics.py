r"""Does each benchmarked piece's gradient mean what its torch twin's means? Three checks per piece.

BENCHMARKS.md compares each ratio with the code before the autograd rewrite
(issue 11), and a ratio may get worse only where the old code's faster
backward broke semantics. This script is how that is told, for whichever
``cs224n_nn`` Python imports, using only names both trees export
(``cs224n_nn.functional``):

* **infinite upstream**: the gradient for an upstream gradient holding
  ``inf`` (and, for activations, NaN) equals the twin's, NaN where the twin
  gives NaN. A backward that multiplies ``grad`` by a 0/1 mask gives
  ``0 * inf = NaN`` where the twin's kernel gives 0 or ``inf``.
* **batched backward**: ``torch.autograd.grad(..., is_grads_batched=True)``
  (vmap over the backward) runs and equals the twin's.
* **forward AD**: ``torch.func.jvp`` runs and equals the twin's.

Activations are checked at 8 elements and at 2^19 (the old code had a second,
compiled backward from 2^18 on). Run it against the old tree from a folder
that holds no ``cs224n_nn`` of its own::

    git worktree add ../old a5b2e59 && cd ../old
    PYTHONPATH=$PWD python ../main/benchmarks/semantics.py --output ../main/benchmarks/reports/a5b2e59-semantics.md

``python -m benchmarks.run --before benchmarks/reports/a5b2e59.md`` reads the
``-semantics.md`` report beside the before report and says, for each row
worse than before, which checks the old piece failed (:func:`report_checks`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as TF

INF = float("inf")
NAN = float("nan")
#: (group, piece) as benchmarks/activations.py and benchmarks/layers.py name them.
Piece = tuple[str, str]


def _same(ours, theirs) -> str | None:
    """None when the tensors (or tuples of them) agree, NaN included; else what differs, in one line."""
    ours = ours if isinstance(ours, tuple) else (ours,)
    theirs = theirs if isinstance(theirs, tuple) else (theirs,)
    for a, b in zip(ours, theirs):
        a, b = a.to_dense() if a.is_sparse else a, b.to_dense() if b.is_sparse else b
        if a.shape != b.shape or a.dtype != b.dtype:
            return f"ours is {a.dtype} {tuple(a.shape)}, torch's {b.dtype} {tuple(b.shape)}"
        bad = ~torch.isclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True)
        if bad.any():
            i = int(bad.flatten().nonzero()[0])
            return f"{int(bad.sum())} of {a.numel()} entries differ (first: ours {a.flatten()[i].item()}, torch {b.flatten()[i].item()})"
    return None


def _run(check: Callable[[], str | None]) -> str:
    try:
        return check() or "ok"
    except Exception as err:  # the old code raised for some modes: that is the finding
        return f"raises {type(err).__name__}: {str(err).splitlines()[0][:120]}"


def _grad(f, inputs, upstream, **kwargs):
    inputs = tuple(t.detach().clone().requires_grad_() for t in inputs)
    return torch.autograd.grad(f(*inputs), inputs, upstream, **kwargs)


def _three_checks(ours, twin, inputs, upstream, batch_of_upstreams, tangents) -> dict[str, Callable[[], str | None]]:
    return {
        "infinite upstream": lambda: _same(_grad(ours, inputs, upstream), _grad(twin, inputs, upstream)),
        "batched backward": lambda: _same(_grad(ours, inputs, batch_of_upstreams, is_grads_batched=True),
                                          _grad(twin, inputs, batch_of_upstreams, is_grads_batched=True)),
        "forward AD": lambda: _same(torch.func.jvp(ours, inputs, tangents)[1], torch.func.jvp(twin, inputs, tangents)[1]),
    }


def _activation_pieces(F) -> Iterator[tuple[Piece, str, dict]]:
    twins = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "hardtanh": TF.hardtanh, "softsign": TF.softsign,
             "relu": torch.relu, "leaky_relu": TF.leaky_relu}
    for name, twin in twins.items():
        for n in (8, 1 << 19):
            # an ordinary unit, an inactive or saturated one (-2 for ReLU and hard tanh, 40 for sigmoid
            # and tanh), each under an infinite, a NaN and a finite upstream gradient
            x = torch.tensor([0.5, -2.0, 3.0, 40.0] * 2).repeat(n // 8)
            upstream = torch.tensor([INF, INF, NAN, INF, 1.0, 1.0, -1.0, 2.0]).repeat(n // 8)
            if name == "softsign":  # torch's composite softsign has its own inf - inf: compare finite ones
                upstream = torch.tensor([2.0, 1.0, -3.0, 0.5] * 2).repeat(n // 8)
            gen = torch.Generator().manual_seed(0)
            batch = torch.randn((3, n), generator=gen)
            tangent = torch.randn(n, generator=gen)
            setting = "8 elements" if n == 8 else "2^19 elements"
            yield ("activations", name), setting, _three_checks(getattr(F, name), twin, (x,), upstream, batch, (tangent,))


def _loss_pieces(F) -> Iterator[tuple[Piece, str, dict]]:
    gen = torch.Generator().manual_seed(0)
    unit_batch = torch.tensor([1.0, INF, -2.0])  # three upstream gradients of a scalar loss
    # the margin losses: an inactive example next to active ones
    s, s_c = torch.tensor([3.0, 0.0, 0.2]), torch.tensor([0.0, 0.0, 0.5])
    yield ("layers", "max_margin"), "3 pairs", _three_checks(
        lambda a, b: F.max_margin_loss(a, b, 1.0, "sum"),
        lambda a, b: TF.margin_ranking_loss(a, b, torch.ones_like(a), margin=1.0, reduction="sum"),
        (s, s_c), torch.tensor(INF), unit_batch, (torch.randn(3, generator=gen), torch.randn(3, generator=gen)))
    scores, target = torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.2, 0.1], [0.3, -1.0, 2.0]]), torch.tensor([0, 1, 2])
    tangent = (torch.randn(3, 3, generator=gen),)
    # torch's multi_margin_loss has no forward AD: its jvp check compares with the reverse-mode Jacobian
    mm_checks = _three_checks(lambda x: F.multiclass_max_margin_loss(x, target, reduction="sum"),
                              lambda x: TF.multi_margin_loss(x, target, reduction="sum"),
                              (scores,), torch.tensor(INF), unit_batch, tangent)
    mm_checks["forward AD"] = lambda: _same(
        torch.func.jvp(lambda x: F.multiclass_max_margin_loss(x, target, reduction="sum"), (scores,), tangent)[1],
        (torch.autograd.functional.jacobian(lambda x: TF.multi_margin_loss(x, target, reduction="sum"), scores)
         * tangent[0]).sum())
    yield ("layers", "multiclass_max_margin"), "3 x 3 classes", mm_checks
    yield ("layers", "softmax_cross_entropy"), "3 x 3 classes", _three_checks(
        lambda x: F.softmax_cross_entropy(x, target, reduction="sum"),
        lambda x: TF.cross_entropy(x, target, reduction="sum"),
        (scores,), torch.tensor(INF), unit_batch, tangent)


def _embedding_pieces(F) -> Iterator[tuple[Piece, str, dict]]:
    gen = torch.Generator().manual_seed(0)
    ids = torch.tensor([[0, 3, 3], [5, 1, 0]])
    weight = torch.randn(6, 4, generator=gen)
    upstream = torch.randn(2, 3, 4, generator=gen)
    upstream[0, 1, 2] = INF
    for sparse in (False, True):
        checks = _three_checks(lambda w: F.embedding(ids, w, sparse=sparse), lambda w: TF.embedding(ids, w, sparse=sparse),
                               (weight,), upstream, torch.randn(3, 2, 3, 4, generator=gen),
                               (torch.randn(6, 4, generator=gen),))
        if sparse:  # torch's sparse embedding gradient has no batched backward (vmap over a sparse result)
            del checks["batched backward"]
        yield ("layers", f"embedding ({'sparse' if sparse else 'dense'} grad)"), "2 x 3 ids, 6 x 4", checks


def results(F) -> list[tuple[Piece, str, str, str]]:
    """``((group, piece), setting, check, result)`` for every check, ``result`` "ok" or what went wrong."""
    rows = []
    for source in (_activation_pieces, _loss_pieces, _embedding_pieces):
        for piece, setting, checks in source(F):
            rows += [(piece, setting, name, _run(check)) for name, check in checks.items()]
    return rows


def render(rows: list[tuple[Piece, str, str, str]], where: str) -> str:
    lines = [
        "# Semantics of each benchmarked piece against its torch twin",
        "",
        f"Written by `python benchmarks/semantics.py` on {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC "
        f"against the cs224n_nn of {where} (torch {torch.__version__}). The checks are described in "
        "benchmarks/semantics.py.",
        "",
        "| group | piece | setting | check | result |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {g} | {p} | {s} | {c} | {r} |" for (g, p), s, c, r in rows]
    return "\n".join(lines) + "\n"


def report_checks(text: str) -> dict[Piece, list[tuple[str, str, str]]]:
    """``(group, piece) -> [(check, setting, result), ...]`` of the FAILED checks in a report :func:`render` wrote;
    a piece whose every check passed maps to ``[]``."""
    checks: dict[Piece, list[tuple[str, str, str]]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] in ("activations", "layers"):
            failed = checks.setdefault((cells[0], cells[1]), [])
            if cells[4] != "ok":
                failed.append((cells[3], cells[2], cells[4]))
    return checks


def tree_name(root: Path) -> str:
    """The commit checked out at ``root`` (with "+ changes" when the tree is dirty), else the folder's name."""
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "cs224n_nn"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return root.name
    return f"commit {commit}" + (" + changes" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, help="write the markdown report here (default: print it)")
    args = parser.parse_args(argv)
    import cs224n_nn.functional as F

    text = render(results(F), tree_name(Path(F.__file__).resolve().parents[1]))
    if args.output:
        partial = args.output.with_name(args.output.name + ".partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(args.output)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
