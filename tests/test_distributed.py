"""Several processes (issue 7, item 1), on CPU with the gloo backend.

1. ``cs224n-nn train ... --trainer.strategy ddp --trainer.devices 2
   --trainer.accelerator cpu`` in a subprocess (Lightning starts the second
   rank itself): both ranks end with identical parameters, the entity-F1
   metric is the sum of both ranks' counts, and only one set of checkpoint
   files is written.
2. ``torch.distributed.optim.ZeroRedundancyOptimizer`` wrapping each of the
   six cs224n-nn optimizers, two processes started with
   ``torch.multiprocessing.spawn`` (not a fork of pytest): the sharded update
   equals a one-process run of the same optimizer on the same data.

CUDA/nccl is the same code with ``--trainer.accelerator gpu`` (docs/scaling.md);
the last test runs it where two GPUs exist and skips elsewhere.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import cs224n_nn.optim as coptim

ROOT = Path(__file__).resolve().parents[1]


class SaveRankState(pl.Callback):
    """Each rank writes its final weights, logged metrics and local metric counts (test helper)."""

    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.local_counts: dict[str, torch.Tensor] = {}

    def on_validation_epoch_end(self, trainer, pl_module):
        # Callback hooks run before the module's, which syncs and resets the
        # metric: these are this rank's own counts of the last validation.
        entity = pl_module.metrics["val"]["entity"]
        self.local_counts = {name: getattr(entity, name).clone() for name in ("tp", "found", "gold")}

    def on_train_end(self, trainer, pl_module):
        torch.save({"state_dict": {k: v.detach().clone() for k, v in pl_module.state_dict().items()},
                    "logged": {k: v.detach().clone() for k, v in trainer.callback_metrics.items()},
                    "local_counts": self.local_counts, "world_size": trainer.world_size},
                   os.path.join(self.out_dir, f"rank{trainer.global_rank}.pt"))


def _ddp_train(workdir: Path, accelerator: str) -> subprocess.CompletedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "callbacks.yaml").write_text(
        "trainer:\n  callbacks:\n    - class_path: test_distributed.SaveRankState\n"
        f"      init_args: {{out_dir: '{workdir}'}}\n")
    argv = [sys.executable, "-m", "cs224n_nn.cli", "train", "--config", str(ROOT / "experiments" / "sample.yaml"),
            "--config", "callbacks.yaml", "--model.word_vectors", "none", "--model.hidden_dims", "[8]",
            "--data.features", "[word, casing]", "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "6",
            "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", accelerator,
            "--trainer.enable_progress_bar", "false",  # default loggers kept: they are part of what must not deadlock
            "--trainer.enable_model_summary", "false", "--checkpoint.dirpath", "ckpt", "--demo_text", ""]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    # Rank 0 starts rank 1 as its own child: a session of their own lets a
    # timeout end both (a deadlocked collective would otherwise leave rank 1).
    proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"DDP training did not finish in 180 s (deadlock?)\n{out[-2000:]}\n{err[-3000:]}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ddp")
    done = _ddp_train(workdir, "cpu")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ranks = [torch.load(workdir / f"rank{r}.pt", weights_only=True) for r in range(2)]
    return workdir, done, ranks


def test_ddp_ranks_end_with_identical_parameters(ddp_run):
    _, _, (r0, r1) = ddp_run
    assert r0["world_size"] == r1["world_size"] == 2
    assert r0["state_dict"].keys() == r1["state_dict"].keys()
    for key in r0["state_dict"]:
        assert torch.equal(r0["state_dict"][key], r1["state_dict"][key]), key


def test_ddp_entity_f1_is_the_sum_of_both_ranks_counts(ddp_run):
    from torch.utils.data.distributed import DistributedSampler

    from cs224n_nn.ner.conll import read_conll, spans
    from cs224n_nn.ner.datamodule import SAMPLE_FILES

    _, _, ranks = ddp_run
    dev = read_conll(SAMPLE_FILES["val"])
    for rank, state in enumerate(ranks):
        # Each rank scored its own shard of the dev sentences: Lightning's
        # DistributedSampler(shuffle=False), padded by repetition to equal size.
        shard = list(DistributedSampler(range(len(dev)), num_replicas=2, rank=rank, shuffle=False))
        gold = sum(len(spans(dev[i].tags, "IOB1")) for i in shard)
        assert int(state["local_counts"]["gold"].sum()) == gold
    tp, found, gold = (sum(state["local_counts"][k].sum() for state in ranks).double() for k in ("tp", "found", "gold"))
    expected_f1 = 2 * tp / (found + gold)  # = 2PR / (P + R) on the summed counts
    for state in ranks:
        logged = state["logged"]["val/f1"].double()
        torch.testing.assert_close(logged, expected_f1, rtol=1e-6, atol=1e-7)


def test_ddp_writes_one_set_of_checkpoints_and_reports_once(ddp_run):
    workdir, done, (r0, _) = ddp_run
    files = sorted(p.name for p in (workdir / "ckpt").iterdir())
    assert files == ["best.ckpt", "last.ckpt"]  # rank 1 wrote nothing of its own (no best-v1.ckpt)
    last = torch.load(workdir / "ckpt" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 2 * 6
    for key, value in last["state_dict"].items():
        assert torch.equal(value, r0["state_dict"][key]), key
    assert done.stdout.count("best checkpoint: ") == 1
    assert done.stdout.strip().splitlines()[-1].endswith("best.ckpt")


# -- ZeroRedundancyOptimizer ------------------------------------------------------

OPTIMIZERS = {
    "SGD": (coptim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    "AdaGrad": (coptim.AdaGrad, dict(lr=0.1, lr_decay=0.01)),
    "Adadelta": (coptim.Adadelta, dict(lr=1.0, rho=0.8)),
    "RMSProp": (coptim.RMSProp, dict(lr=0.01, momentum=0.5, centered=True)),
    "Adam": (coptim.Adam, dict(lr=0.01, amsgrad=True)),
    "AdamW": (coptim.AdamW, dict(lr=0.01, weight_decay=0.1)),
}
STEPS = 5


def _problem():
    """A small two-layer network (4 parameter tensors to shard) and 8 examples, float64."""
    gen = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
    x = torch.randn(8, 5, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (8,), generator=gen)
    return net, x, y


def _train(net, optimizer, x, y, reduce_grads=None):
    for _ in range(STEPS):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        if reduce_grads is not None:
            reduce_grads(net)
        optimizer.step()
    return [p.detach().clone() for p in net.parameters()]


def _zero_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    from torch.distributed.optim import ZeroRedundancyOptimizer

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        def average(net):
            for p in net.parameters():
                dist.all_reduce(p.grad)  # sum of the ranks' half-batch mean gradients
                p.grad /= world

        results, owned = {}, {}
        for name, (cls, kwargs) in OPTIMIZERS.items():
            net, x, y = _problem()
            zero = ZeroRedundancyOptimizer(net.parameters(), optimizer_class=cls, **kwargs)
            half = slice(rank * 4, rank * 4 + 4)
            results[name] = _train(net, zero, x[half], y[half], average)
            owned[name] = sum(p.numel() for g in zero.optim.param_groups for p in g["params"])
            assert isinstance(zero.optim, cls)
        torch.save({"params": results, "owned": owned}, os.path.join(out_dir, f"zero{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def zero_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("zero")
    mp.spawn(_zero_worker, args=(2, str(tmp / "store"), str(tmp)), nprocs=2, join=True)
    return [torch.load(tmp / f"zero{r}.pt", weights_only=True) for r in range(2)]


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_zero_redundancy_optimizer_matches_one_process(zero_results, name):
    cls, kwargs = OPTIMIZERS[name]
    net, x, y = _problem()
    expected = _train(net, cls(net.parameters(), **kwargs), x, y)
    start = [p.detach() for p in _problem()[0].parameters()]
    for rank in range(2):
        got = zero_results[rank]["params"][name]
        for e, g, s in zip(expected, got, start):
            torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-12)
            assert not torch.equal(g, s)  # the parameters did move
    # each rank held the state of only its own shard
    owned = [zero_results[rank]["owned"][name] for rank in range(2)]
    assert all(0 < n < sum(p.numel() for p in start) for n in owned)
    assert sum(owned) == sum(p.numel() for p in start)


@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_ddp_on_two_gpus_with_nccl(tmp_path):
    done = _ddp_train(tmp_path, "gpu")
    assert done.returncode == 0, done.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True, map_location="cpu") for r in range(2))
    for key in r0["state_dict"]:
        assert torch.equal(r0["state_dict"][key], r1["state_dict"][key]), key
