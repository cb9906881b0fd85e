r"""Mixed precision for the hand-written Functions: torch's autocast policy and float32 derivatives.

Two rules, each written once here:

* **Autocast policy** (:func:`autocast_inputs`). Under ``torch.autocast`` a
  Function casts its floating inputs the way torch's autocast casts those of
  its twin, then computes in that dtype: ``"lower"`` for the affine map (like
  ``F.linear``: to the autocast dtype, bfloat16 on CPU, float16/bfloat16 on
  CUDA), ``"float32"`` for the losses (torch's autocast puts
  ``cross_entropy``, ``multi_margin_loss`` and ``margin_ranking_loss`` on its
  float32 list); activations, dropout and the embedding lookup follow their
  input (torch lists none of their twins). As in torch, float64 tensors are
  never cast. The casts run inside ``forward``, so they also hold under
  ``torch.compile``; the gradient each ``backward`` returns is in the compute
  dtype, and autograd rounds it to each input's own dtype (what torch's
  ``ToCopyBackward`` does after an autocast cast).
* **float32 derivatives** (:func:`in_float32`). A derivative formula called
  with float16/bfloat16 tensors evaluates in float32 and rounds its result once,
  as torch's own derivative kernels do (``tanh_backward`` and friends compute in
  ``opmath`` float). Without it ``(1 + |x|)^2`` overflows float16 at
  ``|x| >= 255`` and ``1 - y^2`` loses its digits near saturation in bfloat16.

``backward`` and ``jvp`` run with autocast off (:func:`outside_autocast`,
applied by :class:`~cs224n_nn.autograd._function.HandWrittenFunction` to every
subclass): their tensors are already in the forward's compute dtypes, so
calling ``backward()`` inside or outside an autocast region gives the same
gradients -- the guarantee ``torch.amp.custom_fwd(cast_inputs=...)`` with
``custom_bwd`` gives, for both CPU and CUDA, without naming a device type.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch

LOW_PRECISION = (torch.float16, torch.bfloat16)


def _eligible(t) -> bool:
    """Autocast casts floating tensors other than float64 (torch's ``is_eligible``)."""
    return isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != torch.float64


def _policy_dtype(policy: str, device_type: str) -> torch.dtype:
    """The dtype an op on autocast's ``policy`` list computes in while autocast is on for ``device_type``."""
    return torch.get_autocast_dtype(device_type) if policy == "lower" else torch.float32


def autocast_inputs(policy: str, *tensors):
    """``tensors`` cast as torch's autocast would for an op on its ``policy`` list ("lower" or "float32").

    Returned unchanged when autocast is off for their device type.
    """
    first = next((t for t in tensors if isinstance(t, torch.Tensor)), None)
    if first is None:  # nothing to cast; the Function's checks report the bad argument
        return tensors
    device_type = first.device.type
    if not torch.is_autocast_enabled(device_type):
        return tensors
    dtype = _policy_dtype(policy, device_type)
    return tuple(t.to(dtype) if _eligible(t) and t.device.type == device_type else t for t in tensors)


def autocast_dtype(policy: str, t: torch.Tensor) -> torch.dtype:
    """The dtype :func:`autocast_inputs` gives ``t`` under ``policy`` (without making the cast)."""
    device_type = t.device.type
    if not torch.is_autocast_enabled(device_type) or not _eligible(t):
        return t.dtype
    return _policy_dtype(policy, device_type)


def cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t.to(dtype)``, skipped when ``t`` has that dtype already (``to`` costs about 2 us even then)."""
    return t if t.dtype == dtype else t.to(dtype)


def in_float32(formula: Callable) -> Callable:
    """Evaluate ``formula`` in float32 when its first argument is float16/bfloat16, rounding each result once."""

    @functools.wraps(formula)
    def wrapped(first, *args, **kwargs):
        dtype = first.dtype
        if dtype not in LOW_PRECISION:
            return formula(first, *args, **kwargs)
        up = [a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in (first, *args)]
        up_kw = {k: (v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v) for k, v in kwargs.items()}
        out = formula(*up, **up_kw)
        if isinstance(out, tuple):
            return tuple(None if o is None else o.to(dtype) for o in out)
        return out.to(dtype)

    return wrapped


def outside_autocast(rule: Callable) -> Callable:
    """Run a ``backward``/``jvp`` with autocast off on the device of its first tensor argument."""

    @functools.wraps(rule)
    def wrapped(ctx, *args):
        for first in args:  # (a loop, not next() over a generator: this runs on every backward)
            if isinstance(first, torch.Tensor):
                if torch.is_autocast_enabled(first.device.type):
                    with torch.autocast(first.device.type, enabled=False):
                        return rule(ctx, *args)
                break
        return rule(ctx, *args)

    return wrapped
