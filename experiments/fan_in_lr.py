"""Collobert's learning rate scaled by 1/sqrt(fan-in) per layer against one SGD rate for all, over 3 seeds.

Notes section "Learning Strategies" (blog line 616): "Ronan Collobert scales
the learning rate of a weight W_ij (where W in R^(n(l+1) x n(l))) by the
inverse square root of the fan-in of the neuron (n(l))". A tanh network
whose layers have very different fan-in (``SIZES``: 256, 8 and 128) is
trained with our plain SGD in two ways from the same initial weights and
mini-batches: *unscaled*, one rate ``lr`` for every parameter; and
*scaled*, one parameter group per layer with rate ``lr / sqrt(n(l))`` for
its weights and its biases (a bias is one more input of the same neuron).
Since the scaled rates are smaller overall, each scheme gets its own sweep
of ``lr`` and is compared at its best rate (the lowest mean held-out loss),
so that the comparison is of the scaling, not of the overall step size.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from cs224n_nn import nn, optim
from experiments._common import (Progress, cli, full_loss, gaussian_classes, mean_pm_sd, mean_sd, mlp,
                                 per_seed_cell, pyplot, save_figure, seed_all, seeds_for, training_curve,
                                 within_spread, write_table)

NAME = "fan_in_lr"
# input 256 -> 8 -> 128 -> 5 classes: fan-ins 256, 8 and 128 (a factor of 32 between the extremes)
SIZES = (256, 8, 128, 5)
N_CLASSES = SIZES[-1]
# lr for every parameter (unscaled), or lr before the division by sqrt(fan-in) (scaled): sqrt(8) ~ 2.8 and
# sqrt(256) = 16, so the scaled sweep sits about a decade higher to cover the same steps. 20000 training
# points for 2000 steps of 16: each seen about 1.6 times, so the held-out loss measures optimisation more
# than over-fitting (with 3000 points the best held-out loss of both schemes was at the smallest rate tried)
SCHEMES = {"unscaled": (0.003, 0.01, 0.03, 0.1, 0.3, 1.0),
           "scaled by 1/sqrt(fan-in)": (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)}


def fan_in_groups(model: torch.nn.Module, lr: float) -> list[dict]:
    """One SGD parameter group per ``Linear`` of ``model``: its weight and bias at ``lr / sqrt(fan_in)``,
    ``fan_in = weight.shape[1]`` (the notes' ``n(l)`` for ``W in R^(n(l+1) x n(l))``)."""
    return [{"params": list(layer.parameters()), "lr": lr / math.sqrt(layer.weight.shape[1])}
            for layer in model.modules() if isinstance(layer, nn.Linear)]


def train(scheme: str, lr: float, seed: int, data, steps: int, every: int) -> tuple[list[int], list[float], float]:
    """(checkpoints, training loss at each, final held-out loss) of one SGD run; stops at a non-finite loss."""
    x_train, y_train, x_test, y_test, batches = data
    torch.manual_seed(seed)  # the same initial weights for every scheme and rate
    model = mlp(SIZES, nn.Tanh)
    params = model.parameters() if scheme == "unscaled" else fan_in_groups(model, lr)
    optimizer = optim.SGD(params, lr=lr)
    checkpoints, losses = training_curve(model, optimizer, x_train, y_train, batches, steps, every,
                                         stop_on_nonfinite=True)
    held_out = full_loss(model, x_test, y_test) if math.isfinite(losses[-1]) else float("inf")
    return checkpoints, losses, held_out


def run(out: Path, quick: bool = False, seed: int = 0) -> list[Path]:
    seed_all(seed)
    plt = pyplot()
    n, steps, batch, every = (200, 20, 16, 5) if quick else (20000, 2000, 16, 50)
    schemes = {name: (lrs[1], lrs[3]) if quick else lrs for name, lrs in SCHEMES.items()}
    seeds = seeds_for(seed, quick)
    results: dict[tuple[str, float], list] = {(s, lr): [] for s, lrs in schemes.items() for lr in lrs}
    progress = Progress(NAME, len(seeds) * len(results))
    for s in seeds:
        gen = torch.Generator().manual_seed(s)
        # only the first 16 input features carry the class, the other 240 are noise: the wide first
        # layer has a large fan-in and a weak signal per input, the narrow second one the opposite
        centres = torch.zeros(N_CLASSES, SIZES[0])
        centres[:, :16] = torch.randn(N_CLASSES, 16, generator=gen) * 0.6
        x_train, y_train = gaussian_classes(n, centres, gen)
        x_test, y_test = gaussian_classes(n, centres, gen)
        data = (x_train, y_train, x_test, y_test, torch.randint(n, (steps, batch), generator=gen))
        for scheme, lr in results:
            results[scheme, lr].append(train(scheme, lr, s, data, steps, every))
            progress.update(f"seed {s}, {scheme}, lr {lr:g}")

    def finite(values) -> bool:
        return all(map(math.isfinite, values))

    def held_out(key) -> list[float]:
        return [r[2] for r in results[key]]

    def final_train(key) -> list[float]:
        return [r[1][-1] for r in results[key]]

    def mean_or_inf(values) -> float:
        return mean_sd(values)[0] if finite(values) else math.inf

    best = {scheme: min(lrs, key=lambda lr: mean_or_inf(held_out((scheme, lr)))) for scheme, lrs in schemes.items()}

    fig, (ax_sweep, ax_curve) = plt.subplots(1, 2, figsize=(11, 4.2))
    for scheme, lrs in schemes.items():
        stats = [mean_sd([min(v, 1e3) for v in held_out((scheme, lr))]) for lr in lrs]
        ax_sweep.errorbar(lrs, [m for m, _ in stats], yerr=[sd for _, sd in stats], fmt="o-", capsize=3,
                          label=scheme)
        curves = [r[1] for r in results[scheme, best[scheme]]]
        checkpoints = results[scheme, best[scheme]][0][0]
        if all(len(c) == len(checkpoints) for c in curves):
            mean_curve = [mean_sd(step)[0] for step in zip(*curves)]
            ax_curve.plot(checkpoints, mean_curve, label=f"{scheme}, lr {best[scheme]:g} (its best)")
    ax_sweep.set_xscale("log")
    ax_sweep.set_yscale("log")
    ax_sweep.set_xlabel("lr (scaled: before the division by sqrt(fan-in))")
    ax_sweep.set_ylabel(f"final held-out loss, mean ± sd of {len(seeds)}")
    ax_sweep.set_title("learning-rate sweep of each scheme")
    ax_sweep.legend(fontsize=7)
    ax_curve.set_xlabel("SGD step")
    ax_curve.set_ylabel(f"training loss (full set), mean of {len(seeds)} seed(s)")
    ax_curve.set_title("each scheme at its best rate")
    ax_curve.legend(fontsize=7)
    fig.suptitle(f"Collobert's 1/sqrt(fan-in) learning rates against one rate: tanh network "
                 f"{' - '.join(map(str, SIZES))}, {steps} SGD steps of batch {batch}", fontsize=10)
    written = [save_figure(fig, out, f"{NAME}.png")]

    def cell(values) -> str:
        return mean_pm_sd(values) if finite(values) else "inf (non-finite)"

    fan_ins = [SIZES[i] for i in range(len(SIZES) - 1)]
    rows = []
    for scheme, lr in results:
        layer_lrs = [lr if scheme == "unscaled" else lr / math.sqrt(f) for f in fan_ins]
        rows.append([scheme, f"{lr:g}", " / ".join(f"{v:.3g}" for v in layer_lrs),
                     "yes" if lr == best[scheme] else "", cell(final_train((scheme, lr))),
                     cell(held_out((scheme, lr))), per_seed_cell(held_out((scheme, lr)), ".3g")])
    a, b = (held_out((scheme, best[scheme])) for scheme in schemes)
    (mean_a, sd_a), (mean_b, sd_b) = mean_sd(a), mean_sd(b)
    if len(seeds) < 2:
        spread = "one seed, so there is no spread to compare it with"
    else:
        spread = f"{'within' if within_spread(a, b) else 'outside'} the spread (the larger sd is {max(sd_a, sd_b):.2g})"
    edges = [scheme for scheme, lrs in schemes.items() if best[scheme] in (lrs[0], lrs[-1])]
    written.append(write_table(
        out, f"{NAME}.md", "Collobert's 1/sqrt(fan-in) learning-rate scaling against unscaled SGD",
        ["scheme", "lr", f"lr of the layers (fan-in {' / '.join(map(str, fan_ins))})", "best rate of the scheme",
         f"final training loss (mean ± sd, {len(seeds)} seed(s))", "final held-out loss",
         f"final held-out loss per seed ({', '.join(map(str, seeds))})"],
        rows,
        notes=[f"{n} training and {n} held-out points, {SIZES[0]} features of which the first 16 carry the class, "
               f"{N_CLASSES} classes (10 % labels flipped); our modules Linear and Tanh, Xavier weights, zero "
               f"biases; our SGD without momentum, {steps} steps of batch {batch}, the same initial weights and "
               "batches for every scheme and rate within a seed. Scaled: each layer's weights and bias in their own "
               "parameter group at lr / sqrt(fan-in). Best rate: the lowest mean final held-out loss of the "
               "scheme's sweep. sd is the sample standard deviation over the seeds.",
               f"At their best rates the difference of the mean held-out losses is {abs(mean_a - mean_b):.3g}, "
               f"{spread}. Best rate at an end of its sweep: {', '.join(edges) or 'neither scheme'}."],
    ))
    return written


if __name__ == "__main__":
    raise SystemExit(cli(run, NAME))
