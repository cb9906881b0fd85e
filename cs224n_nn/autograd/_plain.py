r"""Whether a backward pass is a *plain* one: the test every guarded fast path of the backwards shares.

A faster spelling of a derivative (the compiled copy of an activation's
``chain``, :mod:`._compiled_chain`; the embedding gradient summed in place
into its fresh zero table, :mod:`.embedding`) may run only where it cannot
change what the backward means. A backward is plain when

* grad mode is off: a plain ``backward()``, not ``create_graph=True``, where
  the eager out-of-place ops must be recorded for double backward;
* no ``torch.func`` transform is active, and no tensor is a functorch wrapper
  or a legacy batched tensor (``is_grads_batched=True``,
  ``jacobian(vectorize=True)``), nor carries a forward-mode tangent;
* we are not inside someone's ``torch.compile`` trace (there the eager
  formula is what gets traced), and autocast is off for the tensors' device;
* every tensor is a plain ``torch.Tensor`` (no subclass).

The functorch tests are private torch names, looked up at first use
(:mod:`._private`); on a torch without them no backward counts as plain, so
every fast path stays off: slower, never wrong.
"""

from __future__ import annotations

import torch
from torch.autograd import forward_ad

from ._private import lookup

#: The private functorch tests (looked up at first use; without them nothing is plain).
TRANSFORM_TESTS = (
    "_C._are_functorch_transforms_active",
    "_C._functorch.is_functorch_wrapped_tensor",
    "_C._functorch.is_legacy_batchedtensor",
)


def plain_backward(*tensors: torch.Tensor) -> bool:
    """Whether a backward computing from ``tensors`` is plain (every condition of the module docstring)."""
    if torch.is_grad_enabled() or torch.compiler.is_compiling():
        return False
    if any(type(t) is not torch.Tensor for t in tensors):
        return False
    if any(torch.is_autocast_enabled(t.device.type) for t in tensors if t.device.type in ("cpu", "cuda")):
        return False
    tests = lookup(*TRANSFORM_TESTS)
    if tests is None:
        return False
    transforms_active, is_wrapped, is_legacy_batched = tests
    if transforms_active() or any(is_wrapped(t) or is_legacy_batched(t) for t in tensors):
        return False
    return all(forward_ad.unpack_dual(t).tangent is None for t in tensors)
