r"""The word-vector lookup that feeds the notes' window classifier (notes section 3).

A window of word ids becomes the concatenation of rows of the embedding
matrix ``L`` (``num_embeddings x embedding_dim``). The lookup ``x = L[ids]`` is a
product with one-hot vectors, so its gradient is that product transposed: row
``i`` of ``dJ/dL`` is the sum of the gradients of every position whose id is
``i`` (a scatter-add), and every other row is zero.
"""

from __future__ import annotations

import torch

from ._function import HandWrittenFunction
from . import _validate


class Embedding(HandWrittenFunction):
    r"""``out[..., :] = weight[ids[...], :]`` for integer ``ids`` of any shape.

    Backward: ``dweight = zeros.index_add(0, ids, grad)`` (repeated ids add
    up), except that row ``padding_idx`` receives no gradient. With
    ``sparse=True`` the gradient is a ``torch.sparse_coo_tensor`` holding one
    row per looked-up position (uncoalesced, as ``torch.nn.functional.embedding``
    returns it); a sparse gradient cannot be differentiated again. Saves
    ``ids`` only.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(ids, weight, padding_idx=None, sparse=False):
        _validate.embedding(ids, weight, padding_idx)
        rows = weight.index_select(0, ids.reshape(-1))
        return rows.reshape(*ids.shape, weight.shape[1])

    @staticmethod
    def setup_context(ctx, inputs, output):
        ids, weight, padding_idx, sparse = inputs
        ctx.num_embeddings = weight.shape[0]
        # A negative padding_idx counts from the end, as in torch.
        ctx.padding_idx = None if padding_idx is None else padding_idx % weight.shape[0]
        ctx.sparse = bool(sparse)
        if ctx.needs_input_grad[1]:
            ctx.save_for_backward(ids)

    @staticmethod
    def backward(ctx, grad):
        (ids,) = ctx.saved_tensors
        ids = ids.reshape(-1)
        delta = grad.reshape(-1, grad.shape[-1])
        shape = (ctx.num_embeddings, grad.shape[-1])
        if ctx.sparse:
            if ctx.padding_idx is not None:
                # Drop the padding positions (as torch does). Gathering by the
                # kept positions' numbers is ~2x faster on CPU than a bool mask.
                kept = (ids != ctx.padding_idx).nonzero().squeeze(1)
                ids, delta = ids.index_select(0, kept), delta.index_select(0, kept)
            dweight = torch.sparse_coo_tensor(ids.long().unsqueeze(0), delta, shape, check_invariants=False)
        else:
            # index_add_ into a fresh zero tensor needs none of its old values,
            # so it stays differentiable for double backward.
            dweight = grad.new_zeros(shape).index_add_(0, ids, delta)
            if ctx.padding_idx is not None:
                dweight[ctx.padding_idx] = 0
        return None, dweight, None, None
