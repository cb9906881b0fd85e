"""Affine, Embedding (dense and sparse gradient), the losses, Dropout and the fused layers.

Sizes are those of the window NER model (GUIDE section 6): a batch of B
windows of 5 words, 50-dimensional vectors from a 20K vocabulary, a 300-unit
hidden layer, 9 tags. One call is forward + hand-written backward, with
``torch.autograd.grad`` so that no ``.grad`` accumulation is timed. The issue
sets no target for these, except the fused layer (issue 13): ``dense`` forward +
backward at most 1.0x ``tanh(F.linear(x, W, b))`` at 256 and 4096 x 300 -> 300.
The other fused rows (layer + dropout, output layer + loss, the window lookup
of every feature in one call) are reported.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from benchmarks._timing import Case, Context, Row, Target, measure_all

HIDDEN = 300
VOCAB, EMBED_DIM, WINDOW = 20_000, 50, 5
TAGS = 9

BATCHES = {"tiny": [16], "quick": [256], "full": [256, 4096]}


def _grads(loss_or_out: Callable[[], torch.Tensor], inputs: tuple[torch.Tensor, ...], g: torch.Tensor | None):
    """One forward + backward: the gradients of ``loss_or_out()`` w.r.t. ``inputs``."""
    return lambda: torch.autograd.grad(loss_or_out(), inputs, g)


def _case(piece: str, setting: str, native_name: str, ours, native, inputs, g=None, target=None) -> Case:
    return Case(
        group="layers",
        piece=piece,
        setting=setting,
        native_name=native_name,
        ours=_grads(ours, inputs, g),
        native=_grads(native, inputs, g),
        target=target,
    )


def affine_case(batch: int) -> Case:
    from cs224n_nn.functional import affine

    x = torch.randn(batch, HIDDEN, requires_grad=True)
    weight = torch.randn(HIDDEN, HIDDEN, requires_grad=True)
    bias = torch.randn(HIDDEN, requires_grad=True)
    g = torch.randn(batch, HIDDEN)
    return _case(
        "affine", f"{batch} x {HIDDEN} -> {HIDDEN}", "F.linear",
        lambda: affine(x, weight, bias), lambda: F.linear(x, weight, bias), (x, weight, bias), g,
    )


def embedding_case(batch: int, sparse: bool) -> Case:
    from cs224n_nn.functional import embedding

    weight = torch.randn(VOCAB, EMBED_DIM, requires_grad=True)
    ids = torch.randint(VOCAB, (batch, WINDOW))
    g = torch.randn(batch, WINDOW, EMBED_DIM)
    return _case(
        "embedding (sparse grad)" if sparse else "embedding (dense grad)",
        f"{batch}x{WINDOW} ids, {VOCAB // 1000}K x {EMBED_DIM}",
        f"F.embedding(sparse={sparse})",
        lambda: embedding(ids, weight, sparse=sparse),
        lambda: F.embedding(ids, weight, sparse=sparse),
        (weight,), g,
    )


#: The window lookup's features: (rows, width), the first the word table split at WORD_TRAINED rows
#: (the rest frozen), as the NER model's; then casing, shape, and two affix tables.
WINDOW_FEATURES = [(VOCAB, EMBED_DIM), (12, 8), (50, 8), (2_000, 16), (2_000, 16)]
WORD_TRAINED = 15_000


def window_lookup_case(batch: int) -> Case:
    """One WindowLookup call against torch's composition: F.embedding per table (torch.where over the
    split word table) and torch.cat, forward + backward into the trainable tables."""
    from cs224n_nn.autograd import WindowLookup
    from cs224n_nn.autograd.window import split_lookup

    gen = torch.Generator().manual_seed(0)
    ids = torch.stack([torch.randint(rows, (batch, WINDOW), generator=gen) for rows, _ in WINDOW_FEATURES], dim=1)
    (_, word_dim), *others = WINDOW_FEATURES
    trained = torch.randn(WORD_TRAINED, word_dim, requires_grad=True)
    frozen = torch.randn(VOCAB - WORD_TRAINED, word_dim)
    tables = [torch.randn(rows, width, requires_grad=True) for rows, width in others]
    layout = ((0, ((0, None, False), (WORD_TRAINED, None, False))),
              *((c, ((0, None, False),)) for c in range(1, len(WINDOW_FEATURES))))
    width = sum(w for _, w in WINDOW_FEATURES)

    def native():
        words = split_lookup(ids[:, 0], WORD_TRAINED, lambda i: F.embedding(i, trained),
                             lambda i: F.embedding(i, frozen))
        parts = [words] + [F.embedding(ids[:, c + 1], t) for c, t in enumerate(tables)]
        return torch.cat(parts, dim=-1).flatten(1)

    return _case(
        "window lookup", f"{batch}x{WINDOW} windows, {len(WINDOW_FEATURES)} features (word split), D = {width}",
        "torch.cat of F.embedding (torch.where over the split)",
        lambda: WindowLookup.apply(ids, layout, trained, frozen, *tables), native,
        (trained, *tables), torch.randn(batch, WINDOW * width),
    )


def loss_cases(batch: int) -> Iterator[Case]:
    from cs224n_nn.functional import max_margin_loss, multiclass_max_margin_loss, softmax_cross_entropy

    scores = torch.randn(batch, TAGS, requires_grad=True)
    target = torch.randint(TAGS, (batch,))
    setting = f"{batch} x {TAGS} classes"
    yield _case(
        "softmax_cross_entropy", setting, "F.cross_entropy",
        lambda: softmax_cross_entropy(scores, target), lambda: F.cross_entropy(scores, target), (scores,),
    )
    yield _case(
        "multiclass_max_margin", setting, "F.multi_margin_loss",
        lambda: multiclass_max_margin_loss(scores, target),
        lambda: F.multi_margin_loss(scores, target), (scores,),
    )
    # The notes' objective: a true window's score s against a corrupt one's s_c.
    s = torch.randn(batch, requires_grad=True)
    s_c = torch.randn(batch, requires_grad=True)
    yield _case(
        "max_margin", f"{batch} pairs", "clamp(1 + s_c - s, min=0).mean()",
        lambda: max_margin_loss(s, s_c), lambda: torch.clamp(1.0 + s_c - s, min=0).mean(), (s, s_c),
    )


def dropout_case(batch: int) -> Case:
    from cs224n_nn.functional import dropout

    x = torch.randn(batch, HIDDEN, requires_grad=True)
    g = torch.randn(batch, HIDDEN)
    return _case(
        "dropout (p=0.5, train)", f"{batch} x {HIDDEN}", "F.dropout",
        lambda: dropout(x, 0.5, True), lambda: F.dropout(x, 0.5, True), (x,), g,
    )


# issue 13: the fused layer at these batch sizes
DENSE_TARGET_BATCHES = (256, 4096)


def _layer_params(batch: int, n_out: int = HIDDEN):
    x = torch.randn(batch, HIDDEN, requires_grad=True)
    weight = torch.randn(n_out, HIDDEN, requires_grad=True)
    bias = torch.randn(n_out, requires_grad=True)
    return x, weight, bias


def dense_cases(batch: int) -> Iterator[Case]:
    """The notes' layer tanh(x W^T + b) as one Function, without and with dropout."""
    from cs224n_nn.functional import dense

    x, weight, bias = _layer_params(batch)
    g = torch.randn(batch, HIDDEN)
    setting = f"{batch} x {HIDDEN} -> {HIDDEN}"
    target = Target("<=", 1.0) if batch in DENSE_TARGET_BATCHES else None
    yield _case(
        "dense (tanh)", setting, "torch.tanh(F.linear)",
        lambda: dense(x, weight, bias, "tanh"), lambda: torch.tanh(F.linear(x, weight, bias)),
        (x, weight, bias), g, target,
    )
    yield _case(
        "dense (tanh, dropout 0.5)", setting, "F.dropout(torch.tanh(F.linear))",
        lambda: dense(x, weight, bias, "tanh", dropout=0.5),
        lambda: F.dropout(torch.tanh(F.linear(x, weight, bias)), 0.5), (x, weight, bias), g,
    )


def dense_loss_cases(batch: int) -> Iterator[Case]:
    """The output layer fused with its loss, against the loss of ``F.linear``."""
    from cs224n_nn.functional import dense_cross_entropy, dense_multi_margin

    x, weight, bias = _layer_params(batch, TAGS)
    labels = torch.randint(TAGS, (batch,))
    setting = f"{batch} x {HIDDEN} -> {TAGS} classes"
    yield _case(
        "dense_cross_entropy", setting, "F.cross_entropy(F.linear)",
        lambda: dense_cross_entropy(x, weight, bias, labels),
        lambda: F.cross_entropy(F.linear(x, weight, bias), labels), (x, weight, bias),
    )
    yield _case(
        "dense_multi_margin", setting, "F.multi_margin_loss(F.linear)",
        lambda: dense_multi_margin(x, weight, bias, labels),
        lambda: F.multi_margin_loss(F.linear(x, weight, bias), labels), (x, weight, bias),
    )


def cases(mode: str) -> Iterator[Case]:
    for batch in BATCHES[mode]:
        yield from dense_cases(batch)
        yield from dense_loss_cases(batch)
        yield affine_case(batch)
        yield embedding_case(batch, sparse=False)
        yield embedding_case(batch, sparse=True)
        yield window_lookup_case(batch)
        yield from loss_cases(batch)
        yield dropout_case(batch)


def rows(ctx: Context) -> list[Row]:
    return measure_all(cases(ctx.mode), ctx)
