"""Entity-level precision, recall and F1, as conlleval computes them.

A window classifier (notes, section "Neural networks: window
classification") labels tokens, but NER is judged on entities: a predicted
entity counts only when its span *and* type equal a gold entity's.  With
``tp`` such matches, ``found`` predicted and ``gold`` gold entities::

    precision = tp / found      recall = tp / gold
    F1 = 2 * precision * recall / (precision + recall)

each taken as 0 when its denominator is 0 (conlleval prints 0.00 there).
The overall figures are micro-averaged (counts summed over types, as
conlleval's first line); ``precision_X``/``recall_X``/``f1_X`` are those of
type X alone.  Entities are decoded with :func:`cs224n_nn.ner.conll.spans`
(conlleval's chunk rules), so IOB1 and IOB2 tags both score correctly.

:class:`EntityF1` is a ``torchmetrics.Metric``: its states are count
vectors summed across processes (``dist_reduce_fx="sum"``), so the figure
under DDP equals the one-process figure on the same data.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric

from cs224n_nn.ner.conll import SCHEMES, entity_types, parse_tag, spans

__all__ = ["EntityF1", "precision_recall_f1"]


class EntityF1(Metric):
    """Entity-level P/R/F1 over whole sentences of tag ids.

    Args:
        tags: ``tags[i]`` is the tag string of class id ``i`` (e.g. the tag
            vocabulary's ``itos``).
        scheme: ``"IOB1"``, ``"IOB2"``, ``"IOBES"``, or ``"auto"``
            (``IOBES`` when some tag starts with ``E-``/``S-``, else IOB;
            IOB1 and IOB2 decode alike, see :mod:`cs224n_nn.ner.conll`).

    ``update(preds, target, lengths)`` takes the predicted and gold class
    ids of ``N`` tokens (1-D, any integer dtype) that are ``S`` whole
    sentences laid end to end, and the ``S`` sentence lengths
    (``lengths.sum() == N``).  ``compute()`` returns a dict of 0-d float
    tensors: ``precision``, ``recall``, ``f1`` and, per entity type X,
    ``precision_X``, ``recall_X``, ``f1_X``.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, tags: Sequence[str], scheme: str = "auto", **kwargs):
        super().__init__(**kwargs)
        tags = list(tags)
        if not tags:
            raise ValueError("EntityF1 needs the tag set (tags[i] = tag of class id i); got an empty list")
        for tag in tags:
            parse_tag(tag)  # ValueError naming a malformed tag
        if scheme == "auto":
            scheme = "IOBES" if any(parse_tag(t)[0] in ("E", "S") for t in tags) else "IOB2"
        elif scheme not in SCHEMES:
            raise ValueError(f"unknown tag scheme {scheme!r}; expected 'auto' or one of {', '.join(SCHEMES)}")
        elif scheme != "IOBES" and any(parse_tag(t)[0] in ("E", "S") for t in tags):
            raise ValueError(f"scheme {scheme} has no E-/S- tags, but the tag set holds some: {tags}")
        self.tags = tags
        self.scheme = scheme
        self.types = entity_types(tags)
        self._type_id = {t: i for i, t in enumerate(self.types)}
        k = len(self.types)
        self.add_state("tp", default=torch.zeros(k, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("found", default=torch.zeros(k, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("gold", default=torch.zeros(k, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor, lengths: torch.Tensor) -> None:
        preds, target, lengths = (torch.as_tensor(x) for x in (preds, target, lengths))
        for name, x in (("preds", preds), ("target", target), ("lengths", lengths)):
            if x.ndim != 1:
                raise ValueError(f"EntityF1.update: {name} must be 1-D, got shape {tuple(x.shape)}")
            if x.dtype.is_floating_point or x.dtype == torch.bool or x.is_complex():
                raise ValueError(f"EntityF1.update: {name} must hold integer ids, got {x.dtype}")
        if preds.shape != target.shape:
            raise ValueError(f"EntityF1.update: preds has {preds.numel()} tokens but target has {target.numel()}")
        # One transfer each; the chunk decoding below is plain Python anyway.
        pred_ids, gold_ids, sizes = preds.tolist(), target.tolist(), lengths.tolist()
        if any(n < 0 for n in sizes) or sum(sizes) != len(pred_ids):
            raise ValueError(
                f"EntityF1.update: sentence lengths must be >= 0 and sum to the {len(pred_ids)} tokens, "
                f"got sum {sum(sizes)}"
            )
        n_tags = len(self.tags)
        for name, ids in (("preds", pred_ids), ("target", gold_ids)):
            bad = next((i for i in ids if not 0 <= i < n_tags), None)
            if bad is not None:
                raise ValueError(f"EntityF1.update: {name} holds class id {bad}, outside [0, {n_tags})")
        k = len(self.types)
        tp, found, gold = [0] * k, [0] * k, [0] * k
        start = 0
        for n in sizes:
            p = set(spans([self.tags[i] for i in pred_ids[start : start + n]], self.scheme))
            g = set(spans([self.tags[i] for i in gold_ids[start : start + n]], self.scheme))
            for type_, _, _ in p:
                found[self._type_id[type_]] += 1
            for type_, _, _ in g:
                gold[self._type_id[type_]] += 1
            for type_, _, _ in p & g:
                tp[self._type_id[type_]] += 1
            start += n
        device = self.tp.device
        self.tp += torch.tensor(tp, dtype=torch.long, device=device)
        self.found += torch.tensor(found, dtype=torch.long, device=device)
        self.gold += torch.tensor(gold, dtype=torch.long, device=device)

    def compute(self) -> dict[str, torch.Tensor]:
        result = precision_recall_f1(self.tp.sum(), self.found.sum(), self.gold.sum())
        for i, type_ in enumerate(self.types):
            result.update(precision_recall_f1(self.tp[i], self.found[i], self.gold[i], f"_{type_}"))
        return result


def precision_recall_f1(tp, found, gold, suffix: str = "") -> dict[str, torch.Tensor]:
    """conlleval's ``precision``, ``recall`` and ``f1`` (each + ``suffix``) from the counts of correct,
    predicted and gold entities (tensors or ints); 0 where a denominator is 0 (module docstring)."""
    # float32 counts are exact up to 2**24 entities, far beyond any dev set.
    tp, found, gold = (torch.as_tensor(n).float() for n in (tp, found, gold))
    precision = _ratio(tp, found)
    recall = _ratio(tp, gold)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return {f"precision{suffix}": precision, f"recall{suffix}": recall, f"f1{suffix}": f1}


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den``, 0 where ``den`` is 0 (conlleval's convention)."""
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(num))
