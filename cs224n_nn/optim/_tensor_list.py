"""The multi-tensor path: a list of tensors that answers the ``Tensor``
methods the update rules call, each with one ``torch._foreach_*`` call.

It lets ``adam(param, grad, ...)`` run unchanged on a whole bucket of
parameters (one device, one dtype), as torch.optim's ``foreach=True`` path
does with its hand-written ``_multi_tensor_*`` twin of each rule; here the
rule is written once and the list supplies the ``_foreach_`` calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


class TensorList:
    """Tensors updated together. Only the methods the rules use are here;
    scalars are Python numbers (or 0-d tensors)."""

    __slots__ = ("tensors",)

    def __init__(self, tensors: Sequence[Tensor]):
        self.tensors = list(tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    # out of place
    def __neg__(self) -> TensorList:
        return TensorList(torch._foreach_neg(self.tensors))

    def add(self, other: TensorList | float, alpha: float = 1) -> TensorList:
        if isinstance(other, TensorList):
            return TensorList(torch._foreach_add(self.tensors, other.tensors, alpha=alpha))
        return TensorList(torch._foreach_add(self.tensors, other))

    def mul(self, other: TensorList | float) -> TensorList:
        return TensorList(torch._foreach_mul(self.tensors, _raw(other)))

    def sqrt(self) -> TensorList:
        return TensorList(torch._foreach_sqrt(self.tensors))

    def addcmul(self, t1: TensorList, t2: TensorList, value: float = 1) -> TensorList:
        return TensorList(torch._foreach_addcmul(self.tensors, t1.tensors, t2.tensors, value=value))

    # in place (return self so calls chain like Tensor methods)
    def add_(self, other: TensorList | float, alpha: float = 1) -> TensorList:
        if isinstance(other, TensorList):
            torch._foreach_add_(self.tensors, other.tensors, alpha=alpha)
        else:
            torch._foreach_add_(self.tensors, other)
        return self

    def mul_(self, other: TensorList | float) -> TensorList:
        torch._foreach_mul_(self.tensors, _raw(other))
        return self

    def div_(self, other: TensorList | float) -> TensorList:
        torch._foreach_div_(self.tensors, _raw(other))
        return self

    def sqrt_(self) -> TensorList:
        torch._foreach_sqrt_(self.tensors)
        return self

    def lerp_(self, end: TensorList, weight: float) -> TensorList:
        torch._foreach_lerp_(self.tensors, end.tensors, weight)
        return self

    def addcmul_(self, t1: TensorList, t2: TensorList, value: float = 1) -> TensorList:
        torch._foreach_addcmul_(self.tensors, t1.tensors, t2.tensors, value=value)
        return self

    def addcdiv_(self, t1: TensorList, t2: TensorList, value: float = 1) -> TensorList:
        torch._foreach_addcdiv_(self.tensors, t1.tensors, t2.tensors, value=value)
        return self

    def copy_(self, src: TensorList) -> TensorList:
        torch._foreach_copy_(self.tensors, src.tensors)
        return self


def _raw(x: TensorList | float) -> Any:
    return x.tensors if isinstance(x, TensorList) else x


def maximum_(a: Tensor | TensorList, b: Tensor | TensorList) -> None:
    """``a = max(a, b)`` elementwise, in place (Tensor has no ``maximum_``)."""
    if isinstance(a, TensorList):
        torch._foreach_maximum_(a.tensors, b.tensors)
    else:
        torch.maximum(a, b, out=a)
