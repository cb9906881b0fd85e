"""Helpers of the command tests: running ``cs224n-nn`` in-process and checking its one-line errors, and the
callbacks that test configs name by class path (``run_helpers.X``): signals and scripted scores."""

from __future__ import annotations

import os

import pytorch_lightning as pl

from cs224n_nn.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """``cs224n-nn ARGV`` in this process: (exit code, stdout, stderr)."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line(err: str, command: str, *needles: str) -> str:
    """The single line ``cs224n-nn COMMAND: error: ...`` that ``err`` must be, holding every needle."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cs224n-nn {command}: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, err)
    return lines[0]


class SignalAtStep(pl.Callback):
    """Send ``signum`` to this process when a training batch starts at global step ``step``."""

    def __init__(self, step: int, signum: int):
        self.step, self.signum = step, signum

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


class ScriptedScore(pl.Callback):
    """Log ``test/score`` = ``scores[epoch]`` at each validation end, a monitor whose best epoch is known."""

    def __init__(self, scores: list[float]):
        self.scores = scores

    def on_validation_epoch_end(self, trainer, pl_module):
        # only inside fit: the re-validation after training is not an epoch
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            pl_module.log("test/score", float(self.scores[trainer.current_epoch]))
