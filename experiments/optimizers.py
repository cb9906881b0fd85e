"""SGD (a learning-rate sweep), momentum, Nesterov, AdaGrad, Adadelta, RMSProp, Adam and AdamW on window NER, over 3 seeds.

Notes section "Momentum Updates" and "Adaptive Optimization Methods": plain
SGD "will work just fine" given a tuned learning rate, momentum and the
adaptive methods (AdaGrad, RMSProp, Adam) scale each parameter's step by its
gradient history and are "a fairly good, safe place to begin". The window
classifier of :mod:`cs224n_nn.ner.model` is trained with each of our
optimizers for the same number of steps; within one seed every run starts
from the same weights and sees the same batches. Learning rates: plain SGD
is swept over ``SGD_LRS`` (the best mean is its tuned baseline); momentum
and Nesterov use 0.02; Adadelta (1.0), RMSProp, Adam and AdamW (1e-3) use
torch's defaults; AdaGrad uses 0.05, five times torch's default of 0.01.
A full run repeats everything over 3 seeds and reports the mean and the
sample standard deviation of the final dev F1.
"""

from __future__ import annotations

from pathlib import Path

from experiments._common import (cli, mean_pm_sd, mean_sd, per_seed_cell, pyplot, save_figure, seed_all, seeds_for,
                                 write_table)
from experiments._ner import Budget, NERData, budget_for, loss_window, plot_loss_and_f1, plot_seed_bars

NAME = "optimizers"
FULL = Budget(train_sentences=1000, dev_sentences=500, epochs=2, batch_size=64, validations_per_epoch=2)
SGD_LRS = (0.03, 0.1, 0.3, 1.0)

# label -> (model.optimizer, lr, other optimizer arguments)
OPTIMIZERS = {
    **{f"SGD lr {lr:g}": ("sgd", lr, {}) for lr in SGD_LRS},
    "SGD + momentum 0.9": ("sgd", 0.02, {"momentum": 0.9}),
    "SGD + Nesterov 0.9": ("sgd", 0.02, {"momentum": 0.9, "nesterov": True}),
    "AdaGrad": ("adagrad", 0.05, {}),
    "Adadelta": ("adadelta", 1.0, {}),
    "RMSProp": ("rmsprop", 1e-3, {}),
    "Adam": ("adam", 1e-3, {}),
    "AdamW (weight decay 0.01)": ("adamw", 1e-3, {"weight_decay": 0.01}),
}


def run(out: Path, quick: bool = False, seed: int = 0) -> list[Path]:
    seed_all(seed)
    plt = pyplot()
    budget = budget_for(quick, FULL)
    seeds = seeds_for(seed, quick)
    runs = {label: {"optimizer": name, "lr": lr, "optimizer_args": extra}
            for label, (name, lr, extra) in OPTIMIZERS.items()}
    per_seed = []  # per_seed[k][i]: seed k, optimizer i
    with NERData(budget) as data:
        for s in seeds:
            print(f"[{NAME}] seed {s} ({seeds.index(s) + 1}/{len(seeds)})", flush=True)
            per_seed.append(data.train_each(runs, NAME, s))
        described = data.describe()

    labels = list(OPTIMIZERS)
    finals = [[histories[i].dev_f1 for histories in per_seed] for i in range(len(labels))]
    fig, (ax_loss, ax_f1, ax_bar) = plt.subplots(1, 3, figsize=(15, 4.6))
    first = per_seed[0]
    window = loss_window(first)
    plot_loss_and_f1(ax_loss, ax_f1, first, window)
    ax_loss.set_title(f"training loss (seed {seeds[0]})")
    ax_f1.set_title(f"dev entity F1 (seed {seeds[0]})")
    means = [mean_sd(f) for f in finals]
    plot_seed_bars(ax_bar, labels, finals)
    ax_bar.set_title("final dev F1 per optimizer")
    ax_f1.legend(fontsize=6, loc="lower right")
    fig.suptitle("Optimizers on window NER: same model, initial weights, batches and number of steps", fontsize=10)
    written = [save_figure(fig, out, f"{NAME}.png")]
    rows = []
    for i, (label, (name, lr, extra)) in enumerate(OPTIMIZERS.items()):
        losses = [histories[i].mean_loss(window) for histories in per_seed]
        rows.append([label, lr, ", ".join(f"{k}={v}" for k, v in extra.items()) or "-", mean_pm_sd(losses),
                     mean_pm_sd(finals[i]), per_seed_cell(finals[i]),
                     f"{sum(h[i].seconds for h in per_seed) / len(per_seed):.0f}"])
    sgd = [i for i, label in enumerate(labels) if label.startswith("SGD lr")]
    tuned = max(sgd, key=lambda i: means[i][0])
    written.append(write_table(
        out, f"{NAME}.md", "Optimizers on window NER",
        ["optimizer", "lr", "other arguments", f"training loss (mean of last {window} steps)",
         f"final dev F1, mean ± sd over {len(seeds)} seed(s)", f"final dev F1 per seed ({', '.join(map(str, seeds))})",
         "seconds per run"],
        rows,
        notes=[described, f"Training: {budget.describe()}; model: one tanh layer of 100 units, no dropout, softmax "
               "cross-entropy, Viterbi decoding; within one seed every run starts from the same weights and batch "
               "order. sd is the sample standard deviation over the seeds. Seconds are wall time on a shared 2-core "
               "machine and only roughly comparable.",
               f"Tuned SGD baseline (best mean final dev F1 of the SGD learning-rate sweep): {labels[tuned]}."],
    ))
    return written


if __name__ == "__main__":
    raise SystemExit(cli(run, NAME))
