"""AdaGrad's per-parameter step sizes for rare against frequent embedding rows, and RMSProp's steps that grow again.

Notes section "Adaptive Optimization Methods" (blog lines 660 and 695):
under AdaGrad "parameters with a scarce history of updates are updated
faster using a larger learning rate", and RMSProp, a moving average of
squared gradients, "unlike AdaGrad, [its] updates do not become
monotonically smaller". A bag-of-words classifier (our ``nn.Embedding``
with dense gradients, averaged, then our ``nn.Linear``; float64) is trained
on "sentences" of 5 words drawn from a Zipf distribution over 500 words,
with our AdaGrad, RMSProp and plain SGD from the same weights and batches.
The step size is *measured*, not read from the optimizer's state: for every
element with a non-zero gradient, the effective learning rate is
``|theta_new - theta_old| / |g|`` (``lr / (sqrt(sum g^2) + eps)`` for
AdaGrad, ``lr / (sqrt(v) + eps)`` for RMSProp, ``lr`` for SGD).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from cs224n_nn import nn, optim
from experiments._common import Progress, cli, pyplot, save_figure, seed_all, write_table

NAME = "adaptive_steps"
VOCAB, DIM, N_CLASSES, WORDS = 500, 16, 4, 5
OPTIMIZERS = {
    "AdaGrad (lr 0.1)": lambda params: optim.AdaGrad(params, lr=0.1),
    "RMSProp (lr 0.01)": lambda params: optim.RMSProp(params, lr=0.01),
    "SGD (lr 1)": lambda params: optim.SGD(params, lr=1.0),
}
BUCKETS = ((0, 10), (10, 100), (100, VOCAB))  # word ranks by frequency: the 10 most frequent, ..., the rarest


class BagOfWords(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, DIM)
        self.out = nn.Linear(DIM, N_CLASSES)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.embedding(ids).mean(dim=1))


def make_data(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` sentences of ``WORDS`` word ids, word ``k`` drawn with probability proportional to ``1/(k+1)``;
    the label is the class with the largest summed hidden vote of the words."""
    zipf = 1.0 / torch.arange(1, VOCAB + 1, dtype=torch.float64)
    ids = torch.multinomial(zipf / zipf.sum(), n * WORDS, replacement=True, generator=generator).view(n, WORDS)
    votes = torch.randn(VOCAB, N_CLASSES, generator=generator, dtype=torch.float64)
    return ids, votes[ids].sum(dim=1).argmax(dim=1)


def effective_lr(before: torch.Tensor, after: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """``|after - before| / |grad|`` where the gradient is non-zero, NaN elsewhere."""
    ratio = (after - before).abs() / grad.abs()
    return torch.where(grad != 0, ratio, torch.full_like(ratio, float("nan")))


def run(out: Path, quick: bool = False, seed: int = 0) -> list[Path]:
    gen = seed_all(seed)
    plt = pyplot()
    n, steps, batch = (200, 20, 16) if quick else (5000, 3000, 32)
    ids, labels = make_data(n, gen)
    counts = torch.bincount(ids.flatten(), minlength=VOCAB)  # how often each row is used in the training data
    batches = torch.randint(n, (steps, batch), generator=gen)
    template = BagOfWords().double()
    tracked = [(0, 0), (1, 3), (2, 7)]  # output-layer weights (class, dim): they get a gradient at every step
    results = {}
    progress = Progress(NAME, len(OPTIMIZERS) * steps)
    for label, make in OPTIMIZERS.items():
        model = copy.deepcopy(template)
        optimizer = make(model.parameters())
        last_row_lr = torch.full((VOCAB,), float("nan"), dtype=torch.float64)  # the row's latest measured step
        updates = torch.zeros(VOCAB, dtype=torch.long)
        trace, increases, comparisons = [], 0, 0
        previous_out_lr = None
        for t in range(steps):
            idx = batches[t]
            optimizer.zero_grad()
            nn.CrossEntropyLoss()(model(ids[idx]), labels[idx]).backward()
            emb_before, out_before = model.embedding.weight.detach().clone(), model.out.weight.detach().clone()
            emb_grad, out_grad = model.embedding.weight.grad.clone(), model.out.weight.grad.clone()
            optimizer.step()
            row_lr = effective_lr(emb_before, model.embedding.weight.detach(), emb_grad).nanmean(dim=1)
            touched = ~row_lr.isnan()
            last_row_lr[touched] = row_lr[touched]
            updates += touched
            out_lr = effective_lr(out_before, model.out.weight.detach(), out_grad)
            trace.append([out_lr[i, j].item() for i, j in tracked])
            if previous_out_lr is not None:
                both = ~(out_lr.isnan() | previous_out_lr.isnan())
                increases += int((out_lr[both] > previous_out_lr[both] * (1 + 1e-6)).sum())
                comparisons += int(both.sum())
            previous_out_lr = out_lr
            progress.update(label)
        results[label] = (last_row_lr, updates, trace, increases, comparisons)

    order = torch.argsort(counts, descending=True)  # rank 0 = the most frequent word
    fig, (ax_rows, ax_trace) = plt.subplots(1, 2, figsize=(11, 4.4))
    rows = []
    for label, (last_row_lr, updates, trace, increases, comparisons) in results.items():
        seen = updates > 0
        ax_rows.loglog(counts[seen].numpy(), last_row_lr[seen].numpy(), ".", ms=3, alpha=0.6, label=label)
        ax_trace.semilogy(range(steps), [step[0] for step in trace], lw=0.9, label=f"{label}, W_out[0, 0]")
        bucket_cells = []
        for lo, hi in BUCKETS:
            ranks = order[lo:hi]
            ranks = ranks[seen[ranks]]
            bucket_cells.append(last_row_lr[ranks].median().item() if len(ranks) else float("nan"))
        rows.append([label, *bucket_cells, bucket_cells[-1] / bucket_cells[0], increases,
                     100 * increases / max(comparisons, 1)])
    ax_rows.set_xlabel("times the word occurs in the training data")
    ax_rows.set_ylabel("effective learning rate of its row at its last update")
    ax_rows.set_title("embedding rows: rare words keep larger steps under AdaGrad")
    ax_rows.legend(fontsize=7)
    ax_trace.set_xlabel("step")
    ax_trace.set_ylabel("effective learning rate |dtheta| / |g|")
    ax_trace.set_title("one output weight, every step")
    ax_trace.legend(fontsize=7)
    fig.suptitle(f"Per-parameter step sizes, measured: {VOCAB}-word Zipf vocabulary, {steps} steps of batch {batch}",
                 fontsize=10)
    written = [save_figure(fig, out, f"{NAME}.png")]
    written.append(write_table(
        out, f"{NAME}.md", "Effective learning rates per parameter: AdaGrad, RMSProp, SGD",
        ["optimizer", "median row step, 10 most frequent words", "words ranked 10-99", "words ranked 100-499 (rarest)",
         "rarest / most frequent", "output-weight steps that grew (count)", "output-weight steps that grew (%)"],
        rows,
        notes=[f"{n} training sentences of {WORDS} words from a Zipf(1) distribution over {VOCAB} words (so the most "
               f"frequent word occurs {int(counts.max())} times, and {int((counts == 0).sum())} words never occur); "
               f"label: the class with the largest summed hidden vote; model: our nn.Embedding({VOCAB}, {DIM}) "
               f"(dense gradients) averaged over the words, then our nn.Linear({DIM}, {N_CLASSES}), float64, the same "
               f"initial weights and {steps} batches of {batch} for each optimizer. Row step: the mean over the row "
               "of |theta_new - theta_old| / |g| at the last step the row had a gradient; median over the rows of "
               "the bucket that occur at least once. Steps that grew: consecutive steps at which an output weight's "
               "effective learning rate increased by more than 1e-6 relative (smaller changes are within the "
               "rounding of |theta_new - theta_old|), out of all consecutive pairs of "
               f"its {N_CLASSES * DIM} elements."],
    ))
    return written


if __name__ == "__main__":
    raise SystemExit(cli(run, NAME))
