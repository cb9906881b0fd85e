"""Wall time of the gradient-check suite, ``cs224n_nn.gradcheck.check_all()``.

There is no native twin to divide by, so the row gives the median wall time
of a few whole runs of the suite (the quick run and the tests take one).
"""

from __future__ import annotations

import statistics
import time

from benchmarks._timing import Context, Row

RUNS = {"tiny": 1, "quick": 1, "full": 3}


def rows(ctx: Context) -> list[Row]:
    from cs224n_nn.gradcheck import check_all

    times = []
    for _ in range(RUNS[ctx.mode]):
        start = time.perf_counter()
        report = check_all()
        times.append(time.perf_counter() - start)
    # Timing a suite that fails would flatter it (a failing check may stop early).
    passed = sum(row.ok for row in report.rows)
    checked = f"{len(report.rows)} Functions, {passed} passed"
    row = Row(
        group="gradcheck",
        piece="check_all()",
        setting=checked,
        native_name="(none)",
        ours=statistics.median(times),
        native=None,
        ratio=None,
        unit="s",
        note=f"wall time, median of {len(times)} run(s)",
        runs=len(times),
    )
    ctx.log(f"  gradcheck   check_all()              {row.ours:.2f} s")
    return [row]
