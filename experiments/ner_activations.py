"""Dev entity F1 of the window NER model with each of the notes' six activations.

Notes sections "Neurons" and "Non-linearities, old and new": sigmoid, tanh,
hard tanh, soft sign, ReLU and leaky ReLU are all usable hidden units; tanh
is a rescaled sigmoid that is zero-centred and "2x as steep", hard tanh and
soft sign are cheaper or saturate less, and "for building a deep network,
the first thing you should try is ReLU -- it trains quickly and performs well
due to good gradient backflow". The same window classifier (one hidden
layer) is trained with each activation from the same seed and budget.
"""

from __future__ import annotations

from pathlib import Path

from experiments._common import cli, pyplot, save_figure, seed_all, write_table
from experiments._ner import Budget, NERData, budget_for, loss_window, plot_loss_and_f1

NAME = "ner_activations"
FULL = Budget(train_sentences=1500, dev_sentences=500, epochs=2, batch_size=64, validations_per_epoch=3)
# label -> model.activation
ACTIVATIONS = {"sigmoid": "sigmoid", "tanh": "tanh", "hard tanh": "hardtanh", "soft sign": "softsign",
               "ReLU": "relu", "leaky ReLU (0.01)": "leaky_relu"}


def run(out: Path, quick: bool = False, seed: int = 0) -> list[Path]:
    seed_all(seed)
    plt = pyplot()
    budget = budget_for(quick, FULL)
    with NERData(budget) as data:
        runs = {label: {"activation": activation} for label, activation in ACTIVATIONS.items()}
        histories = data.train_each(runs, NAME, seed)
        described = data.describe()

    fig, (ax_loss, ax_f1) = plt.subplots(1, 2, figsize=(11, 4.2))
    window = loss_window(histories)
    plot_loss_and_f1(ax_loss, ax_f1, histories, window)
    ax_f1.legend(fontsize=8, loc="lower right")
    fig.suptitle("The six activations in the window NER model (same seed, data and budget)", fontsize=10)
    written = [save_figure(fig, out, f"{NAME}.png")]
    rows = []
    for h in sorted(histories, key=lambda h: -h.dev_f1):
        rows.append([h.label, h.mean_loss(window), h.dev_f1, h.best_dev_f1, f"{h.seconds:.0f}"])
    written.append(write_table(
        out, f"{NAME}.md", "Activations on window NER (best first)",
        ["activation", f"training loss (mean of last {window} steps)", "final dev F1", "best dev F1", "seconds"],
        rows,
        notes=[described, f"Training: {budget.describe()}; model: one hidden layer of 100 units with the "
               "activation, no dropout, Adam (lr 1e-3), softmax cross-entropy, Viterbi decoding, Xavier weights."],
    ))
    return written


if __name__ == "__main__":
    raise SystemExit(cli(run, NAME))
