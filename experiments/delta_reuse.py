"""What reusing delta^(k+1) saves in backprop: matrix products counted and timed against recomputing each delta from the output.

Notes section "Computational efficiency" (blog line 253): "we should also
reduce redundant calculations in backpropagation -- for instance, notice
that delta^(k) depends directly on delta^(k+1) ... Such a recursive
procedure is what makes backpropagation a computationally affordable
procedure." For tanh networks of L layers, all ``n x n`` (our modules,
float64, a batch of B), the weight gradients are computed three ways from
the same forward pass:

* **ours**: ``loss.backward()`` through our Functions (``Affine``, ``Tanh``,
  ``SoftmaxCrossEntropy``), which pass each layer's delta down to the next;
* **reuse, written out**: ``delta^(k) = f'(z^(k)) * (delta^(k+1) W^(k+1))``
  once per layer, and ``dJ/dW^(k) = delta^(k)T a^(k-1)``: ``2L - 1``
  matrix products;
* **naive**: each layer's delta recomputed by the chain rule from the
  output error ``delta^(L)``, ``L - k`` products for layer k, then its
  weight gradient: ``L(L + 1)/2`` products.

The output error ``delta^(L)`` and the slopes ``f'(z^(k))`` come from our
Functions' backward and are shared by the two written-out paths. FLOPs are
counted by ``torch.utils.flop_counter.FlopCounterMode`` (matrix products
only; elementwise work is not counted), divided by the ``2 B n^2`` FLOPs of
one product to give the number of products, and the three results are
checked equal; the times are the best of a few repeats.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from cs224n_nn import nn
from experiments._common import Progress, cli, mlp, pyplot, save_figure, seed_all, write_table

NAME = "delta_reuse"


def forward_cache(model: torch.nn.Sequential, x: torch.Tensor, y: torch.Tensor):
    """Weights, the inputs ``a^(k-1)`` of every Linear, the slopes ``f'(z^(k))`` of every hidden layer
    (from our activation's backward) and the output error ``delta^(L) = dJ/dscores`` (from our loss's
    backward); no graph is kept."""
    linears = [m for m in model if isinstance(m, nn.Linear)]
    activations = [m for m in model if not isinstance(m, nn.Linear)]
    inputs, slopes = [], []
    a = x
    with torch.no_grad():
        for k, linear in enumerate(linears):
            inputs.append(a)
            z = linear(a)
            if k < len(activations):
                with torch.enable_grad():
                    z_leaf = z.requires_grad_()
                    h = activations[k](z_leaf)
                    (slope,) = torch.autograd.grad(h, z_leaf, torch.ones_like(h))
                slopes.append(slope)
                a = h.detach()
    with torch.enable_grad():
        scores = z.detach().requires_grad_()
        (delta_out,) = torch.autograd.grad(nn.CrossEntropyLoss()(scores, y), scores)
    return [linear.weight.detach() for linear in linears], inputs, slopes, delta_out


def reuse(weights, inputs, slopes, delta_out) -> list[torch.Tensor]:
    """``dJ/dW^(k) = delta^(k)T a^(k-1)`` with ``delta^(k) = f'(z^(k)) * (delta^(k+1) W^(k+1))``, each delta
    made once from the one above it (notes section 6)."""
    grads = [None] * len(weights)
    delta = delta_out
    for k in reversed(range(len(weights))):
        grads[k] = delta.t() @ inputs[k]
        if k > 0:
            delta = (delta @ weights[k]) * slopes[k - 1]
    return grads


def naive(weights, inputs, slopes, delta_out) -> list[torch.Tensor]:
    """The same gradients with every layer's delta recomputed from ``delta^(L)`` (no reuse)."""
    grads = []
    for k in range(len(weights)):
        delta = delta_out
        for j in reversed(range(k + 1, len(weights))):
            delta = (delta @ weights[j]) * slopes[j - 1]
        grads.append(delta.t() @ inputs[k])
    return grads


def counted_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def best_time(fn, repeats: int, setup=None) -> float:
    best = float("inf")
    for _ in range(repeats):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure(depth: int, width: int, batch: int, generator: torch.Generator, repeats: int) -> dict:
    model = mlp([width] * (depth + 1), nn.Tanh).double()
    x = torch.randn(batch, width, generator=generator, dtype=torch.float64)
    y = torch.randint(width, (batch,), generator=generator)
    loss_fn = nn.CrossEntropyLoss()
    weights = [m.weight for m in model if isinstance(m, nn.Linear)]
    graph = {}

    def build_graph():
        for w in model.parameters():
            w.grad = None
        graph["loss"] = loss_fn(model(x), y)

    def ours():
        graph["loss"].backward()

    build_graph()
    ours_flops = counted_flops(ours)
    ours_grads = [w.grad.clone() for w in weights]
    cache = forward_cache(model, x, y)
    reuse_flops = counted_flops(lambda: reuse(*cache))
    naive_flops = counted_flops(lambda: naive(*cache))
    difference = max(max(((a - g).norm() / g.norm()).item() for a, g in zip(fn(*cache), ours_grads))
                     for fn in (reuse, naive))
    product = 2 * batch * width * width  # FLOPs of one (B x n) @ (n x n) or (n x B) @ (B x n) product
    return {
        "products": {name: flops / product for name, flops in
                     (("ours", ours_flops), ("reuse", reuse_flops), ("naive", naive_flops))},
        "flops": {"ours": ours_flops, "reuse": reuse_flops, "naive": naive_flops},
        "difference": difference,
        "seconds": {"ours": best_time(ours, repeats, setup=build_graph),
                    "reuse": best_time(lambda: reuse(*cache), repeats),
                    "naive": best_time(lambda: naive(*cache), repeats)},
    }


def run(out: Path, quick: bool = False, seed: int = 0) -> list[Path]:
    gen = seed_all(seed)
    plt = pyplot()
    depths, width, batch, repeats = ((1, 2, 4), 16, 8, 2) if quick else ((1, 2, 4, 8, 16, 32, 64), 128, 64, 5)
    progress = Progress(NAME, len(depths))
    results = []
    for depth in depths:
        results.append(measure(depth, width, batch, gen, repeats))
        progress.update(f"L = {depth}")

    fig, (ax_count, ax_time) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, marker, label in (("ours", "o-", "ours: loss.backward()"), ("reuse", "s--", "reuse, written out"),
                               ("naive", "^-", "naive: each delta from the output")):
        ax_count.loglog(depths, [r["products"][key] for r in results], marker, label=label)
        ax_time.loglog(depths, [r["seconds"][key] * 1e3 for r in results], marker, label=label)
    ax_count.loglog(depths, [2 * d - 1 for d in depths], "k:", lw=0.8, label="2L - 1")
    ax_count.loglog(depths, [d * (d + 1) / 2 for d in depths], "k-.", lw=0.8, label="L(L + 1)/2")
    ax_count.set_xlabel("layers L")
    ax_count.set_ylabel("matrix products in one backward (counted FLOPs / 2Bn^2)")
    ax_count.set_title("work")
    ax_count.legend(fontsize=7)
    ax_time.set_xlabel("layers L")
    ax_time.set_ylabel("ms for the weight gradients (best of repeats)")
    ax_time.set_title("wall time")
    ax_time.legend(fontsize=7)
    fig.suptitle(f"Reusing delta^(k+1) against recomputing each delta: L tanh layers {width} x {width}, "
                 f"batch {batch}, float64", fontsize=10)
    written = [save_figure(fig, out, f"{NAME}.png")]
    rows = [[str(d), 2 * d - 1, d * (d + 1) // 2, fmt_count(r["products"]["ours"]), fmt_count(r["products"]["reuse"]),
             fmt_count(r["products"]["naive"]), r["flops"]["ours"], r["flops"]["naive"],
             r["seconds"]["ours"] * 1e3, r["seconds"]["reuse"] * 1e3, r["seconds"]["naive"] * 1e3,
             r["seconds"]["naive"] / r["seconds"]["reuse"], r["difference"]]
            for d, r in zip(depths, results)]
    written.append(write_table(
        out, f"{NAME}.md", "Backprop with and without reusing delta^(k+1)",
        ["layers L", "2L - 1", "L(L + 1)/2", "products counted: ours (loss.backward())", "reuse, written out",
         "naive", "FLOPs counted: ours", "FLOPs counted: naive", "ours (ms)", "reuse (ms)", "naive (ms)",
         "naive / reuse (time)", "largest relative difference of the weight gradients"],
        rows,
        notes=[f"L layers Linear({width}, {width}) (our modules, Xavier weights, zero biases) with our Tanh between "
               f"them, our softmax cross-entropy over {width} classes on a batch of {batch} standard normal inputs, "
               "float64. FLOPs of matrix products counted by torch.utils.flop_counter.FlopCounterMode during the "
               "backward only (the forward pass, shared, is not counted; elementwise work such as f'(z) * delta and "
               f"the bias gradients is not counted); products = FLOPs / (2 x {batch} x {width}^2). The two written-"
               "out paths compute the weight gradients only, from delta^(L) and f'(z) got once from our Functions; "
               "'ours' is a full loss.backward() including bias gradients. The gradient difference is the largest, "
               "over layers and the two written-out paths, of ||G - G_ours|| / ||G_ours||. Times are the best of "
               f"{repeats} repeats on a shared, loaded 2-core CPU, one thread."],
    ))
    return written


def fmt_count(value: float) -> str:
    """A counted number of products: an integer when it is one (it always should be)."""
    return str(int(value)) if float(value).is_integer() else f"{value:.3g}"


if __name__ == "__main__":
    raise SystemExit(cli(run, NAME))
