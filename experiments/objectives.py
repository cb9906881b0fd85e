"""Softmax cross-entropy against the multiclass max-margin objective on window NER.

Notes sections "Maximum Margin Objective Function" and "Softmax": the notes
train a window scorer with the hinge ``max(0, 1 - (s - s_c))``, which only
asks the true class to win by a margin of 1 and then stops pushing, while
cross-entropy ``-log softmax(s)_y`` keeps pushing the true score up for ever.
The window classifier is trained once with each (our
``CrossEntropyLoss`` and ``MultiClassMaxMarginLoss``,
``sum_{j != y} max(0, 1 - s_y + s_j) / K``), from the same seed and budget;
besides training loss and dev F1 the figure shows, on the dev tokens, the
margin ``s_y - max_{j != y} s_j`` each model ends with.
"""

from __future__ import annotations

from pathlib import Path

import torch

from experiments._common import cli, pyplot, save_figure, seed_all, write_table
from experiments._ner import Budget, NERData, budget_for, loss_window, plot_loss_and_f1

NAME = "objectives"
FULL = Budget(train_sentences=3000, dev_sentences=500, epochs=2, batch_size=64, validations_per_epoch=4)
OBJECTIVES = {"softmax cross-entropy": "cross_entropy", "multiclass max-margin (margin 1)": "max_margin"}


def dev_margins(model, sentences) -> tuple[torch.Tensor, torch.Tensor]:
    """``(s_y - max_{j != y} s_j, argmax == y)`` for every dev token, dropout off."""
    encoder = model.encoder
    windows = torch.cat([encoder.encode_tokens(s.tokens) for s in sentences])
    tags = torch.cat([encoder.encode_tags(s.tags) for s in sentences])
    model.eval()
    with torch.no_grad():
        scores = model(windows)
    true = scores.gather(1, tags[:, None]).squeeze(1)
    others = scores.scatter(1, tags[:, None], float("-inf")).max(dim=1).values
    return true - others, scores.argmax(dim=1) == tags


def run(out: Path, quick: bool = False, seed: int = 0) -> list[Path]:
    seed_all(seed)
    plt = pyplot()
    budget = budget_for(quick, FULL)
    with NERData(budget) as data:
        histories = data.train_each({label: {"loss": loss} for label, loss in OBJECTIVES.items()}, NAME, seed)
        margins = [dev_margins(history.model, data.dev) for history in histories]
        described = data.describe()

    fig, (ax_loss, ax_f1, ax_margin) = plt.subplots(1, 3, figsize=(14, 4.2))
    window = loss_window(histories)
    plot_loss_and_f1(ax_loss, ax_f1, histories, window, loss_name="its own training loss")
    rows = []
    for history, (margin, correct) in zip(histories, margins):
        ax_margin.hist(margin.clamp(-5, 20).numpy(), bins=100, range=(-5, 20), histtype="step", lw=1.5,
                       label=history.label)
        rows.append([history.label, history.mean_loss(window), history.dev_f1, history.best_dev_f1,
                     correct.float().mean().item(), margin.median().item(), (margin >= 1).float().mean().item(),
                     (margin > 5).float().mean().item()])
    ax_margin.axvline(1, color="k", ls=":", lw=1, label="margin 1")
    ax_margin.set_yscale("log")
    ax_margin.set_xlabel("s_y - max_{j != y} s_j on dev tokens (clipped to [-5, 20])")
    ax_margin.set_ylabel("tokens")
    ax_margin.set_title("margin of the true tag after training")
    ax_margin.legend(fontsize=7)
    ax_f1.legend(fontsize=7, loc="lower right")
    fig.suptitle("Objectives on window NER (same model, seed, data and budget)", fontsize=10)
    written = [save_figure(fig, out, f"{NAME}.png")]
    written.append(write_table(
        out, f"{NAME}.md", "Objectives: softmax cross-entropy against multiclass max-margin",
        ["objective", f"training loss (mean of last {window} steps)", "final dev F1", "best dev F1",
         "dev token accuracy (argmax)", "median dev margin", "dev tokens with margin >= 1", "dev tokens with margin > 5"],
        rows,
        notes=[described, f"Training: {budget.describe()}; model: one tanh layer of 100 units, no dropout, Adam "
               "(lr 1e-3), Viterbi decoding (on log-softmax scores for cross-entropy, raw scores for max-margin). "
               "The two training losses are on different scales and are not comparable with each other."],
    ))
    return written


if __name__ == "__main__":
    raise SystemExit(cli(run, NAME))
