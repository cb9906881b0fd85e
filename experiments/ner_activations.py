"""Dev entity F1 of the window NER model with each of the notes' six activations, over 3 seeds.

Notes sections "Neurons" and "Non-linearities, old and new": sigmoid, tanh,
hard tanh, soft sign, ReLU and leaky ReLU are all usable hidden units; tanh
is a rescaled sigmoid that is zero-centred and "2x as steep", hard tanh and
soft sign are cheaper or saturate less, and "for building a deep network,
the first thing you should try is ReLU -- it trains quickly and performs well
due to good gradient backflow". The same window classifier (one hidden
layer) is trained with each activation on the same budget; within one seed
every run starts from the same seed and sees the same batches. A full run
repeats everything over 3 seeds and reports the mean and the sample standard
deviation.
"""

from __future__ import annotations

from pathlib import Path

from experiments._common import (cli, mean_pm_sd, mean_sd, per_seed_cell, pyplot, save_figure, seed_all, seeds_for,
                                 within_spread, write_table)
from experiments._ner import Budget, NERData, budget_for, loss_window, plot_loss_and_f1, plot_seed_bars

NAME = "ner_activations"
FULL = Budget(train_sentences=1500, dev_sentences=500, epochs=2, batch_size=64, validations_per_epoch=3)
# label -> model.activation
ACTIVATIONS = {"sigmoid": "sigmoid", "tanh": "tanh", "hard tanh": "hardtanh", "soft sign": "softsign",
               "ReLU": "relu", "leaky ReLU (0.01)": "leaky_relu"}


def run(out: Path, quick: bool = False, seed: int = 0) -> list[Path]:
    seed_all(seed)
    plt = pyplot()
    budget = budget_for(quick, FULL)
    seeds = seeds_for(seed, quick)
    runs = {label: {"activation": activation} for label, activation in ACTIVATIONS.items()}
    per_seed = []  # per_seed[k][i]: seed k, activation i
    with NERData(budget) as data:
        for s in seeds:
            print(f"[{NAME}] seed {s} ({seeds.index(s) + 1}/{len(seeds)})", flush=True)
            per_seed.append(data.train_each(runs, NAME, s))
        described = data.describe()

    labels = list(ACTIVATIONS)
    window = loss_window(per_seed[0])
    finals = [[histories[i].dev_f1 for histories in per_seed] for i in range(len(labels))]
    fig, (ax_loss, ax_f1, ax_bar) = plt.subplots(1, 3, figsize=(15, 4.4))
    plot_loss_and_f1(ax_loss, ax_f1, per_seed[0], window)
    ax_loss.set_title(f"training loss (seed {seeds[0]})")
    ax_f1.set_title(f"dev entity F1 (seed {seeds[0]})")
    ax_f1.legend(fontsize=7, loc="lower right")
    plot_seed_bars(ax_bar, labels, finals)
    fig.suptitle("The six activations in the window NER model (same data and budget; within a seed, same batches)",
                 fontsize=10)
    written = [save_figure(fig, out, f"{NAME}.png")]
    order = sorted(range(len(labels)), key=lambda i: -mean_sd(finals[i])[0])
    best = order[0]
    rows = []
    for i in order:
        losses = [histories[i].mean_loss(window) for histories in per_seed]
        best_f1 = [histories[i].best_dev_f1 for histories in per_seed]
        rows.append([labels[i], mean_pm_sd(losses), mean_pm_sd(finals[i]), mean_pm_sd(best_f1),
                     per_seed_cell(finals[i]), f"{sum(h[i].seconds for h in per_seed) / len(per_seed):.0f}"])
    if len(seeds) > 1:
        within = [labels[i] for i in order[1:] if within_spread(finals[i], finals[best])]
        spread = (f"Within the spread of the best mean ({labels[best]}; a difference of means smaller than the "
                  f"larger of the two sds): {', '.join(within) or 'none'}.")
    else:
        spread = "One seed: no spread, so no difference here can be ranked."
    written.append(write_table(
        out, f"{NAME}.md", "Activations on window NER (best mean first)",
        ["activation", f"training loss (mean of last {window} steps; mean ± sd)",
         f"final dev F1 (mean ± sd, {len(seeds)} seed(s))", "best dev F1",
         f"final dev F1 per seed ({', '.join(map(str, seeds))})", "seconds per run"],
        rows,
        notes=[described, f"Training: {budget.describe()}; model: one hidden layer of 100 units with the "
               "activation, no dropout, Adam (lr 1e-3), softmax cross-entropy, Viterbi decoding, Xavier weights; "
               "within one seed every run starts from the same seed and batch order. sd is the sample standard "
               "deviation over the seeds. Seconds are wall time on a shared 2-core machine.", spread],
    ))
    return written


if __name__ == "__main__":
    raise SystemExit(cli(run, NAME))
