"""Sparse gradients: the rows a COO gradient touches, so that a dense rule
runs on them only (the lazy update of torch.optim.SparseAdam and of
sparse Adagrad).

:class:`~cs224n_nn.optim._optimizer.Optimizer` gathers those rows of the
parameter and of every state tensor, runs the optimizer's (dense) rule on
them, and scatters them back; no rule ever sees a sparse tensor.
"""

from __future__ import annotations

from torch import Tensor


def sparse_weight_decay_error(weight_decay: float, owner: str = "") -> RuntimeError:
    """The error for ``weight_decay != 0`` with a sparse gradient: the decay
    term (L2 or decoupled) would touch every row, not just the looked-up ones."""
    prefix = f"{owner}: " if owner else ""
    return RuntimeError(
        f"{prefix}weight_decay={weight_decay} is not compatible with sparse gradients "
        "(its update would touch every row); set weight_decay=0 for the sparse parameters, "
        "e.g. in their own parameter group (AdamW's default weight_decay is 1e-2)"
    )


class SparseRows:
    """The rows a sparse COO gradient touches.

    ``grad`` is coalesced first: repeated indices (one per looked-up position,
    as ``nn.Embedding(sparse=True)`` returns them) are summed, since the
    rules are non-linear in the gradient. :meth:`gather` copies the touched
    rows of a parameter or state tensor out, :meth:`scatter_` writes updated
    rows back; every other row is left as it is. With one sparse dimension
    (an embedding table) both are single ``index_select`` / ``index_copy_``
    calls along dim 0, cheaper than advanced indexing, which serves the
    general case (``sparse_dim > 1``).
    """

    __slots__ = ("values", "_index", "_key")

    def __init__(self, grad: Tensor):
        grad = grad.coalesce()
        self.values = grad._values()  # (rows touched, *dense dims)
        indices = grad._indices()     # (sparse_dim, rows touched)
        self._index = indices[0] if grad.sparse_dim() == 1 else None
        self._key = tuple(indices)

    def gather(self, t: Tensor) -> Tensor:
        return t.index_select(0, self._index) if self._index is not None else t[self._key]

    def scatter_(self, t: Tensor, rows: Tensor) -> None:
        if self._index is not None:
            t.index_copy_(0, self._index, rows)
        else:
            t.index_put_(self._key, rows)
