"""The one-command GPU check (``make gpu-check``): tests, benchmarks and a short run on CUDA.

    python -m benchmarks.gpu_check                    # on a machine with a CUDA GPU
    python -m benchmarks.gpu_check --output FILE.md   # where the figures go (default gpu_check.md)
    python -m benchmarks.gpu_check --device cpu --tiny   # a dry run of every step on the CPU (the tests do this)

Four steps, each timed, each reported in one Markdown file:

1. the CUDA tests: every test whose id names ``cuda`` (``pytest -k cuda``);
2. benchmarks on the device, ours / native in the same process, the median
   of per-run ratios of interleaved runs (:func:`benchmarks._timing.time_pair`,
   each call ending in ``torch.cuda.synchronize`` so that the time is the
   kernels', not the launch's): activations forward + backward, the affine
   layer, the optimizer step on 10 x 1M parameters against torch's foreach
   and fused Adam/SGD, and the window-NER training step in float32 and under
   float16 autocast with a GradScaler (Lightning's ``16-mixed``);
3. a one-epoch CoNLL-2003 training run with ``--trainer.accelerator gpu``
   (skipped with a line saying so when the data is absent);
4. the device's name, torch and CUDA versions.

Budget: the whole check is meant to finish in under 8 minutes on one GPU; a
step that fails is reported with its error and the others still run. The
exit code is 0 only if every step passed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from benchmarks._timing import Timing, time_pair

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONLL_DIR = Path(os.environ.get("CS224N_CONLL_DIR", ROOT.parent / "shared" / "data" / "conll2003"))


def synced(fn: Callable[[], object], device: torch.device) -> Callable[[], None]:
    """``fn`` followed by a wait for the device, so a timed call covers its kernels."""
    if device.type != "cuda":
        return fn

    def run() -> None:
        fn()
        torch.cuda.synchronize(device)

    return run


def ratio_row(name: str, setting: str, native_name: str, ours, native, device, timing: Timing) -> dict:
    times = time_pair(synced(ours, device), synced(native, device), timing)
    return {
        "piece": name, "setting": setting, "native": native_name,
        "ours_ms": statistics.median(times.ours) * 1e3,
        "native_ms": statistics.median(times.native) * 1e3,
        "ratio": statistics.median(times.ratios),
    }


def activation_rows(device, numels, timing) -> list[dict]:
    import torch.nn.functional as F

    import cs224n_nn.functional as cf

    twins = [("sigmoid", torch.sigmoid), ("tanh", torch.tanh), ("relu", torch.relu),
             ("hardtanh", F.hardtanh), ("softsign", F.softsign), ("leaky_relu", F.leaky_relu)]
    rows = []
    for numel in numels:
        x = torch.randn(numel, device=device, requires_grad=True)
        g = torch.randn(numel, device=device)
        for name, native in twins:
            ours = getattr(cf, name)
            rows.append(ratio_row(name, f"{numel:,} float32", native.__name__,
                                  lambda f=ours: torch.autograd.grad(f(x), x, g),
                                  lambda f=native: torch.autograd.grad(f(x), x, g), device, timing))
    return rows


def affine_rows(device, shapes, timing) -> list[dict]:
    import torch.nn.functional as F

    import cs224n_nn.functional as cf

    rows = []
    for rows_, inp, out in shapes:
        x = torch.randn(rows_, inp, device=device, requires_grad=True)
        w = torch.randn(out, inp, device=device, requires_grad=True)
        b = torch.randn(out, device=device, requires_grad=True)
        g = torch.randn(rows_, out, device=device)
        dense = getattr(cf, "dense", None)
        if dense is not None:
            rows.append(ratio_row("dense (tanh)", f"{rows_}x{inp}->{out}", "tanh(F.linear)",
                                  lambda: torch.autograd.grad(dense(x, w, b, activation="tanh"), (x, w, b), g),
                                  lambda: torch.autograd.grad(torch.tanh(F.linear(x, w, b)), (x, w, b), g),
                                  device, timing))
        rows.append(ratio_row("affine", f"{rows_}x{inp}->{out}", "F.linear",
                              lambda: torch.autograd.grad(cf.affine(x, w, b), (x, w, b), g),
                              lambda: torch.autograd.grad(F.linear(x, w, b), (x, w, b), g), device, timing))
    return rows


def optimizer_rows(device, tensors, numel, timing) -> list[dict]:
    import cs224n_nn.optim as co

    def stepper(make):
        params = [torch.randn(numel, device=device, requires_grad=True) for _ in range(tensors)]
        for p in params:
            p.grad = torch.randn_like(p) * 1e-3
        optimizer = make(params)
        return optimizer.step

    rows = []
    for name, ours_cls, torch_cls, kwargs in [
        ("Adam", co.Adam, torch.optim.Adam, {"lr": 1e-3}),
        ("AdamW", co.AdamW, torch.optim.AdamW, {"lr": 1e-3}),
        ("SGD momentum", co.SGD, torch.optim.SGD, {"lr": 1e-2, "momentum": 0.9}),
    ]:
        for flavour in ("foreach", "fused"):
            rows.append(ratio_row(name, f"{tensors} x {numel:,}", f"torch.optim.{torch_cls.__name__}({flavour}=True)",
                                  stepper(lambda p: ours_cls(p, **kwargs)),
                                  stepper(lambda p: torch_cls(p, **kwargs, **{flavour: True})), device, timing))
    return rows


def ner_rows(device, corpus: Path, batch_size: int, n_batches: int, timing) -> list[dict]:
    """Our NER model's training step against its torch.nn twin, float32 and float16 autocast."""
    from benchmarks.ner import load_data, native_twin
    from cs224n_nn.ner.model import WindowNERModule

    data = load_data(corpus, batch_size, n_batches)
    batches = [{k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in b.items()} for b in data.batches]
    tokens = sum(b["tags"].numel() for b in batches)

    def training_pass(loss_of, optimizer, autocast: bool):
        scaler = torch.amp.GradScaler(device.type, enabled=autocast)

        def run() -> None:
            for batch in batches:
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=torch.float16, enabled=autocast):
                    loss = loss_of(batch)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()

        return run

    rows = []
    for precision, autocast in (("32-true", False), ("16-mixed", True)):
        if autocast and device.type != "cuda":
            continue  # float16 autocast is a CUDA policy; the CPU dry run skips it
        torch.manual_seed(0)
        ours = WindowNERModule(encoder=data.encoder, word_vectors="none", sparse_embeddings=False).to(device)
        ours.train()
        ours_opt = ours.configure_optimizers()
        ours_opt = ours_opt["optimizer"] if isinstance(ours_opt, dict) else ours_opt
        twin = native_twin(ours)
        twin.train()
        twin_opt = torch.optim.Adam(twin.parameters(), lr=ours.hparams.lr, fused=True)
        row = ratio_row("NER training pass", f"{len(batches)} x {batch_size} windows, {precision}",
                        "torch.nn twin + Adam(fused=True)", training_pass(ours.training_loss, ours_opt, autocast),
                        training_pass(lambda b: twin.objective(twin(b["windows"]), b["tags"]), twin_opt, autocast),
                        device, timing)
        row["note"] = f"ours {tokens / row['ours_ms'] * 1e3:,.0f} tokens/s, native {tokens / row['native_ms'] * 1e3:,.0f}"
        row["ratio"] = 1.0 / row["ratio"]  # a throughput ratio: higher is better
        row["throughput"] = True
        rows.append(row)
    return rows


def run_step(name: str, fn: Callable[[], object], log) -> dict:
    log(f"[{name}]")
    start = time.perf_counter()
    try:
        result, error = fn(), None
    except Exception as err:  # one failing step must not hide the others' figures
        result, error = None, f"{type(err).__name__}: {err}"
        log(f"  failed: {error}")
    seconds = time.perf_counter() - start
    log(f"  ({seconds:.1f} s)")
    return {"name": name, "result": result, "error": error, "seconds": seconds}


def run_command(argv: list[str], timeout: float) -> dict:
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    tail = (done.stdout + done.stderr).strip().splitlines()[-25:]
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` exited {done.returncode}:\n" + "\n".join(tail))
    return {"command": " ".join(argv), "tail": tail}


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return (f"{props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}, "
                f"torch {torch.__version__}")
    return f"CPU ({platform.machine()}), torch {torch.__version__} (dry run: no GPU figures)"


def render(steps: list[dict], device: torch.device, total: float) -> str:
    lines = [
        "# GPU check", "",
        f"- device: {device_description(device)}",
        f"- command: `python -m {' '.join(['benchmarks.gpu_check', *sys.argv[1:]])}`",
        f"- total time: {total:.0f} s",
        "", "Ratios are ours / native for times (lower is better) and ours / native tokens/s for the "
        "NER training pass (higher is better); each the median of per-run ratios over interleaved runs.", "",
    ]
    for step in steps:
        lines.append(f"## {step['name']} ({step['seconds']:.0f} s)")
        lines.append("")
        if step["error"]:
            lines += ["FAILED:", "", "```", step["error"], "```", ""]
            continue
        result = step["result"]
        if isinstance(result, list):
            lines += ["| piece | setting | native twin | ours (ms) | native (ms) | ratio | note |",
                      "|---|---|---|---|---|---|---|"]
            lines += [f"| {r['piece']} | {r['setting']} | {r['native']} | {r['ours_ms']:.3f} | "
                      f"{r['native_ms']:.3f} | {r['ratio']:.2f} | {r.get('note', '')} |" for r in result]
        elif isinstance(result, dict):
            lines += [f"`{result['command']}`", "", "```", *result["tail"], "```"]
        else:
            lines.append(str(result))
        lines.append("")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="device to check (default cuda; cpu = dry run)")
    parser.add_argument("--tiny", action="store_true", help="smallest sizes, for the CPU dry run in the tests")
    parser.add_argument("--output", type=Path, default=Path("gpu_check.md"), help="Markdown file for the figures")
    parser.add_argument("--conll-dir", type=Path, default=DEFAULT_CONLL_DIR)
    parser.add_argument("--skip", default="", help="comma-separated steps to leave out: tests, train")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu-check: no CUDA device is visible (torch.cuda.is_available() is False); "
              "use --device cpu for a dry run", file=sys.stderr)
        return 2
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    log = lambda line: print(line, flush=True)  # noqa: E731
    timing = Timing(runs=7, min_run_time=0.0 if args.tiny else 0.05, warmup=1 if args.tiny else 3)
    numels = [1 << 10] if args.tiny else [1 << 20, 1 << 24]
    shapes = [(8, 6, 5)] if args.tiny else [(256, 300, 300), (4096, 300, 300)]
    opt_size = (2, 1 << 10) if args.tiny else (10, 1 << 20)
    corpus = args.conll_dir / "eng.train"
    if args.tiny or not corpus.is_file():
        corpus = ROOT / "cs224n_nn" / "data" / "sample_train.conll"
    ner_size = (32, 2) if args.tiny else (256, 40)

    start = time.perf_counter()
    steps = []
    if "tests" not in skip:
        steps.append(run_step("CUDA tests (pytest -k cuda)", lambda: run_command(
            [sys.executable, "-m", "pytest", "-q", "-k", "cuda", "-p", "no:cacheprovider"], timeout=240), log))
    steps.append(run_step("activations, forward + backward", lambda: activation_rows(device, numels, timing), log))
    steps.append(run_step("affine and dense layer, forward + backward", lambda: affine_rows(device, shapes, timing), log))
    steps.append(run_step("optimizer step", lambda: optimizer_rows(device, *opt_size, timing), log))
    steps.append(run_step("NER training pass", lambda: ner_rows(device, corpus, *ner_size, timing), log))
    if "train" not in skip:
        if (args.conll_dir / "eng.train").is_file():
            steps.append(run_step("one CoNLL-2003 epoch on the GPU", lambda: run_command(
                [sys.executable, "-m", "cs224n_nn.cli", "train", "--config", str(ROOT / "experiments" / "conll2003.yaml"),
                 "--trainer.accelerator", "gpu" if device.type == "cuda" else "cpu", "--trainer.devices", "1",
                 "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(args.output.resolve().parent / "gpu_run")],
                timeout=300), log))
        else:
            log(f"[train] skipped: CoNLL-2003 not found at {args.conll_dir}")
    report = render(steps, device, time.perf_counter() - start)
    args.output.write_text(report, encoding="utf-8")
    print(report)
    print(f"wrote {args.output}")
    return 0 if all(step["error"] is None for step in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
