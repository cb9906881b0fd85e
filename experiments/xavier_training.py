"""Xavier against the other initialisations in training: how fast a deep tanh or sigmoid network converges and the error it ends at.

Notes section "Parameter Initialization" (blog line 575), after Glorot and
Bengio (2010): "for sigmoid and tanh activation units, faster convergence
and lower error rates are achieved when the weights" are drawn from Xavier's
uniform distribution. The ``initialisation`` experiment shows the variances
at step 0; this one trains. A network of 5 hidden layers of width 64 (our
modules) is trained with our SGD on a generated 5-class problem from each of
the schemes of ``initialisation.INITS`` (Xavier uniform, the notes'
``randn/sqrt(fan_in)``, ``N(0, 0.01^2)`` and ``U[-1/sqrt(n), 1/sqrt(n)]``),
with the same data and batches, over 3 seeds. Convergence speed: the first
step at which the full training loss is below ``TARGET``; error: the
held-out classification error at the end.
"""

from __future__ import annotations

from pathlib import Path

import torch

from cs224n_nn import optim
from experiments._common import (Progress, cli, full_loss, gaussian_classes, mean_pm_sd, mean_sd, mlp, pyplot,
                                 save_figure, seed_all, seeds_for, training_curve, write_table)
from experiments.initialisation import ACTIVATIONS, INITS

NAME = "xavier_training"
N_FEATURES, N_CLASSES, WIDTH, DEPTH = 20, 5, 64, 5
LR = 0.1
TARGET = 1.0  # a training loss well below the chance level ln 5 = 1.61


def build(activation, init_fn) -> torch.nn.Sequential:
    model = mlp([N_FEATURES] + [WIDTH] * DEPTH + [N_CLASSES], activation)
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            init_fn(layer.weight)  # biases stay 0, as the notes say
    return model


def run(out: Path, quick: bool = False, seed: int = 0) -> list[Path]:
    seed_all(seed)
    plt = pyplot()
    n, steps, batch, every = (200, 20, 16, 5) if quick else (4000, 1500, 16, 50)
    seeds = seeds_for(seed, quick)
    results: dict[tuple[str, str], list] = {(a, i): [] for a in ACTIVATIONS for i in INITS}
    progress = Progress(NAME, len(seeds) * len(results))
    for s in seeds:
        gen = torch.Generator().manual_seed(s)
        centres = torch.randn(N_CLASSES, N_FEATURES, generator=gen) * 0.6
        x_train, y_train = gaussian_classes(n, centres, gen)
        x_test, y_test = gaussian_classes(n, centres, gen)
        batches = torch.randint(n, (steps, batch), generator=gen)
        for (act_name, init_name) in results:
            torch.manual_seed(s)
            model = build(ACTIVATIONS[act_name], INITS[init_name])
            optimizer = optim.SGD(model.parameters(), lr=LR)
            checkpoints, losses = training_curve(model, optimizer, x_train, y_train, batches, steps, every)
            with torch.no_grad():
                error = (model(x_test).argmax(-1) != y_test).double().mean().item()
            reached = next((c for c, v in zip(checkpoints, losses) if v < TARGET), None)
            results[act_name, init_name].append((checkpoints, losses, error, reached))
            progress.update(f"seed {s}, {act_name}, {init_name}")

    fig, axes = plt.subplots(1, len(ACTIVATIONS), figsize=(11, 4.2), sharey=True)
    rows = []
    for ax, act_name in zip(axes, ACTIVATIONS):
        for init_name in INITS:
            runs = results[act_name, init_name]
            checkpoints = runs[0][0]
            mean_curve = [sum(r[1][i] for r in runs) / len(runs) for i in range(len(checkpoints))]
            ax.plot(checkpoints, mean_curve, label=init_name)
            reached = [r[3] for r in runs]
            rows.append([act_name, init_name,
                         mean_pm_sd([r[3] for r in runs]) if None not in reached else
                         f"not within {steps} steps in {reached.count(None)} of {len(runs)} seed(s)",
                         mean_pm_sd([r[1][-1] for r in runs]), mean_pm_sd([100 * r[2] for r in runs])])
        ax.axhline(TARGET, color="gray", ls="--", lw=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("SGD step")
        ax.set_title(f"{act_name}: training loss (mean of {len(seeds)} seed(s))")
    axes[0].set_ylabel("training loss (full training set)")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{DEPTH} hidden layers of {WIDTH}, SGD lr {LR}: initialisation and convergence "
                 f"(dashed: loss {TARGET:g})", fontsize=10)
    written = [save_figure(fig, out, f"{NAME}.png")]
    written.append(write_table(
        out, f"{NAME}.md", "Initialisation and training: convergence and final error",
        ["activation", "initialisation", f"first step with training loss < {TARGET:g} (mean ± sd)",
         "final training loss", "final held-out error (%)"],
        rows,
        notes=[f"{n} training and {n} held-out points, {N_FEATURES} features, {N_CLASSES} classes (10 % labels "
               f"flipped, so even the best classifier errs on about 8 % of held-out points); {DEPTH} hidden layers of {WIDTH} (our nn.Linear "
               f"and activation), biases 0; our SGD lr {LR}, {steps} steps of batch {batch}, the training loss "
               f"checked every {every} steps. Cells are mean ± sample sd over {len(seeds)} seed(s) "
               f"({', '.join(map(str, seeds))}); within a seed every scheme sees the same data and batches."],
    ))
    return written


if __name__ == "__main__":
    raise SystemExit(cli(run, NAME))
