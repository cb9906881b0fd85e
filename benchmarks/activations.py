"""The six activations of the notes, forward + backward, against torch's own.

One call of a case is ``torch.autograd.grad(f(x), x, g)``: the forward, then
the hand-written backward with an upstream gradient ``g`` (a ``grad`` call,
not ``.backward()``, so no ``x.grad`` accumulation is timed). Targets (issue
5): ratio at most 2.0 at 64K elements, at most 1.2 at 1M and above.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from benchmarks._timing import Case, Context, Row, Target, measure_all

# (name in cs224n_nn.functional, native twin's name, native twin)
ACTIVATIONS: list[tuple[str, str, Callable]] = [
    ("sigmoid", "torch.sigmoid", torch.sigmoid),
    ("tanh", "torch.tanh", torch.tanh),
    ("hardtanh", "F.hardtanh", F.hardtanh),
    ("softsign", "F.softsign", F.softsign),
    ("relu", "torch.relu", torch.relu),
    ("leaky_relu", "F.leaky_relu", F.leaky_relu),
]

SIZES = {"1K": 1 << 10, "64K": 1 << 16, "1M": 1 << 20, "16M": 1 << 24}

PRESETS = {
    "tiny": (["1K"], [torch.float32]),
    "quick": (["1M"], [torch.float32]),
    "full": (["1K", "64K", "1M", "16M"], [torch.float32, torch.float64]),
}


def target_for(numel: int) -> Target | None:
    """The issue's bound for this size (none below 64K elements)."""
    if numel >= SIZES["1M"]:
        return Target("<=", 1.2)
    if numel >= SIZES["64K"]:
        return Target("<=", 2.0)
    return None


def forward_backward(f: Callable, x: torch.Tensor, g: torch.Tensor) -> Callable[[], object]:
    return lambda: torch.autograd.grad(f(x), x, g)


def make_case(name: str, native_name: str, native: Callable, size: str, dtype: torch.dtype) -> Case:
    import cs224n_nn.functional as ours_F

    numel = SIZES[size]
    x = torch.randn(numel, dtype=dtype, requires_grad=True)
    g = torch.randn(numel, dtype=dtype)
    return Case(
        group="activations",
        piece=name,
        setting=f"{size} {str(dtype).removeprefix('torch.')}",
        native_name=native_name,
        ours=forward_backward(getattr(ours_F, name), x, g),
        native=forward_backward(native, x, g),
        target=target_for(numel),
    )


def cases(mode: str) -> Iterator[Case]:
    sizes, dtypes = PRESETS[mode]
    for dtype in dtypes:
        for size in sizes:
            for name, native_name, native in ACTIVATIONS:
                yield make_case(name, native_name, native, size, dtype)


def rows(ctx: Context) -> list[Row]:
    return measure_all(cases(ctx.mode), ctx)
