"""The one place that times things: interleaved runs, median of ratios.

Method (GUIDE section 6 and issue 5):

* ours and the native twin run in the same process, alternately: run ``i``
  times ours then native when ``i`` is even and native then ours when it is
  odd, so a slow drift of the machine (another job starting, the CPU
  clocking down) lands on both sides alike;
* every side is warmed up first (this also pays any ``torch.compile``), then
  calibrated: one run repeats the call ``number`` times so that it lasts at
  least ``min_run_time`` seconds, and the time per call is run time / number;
* the figure is the MEDIAN over the runs of the per-run ratio
  ours / native; the medians of the two per-call times are shown beside it.
  A median of ratios is robust to a run that another process interrupted,
  where a ratio of means is not.

Also here: the thread setting every measurement uses, and the
``torch.profiler`` summary (top operators by self CPU time) that explains a
missed target.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

# Smallest number of runs the issue accepts for a reported ratio.
MIN_RUNS = 7


def machine_cores() -> int:
    """Cores this process may run on (the affinity mask, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def configure_threads(threads: int | None = None) -> int:
    """Fix torch's intra-op threads (default: the machine's cores) and return it."""
    threads = threads or machine_cores()
    torch.set_num_threads(threads)
    return torch.get_num_threads()


@dataclass(frozen=True)
class Target:
    """A bound on the ratio ours / native, e.g. ``Target("<=", 1.2)``; with a ``unit``, on our figure itself.

    ``Target(">=", 20_000, unit="tokens/s")`` is an absolute target, for a row
    with no native twin (issue 14's prediction throughput).
    """

    op: str
    bound: float
    unit: str = ""

    def __post_init__(self) -> None:
        if self.op not in ("<=", ">="):
            raise ValueError(f"Target op must be '<=' or '>=', got {self.op!r}")

    def met(self, value: float) -> bool:
        return value <= self.bound if self.op == "<=" else value >= self.bound

    def __str__(self) -> str:
        return f"{self.op} {self.bound:,.0f} {self.unit}" if self.unit else f"{self.op} {self.bound:g}"


@dataclass(frozen=True)
class Timing:
    """How hard to measure: runs per side, seconds per run, warm-up calls."""

    runs: int = MIN_RUNS
    min_run_time: float = 0.05
    warmup: int = 2
    profile_iters: int = 3

    def __post_init__(self) -> None:
        if self.runs < MIN_RUNS:
            raise ValueError(f"runs must be at least {MIN_RUNS} (the issue's minimum), got {self.runs}")
        if self.min_run_time < 0:
            raise ValueError(f"min_run_time must be >= 0, got {self.min_run_time}")


@dataclass
class Case:
    """One comparison: two zero-argument callables doing the same work.

    ``ours`` and ``native`` each perform one unit of the measured work (for an
    activation: forward and backward once). ``per_call`` turns seconds per call
    into the reported quantity: ``None`` reports time; a number ``k`` reports
    a throughput of ``k / seconds`` in ``unit`` (higher is better, and the ratio
    is then ours / native throughput).
    """

    group: str
    piece: str
    setting: str
    native_name: str
    ours: Callable[[], object]
    native: Callable[[], object]
    target: Target | None = None
    per_call: float | None = None
    unit: str = "s"
    note: str = ""


@dataclass
class OpShare:
    """One line of a profile: an operator's self CPU time per call of the case."""

    name: str
    self_us: float
    calls: float
    share: float  # of all self CPU time in the profile


@dataclass
class Row:
    """A line of the results table. ``ours``/``native`` are in ``unit``."""

    group: str
    piece: str
    setting: str
    native_name: str
    ours: float
    native: float | None
    ratio: float | None  # None where there is no native twin
    unit: str
    target: Target | None = None
    note: str = ""
    runs: int = 0
    profile: tuple[list[OpShare], list[OpShare]] | None = field(default=None, repr=False)

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        if self.target.unit:  # an absolute target bounds our own figure, in the row's unit
            if self.target.unit != self.unit:
                raise ValueError(f"row {self.piece!r} is in {self.unit}, its target in {self.target.unit}")
            return self.target.met(self.ours)
        return None if self.ratio is None else self.target.met(self.ratio)


def _run(fn: Callable[[], object], number: int) -> float:
    """Seconds per call over ``number`` back-to-back calls, garbage collector off."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        return (time.perf_counter() - start) / number
    finally:
        if gc_was_enabled:
            gc.enable()


def _calls_per_run(fn: Callable[[], object], min_run_time: float) -> int:
    """Calls needed for one run to last ``min_run_time`` (at least one).

    Sized from the fastest of three single calls: on a shared machine one
    call may wait for a core, and sizing from that wait would leave runs of a
    single call, as noisy as the wait itself.
    """
    once = min(_run(fn, 1) for _ in range(3))
    if once >= min_run_time:
        return 1
    return min(100_000, math.ceil(min_run_time / max(once, 1e-9)))


@dataclass
class PairTimes:
    ours: list[float]
    native: list[float]

    @property
    def ratios(self) -> list[float]:
        return [a / b for a, b in zip(self.ours, self.native)]


def time_pair(ours: Callable[[], object], native: Callable[[], object], timing: Timing) -> PairTimes:
    """Per-call seconds of ``ours`` and ``native`` over ``timing.runs`` interleaved runs."""
    for _ in range(timing.warmup):
        ours()
        native()
    n_ours = _calls_per_run(ours, timing.min_run_time)
    n_native = _calls_per_run(native, timing.min_run_time)
    times = PairTimes([], [])
    for i in range(timing.runs):
        if i % 2 == 0:
            times.ours.append(_run(ours, n_ours))
            times.native.append(_run(native, n_native))
        else:
            times.native.append(_run(native, n_native))
            times.ours.append(_run(ours, n_ours))
    return times


def measure(case: Case, timing: Timing) -> Row:
    """Time a case and summarise it as a table row (medians and median ratio)."""
    times = time_pair(case.ours, case.native, timing)
    if case.per_call is None:
        ours, native = statistics.median(times.ours), statistics.median(times.native)
        ratio = statistics.median(times.ratios)
    else:  # throughput: higher is better, ratio = ours / native throughput
        ours = statistics.median(case.per_call / t for t in times.ours)
        native = statistics.median(case.per_call / t for t in times.native)
        ratio = statistics.median(1.0 / r for r in times.ratios)
    return Row(
        group=case.group,
        piece=case.piece,
        setting=case.setting,
        native_name=case.native_name,
        ours=ours,
        native=native,
        ratio=ratio,
        unit=case.unit,
        target=case.target,
        note=case.note,
        runs=timing.runs,
    )


@contextlib.contextmanager
def _quiet_stderr():
    """Silence the profiler backend's start/stop lines, which it writes to fd 2 from C++."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def top_ops(fn: Callable[[], object], iters: int, top: int = 6) -> list[OpShare]:
    """The ``top`` operators by self CPU time while ``fn`` runs ``iters`` times."""
    from torch.profiler import ProfilerActivity, profile

    fn()  # keep one-time work (allocation, compilation) out of the profile
    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(iters):
            fn()
    events = list(prof.key_averages())
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [
        OpShare(e.key, e.self_cpu_time_total / iters, e.count / iters, e.self_cpu_time_total / total)
        for e in events[:top]
    ]


@dataclass
class Context:
    """What every group needs: the size preset, the timer settings, a logger."""

    mode: str  # "tiny" (the tests), "quick" (the default) or "full" (BENCHMARKS.md)
    timing: Timing
    profile_missed: bool = True
    log: Callable[[str], None] = print
    conll_dir: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("tiny", "quick", "full"):
            raise ValueError(f"mode must be 'tiny', 'quick' or 'full', got {self.mode!r}")


def measure_all(cases, ctx: Context) -> list[Row]:
    """Measure each case in turn; profile the ones that miss their target.

    ``cases`` may be a generator, so that each case's tensors are built just
    before it runs and freed right after (the 16M float64 inputs are large).
    """
    rows = []
    for case in cases:
        row = measure(case, ctx.timing)
        if ctx.profile_missed and row.met is False:
            row.profile = profile_case(case, ctx.timing)
        ctx.log(format_progress(row))
        rows.append(row)
        del case
    return rows


def format_progress(row: Row) -> str:
    """One line per finished row, so a long run shows that it is alive."""
    ratio = "-" if row.ratio is None else f"{row.ratio:.2f}"
    verdict = {None: "", True: " met", False: " MISSED"}[row.met]
    return f"  {row.group:<11} {row.piece:<24} {row.setting:<22} vs {row.native_name:<32} ratio {ratio}{verdict}"


def profile_case(case: Case, timing: Timing) -> tuple[list[OpShare], list[OpShare]]:
    """Where the time goes, ours then native (for a row that missed its target)."""
    return top_ops(case.ours, timing.profile_iters), top_ops(case.native, timing.profile_iters)
