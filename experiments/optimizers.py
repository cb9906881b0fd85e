"""SGD, momentum, Nesterov, AdaGrad, Adadelta, RMSProp, Adam and AdamW on window NER: training loss and dev F1 for the same budget.

Notes section "Momentum Updates" and "Adaptive Optimization Methods": plain
SGD "will work just fine" given a tuned learning rate, momentum and the
adaptive methods (AdaGrad, RMSProp, Adam) scale each parameter's step by its
gradient history and are "a fairly good, safe place to begin". The window
classifier of :mod:`cs224n_nn.ner.model` is trained with each of our
optimizers from the same initial weights, on the same batches, for the same
number of steps; each gets its customary learning rate (torch's default for
the adaptive ones, a hand-picked one for SGD), listed in the table.
"""

from __future__ import annotations

from pathlib import Path

from experiments._common import cli, pyplot, save_figure, seed_all, write_table
from experiments._ner import Budget, NERData, budget_for, loss_window, plot_loss_and_f1

NAME = "optimizers"
FULL = Budget(train_sentences=1500, dev_sentences=500, epochs=2, batch_size=64, validations_per_epoch=3)

# label -> (model.optimizer, lr, other optimizer arguments)
OPTIMIZERS = {
    "SGD": ("sgd", 0.1, {}),
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
    with NERData(budget) as data:
        runs = {label: {"optimizer": name, "lr": lr, "optimizer_args": extra}
                for label, (name, lr, extra) in OPTIMIZERS.items()}
        histories = data.train_each(runs, NAME, seed)
        described = data.describe()

    fig, (ax_loss, ax_f1) = plt.subplots(1, 2, figsize=(11, 4.4))
    window = loss_window(histories)
    plot_loss_and_f1(ax_loss, ax_f1, histories, window)
    rows = []
    for history, (label, (name, lr, extra)) in zip(histories, OPTIMIZERS.items()):
        rows.append([label, lr, ", ".join(f"{k}={v}" for k, v in extra.items()) or "-",
                     history.mean_loss(window), history.dev_f1, history.best_dev_f1, f"{history.seconds:.0f}"])
    ax_f1.legend(fontsize=7, loc="lower right")
    fig.suptitle("Optimizers on window NER: same model, initial weights, batches and number of steps", fontsize=10)
    written = [save_figure(fig, out, f"{NAME}.png")]
    written.append(write_table(
        out, f"{NAME}.md", "Optimizers on window NER",
        ["optimizer", "lr", "other arguments", f"training loss (mean of last {window} steps)", "final dev F1",
         "best dev F1", "seconds"],
        rows,
        notes=[described, f"Training: {budget.describe()}; model: one tanh layer of 100 units, no dropout, softmax "
               "cross-entropy, Viterbi decoding; every run starts from the same seed (same weights and batch order). "
               "Seconds are wall time on a shared 2-core machine and only roughly comparable."],
    ))
    return written


if __name__ == "__main__":
    raise SystemExit(cli(run, NAME))
