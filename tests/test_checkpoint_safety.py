"""Safe checkpoints (issue 7, item 3).

Everything a real ``cs224n-nn train`` run saves loads with
``torch.load(..., weights_only=True)``; a checkpoint that is truncated,
corrupted, foreign or carries code makes ``evaluate`` and ``predict`` stop with
one line naming the file (exit status 1), never a traceback, and never runs
the code.
"""

from __future__ import annotations

import os
import pickle
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cs224n_nn.cli import main
from cs224n_nn.errors import CheckpointError
from cs224n_nn.ner.model import load_window_ner

ROOT = Path(__file__).resolve().parents[1]
MARKER_NAME = "pwned.txt"


def train_tiny(workdir: Path, *extra: str) -> Path:
    """A real training run (1 short epoch, tiny model); returns its checkpoint folder."""
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "cs224n_nn.cli", "train", "--config", str(ROOT / "experiments" / "sample.yaml"),
            "--model.word_vectors", "none", "--model.hidden_dims", "[6]", "--data.features", "[word, casing]",
            "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "5", "--trainer.enable_progress_bar", "false",
            "--demo_text", "", *extra]  # sample.yaml's callbacks include RNGStateCheckpoint
    done = subprocess.run(argv, cwd=workdir, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stdout + done.stderr
    last_line = done.stdout.strip().splitlines()[-1]
    assert last_line.startswith("best checkpoint: "), done.stdout
    return (workdir / last_line.removeprefix("best checkpoint: ")).parent


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("train")).parent


@pytest.fixture(scope="module")
def best(run_dir):
    return run_dir / "checkpoints" / "best.ckpt"


def test_everything_the_run_saved_loads_with_weights_only(run_dir):
    checkpoints = sorted(run_dir.rglob("*.ckpt"))
    assert {p.name for p in checkpoints} == {"best.ckpt", "last.ckpt"}
    for path in checkpoints:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        # what prediction needs is in the file: weights, vocabularies and tags, hyperparameters
        assert {"state_dict", "hyper_parameters", "cs224n_nn", "optimizer_states", "callbacks"} <= set(checkpoint)
        assert "RNGStateCheckpoint" in checkpoint["callbacks"]
        model = load_window_ner(path)
        for key, value in checkpoint["state_dict"].items():
            assert torch.equal(model.state_dict()[key], value), key
    # the other files a run writes are text, TensorBoard events and the curves PNG: nothing that runs code
    others = [p for p in run_dir.rglob("*") if p.is_file() and p.suffix != ".ckpt"]
    text_like = [p.suffix in (".yaml", ".csv", ".png") or p.name.startswith("events.out.tfevents") for p in others]
    assert others and all(text_like), others


# -- hostile checkpoint files ---------------------------------------------------


class Payload:
    """Unpickling this calls ``open(marker, 'w')``: code a stranger's file would run."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


class Custom:
    def __init__(self):
        self.weights = [1.0, 2.0]


def _hostile_files(tmp: Path, best: Path) -> dict[str, Path]:
    real = best.read_bytes()
    files = {
        "truncated": real[: len(real) // 2],
        "truncated_tail": real[:-40],
        "empty": b"",
        "random": random.Random(0).randbytes(4096),
        "text": b"this is not a checkpoint\n",
        "zip_bitflip": real[:200] + bytes(b ^ 0xFF for b in real[200:400]) + real[400:],
    }
    paths = {}
    for name, data in files.items():
        paths[name] = tmp / f"{name}.ckpt"
        paths[name].write_bytes(data)
    paths["foreign_dict"] = tmp / "foreign_dict.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "epoch": 3}, paths["foreign_dict"])
    paths["foreign_tensor"] = tmp / "foreign_tensor.ckpt"
    torch.save(torch.ones(3), paths["foreign_tensor"])
    paths["custom_class"] = tmp / "custom_class.ckpt"
    torch.save({"cs224n_nn": Custom()}, paths["custom_class"])
    paths["plain_pickle"] = tmp / "plain_pickle.ckpt"
    paths["plain_pickle"].write_bytes(pickle.dumps({"state_dict": Custom()}))
    paths["code"] = tmp / "code.ckpt"
    torch.save({"cs224n_nn": Payload(str(tmp / MARKER_NAME))}, paths["code"])
    checkpoint = torch.load(best, weights_only=True)
    checkpoint["cs224n_nn"]["format"] = 99
    paths["future_format"] = tmp / "future_format.ckpt"
    torch.save(checkpoint, paths["future_format"])
    checkpoint = torch.load(best, weights_only=True)
    checkpoint["state_dict"].pop("classifier.0.weight")
    paths["missing_weight"] = tmp / "missing_weight.ckpt"
    torch.save(checkpoint, paths["missing_weight"])
    paths["folder"] = tmp / "folder.ckpt"
    paths["folder"].mkdir()
    paths["missing"] = tmp / "missing.ckpt"
    return paths


HOSTILE = ["truncated", "truncated_tail", "empty", "random", "text", "zip_bitflip", "foreign_dict", "foreign_tensor",
           "custom_class", "plain_pickle", "code", "future_format", "missing_weight", "folder", "missing"]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, best):
    return _hostile_files(tmp_path_factory.mktemp("hostile"), best)


@pytest.mark.parametrize("kind", HOSTILE)
@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_bad_checkpoint_is_one_clear_line_and_exit_1(hostile, kind, command, capsys):
    path = hostile[kind]
    extra = ["--data", "sample"] if command == "evaluate" else ["--text", "Museums in Paris are amazing"]
    assert main([command, "--ckpt", str(path), *extra]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert err.startswith(f"cs224n-nn {command}: error: {path}: "), err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (path.parent / MARKER_NAME).exists(), "unpickling ran code from the checkpoint"


def test_load_window_ner_raises_checkpoint_error_for_each(hostile):
    for kind in HOSTILE:
        with pytest.raises(CheckpointError, match=str(hostile[kind])):
            load_window_ner(hostile[kind])
    assert not (hostile["code"].parent / MARKER_NAME).exists()


def test_the_code_payload_really_runs_without_weights_only(hostile, tmp_path):
    # Proves the hostile file is a real threat, so the test above can fail.
    marker = hostile["code"].parent / MARKER_NAME
    torch.load(hostile["code"], weights_only=False)
    assert marker.exists()
    marker.unlink()


def test_subprocess_exit_status_and_no_traceback(hostile):
    done = subprocess.run([sys.executable, "-m", "cs224n_nn.cli", "evaluate", "--ckpt", str(hostile["truncated"]),
                           "--data", "sample"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"cs224n-nn evaluate: error: {hostile['truncated']}: ")


def test_good_checkpoint_still_evaluates(best, capsys):
    assert main(["evaluate", "--ckpt", str(best), "--data", "sample"]) == 0
    out = capsys.readouterr().out
    assert "overall" in out and str(best) in out

