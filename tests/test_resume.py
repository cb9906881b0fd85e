"""Exact resume (issue 7, item 2): a killed run, resumed from its last checkpoint,
ends where an uninterrupted run ends.

Every run is a real ``cs224n-nn train`` subprocess in deterministic mode on
the packaged sample corpus (tiny model, 3 short epochs).  The interrupted run
is ended by SIGKILL from inside the training loop (:class:`KillAtStep`), so
nothing gets to flush or save on the way out, as with an OOM kill or a
pre-empted node.

What is exact and what is not (see docs/scaling.md):
- from an end-of-epoch checkpoint, with
  :class:`~cs224n_nn.ner.callbacks.RNGStateCheckpoint`: identical weights,
  optimizer state and dev F1 (asserted bit for bit);
- from the same checkpoint without that callback: Lightning does not
  restore the random generators, so the next epochs shuffle differently
  (asserted, so that the docs stay true);
- from a mid-epoch checkpoint (``ModelCheckpoint(every_n_train_steps=...)``):
  the run finishes with the right step count, but the training DataLoader
  is not resumable, so the rest of that epoch sees a fresh shuffle; Lightning
  warns about it, and so do we.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

ROOT = Path(__file__).resolve().parents[1]
STEPS_PER_EPOCH = 10
EPOCHS = 3
KILL_AT = 25  # mid epoch 2: epoch 1 ended at step 20 (last.ckpt), steps 20 and 25 below have step checkpoints


class KillAtStep(pl.Callback):
    """SIGKILL this process when a training batch starts at ``step`` (test helper)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def _callbacks_yaml(path: Path, *, rng: bool, kill: bool, ema: bool = False) -> Path:
    lines = ["trainer:", "  callbacks:"]
    if rng:
        lines.append("    - class_path: cs224n_nn.ner.callbacks.RNGStateCheckpoint")
    if ema:  # averaged weights, updated every 3 steps: the resume point (step 20) falls between two updates
        lines += ["    - class_path: pytorch_lightning.callbacks.EMAWeightAveraging",
                  "      init_args: {decay: 0.9, update_every_n_steps: 3}"]
    lines += ["    - class_path: pytorch_lightning.callbacks.ModelCheckpoint",
              "      init_args: {dirpath: steps, filename: 'step{step}', auto_insert_metric_name: false,",
              "                  every_n_train_steps: 5, save_top_k: -1}"]
    if kill:
        lines += ["    - class_path: test_resume.KillAtStep", f"      init_args: {{step: {KILL_AT}}}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def _start(workdir: Path, *, rng: bool = True, kill: bool = False, ckpt_path: Path | None = None,
           ema: bool = False) -> subprocess.Popen:
    workdir.mkdir(parents=True, exist_ok=True)
    extra = _callbacks_yaml(workdir / "callbacks.yaml", rng=rng, kill=kill, ema=ema)
    argv = [sys.executable, "-m", "cs224n_nn.cli", "train", "--config", str(ROOT / "experiments" / "sample.yaml"),
            "--config", str(extra), "--model.word_vectors", "none", "--model.hidden_dims", "[8]",
            "--data.features", "[word, casing]", "--trainer.max_epochs", str(EPOCHS),
            "--trainer.limit_train_batches", str(STEPS_PER_EPOCH), "--trainer.limit_val_batches", "1",
            "--data.eval_batch_size", "64", "--trainer.num_sanity_val_steps", "0",
            "--trainer.deterministic", "true", "--trainer.logger", "false",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--early_stopping.patience", "100", "--checkpoint.dirpath", "ckpt", "--demo_text", ""]
    if ckpt_path is not None:
        argv += ["--ckpt_path", str(ckpt_path)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
           "PYTHONWARNINGS": "default"}
    return subprocess.Popen(argv, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=300)
    return proc.returncode, out


def _run_all(*procs: subprocess.Popen) -> list[tuple[int, str]]:
    # Started together, waited for together: the two CPU cores overlap their start-up.
    return [_finish(p) for p in procs]


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _assert_same_tensors(a: dict, b: dict, what: str = "state_dict") -> None:
    assert a.keys() == b.keys(), what
    for key in a:
        assert torch.equal(a[key], b[key]), (what, key)


def _dev_table(out: str) -> list[str]:
    """The overall, LOC and PER rows of the dev scores a run prints at its end."""
    return [line for line in out.splitlines() if line.startswith(("overall", "LOC", "PER"))]


def _assert_same_training_state(a: dict, b: dict) -> None:
    assert a["global_step"] == b["global_step"] and a["epoch"] == b["epoch"]
    _assert_same_tensors(a["state_dict"], b["state_dict"])
    sa, sb = a["optimizer_states"][0]["state"], b["optimizer_states"][0]["state"]
    assert sa.keys() == sb.keys()
    for i in sa:
        for name in sa[i]:
            assert torch.equal(torch.as_tensor(sa[i][name]), torch.as_tensor(sb[i][name])), (i, name)


def _best_score(checkpoint: dict) -> torch.Tensor:
    # The forced best-by-dev-F1 ModelCheckpoint keeps the best val/f1 seen.
    (state,) = [v for k, v in checkpoint["callbacks"].items()
                if "val/f1" in k and k.startswith("BestAndLastCheckpoint")]
    return state["best_model_score"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    full, killed = root / "full", root / "killed"
    (full_rc, full_out), (killed_rc, killed_out) = _run_all(_start(full), _start(killed, kill=True))
    assert full_rc == 0, full_out
    assert killed_rc == -signal.SIGKILL, killed_out
    last = killed / "ckpt" / "last.ckpt"
    mid = killed / "steps" / f"step{KILL_AT}.ckpt"
    assert _load(last)["global_step"] == 2 * STEPS_PER_EPOCH  # written at the end of epoch 2, then killed
    assert _load(mid)["global_step"] == KILL_AT
    assert not (killed / "steps" / f"step{KILL_AT + 5}.ckpt").exists()
    # The exact resume continues in the killed run's own folder, as a user resumes: its --checkpoint.dirpath
    # is the same folder, so Lightning restores the best score (a run resumed into another folder starts
    # that bookkeeping afresh: docs/scaling.md). The other two resume from copies in folders of their own,
    # so that the files they start from cannot change under them while the first run rewrites its folder.
    saved = root / "saved"
    saved.mkdir()
    last, mid = Path(shutil.copy2(last, saved / "last.ckpt")), Path(shutil.copy2(mid, saved / mid.name))
    control, mid_resumed = root / "control", root / "mid"
    results = _run_all(_start(killed, ckpt_path=last), _start(control, rng=False, ckpt_path=last),
                       _start(mid_resumed, ckpt_path=mid))
    for rc, out in results:
        assert rc == 0, out
    return {"full": full, "resumed": killed, "control": control, "mid": mid_resumed, "mid_out": results[2][1]}


def test_resumed_run_ends_with_the_same_weights_optimizer_state_and_metrics(runs):
    full = _load(runs["full"] / "ckpt" / "last.ckpt")
    resumed = _load(runs["resumed"] / "ckpt" / "last.ckpt")
    assert full["global_step"] == EPOCHS * STEPS_PER_EPOCH
    _assert_same_training_state(full, resumed)
    assert torch.equal(_best_score(full), _best_score(resumed))
    # the dev metrics of the best epoch, as the final report prints them, are equal too
    assert torch.equal(_load(runs["full"] / "ckpt" / "best.ckpt")["state_dict"]["classifier.0.weight"],
                       _load(runs["resumed"] / "ckpt" / "best.ckpt")["state_dict"]["classifier.0.weight"])


def test_step_checkpoints_after_the_resume_point_match_too(runs):
    for step in (25, 30):
        _assert_same_training_state(_load(runs["full"] / "steps" / f"step{step}.ckpt"),
                                    _load(runs["resumed"] / "steps" / f"step{step}.ckpt"))


def test_without_the_rng_callback_resume_is_not_exact(runs):
    # Documents Lightning's default: the generators are not in the checkpoint,
    # so the shuffle of epoch 3 differs and so do the final weights.
    full = _load(runs["full"] / "ckpt" / "last.ckpt")
    control = _load(runs["control"] / "ckpt" / "last.ckpt")
    assert control["global_step"] == full["global_step"]
    assert not torch.equal(full["state_dict"]["classifier.0.weight"], control["state_dict"]["classifier.0.weight"])


def test_mid_epoch_resume_finishes_the_schedule_and_warns(runs):
    full = _load(runs["full"] / "ckpt" / "last.ckpt")
    mid = _load(runs["mid"] / "ckpt" / "last.ckpt")
    assert mid["global_step"] == full["global_step"] and mid["epoch"] == full["epoch"]
    assert "dataloader is not resumable" in runs["mid_out"].replace("\n", " ")
    assert sorted(p.name for p in (runs["mid"] / "steps").iterdir()) == ["step30.ckpt"]


def test_resume_with_averaged_weights_is_exact(tmp_path):
    # The shipped CoNLL config validates and checkpoints an exponential moving average of the weights
    # (Lightning's EMAWeightAveraging): a killed run resumed from its last checkpoint must end with the
    # same average, the same raw weights and optimizer state, and report the same dev scores.
    full, killed = tmp_path / "full", tmp_path / "killed"
    (full_rc, full_out), (killed_rc, killed_out) = _run_all(_start(full, ema=True),
                                                            _start(killed, ema=True, kill=True))
    assert full_rc == 0, full_out
    assert killed_rc == -signal.SIGKILL, killed_out
    last = killed / "ckpt" / "last.ckpt"
    assert _load(last)["global_step"] == 2 * STEPS_PER_EPOCH
    resumed_rc, resumed_out = _finish(_start(killed, ema=True, ckpt_path=Path(shutil.copy2(last, tmp_path / "l.ckpt"))))
    assert resumed_rc == 0, resumed_out
    for name in ("last.ckpt", "best.ckpt"):
        a, b = _load(full / "ckpt" / name), _load(killed / "ckpt" / name)
        _assert_same_training_state(a, b)  # state_dict: the averaged weights
        for part in ("current_model_state", "averaging_state"):
            _assert_same_tensors(a[part], b[part], f"{name} {part}")
    a = _load(full / "ckpt" / "last.ckpt")
    key = "classifier.0.weight"
    assert not torch.equal(a["state_dict"][key], a["current_model_state"][key])  # an average, not the last weights
    assert _dev_table(full_out) and _dev_table(full_out) == _dev_table(resumed_out)


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    import random

    from cs224n_nn.ner.callbacks import RNGStateCheckpoint

    callback = RNGStateCheckpoint()
    torch.manual_seed(3)
    random.seed(3)
    path = tmp_path / "rng.pt"
    torch.save(callback.state_dict(), path)
    expected = (torch.rand(5), random.random())
    torch.rand(7), random.random()  # move the generators on
    callback.load_state_dict(torch.load(path, weights_only=True))
    assert torch.equal(torch.rand(5), expected[0]) and random.random() == expected[1]


# -- a resumed run continues in its own folder and names the same best checkpoint (issue 12, item 2) ----------

SCORES = [0.9, 0.5, 0.7]  # the monitored score per epoch: epoch 0 is the best, the run is killed after epoch 1


def _start_in_run_folder(workdir: Path, *, kill: bool = False, ckpt_path: str | None = None) -> subprocess.Popen:
    """A run with the default loggers and checkpoint folder, selecting by a scripted score."""
    workdir.mkdir(parents=True, exist_ok=True)
    lines = ["trainer:", "  callbacks:", "    - class_path: cs224n_nn.ner.callbacks.RNGStateCheckpoint",
             "    - class_path: run_helpers.ScriptedScore", f"      init_args: {{scores: {SCORES}}}"]
    if kill:
        lines += ["    - class_path: test_resume.KillAtStep", f"      init_args: {{step: {2 * STEPS_PER_EPOCH}}}"]
    (workdir / "callbacks.yaml").write_text("\n".join(lines) + "\n")
    argv = [sys.executable, "-m", "cs224n_nn.cli", "train", "--config", "sample", "--config", "callbacks.yaml",
            "--model.word_vectors", "none", "--model.hidden_dims", "[8]", "--data.features", "[word, casing]",
            "--trainer.max_epochs", str(len(SCORES)), "--trainer.limit_train_batches", str(STEPS_PER_EPOCH),
            "--trainer.limit_val_batches", "1", "--data.eval_batch_size", "64",
            "--trainer.num_sanity_val_steps", "0", "--trainer.deterministic", "true",
            "--trainer.enable_progress_bar", "false", "--early_stopping.patience", "100",
            "--checkpoint.monitor", "test/score", "--demo_text", ""]
    if ckpt_path is not None:
        argv += ["--ckpt_path", ckpt_path]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    return subprocess.Popen(argv, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_resume_after_a_worse_epoch_keeps_the_folder_and_the_best_checkpoint(tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    (full_rc, full_out), (killed_rc, killed_out) = _run_all(_start_in_run_folder(full),
                                                            _start_in_run_folder(killed, kill=True))
    assert full_rc == 0, full_out
    assert killed_rc == -signal.SIGKILL, killed_out
    run = killed / "lightning_logs" / "version_0"
    # last.ckpt holds epoch 1 although epoch 1 was not the best (Lightning alone leaves it at epoch 0)
    assert _load(run / "checkpoints" / "last.ckpt")["global_step"] == 2 * STEPS_PER_EPOCH
    assert _load(run / "checkpoints" / "best.ckpt")["global_step"] == STEPS_PER_EPOCH
    resumed_rc, resumed_out = _finish(_start_in_run_folder(
        killed, ckpt_path="lightning_logs/version_0/checkpoints/last.ckpt"))
    assert resumed_rc == 0, resumed_out
    assert sorted(p.name for p in (killed / "lightning_logs").iterdir()) == ["version_0"]  # no version_1
    assert "dirpath has changed" not in resumed_out
    best_line = "best checkpoint: ./lightning_logs/version_0/checkpoints/best.ckpt"
    assert full_out.strip().splitlines()[-1] == best_line
    assert resumed_out.strip().splitlines()[-1] == best_line
    # the same dev scores reported for the same best weights
    assert _dev_table(full_out) and _dev_table(full_out) == _dev_table(resumed_out)
    for name in ("best.ckpt", "last.ckpt"):
        a = _load(full / "lightning_logs/version_0/checkpoints" / name)
        b = _load(run / "checkpoints" / name)
        _assert_same_training_state(a, b)
    # the epochs before the kill stay in metrics.csv, one row each
    with open(run / "metrics.csv", newline="") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == list(range(len(SCORES)))
