"""The checkpoint file format, and reading a checkpoint back safely (no Lightning needed).

A cs224n-nn checkpoint is a Lightning checkpoint with one more top-level
entry, ``CHECKPOINT_KEY`` (``"cs224n_nn"``), holding ``{"format":
CHECKPOINT_FORMAT, "encoder": WindowEncoder.state_dict()}`` (plain data), so
the model can be rebuilt from the file alone.  Its ``state_dict`` holds the
:class:`~cs224n_nn.ner.network.WindowNERNetwork`'s weights under the
network's own keys (``embeddings.0.trained.weight``, ``classifier.0.weight``,
``crf.transitions``, ...); ``hyper_parameters`` the arguments of
:class:`~cs224n_nn.ner.model.WindowNERModule`.  Format 3 is written (format
2 plus the encoder's optional gazetteer and N-gram features); formats 1, 2
and 3 are read (:func:`upgrade_state_dict` renames format 1's keys).

:func:`read_checkpoint`
    ``torch.load(weights_only=True)`` of a cs224n-nn checkpoint, turning
    every way a file can be wrong into one :class:`CheckpointError` line.

:func:`load_window_ner`, :func:`load_window_network`
    The trained model of a file, as the LightningModule or as the plain
    torch network.  Reading a file and rebuilding the plain network import
    no Lightning (writing one is :mod:`cs224n_nn.ner.checkpoints`'s
    :class:`~cs224n_nn.ner.checkpoints.AtomicCheckpointIO`).
"""

from __future__ import annotations

import inspect
import os
import warnings
from typing import Any

import torch

from cs224n_nn.errors import CheckpointError, ConfigError

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_KEY",
    "READABLE_FORMATS",
    "load_window_ner",
    "load_window_network",
    "read_checkpoint",
    "upgrade_state_dict",
]

# Top-level key of our checkpoints: its presence tells our files from others.
CHECKPOINT_KEY = "cs224n_nn"
# Format 3: the encoder may hold a gazetteer and charN features (several
# channels per token), which a reader of format 2 would misread; its weights
# are laid out as format 2's.  Format 2: the classifier is a WindowClassifier
# ([Dense..., Linear]); format 1 held a Sequential of (Linear, activation,
# Dropout) per hidden layer, whose keys upgrade_state_dict renames.
CHECKPOINT_FORMAT = 3
READABLE_FORMATS = (1, 2, 3)


def upgrade_state_dict(state: dict[str, Any], checkpoint_format: int) -> dict[str, Any]:
    """A state dict of an older checkpoint format with this version's keys (in place; returned).

    Format 1 stored ``classifier`` as a Sequential of ``(Linear, activation,
    Dropout)`` per hidden layer then the output Linear, so the parameters sat
    at indices ``0, 3, 6, ...``; format 2 puts layer ``i`` at index ``i``.
    """
    if checkpoint_format == 1:
        prefix = "classifier."
        for key in sorted(k for k in state if k.startswith(prefix)):
            index, rest = key[len(prefix):].split(".", 1)
            state[f"{prefix}{int(index) // 3}.{rest}"] = state.pop(key)
    return state


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint at ``path`` as a dict, read with ``weights_only=True``.

    Raises :class:`CheckpointError` naming the file when it is missing, a
    folder, truncated, corrupted, unsafe (holds code) or not a cs224n-nn
    NER checkpoint of a format this version reads.
    """
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


def load_window_ner(path: str | os.PathLike, map_location: str | torch.device = "cpu"):
    """Rebuild a trained :class:`~cs224n_nn.ner.model.WindowNERModule` from a checkpoint file, safely.

    Reads with ``torch.load(weights_only=True)`` (no code in the file can
    run) and raises :class:`~cs224n_nn.errors.CheckpointError` naming the file
    when it is missing, truncated, corrupted, unsafe or not ours.  The model
    is first built on the ``meta`` device (no memory) and its parameter
    shapes compared with the stored weights, so a file whose configuration
    asks for more than its weights hold fails before anything is allocated.
    Non-finite stored weights are loaded with a warning naming them.
    """
    from cs224n_nn.ner.model import WindowNERModule

    return _load(path, map_location, WindowNERModule)


def load_window_network(path: str | os.PathLike, map_location: str | torch.device = "cpu"):
    """The trained :class:`~cs224n_nn.ner.network.WindowNERNetwork` of a checkpoint file (eval mode).

    The same checks as :func:`load_window_ner`; the result is a plain torch
    module (``network.tag(batch)`` tags sentences with no Trainer).
    """
    from cs224n_nn.ner.network import WindowNERNetwork

    return _load(path, map_location, WindowNERNetwork)


def _load(path: str | os.PathLike, map_location: str | torch.device, cls):
    from cs224n_nn.ner.features import WindowEncoder

    path = os.fspath(path)
    checkpoint = read_checkpoint(path, map_location)
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "encoder"}
    hparams = {k: v for k, v in checkpoint["hyper_parameters"].items() if k in accepted}
    hparams["word_vectors"] = "none"  # the trained vectors are in the state dict
    state = upgrade_state_dict(checkpoint["state_dict"], checkpoint[CHECKPOINT_KEY]["format"])
    try:
        encoder = WindowEncoder.from_state_dict(checkpoint[CHECKPOINT_KEY]["encoder"])
        _keep_word_dim(hparams, encoder, state)
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in cls(encoder=encoder, **hparams).state_dict().items()}
        stored = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
        wrong = [k for k in shapes if k in stored and shapes[k] != stored[k]]
        if wrong:
            raise ValueError(f"{wrong[0]} is stored as {list(stored[wrong[0]])} but the configuration makes it "
                             f"{list(shapes[wrong[0]])}")
        model = cls(encoder=encoder, **hparams)
        model.load_state_dict(state)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    except (ConfigError, RuntimeError, TypeError, ValueError) as e:
        detail = " ".join(str(e).split())  # load_state_dict's message spans lines; keep one
        raise CheckpointError(f"{path}: the weights do not fit the stored configuration: {detail[:300]}") from None
    bad = [k for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
           and not bool(torch.isfinite(v).all())]
    if bad:
        warnings.warn(f"{path}: {len(bad)} stored weight tensor(s) hold NaN or inf ({', '.join(bad[:3])}); "
                      "the predictions will be meaningless", RuntimeWarning, stacklevel=3)
    model.eval()
    return model


def _keep_word_dim(hparams: dict, encoder, state: dict) -> None:
    """Put the stored word table's width into ``hparams["feature_dims"]`` when the run left it to the vectors.

    A run with pretrained vectors takes the word size from them (GloVe 6B 50d
    gives 50, another file its own); the checkpoint is rebuilt without them,
    so the size is read off the stored table instead of the default.
    """
    dims = dict(hparams.get("feature_dims") or {})
    if "word" not in encoder.features or "word" in dims:
        return
    i = encoder.features.index("word")
    table = state.get(f"embeddings.{i}.trained.weight", state.get(f"embeddings.{i}.weight"))
    if isinstance(table, torch.Tensor) and table.dim() == 2:
        dims["word"] = int(table.shape[1])
        hparams["feature_dims"] = dims
