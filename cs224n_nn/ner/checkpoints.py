"""Writing checkpoint files safely; the format and reading are re-exported from :mod:`~cs224n_nn.ner.checkpoint_format`.

:class:`AtomicCheckpointIO`
    Lightning's :class:`~pytorch_lightning.plugins.io.TorchCheckpointIO`
    writes the file in place: a process killed during the write leaves a
    truncated ``best.ckpt``.  This plugin saves through
    :func:`cs224n_nn.ner.atomic.atomic_write` (temporary file in the same
    folder, flush, fsync, ``os.replace``), so a checkpoint file is always
    either the previous complete one or the new complete one.

The file format (``CHECKPOINT_KEY``, ``CHECKPOINT_FORMAT``,
``READABLE_FORMATS``, :func:`upgrade_state_dict`) and safe reading
(:func:`read_checkpoint`, :func:`load_window_ner`, :func:`load_window_network`)
live in :mod:`cs224n_nn.ner.checkpoint_format`, which imports no Lightning,
and are importable from here too.
"""

from __future__ import annotations

from typing import Any

import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from cs224n_nn.ner.atomic import atomic_write
from cs224n_nn.ner.checkpoint_format import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_KEY,
    READABLE_FORMATS,
    load_window_ner,
    load_window_network,
    read_checkpoint,
    upgrade_state_dict,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_KEY",
    "READABLE_FORMATS",
    "AtomicCheckpointIO",
    "load_window_ner",
    "load_window_network",
    "read_checkpoint",
    "upgrade_state_dict",
]


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose saves are atomic (temporary file, fsync, ``os.replace``)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options, got {storage_options!r}")
        with atomic_write(path, "wb") as f:
            torch.save(checkpoint, f)
