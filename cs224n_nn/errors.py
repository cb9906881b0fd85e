"""The project's own exception types.

Every error that the ``cs224n-nn`` command reports as a one-line message
(instead of a traceback) derives from :class:`CS224nError`. Each also derives
from the builtin type a Python user would expect (``ValueError`` for bad
values), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

from os import PathLike


class CS224nError(Exception):
    """Base class of the errors the command line reports without a traceback."""


class DataFormatError(CS224nError, ValueError):
    """A data file that cannot be read; names the file and, where known, the line.

    >>> raise DataFormatError("expected 2 or 4 columns, got 3", path="x.conll", line=7)
    Traceback (most recent call last):
    ...
    cs224n_nn.errors.DataFormatError: x.conll:7: expected 2 or 4 columns, got 3
    """

    def __init__(self, message: str, *, path: str | PathLike | None = None, line: int | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        self.reason = message
        where = self.path or "<input>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {message}")


class ConfigError(CS224nError, ValueError):
    """A configuration value or command-line option that is not valid; names the option."""


class CheckpointError(CS224nError, ValueError):
    """A checkpoint that is missing, truncated, corrupted or not written by cs224n-nn."""


class NotFittedError(CS224nError, RuntimeError):
    """A fitted transform (``cs224n_nn.preprocess``) used before ``fit``."""
