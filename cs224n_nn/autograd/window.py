r"""The window lookup and concatenation as one Function (notes section 3, "window classification").

The window classifier's input is the concatenation of every window
position's feature vectors,

    x = [e(w_{c-h}); ...; e(w_{c+h})],   e(w) = [L_word[w]; L_casing[casing(w)]; ...],

a product with one-hot vectors, so its gradient is that product transposed:
each table's gradient is :func:`.embedding.embedding_grad` of its slice of
``dJ/dx`` (the one formula of the embedding's backward), and a vector passed in
whole (a bag of character N-grams, averaged outside) gets its slice. Written
per table, the lookup is one :class:`.Embedding` node per feature, a node for
the concatenation and, for a table split in two (:class:`WindowLookup`'s
``splits``), three ``torch.where`` nodes: eleven autograd nodes for the NER
model's six features. :class:`WindowLookup` is one.

Layout. ``ids`` is ``(B, C, W)``: channel ``c`` holds one feature's ids for
the ``W`` window positions. ``layout`` has one entry per feature, in the order
of the output's columns, each ``(channel, splits)``:

* ``splits`` a tuple of ``(first_id, padding_idx, sparse)``, one per table the
  feature reads (the next ``len(splits)`` tensors after ``ids``), in order of
  ``first_id``: a table with ``first_id = f`` and ``n`` rows serves the ids
  ``f <= id < f + n`` as its rows ``id - f``. One table: ``((0, pad, sparse),)``.
  Two: the NER model's word table, whose trained rows come first and whose
  frozen pretrained rows follow (:class:`cs224n_nn.ner.network.WordEmbedding`).
  ``padding_idx`` (of that table's rows, or None) gets no gradient;
  ``sparse`` makes the table's gradient a sparse COO tensor, as
  :class:`.Embedding` does.
* ``channel`` None and ``splits`` empty: the feature is the next tensor itself,
  ``(B, W, d)``, concatenated as it is.

Output ``(B, W * D)``, ``D`` the sum of the features' widths, position-major
(``[e(w_1); e(w_2); ...]``): ``torch.cat(parts, -1).flatten(1)`` of the
per-feature ``(B, W, d)`` vectors.

Modes: double backward and ``vmap`` (the forward and :func:`.embedding_grad`
are out-of-place torch ops; ``generate_vmap_rule``), forward mode (``jvp``:
the same lookup of the tables' tangents), autocast (a lookup follows its
table's dtype, as ``torch.nn.functional.embedding``; the concatenation
promotes as ``torch.cat``). A sparse table's gradient cannot be
differentiated again nor batched, as for :class:`.Embedding`.
"""

from __future__ import annotations

import functools

import torch

from ._function import HandWrittenFunction
from . import _validate
from .embedding import embedding_grad, lookup


def _check_layout(ids: torch.Tensor, layout, tensors) -> None:
    """Shapes, dtypes, channels, padding indices and the split tables' id ranges; the ids' values are
    left to the lookups (:func:`.embedding.lookup`), as :class:`.Embedding` leaves them."""
    _validate.tensor(ids, "ids")
    if ids.dtype not in _validate._INDEX_DTYPES or ids.dim() != 3:
        raise ValueError(f"ids must be an int32/int64 (B, C, W) tensor of window ids, got {ids.dtype} "
                         f"of shape {tuple(ids.shape)}")
    features = _tables(layout)
    wanted = sum(len(tables) for _, tables in features)
    if wanted != len(tensors):
        raise ValueError(f"layout reads {wanted} tensors after ids, got {len(tensors)}")
    b, c, w = ids.shape
    for channel, tables in features:
        if channel is None:
            part = tensors[tables[0][0]]
            _validate.floating(part, "a vector passed through")
            if part.dim() != 3 or part.shape[0] != b or part.shape[1] != w:
                raise ValueError(f"a vector passed through must be (B, W, d) = ({b}, {w}, d), got {tuple(part.shape)}")
            continue
        if not 0 <= channel < c:
            raise ValueError(f"layout names channel {channel}, but ids has {c} channels")
        first_width, expected = None, 0
        for k, first, padding_idx, _ in tables:
            table = tensors[k]
            _validate.floating(table, "a table")
            if table.dim() != 2 or first_width not in (None, table.shape[1]) or first != expected:
                shapes = [tuple(tensors[j].shape) for j, *_ in tables]
                raise ValueError(f"the tables of channel {channel} must be 2-D, of one width, and serve "
                                 f"consecutive ids from 0: first ids {[f for _, f, _, _ in tables]} for shapes {shapes}")
            _validate.padding(padding_idx, table.shape[0])
            first_width, expected = table.shape[1], first + table.shape[0]


@functools.lru_cache(maxsize=256)
def _tables(layout):
    """For each feature: ``(channel, ((position of its tensor, first_id, padding_idx, sparse), ...))``.

    Cached: a model calls the lookup with the same layout every step.
    """
    out, k = [], 0
    for channel, splits in layout:
        if channel is None:
            out.append((None, ((k, 0, None, False),)))
            k += 1
        else:
            out.append((channel, tuple((k + i, *split) for i, split in enumerate(splits))))
            k += len(splits)
    return tuple(out)


def split_lookup(ids: torch.Tensor, first: int, lower, upper) -> torch.Tensor:
    """What :class:`WindowLookup` fuses for a table split at id ``first``, written per table:
    ``lower(ids)`` where ``ids < first``, ``upper(ids - first)`` elsewhere (``lower`` and ``upper``
    look up the two tables). Each reads its row 0 at the other's positions, and ``torch.where``
    drops those rows and their gradient. The per-table path of the NER network
    (:class:`cs224n_nn.ner.network.WordEmbedding`), the benchmark's torch twin and the tests'
    references all call it."""
    known = ids < first
    zero = torch.zeros((), dtype=ids.dtype, device=ids.device)
    inside = lower(torch.where(known, ids, zero))
    outside = upper(torch.where(known, zero, ids - first))
    return torch.where(known.unsqueeze(-1), inside, outside)


def _routes(idx: torch.Tensor, tables, rows) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """Per table of a feature: its row ids ``idx - first`` and where it serves ``idx`` (None: everywhere).

    The first table serves every id below the second's first id (a negative id reaches it and is
    refused there), the last every id from its first on (so does an id past the end); positions a
    table does not serve read its row 0, which the caller drops.
    """
    if len(tables) == 1:
        return [(idx, None)]
    out = []
    for i, (k, first, _, _) in enumerate(tables):
        below = idx < first + rows[k] if i < len(tables) - 1 else None
        above = idx >= first if i > 0 else None
        inside = below if above is None else above if below is None else above & below
        out.append((torch.where(inside, idx - first, 0), inside))
    return out


def _feature(idx, tables, tensors, rows, checked: bool) -> torch.Tensor | None:
    """One feature's ``(B, W, d)`` vectors from its tables (None: every table lacks a tangent)."""
    vectors = None
    for (k, *_), (table_rows, inside) in zip(tables, _routes(idx, tables, rows)):
        table = tensors[k]
        if table is None:  # forward mode: a table without a tangent adds zeros
            continue
        if not checked and (error := _validate.bad_ids(table_rows, table.shape[0])):
            raise error  # where the kernel cannot refuse an id itself (CUDA), before the lookup
        looked = lookup(table, table_rows)
        if inside is None:
            vectors = looked
        else:
            base = torch.zeros_like(looked) if vectors is None else vectors
            vectors = torch.where(inside.unsqueeze(-1), looked, base)
    return vectors


def _features(ids, layout, tensors, rows) -> list[torch.Tensor | None]:
    """The per-feature ``(B, W, d)`` vectors; ``tensors`` the tables (or their tangents: None is a zero
    table), ``rows`` every table's row count."""
    parts = []
    checked = _validate.kernel_refuses_bad_indices(ids)  # the lookups run where the ids are
    for channel, tables in _tables(layout):
        if channel is None:
            parts.append(tensors[tables[0][0]])
        elif len(tables) == 1:
            parts.append(_feature(ids[:, channel], tables, tensors, rows, checked))
        else:  # an id outside the split table is named as the feature's id, not a table's row
            idx, total = ids[:, channel], sum(rows[k] for k, *_ in tables)
            parts.append(_validate.explained(lambda: _feature(idx, tables, tensors, rows, checked),
                                             lambda: _validate.bad_ids(idx, total)))
    return parts


class WindowLookup(HandWrittenFunction):
    r"""``x = [e(w_1); ...; e(w_W)]`` for windows of feature ids, one autograd node (see the module docstring).

    ``WindowLookup.apply(ids, layout, *tensors)``: ``ids`` ``(B, C, W)``,
    ``layout`` the per-feature ``(channel, splits)`` tuple, ``tensors`` the
    tables (and vectors passed through) it reads. Returns ``(B, W * D)``.
    Backward: a table gets :func:`.embedding_grad` of its feature's slice of
    ``dJ/dx`` at the positions whose ids it serves; a vector passed through
    gets its slice. Forward mode: the same lookup of the tangents. Saves ``ids``.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(ids, layout, *tensors):
        _check_layout(ids, layout, tensors)
        parts = _features(ids, layout, tensors, [t.shape[0] for t in tensors])
        return torch.cat(parts, dim=-1).reshape(ids.shape[0], -1)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ids, layout, *tensors = inputs
        ctx.layout = layout
        ctx.rows = [t.shape[0] for t in tensors]
        ctx.widths = [t.shape[-1] for t in tensors]
        ctx.save_for_backward(ids)
        ctx.save_for_forward(ids)

    @staticmethod
    def backward(ctx, grad):
        (ids,) = ctx.saved_tensors
        g = grad.reshape(ids.shape[0], ids.shape[2], -1)
        needs = ctx.needs_input_grad[2:]
        out = [None] * len(needs)
        column = 0
        for channel, tables in _tables(ctx.layout):
            width = ctx.widths[tables[0][0]]
            part = g[..., column:column + width]
            column += width
            if channel is None:
                out[tables[0][0]] = part if needs[tables[0][0]] else None
                continue
            for (k, _, padding_idx, sparse), (rows, inside) in zip(tables, _routes(ids[:, channel], tables, ctx.rows)):
                if not needs[k]:
                    continue
                # Positions another table serves read row 0 here: their gradient is routed there as zeros.
                delta = part if inside is None else torch.where(inside.unsqueeze(-1), part, 0)
                pad = None if padding_idx is None else padding_idx % ctx.rows[k]
                out[k] = embedding_grad(rows, delta, ctx.rows[k], pad, sparse)
        return (None, None, *out)

    @staticmethod
    def jvp(ctx, ids_t, layout_t, *tangents):
        (ids,) = ctx.saved_tensors
        dtype = next(t.dtype for t in tangents if t is not None)
        parts = _features(ids, ctx.layout, tangents, ctx.rows)
        b, w = ids.shape[0], ids.shape[2]
        parts = [torch.zeros(b, w, ctx.widths[tables[0][0]], dtype=dtype, device=ids.device) if p is None else p
                 for p, (_, tables) in zip(parts, _tables(ctx.layout))]
        return torch.cat(parts, dim=-1).reshape(b, -1)
