"""Every experiment runs in its quick configuration and writes its figure and table.

The quick runs take a few steps each (the NER ones use the first 40
training sentences and random word vectors), so the values are not the
experiments' results; where a quick run still checks a claim exactly (our
derivatives against torch's, the order of the finite differences) the test
reads it from the table.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from cs224n_nn import cli  # noqa: E402
from experiments import run as runner  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def table_rows(path: Path) -> list[list[str]]:
    """The body rows of the first markdown table in ``path``, as lists of cells."""
    lines = [line.strip() for line in path.read_text().splitlines() if line.startswith("|")]
    # split on the pipes that separate cells, not on the escaped ones inside a cell (\|)
    rows = [[cell.strip() for cell in re.split(r"(?<!\\)\|", line[1:-1])] for line in lines]
    assert len(rows) >= 3, f"{path} has no table"
    assert all(set(cell) <= set("-:") for cell in rows[1]), f"{path}: second line is not a header separator"
    assert all(len(row) == len(rows[0]) for row in rows), f"{path}: rows of different widths"
    return rows[2:]


def first_cells(path: Path) -> list[str]:
    return [row[0] for row in table_rows(path)]


def expected_first_cells(name: str) -> list[str]:
    """What the first column of each experiment's table must list."""
    from experiments import (activations, adaptive_steps, decision_boundary, fan_in_lr, initialisation,
                             learning_rates, margin_scaling, ner_activations, objectives, optimizers, preprocessing,
                             schedules)

    return {
        "activations": [a[0] for a in activations.ACTIVATIONS],
        "gradient_check": ["float64", "float64", "float32", "float32"],
        "initialisation": ["tanh"] * 4 + ["sigmoid"] * 4,
        "decision_boundary": [d for d in decision_boundary.DATASETS for _ in decision_boundary.MODELS],
        "optimizers": list(optimizers.OPTIMIZERS),
        "schedules": list(schedules.schedules(20)),
        "regularisation": ["L2", "L2", "dropout"],
        "ner_activations": sorted(ner_activations.ACTIVATIONS),  # the table is sorted by F1: compare as sets
        "objectives": list(objectives.OBJECTIVES),
        "notes_objective": ["before training", "after training"],
        "vectorisation": ["1", "10", "500", "500 (the notes, numpy)"],
        "preprocessing": list(preprocessing.stages()),
        "dead_units": [a[0] for a in activations.ACTIVATIONS],
        "learning_rates": [f"{lr:g}" for lr in learning_rates.LRS[::3]],
        "margin_scaling": [s for s in margin_scaling.SETTINGS for _ in margin_scaling.MARGINS],
        "xavier_training": [a for a in initialisation.ACTIVATIONS for _ in initialisation.INITS],
        "adaptive_steps": list(adaptive_steps.OPTIMIZERS),
        "gradient_cost": ["2", "4", "8"],
        "fan_in_lr": [s for s in fan_in_lr.SCHEMES for _ in range(2)],  # quick: two rates per scheme
        "delta_reuse": ["1", "2", "4"],
    }[name]


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory) -> Path:
    """Run every experiment once in quick mode into one folder (shared by the tests below)."""
    out = tmp_path_factory.mktemp("experiments")
    for name in runner.EXPERIMENTS:
        assert runner.main([name, "--quick", "--out", str(out)]) == 0, name
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", runner.EXPERIMENTS)
def test_quick_run_writes_figure_and_table(quick_results: Path, name: str):
    figure, table = quick_results / f"{name}.png", quick_results / f"{name}.md"
    assert figure.read_bytes()[:8] == PNG_MAGIC
    assert figure.stat().st_size < 400_000
    assert table.read_text().startswith("# ")
    cells = first_cells(table)
    expected = expected_first_cells(name)
    if name == "ner_activations":
        assert sorted(cells) == expected
    else:
        assert cells == expected


@pytest.mark.slow
def test_activation_derivatives_match_torch(quick_results: Path):
    for row in table_rows(quick_results / "activations.md"):
        assert float(row[4]) < 1e-12, row  # max |f' - torch f'| off the corner points
        assert float(row[5]) < 1e-12, row  # max |f - torch f|


@pytest.mark.slow
def test_central_difference_is_second_order(quick_results: Path):
    slopes = {(row[0], row[1]): float(row[2]) for row in table_rows(quick_results / "gradient_check.md")}
    assert slopes["float64", "central"] == pytest.approx(2.0, abs=0.3)
    assert slopes["float64", "one-sided"] == pytest.approx(1.0, abs=0.3)


def rows_by_first_cell(path: Path) -> dict[str, list[str]]:
    return {row[0]: row for row in table_rows(path)}


@pytest.mark.slow
def test_numerical_gradient_makes_two_forward_passes_per_parameter(quick_results: Path):
    for row in table_rows(quick_results / "gradient_cost.md"):
        assert int(row[2]) == 2 * int(row[1]), row  # the notes' "two forward passes" per parameter
        assert float(row[4]) < 1e-6, row  # and it agrees with backprop


@pytest.mark.slow
def test_adagrad_steps_never_grow_rmsprop_steps_do(quick_results: Path):
    rows = rows_by_first_cell(quick_results / "adaptive_steps.md")
    adagrad, rmsprop, sgd = (rows[name] for name in ("AdaGrad (lr 0.1)", "RMSProp (lr 0.01)", "SGD (lr 1)"))
    assert int(adagrad[5]) == 0 and int(rmsprop[5]) > 0
    assert float(adagrad[4]) > 1  # the rarest rows take larger steps than the most frequent
    assert [float(c) for c in sgd[1:4]] == pytest.approx([1.0, 1.0, 1.0])  # SGD's step is lr everywhere


@pytest.mark.slow
def test_adapted_margin_follows_the_margin_one_run_exactly(quick_results: Path):
    for row in table_rows(quick_results / "margin_scaling.md"):
        if row[0] == "adapted":
            assert float(row[4]) == 0.0, row  # same pair accuracy at every checkpoint
            assert float(row[5]) < 1e-9, row  # scores are Delta times the margin-1 run's


@pytest.mark.slow
def test_learning_rate_sweep_finds_divergence_and_crawling(quick_results: Path):
    verdicts = {row[0]: row[1] for row in table_rows(quick_results / "learning_rates.md")}
    assert verdicts["30"] == "diverged"
    assert verdicts["0.0001"] == "crawling"
    assert "tuned" in verdicts.values()


@pytest.mark.slow
def test_reusing_delta_takes_2L_minus_1_products_recomputing_takes_L_L_plus_1_over_2(quick_results: Path):
    for row in table_rows(quick_results / "delta_reuse.md"):
        depth = int(row[0])
        assert (int(row[1]), int(row[2])) == (2 * depth - 1, depth * (depth + 1) // 2), row
        assert int(row[3]) == int(row[4]) == 2 * depth - 1, row  # our backward reuses delta, as written out
        assert int(row[5]) == depth * (depth + 1) // 2, row  # the naive chain rule per layer
        assert float(row[12]) < 1e-12, row  # and all three give the same weight gradients


def test_fan_in_groups_scale_each_layer_by_its_fan_in():
    import math

    import torch

    from cs224n_nn import nn
    from experiments import fan_in_lr
    from experiments._common import mlp

    model = mlp(fan_in_lr.SIZES, nn.Tanh)
    groups = fan_in_lr.fan_in_groups(model, 0.5)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    assert [g["lr"] for g in groups] == pytest.approx([0.5 / math.sqrt(n) for n in fan_in_lr.SIZES[:-1]])
    for group, linear in zip(groups, linears):
        assert [id(p) for p in group["params"]] == [id(linear.weight), id(linear.bias)]
    # our SGD takes the groups: one step moves each layer by its own rate times its gradient
    from cs224n_nn import optim

    before = [p.detach().clone() for p in model.parameters()]
    optimizer = optim.SGD(groups, lr=0.5)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    optimizer.step()
    for (after, old), linear in zip(zip(model.parameters(), before), [l for l in linears for _ in range(2)]):
        assert torch.allclose(old - after, torch.full_like(old, 0.5 / math.sqrt(linear.weight.shape[1])))


@pytest.mark.slow
def test_only_relu_and_hard_tanh_can_have_dead_units(quick_results: Path):
    rows = rows_by_first_cell(quick_results / "dead_units.md")
    for name in ("sigmoid", "tanh", "soft sign", "leaky ReLU (0.1)"):
        assert float(rows[name][2]) == 0.0, rows[name]  # f'(z) is never exactly 0 for these


def test_a_plain_run_writes_into_a_new_run_folder(monkeypatch, tmp_path: Path, capsys):
    results = ROOT / "experiments" / "results"
    before = {p.name: p.read_bytes() for p in results.iterdir()}
    monkeypatch.chdir(tmp_path)
    for version in (0, 1):
        assert runner.main(["activations", "--quick"]) == 0
        folder = tmp_path / "lightning_logs" / "experiments" / "activations" / f"version_{version}"
        assert f"writing into {folder}" in capsys.readouterr().out
        assert (folder / "activations.png").is_file()
        assert "Wall time of this run:" in (folder / "activations.md").read_text()
    assert {p.name: p.read_bytes() for p in results.iterdir()} == before  # nothing committed was touched


def test_list_names_every_experiment(capsys):
    assert runner.main(["--list"]) == 0
    listing = capsys.readouterr().out
    for name in runner.EXPERIMENTS:
        assert (ROOT / "experiments" / f"{name}.py").is_file()
        assert f"  {name} " in listing
        assert runner.summary(name), f"{name} has no docstring"


def test_unknown_experiment_is_an_error(capsys):
    assert runner.main(["no_such_experiment"]) == 2
    assert "unknown experiment 'no_such_experiment'" in capsys.readouterr().err


def test_cli_dispatches_to_experiments(capsys):
    assert cli.main(["experiment", "--list"]) == 0
    assert "gradient_check" in capsys.readouterr().out


@pytest.mark.slow
def test_runs_as_a_module(tmp_path: Path):
    result = subprocess.run([sys.executable, "-m", "experiments.activations", "--quick", "--out", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "[activations] done" in result.stdout
    assert (tmp_path / "activations.png").is_file() and (tmp_path / "activations.md").is_file()


def test_ner_data_falls_back_to_the_sample_corpus(monkeypatch, capsys, tmp_path: Path):
    from experiments import _common

    monkeypatch.setattr(_common, "CONLL_DIR", tmp_path / "no_conll_here")
    train, dev, source = _common.conll_files()
    assert (train.name, dev.name) == ("sample_train.conll", "sample_dev.conll")
    assert train.is_file() and dev.is_file()
    assert source == "the shipped sample corpus"
    assert "notice: CoNLL-2003 not found" in capsys.readouterr().out


@pytest.mark.slow
def test_ner_experiment_runs_on_the_sample_corpus(monkeypatch, tmp_path: Path):
    from experiments import _common

    monkeypatch.setattr(_common, "CONLL_DIR", tmp_path / "no_conll_here")
    assert runner.main(["notes_objective", "--quick", "--out", str(tmp_path)]) == 0
    assert "the shipped sample corpus" in (tmp_path / "notes_objective.md").read_text()
    assert first_cells(tmp_path / "notes_objective.md") == ["before training", "after training"]


def test_run_leaves_the_thread_count_as_it_was(tmp_path: Path):
    import torch

    before = torch.get_num_threads()
    assert runner.main(["activations", "--quick", "--threads", "1", "--out", str(tmp_path)]) == 0
    assert torch.get_num_threads() == before


def test_bad_thread_count_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        runner.main(["activations", "--threads", "0"])
    assert exit_info.value.code == 2
    assert "--threads: must be an integer >= 1" in capsys.readouterr().err


def test_a_failed_write_leaves_the_old_table_and_no_temporary(tmp_path: Path):
    from experiments._common import replace_atomically

    table = tmp_path / "t.md"
    table.write_text("old")

    def broken(temporary: Path) -> None:
        temporary.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        replace_atomically(table, broken)
    assert table.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.md"]
    replace_atomically(table, lambda temporary: temporary.write_text("new"))
    assert table.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["t.md"]


@pytest.mark.parametrize("name", ["optimizers", "regularisation", "ner_activations", "objectives", "notes_objective",
                                  "dead_units", "learning_rates", "margin_scaling", "xavier_training", "fan_in_lr"])
def test_committed_results_of_multi_seed_experiments_are_over_three_seeds(name: str):
    """The README reads these tables as means ± sd over 3 seeds: a table regenerated from fewer fails here."""
    text = (ROOT / "experiments" / "results" / f"{name}.md").read_text()
    assert "3 seed(s)" in text, name
    assert "(full mode, seed 0," in text, name  # a full run, not a quick one
