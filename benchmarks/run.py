"""Run the benchmarks and print (or write) the table.

    cs224n-nn bench                          quick pass, printed (~30 s)
    python -m benchmarks.run --full          every size; writes BENCHMARKS.md
    python -m benchmarks.run --only activations,optimizers

Groups: activations, layers, optimizers (alias optim), gradcheck, decode
(alias predict: ``cs224n-nn predict`` throughput on one core against issue
14's absolute target, no native twin; benchmarks/decode.py), ner. Every
ratio is ours / native, the median of per-run ratios over interleaved runs
(see benchmarks/_timing.py); rows that miss an issue-5 target are profiled
with torch.profiler and the top operators of both sides are written out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from benchmarks import activations, before_code, decode, gradcheck_time, layers, ner, optimizers, semantics
from benchmarks._timing import MIN_RUNS, Context, Row, Timing, configure_threads, machine_cores, measure
from cs224n_nn.ner.atomic import atomic_write

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "BENCHMARKS.md"
DEFAULT_CONLL_DIR = Path(os.environ.get("CS224N_CONLL_DIR", ROOT.parent / "shared" / "data" / "conll2003"))

# Run order; NER last, since it is the longest.
GROUPS: dict[str, Callable[[Context], list[Row]]] = {
    "activations": activations.rows,
    "layers": layers.rows,
    "optimizers": optimizers.rows,
    "gradcheck": gradcheck_time.rows,
    "decode": decode.rows,
    "ner": ner.rows,
}
# Groups that can build their piece from an earlier copy of the package (benchmarks/before_code.py),
# to re-time a row of the "worse than before" list against the before commit in one process.
RECHECKS = {"optimizers": optimizers.recheck_case}
ALIASES = {"optim": "optimizers", "activation": "activations", "layer": "layers", "predict": "decode"}

TITLES = {
    "activations": "Activations, forward + backward",
    "layers": "Affine, Embedding, losses, Dropout and the fused layers (forward + backward)",
    "optimizers": "Optimizer step",
    "gradcheck": "Gradient-check suite",
    "decode": "Prediction throughput (`cs224n-nn predict`, one core)",
    "ner": "Window NER training loop",
}

# Seconds per timed run, by preset: short in the quick run and the tests.
MIN_RUN_TIME = {"tiny": 0.0, "quick": 0.01, "full": 0.05}


def parse_groups(text: str) -> list[str]:
    names = [ALIASES.get(n.strip(), n.strip()) for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in GROUPS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown group(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(GROUPS)}"
        )
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cs224n-nn bench",
        description="Measure cs224n-nn pieces against their native PyTorch twins (ratio ours / native).",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="every size of issue 5; writes BENCHMARKS.md")
    size.add_argument("--tiny", action="store_true", help="smallest sizes (what the tests run)")
    parser.add_argument("--only", type=parse_groups, default=list(GROUPS),
                        help=f"comma-separated groups to run, from: {', '.join(GROUPS)} (default: all)")
    parser.add_argument("--runs", type=int, default=MIN_RUNS,
                        help=f"interleaved runs per side (at least {MIN_RUNS}; default {MIN_RUNS})")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: the machine's cores)")
    parser.add_argument("--output", type=Path, default=None,
                        help=f"write the markdown report here (default with --full: {DEFAULT_OUTPUT.name})")
    parser.add_argument("--before", type=Path, default=None,
                        help="an earlier report whose ratios become a 'before' column (default with --full: "
                             "the report being replaced, when it exists)")
    parser.add_argument("--before-code", default=None, metavar="COMMIT",
                        help="the commit the before report measured: each unexplained row of the 'worse than "
                             "before' list is re-timed against the package at that commit, in this process "
                             "(default: the before report's file stem when it names a commit; 'none' to skip)")
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=None,
                        help="profile the rows that miss a target with torch.profiler (default: with --full only)")
    parser.add_argument("--conll-dir", type=Path, default=DEFAULT_CONLL_DIR,
                        help="folder holding CoNLL-2003 eng.train (falls back to the shipped sample)")
    return parser


# ---------------------------------------------------------------- environment


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


# ---------------------------------------------------------------- formatting


def format_value(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "s":
        for scale, name in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
            if value >= scale:
                return f"{value / scale:.3g} {name}"
        return f"{value * 1e9:.3g} ns"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    return f"{value:,.0f} {unit}"


def format_ratio(row: Row) -> str:
    """Two decimals; three where two would round onto the target's bound and hide the verdict."""
    if row.ratio is None or math.isnan(row.ratio):
        return "-"
    if row.target is not None and abs(row.ratio - row.target.bound) < 0.005:
        return f"{row.ratio:.3f}"
    return f"{row.ratio:.2f}"


def verdict(row: Row) -> str:
    return {None: "", True: "met", False: "**MISSED**"}[row.met]


def previous_ratios(text: str) -> dict[tuple[str, str, str], str]:
    """``(piece, setting, native twin) -> ratio`` as printed in an earlier report's tables."""
    ratios = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 6 and cells[2].startswith("`") and cells[2].endswith("`"):
            ratios[(cells[0], cells[1], cells[2].strip("`"))] = cells[5]
    return ratios


def table(rows: list[Row], before: dict[tuple[str, str, str], str] | None = None) -> list[str]:
    """A group's rows; with ``before`` (an earlier report's ratios), a column of those beside today's."""
    head = "| piece | setting | native twin | ours | native | ours / native |"
    rule = "|---|---|---|---:|---:|---:|"
    if before is not None:
        head, rule = head + " before |", rule + "---:|"
    lines = [head + " target | met? |", rule + "---|---|"]
    for r in rows:
        earlier = f" {before.get((r.piece, r.setting, r.native_name), 'new')} |" if before is not None else ""
        lines.append(
            f"| {r.piece} | {r.setting} | `{r.native_name}` | {format_value(r.ours, r.unit)} | "
            f"{format_value(r.native, r.unit)} | {format_ratio(r)} |{earlier} {r.target or ''} | {verdict(r)} |"
        )
    notes = sorted({r.note for r in rows if r.note})
    lines += [""] + [f"- {n}" for n in notes] if notes else []
    return lines


#: A ratio counts as worse than before when it moved the wrong way by more than this factor
#: (the run-to-run spread of one row on the shared machine is about that large).
WORSE_FACTOR = 1.10


def worse_than_before(rows: list[Row], before: dict[tuple[str, str, str], str]) -> list[tuple[Row, float]]:
    """The rows whose ratio is worse than the earlier report's by more than :data:`WORSE_FACTOR`, with that ratio.

    Worse is higher for a time (ours / native per call) and lower for a
    throughput (ours / native tokens per second: ``unit`` ends in ``/s``).
    """
    worse = []
    for r in rows:
        try:
            then = float(before.get((r.piece, r.setting, r.native_name), "nan"))
        except ValueError:
            continue
        if r.ratio is None or math.isnan(then) or math.isnan(r.ratio):
            continue
        higher_is_better = r.unit.endswith("/s")
        if (r.ratio * WORSE_FACTOR < then) if higher_is_better else (r.ratio > then * WORSE_FACTOR):
            worse.append((r, then))
    return worse


def profile_section(rows: list[Row]) -> list[str]:
    profiled = [r for r in rows if r.profile]
    if not profiled:
        return []
    lines = [
        "## Where the time goes in the missed rows",
        "",
        "torch.profiler, CPU activity: the operators with the most self CPU time per call "
        "of the measured work (forward + backward, or one step), ours beside native. "
        "Share = fraction of all self CPU time in that side's profile.",
        "",
    ]
    for r in profiled:
        ours_ops, native_ops = r.profile
        lines += [
            f"### {r.group}: {r.piece}, {r.setting} vs `{r.native_name}` (ratio {format_ratio(r)}, target {r.target})",
            "",
            "| # | ours: operator | self CPU | share | native: operator | self CPU | share |",
            "|---|---|---:|---:|---|---:|---:|",
        ]
        for i in range(max(len(ours_ops), len(native_ops))):
            cells = []
            for ops in (ours_ops, native_ops):
                if i < len(ops):
                    op = ops[i]
                    cells += [f"`{op.name}`", f"{op.self_us:.0f} us", f"{op.share:.0%}"]
                else:
                    cells += ["", "", ""]
            lines.append(f"| {i + 1} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def old_failures(r: Row, old_checks: dict | None) -> list[str] | None:
    """The semantics checks the before code's piece of row ``r`` failed; None where there is no record of it."""
    if old_checks is None or (r.group, r.piece) not in old_checks:
        return None
    return sorted({check for check, _, _ in old_checks[(r.group, r.piece)]})


def worse_line(r: Row, then: float, old_checks: dict | None, recheck: tuple[Row, Row] | None = None) -> str:
    """One row of the worse-than-before list; with the before code's semantics report, what its piece
    failed there; with ``recheck``, today's piece timed against the before commit's in this process,
    and against a second copy of itself (the control)."""
    line = f"- {r.group} / {r.piece} / {r.setting} vs `{r.native_name}`: {then:g} -> {format_ratio(r)}"
    failed = old_failures(r, old_checks)
    if failed:
        line += f" (the old {r.piece} failed: {', '.join(failed)})"
    elif failed is not None:
        line += f" (the old {r.piece} passed every check)"
    if recheck is not None:
        then_row, control = recheck
        line += (f"; in one process, ours now / ours at the before commit: {format_ratio(then_row)} "
                 f"({format_value(then_row.ours, then_row.unit)} against "
                 f"{format_value(then_row.native, then_row.unit)}), ours now / a second copy of "
                 f"ours now: {format_ratio(control)}")
    return line


def recheck_worse(rows: list[Row], before: dict[tuple[str, str, str], str], old_checks: dict | None,
                  package: str, ctx: Context) -> dict[tuple[str, str], tuple[Row, Row]]:
    """Each row of the worse-than-before list that no failure of the old piece explains, re-timed
    against the same piece of the earlier ``package`` (:mod:`benchmarks.before_code`) in this process,
    and, as a control, against a second copy of today's piece (two copies of the same code differ by
    what the method cannot resolve); keyed by (piece, setting), rows of the same piece and setting
    sharing one re-check."""
    out: dict[tuple[str, str], tuple[Row, Row]] = {}
    for r, _ in worse_than_before(rows, before):
        key = (r.piece, r.setting)
        if key in out or old_failures(r, old_checks) or r.group not in RECHECKS:
            continue
        case = RECHECKS[r.group](r.piece, r.setting, package)
        if case is None:
            continue
        then_row = measure(case, ctx.timing)
        control = measure(RECHECKS[r.group](r.piece, r.setting, "cs224n_nn"), ctx.timing)
        out[key] = (then_row, control)
        ctx.log(f"  re-check {r.piece} / {r.setting}: ours now / ours then {then_row.ratio:.2f}, "
                f"control {control.ratio:.2f}")
    return out


def render(rows: list[Row], failures: dict[str, str], meta: dict[str, str],
           before: dict[tuple[str, str, str], str] | None = None, old_checks: dict | None = None,
           rechecks: dict[tuple[str, str], tuple[Row, Row]] | None = None) -> str:
    """The report. ``old_checks``: :func:`benchmarks.semantics.report_checks` of the before code, if there
    is one; ``rechecks``: :func:`recheck_worse`'s same-process timings against the before commit."""
    lines = ["# Benchmarks: cs224n-nn against native PyTorch", ""]
    lines += [f"Written by `{meta['command']}` on {meta['date']}. Re-run that command to refresh it.", ""]
    lines += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in meta.items() if k not in ("command", "date", "warning")]
    lines.append("")
    if meta.get("warning"):
        lines += [f"> **{meta['warning']}**", ""]
    lines += [
        "Method: ours and the native twin run alternately in one process "
        "(run i: ours first when i is even, native first when odd), each warmed up, each run "
        "repeating the call until it lasts the minimum run time; the ratio column is the median over "
        "the runs of ours / native per-call time (for throughput, ours / native tokens per second); "
        "the ours and native columns are the medians of the per-call times. "
        "Targets are the performance issues' (5, 13 and 14); a row without a target has none there. "
        "Rows without a native twin (gradcheck, decode) give our figure alone; the decode rows' target "
        "bounds that figure itself (tokens/s on one thread, the best of the runs)."
        + (f" The before column is the ratio of the same row in {meta['before']} ('new': no such row then)."
           if before is not None else ""),
        "",
    ]
    judged = [r for r in rows if r.met is not None]
    missed = [r for r in judged if r.met is False]
    lines += [f"**Targets: {len(judged) - len(missed)} of {len(judged)} met, {len(missed)} missed.**", ""]
    for r in missed:
        lines.append(f"- MISSED: {r.group} / {r.piece} / {r.setting} vs `{r.native_name}`: "
                     f"ratio {format_ratio(r)}, target {r.target}")
    if missed:
        lines.append("")
        if not any(r.profile for r in missed):
            lines += ["(Not profiled in this run: add `--profile` to see where the time goes.)", ""]
    if before is not None:
        worse = worse_than_before(rows, before)
        lines += [f"**Worse than before** (ratio moved the wrong way by more than {WORSE_FACTOR - 1:.0%}): "
                  f"{len(worse)} row(s).", ""]
        if old_checks is not None:
            lines += [f"After each, what the before code's piece failed of the semantics checks in "
                      f"{meta.get('before semantics', 'its semantics report')} (benchmarks/semantics.py: an "
                      f"infinite upstream gradient, batched backward, forward AD, each against the torch twin).", ""]
        if rechecks:
            lines += [f"Rows the old piece's semantics do not explain were re-timed against the package at "
                      f"{meta.get('before code', 'the before commit')} (benchmarks/before_code.py): today's piece "
                      f"and the old one alternately in this process, the same method as every row, and as a "
                      f"control today's piece against a second copy of itself. A ratio against the old code "
                      f"within the control's distance from 1 says the two report runs differ, not the code.", ""]
        rechecks = rechecks or {}
        lines += [worse_line(r, then, old_checks, rechecks.get((r.piece, r.setting))) for r, then in worse]
        lines += [""] if worse else []
    for group in GROUPS:
        group_rows = [r for r in rows if r.group == group]
        if group in failures:
            lines += [f"## {TITLES[group]}", "", f"Not measured: {failures[group]}", ""]
        elif group_rows:
            lines += [f"## {TITLES[group]}", ""] + table(group_rows, before) + [""]
    lines += profile_section(rows)
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------- running


def run_groups(groups: list[str], ctx: Context) -> tuple[list[Row], dict[str, str]]:
    """Every requested group's rows, and for a group that could not run, why."""
    rows: list[Row] = []
    failures: dict[str, str] = {}
    for name in groups:
        ctx.log(f"[{name}]")
        start = time.perf_counter()
        try:
            rows += GROUPS[name](ctx)
        except Exception as err:  # a piece not written yet must not hide the others' figures
            failures[name] = f"{type(err).__name__}: {err}"
            ctx.log(f"  {name} could not run: {failures[name]}")
        ctx.log(f"  ({time.perf_counter() - start:.1f} s)")
    return rows, failures


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.runs < MIN_RUNS:
        parser.error(f"--runs must be at least {MIN_RUNS}, got {args.runs}")
    if args.before is not None and not args.before.is_file():
        parser.error(f"--before {args.before}: no such report file")
    if args.before_code not in (None, "none") and before_code.commit_of(args.before_code, ROOT) is None:
        parser.error(f"--before-code {args.before_code}: not a commit of this repository")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    mode = "full" if args.full else "tiny" if args.tiny else "quick"
    threads = configure_threads(args.threads)
    cores = machine_cores()
    load_start = load_average()
    print(f"cs224n-nn bench ({mode}): torch {torch.__version__}, {threads} torch thread(s), "
          f"{cores} core(s), load average {load_start if load_start is not None else '?'}")

    ctx = Context(
        mode=mode,
        timing=Timing(runs=args.runs, min_run_time=MIN_RUN_TIME[mode]),
        profile_missed=args.full if args.profile is None else args.profile,
        log=lambda line: print(line, flush=True),
        conll_dir=str(args.conll_dir),
    )
    start = time.perf_counter()
    rows, failures = run_groups(args.only, ctx)
    elapsed = time.perf_counter() - start
    load_end = load_average()

    meta = {
        "command": shlex.join(["python", "-m", "benchmarks.run", *argv]),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{cpu_model()}, {cores} core(s) ({platform.system()} {platform.machine()})",
        "torch threads": str(threads),
        "versions": f"torch {torch.__version__}, Python {platform.python_version()}",
        "preset": f"{mode}, {args.runs} runs per side, >= {MIN_RUN_TIME[mode] * 1e3:g} ms per run",
        "load average (1 min) at start / end": f"{load_start:.2f} / {load_end:.2f}"
        if load_start is not None and load_end is not None else "unknown",
        "total time": f"{elapsed:.0f} s",
    }
    # Only the load before the run says whether other jobs shared the cores:
    # the benchmark's own threads raise the load average it sees at the end.
    if load_start is not None and load_start > 0.5 * cores:
        meta["warning"] = (
            f"Measured on a loaded {cores}-core machine (1-minute load average {load_start:.1f} at start, "
            f"{load_end:.1f} at end): other jobs shared the cores, so ratios are noisy. "
            f"Re-run `{meta['command']}` on a quiet machine for figures to quote."
        )
    output = args.output or (DEFAULT_OUTPUT if args.full else None)
    before_path = args.before or (output if args.full and output is not None and output.is_file() else None)
    before = old_checks = rechecks = None
    if before_path is not None:
        earlier = before_path.read_text(encoding="utf-8")
        stamp = next((line for line in earlier.splitlines() if line.startswith("Written by")), "")
        when = stamp.split(" on ", 1)[1].split(".")[0] if " on " in stamp else "an earlier run"
        meta["before"] = f"{before_path.name} of {when}"
        before = previous_ratios(earlier)
        checked = before_path.with_name(before_path.stem + "-semantics.md")
        if checked.is_file():
            meta["before semantics"] = checked.name
            old_checks = semantics.report_checks(checked.read_text(encoding="utf-8"))
        commit = (None if args.before_code == "none"
                  else before_code.commit_of(args.before_code or before_path.stem, ROOT))
        if commit is not None:
            meta["before code"] = commit[:7]
            ctx.log("[re-check against the before code]")
            rechecks = recheck_worse(rows, before, old_checks, before_code.load(commit, ROOT).__name__, ctx)
    report = render(rows, failures, meta, before, old_checks, rechecks)
    print()
    print(report)
    if output is not None:
        with atomic_write(output, "w", encoding="utf-8") as f:
            f.write(report)
        print(f"wrote {output}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
