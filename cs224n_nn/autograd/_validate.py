"""Input checks shared by every Function: one place for each kind of bad input.

Each check raises a builtin exception (``TypeError`` for a wrong type or dtype,
``ValueError`` for a wrong shape or value, ``IndexError`` for an id or target
out of range) whose message names the argument and says what was expected.

Checks on metadata (dtype, shape) are plain Python and cost nothing under
``torch.compile`` or ``torch.func`` transforms. Checks on *values* (is every id
inside the table?) need the data on the host, which neither a compiled graph
(it would break the graph) nor a ``vmap``-batched tensor (no single value to
read) can give; :func:`values_checkable` says when to skip them. Skipping is
safe: the indexing kernels underneath still refuse an out-of-range index, only
with torch's own, less specific message.
"""

from __future__ import annotations

from numbers import Real
from typing import Callable

import torch

from ._private import lookup

REDUCTIONS = ("none", "mean", "sum")
_INDEX_DTYPES = (torch.int32, torch.int64)


#: The private functorch-wrapper test the value checks need (looked up at first use, :mod:`._private`).
WRAPPED_TEST = "_C._functorch.is_functorch_wrapped_tensor"


def values_checkable(*tensors: torch.Tensor) -> bool:
    """True when the tensors' values can be read on the host right now.

    Without the private wrapper test (another torch release) we cannot tell a
    ``vmap``-batched tensor from a plain one, so the value checks are skipped.
    """
    if torch.compiler.is_compiling():
        return False
    found = lookup(WRAPPED_TEST)
    if found is None:
        return False
    return not any(found[0](t) for t in tensors)


def tensor(x, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")


def floating(x, name: str) -> None:
    """Activations and losses take real floating-point tensors only."""
    tensor(x, name)
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor (float16, bfloat16, float32 or float64), got {x.dtype}"
        )


def same_dtype(x: torch.Tensor, name: str, other: torch.Tensor, other_name: str) -> None:
    if x.dtype != other.dtype:
        raise TypeError(f"{name} and {other_name} must have the same dtype, got {x.dtype} and {other.dtype}")


def real(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def reduction(value) -> str:
    if value not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(map(repr, REDUCTIONS))}; got {value!r}")
    return value


def drop_probability(p) -> float:
    """Dropout's p is the probability of *dropping* a unit, in [0, 1] as in torch (p = 1 drops all)."""
    p = real(p, "p")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability p must be in [0, 1], got {p}")
    return p


def hardtanh_bounds(min_val, max_val) -> tuple[float, float]:
    min_val, max_val = real(min_val, "min_val"), real(max_val, "max_val")
    if min_val > max_val:
        raise ValueError(f"min_val must not be greater than max_val, got min_val={min_val}, max_val={max_val}")
    return min_val, max_val


def affine(x, weight, bias) -> None:
    """``x @ weight.T + bias`` needs x (..., in), weight (out, in), bias (out,) of one dtype."""
    floating(x, "input")
    floating(weight, "weight")
    if weight.dim() != 2:
        raise ValueError(f"weight must be 2-D (out_features, in_features), got shape {tuple(weight.shape)}")
    if x.dim() == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"input must have shape (..., in_features={weight.shape[1]}) to match weight "
            f"{tuple(weight.shape)}, got {tuple(x.shape)}"
        )
    same_dtype(x, "input", weight, "weight")
    if bias is not None:
        floating(bias, "bias")
        if tuple(bias.shape) != (weight.shape[0],):
            raise ValueError(
                f"bias must have shape (out_features,) = ({weight.shape[0]},), got {tuple(bias.shape)}"
            )
        same_dtype(bias, "bias", weight, "weight")


def embedding(ids, weight, padding_idx, *, ids_now: bool = True) -> None:
    """The lookup's arguments: integer ids inside the table, a 2-D float table, padding_idx within it.

    ``ids_now=False`` leaves the ids' values to the caller (:func:`bad_ids`):
    on CPU the lookup's own kernel refuses an out-of-range id, so the lookup
    asks for our message only once that kernel has failed, and no good call
    pays for a reduction and two host reads.
    """
    tensor(ids, "input")
    if ids.dtype not in _INDEX_DTYPES:
        raise TypeError(f"input (the ids) must be an int64 or int32 tensor, got {ids.dtype}")
    floating(weight, "weight")
    if weight.dim() != 2:
        raise ValueError(f"weight must be 2-D (num_embeddings, embedding_dim), got shape {tuple(weight.shape)}")
    num = weight.shape[0]
    padding(padding_idx, num)
    if ids_now and (error := bad_ids(ids, num)) is not None:
        raise error


def padding(padding_idx, num: int) -> None:
    """``padding_idx``: None, or an int within ``[-num, num)`` for a table of ``num`` rows."""
    if padding_idx is not None:
        if isinstance(padding_idx, bool) or not isinstance(padding_idx, int):
            raise TypeError(f"padding_idx must be an int or None, got {type(padding_idx).__name__}")
        if not -num <= padding_idx < num:
            raise ValueError(f"padding_idx must be within [-{num}, {num}) (num_embeddings={num}), got {padding_idx}")


def kernel_refuses_bad_indices(t: torch.Tensor) -> bool:
    """Whether the indexing kernels on ``t``'s device raise a catchable error for an out-of-range index.

    True on CPU, where ``index_select`` and ``gather`` check every index: the
    values can wait for :func:`explained`. Elsewhere (CUDA) a bad index is a
    device-side assert that cannot be caught, so they must be checked first.
    """
    return t.device.type == "cpu"


def explained(compute: Callable[[], torch.Tensor], explain: Callable[[], Exception | None]) -> torch.Tensor:
    """``compute()``; if its indexing kernel refuses an index, ``explain()``'s error (one line) instead of torch's.

    For the lookups whose CPU kernels check every index anyway (``index_select``,
    ``gather``): the values are read on the host only after such a failure, so a
    good call pays nothing for our message. ``explain`` returns None when it finds
    nothing wrong, and torch's error is raised as it was.
    """
    try:
        return compute()
    except (IndexError, RuntimeError):
        error = explain()
        if error is None:
            raise
        raise error from None


def bad_ids(ids: torch.Tensor, num: int) -> IndexError | None:
    """The error naming an id outside ``[0, num)``, or None when all are inside or the values cannot be read."""
    if ids.numel() and values_checkable(ids):
        low, high = (int(v) for v in torch.aminmax(ids))
        if low < 0 or high >= num:
            bad = low if low < 0 else high
            return IndexError(f"input (the ids) must lie in [0, {num}) (num_embeddings={num}); found id {bad}")
    return None


def class_targets(scores, target, *, ignore_index: int | None = None, allow_scalar: bool = False,
                  values_now: bool = True) -> bool | None:
    """Class-index targets for scores (N, C) -> target (N,), or scores (C,) -> target () or (1,).

    With ``allow_scalar`` (the multi-margin loss, as torch), 0-d scores are one
    example of one class (C = 1) and take a target () or (1,) too.

    With ``ignore_index`` set, that value is allowed besides [0, C).
    Returns True when every target was read and is a class index in [0, C)
    (none ignored), False when some may be ``ignore_index``, None when the
    values cannot be read (under ``torch.compile`` or a ``torch.func``
    transform) or there are none. ``values_now=False`` checks the shapes and
    dtypes only (returning None) and leaves the values to the caller, who asks
    :func:`bad_targets` once its own indexing kernel has refused one (on CPU).
    """
    floating(scores, "input")
    tensor(target, "target")
    if target.dtype != torch.int64:
        raise TypeError(f"target must be an int64 (torch.long) tensor of class indices, got {target.dtype}")
    if scores.dim() == 2:
        expected = (scores.shape[0],)
        ok = tuple(target.shape) == expected
    elif scores.dim() == 1 or (scores.dim() == 0 and allow_scalar):
        expected = "() or (1,)"
        ok = target.dim() == 0 or tuple(target.shape) == (1,)
    else:
        scalar = " (or 0-D: one class)" if allow_scalar else ""
        raise ValueError(f"input must be 1-D (C,) or 2-D (N, C) scores{scalar}, got shape {tuple(scores.shape)}")
    if not ok:
        raise ValueError(f"target must have shape {expected} for input of shape {tuple(scores.shape)}, got {tuple(target.shape)}")
    if not values_now or not target.numel() or not values_checkable(target):
        return None
    classes = scores.shape[-1] if scores.dim() else 1
    low, high = (int(v) for v in torch.aminmax(target))
    if 0 <= low and high < classes and (ignore_index is None or not low <= ignore_index <= high):
        return True  # the usual case, settled by one reduction
    error = _target_error(target, classes, ignore_index)
    if error is not None:
        raise error
    return False


def bad_targets(target: torch.Tensor, classes: int) -> IndexError | None:
    """The error naming a target outside ``[0, classes)``, or None when all are inside or the values cannot be read."""
    if target.numel() and values_checkable(target):
        return _target_error(target, classes, None)
    return None


def _target_error(target: torch.Tensor, classes: int, ignore_index: int | None) -> IndexError | None:
    counted = target if ignore_index is None else target[target != ignore_index]
    if counted.numel():
        low, high = (int(v) for v in torch.aminmax(counted))
        if low < 0 or high >= classes:
            bad = low if low < 0 else high
            allowed = f"[0, {classes})" + ("" if ignore_index is None else f" or ignore_index={ignore_index}")
            return IndexError(f"target must lie in {allowed}; found {bad}")
    return None


def cross_entropy_targets(scores, target, ignore_index: int) -> tuple[bool, bool | None]:
    """Cross-entropy's targets, as torch takes them: ``(probabilities, all_counted)``.

    Class indices (int64) of shape ``()``/``(1,)`` for scores ``(C,)``, ``(N,)``
    for ``(N, C)``, ``(N, d1, ...)`` for ``(N, C, d1, ...)``; or class
    probabilities (floating, the shape and dtype of the scores; no
    ``ignore_index`` then, as torch). ``all_counted`` as :func:`class_targets`
    says (None for probabilities).
    """
    floating(scores, "input")
    tensor(target, "target")
    if scores.dim() == 0:
        raise ValueError("input must be 1-D (C,), 2-D (N, C) or (N, C, d1, ...) scores, got a 0-D tensor")
    if target.is_floating_point():
        if tuple(target.shape) != tuple(scores.shape):
            raise ValueError(f"target of class probabilities must have the shape of input {tuple(scores.shape)}, "
                             f"got {tuple(target.shape)}")
        same_dtype(target, "target (class probabilities)", scores, "input")
        if ignore_index != -100:
            raise ValueError(f"ignore_index is not supported with class-probability targets (as torch); got {ignore_index}")
        return True, None
    if scores.dim() <= 2:
        return False, class_targets(scores, target, ignore_index=ignore_index)
    expected = (scores.shape[0], *scores.shape[2:])
    if target.dtype == torch.int64 and tuple(target.shape) != expected:
        raise ValueError(f"target must have shape {expected} for input of shape {tuple(scores.shape)}, got {tuple(target.shape)}")
    rows = scores.movedim(1, -1).reshape(-1, scores.shape[1])
    return False, class_targets(rows, target.reshape(-1), ignore_index=ignore_index)


def class_weight(weight, scores) -> None:
    if weight is None:
        return
    floating(weight, "weight")
    classes = (scores.shape[1] if scores.dim() >= 2 else scores.shape[-1]) if scores.dim() else 1
    if tuple(weight.shape) != (classes,):
        raise ValueError(f"weight must have shape (C,) = ({classes},), got {tuple(weight.shape)}")
    same_dtype(weight, "weight", scores, "input")
