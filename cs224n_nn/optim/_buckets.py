"""Bucketing: which parameters of a step one multi-tensor call can update together."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def subset(idx: list[int], params, grads, state_lists, *per_param) -> tuple:
    """Entries ``idx`` of the per-parameter lists of a step: ``params``,
    ``grads``, each state list (``None`` where a state key is absent) and any
    further per-parameter lists, in that order; the same lists if ``idx``
    takes them all."""
    if len(idx) == len(params):
        return (params, grads, state_lists, *per_param)

    def pick(xs):
        return [xs[i] for i in idx]

    return (pick(params), pick(grads), [None if s is None else pick(s) for s in state_lists],
            *(pick(xs) for xs in per_param))


def by_device_and_dtype(tensors: list[Tensor]) -> list[list[int]]:
    """Positions of ``tensors`` grouped by (device, dtype).

    Uses torch's C++ helper when this torch has it (a Python loop reading
    ``t.device`` costs about a microsecond per tensor), else the public
    attributes: the private symbol is looked up at call time, so a torch
    without it still imports and steps.
    """
    group = getattr(torch._C, "_group_tensors_by_device_and_dtype", None)
    if group is not None:
        return [idx for _, idx in group([tensors], True).values()]
    return python_by_device_and_dtype(tensors)


def python_by_device_and_dtype(tensors: list[Tensor]) -> list[list[int]]:
    """:func:`by_device_and_dtype` from public attributes only (the fallback)."""
    out: dict[tuple, list[int]] = {}
    for i, t in enumerate(tensors):
        out.setdefault((t.device, t.dtype), []).append(i)
    return list(out.values())


def buckets(params: list[Tensor], scalars: list[dict[str, Any]],
            groups: list[list[int]] | None = None) -> list[list[int]]:
    """Positions of the parameters one foreach call can update together: one
    device, one dtype and one set of step scalars (``groups``: the grouping by
    device and dtype, if already known)."""
    first = scalars[0]
    if all(s is first for s in scalars):  # the usual case: one step count, one dict
        return groups if groups is not None else by_device_and_dtype(params)
    out: dict[tuple, list[int]] = {}
    for i, p in enumerate(params):
        out.setdefault((p.device, p.dtype, *scalars[i].values()), []).append(i)
    return list(out.values())
