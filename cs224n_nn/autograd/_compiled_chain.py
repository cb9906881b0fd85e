r"""The activations' backward on large tensors: their own ``chain``, compiled.

Why: an activation's derivative ``chain(g, saved) = g * f'(z)``, written out
of place, runs as two to four eager kernels, each writing a whole tensor
(``1 - y``, then ``(1 - y) * y``, then the product with ``g``; or a bool mask,
then ``torch.where``). torch's own derivative kernels (``sigmoid_backward``,
``threshold_backward``) make one pass over memory, so at a million elements
the eager formula took 3 to 15 times theirs on this project's CPU. Inductor
fuses the same Python function into one loop (docs/modules.md, "Speed", has the
figures).

This is not a second formula: :func:`backward_chain` calls
``torch.compile(chain)`` of the very function the eager path calls, and only
where that cannot change what the backward means: in a plain backward
(:func:`._plain.plain_backward`: grad mode off, no ``torch.func`` transform,
no batched or dual tensor, not inside a ``torch.compile`` trace, autocast
off), on two tensors of the same shape, float32 or float64 (half and
bfloat16 keep :func:`._amp.in_float32`'s eager upcast), contiguous, on one
CPU or CUDA device, with at least the activation's ``compile_min_numel``
elements (:data:`COMPILE_MIN_NUMEL` for the arithmetic chains,
:data:`SELECT_MIN_NUMEL` for those that select with ``torch.where``; below
it a compiled call's fixed cost outweighs the passes it saves), and where
compilation works (:mod:`cs224n_nn._compile`: the first failure warns once
and every later call is eager). Everywhere else it calls the eager ``chain``.

The tensors go in flattened, so one compiled graph (``dynamic=True``)
serves every shape of a dtype and device. tests/test_compiled_chain.py
checks, for each activation and both dtypes, that the compiled result equals
the eager one and that each guard sends its case to the eager ``chain``.
"""

from __future__ import annotations

import inspect
from typing import Callable

import torch

from .. import _compile
from ._plain import plain_backward

#: Fewest elements for the compiled copy of an arithmetic chain (sigmoid, tanh,
#: soft sign). Measured on this project's 2-core CPU (compiled / eager time of
#: the chain alone): their arithmetic lost up to 256K (tanh 3.5 at 64K, 1.8 at
#: 128K, 1.1 at 256K; about 50-100 us of guards and launch per compiled call),
#: and won from 512K on (tanh 0.51, sigmoid 0.62).
COMPILE_MIN_NUMEL = 1 << 18

#: Fewest elements for the compiled copy of a chain that selects with
#: ``torch.where`` (hard tanh, ReLU, leaky ReLU). Eagerly such a chain writes a
#: bool mask and then selects, and this CPU is slow at both: at 64K elements
#: the compiled copy took 0.41-0.51 of the eager time (float32 and float64),
#: at 128K 0.20-0.34, while at 16K it lost (1.2-2.2). Measured on 2 threads,
#: 2026-12-02, with the chain alone. End to end (forward + backward against
#: torch, ``python -m benchmarks.run --full --only activations``, 2026-12-03)
#: the six 64K rows of these three were 3.11-3.47x with this threshold and
#: 2.73-4.35x with 1 << 17 (64K eager), one run each: no better eagerly.
SELECT_MIN_NUMEL = 1 << 16

_FLOATS = (torch.float32, torch.float64)
_compiled: dict[Callable, Callable] = {}  # chain -> its compiled copy


def compiled_copy(chain: Callable) -> Callable:
    """``torch.compile`` of the formula inside ``chain``, made once per chain (one graph per dtype and device, any length).

    The formula is compiled without its :func:`._amp.in_float32` wrapper, which is the identity for the
    float32/float64 tensors that come here: dynamo keeps compiled variants per code object, and all six
    formulas share the wrapper's, so through it they would soon pass its limit of 8 and run eagerly.
    """
    if chain not in _compiled:
        _compiled[chain] = torch.compile(inspect.unwrap(chain), dynamic=True, fullgraph=True)
    return _compiled[chain]


def eligible(g: torch.Tensor, saved: torch.Tensor, min_numel: int = COMPILE_MIN_NUMEL) -> bool:
    """Whether the compiled copy may compute ``chain(g, saved)``: every guard of the module docstring,
    ``min_numel`` being the activation's ``compile_min_numel``."""
    if g.numel() < min_numel or g.shape != saved.shape:
        return False
    if g.dtype not in _FLOATS or saved.dtype != g.dtype or saved.device != g.device:
        return False
    if g.device.type not in ("cpu", "cuda") or not (g.is_contiguous() and saved.is_contiguous()):
        return False
    return _compile.available() and plain_backward(g, saved)


def backward_chain(chain: Callable, g: torch.Tensor, saved: torch.Tensor, *params: float,
                   min_numel: int = COMPILE_MIN_NUMEL) -> torch.Tensor:
    """``chain(g, saved, *params)`` for a backward pass: through the compiled copy when :func:`eligible`
    (``min_numel``: the activation's ``compile_min_numel``)."""
    if eligible(g, saved, min_numel):
        try:
            return compiled_copy(chain)(g.view(-1), saved.view(-1), *params).view(g.shape)
        except Exception as err:  # noqa: BLE001 -- any compiler failure: warn once, then eager
            _compile.mark_failed(f"the compiled backward of {chain.__name__}", err)
    return chain(g, saved, *params)
