"""The cost of the numerical gradient against backpropagation as the number of parameters grows.

Notes section "Gradient Check" (blog line 274): the numerical gradient is
not used for training because "every time we want to compute the gradient
with respect to an element, we need to make two forward passes through the
network". One-hidden-layer tanh networks of growing width (our modules,
float64) are given the full gradient of a softmax cross-entropy loss twice:
by :func:`cs224n_nn.gradcheck.numerical_gradient` over the flattened
parameter vector (central differences), and by one forward and one backward
pass. The forward passes are counted, the two gradients compared, and both
are timed (best of a few repeats).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from cs224n_nn import nn
from cs224n_nn.gradcheck import numerical_gradient
from experiments._common import Progress, cli, gaussian_classes, mlp, pyplot, save_figure, seed_all, write_table

NAME = "gradient_cost"
N_FEATURES, N_CLASSES, BATCH = 10, 5, 32


def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure(width: int, generator: torch.Generator, repeats: int) -> dict[str, float]:
    model = mlp([N_FEATURES, width, N_CLASSES], nn.Tanh).double()
    centres = torch.randn(N_CLASSES, N_FEATURES, generator=generator, dtype=torch.float64)
    x, y = gaussian_classes(BATCH, centres, generator)
    params = list(model.parameters())
    loss_fn = nn.CrossEntropyLoss()
    calls = 0

    def loss(_perturbed: torch.Tensor) -> torch.Tensor:
        """One forward pass; numerical_gradient perturbs the parameter in place, the model reads it."""
        nonlocal calls
        calls += 1
        return loss_fn(model(x), y)

    def numerical() -> torch.Tensor:
        return torch.cat([numerical_gradient(loss, p.detach(), 1e-6).flatten() for p in params])

    def backprop() -> torch.Tensor:
        grads = torch.autograd.grad(loss_fn(model(x), y), params)
        return torch.cat([g.flatten() for g in grads])

    numeric = numerical()
    forward_passes = calls
    analytic = backprop()
    error = ((numeric - analytic).norm() / analytic.norm()).item()
    t_numeric = best_time(numerical, max(1, repeats // 3))

    def one_forward():
        with torch.no_grad():
            loss_fn(model(x), y)

    t_forward = best_time(one_forward, repeats)
    t_backprop = best_time(backprop, repeats)
    return {"parameters": sum(p.numel() for p in params), "forward passes": forward_passes, "error": error,
            "numeric": t_numeric, "backprop": t_backprop, "forward": t_forward}


def run(out: Path, quick: bool = False, seed: int = 0) -> list[Path]:
    gen = seed_all(seed)
    plt = pyplot()
    widths, repeats = ((2, 4, 8), 3) if quick else ((2, 4, 8, 16, 32, 64, 128), 6)
    progress = Progress(NAME, len(widths))
    results = []
    for width in widths:
        results.append(measure(width, gen, repeats))
        progress.update(f"width {width}")

    p = [r["parameters"] for r in results]
    fig, (ax_passes, ax_time) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax_passes.loglog(p, [r["forward passes"] for r in results], "o-", label="numerical gradient")
    ax_passes.loglog(p, [1] * len(p), "s-", label="backprop (1 forward + 1 backward)")
    ax_passes.loglog(p, [2 * n for n in p], "k:", lw=0.8, label="2 x parameters")
    ax_passes.set_xlabel("number of parameters")
    ax_passes.set_ylabel("forward passes for one full gradient")
    ax_passes.set_title("forward passes")
    ax_passes.legend(fontsize=7)
    ax_time.loglog(p, [r["numeric"] for r in results], "o-", label="numerical gradient")
    ax_time.loglog(p, [r["backprop"] for r in results], "s-", label="backprop")
    ax_time.set_xlabel("number of parameters")
    ax_time.set_ylabel("seconds for one full gradient (best of repeats)")
    ax_time.set_title("wall time")
    ax_time.legend(fontsize=7)
    fig.suptitle(f"Numerical gradient against backprop: Linear({N_FEATURES}, h) - tanh - Linear(h, {N_CLASSES}), "
                 f"batch {BATCH}, float64", fontsize=10)
    written = [save_figure(fig, out, f"{NAME}.png")]
    rows = [[w, r["parameters"], r["forward passes"], r["forward passes"] / r["parameters"], r["error"],
             r["numeric"] * 1e3, r["backprop"] * 1e3, r["numeric"] / r["backprop"],
             r["numeric"] / (r["forward passes"] * r["forward"])]
            for w, r in zip(widths, results)]
    written.append(write_table(
        out, f"{NAME}.md", "Cost of the numerical gradient against backprop",
        ["hidden width h", "parameters", "forward passes (numerical)", "passes per parameter",
         "relative difference of the two gradients", "numerical (ms)", "backprop (ms)", "numerical / backprop",
         "numerical time / (passes x one forward's time)"],
        rows,
        notes=[f"Networks Linear({N_FEATURES}, h) - tanh - Linear(h, {N_CLASSES}) from our modules, float64, "
               f"softmax cross-entropy on a batch of {BATCH} points; numerical: cs224n_nn.gradcheck.numerical_gradient "
               "(central differences, eps 1e-6) on each parameter tensor in place, each evaluation one forward pass "
               f"(counted); backprop: one forward and one backward. Times are the best of {repeats} repeats "
               f"({max(1, repeats // 3)} for the numerical gradient) on a shared, loaded 2-core CPU, one thread: "
               "trust the growth with the parameter count, not single figures."],
    ))
    return written


if __name__ == "__main__":
    raise SystemExit(cli(run, NAME))
