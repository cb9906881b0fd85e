"""Softmax cross-entropy against the multiclass max-margin objective on window NER.

Notes sections "Maximum Margin Objective Function" and "Softmax": the notes
train a window scorer with the hinge ``max(0, 1 - (s - s_c))``, which only
asks the true class to win by a margin of 1 and then stops pushing, while
cross-entropy ``-log softmax(s)_y`` keeps pushing the true score up for ever.
The window classifier is trained with each (our
``CrossEntropyLoss`` and ``MultiClassMaxMarginLoss``,
``sum_{j != y} max(0, 1 - s_y + s_j) / K``) on the same budget, from the
same seed within a seed's pair, over 3 seeds in a full run (mean and sample
standard deviation); besides training loss and dev F1 the figure shows, on
the dev tokens, the margin ``s_y - max_{j != y} s_j`` each model ends with.
"""

from __future__ import annotations

from pathlib import Path

import torch

from experiments._common import (cli, mean_pm_sd, per_seed_cell, pyplot, save_figure, seed_all, seeds_for,
                                 within_spread, write_table)
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
    seeds = seeds_for(seed, quick)
    runs = {label: {"loss": loss} for label, loss in OBJECTIVES.items()}
    per_seed, margins = [], []  # [seed][objective]: History, (margins, correct) on the dev tokens
    with NERData(budget) as data:
        for s in seeds:
            print(f"[{NAME}] seed {s} ({seeds.index(s) + 1}/{len(seeds)})", flush=True)
            histories = data.train_each(runs, NAME, s)
            per_seed.append(histories)
            margins.append([dev_margins(history.model, data.dev) for history in histories])
            for history in histories:
                history.model = None  # the margins are what is kept; three seeds of models are not needed
        described = data.describe()

    labels = list(OBJECTIVES)
    fig, (ax_loss, ax_f1, ax_margin) = plt.subplots(1, 3, figsize=(14, 4.2))
    window = loss_window(per_seed[0])
    plot_loss_and_f1(ax_loss, ax_f1, per_seed[0], window, loss_name="its own training loss")
    ax_loss.set_title(f"training loss (seed {seeds[0]})")
    ax_f1.set_title(f"dev entity F1 (seed {seeds[0]})")

    def over_seeds(i: int, value) -> list[float]:
        return [value(per_seed[k][i], *margins[k][i]) for k in range(len(seeds))]

    columns = [
        lambda h, m, c: h.mean_loss(window), lambda h, m, c: h.dev_f1, lambda h, m, c: h.best_dev_f1,
        lambda h, m, c: c.float().mean().item(), lambda h, m, c: m.median().item(),
        lambda h, m, c: (m >= 1).float().mean().item(), lambda h, m, c: (m > 5).float().mean().item(),
    ]
    rows = []
    for i, label in enumerate(labels):
        margin, _ = margins[0][i]
        ax_margin.hist(margin.clamp(-5, 20).numpy(), bins=100, range=(-5, 20), histtype="step", lw=1.5, label=label)
        rows.append([label, *(mean_pm_sd(over_seeds(i, column)) for column in columns),
                     per_seed_cell(over_seeds(i, columns[1]))])
    ax_margin.axvline(1, color="k", ls=":", lw=1, label="margin 1")
    ax_margin.set_yscale("log")
    ax_margin.set_xlabel("s_y - max_{j != y} s_j on dev tokens (clipped to [-5, 20])")
    ax_margin.set_ylabel("tokens")
    ax_margin.set_title(f"margin of the true tag after training (seed {seeds[0]})")
    ax_margin.legend(fontsize=7)
    ax_f1.legend(fontsize=7, loc="lower right")
    fig.suptitle("Objectives on window NER (same model, data and budget; within a seed, same start and batches)",
                 fontsize=10)
    written = [save_figure(fig, out, f"{NAME}.png")]
    if len(seeds) > 1:
        spread = ("Within the spread (difference of means smaller than the larger of the two sds): " + ", ".join(
            f"{name} {'yes' if within_spread(over_seeds(0, column), over_seeds(1, column)) else 'no'}"
            for name, column in (("final dev F1", columns[1]), ("dev token accuracy", columns[3]),
                                 ("median dev margin", columns[4]))) + ".")
    else:
        spread = "One seed: no spread, so the differences here cannot be ranked."
    written.append(write_table(
        out, f"{NAME}.md", "Objectives: softmax cross-entropy against multiclass max-margin",
        ["objective", f"training loss (mean of last {window} steps)",
         f"final dev F1 (mean ± sd, {len(seeds)} seed(s))", "best dev F1", "dev token accuracy (argmax)",
         "median dev margin", "dev tokens with margin >= 1", "dev tokens with margin > 5",
         f"final dev F1 per seed ({', '.join(map(str, seeds))})"],
        rows,
        notes=[described, f"Training: {budget.describe()}; model: one tanh layer of 100 units, no dropout, Adam "
               "(lr 1e-3), Viterbi decoding (on log-softmax scores for cross-entropy, raw scores for max-margin). "
               "The two training losses are on different scales and are not comparable with each other. Every "
               "column is the mean ± sample sd over the seeds; the histogram is the first seed's.", spread],
    ))
    return written


if __name__ == "__main__":
    raise SystemExit(cli(run, NAME))
