r"""Single-pass backward kernels, compiled by ``torch.compile`` from our own formulas.

Why: an eager backward such as sigmoid's ``gy = g*y; gy - gy*y`` is two
element-wise kernels, so it reads and writes memory twice where torch's
built-in derivative kernel does it once; on tensors of a million elements and
more that extra pass is what separates us from torch (issue 5). Inductor fuses
the same formula into one loop. The formula stays ours, written by hand in
:mod:`.activations`; this module only decides *when* to run the compiled copy
and keeps the eager one as the answer whenever it does not.

The compiled copy runs only when all of these hold (:func:`applicable`):

* the switch is on: module attribute ``enabled`` (environment variable
  ``CS224N_NN_FUSED=0`` turns it off at import);
* the tensor has at least ``min_numel`` elements (default ``2**18``): below
  that the call overhead of a compiled function eats the saving;
* grad mode is off inside ``backward`` (no ``create_graph``: double backward
  must differentiate the eager, differentiable formula);
* we are not being traced by ``torch.compile`` (``torch.compiler.is_compiling``)
  nor running under a ``torch.func`` transform (functorch-wrapped tensors);
* float32 or float64, both tensors contiguous, on one device, of one shape.

Inputs are flattened to 1-D and compiled with ``dynamic=True``, so one graph
serves every size and shape: a compile happens once per (formula, dtype,
device). The first call pays it, measured on a loaded 2-core CPU: 8-20 s for
the first compiled backward in a process (importing inductor, first C++
build), 1-2 s for each further (function, dtype); inductor's on-disk cache
makes later processes faster. If compiling or running the compiled copy
fails, we warn once, remember, and use eager from then on.

Why the threshold is 2**18: the call costs about 75 us of dispatch (dynamo
guards, AOTAutograd wrapper) and, with dynamic shapes, inductor cannot tell a
small tensor from a large one, so its loop always forks its OpenMP threads;
at 64K elements that costs more than the pass it saves.

Numerics: the compiled copy evaluates the same operations in the same order,
with ``a - b*c`` contracted into one FMA as eager's ``addcmul`` rounds it
(``_OPTIONS``). float32 results are bit-identical to eager; in float64 a few
elements of the loop's remainder were seen rounded twice, off by less than
one ulp of the upstream gradient (tests/test_fused_backward.py checks both).

Note: the inductor CPU kernel takes its thread count from
``torch.get_num_threads()`` when it is compiled.
"""

from __future__ import annotations

import os
import warnings
from typing import Callable

import torch

ENV_VAR = "CS224N_NN_FUSED"

#: Set to False to always run the eager backward formulas.
enabled: bool = os.environ.get(ENV_VAR, "1").strip().lower() not in ("0", "false", "off", "no")
#: Smallest tensor (in elements) for which the compiled copy is used.
min_numel: int = 1 << 18

_DTYPES = (torch.float32, torch.float64)
# Eager CPU ``addcmul`` rounds ``a + v*b*c`` once (a fused multiply-add);
# inductor's C++ lowering writes a multiply and an add, which gcc contracts
# back into one FMA only when allowed to. Without it, ``grad - gy*y`` near
# ``|y| = 1`` (tanh) would lose the digits eager keeps.
_OPTIONS = {"cpp.enable_floating_point_contract_flag": "fast"}
_is_wrapped = torch._C._functorch.is_functorch_wrapped_tensor


def applicable(grad: torch.Tensor, saved: torch.Tensor) -> bool:
    """True when the compiled copy may replace the eager formula for ``(grad, saved)``."""
    return (
        enabled
        and grad.numel() >= min_numel
        and not torch.is_grad_enabled()
        and grad.dtype in _DTYPES
        and grad.dtype == saved.dtype
        and grad.device == saved.device
        and grad.shape == saved.shape
        and grad.is_contiguous()
        and saved.is_contiguous()
        and not torch.compiler.is_compiling()
        and not _is_wrapped(grad)
        and not _is_wrapped(saved)
    )


class Kernel:
    """A backward formula ``formula(grad, saved, *scalars)`` and its lazily compiled copy.

    ``scalars`` (bounds, slopes) reach the compiled copy as 0-d tensors of the
    gradient's dtype -- Python floats are converted -- so a new value does not
    trigger a recompile; comparing with a 0-d tensor rounds the bound to the
    dtype exactly as comparing with a Python float does.
    """

    def __init__(self, name: str, formula: Callable[..., torch.Tensor]):
        self.name = name
        self.formula = formula
        self.calls = 0  # compiled calls that succeeded (tests check the path was taken)
        self._compiled: Callable[..., torch.Tensor] | None = None
        self._failed: set[tuple[torch.dtype, str]] = set()

    def backward(self, grad: torch.Tensor, saved: torch.Tensor, eager: Callable[..., torch.Tensor],
                 *scalars) -> torch.Tensor:
        """The gradient a Function's ``backward`` returns, by the fastest valid route.

        Under ``create_graph`` (grad mode on) the differentiable ``formula``,
        so that autograd can differentiate it again; otherwise the compiled
        copy where :func:`applicable`, else ``eager(grad, saved, *scalars)``:
        the same formula written in place on fresh temporaries.
        """
        if torch.is_grad_enabled():
            return self.formula(grad, saved, *scalars)
        fused = self(grad, saved, *scalars)
        return fused if fused is not None else eager(grad, saved, *scalars)

    def __call__(self, grad: torch.Tensor, saved: torch.Tensor, *scalars) -> torch.Tensor | None:
        """The gradient from the compiled copy, or None: then the caller runs its eager formula."""
        if not applicable(grad, saved):
            return None
        key = (grad.dtype, grad.device.type)
        if key in self._failed:
            return None
        try:
            if self._compiled is None:
                self._compiled = torch.compile(self.formula, dynamic=True, fullgraph=True, options=_OPTIONS)
            scalars = tuple(
                s if isinstance(s, torch.Tensor) else torch.tensor(s, dtype=grad.dtype, device=grad.device)
                for s in scalars
            )
            out = self._compiled(grad.view(-1), saved.detach().view(-1), *scalars)
        except Exception as err:  # no compiler, unsupported device, ... : eager still answers
            self._failed.add(key)
            warnings.warn(
                f"cs224n_nn: compiled backward for {self.name} ({key[0]}, {key[1]}) failed "
                f"({type(err).__name__}: {err}); using the eager formula from now on",
                RuntimeWarning,
                stacklevel=2,
            )
            return None
        self.calls += 1
        return out.view(grad.shape)
