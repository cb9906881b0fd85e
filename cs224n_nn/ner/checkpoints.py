"""Writing and reading checkpoint files safely.

:class:`AtomicCheckpointIO`
    Lightning's :class:`~pytorch_lightning.plugins.io.TorchCheckpointIO`
    writes the file in place: a process killed during the write leaves a
    truncated ``best.ckpt``.  This plugin saves through
    :func:`cs224n_nn.ner.atomic.atomic_write` (temporary file in the same
    folder, flush, fsync, ``os.replace``), so a checkpoint file is always
    either the previous complete one or the new complete one.

:func:`read_checkpoint`
    ``torch.load(weights_only=True)`` of a cs224n-nn checkpoint, turning
    every way a file can be wrong into one :class:`CheckpointError` line.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from cs224n_nn.errors import CheckpointError
from cs224n_nn.ner.atomic import atomic_write

__all__ = ["AtomicCheckpointIO", "read_checkpoint"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose saves are atomic (temporary file, fsync, ``os.replace``)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options, got {storage_options!r}")
        with atomic_write(path, "wb") as f:
            torch.save(checkpoint, f)


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint at ``path`` as a dict, read with ``weights_only=True``.

    Raises :class:`CheckpointError` naming the file when it is missing, a
    folder, truncated, corrupted, unsafe (holds code) or not a cs224n-nn
    NER checkpoint of a format this version reads.
    """
    from cs224n_nn.ner.model import CHECKPOINT_KEY, READABLE_FORMATS

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - a hostile file can make the unpickler raise anything (IndexError, ...)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{path}: cannot be read as a safe PyTorch checkpoint (truncated, corrupted, or holding code): {first}"
        ) from None
    if not isinstance(checkpoint, dict) or CHECKPOINT_KEY not in checkpoint:
        raise CheckpointError(f"{path}: not a cs224n-nn NER checkpoint (no {CHECKPOINT_KEY!r} entry)")
    ours = checkpoint[CHECKPOINT_KEY]
    if not isinstance(ours, dict) or ours.get("format") not in READABLE_FORMATS or "encoder" not in ours:
        found = ours.get("format") if isinstance(ours, dict) else type(ours).__name__
        raise CheckpointError(f"{path}: unsupported cs224n-nn checkpoint format {found!r}")
    if not isinstance(checkpoint.get("state_dict"), dict) or not isinstance(checkpoint.get("hyper_parameters"), dict):
        raise CheckpointError(f"{path}: the checkpoint lacks its weights or hyperparameters")
    return checkpoint
