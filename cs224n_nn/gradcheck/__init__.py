"""Gradient checking: the notes' central difference, and every check torch knows, in one table.

- :mod:`.numerical`: :func:`numerical_gradient` (the notes, section 2.1) and
  :func:`check_function` (analytic against numerical, worst element per input);
- :mod:`.verify`: :func:`verify` and :func:`assert_verified`, the whole battery
  (gradcheck, gradgradcheck, forward AD, batched gradients, vmap, compile,
  strides, low precision, devices, a reference) on anyone's Function;
- :mod:`.suite`: :func:`check_all`, ``verify`` over every Function of
  :mod:`cs224n_nn.autograd`;
- :mod:`.cli`: :func:`main`, the command ``cs224n-nn gradcheck``
  (also ``python -m cs224n_nn.gradcheck``).

Nothing here imports Lightning, so the command starts fast. See docs/gradcheck.md.
"""

from .cli import main
from .numerical import (
    METHODS,
    GradientCheck,
    InputError,
    WorstElement,
    check_function,
    gradient_errors,
    numerical_gradient,
)
from .suite import Report, ReportRow, check_all
from .verify import MODES, Check, Mismatch, Verification, assert_verified, verify

__all__ = [
    "numerical_gradient", "check_function", "gradient_errors", "GradientCheck", "InputError", "WorstElement",
    "METHODS", "verify", "assert_verified", "Verification", "Check", "Mismatch", "MODES",
    "check_all", "Report", "ReportRow", "main",
]  # fmt: skip
