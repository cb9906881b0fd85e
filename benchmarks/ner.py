"""The window NER training loop: cs224n-nn's model against a native twin.

Ours is :class:`cs224n_nn.ner.model.WindowNERModule` with its defaults (word
+ casing features, window 5, one tanh layer of 300, dropout 0.5, softmax
cross-entropy) and the optimizer its ``configure_optimizers`` gives (our
Adam, default path), trained as the Lightning step trains it
(``training_loss``: each hidden layer one fused ``Dense`` Function with its
dropout, the output layer and the loss one fused Function). With those
defaults the word table takes sparse gradients and lazy row-wise Adam
updates (``model.sparse_embeddings``). The twin is a copy of that model in
which every ``cs224n_nn.nn`` module (Embedding, Linear, Dropout, the loss) is
turned back into the ``torch.nn`` class it subclasses and each ``Dense``
into ``Linear`` + the activation + ``Dropout`` with the same weights, trained
by ``loss(forward(windows))``: the same network, sizes and starting weights
on torch's own kernels. Two twins are measured:

* the same computation in torch: the same tables sparse, trained by
  ``torch.optim.SparseAdam`` (torch's lazy Adam), the rest by
  ``torch.optim.Adam(fused=True)``;
* what plain torch code usually is: every table dense, everything trained by
  ``torch.optim.Adam(fused=True)`` (dense Adam sweeps the whole word table
  every step; lazy Adam leaves untouched rows' moments as they are, so the
  two are not the same optimisation, only the same model and data).

Word vectors start random on both sides (loading GloVe changes no cost per step).

Both run the same training step a Lightning loop runs (zero_grad with
``set_to_none``, forward, loss, backward, step) on the same fixed batches,
the first batches of :class:`cs224n_nn.ner.datamodule.CoNLLDataModule`'s
shuffled training loader (seeded; its default features and batch size 256)
over CoNLL-2003 ``eng.train``, or the shipped sample corpus when that is
absent, with a notice. Data loading is outside the timing.

Throughput: training tokens per second (one token = one window), one call of
a case = one pass over the fixed batches, interleaved as every other
benchmark. Target (issue 13): ours / native at least 1.05.

Peak memory: resident set size (RSS) from ``/proc/self/status``, not
tracemalloc (which sees only Python's allocator, not tensor storage). Each
side runs in a fresh process (``python -m benchmarks.ner --peak-memory ...``)
so that one side's freed pages cannot be reused by the other; the process's
peak RSS counter (VmHWM) is reset through ``/proc/self/clear_refs`` just
before the first training step, and the figure is the peak during training
minus the RSS just before it: what the training loop itself costs
(activations, gradients, optimizer state). Target (issue 13): ours / native at most 1.0.
RSS also moves with the C allocator's pages: the same side gives either of
two figures about 2 MiB apart from one fresh process to the next.

Peak tensor memory: the most bytes of tensor storage alive at once during
the same pass, from torch.profiler's allocation events
(``profile_memory=True``; every allocation and free of the CPU allocator,
in order, summed), on fresh copies of both models in this process.  It is
the CPU analogue of ``torch.cuda.max_memory_allocated`` and does not depend
on the allocator's pages, so one run per side gives the same figure each
time.  Same target.

Compiled update (full preset): issue 13 asks for the compiled optimizer
update as the default where it is available. This model's dense group is
far below ``COMPILE_MIN_NUMEL``, so its default is the eager multi-tensor
step; the row ``compiled update: steps to pay`` says whether that was right
here: the first training step with ``fused=True`` (the compilation), the
time of each later training step with and without it, and the steps (and
epochs of the corpus) after which compiling would have paid for itself.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from benchmarks._timing import Case, Context, Row, Target, configure_threads, measure_all
from cs224n_nn.nn import Dense

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "cs224n_nn" / "data" / "sample_train.conll"

# mode: (batch size, batches per timed call, use CoNLL-2003 when present, memory runs per side)
PRESETS = {
    "tiny": (32, 2, False, 1),
    "quick": (256, 10, True, 0),
    "full": (256, 40, True, 3),
}


@dataclass
class Data:
    encoder: object  # cs224n_nn.ner.features.WindowEncoder
    batches: list[dict[str, torch.Tensor]]
    corpus: Path
    notice: str = ""
    steps_per_epoch: int = 0  # training steps of one pass over the whole corpus at this batch size

    @property
    def tokens(self) -> int:
        return sum(b["tags"].numel() for b in self.batches)


def corpus_path(conll_dir: str | None, use_conll: bool) -> tuple[Path, str]:
    """eng.train when asked for and present, else the shipped sample, with a notice saying why."""
    if not use_conll:
        return SAMPLE, "tiny preset: the shipped sample corpus"
    path = Path(conll_dir or ".") / "eng.train"
    if path.is_file():
        return path, ""
    return SAMPLE, f"CoNLL-2003 not found at {path}: measured on the shipped sample corpus instead"


def load_data(corpus: Path, batch_size: int, n_batches: int, notice: str = "") -> Data:
    """The data module's vocabulary and its first ``n_batches`` shuffled training batches (seeded)."""
    from cs224n_nn.ner.datamodule import CoNLLDataModule

    # val_path: the small packaged dev file, which setup("fit") reads but the benchmark never uses
    data = CoNLLDataModule(train_path=str(corpus), val_path="sample", batch_size=batch_size)
    data.setup("fit")
    torch.manual_seed(0)
    batches: list[dict[str, torch.Tensor]] = []
    while len(batches) < n_batches:  # a small corpus is cycled
        for batch in data.train_dataloader():
            if batch["tags"].numel() == batch_size:  # only full batches: tokens per call stay fixed
                batches.append(batch)
            if len(batches) == n_batches:
                break
    return Data(data.encoder, batches, corpus, notice, len(data.train_dataloader()))


def torch_nn_base(cls: type) -> type:
    """The torch.nn class a cs224n_nn.nn module stands in for (each subclasses its twin)."""
    for base in cls.__mro__[1:]:
        if base.__module__.startswith("torch.nn.modules") and base is not torch.nn.Module:
            return base
    raise TypeError(f"{cls.__qualname__} has no torch.nn twin to benchmark against")


def native_twin(ours):
    """A copy of ``ours`` in which every cs224n_nn.nn module is its torch.nn twin.

    Each ``cs224n_nn.nn`` class subclasses the torch.nn class it replaces and
    only swaps ``forward`` for the hand-written Functions, with the same
    attributes; turning the copy's modules back into their torch.nn classes
    gives the same architecture, sizes and starting weights computed by
    torch's own kernels, whatever layers the model holds.
    """
    twin = copy.deepcopy(ours)
    # A fused Dense layer f(x W^T + b) with dropout has no single torch.nn twin:
    # it becomes Linear (the same weights), the activation, Dropout.
    network = getattr(twin, "network", twin)  # a WindowNERModule holds a WindowNERNetwork
    network.classifier = torch.nn.Sequential(*(dense_twin(layer) if isinstance(layer, Dense) else layer
                                               for layer in network.classifier))
    for module in twin.modules():
        if type(module).__module__ == "cs224n_nn.nn":
            module.__class__ = torch_nn_base(type(module))
    left = [type(m).__qualname__ for m in twin.modules() if type(m).__module__.startswith("cs224n_nn.nn")]
    if left:
        raise TypeError(f"the native twin still holds cs224n_nn modules: {left}")
    return twin


def dense_twin(layer) -> torch.nn.Sequential:
    """``torch.nn.Sequential(Linear, activation, Dropout)`` computing what a :class:`cs224n_nn.nn.Dense` does."""
    activations = {"sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh, "hardtanh": torch.nn.Hardtanh,
                   "softsign": torch.nn.Softsign, "relu": torch.nn.ReLU, "leaky_relu": torch.nn.LeakyReLU}
    linear = torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    linear.load_state_dict(layer.state_dict())
    return torch.nn.Sequential(linear, activations[layer.activation](**layer.activation_params),
                               torch.nn.Dropout(layer.dropout))


def build_ours(data: Data, **model_args):
    from cs224n_nn.ner.model import WindowNERModule

    torch.manual_seed(0)
    model = WindowNERModule(encoder=data.encoder, word_vectors="none", **model_args)
    model.train()
    optimizer = model.configure_optimizers()
    if isinstance(optimizer, dict):  # with a schedule
        optimizer = optimizer["optimizer"]
    return model, model.training_loss, optimizer


class OptimizerPair:
    """torch's SparseAdam on the sparse-gradient tables and fused Adam on the rest, stepped as one."""

    def __init__(self, sparse: torch.optim.Optimizer, dense: torch.optim.Optimizer):
        self.parts = (sparse, dense)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for part in self.parts:
            part.step()


def build_native(ours_model, dense: bool = False):
    """The twin and its torch.optim optimizer.

    By default the twin keeps our model's choice of sparse embedding
    gradients: the same lazy row-wise Adam on those tables
    (``torch.optim.SparseAdam``) and ``Adam(fused=True)`` on the rest.
    ``dense=True`` makes every table dense and trains all of it with
    ``Adam(fused=True)``: what plain torch code usually does.
    """
    model = native_twin(ours_model)
    model.train()
    lr = ours_model.hparams.lr
    tables = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
    if dense:
        for table in tables:
            table.sparse = False
    sparse = {id(t.weight): t.weight for t in tables if t.sparse and t.weight.requires_grad}
    params = [p for p in model.parameters() if p.requires_grad and id(p) not in sparse]  # as configure_optimizers
    optimizer = torch.optim.Adam(params, lr=lr, fused=True)
    if sparse:
        optimizer = OptimizerPair(torch.optim.SparseAdam(list(sparse.values()), lr=lr), optimizer)
    return model, (lambda batch: model.objective(model(batch["windows"]), batch["tags"])), optimizer


NATIVE_NAMES = {
    False: "torch.nn twin, same sparse tables: SparseAdam + Adam(fused=True)",
    True: "torch.nn twin, dense tables: Adam(fused=True)",
}


def train_steps(model, loss_of, optimizer, batches) -> Callable[[], None]:
    """One pass of the training step a Lightning loop runs, over ``batches``."""

    def run() -> None:
        for batch in batches:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_of(batch)
            loss.backward()
            optimizer.step()

    return run


def throughput_case(data: Data, ours_args: dict, label: str, dense_twin: bool = False) -> Case:
    ours_model, ours_loss, ours_opt = build_ours(data, **ours_args)
    native_model, native_loss, native_opt = build_native(ours_model, dense=dense_twin)
    batch = data.batches[0]["tags"].numel()
    vocab = len(data.encoder.vocabs["word"])
    return Case(
        group="ner",
        piece=label,
        setting=f"{len(data.batches)} batches of {batch}, vocab {vocab}",
        native_name=NATIVE_NAMES[dense_twin],
        ours=train_steps(ours_model, ours_loss, ours_opt, data.batches),
        native=train_steps(native_model, native_loss, native_opt, data.batches),
        target=Target(">=", 1.05),
        per_call=float(data.tokens),
        unit="tokens/s",
        note=data.notice,
    )


# ---------------------------------------------------------------- peak memory


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def peak_training_memory(side: str, corpus: Path, batch_size: int, n_batches: int) -> dict[str, float]:
    """In this process: RSS before training, peak RSS during one pass (MiB)."""
    data = load_data(corpus, batch_size, n_batches)
    # Both models exist on both sides (the twin copies ours' weights), so
    # neither side trains in memory the other freed.
    ours = build_ours(data)
    native = build_native(ours[0])
    step = train_steps(*(ours if side == "ours" else native), data.batches)
    try:  # "5" resets the peak RSS counter to the current RSS (Linux >= 4.0)
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    before = _status_kib("VmRSS")
    step()
    peak = _status_kib("VmHWM")
    return {"before_mib": before / 1024, "peak_mib": peak / 1024, "train_mib": (peak - before) / 1024, "reset": reset}


def _memory_in_subprocess(side: str, corpus: Path, batch_size: int, n_batches: int) -> dict[str, float]:
    cmd = [sys.executable, "-m", "benchmarks.ner", "--peak-memory", side, "--corpus", str(corpus),
           "--batch-size", str(batch_size), "--batches", str(n_batches), "--threads", str(torch.get_num_threads())]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_rows(data: Data, batch_size: int, runs: int, log) -> list[Row]:
    samples: dict[str, list[dict]] = {"ours": [], "native": []}
    for i in range(runs):  # alternate which side goes first, as for time
        for side in ("ours", "native") if i % 2 == 0 else ("native", "ours"):
            samples[side].append(_memory_in_subprocess(side, data.corpus, batch_size, len(data.batches)))
    if not all(s["reset"] for s in samples["ours"] + samples["native"]):
        log("  note: /proc/self/clear_refs not writable; the peak includes the setup")
    setting = f"{len(data.batches)} batches of {batch_size}"
    rows = []
    for piece, key, target in (
        ("peak memory (training)", "train_mib", Target("<=", 1.0)),
        ("peak RSS (whole process)", "peak_mib", None),
    ):
        ours = statistics.median(s[key] for s in samples["ours"])
        native = statistics.median(s[key] for s in samples["native"])
        ratios = [a[key] / b[key] for a, b in zip(samples["ours"], samples["native"]) if b[key] > 0]
        rows.append(Row(
            group="ner", piece=piece, setting=setting, native_name=NATIVE_NAMES[False],
            ours=ours, native=native, ratio=statistics.median(ratios) if ratios else float("nan"),
            unit="MiB", target=target, runs=runs,
            note=(
                "memory: RSS from /proc/self/status in a fresh process per side and run; 'training' = peak "
                "RSS during one pass minus RSS just before it (peak counter reset via /proc/self/clear_refs)"
            ),
        ))
    for row in rows:
        log(f"  ner         {row.piece:<24} ours {row.ours:.1f} MiB, native {row.native:.1f} MiB, "
            f"ratio {row.ratio:.2f}")
    return rows


def peak_tensor_bytes(run: Callable[[], None]) -> int | None:
    """The most bytes of tensor storage alive at once during ``run()`` (above what was alive before),
    from torch.profiler's CPU memory events; None where this torch's profiler does not give them."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    results = getattr(prof.profiler, "kineto_results", None)  # the raw events: allocations and frees in order
    if results is None:
        return None
    live = peak = 0
    for _, nbytes in sorted((e.start_ns(), e.nbytes()) for e in results.events() if e.name() == "[memory]"):
        live += nbytes
        peak = max(peak, live)
    return peak


def tensor_memory_row(data: Data, log) -> list[Row]:
    peaks = {}
    for side in ("ours", "native"):
        ours = build_ours(data)
        native = build_native(ours[0])
        peaks[side] = peak_tensor_bytes(train_steps(*(ours if side == "ours" else native), data.batches))
    if None in peaks.values() or not peaks["native"]:
        log("  note: this torch's profiler gives no memory events; no peak tensor memory row")
        return []
    row = Row(
        group="ner", piece="peak tensor memory (training)", setting=f"{len(data.batches)} batches of "
        f"{data.batches[0]['tags'].numel()}", native_name=NATIVE_NAMES[False],
        ours=peaks["ours"] / 2**20, native=peaks["native"] / 2**20, ratio=peaks["ours"] / peaks["native"],
        unit="MiB", target=Target("<=", 1.0), runs=1,
        note="memory: tensor bytes alive at once, from torch.profiler's allocation events (deterministic)",
    )
    log(f"  ner         {row.piece:<24} ours {row.ours:.2f} MiB, native {row.native:.2f} MiB, ratio {row.ratio:.2f}")
    return [row]


# ---------------------------------------------------------------- compiling the model's update


class _TrainingSteps:
    """A model's training step on the fixed batches in turn, behind an optimizer's ``step()`` (for :func:`payback`)."""

    def __init__(self, model_args: dict, data: Data):
        _, self.loss_of, self.optimizer = build_ours(data, **model_args)
        self.batches, self.i = data.batches, 0

    def step(self) -> None:
        batch = self.batches[self.i % len(self.batches)]
        self.i += 1
        self.optimizer.zero_grad(set_to_none=True)
        self.loss_of(batch).backward()
        self.optimizer.step()


def payback_row(data: Data, timing, log) -> list[Row]:
    """Why our default step stays eager for this model: what compiling its update would cost and save.

    The whole training step (forward, backward, the model's own optimizer from ``configure_optimizers``)
    with ``fused=True`` against ``foreach=True`` (the default path of a group this small): the seconds
    of the first compiled step, the milliseconds each compiled step saves, and the steps after which
    the compilation has paid for itself, also in epochs of the corpus at this batch size.
    """
    from benchmarks.optimizers import payback

    figures = payback(lambda fused: _TrainingSteps({"optimizer_args": {"fused": True} if fused else {"foreach": True}},
                                                   data), timing)
    steps, epochs = figures["pays_after_steps"], figures["pays_after_steps"] / max(data.steps_per_epoch, 1)
    verdict = f"pays after {epochs:.1f} epochs" if math.isfinite(steps) else "never pays: no time saved per step"
    row = Row(
        group="ner", piece="compiled update: steps to pay", setting=f"batch {data.batches[0]['tags'].numel()}, "
        f"{data.steps_per_epoch:,} steps per epoch", native_name="our default (eager multi-tensor) update",
        ours=steps, native=None, ratio=None, unit="steps", runs=1,
        note=(f"compiled update: first training step {figures['first_step_s']:.1f} s (dynamo reset, inductor's disk "
              f"cache empty), "
              f"then {figures['compiled_ms']:.2f} ms per training step against "
              f"{figures['eager_ms']:.2f} ms eager: {verdict}"),
    )
    log(f"  ner         {row.piece:<24} {row.note}")
    return [row]


# ---------------------------------------------------------------- the group


def rows(ctx: Context) -> list[Row]:
    batch_size, n_batches, use_conll, memory_runs = PRESETS[ctx.mode]
    corpus, notice = corpus_path(ctx.conll_dir, use_conll)
    if notice:
        ctx.log(f"  notice: {notice}")
    data = load_data(corpus, batch_size, n_batches, notice)

    def cases():
        yield throughput_case(data, {}, "training throughput")
        yield throughput_case(data, {}, "training throughput", dense_twin=True)
        if ctx.mode == "full":
            from cs224n_nn.optim import Adam
            from benchmarks.optimizers import accepts_fused, fresh_compile_cache

            if accepts_fused(Adam):
                fresh_compile_cache()
                yield throughput_case(data, {"optimizer_args": {"fused": True}}, "training throughput (our fused Adam)")

    # The compile payback first: no other case of this group has compiled the model's update yet.
    result = payback_row(data, ctx.timing, ctx.log) if ctx.mode == "full" else []
    result += measure_all(cases(), ctx)
    if memory_runs:
        result += memory_rows(data, batch_size, memory_runs, ctx.log)
        result += tensor_memory_row(data, ctx.log)
    return result


def main(argv: list[str] | None = None) -> int:
    """The child process of the memory measurement (prints one JSON line)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ner")
    parser.add_argument("--peak-memory", choices=("ours", "native"), required=True)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--batches", type=int, required=True)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    configure_threads(args.threads)
    print(json.dumps(peak_training_memory(args.peak_memory, args.corpus, args.batch_size, args.batches)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
