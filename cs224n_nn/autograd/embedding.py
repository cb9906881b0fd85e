r"""The word-vector lookup that feeds the notes' window classifier (notes section 3).

A window of word ids becomes the concatenation of rows of the embedding
matrix ``L`` (``num_embeddings x embedding_dim``). The lookup ``x = L[ids]`` is a
product with one-hot vectors, so its gradient is that product transposed: row
``i`` of ``dJ/dL`` is the sum of the gradients of every position whose id is
``i`` (a scatter-add), and every other row is zero. Forward mode is the same
lookup of the tangent: ``dx = dL[ids]``.
"""

from __future__ import annotations

import torch

from ._function import HandWrittenFunction
from ._plain import plain_backward
from . import _validate


def renorm_rows_(weight: torch.Tensor, ids: torch.Tensor, max_norm: float, norm_type: float = 2.0) -> None:
    """Rescale, in place and outside autograd, each looked-up row whose ``norm_type``-norm exceeds ``max_norm``.

    Row ``i`` becomes ``L_i * max_norm / (||L_i|| + 1e-7)``, as
    ``torch.embedding_renorm_`` does for ``torch.nn.Embedding(max_norm=...)``.
    """
    with torch.no_grad():
        rows = ids.reshape(-1).unique()
        norms = weight.index_select(0, rows).norm(p=norm_type, dim=1)
        scale = torch.where(norms > max_norm, max_norm / (norms + 1e-7), 1).to(weight.dtype)
        weight.index_copy_(0, rows, weight.index_select(0, rows) * scale.unsqueeze(1))


def lookup(weight: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """The forward map ``weight[ids]``, ``(*ids.shape, d)``, which :class:`Embedding` and the window
    lookup (:mod:`.window`) call; an out-of-range id gets our one-line message, its values read only
    once ``index_select`` has refused it (the caller checks them first where the kernel cannot:
    :func:`._validate.kernel_refuses_bad_indices`)."""
    rows = _validate.explained(lambda: weight.index_select(0, ids.reshape(-1)),
                               lambda: _validate.bad_ids(ids, weight.shape[0]))
    return rows.reshape(*ids.shape, weight.shape[1])


def embedding_grad(ids: torch.Tensor, grad: torch.Tensor, num_embeddings: int, padding_idx: int | None = None,
                   sparse: bool = False, scale_grad_by_freq: bool = False) -> torch.Tensor:
    r"""``dJ/dL`` of the lookup ``x = L[ids]`` from ``grad = dJ/dx`` (shape ``(*ids.shape, d)``): the one
    formula of the embedding's backward, which :class:`Embedding` and the window lookup
    (:mod:`.window`) call.

    Row ``r`` is the sum of ``grad`` over the positions holding id ``r`` (``zeros.index_add(0, ids,
    grad)``); row ``padding_idx`` (non-negative here) gets none; ``scale_grad_by_freq`` first divides
    each position's gradient by its id's count in ``ids``; ``sparse`` gives a
    ``torch.sparse_coo_tensor`` with one row per (non-padding) position, uncoalesced, as torch does.
    """
    ids = ids.reshape(-1)
    delta = grad.reshape(-1, grad.shape[-1])
    shape = (num_embeddings, grad.shape[-1])
    if scale_grad_by_freq:
        counts = torch.zeros(num_embeddings, dtype=grad.dtype, device=grad.device)
        counts = counts.index_add(0, ids, torch.ones_like(ids, dtype=grad.dtype))
        delta = delta / counts.index_select(0, ids).unsqueeze(1)
    if sparse:
        if padding_idx is not None:
            # Drop the padding positions (as torch does).
            kept = (ids != padding_idx).nonzero().squeeze(1)
            ids, delta = ids.index_select(0, kept), delta.index_select(0, kept)
        return torch.sparse_coo_tensor(ids.long().unsqueeze(0), delta, shape, check_invariants=False)
    zeros = grad.new_zeros(shape)
    # dL/dL[r] = the sum of delta over the positions holding id r, written out of place
    # (index_add, index_fill) like every derivative here. In a plain backward (._plain) the
    # same sum goes into the fresh zero table in place, which saves one copy of the whole table.
    plain = plain_backward(grad)
    dweight = zeros.index_add_(0, ids, delta) if plain else zeros.index_add(0, ids, delta)
    if padding_idx is not None:
        # Row padding_idx receives no gradient: zeroing that one row of the sum costs d
        # writes, where masking the padding positions of delta cost a pass over all N x d.
        pad = torch.tensor([padding_idx], device=grad.device)
        dweight = dweight.index_fill_(0, pad, 0) if plain else dweight.index_fill(0, pad, 0)
    return dweight


class Embedding(HandWrittenFunction):
    r"""``out[..., :] = weight[ids[...], :]`` for integer ``ids`` of any shape.

    Backward: ``dweight = zeros.index_add(0, ids, grad)`` (repeated ids add
    up), except that row ``padding_idx`` receives no gradient; with
    ``scale_grad_by_freq`` each position's gradient is first divided by the
    number of times its id occurs in ``ids`` (as torch). With ``sparse=True``
    the gradient is a ``torch.sparse_coo_tensor`` holding one row per looked-up
    position (uncoalesced, as ``torch.nn.functional.embedding`` returns it); a
    sparse gradient cannot be differentiated again nor batched. Forward mode:
    ``dout = dweight[ids]``. Saves ``ids``. Under autocast it follows the table's dtype.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(ids, weight, padding_idx=None, sparse=False, scale_grad_by_freq=False):
        # The ids' values are read for our message only once index_select has refused one, where it can.
        _validate.embedding(ids, weight, padding_idx, ids_now=not _validate.kernel_refuses_bad_indices(weight))
        if sparse and scale_grad_by_freq:
            raise ValueError("scale_grad_by_freq=True is not supported with sparse=True (torch refuses it too)")
        return lookup(weight, ids)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ids, weight, padding_idx, sparse, scale_grad_by_freq = inputs
        ctx.num_embeddings = weight.shape[0]
        # A negative padding_idx counts from the end, as in torch.
        ctx.padding_idx = None if padding_idx is None else padding_idx % weight.shape[0]
        ctx.sparse, ctx.scale_grad_by_freq = bool(sparse), bool(scale_grad_by_freq)
        ctx.save_for_backward(ids)
        ctx.save_for_forward(ids)

    @staticmethod
    def backward(ctx, grad):
        (ids,) = ctx.saved_tensors
        dweight = embedding_grad(ids, grad, ctx.num_embeddings, ctx.padding_idx, ctx.sparse, ctx.scale_grad_by_freq)
        return None, dweight, None, None, None

    @staticmethod
    def jvp(ctx, ids_t, weight_t, padding_idx_t, sparse_t, scale_t):
        (ids,) = ctx.saved_tensors
        return weight_t.index_select(0, ids.reshape(-1)).reshape(*ids.shape, weight_t.shape[-1])
