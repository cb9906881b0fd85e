"""Dead and saturated hidden units over training, for each of the six activations.

Notes section "Neuron Units" (blog section 7.4): the hard tanh "does saturate
for magnitudes of z greater than 1", soft sign "does not saturate as easily
as hard clipped functions", ReLU "does not saturate even for larger values of
z", and "traditional ReLU units by design do not propagate any error for
non-positive z", which the leaky ReLU fixes. A 3-hidden-layer network of our
``nn.Linear`` layers and each activation is trained with SGD at a large
learning rate on a generated 5-class problem; every few steps a fixed probe
batch of held-out inputs is pushed through it and, for every hidden unit,
the local gradient ``f'(z)`` is read from our Function's backward (as in the
``activations`` experiment). Two measures:

- **dead unit**: ``f'(z) = 0`` exactly for every probe input, so no error
  flows back through the unit and its incoming weights never change again;
- **saturated (unit, input) pair**: ``f'(z)`` below 5 % of the activation's
  largest derivative, so the error it passes back is damped at least 20-fold.

A full run repeats everything over 3 seeds.
"""

from __future__ import annotations

from pathlib import Path

import torch

from cs224n_nn import functional as F
from cs224n_nn import optim
from experiments._common import (Progress, cli, gaussian_classes, mean_pm_sd, mean_sd, pyplot, save_figure, seed_all,
                                 seeds_for, write_table)
from experiments.activations import ACTIVATIONS, value_and_derivative

NAME = "dead_units"
N_FEATURES, N_CLASSES, WIDTH, DEPTH = 20, 5, 64, 3
LR = 0.5  # deliberately large: big steps are what push units into their flat regions
SATURATED = 0.05  # f'(z) below this fraction of max f' counts as saturated


class Net(torch.nn.Module):
    """``DEPTH`` hidden layers of the activation ``fn``; :meth:`pre_activations` exposes each ``z``."""

    def __init__(self, fn) -> None:
        super().__init__()
        from experiments._common import mlp

        self.fn = fn
        # mlp() gives the Xavier weights and zero biases every experiment uses; only its Linear layers are kept
        self.layers = torch.nn.ModuleList(m for m in mlp([N_FEATURES] + [WIDTH] * DEPTH + [N_CLASSES], torch.nn.Identity)
                                          if not isinstance(m, torch.nn.Identity))

    def pre_activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        zs, a = [], x
        for layer in self.layers[:-1]:
            z = layer(a)
            zs.append(z)
            a = self.fn(z)
        return zs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = x
        for layer in self.layers[:-1]:
            a = self.fn(layer(a))
        return self.layers[-1](a)


def unit_health(net: Net, probe: torch.Tensor, peak: float) -> tuple[float, float]:
    """(fraction of hidden units dead on the whole probe batch, fraction of (unit, input) pairs saturated)."""
    with torch.no_grad():
        zs = net.pre_activations(probe)
    derivatives = [value_and_derivative(net.fn, z)[1] for z in zs]  # our backward's f'(z), (batch, WIDTH) each
    d = torch.cat(derivatives, dim=1)
    dead = (d == 0).all(dim=0).double().mean().item()
    saturated = (d.abs() < SATURATED * peak).double().mean().item()
    return dead, saturated


def run(out: Path, quick: bool = False, seed: int = 0) -> list[Path]:
    seed_all(seed)
    plt = pyplot()
    n, steps, batch, every = (200, 20, 16, 5) if quick else (4000, 2000, 16, 50)
    seeds = seeds_for(seed, quick)
    grid = torch.linspace(-10, 10, 20001, dtype=torch.float64)
    curves: dict[str, list] = {label: [] for label, *_ in ACTIVATIONS}
    losses: dict[str, list[float]] = {label: [] for label, *_ in ACTIVATIONS}
    progress = Progress(NAME, len(seeds) * len(ACTIVATIONS) * steps)
    for s in seeds:
        gen = torch.Generator().manual_seed(s)
        centres = torch.randn(N_CLASSES, N_FEATURES, generator=gen)
        x_train, y_train = gaussian_classes(n, centres, gen)
        probe, _ = gaussian_classes(512, centres, gen)
        batches = torch.randint(n, (steps, batch), generator=gen)
        for label, _, fn, _, _ in ACTIVATIONS:
            peak = value_and_derivative(fn, grid)[1].abs().max().item()
            torch.manual_seed(s)  # the same initial weights for every activation
            net = Net(fn)
            optimizer = optim.SGD(net.parameters(), lr=LR)
            checkpoints, dead, saturated = [], [], []
            for t in range(steps + 1):
                if t % every == 0 or t == steps:
                    d, sat = unit_health(net, probe, peak)
                    checkpoints.append(t)
                    dead.append(d)
                    saturated.append(sat)
                if t == steps:
                    break
                idx = batches[t]
                optimizer.zero_grad()
                F.softmax_cross_entropy(net(x_train[idx]), y_train[idx]).backward()
                optimizer.step()
                progress.update(label)
            with torch.no_grad():
                losses[label].append(F.softmax_cross_entropy(net(x_train), y_train).item())
            curves[label].append((checkpoints, dead, saturated))

    fig, (ax_dead, ax_sat) = plt.subplots(1, 2, figsize=(11, 4.2))
    rows = []
    for label, runs in curves.items():
        checkpoints = runs[0][0]
        mean_dead = [sum(r[1][i] for r in runs) / len(runs) for i in range(len(checkpoints))]
        mean_sat = [sum(r[2][i] for r in runs) / len(runs) for i in range(len(checkpoints))]
        ax_dead.plot(checkpoints, [100 * v for v in mean_dead], label=label)
        ax_sat.plot(checkpoints, [100 * v for v in mean_sat], label=label)
        rows.append([label, mean_pm_sd([100 * r[1][0] for r in runs]), mean_pm_sd([100 * r[1][-1] for r in runs]),
                     mean_pm_sd([100 * r[2][0] for r in runs]), mean_pm_sd([100 * r[2][-1] for r in runs]),
                     mean_pm_sd(losses[label])])
    ax_dead.set_title("dead units: f'(z) = 0 for every probe input")
    ax_dead.set_ylabel(f"% of the {DEPTH * WIDTH} hidden units (mean of {len(seeds)} seed(s))")
    ax_sat.set_title(f"saturated: f'(z) < {SATURATED:g} x max f'")
    ax_sat.set_ylabel("% of (unit, probe input) pairs")
    for ax in (ax_dead, ax_sat):
        ax.set_xlabel("SGD step")
    ax_sat.legend(fontsize=7)
    fig.suptitle(f"{DEPTH} hidden layers of {WIDTH}, SGD lr {LR}, batch {batch}: where the local gradient vanishes",
                 fontsize=10)
    written = [save_figure(fig, out, f"{NAME}.png")]
    written.append(write_table(
        out, f"{NAME}.md", "Dead and saturated units over training",
        ["activation", "% dead units at step 0", f"% dead units at step {steps}", "% saturated pairs at step 0",
         f"% saturated pairs at step {steps}", "final training loss"],
        rows,
        notes=[f"{n} training points, {N_FEATURES} features, {N_CLASSES} classes (10 % labels flipped); network of "
               f"{DEPTH} hidden layers of {WIDTH} units (our nn.Linear, Xavier weights, zero biases), our SGD lr {LR}, "
               f"{steps} steps of batch {batch}, softmax cross-entropy. Probe: 512 held-out inputs. Dead: f'(z) = 0 "
               f"exactly for all 512 (read from our backward). Saturated: |f'(z)| < {SATURATED:g} times the "
               "activation's largest derivative (1/4 for the sigmoid, 1 for the others; leaky ReLU's 0.1 slope "
               f"counts as not saturated). Cells are mean ± sample sd over {len(seeds)} seed(s) "
               f"({', '.join(map(str, seeds))}), each seed with its own data and initial weights."],
    ))
    return written


if __name__ == "__main__":
    raise SystemExit(cli(run, NAME))
