"""No data loss, atomic files, one-line errors and checked tag sets (issue 12, items 1, 3, 4, 5, 6).

In-process calls of :func:`cs224n_nn.cli.main` unless a real process is
needed (SIGKILL, exit status).  The checkpoint is a tiny model trained for
one step in this process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cs224n_nn import cli
from run_helpers import one_line, run, tiny_checkpoint
from cs224n_nn.errors import CheckpointError, DataFormatError

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model.word_vectors", "none", "--model.hidden_dims", "[4]", "--data.features", "[word, casing]",
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
        "--trainer.enable_progress_bar", "false", "--demo_text", ""]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
GOOD = "EU I-ORG\nrejects O\nGerman I-MISC\ncall O\n\nPeter I-PER\nBlackburn I-PER\n\n"


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt"), features=["word", "casing"])





# -- 1. predict never loses the user's files ------------------------------------------------


def test_predict_refuses_to_overwrite_its_input(in_tmp, capsys, ckpt):
    data = in_tmp / "in.conll"
    data.write_text(GOOD)
    (in_tmp / "link.conll").symlink_to(data)
    for output in ("in.conll", "./in.conll", "link.conll", str(data)):
        code, _, err = run(capsys, "predict", "--ckpt", str(ckpt), "--conll", "in.conll", "--output", output)
        assert code == 1
        one_line(err, "predict", f"--output {output}", "input")
        assert data.read_text() == GOOD
    code, _, err = run(capsys, "predict", "--ckpt", str(ckpt), "--conll", "link.conll", "--output", "in.conll")
    assert code == 1 and data.read_text() == GOOD


def test_a_failing_predict_leaves_the_existing_output_untouched(in_tmp, capsys, ckpt):
    # the bad line comes after more sentences than one batch, so some output was already produced
    (in_tmp / "in.conll").write_text(GOOD * 40 + "broken\n")
    (in_tmp / "out.conll").write_text("precious\n")
    code, _, err = run(capsys, "predict", "--ckpt", str(ckpt), "--conll", "in.conll", "--output", "out.conll",
                       "--batch-size", "4")
    one_line(err, "predict", "in.conll:321")
    assert code == 1 and (in_tmp / "out.conll").read_text() == "precious\n"
    assert sorted(p.name for p in in_tmp.iterdir()) == ["in.conll", "out.conll"]  # no temporary file left


def test_predict_replaces_the_output_only_when_complete(in_tmp, capsys, ckpt):
    (in_tmp / "in.conll").write_text(GOOD)
    (in_tmp / "out.conll").write_text("old\n")
    code, _, err = run(capsys, "predict", "--ckpt", str(ckpt), "--conll", "in.conll", "--output", "out.conll")
    assert code == 0, err
    lines = (in_tmp / "out.conll").read_text().splitlines()
    assert lines[0].split()[:2] == ["EU", "I-ORG"] and len(lines) == 8
    assert sorted(p.name for p in in_tmp.iterdir()) == ["in.conll", "out.conll"]
    code, _, err = run(capsys, "predict", "--ckpt", str(ckpt), "--conll", "in.conll", "--output", "nowhere/o.conll")
    assert code == 1
    one_line(err, "predict", "--output nowhere/o.conll", "does not exist")


# -- 3. atomic checkpoint writes ------------------------------------------------------------


def test_atomic_checkpoint_io_keeps_the_old_file_when_a_save_fails(tmp_path, monkeypatch):
    from cs224n_nn.ner.checkpoints import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    target = tmp_path / "best.ckpt"
    io.save_checkpoint({"w": torch.arange(3)}, target)
    before = target.read_bytes()

    def half_then_fail(obj, f):
        f.write(b"x" * 1000)
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"w": torch.arange(5)}, target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.ckpt"]


_KILL_DURING_SAVE = """
import os, signal, sys, torch
from cs224n_nn.ner.checkpoints import AtomicCheckpointIO
real_save = torch.save
def save_and_die(obj, f):
    f.write(b"partial")
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)
torch.save = save_and_die
AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(1000)}, sys.argv[1])
"""


def test_a_kill_during_a_checkpoint_write_leaves_the_old_file_and_the_next_save_cleans_up(tmp_path):
    from cs224n_nn.ner.checkpoints import AtomicCheckpointIO

    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"w": torch.ones(2)}, target)
    done = subprocess.run([sys.executable, "-c", _KILL_DURING_SAVE, str(target)], env=ENV, capture_output=True)
    assert done.returncode == -signal.SIGKILL
    assert torch.equal(torch.load(target, weights_only=True)["w"], torch.ones(2))
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "last.ckpt"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".last.ckpt.tmp-")
    AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(2)}, tmp_path / "best.ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.ckpt", "last.ckpt"]


def test_training_uses_the_atomic_checkpoint_io(in_tmp):
    from cs224n_nn.ner.checkpoints import AtomicCheckpointIO
    from cs224n_nn.ner.commands import _make_cli, _train

    cli_ = _make_cli(["--config", "sample", *TINY, "--trainer.logger", "false", "--checkpoint.dirpath", "ck"])
    assert _train(cli_) == 0
    assert isinstance(cli_.trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    assert sorted(p.name for p in (in_tmp / "ck").iterdir()) == ["best.ckpt", "last.ckpt"]


# -- 4. one-line errors, short usage, no empty run folder -----------------------------------


@pytest.mark.parametrize("argv, needles", [
    (["--ckpt_path", "missing.ckpt"], ["--ckpt_path missing.ckpt", "no such checkpoint"]),
    (["--ckpt_path", "text.ckpt"], ["--ckpt_path text.ckpt", "cannot be read"]),
    (["--ckpt_path", "foreign.ckpt"], ["--ckpt_path foreign.ckpt", "not a cs224n-nn NER checkpoint"]),
    (["--model.weight_decay", "-1"], ["model.weight_decay", "-1"]),
    (["--model.margin", "-1", "--model.loss", "max_margin"], ["model.margin", "-1"]),
    (["--model.margin", "0"], ["model.margin", "0"]),
])
def test_train_value_errors_are_one_line_before_the_model_summary(in_tmp, capsys, argv, needles):
    (in_tmp / "text.ckpt").write_text("not a checkpoint\n")
    torch.save({"state_dict": {}}, in_tmp / "foreign.ckpt")
    code, out, err = run(capsys, "train", "--config", "sample", *TINY, *argv)
    assert code == 1
    one_line(err, "train", *needles)
    assert "Params" not in out + err  # no model summary came first
    assert not (in_tmp / "lightning_logs").exists() or not list((in_tmp / "lightning_logs").iterdir())


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_gpu_accelerator_without_a_gpu_is_one_line(in_tmp, capsys):
    code, _, err = run(capsys, "train", "--config", "sample", *TINY, "--trainer.accelerator", "gpu")
    assert code == 1
    one_line(err, "train", "--trainer.accelerator")


def test_all_o_training_tags_are_one_line(in_tmp, capsys):
    (in_tmp / "o.conll").write_text("a O\nb O\n\nc O\n")
    code, _, err = run(capsys, "train", "--config", "sample", *TINY, "--data.train_path", "o.conll")
    assert code == 1
    one_line(err, "train", "o.conll", "every tag is O")


@pytest.mark.parametrize("argv, needle", [
    (["--trainer.max_epoch", "2"], "--trainer.max_epoch"),  # abbreviated: refused, not expanded
    (["--model.hidden_dim", "[3]"], "--model.hidden_dim"),
    (["--trainer.max_epochs", "many"], "trainer.max_epochs"),
])
def test_parse_errors_exit_2_with_the_error_first_and_a_short_usage(in_tmp, capsys, argv, needle):
    code, _, err = run(capsys, "train", "--config", "sample", *TINY, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[0].startswith("cs224n-nn train: error: ") and needle in lines[0], err
    assert len(lines) <= 4 and lines[1].startswith("usage: cs224n-nn train")


def test_a_run_that_fails_leaves_no_empty_version_folder(in_tmp, capsys):
    (in_tmp / "dev.conll").write_text("Paris I-LOC\nis O\n\nRome B-XYZ\n")
    (in_tmp / "lightning_logs" / "version_0").mkdir(parents=True)  # an earlier run's folder stays
    code, _, err = run(capsys, "train", "--config", "sample", *TINY, "--data.val_path", "dev.conll")
    assert code == 1
    # the bad tag by file and line, as written in the file
    one_line(err, "train", "dev.conll:4:", "'B-XYZ'")
    assert sorted(p.name for p in (in_tmp / "lightning_logs").iterdir()) == ["version_0"]


# -- 5. tag sets, YAML keys, checkpoints that lie ----------------------------------------------


def _with_typo(path: Path, tag: str, repeat: int = 1) -> Path:
    sample = (ROOT / "cs224n_nn/data/sample_train.conll").read_text()
    path.write_text(sample.rstrip("\n") + "\n\n" + "".join(f"Foo NNP I-NP {tag}\n" for _ in range(repeat)))
    return path


def test_entity_types_differing_only_in_case_name_the_line(in_tmp, capsys):
    train = _with_typo(in_tmp / "typo.conll", "I-per", repeat=3)
    line = len(train.read_text().splitlines()) - 2  # the first of the three typo lines
    code, _, err = run(capsys, "train", "--config", "sample", *TINY, "--data.train_path", "typo.conll")
    assert code == 1
    one_line(err, "train", f"typo.conll:{line}:", "'I-per'", "'PER'", "case", "data.allow_rare_types")


def test_rare_entity_type_is_an_error_unless_allowed(in_tmp, capsys):
    train = _with_typo(in_tmp / "rare.conll", "I-DATE", repeat=2)
    line = len(train.read_text().splitlines()) - 1
    code, _, err = run(capsys, "train", "--config", "sample", *TINY, "--data.train_path", "rare.conll")
    assert code == 1
    one_line(err, "train", f"rare.conll:{line}:", "'I-DATE'", "2 training token")
    from cs224n_nn.ner.datamodule import CoNLLDataModule

    data = CoNLLDataModule(train_path=str(train), allow_rare_types=True)
    assert data.encoder.entity_types == ["DATE", "LOC", "MISC", "ORG", "PER"]
    with pytest.raises(DataFormatError, match="rare.conll"):
        _ = CoNLLDataModule(train_path=str(train)).encoder


def test_duplicated_yaml_keys_are_an_error_naming_file_line_and_key(in_tmp, capsys):
    (in_tmp / "dup.yaml").write_text("model:\n  lr: 0.1\n  hidden_dims: [4]\n  lr: 0.2\n")
    code, _, err = run(capsys, "train", "--config", "sample", "--config", "dup.yaml", *TINY)
    assert code == 1
    one_line(err, "train", "--config dup.yaml:4", "'lr'", "twice")


def test_config_keywords_and_paths_name_the_same_shipped_files(in_tmp):
    import yaml

    from cs224n_nn.configs import CONFIGS, resolve_config

    assert set(CONFIGS) == {"sample", "conll2003"}
    for name in CONFIGS:
        assert Path(resolve_config(name)).is_file()
        assert (ROOT / "experiments" / f"{name}.yaml").samefile(resolve_config(name))  # one file, two names
    assert resolve_config("my.yaml") == "my.yaml"
    from cs224n_nn.ner.commands import _resolve_configs

    assert _resolve_configs(["-c", "sample", "--config=conll2003", "--demo_text", "sample"]) == [
        "-c", resolve_config("sample"), "--config=" + resolve_config("conll2003"), "--demo_text", "sample"]
    conll = yaml.safe_load(Path(resolve_config("conll2003")).read_text())
    # relative to the working directory, as before: the repository root reads ../shared/data/conll2003
    from cs224n_nn.ner.datamodule import resolve_data_path

    assert resolve_data_path(conll["data"]["train_path"], "train") == Path("../shared/data/conll2003/eng.train")
    assert (ROOT / conll["data"]["val_path"]).resolve() == (ROOT.parent / "shared/data/conll2003/eng.testa").resolve()


def test_bench_and_experiment_outside_a_checkout_are_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cli, "SOURCE_ROOT", tmp_path)  # what a plain `pip install .` sees
    for name in ("bench", "experiment"):
        code, _, err = run(capsys, name, "--help")
        assert code == 2
        assert err.count("\n") == 1 and "source tree" in err and name in err
    code, out, _ = run(capsys, "--help")
    assert "source tree only" in out


def _crafted(tmp_path: Path, ckpt: Path, **changes) -> Path:
    checkpoint = torch.load(ckpt, weights_only=True)
    checkpoint["hyper_parameters"].update(changes)
    path = tmp_path / "crafted.ckpt"
    torch.save(checkpoint, path)
    return path


def test_a_checkpoint_asking_for_huge_layers_fails_before_allocating(tmp_path, ckpt, monkeypatch):
    import cs224n_nn.ner.network as network_module
    from cs224n_nn.ner.model import load_window_ner

    devices = []
    real_init = network_module.init_module_

    def recording_init(module, *args, **kwargs):
        devices.extend(p.device.type for p in module.parameters())
        return real_init(module, *args, **kwargs)

    monkeypatch.setattr(network_module, "init_module_", recording_init)
    path = _crafted(tmp_path, ckpt, hidden_dims=[2_000_000])
    with pytest.raises(CheckpointError, match=r"crafted\.ckpt: the weights do not fit.*2000000"):
        load_window_ner(path)
    assert devices and set(devices) == {"meta"}  # the huge layer existed only on the meta device


def test_non_finite_weights_load_with_a_warning(tmp_path, ckpt):
    from cs224n_nn.ner.model import load_window_ner

    checkpoint = torch.load(ckpt, weights_only=True)
    checkpoint["state_dict"]["classifier.0.weight"][0, 0] = float("nan")
    path = tmp_path / "nan.ckpt"
    torch.save(checkpoint, path)
    with pytest.warns(RuntimeWarning, match=r"nan\.ckpt: 1 stored weight tensor.*classifier\.0\.weight"):
        load_window_ner(path)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_window_ner(ckpt)  # a clean checkpoint: no warning
    # at the command line: one line, like the errors
    done = subprocess.run([sys.executable, "-m", "cs224n_nn", "predict", "--ckpt", str(path), "--text", "Paris"],
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0
    assert done.stderr.strip().splitlines() == [
        f"cs224n-nn predict: warning: {path}: 1 stored weight tensor(s) hold NaN or inf (classifier.0.weight); "
        "the predictions will be meaningless"]
