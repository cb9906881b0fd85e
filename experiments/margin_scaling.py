"""Scaling the margin of the notes' max-margin objective: Delta = 0.1, 1 or 10 with the other parameters adapted, and without.

Notes section "Maximum Margin Objective Function" (blog line 109): "We can
scale this margin such that it is Delta = 1 and let the other parameters in
the optimization problem adapt to this without any change in performance."
The notes' scorer ``s = U^T tanh(Wx + b)`` (our modules, float64) is trained
on ``max(0, Delta + s_c - s)`` (our ``max_margin_loss``) to score "true"
inputs above "corrupt" ones, drawn from two overlapping Gaussians. Because
``s`` is linear in ``U``, ``J(Delta U, W; Delta) = Delta J(U, W; 1)``: a run
with margin ``Delta`` whose output layer starts ``Delta`` times larger and
whose learning rates are ``Delta lr`` for ``U`` and ``lr / Delta`` for ``W``
follows the ``Delta = 1`` run exactly, with every score multiplied by
``Delta``. That is the claim made exact ("adapted"). The other setting keeps
the same initial weights and one learning rate for every margin ("same
lr"), which is what changing only the margin does in practice.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from cs224n_nn import functional as F
from cs224n_nn import nn, optim
from experiments._common import (Progress, cli, gaussian_classes, mean_pm_sd, mlp, pyplot, save_figure, seed_all,
                                 seeds_for, write_table)

NAME = "margin_scaling"
N_FEATURES, HIDDEN, LR = 20, 32, 0.05
MARGINS = (0.1, 1.0, 10.0)
SETTINGS = ("adapted", "same lr")


def pairs(n: int, centres: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` (true, corrupt) input pairs: class 1 and class 0 of two Gaussians, no label noise."""
    x, y = gaussian_classes(4 * n, centres, generator, flip=0.0)
    return x[y == 1][:n].double(), x[y == 0][:n].double()


def scores(model, x_true, x_corrupt) -> tuple[torch.Tensor, torch.Tensor]:
    return model(x_true).squeeze(-1), model(x_corrupt).squeeze(-1)


def train(template, margin: float, setting: str, data, steps: int, every: int):
    """Checkpoints, held-out pair accuracy and the held-out score gaps ``s - s_c`` at each checkpoint."""
    (x_true, x_corrupt), (t_true, t_corrupt), batches = data
    model = copy.deepcopy(template)
    if setting == "adapted":
        with torch.no_grad():
            model[2].weight.mul_(margin)
            model[2].bias.mul_(margin)
        groups = [{"params": model[0].parameters(), "lr": LR / margin},
                  {"params": model[2].parameters(), "lr": LR * margin}]
    else:
        groups = [{"params": model.parameters(), "lr": LR}]
    optimizer = optim.SGD(groups, lr=LR)
    checkpoints, accuracy, gaps = [], [], []
    for t in range(steps + 1):
        if t % every == 0 or t == steps:
            with torch.no_grad():
                s, s_c = scores(model, t_true, t_corrupt)
            checkpoints.append(t)
            accuracy.append((s > s_c).double().mean().item())
            gaps.append(s - s_c)
        if t == steps:
            break
        idx = batches[t]
        s, s_c = scores(model, x_true[idx], x_corrupt[idx])
        optimizer.zero_grad()
        F.max_margin_loss(s, s_c, margin=margin).backward()
        optimizer.step()
    return checkpoints, accuracy, gaps


def run(out: Path, quick: bool = False, seed: int = 0) -> list[Path]:
    seed_all(seed)
    plt = pyplot()
    n, steps, batch, every = (100, 20, 16, 5) if quick else (1000, 2000, 32, 50)
    seeds = seeds_for(seed, quick)
    results: dict[tuple[str, float], list] = {(st, m): [] for st in SETTINGS for m in MARGINS}
    progress = Progress(NAME, len(seeds) * len(results))
    for s in seeds:
        gen = torch.Generator().manual_seed(s)
        centres = torch.randn(2, N_FEATURES, generator=gen) * 0.3
        data = (pairs(n, centres, gen), pairs(n, centres, gen), torch.randint(n, (steps, batch), generator=gen))
        torch.manual_seed(s)
        template = mlp([N_FEATURES, HIDDEN, 1], nn.Tanh).double()
        for setting in SETTINGS:
            for margin in MARGINS:
                results[setting, margin].append(train(template, margin, setting, data, steps, every))
                progress.update(f"seed {s}, {setting}, margin {margin:g}")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    rows = []
    for ax, setting in zip(axes, SETTINGS):
        for margin in MARGINS:
            runs = results[setting, margin]
            reference = results[setting, 1.0]
            ax.plot(runs[0][0], runs[0][1], lw=1.2, ls="-" if margin == 1.0 else "--", label=f"margin {margin:g}")
            # how far the scores divided by the margin are from the margin-1 run's, over all checkpoints
            drift = max(max((g / margin - g1).abs().max().item() for g, g1 in zip(r[2], r1[2]))
                        for r, r1 in zip(runs, reference))
            acc_diff = max(max(abs(a - a1) for a, a1 in zip(r[1], r1[1])) for r, r1 in zip(runs, reference))
            rows.append([setting, margin, mean_pm_sd([r[1][-1] for r in runs]),
                         mean_pm_sd([(r[2][-1] >= margin).double().mean().item() for r in runs]),
                         acc_diff, drift])
        ax.set_title(f"{setting}: held-out pair accuracy (seed {seeds[0]})")
        ax.set_xlabel("SGD step")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("fraction of held-out pairs with s > s_c")
    fig.suptitle("The notes' max-margin objective with margins 0.1, 1 and 10", fontsize=10)
    written = [save_figure(fig, out, f"{NAME}.png")]
    written.append(write_table(
        out, f"{NAME}.md", "Margin scaling in max(0, Delta + s_c - s)",
        ["setting", "margin Delta", f"final held-out pair accuracy (mean ± sd, {len(seeds)} seed(s))",
         "fraction of held-out pairs past the margin", "largest accuracy difference from Delta = 1 (any checkpoint)",
         "largest |(s - s_c)/Delta - (s - s_c) at Delta = 1| (any checkpoint)"],
        rows,
        notes=[f"Scorer s = U^T tanh(Wx + b), Linear({N_FEATURES}, {HIDDEN}) - tanh - Linear({HIDDEN}, 1) from our "
               f"modules in float64, Xavier init; {n} training and {n} held-out (true, corrupt) pairs from two unit "
               f"Gaussians whose centres are 0.3 N(0, I) apart; our SGD, {steps} steps of batch {batch}, lr {LR}. "
               "adapted: output layer initialised Delta times larger, lr Delta*lr for U and lr/Delta for W. "
               "same lr: the same initial weights and lr for every margin. The last two columns compare each run with "
               "the Delta = 1 run of the same setting and seed (0 for Delta = 1 itself)."],
    ))
    return written


if __name__ == "__main__":
    raise SystemExit(cli(run, NAME))
