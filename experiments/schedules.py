"""Constant learning rate against step annealing, exponential decay and a0*tau/max(t, tau): learning rate and loss curves.

Notes section "Learning Strategies": start with a high learning rate to
approach a minimum quickly, then lower it "so that we can find the optimum
under a more fine-grained scope" -- by a factor every ``n`` iterations
(:class:`~cs224n_nn.optim.StepAnnealing`), as ``a0 e^(-kt)``
(:class:`~cs224n_nn.optim.ExponentialDecay`) or as ``a0 tau / max(t, tau)``
(:class:`~cs224n_nn.optim.InverseTimeDecay`). A one-hidden-layer tanh network
(our modules) is trained with mini-batch SGD (our ``SGD``) on a generated
5-class problem with label noise, where a constant step keeps bouncing around
the minimum at the level of the mini-batch noise and annealing can settle
lower. Every schedule starts from the same weights and sees the same batches.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch

from cs224n_nn import nn, optim
from experiments._common import Progress, cli, full_loss, gaussian_classes, mlp, pyplot, save_figure, seed_all, write_table

NAME = "schedules"
LR0 = 0.5
N_FEATURES, N_CLASSES, HIDDEN = 20, 5, 64


def schedules(steps: int) -> dict[str, callable]:
    """name -> function building the scheduler for an optimizer (None: constant)."""
    return {
        f"constant a0={LR0}": lambda opt: None,
        f"step annealing (x0.5 every {steps // 4})": lambda opt: optim.StepAnnealing(opt, step_size=steps // 4, factor=0.5),
        f"exponential a0*exp(-kt), k={math.log(20) / steps:.1e}": lambda opt: optim.ExponentialDecay(opt, k=math.log(20) / steps),
        f"a0*tau/max(t,tau), tau={steps // 10}": lambda opt: optim.InverseTimeDecay(opt, tau=steps // 10),
    }


def run(out: Path, quick: bool = False, seed: int = 0) -> list[Path]:
    gen = seed_all(seed)
    plt = pyplot()
    n, steps, batch, every = (200, 20, 8, 5) if quick else (4000, 4000, 8, 40)
    centres = torch.randn(N_CLASSES, N_FEATURES, generator=gen) * 0.6
    x_train, y_train = gaussian_classes(n, centres, gen)
    x_test, y_test = gaussian_classes(n, centres, gen)
    batches = torch.randint(n, (steps, batch), generator=gen)  # the same mini-batches for every schedule
    template = mlp([N_FEATURES, HIDDEN, N_CLASSES], nn.Tanh)
    loss_fn = nn.CrossEntropyLoss()

    curves = {}
    plan = schedules(steps)
    progress = Progress(NAME, len(plan) * steps)
    for name, make_scheduler in plan.items():
        model = copy.deepcopy(template)
        optimizer = optim.SGD(model.parameters(), lr=LR0)
        scheduler = make_scheduler(optimizer)
        lrs, checkpoints, train_losses, test_losses = [], [], [], []
        for t in range(steps):
            if t % every == 0:
                checkpoints.append(t)
                train_losses.append(full_loss(model, x_train, y_train))
                test_losses.append(full_loss(model, x_test, y_test))
            lrs.append(optimizer.param_groups[0]["lr"])
            idx = batches[t]
            optimizer.zero_grad()
            loss_fn(model(x_train[idx]), y_train[idx]).backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            progress.update(name, 1)
        checkpoints.append(steps)
        train_losses.append(full_loss(model, x_train, y_train))
        test_losses.append(full_loss(model, x_test, y_test))
        curves[name] = (lrs, checkpoints, train_losses, test_losses)

    fig, (ax_lr, ax_loss) = plt.subplots(1, 2, figsize=(11, 4.2))
    rows = []
    for name, (lrs, checkpoints, train_losses, test_losses) in curves.items():
        ax_lr.plot(range(steps), lrs, label=name)
        ax_loss.plot(checkpoints, train_losses, label=name)
        tail = max(1, len(train_losses) // 10)  # the last 10 % of the run, to average out the SGD noise
        rows.append([name, lrs[0], lrs[-1], train_losses[-1], sum(train_losses[-tail:]) / tail, test_losses[-1]])
    ax_lr.set_yscale("log")
    ax_lr.set_xlabel("step t")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_title("learning rate")
    ax_lr.legend(fontsize=7)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step t")
    ax_loss.set_ylabel("training loss (full training set)")
    ax_loss.set_title(f"mini-batch SGD, batch {batch}")
    fig.suptitle("Learning-rate schedules of the notes on the same problem, weights and batches")
    written = [save_figure(fig, out, f"{NAME}.png")]
    written.append(write_table(
        out, f"{NAME}.md", "Learning-rate schedules",
        ["schedule", "lr at t=0", "lr at the end", "final training loss", "training loss, mean of last 10 %",
         "final held-out loss"],
        rows,
        notes=[f"{n} training and {n} held-out points, {N_FEATURES} features, {N_CLASSES} classes (10 % labels "
               f"flipped); network Linear({N_FEATURES}, {HIDDEN}) - tanh - Linear({HIDDEN}, {N_CLASSES}), Xavier "
               f"init; our SGD without momentum, a0 = {LR0}, {steps} steps of batch {batch}; schedulers step once per "
               "iteration. The floor a loss can reach here is set by the label noise, not by the optimizer."],
    ))
    return written


if __name__ == "__main__":
    raise SystemExit(cli(run, NAME))
