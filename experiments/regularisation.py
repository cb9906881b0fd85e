"""L2 strength and dropout rate sweeps on window NER, over 3 seeds: training against dev entity F1.

Notes sections "Regularization" and "Dropout": with few training examples a
large network fits the training set and generalises worse; the L2 term
``lambda * sum ||W||_F^2`` (biases excluded,
:func:`cs224n_nn.regularize.l2_penalty`) and dropout trade that
over-fitting against under-fitting -- too little leaves the gap between
training and dev F1 open, too much pulls both down. To make over-fitting
visible in a CPU-sized run, a wide hidden layer is trained for several epochs
on a small slice of CoNLL-2003; one sweep varies ``lambda`` with no dropout,
the other the drop probability with ``lambda = 0`` (the shared point is
trained once per seed).

What is run differs from the notes in one respect: the optimizer is Adam
(lr 1e-3), not SGD. The penalty is added to the loss, so its gradient
``2 lambda W`` enters Adam's moments with the data gradient and is rescaled
per parameter like it; under SGD the same ``lambda`` shrinks every weight
by the factor ``1 - 2 lr lambda`` per step, as the notes assume. A full run
repeats every point over 3 seeds (mean and sample standard deviation).
"""

from __future__ import annotations

from pathlib import Path

from experiments._common import (cli, mean_pm_sd, mean_sd, per_seed_cell, pyplot, save_figure, seed_all, seeds_for,
                                 write_table)
from experiments._ner import Budget, NERData, budget_for

NAME = "regularisation"
FULL = Budget(train_sentences=400, dev_sentences=300, epochs=6, batch_size=32, validations_per_epoch=1)
HIDDEN = [300]
L2_VALUES = (0.0, 1e-5, 1e-4, 1e-3)
DROPOUT_VALUES = (0.0, 0.25, 0.5, 0.75)


def run(out: Path, quick: bool = False, seed: int = 0) -> list[Path]:
    seed_all(seed)
    plt = pyplot()
    budget = budget_for(quick, FULL)
    l2_values = L2_VALUES[::3] if quick else L2_VALUES
    dropout_values = DROPOUT_VALUES[::2] if quick else DROPOUT_VALUES
    plan = [("L2", lam, 0.0) for lam in l2_values] + [("dropout", 0.0, p) for p in dropout_values if p > 0]
    seeds = seeds_for(seed, quick)
    results: dict[tuple[float, float], list] = {(lam, p): [] for _, lam, p in plan}
    with NERData(budget) as data:
        for s in seeds:
            for i, (sweep, lam, p) in enumerate(plan):
                label = f"lambda={lam:g}, dropout={p:g}, seed {s}"
                print(f"[{NAME}] run {i + 1}/{len(plan)} of seed {s}: {label}", flush=True)
                results[lam, p].append(data.train_model(label, NAME, s, with_train_f1=True, hidden_dims=HIDDEN,
                                                        weight_decay=lam, dropout=p))
        described = data.describe()

    def stat(key, what):
        return [getattr(h, what) for h in results[key]]

    def gap(key):
        return [h.train_f1 - h.dev_f1 for h in results[key]]

    fig, (ax_l2, ax_drop) = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    l2_positions = range(len(l2_values))  # lambda = 0 has no place on a log axis: categorical x
    for ax, xs, keys, title in (
        (ax_l2, l2_positions, [(lam, 0.0) for lam in l2_values], "L2 strength lambda (no dropout)"),
        (ax_drop, dropout_values, [(0.0, p) for p in dropout_values], "dropout probability (lambda = 0)"),
    ):
        for what, marker, name in (("train_f1", "o-", "training F1"), ("dev_f1", "s-", "dev F1")):
            stats = [mean_sd(stat(k, what)) for k in keys]
            ax.errorbar(list(xs), [m for m, _ in stats], yerr=[sd for _, sd in stats], fmt=marker, capsize=3,
                        label=f"{name} (mean ± sd, {len(seeds)} seed(s))")
        ax.set_title(title)
        ax.set_xlabel(title.split(" (")[0])
        ax.legend(fontsize=8)
    ax_l2.set_xticks(list(l2_positions), [f"{lam:g}" for lam in l2_values])
    ax_l2.set_ylabel("entity F1 after training")
    fig.suptitle(f"Regularisation on window NER (Adam): {budget.train_sentences} training sentences, "
                 f"hidden layer {HIDDEN[0]}, {budget.epochs} epochs", fontsize=10)
    written = [save_figure(fig, out, f"{NAME}.png")]
    rows = [[sweep, lam, p, mean_pm_sd(stat((lam, p), "train_f1")), mean_pm_sd(stat((lam, p), "dev_f1")),
             mean_pm_sd(gap((lam, p))), per_seed_cell(stat((lam, p), "dev_f1"))]
            for sweep, lam, p in plan]
    written.append(write_table(
        out, f"{NAME}.md", "Regularisation: L2 and dropout sweeps on window NER",
        ["sweep", "lambda (L2)", "dropout p", f"training F1 (mean ± sd, {len(seeds)} seed(s))", "dev F1",
         "gap (training - dev)", f"dev F1 per seed ({', '.join(map(str, seeds))})"],
        rows,
        notes=[described, f"Training: {budget.describe()}; model: one tanh layer of {HIDDEN[0]} units, optimizer "
               "Adam (lr 1e-3, not the notes' SGD: the penalty's gradient is rescaled per parameter with the "
               "data gradient), softmax cross-entropy plus lambda * sum ||W||_F^2 over the weight matrices "
               "(biases excluded), inverted dropout after the hidden layer; training F1 is measured on the "
               "training sentences in evaluation mode (no dropout). The row lambda=0, dropout=0 is shared by both "
               "sweeps. sd is the sample standard deviation over the seeds."],
    ))
    return written


if __name__ == "__main__":
    raise SystemExit(cli(run, NAME))
