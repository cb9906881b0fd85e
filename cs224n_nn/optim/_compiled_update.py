"""The compiled update: a whole parameter group's step as one loop compiled
with ``torch.compile``, the fast path (``fused=True``, and the default for
groups big enough to pay for the compilation).

What is compiled is the optimizer's own rule (the same function the eager
paths call), looped over the group's parameters, so inductor fuses each
parameter's update into one pass over memory, as torch's ``fused=True``
kernels do. It is built once per group layout (:func:`layout`) and reused.

When compilation is unavailable (no C++ compiler, an unsupported Python or
platform) the first failure warns once per process and every optimizer
runs eagerly from then on (:mod:`cs224n_nn._compile`).
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

#: A group is compiled by default (``fused=None, foreach=None``) when its
#: dense parameters hold at least this many elements in all. Below it the
#: compilation (seconds) would outweigh what it saves (the eager multi-tensor
#: step of a small group takes well under a millisecond); see docs/optim.md,
#: "The default path", for the figures behind the number.
COMPILE_MIN_NUMEL = 1 << 20


def worth_compiling(params: list[Tensor]) -> bool:
    """Whether the default path compiles this group: big enough to pay."""
    return sum(p.numel() for p in params) >= COMPILE_MIN_NUMEL


def update_each(update: Callable, params, grads, state_lists, scalar_table, hyper) -> None:
    # The loop that is compiled: one update call per parameter, so
    # torch.compile sees the whole group. Numeric step scalars come in as one
    # float64 tensor per name (entry i for parameter i) so that new values
    # each step neither recompile nor add work inside the generated loops.
    for i in range(len(params)):
        states = [None if s is None else s[i] for s in state_lists]
        scalars = {name: column[i] for name, column in scalar_table.items()}
        update(params[i], grads[i], *states, **scalars, **hyper)


def layout(params, state_lists, table, hyper) -> tuple:
    """What the compiled loop specialises on: each parameter's shape, strides,
    dtype and device, which state lists exist, the flags, and the constant
    hyperparameters (lr excluded: it goes in as a tensor)."""
    return (
        tuple((p.shape, p.stride(), p.dtype, p.device) for p in params),
        tuple(s is None for s in state_lists),
        tuple((k, tuple(v) if isinstance(v, list) else None) for k, v in table.items()),
        tuple((k, v) for k, v in hyper.items() if k != "lr"),
    )


def loop_for_layout() -> Callable:
    """A new function object running :func:`update_each`, with its own code object.

    Dynamo keeps the compiled variants of a function on its code object and,
    past ``torch._dynamo.config.recompile_limit`` (8) variants, silently runs
    it eagerly. Every group layout compiles to its own variant (the list
    length and each shape are baked into the graph), so a process holding
    several optimizers or groups would soon exhaust one shared code object.
    A copy of the code per layout gives each layout its own cache of one
    variant; the arithmetic is unchanged.
    """
    fn = update_each
    return types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)


def compile_loop() -> Callable:
    """The compiled loop for one new layout."""
    # size_asserts off: inductor would re-check every tensor's shape on each
    # call, which costs more than the update at 100 x 1K.
    return torch.compile(loop_for_layout(), dynamic=False, options={"size_asserts": False})


def scalar_table(scalars: list[dict[str, Any]]) -> dict[str, Any]:
    """The step scalars as the loop takes them: flags (SGD's ``first``) stay
    Python bools, since the rule branches on them; numbers become one float64
    tensor per name, one entry per parameter."""
    return {
        name: [sc[name] for sc in scalars] if isinstance(value, bool)
        else torch.tensor([float(sc[name]) for sc in scalars], dtype=torch.float64)
        for name, value in scalars[0].items()
    }
