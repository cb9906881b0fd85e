"""`cs224n-nn train | evaluate | predict` end to end, and their handling of bad input.

One tiny model is trained once for the module (a few steps on the packaged
sample corpus, no GloVe, one hidden layer of 8 units); every other test uses
its checkpoint.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cs224n_nn import cli
from cs224n_nn.ner.conll import read_conll
from cs224n_nn.ner.datamodule import SAMPLE_FILES

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "6", "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false", "--trainer.log_every_n_steps", "2", "--data.batch_size", "64",
    "--model.word_vectors", "none", "--model.hidden_dims", "[8]", "--model.lr", "0.01",
]


def run(argv, stdin: str | None = None):
    """Run the command in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(list(argv))
            except SystemExit as e:  # what `python -m cs224n_nn.cli` would exit with
                code = e.code
    finally:
        sys.stdin = old_stdin
    return code, out.getvalue(), err.getvalue()


def assert_clean_failure(code, err, *patterns, status=1):
    assert code == status, err
    assert "Traceback" not in err
    for pattern in patterns:
        assert re.search(pattern, err), f"{pattern!r} not in {err!r}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train once on the sample corpus; returns (best checkpoint, stdout, work dir)."""
    work = tmp_path_factory.mktemp("ner_run")
    old = os.getcwd()
    os.chdir(work)
    try:
        code, out, err = run(["train", "--config", str(ROOT / "experiments" / "sample.yaml"), *TINY])
    finally:
        os.chdir(old)
    assert code == 0, err[-3000:]
    last = out.strip().splitlines()[-1]
    assert last.startswith("best checkpoint: "), out[-2000:]
    path = Path(last[len("best checkpoint: "):])
    return (path if path.is_absolute() else work / path), out, work


@pytest.fixture(autouse=True)
def _work_in_tmp(tmp_path, monkeypatch):
    # A train command that fails after the Trainer exists may already have made
    # lightning_logs/version_N: keep that out of the repository.
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def corpus(tmp_path):
    """Write a small CoNLL file (bytes or text) and return its path."""
    def write(name, content):
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        return str(path)
    return write


# -- the happy path -------------------------------------------------------------


def test_train_prints_dev_scores_tags_the_demo_and_names_the_checkpoint(trained):
    ckpt, out, work = trained
    assert ckpt.is_file() and ckpt.name == "best.ckpt"
    assert (ckpt.parent / "last.ckpt").is_file()
    assert re.search(r"^overall\s+\d\.\d{4}\s+\d\.\d{4}\s+\d\.\d{4}$", out, re.M)
    for type_ in ("LOC", "MISC", "ORG", "PER"):
        assert re.search(rf"^{type_}\s+\d\.\d{{4}}", out, re.M)
    assert re.search(r"^Museums\s+\S+$", out, re.M) and re.search(r"^Paris\s+\S+$", out, re.M)
    assert "entities: " in out
    logs = ckpt.parent.parent
    assert (logs / "metrics.csv").is_file() and (logs / "config.yaml").is_file()
    header = (logs / "metrics.csv").read_text().splitlines()[0]
    assert "val/f1" in header and "val/accuracy" in header and "train/loss" in header
    confusion = (logs / "val_confusion.csv").read_text().splitlines()
    assert confusion[0].startswith("gold \\ predicted,O,") and len(confusion) == len(confusion[0].split(","))


def test_checkpoint_is_safe_and_self_contained(trained):
    ckpt, _, _ = trained
    data = torch.load(ckpt, weights_only=True)  # no pickled code anywhere
    assert "word" in data["cs224n_nn"]["encoder"]["features"]
    assert data["hyper_parameters"]["hidden_dims"] == [8]


def test_evaluate_reproduces_the_dev_scores_of_train(trained, tmp_path):
    ckpt, train_out, _ = trained
    code, out, err = run(["evaluate", "--ckpt", str(ckpt), "--data", str(SAMPLE_FILES["val"])])
    assert code == 0, err
    assert list(tmp_path.iterdir()) == []  # evaluating leaves no files behind
    overall = re.search(r"^overall.*$", out, re.M).group(0)
    assert overall == re.search(r"^overall.*$", train_out, re.M).group(0)
    assert re.search(r"^PER\s+\d\.\d{4}\s+\d\.\d{4}\s+\d\.\d{4}$", out, re.M)


def test_predict_text_and_stdin(trained):
    ckpt, _, _ = trained
    code, out, err = run(["predict", "--ckpt", str(ckpt), "--text", "Museums in Paris are amazing."])
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[:6]] == ["Museums", "in", "Paris", "are", "amazing", "."]
    assert lines[-1].startswith("entities: ")
    code, out, err = run(["predict", "--ckpt", str(ckpt)], stdin="John lives in Berlin\nThe EU met\n")
    assert code == 0, err
    blocks = out.strip().split("\n\n")
    assert len(blocks) == 2 and blocks[1].splitlines()[1].split()[0] == "EU"


def test_predict_conll_writes_token_gold_pred(trained, tmp_path):
    ckpt, _, _ = trained
    output = tmp_path / "pred.conll"
    code, _, err = run(["predict", "--ckpt", str(ckpt), "--conll", "sample", "--output", str(output),
                        "--batch-size", "7"])
    assert code == 0, err
    source = read_conll(SAMPLE_FILES["test"])
    written = output.read_text(encoding="utf-8")
    assert written.count("\n\n") == len(source)
    rows = [line.split(" ") for line in written.splitlines() if line]
    assert len(rows) == sum(len(s) for s in source) and all(len(r) == 3 for r in rows)
    assert [r[0] for r in rows] == [t for s in source for t in s.tokens]
    assert [r[1] for r in rows] == [t for s in source for t in s.tags]


def test_python_dash_m_runs_the_same_command(trained):
    ckpt, _, _ = trained
    # One subprocess (importing torch and Lightning is slow): the module entry point, its output and exit code.
    done = subprocess.run([sys.executable, "-m", "cs224n_nn.cli", "predict", "--ckpt", str(ckpt), "--text", "Paris"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].split()[0] == "Paris"
    assert done.stdout.splitlines()[-1].startswith("entities: ")


# -- bad input ---------------------------------------------------------------------


def test_malformed_conll_line_names_file_and_line(trained, corpus):
    ckpt, _, _ = trained
    bad = corpus("bad.conll", "EU NNP I-NP I-ORG\nrejects VBZ I-VP\n")
    code, _, err = run(["evaluate", "--ckpt", str(ckpt), "--data", bad])
    assert_clean_failure(code, err, r"bad\.conll:2")
    code, _, err = run(["train", "--config", str(ROOT / "experiments/sample.yaml"), *TINY, "--data.train_path", bad])
    assert_clean_failure(code, err, r"bad\.conll:2")


def test_unknown_tag_or_scheme(trained, corpus):
    ckpt, _, _ = trained
    bad = corpus("tags.conll", "EU X-ORG\n")
    code, _, err = run(["evaluate", "--ckpt", str(ckpt), "--data", bad])
    assert_clean_failure(code, err, r"tags\.conll:1", "X-ORG")
    code, _, err = run(["train", "--config", str(ROOT / "experiments/sample.yaml"), *TINY,
                        "--data.tag_scheme", "BILOU"])
    assert_clean_failure(code, err, "data.tag_scheme", "BILOU", "IOB1, IOB2, IOBES")


def test_non_utf8_empty_and_missing_files(trained, corpus, tmp_path):
    ckpt, _, _ = trained
    latin = corpus("latin.conll", "Paris I-LOC\nK\xf6ln I-LOC\n".encode("latin-1"))
    empty = corpus("empty.conll", "")
    for path, pattern in ((latin, r"latin\.conll:2"), (empty, r"empty\.conll"),
                          (str(tmp_path / "nope.conll"), r"nope\.conll")):
        code, _, err = run(["evaluate", "--ckpt", str(ckpt), "--data", path])
        assert_clean_failure(code, err, pattern)
        code, _, err = run(["predict", "--ckpt", str(ckpt), "--conll", path, "--output", str(tmp_path / "o.conll")])
        assert_clean_failure(code, err, pattern)
    code, _, err = run(["train", "--config", str(ROOT / "experiments/sample.yaml"), *TINY,
                        "--data.val_path", str(tmp_path / "nope.conll")])
    assert_clean_failure(code, err, r"nope\.conll")


@pytest.mark.parametrize(
    "option, value",
    [("model.activation", "swish"), ("model.loss", "hinge"), ("model.optimizer", "lbfgs")],
)
def test_config_with_unknown_names(tmp_path, option, value):
    config = tmp_path / "bad.yaml"
    section, key = option.split(".")
    config.write_text(f"{section}:\n  word_vectors: none\n  {key}: {value}\n")
    code, _, err = run(["train", "--config", str(config), *TINY[:10]])
    assert_clean_failure(code, err, f"{option}: unknown name '{value}'; choose one of")


def test_parser_errors_exit_2_without_traceback(tmp_path):
    code, _, err = run(["train", "--config", str(ROOT / "experiments/sample.yaml"), "--model.no_such_key", "3"])
    assert_clean_failure(code, err, "no_such_key", status=2)
    code, _, err = run(["train", "--config", str(tmp_path / "missing.yaml")])
    assert_clean_failure(code, err, "missing.yaml", status=2)
    code, _, err = run(["evaluate", "--data", "sample"])
    assert_clean_failure(code, err, "--ckpt", status=2)


def test_foreign_and_truncated_checkpoints(trained, tmp_path):
    ckpt, _, _ = trained
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"model": torch.zeros(2)}, foreign)
    for path in (truncated, foreign):
        code, _, err = run(["evaluate", "--ckpt", str(path), "--data", "sample"])
        assert_clean_failure(code, err, re.escape(path.name))
        code, _, err = run(["predict", "--ckpt", str(path), "--text", "Paris"])
        assert_clean_failure(code, err, re.escape(path.name))
    code, _, err = run(["evaluate", "--ckpt", str(tmp_path / "nowhere.ckpt"), "--data", "sample"])
    assert_clean_failure(code, err, "nowhere.ckpt: no such checkpoint file")


def test_resume_from_last_checkpoint(trained):
    ckpt, _, work = trained
    last = ckpt.parent / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 12  # 2 epochs x 6 batches
    old = os.getcwd()
    os.chdir(work)
    try:
        code, out, err = run(["train", "--config", str(ROOT / "experiments" / "sample.yaml"), *TINY,
                              "--trainer.max_epochs", "3", "--ckpt_path", str(last), "--demo_text", ""])
    finally:
        os.chdir(old)
    assert code == 0, err[-2000:]
    # the run went on from step 12 to the end of epoch 3 instead of starting over
    assert "trained 3 epoch(s), 18 steps" in out
    assert "Museums" not in out  # an empty demo text is skipped
