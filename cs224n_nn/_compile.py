"""``torch.compile`` with a clean fallback, for the two compiled fast paths:
the optimizers' compiled update (:mod:`cs224n_nn.optim._compiled_update`)
and the activations' compiled backward (:mod:`cs224n_nn.autograd._compiled_chain`).

Both compile the very function their eager path calls, so when compilation
is unavailable (no C++ compiler, an unsupported Python or platform) nothing
is lost but speed: the first failure warns once per process, and from then on
every caller runs its eager path.
"""

from __future__ import annotations

import warnings

import torch

_failed = False  # a compilation failed in this process: run eagerly from now on


def available() -> bool:
    """Whether a compiled path may be tried (no failure seen, and not already
    inside someone's ``torch.compile`` trace, where the eager code is what gets traced)."""
    is_compiling = getattr(torch.compiler, "is_compiling", None)  # public since torch 2.3
    return not _failed and not (is_compiling is not None and is_compiling())


def mark_failed(who: str, err: BaseException) -> None:
    """Remember a compilation failure; warn the first time in this process."""
    global _failed
    if not _failed:
        _failed = True
        warnings.warn(
            f"{who}: torch.compile failed ({type(err).__name__}: {err}); "
            "cs224n_nn's compiled paths (the optimizer update, the activation backward) run eagerly from now on",
            RuntimeWarning,
            stacklevel=5,
        )
