"""A learning-rate sweep for SGD: too large diverges, too small crawls, and the tuned rate in between.

Notes section "Learning Strategies" (blog section 7.8): "with very large
learning rates, we might experience that the loss function actually
diverges", while "if we use too small a learning rate, we might not converge
in a reasonable amount of time"; so "the learning rate must be tuned". A
one-hidden-layer ReLU network (our modules) is trained with our plain SGD
from the same initial weights on the same mini-batches of a generated 5-class
problem, for learning rates from 1e-4 to 30. The tuned baseline is the rate
with the lowest held-out loss at the end (mean over 3 seeds in a full run).
Verdicts, from the training loss ``L``: *diverged* when it became non-finite
or ended above its starting value; *crawling* when it has covered less than
half of the drop the tuned rate achieves; otherwise *converging*.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from cs224n_nn import nn, optim
from experiments._common import (Progress, cli, full_loss, gaussian_classes, mean_pm_sd, mean_sd, mlp,
                                 per_seed_cell, pyplot, save_figure, seed_all, seeds_for, training_curve,
                                 write_table)

NAME = "learning_rates"
N_FEATURES, N_CLASSES, HIDDEN = 20, 5, 64
LRS = (1e-4, 1e-3, 1e-2, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


def train(lr: float, seed: int, data, steps: int, every: int) -> tuple[list[int], list[float], float]:
    """(checkpoints, training loss at each, final held-out loss) of one SGD run; stops at a non-finite loss."""
    x_train, y_train, x_test, y_test, batches = data
    torch.manual_seed(seed)  # the same initial weights for every learning rate
    model = mlp([N_FEATURES, HIDDEN, N_CLASSES], nn.ReLU)
    optimizer = optim.SGD(model.parameters(), lr=lr)
    checkpoints, losses = training_curve(model, optimizer, x_train, y_train, batches, steps, every,
                                         stop_on_nonfinite=True)
    if not math.isfinite(losses[-1]):
        return checkpoints, losses, float("inf")
    return checkpoints, losses, full_loss(model, x_test, y_test)


def run(out: Path, quick: bool = False, seed: int = 0) -> list[Path]:
    seed_all(seed)
    plt = pyplot()
    n, steps, batch, every = (200, 20, 16, 5) if quick else (4000, 2000, 16, 20)
    lrs = LRS[::3] if quick else LRS
    seeds = seeds_for(seed, quick)
    results: dict[float, list] = {lr: [] for lr in lrs}
    progress = Progress(NAME, len(seeds) * len(lrs))
    for s in seeds:
        gen = torch.Generator().manual_seed(s)
        centres = torch.randn(N_CLASSES, N_FEATURES, generator=gen) * 0.6
        x_train, y_train = gaussian_classes(n, centres, gen)
        x_test, y_test = gaussian_classes(n, centres, gen)
        data = (x_train, y_train, x_test, y_test, torch.randint(n, (steps, batch), generator=gen))
        for lr in lrs:
            results[lr].append(train(lr, s, data, steps, every))
            progress.update(f"seed {s}, lr {lr:g}")

    def final(values: list[float]) -> float:
        return values[-1] if math.isfinite(values[-1]) else float("inf")

    held_out = {lr: [r[2] for r in runs] for lr, runs in results.items()}
    tuned = min(lrs, key=lambda lr: mean_sd(held_out[lr])[0] if all(map(math.isfinite, held_out[lr])) else math.inf)
    start = mean_sd([r[1][0] for r in results[tuned]])[0]
    tuned_drop = start - mean_sd([final(r[1]) for r in results[tuned]])[0]

    def verdict(lr: float) -> str:
        finals = [final(r[1]) for r in results[lr]]
        if any(not math.isfinite(f) or f > r[1][0] for f, r in zip(finals, results[lr])):
            return "diverged"
        if lr == tuned:
            return "tuned"
        return "crawling" if start - mean_sd(finals)[0] < 0.5 * tuned_drop else "converging"

    fig, (ax_curve, ax_final) = plt.subplots(1, 2, figsize=(11, 4.2))
    rows = []
    for lr in lrs:
        checkpoints, losses, _ = results[lr][0]
        shown = [v if math.isfinite(v) else float("nan") for v in losses]
        ax_curve.plot(checkpoints, shown, lw=2.2 if lr == tuned else 1.0, label=f"lr {lr:g} ({verdict(lr)})")
        finals = [final(r[1]) for r in results[lr]]
        finite = all(map(math.isfinite, finals))
        rows.append([f"{lr:g}", verdict(lr), mean_pm_sd(finals) if finite else "inf (non-finite)",
                     mean_pm_sd(held_out[lr]) if all(map(math.isfinite, held_out[lr])) else "inf (non-finite)",
                     per_seed_cell(finals, ".3g")])
    ax_curve.set_yscale("log")
    ax_curve.set_ylim(top=10 * start)  # diverging curves leave through the top instead of squashing the rest
    ax_curve.set_xlabel("SGD step")
    ax_curve.set_ylabel("training loss (full training set)")
    ax_curve.set_title(f"training loss, seed {seeds[0]} (cut at 10x the start)")
    ax_curve.legend(fontsize=6, ncol=2)
    means = [mean_sd([min(final(r[1]), 1e3) for r in results[lr]]) for lr in lrs]
    ax_final.errorbar(lrs, [m for m, _ in means], yerr=[sd for _, sd in means], fmt="o-", capsize=3)
    ax_final.axhline(start, color="gray", ls="--", lw=0.8, label="loss at step 0")
    ax_final.set_xscale("log")
    ax_final.set_yscale("log")
    ax_final.set_xlabel("learning rate")
    ax_final.set_ylabel(f"final training loss, mean ± sd of {len(seeds)}\n(non-finite drawn at 1e3)")
    ax_final.set_title("final loss against the learning rate")
    ax_final.legend(fontsize=7)
    fig.suptitle(f"SGD learning-rate sweep: Linear({N_FEATURES}, {HIDDEN}) - ReLU - Linear({HIDDEN}, {N_CLASSES}), "
                 f"{steps} steps of batch {batch}", fontsize=10)
    written = [save_figure(fig, out, f"{NAME}.png")]
    written.append(write_table(
        out, f"{NAME}.md", "Learning-rate sweep for SGD",
        ["lr", "verdict", f"final training loss (mean ± sd, {len(seeds)} seed(s))", "final held-out loss",
         f"final training loss per seed ({', '.join(map(str, seeds))})"],
        rows,
        notes=[f"{n} training and {n} held-out points, {N_FEATURES} features, {N_CLASSES} classes (10 % labels "
               f"flipped); our SGD without momentum, {steps} steps of batch {batch}, the same initial weights and "
               f"batches for every rate within a seed. Training loss at step 0: {start:.3g} (mean over seeds). "
               f"Tuned baseline: lr {tuned:g}, the lowest mean held-out loss. Diverged: the loss went non-finite "
               "or ended above its start in at least one seed. Crawling: the mean final loss is less than half as "
               "far below the start as the tuned rate's."],
    ))
    return written


if __name__ == "__main__":
    raise SystemExit(cli(run, NAME))
