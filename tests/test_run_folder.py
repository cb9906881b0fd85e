"""One run, one folder, and what `cs224n-nn train` leaves in it (issue 12, items 2, 5, 7, 8).

One real ``cs224n-nn train`` process (tiny model, the packaged sample
corpus, 3 epochs, the default loggers) runs once for the module; the tests
read its output and its ``lightning_logs/version_0``.
"""

from __future__ import annotations

import csv
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 3
TINY = ["--model.word_vectors", "none", "--model.hidden_dims", "[8]", "--data.features", "[word, casing]",
        "--trainer.max_epochs", str(EPOCHS), "--trainer.limit_train_batches", "8", "--trainer.limit_val_batches", "2",
        "--data.eval_batch_size", "64", "--trainer.enable_progress_bar", "false", "--early_stopping.patience", "100"]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}


def cs224n_nn(*argv: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cs224n_nn", *argv], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=600, **kwargs)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("run")
    done = cs224n_nn("train", "--config", "sample", *TINY, cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    return work, done.stdout, done.stderr, work / "lightning_logs" / "version_0"


def test_everything_of_the_run_is_in_one_version_folder(run):
    work, out, _, folder = run
    assert sorted(p.name for p in (work / "lightning_logs").iterdir()) == ["version_0"]
    names = {p.name for p in folder.iterdir()}
    assert {"metrics.csv", "hparams.yaml", "config.yaml", "checkpoints", "curves.png"} <= names
    assert out.strip().splitlines()[-1] == "best checkpoint: ./lightning_logs/version_0/checkpoints/best.ckpt"


def test_last_checkpoint_holds_the_final_epoch(run):
    _, _, _, folder = run
    last = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == EPOCHS - 1 and last["global_step"] == EPOCHS * 8


def test_metrics_csv_has_one_full_row_per_epoch(run):
    _, _, _, folder = run
    with open(folder / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == list(range(EPOCHS))
    for row in rows:
        for key in ("train/loss_epoch", "val/f1", "val/precision", "val/recall", "val/f1_PER"):
            assert row[key] != "", (key, row)
    # only the step-level train/loss can be blank (an epoch shorter than log_every_n_steps logs no step)
    assert {k for r in rows for k, v in r.items() if v == ""} <= {"train/loss"}


def test_hparams_have_no_instantiator(run):
    _, _, _, folder = run
    text = (folder / "hparams.yaml").read_text()
    assert "_instantiator" not in text and "hidden_dims" in text


def test_output_is_quiet_and_names_the_entity_types(run):
    _, out, err, _ = run
    both = out + err
    assert "Tip:" not in both and "litlogger" not in both
    assert "LeafSpec" not in both and "DeprecationWarning" not in both
    assert "entity types in " in out and "LOC, MISC, ORG, PER" in out


def test_curves_png_is_drawn_and_plot_redraws_it(run, tmp_path):
    _, out, _, folder = run
    png = folder / "curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"training curves: {Path('lightning_logs/version_0/curves.png')}" in out
    again = tmp_path / "again.png"
    done = cs224n_nn("plot", str(folder), "--output", str(again), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert again.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    done = cs224n_nn("plot", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 1 and "no metrics.csv" in done.stderr and "Traceback" not in done.stderr


def test_two_default_loggers_share_one_version_folder(tmp_path, monkeypatch):
    # What happens with TensorBoard installed: two loggers, each of which would pick its own version_N.
    from cs224n_nn.ner.commands import _make_cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CS224N_NN_RUN_VERSION", "")  # restored afterwards; empty: pick the next free version
    (tmp_path / "lightning_logs" / "version_3").mkdir(parents=True)
    config = tmp_path / "loggers.yaml"
    config.write_text("trainer:\n  logger:\n"
                      "    - class_path: cs224n_nn.ner.loggers.EpochCSVLogger\n      init_args: {save_dir: .}\n"
                      "    - class_path: pytorch_lightning.loggers.CSVLogger\n      init_args: {save_dir: .}\n")
    cli = _make_cli(["--config", "sample", "--config", str(config), *TINY])
    dirs = {os.path.normpath(lg.log_dir) for lg in cli.trainer.loggers}
    assert dirs == {os.path.normpath("lightning_logs/version_4")}


def test_ctrl_c_ends_with_the_last_checkpoint_path(tmp_path):
    (tmp_path / "cb.yaml").write_text("trainer:\n  callbacks:\n    - class_path: run_helpers.SignalAtStep\n"
                                      f"      init_args: {{step: 12, signum: {int(signal.SIGINT)}}}\n")
    # The child gets SIGINT's default disposition, as in a terminal: a test run started in the
    # background of a non-interactive shell ignores SIGINT, and a child would inherit that.
    done = cs224n_nn("train", "--config", "sample", "--config", "cb.yaml", *TINY, cwd=tmp_path,
                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert done.returncode == 130, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert "last checkpoint: ./lightning_logs/version_0/checkpoints/last.ckpt" in done.stderr
    assert torch.load(tmp_path / "lightning_logs/version_0/checkpoints/last.ckpt", weights_only=True)["epoch"] == 0


def test_predict_on_stdin_answers_each_line_as_it_arrives(run):
    _, _, _, folder = run
    proc = subprocess.Popen([sys.executable, "-m", "cs224n_nn", "predict", "--ckpt",
                             str(folder / "checkpoints" / "best.ckpt")], env=ENV, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)
    try:
        proc.stdin.write(b"Museums in Paris are amazing\n")
        answer = b""
        while b"entities:" not in answer or not answer.endswith(b"\n"):
            # a guard against a hang, not a timing assertion: the answer must come while stdin stays open
            ready, _, _ = select.select([proc.stdout], [], [], 300)
            assert ready, f"no answer while stdin stays open; got {answer!r}"
            chunk = os.read(proc.stdout.fileno(), 4096)
            assert chunk, f"predict ended early; got {answer!r}"
            answer += chunk
        lines = answer.decode().splitlines()
        assert lines[0].split()[0] == "Museums" and len(lines) == 6 and lines[-1].startswith("entities:")
    finally:
        proc.stdin.close()
        proc.wait(timeout=120)
    assert proc.returncode == 0


def test_version_python_dash_m_and_license():
    from cs224n_nn import __version__

    done = cs224n_nn("--version", cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip() == f"cs224n-nn {__version__}"
    done = cs224n_nn("--help", cwd=ROOT)
    assert done.returncode == 0 and "usage: cs224n-nn COMMAND" in done.stdout and "plot" in done.stdout
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 the cs224n-nn developers" in text
    assert 'license = { text = "MIT" }' in (ROOT / "pyproject.toml").read_text()


def test_runs_started_together_in_one_folder_get_a_version_folder_each(tmp_path, monkeypatch):
    # Two trainings started at the same moment (a seed sweep) both list the folder before
    # either has written anything: the reservation, not the listing, decides.
    from cs224n_nn.ner import commands

    monkeypatch.setattr(commands, "_next_version", lambda root: 0)  # both saw an empty folder
    root = str(tmp_path / "lightning_logs")
    first, second = commands._reserve_version(root), commands._reserve_version(root)
    assert (first, second) == ("version_0", "version_1")
    assert sorted(os.listdir(root)) == ["version_0", "version_1"]


def test_a_reserved_folder_of_a_failed_run_is_removed(tmp_path, monkeypatch):
    from cs224n_nn.ner.commands import _make_cli, _remove_empty_run

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CS224N_NN_RUN_VERSION", "")
    cli = _make_cli(["--config", "sample", *TINY])
    assert cli.run_dir == os.path.join(".", "lightning_logs", "version_0") and os.path.isdir(cli.run_dir)
    assert not cli.run_dir_existed  # reserved by this run, so it is this run's to clean up
    _remove_empty_run(cli)
    assert not os.path.exists(cli.run_dir)
