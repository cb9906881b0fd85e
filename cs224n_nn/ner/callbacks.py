"""Lightning callbacks for reliable training runs: exact resume and non-finite gradients.

:class:`RNGStateCheckpoint`
    Lightning 2.x checkpoints hold the weights, the optimizer and the loop
    counters, but not the random number generators.  A run resumed from an
    end-of-epoch checkpoint therefore draws a different shuffling order and
    different dropout masks from an uninterrupted one, even with
    ``seed_everything`` and ``deterministic=True``.  This callback stores
    the generators' states in the checkpoint (as plain tensors and ints, so
    the file still loads with ``torch.load(..., weights_only=True)``) and
    puts them back before training resumes; an interrupted run then ends
    with the same weights, bit for bit, as an uninterrupted one
    (``tests/test_resume.py``; limits in ``docs/scaling.md``).

:class:`NonFiniteGradientStop`
    :class:`~cs224n_nn.ner.model.WindowNERModule` already stops when the
    *loss* is NaN or infinite.  A finite loss can still have an infinite
    gradient (an overflow in the backward pass); one optimizer step later
    every weight it touches is NaN.  This callback checks the gradients
    after the backward pass, before clipping and the optimizer step, and
    stops with :class:`~cs224n_nn.ner.model.NonFiniteLossError` naming the
    global step and the first bad parameter.
"""

from __future__ import annotations

import random
from typing import Any

import pytorch_lightning as pl
import torch

from cs224n_nn.ner.model import NonFiniteLossError

__all__ = ["NonFiniteGradientStop", "RNGStateCheckpoint"]


class RNGStateCheckpoint(pl.Callback):
    """Save the random generators' states in each checkpoint; restore them on resume.

    Kept: torch's CPU generator (shuffling of a ``RandomSampler`` without
    its own generator, dropout on CPU), each CUDA device's generator
    (dropout on GPU) and Python's ``random``; NumPy's global generator
    where NumPy is installed.  Under DDP the checkpoint holds rank 0's
    states and every rank restores them: ``seed_everything`` gives all ranks
    the same streams, and Lightning's ``DistributedSampler`` shuffles from
    ``seed + epoch``, not from these generators.
    """

    def state_dict(self) -> dict[str, Any]:
        # Called by the Trainer at the moment a checkpoint is written.
        state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": _python_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        numpy_state = _numpy_state()
        if numpy_state is not None:
            state["numpy"] = numpy_state
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Called once when fitting resumes from a checkpoint, before the first
        # batch is drawn, so the next epoch's shuffle is the one the
        # uninterrupted run would have drawn.
        torch.set_rng_state(state_dict["torch"])
        random.setstate(_python_state_from(state_dict["python"]))
        cuda = state_dict.get("cuda")
        if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        if "numpy" in state_dict:
            _set_numpy_state(state_dict["numpy"])


def _python_state() -> dict[str, Any]:
    # random.getstate() is (version, tuple of 625 ints, gauss_next): plain
    # types, but a tensor keeps the checkpoint compact.
    version, internal, gauss = random.getstate()
    return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss}


def _python_state_from(state: dict[str, Any]) -> tuple:
    return state["version"], tuple(int(v) for v in state["internal"].tolist()), state["gauss"]


def _numpy_state() -> dict[str, Any] | None:
    try:
        import numpy as np
    except ImportError:
        return None
    name, keys, pos, has_gauss, cached = np.random.get_state()
    # NumPy arrays would need an allow-list under weights_only=True; a tensor does not.
    return {"name": name, "keys": torch.from_numpy(keys.astype("int64")), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _set_numpy_state(state: dict[str, Any]) -> None:
    import numpy as np

    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state((state["name"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"]))


class NonFiniteGradientStop(pl.Callback):
    """Stop training when a gradient holds NaN or inf, naming the step and the parameter.

    Runs in ``on_before_optimizer_step``: after the backward pass, before
    gradient clipping (which would spread a NaN norm to every gradient)
    and before the update.
    """

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        for name, param in pl_module.named_parameters():
            grad = param.grad
            if grad is not None and grad.is_sparse:  # lazy embedding updates: check the stored rows
                grad = grad._values()
            # One reduction per tensor; .item() syncs with the device once per parameter.
            if grad is not None and not bool(torch.isfinite(grad).all()):
                kind = "nan" if bool(torch.isnan(grad).any()) else "inf"
                raise NonFiniteLossError(
                    f"the gradient of {name} holds {kind} at step {trainer.global_step} "
                    f"(epoch {trainer.current_epoch}); lower model.lr or set trainer.gradient_clip_val"
                )
