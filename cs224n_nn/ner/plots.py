"""``curves.png``: a run's training loss and dev precision/recall/F1 per epoch.

Drawn from the run folder's ``metrics.csv`` (one row per epoch,
:class:`~cs224n_nn.ner.loggers.EpochCSVLogger`) at the end of
``cs224n-nn train``, and again by ``cs224n-nn plot RUN_DIR``.  Uses
matplotlib's headless Agg backend (no display needed); the PNG is written
through a temporary file and renamed into place.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cs224n_nn.errors import ConfigError, DataFormatError

__all__ = ["PLOT_NAME", "main", "plot_run"]

PLOT_NAME = "curves.png"


def plot_run(run_dir: str | os.PathLike, output: str | os.PathLike | None = None) -> Path:
    """Draw ``RUN_DIR/curves.png`` (or ``output``) from ``RUN_DIR/metrics.csv``; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from cs224n_nn.ner.atomic import atomic_write
    from cs224n_nn.ner.loggers import read_metrics

    run_dir = Path(run_dir)
    metrics = run_dir / "metrics.csv"
    if not metrics.is_file():
        raise ConfigError(f"RUN_DIR {run_dir}: no metrics.csv here (give a lightning_logs/version_N folder)")
    try:
        rows = [r for r in read_metrics(metrics) if "epoch" in r]
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DataFormatError(f"cannot read: {e}", path=metrics) from None
    if not rows:
        raise DataFormatError("no epoch rows yet", path=metrics)
    fig, (loss_ax, dev_ax) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, keys, title in ((loss_ax, [("train/loss_epoch", "training loss (epoch mean)"),
                                       ("val/loss", "dev loss")], "loss"),
                            (dev_ax, [("val/precision", "precision"), ("val/recall", "recall"),
                                      ("val/f1", "F1")], "dev entity scores")):
        for key, label in keys:
            points = [(int(r["epoch"]) + 1, float(r[key])) for r in rows if key in r]
            if points:
                ax.plot(*zip(*points), marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.suptitle(str(run_dir))
    target = Path(output) if output is not None else run_dir / PLOT_NAME
    with atomic_write(target, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
    return target


def main(argv: list[str]) -> int:
    """``cs224n-nn plot RUN_DIR [--output PNG]``."""
    parser = argparse.ArgumentParser(prog="cs224n-nn plot", allow_abbrev=False,
                                     description="Draw a run's training loss and dev P/R/F1 per epoch.")
    parser.add_argument("run_dir", help="a run folder (lightning_logs/version_N) holding metrics.csv")
    parser.add_argument("--output", help=f"PNG to write (default: RUN_DIR/{PLOT_NAME})")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    print(plot_run(args.run_dir, args.output))
    return 0
