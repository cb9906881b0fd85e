"""The GPU check's every step, run as its CPU dry run (no GPU on the development machines)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import gpu_check

ROOT = Path(__file__).resolve().parents[1]


def test_dry_run_on_cpu_reports_every_step(tmp_path):
    out = tmp_path / "gpu_check.md"
    assert gpu_check.main(["--device", "cpu", "--tiny", "--skip", "tests,train", "--output", str(out)]) == 0
    report = out.read_text()
    for heading in ("activations, forward + backward", "affine and dense layer", "optimizer step",
                    "NER training pass"):
        assert f"## {heading}" in report
    assert "FAILED" not in report
    assert "dry run: no GPU figures" in report
    # one row per activation and per optimizer flavour, each with a finite ratio
    rows = [line for line in report.splitlines() if line.startswith("| ") and "---" not in line
            and not line.startswith("| piece")]
    assert len(rows) >= 6 + 1 + 6 + 1
    for row in rows:
        ratio = float(row.split("|")[6])
        assert 0 < ratio < 1e3


def test_a_failing_step_is_reported_and_the_others_still_run(tmp_path, monkeypatch):
    def broken(*args):
        raise RuntimeError("no such kernel")

    monkeypatch.setattr(gpu_check, "optimizer_rows", broken)
    out = tmp_path / "gpu_check.md"
    assert gpu_check.main(["--device", "cpu", "--tiny", "--skip", "tests,train", "--output", str(out)]) == 1
    report = out.read_text()
    assert "RuntimeError: no such kernel" in report
    assert "## NER training pass" in report and report.count("FAILED") == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_is_one_line_and_exit_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--output", str(tmp_path / "x.md")],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "no CUDA device" in done.stderr
    assert not (tmp_path / "x.md").exists()
