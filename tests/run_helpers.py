"""Helpers of the command tests: running ``cs224n-nn`` in-process and checking its one-line errors, a tiny
real checkpoint, and the callbacks that test configs name by class path (``run_helpers.X``): signals and
scripted scores."""

from __future__ import annotations

import os

import pytorch_lightning as pl

from cs224n_nn.cli import main


def tiny_checkpoint(folder, **data_args):
    """A real Lightning checkpoint ``folder/tiny.ckpt`` of a tiny model (one training step, in this process),
    on the packaged sample data with the ``CoNLLDataModule`` arguments given."""
    from cs224n_nn.ner.datamodule import CoNLLDataModule
    from cs224n_nn.ner.model import WindowNERModule

    data = CoNLLDataModule(batch_size=64, **data_args)
    model = WindowNERModule(encoder=data.encoder_state, word_vectors="none", hidden_dims=[8])
    trainer = pl.Trainer(accelerator="cpu", max_steps=1, limit_val_batches=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=data)
    path = folder / "tiny.ckpt"
    trainer.save_checkpoint(path)
    return path


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
