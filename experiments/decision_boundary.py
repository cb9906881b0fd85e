"""A linear softmax classifier against a one-hidden-layer network on 2-D sets that no line separates (the notes' Figure 1).

Notes section "Neural Networks: Foundations": a softmax over the inputs draws a
straight decision boundary, while a hidden layer ``a = f(Wx + b)`` lets the
network bend it ("we see here how a non-linear decision boundary separates the
data very well"). Two generated sets, interleaved half moons and a disc inside
a ring, are fitted by ``softmax(Ux + c)`` and by ``softmax(U tanh(Wx + b) + c)``
built from our ``nn.Linear``, ``nn.Tanh`` and ``nn.CrossEntropyLoss`` and
trained full-batch with our Adam; the figure shades each model's predicted
class over the plane.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from cs224n_nn import init, nn, optim
from experiments._common import Progress, cli, pyplot, save_figure, seed_all, write_table

NAME = "decision_boundary"
HIDDEN = 32


def moons(n: int, generator: torch.Generator, noise: float = 0.15) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved half circles, ``n`` points each, with Gaussian noise."""
    t = torch.rand(n, generator=generator) * math.pi
    upper = torch.stack([t.cos(), t.sin()], dim=1)
    t = torch.rand(n, generator=generator) * math.pi
    lower = torch.stack([1 - t.cos(), 0.5 - t.sin()], dim=1)
    x = torch.cat([upper, lower]) + noise * torch.randn(2 * n, 2, generator=generator)
    return x, torch.cat([torch.zeros(n), torch.ones(n)]).long()


def disc_in_ring(n: int, generator: torch.Generator, noise: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 0 on a disc of radius ~0.5, class 1 on a ring of radius ~1."""
    angle = torch.rand(2 * n, generator=generator) * 2 * math.pi
    radius = torch.cat([0.5 * torch.rand(n, generator=generator).sqrt(), torch.full((n,), 1.0)])
    radius = radius + noise * torch.randn(2 * n, generator=generator)
    x = torch.stack([radius * angle.cos(), radius * angle.sin()], dim=1)
    return x, torch.cat([torch.zeros(n), torch.ones(n)]).long()


DATASETS = {"half moons": moons, "disc inside a ring": disc_in_ring}


def make_model(kind: str) -> torch.nn.Module:
    if kind == "linear softmax":
        model = torch.nn.Sequential(nn.Linear(2, 2))
    else:
        model = torch.nn.Sequential(nn.Linear(2, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, 2))
    return init.init_module_(model)


MODELS = ("linear softmax", f"one hidden layer (tanh, {HIDDEN} units)")


def fit(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    """Full-batch Adam on softmax cross-entropy; returns the final loss."""
    optimizer = optim.Adam(model.parameters(), lr=0.02)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
    return loss.item()


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


def run(out: Path, quick: bool = False, seed: int = 0) -> list[Path]:
    gen = seed_all(seed)
    plt = pyplot()
    n, steps, grid = (40, 20, 40) if quick else (300, 2000, 200)
    fig, axes = plt.subplots(len(DATASETS), len(MODELS), figsize=(7, 6.4))
    rows = []
    progress = Progress(NAME, len(DATASETS) * len(MODELS))
    for r, (data_name, make) in enumerate(DATASETS.items()):
        x_train, y_train = make(n, gen)
        x_test, y_test = make(n, gen)
        lo, hi = x_train.min(0).values - 0.5, x_train.max(0).values + 0.5
        gx, gy = torch.meshgrid(torch.linspace(lo[0], hi[0], grid), torch.linspace(lo[1], hi[1], grid), indexing="xy")
        plane = torch.stack([gx.flatten(), gy.flatten()], dim=1)
        for c, kind in enumerate(MODELS):
            model = make_model(kind)
            loss = fit(model, x_train, y_train, steps)
            with torch.no_grad():
                p1 = model(plane).softmax(dim=1)[:, 1].reshape(grid, grid)
            ax = axes[r, c]
            # flat regions of the predicted class (a smooth shading triples the PNG's size)
            ax.contourf(gx.numpy(), gy.numpy(), p1.numpy(), levels=[0, 0.5, 1], colors=["#c6dbef", "#fcbba1"])
            ax.contour(gx.numpy(), gy.numpy(), p1.numpy(), levels=[0.5], colors="k", linewidths=1.5)
            ax.scatter(*x_train[y_train == 0].T.numpy(), s=5, c="tab:blue", edgecolors="none")
            ax.scatter(*x_train[y_train == 1].T.numpy(), s=5, c="tab:red", edgecolors="none")
            ax.grid(False)
            train_acc, test_acc = accuracy(model, x_train, y_train), accuracy(model, x_test, y_test)
            ax.set_title(f"{data_name}: {kind}\ntrain acc {train_acc:.3f}, test acc {test_acc:.3f}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            n_params = sum(p.numel() for p in model.parameters())
            rows.append([data_name, kind, n_params, loss, train_acc, test_acc])
            progress.update(f"{data_name}, {kind}")
    fig.suptitle("Decision boundaries (black line: P(red) = 0.5)")
    written = [save_figure(fig, out, f"{NAME}.png")]
    written.append(write_table(
        out, f"{NAME}.md", "Decision boundary: linear softmax against one hidden layer",
        ["data set", "model", "parameters", "final training loss", "train accuracy", "test accuracy"],
        rows,
        notes=[f"{2 * n} training and {2 * n} test points per set; full-batch Adam (lr 0.02) for {steps} steps on "
               "softmax cross-entropy; weights Xavier uniform, biases 0 (cs224n_nn.init.init_module_)."],
    ))
    return written


if __name__ == "__main__":
    raise SystemExit(cli(run, NAME))
