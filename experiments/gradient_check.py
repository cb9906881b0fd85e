"""Central versus one-sided differences against the analytic gradient, eps from 1e-1 to 1e-10, float64 and float32.

Notes section "Gradient Check": the centred difference
``(J(theta + eps) - J(theta - eps)) / (2 eps)`` has an error ``O(eps^2)``
while the one-sided ``(J(theta + eps) - J(theta)) / eps`` has ``O(eps)``.
Both stop improving once round-off takes over: the rounding error of ``J``,
about ``u |J|`` for the unit round-off ``u`` of the dtype, is divided by
``eps``, so the best step is near ``u^(1/3)`` (central) or ``u^(1/2)``
(one-sided). The test function ``J(x) = v . tanh(W x + b)`` is built from our
Functions; the reference is its analytic gradient from our backward in
float64, so that the float32 curves show the finite differences' error alone.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from cs224n_nn import functional as F
from cs224n_nn.gradcheck import numerical_gradient
from experiments._common import Progress, cli, pyplot, save_figure, seed_all, write_table

NAME = "gradient_check"
DTYPES = (torch.float64, torch.float32)
METHODS = {"central": "central", "one-sided": "forward"}  # label -> numerical_gradient(method=...)
LARGEST_EPS = 1e-1


def make_objective(n_in: int, n_hidden: int, generator: torch.Generator):
    """Return ``(J, x0)`` with ``J(x) = v . tanh(W x + b)`` as a float64 template."""
    weight = torch.randn(n_hidden, n_in, generator=generator, dtype=torch.float64) / math.sqrt(n_in)
    bias = torch.randn(n_hidden, generator=generator, dtype=torch.float64) * 0.1
    v = torch.randn(n_hidden, generator=generator, dtype=torch.float64)
    x0 = torch.randn(n_in, generator=generator, dtype=torch.float64)

    def objective(x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        return (v.to(dtype) * F.tanh(F.affine(x, weight.to(dtype), bias.to(dtype)))).sum()

    return objective, x0


def slope(eps: torch.Tensor, err: torch.Tensor, smallest: float) -> float:
    """Least-squares slope of log10(err) against log10(eps) for eps in [smallest, LARGEST_EPS]."""
    keep = (eps >= smallest * 0.999) & (eps <= LARGEST_EPS * 1.001) & (err > 0)
    if keep.sum() < 2:
        return float("nan")
    lx, ly = eps[keep].log10(), err[keep].log10()
    lx, ly = lx - lx.mean(), ly - ly.mean()
    return float((lx * ly).sum() / (lx * lx).sum())


def run(out: Path, quick: bool = False, seed: int = 0) -> list[Path]:
    gen = seed_all(seed)
    plt = pyplot()
    objective, x0 = make_objective(n_in=4 if quick else 10, n_hidden=3 if quick else 8, generator=gen)
    x = x0.clone().requires_grad_(True)
    (truth,) = torch.autograd.grad(objective(x), x)  # analytic gradient, our backward, float64
    eps_values = torch.logspace(math.log10(LARGEST_EPS), -10, 4 if quick else 28, dtype=torch.float64)

    curves: dict[tuple[torch.dtype, str], torch.Tensor] = {}
    progress = Progress(NAME, len(DTYPES) * len(METHODS))
    for dtype in DTYPES:
        for method, how in METHODS.items():
            errors = []
            for eps in eps_values.tolist():
                try:
                    approx = numerical_gradient(objective, x0.to(dtype).clone(), eps=eps, method=how)
                except ValueError:  # x + eps rounds back to x: eps is below the dtype's resolution
                    errors.append(float("nan"))
                    continue
                errors.append(float((approx - truth).norm() / truth.norm()))
            curves[dtype, method] = torch.tensor(errors, dtype=torch.float64)
            progress.update(f"{str(dtype).removeprefix('torch.')} {method}")

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    rows = []
    for ax, dtype in zip(axes, DTYPES):
        u = torch.finfo(dtype).eps / 2
        for method, style in (("central", "o-"), ("one-sided", "s-")):
            err = curves[dtype, method]
            ax.loglog(eps_values.numpy(), err.numpy(), style, ms=3, label=method)
            best = int(torch.nan_to_num(err, nan=float("inf")).argmin())
            order = 2 if method == "central" else 1
            best_predicted = u ** (1 / (order + 1))
            # fit where truncation dominates: a decade above the step where round-off is predicted to take over
            fit_from = min(10 * best_predicted, 0.04)  # at least two points of the grid
            rows.append([str(dtype).removeprefix("torch."), method, f"{slope(eps_values, err, fit_from):.2f}",
                         f"[{fit_from:.0e}, {LARGEST_EPS:.0e}]", order, float(eps_values[best]), float(err[best]),
                         best_predicted])
        # guide lines with the slopes the Taylor expansion predicts, anchored at eps = 0.1
        ref = eps_values[eps_values >= 1e-4]
        for order, ls in ((2, ":"), (1, "--")):
            anchor = float(curves[dtype, "central" if order == 2 else "one-sided"][0]) * 3
            ax.loglog(ref.numpy(), (anchor * (ref / ref[0]) ** order).numpy(), "k" + ls, lw=0.8, label=f"slope {order} (eps^{order})")
        ax.set_title(f"{str(dtype).removeprefix('torch.')} (unit round-off {u:.1e})")
        ax.set_xlabel("eps")
        ax.invert_xaxis()
        ax.legend(fontsize=8)
    axes[0].set_ylabel("relative error  ||numerical - analytic|| / ||analytic||")
    fig.suptitle("Gradient check: central differences are O(eps^2), one-sided O(eps), until round-off takes over")
    written = [save_figure(fig, out, f"{NAME}.png")]
    written.append(write_table(
        out, f"{NAME}.md", "Gradient check: central versus one-sided differences",
        ["dtype", "method", "fitted log-log slope", "fitted over eps in", "Taylor order", "best eps", "smallest error",
         "predicted best eps u^(1/(order+1))"],
        rows,
        notes=[f"J(x) = v . tanh(Wx + b) built from our affine and tanh Functions, x in R^{x0.numel()}; "
               f"{len(eps_values)} eps values from 1e-1 to 1e-10; the reference gradient is our analytic backward in "
               "float64. Relative error is the 2-norm of the difference over the 2-norm of the gradient. "
               "Where x + eps rounds back to x in the dtype (float32 below about 6e-8 here) the check cannot run "
               "and the curve stops."],
    ))
    return written


if __name__ == "__main__":
    raise SystemExit(cli(run, NAME))
