"""Private torch symbols, looked up at first use, never at import.

A few fast paths here need names torch does not promise to keep (the
functorch wrapper tests, the C++ ``Function.apply``). A rename in another
torch release must not break ``import cs224n_nn``, nor any call: each caller
asks :func:`lookup` when it first needs its names and takes its public path
when the answer is ``None``. tests/test_autograd_modes.py simulates a missing
name for every caller.
"""

from __future__ import annotations

import torch

_found: dict[tuple[str, ...], tuple | None] = {}  # names -> the objects, or None when one is missing


def lookup(*names: str) -> tuple | None:
    """The objects at ``torch.<name>`` for each dotted name (``"_C._functorch.unwrap_if_dead"``),
    or ``None`` when this torch lacks any of them. Looked up once per tuple of names."""
    if names not in _found:
        objects = []
        for dotted in names:
            obj = torch
            for part in dotted.split("."):
                obj = getattr(obj, part, None)
            objects.append(obj)
        _found[names] = None if any(o is None for o in objects) else tuple(objects)
    return _found[names]
