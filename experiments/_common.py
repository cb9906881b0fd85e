"""What every experiment shares: its command line, output folder, seeding,
progress line, figures and markdown tables, and where the NER data is.

Each experiment module defines ``run(out: Path, quick: bool, seed: int) ->
list[Path]`` and ends with ``raise SystemExit(cli(run, NAME))`` so that it runs
as ``python -m experiments.NAME`` as well as ``cs224n-nn experiment NAME``.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from cs224n_nn.errors import CS224nError

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
# CoNLL-2003 never enters the repo; it sits beside the checkout (as in tests/conftest.py).
CONLL_DIR = Path(os.environ.get("CS224N_CONLL_DIR", ROOT.parent / "shared" / "data" / "conll2003"))

RunFn = Callable[[Path, bool, int], list[Path]]


# -- command line ---------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def parser(name: str, description: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"cs224n-nn experiment {name}", description=description)
    p.add_argument("--quick", action="store_true", help="a few steps only (what the tests run)")
    p.add_argument("--out", type=Path, default=None,
                   help="where figures and tables go (default: a new run folder "
                        "lightning_logs/experiments/NAME/version_N under the current directory; "
                        f"pass --out {RESULTS.relative_to(ROOT)} to replace the committed results)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=_positive_int, default=1, help="torch intra-op threads (default 1)")
    return p


def cli(run: RunFn, name: str, argv: Sequence[str] | None = None, description: str | None = None) -> int:
    """Parse ``[--quick] [--out DIR] [--seed N] [--threads N]``, run, and list what was written."""
    args = parser(name, description).parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.out is None:
        args.out = new_run_folder(name)
        print(f"[{name}] writing into {args.out}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    # One intra-op thread by default: these models are small, and on a shared 2-core machine two
    # threads that wait on each other made a step ~30x slower (90 ms against 2.5 ms) than one.
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    try:
        written = run(args.out, args.quick, args.seed)
    except CS224nError as err:
        print(f"experiment {name}: error: {err}", file=sys.stderr)
        return 1
    finally:
        torch.set_num_threads(previous_threads)  # the caller (a test session, say) keeps its setting
    seconds = time.perf_counter() - start
    for path in written:
        if path.suffix == ".md":  # the wall time goes with the table it made, not into prose
            text = path.read_text() + (f"\nWall time of this run: {seconds:.0f} s ({'quick' if args.quick else 'full'} "
                                       f"mode, seed {args.seed}, {args.threads} thread(s)).\n")
            replace_atomically(path, lambda tmp: tmp.write_text(text))
    print(f"[{name}] done in {seconds:.1f} s; wrote:")
    for path in written:
        print(f"  {path}")
    return 0


def new_run_folder(name: str, base: Path | None = None) -> Path:
    """A fresh ``lightning_logs/experiments/NAME/version_N`` (N one past the highest there),
    so that a plain run never overwrites the committed files in ``experiments/results``."""
    parent = (base or Path.cwd() / "lightning_logs" / "experiments") / name
    parent.mkdir(parents=True, exist_ok=True)
    taken = [int(p.name.split("_", 1)[1]) for p in parent.glob("version_*") if p.name.split("_", 1)[1].isdigit()]
    version = max(taken, default=-1) + 1
    while True:
        folder = parent / f"version_{version}"
        try:
            folder.mkdir()  # atomic: two runs started together cannot share a folder
            return folder
        except FileExistsError:
            version += 1


# -- seeding and progress -------------------------------------------------------------------


SEEDS = 3  # full runs whose claims rest on small differences repeat over this many seeds


def seeds_for(seed: int, quick: bool, n: int = SEEDS) -> list[int]:
    """``[seed, seed + 1, ...]``: ``n`` seeds for a full run, one for a quick one."""
    return [seed] if quick else [seed + i for i in range(n)]


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = [float(v) for v in values]
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5


def mean_pm_sd(values: Sequence[float], digits: int = 3) -> str:
    """A table cell ``mean ± sd`` over seeds (``mean`` alone for one seed): the mean to ``digits``
    significant figures, the sd to 2."""
    mean, sd = mean_sd(values)
    return fmt(mean, digits) if len(values) < 2 else f"{fmt(mean, digits)} ± {fmt(sd, 2)}"


def per_seed_cell(values: Sequence[float], spec: str = ".3f") -> str:
    """A table cell with each seed's value, ``v0 / v1 / v2``, in the order of the seeds."""
    return " / ".join(f"{float(v):{spec}}" for v in values)


def within_spread(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether two sets of per-seed values differ in mean by less than the larger of their two sample sds:
    what the README calls a difference *within the spread* (never, with a single seed each)."""
    (mean_a, sd_a), (mean_b, sd_b) = mean_sd(a), mean_sd(b)
    return abs(mean_a - mean_b) < max(sd_a, sd_b)


def seed_all(seed: int) -> torch.Generator:
    """Seed Python and torch, and return a generator for data that must not
    depend on how many random numbers the model code drew before it."""
    random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


class Progress:
    """A one-line progress report, rewritten in place on a terminal and
    printed every ~10 % of the way otherwise (logs, pytest capture)."""

    def __init__(self, name: str, total: int):
        self.name, self.total, self.done = name, max(total, 1), 0
        self.start = time.perf_counter()
        self._tty = sys.stdout.isatty()
        self._last_decile = -1

    def update(self, message: str = "", n: int = 1) -> None:
        self.done += n
        decile = 10 * self.done // self.total
        if not self._tty and decile == self._last_decile and self.done < self.total:
            return
        self._last_decile = decile
        elapsed = time.perf_counter() - self.start
        line = f"[{self.name}] {self.done}/{self.total} ({100 * self.done / self.total:3.0f}%) {elapsed:6.1f} s  {message}"
        if self._tty:
            print("\r" + line.ljust(100), end="\n" if self.done >= self.total else "", flush=True)
        else:
            print(line, flush=True)


# -- small synthetic problems ---------------------------------------------------------------


def gaussian_classes(n: int, centres: torch.Tensor, generator: torch.Generator,
                     flip: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points: a class drawn uniformly, a unit Gaussian around its row of
    ``centres`` (one row per class), and a fraction ``flip`` of the labels
    redrawn at random (label noise, so no model reaches zero loss)."""
    n_classes, n_features = centres.shape
    y = torch.randint(n_classes, (n,), generator=generator)
    x = centres[y] + torch.randn(n, n_features, generator=generator)
    flipped = torch.rand(n, generator=generator) < flip
    y[flipped] = torch.randint(n_classes, (int(flipped.sum()),), generator=generator)
    return x, y


def mlp(sizes: Sequence[int], activation: Callable[[], torch.nn.Module]) -> torch.nn.Sequential:
    """Our ``nn.Linear`` layers of ``sizes[0] -> ... -> sizes[-1]`` with ``activation()``
    between them (none after the last), Xavier-initialised with zero biases
    (:func:`cs224n_nn.init.init_module_`)."""
    from cs224n_nn import init, nn

    layers: list[torch.nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(activation())
    return init.init_module_(torch.nn.Sequential(*layers))


def full_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Our softmax cross-entropy of ``model`` on the whole of ``(x, y)``, without a graph."""
    from cs224n_nn import nn

    with torch.no_grad():
        return nn.CrossEntropyLoss()(model(x), y).item()


def training_curve(model: torch.nn.Module, optimizer, x: torch.Tensor, y: torch.Tensor, batches: torch.Tensor,
                   steps: int, every: int, stop_on_nonfinite: bool = False) -> tuple[list[int], list[float]]:
    """Minibatch training on ``x[batches[t]]`` for ``steps`` steps with our cross-entropy.

    Returns the steps at which the loss on the whole training set was read
    (every ``every`` steps and the last) and that loss at each. With
    ``stop_on_nonfinite`` it stops at the first non-finite reading (a
    diverged run), which is then the last entry.
    """
    from cs224n_nn import nn

    loss_fn = nn.CrossEntropyLoss()
    checkpoints, losses = [], []
    for t in range(steps + 1):
        if t % every == 0 or t == steps:
            checkpoints.append(t)
            losses.append(full_loss(model, x, y))
            if stop_on_nonfinite and not math.isfinite(losses[-1]):
                break
        if t == steps:
            break
        idx = batches[t]
        optimizer.zero_grad()
        loss_fn(model(x[idx]), y[idx]).backward()
        optimizer.step()
    return checkpoints, losses


# -- figures and tables ---------------------------------------------------------------------


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    try:
        import matplotlib
    except ImportError as err:  # the `plots` extra is optional
        raise CS224nError("the experiments need matplotlib: pip install 'cs224n-nn[plots]'") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100, "font.size": 9, "axes.grid": True, "grid.alpha": 0.3})
    return plt


def replace_atomically(path: Path, write: Callable[[Path], None]) -> Path:
    """``write(temporary)`` into a temporary file in ``path``'s folder, fsync it, then
    ``os.replace`` it onto ``path``: a run killed half-way never leaves a truncated table or
    figure where a good one was."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        with temporary.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def save_figure(fig, out: Path, filename: str) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        return replace_atomically(out / filename, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    finally:
        plt.close(fig)


def fmt(value, digits: int = 3) -> str:
    """A table cell: floats to ``digits`` significant figures, the rest as str."""
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value == 0 or 1e-3 <= abs(value) < 1e5:
            return f"{value:.{digits}g}"
        return f"{value:.{max(digits - 1, 1)}e}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    def cell(value) -> str:
        return fmt(value).replace("|", "\\|")  # a bare | (as in |x| or ||W||) would end the cell

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_table(out: Path, filename: str, title: str, headers: Sequence[str], rows: Sequence[Sequence],
                notes: Sequence[str] = ()) -> Path:
    """Write ``# title``, the table, then one paragraph per note."""
    text = f"# {title}\n\n{markdown_table(headers, rows)}\n"
    for note in notes:
        text += f"\n{note}\n"
    return replace_atomically(out / filename, lambda tmp: tmp.write_text(text))


# -- NER data -------------------------------------------------------------------------------


def conll_files() -> tuple[Path, Path, str]:
    """(train file, dev file, description): CoNLL-2003 where it is, else the
    shipped sample corpus, with a printed notice."""
    train, dev = CONLL_DIR / "eng.train", CONLL_DIR / "eng.testa"
    if train.is_file() and dev.is_file():
        return train, dev, "CoNLL-2003"
    from cs224n_nn.ner.datamodule import SAMPLE_FILES  # imported here: it pulls in Lightning

    sample_train, sample_dev = SAMPLE_FILES["train"], SAMPLE_FILES["val"]
    if not sample_train.is_file():
        raise CS224nError(f"no NER data: neither {CONLL_DIR}/eng.train nor {sample_train} exists")
    print(f"notice: CoNLL-2003 not found at {CONLL_DIR}; using the shipped sample corpus "
          f"{sample_train.name} / {sample_dev.name}", flush=True)
    return sample_train, sample_dev, "the shipped sample corpus"
