"""The six activations of the notes and their derivatives, the derivatives read from our Functions' backward.

Notes section "Neurons" and "Non-linearities": sigmoid, tanh, hard tanh, soft
sign, ReLU and leaky ReLU. Each curve ``f'(z)`` here is what our hand-written
``backward`` returns for ``d(sum f(z))/dz``, not a formula typed into the
plot, and the table compares it with the derivative torch's own autograd
gives for ``torch.sigmoid``, ``torch.tanh``, ... away from the corner points
(where any subgradient is valid and the choice made is reported instead).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as torch_F

from cs224n_nn import functional as F
from experiments._common import Progress, cli, pyplot, save_figure, seed_all, write_table

NAME = "activations"
LEAK = 0.1  # leaky ReLU's slope, larger than the 0.01 default so that the leak is visible in the plot

# (label, formula, ours, torch's twin, corner points)
ACTIVATIONS = (
    ("sigmoid", "1/(1+exp(-z))", F.sigmoid, torch.sigmoid, ()),
    ("tanh", "(e^z - e^-z)/(e^z + e^-z)", F.tanh, torch.tanh, ()),
    ("hard tanh", "-1 (z<-1), z, 1 (z>1)", F.hardtanh, torch_F.hardtanh, (-1.0, 1.0)),
    ("soft sign", "z/(1+|z|)", F.softsign, torch_F.softsign, ()),
    ("ReLU", "max(z, 0)", F.relu, torch.relu, (0.0,)),
    (f"leaky ReLU ({LEAK})", f"max(z, {LEAK}z)", lambda z: F.leaky_relu(z, negative_slope=LEAK),
     lambda z: torch_F.leaky_relu(z, negative_slope=LEAK), (0.0,)),
)


def value_and_derivative(fn, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``f(z)`` and the elementwise ``f'(z)`` from one backward of ``sum f(z)``."""
    z = z.detach().clone().requires_grad_(True)
    y = fn(z)
    (dz,) = torch.autograd.grad(y.sum(), z)
    return y.detach(), dz


def run(out: Path, quick: bool = False, seed: int = 0) -> list[Path]:
    seed_all(seed)
    plt = pyplot()
    # integers over a power of ten: the grid holds the corner points -1, 0 and 1 exactly
    per_unit = 10 if quick else 100
    z = torch.arange(-4 * per_unit, 4 * per_unit + 1, dtype=torch.float64) / per_unit
    steps = z.numel()
    fig, axes = plt.subplots(2, 3, figsize=(10, 5.6), sharex=True)
    rows = []
    progress = Progress(NAME, len(ACTIVATIONS))
    for ax, (label, formula, ours, twin, corners) in zip(axes.flat, ACTIVATIONS):
        y, dy = value_and_derivative(ours, z)
        y_ref, dy_ref = value_and_derivative(twin, z)
        at_corner = torch.zeros_like(z, dtype=torch.bool)
        for c in corners:
            at_corner |= z == c
        ax.plot(z.numpy(), y.numpy(), lw=2, label="f(z)")
        ax.plot(z.numpy(), dy.numpy(), lw=2, ls="--", label="f'(z), our backward")
        ax.set_title(f"{label}: {formula}", fontsize=9)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_ylim(-1.3, 1.3 if label != "ReLU" and not label.startswith("leaky") else 4.1)
        ax.legend(loc="upper left", fontsize=7)
        corner_grads = ", ".join(f"f'({c:g})={dy[z == c].item():g}" for c in corners) or "none"
        rows.append([
            label,
            f"[{y.min().item():.3g}, {y.max().item():.3g}]",
            dy[z == 0].item(),
            dy.max().item(),
            (dy - dy_ref)[~at_corner].abs().max().item(),
            (y - y_ref).abs().max().item(),
            corner_grads,
        ])
        progress.update(label)
    for ax in axes[1]:
        ax.set_xlabel("z")
    fig.suptitle("The notes' activations and the derivatives our hand-written backward computes")
    written = [save_figure(fig, out, f"{NAME}.png")]
    written.append(write_table(
        out, f"{NAME}.md", "Activations: our Functions against torch",
        ["activation", "range on [-4, 4]", "f'(0)", "max f'", "max |f' - torch f'| (off corners)",
         "max |f - torch f|", "subgradient at corners"],
        rows,
        notes=[f"float64, {steps} points on [-4, 4]; derivatives from one backward of sum f(z) through each Function. "
               "Corner points (hard tanh at +-1, ReLU and leaky ReLU at 0) are left out of the comparison with torch "
               "because any subgradient is valid there; the value our backward picks is in the last column."],
    ))
    return written


if __name__ == "__main__":
    raise SystemExit(cli(run, NAME))
