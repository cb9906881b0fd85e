"""The compiled path (``fused=True``, and the default for big groups): the
rule compiled with torch.compile.

Compiling with inductor takes tens of seconds on a small CPU, so this file
compiles with it once; the other tests replace the compiler (dynamo's
``eager`` backend, or one that fails) and generate no C++.
"""

from __future__ import annotations

import pytest
import torch

import cs224n_nn.optim as ours
from cs224n_nn import _compile
from cs224n_nn.optim import _compiled_update


def make_params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=torch.float64).requires_grad_()
            for shape in [(5, 4), (4,), (3, 5)]]


def run(opt, params, steps, schedule=True):
    """Minimise sum(p^2/2 + sin(p)) per parameter (gradient p + cos(p)),
    halving lr every 4 steps so that the compiled path sees lr change."""
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5) if schedule else None
    for _ in range(steps):
        for p in params:
            p.grad = p.detach() + torch.cos(p.detach())
        opt.step()
        if sched is not None:
            sched.step()


@pytest.mark.slow
def test_compiled_adam_matches_eager_and_torch():
    kw = dict(lr=0.05, amsgrad=True, weight_decay=0.1)
    fused_params, eager_params, twin_params = make_params(), make_params(), make_params()
    fused = ours.Adam(fused_params, fused=True, **kw)
    run(fused, fused_params, 12)
    run(ours.Adam(eager_params, foreach=True, **kw), eager_params, 12)
    run(torch.optim.Adam(twin_params, foreach=False, **kw), twin_params, 12)
    assert fused._compiled and not _compile._failed  # it really compiled
    for f, e, t in zip(fused_params, eager_params, twin_params):
        torch.testing.assert_close(f, e, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(f, t, rtol=1e-10, atol=1e-12)


def _broken_compile(fn, **kwargs):
    def compiled(*args, **kw):
        raise RuntimeError("no C++ compiler in this test")
    return compiled


@pytest.mark.parametrize("name", ["SGD", "AdaGrad", "Adam", "AdamW"])
def test_compile_failure_warns_once_and_runs_eagerly(name, monkeypatch):
    monkeypatch.setattr(_compiled_update.torch, "compile", _broken_compile)
    monkeypatch.setattr(_compile, "_failed", False)
    kw = dict(lr=0.05, momentum=0.9) if name == "SGD" else dict(lr=0.05)
    fused_params, eager_params = make_params(), make_params()
    with pytest.warns(RuntimeWarning, match="torch.compile failed") as record:
        run(getattr(ours, name)(fused_params, fused=True, **kw), fused_params, 10)
    assert len([w for w in record if "torch.compile failed" in str(w.message)]) == 1
    run(getattr(ours, name)(eager_params, foreach=True, **kw), eager_params, 10)
    for f, e in zip(fused_params, eager_params):
        assert torch.equal(f, e)


def test_fused_takes_sparse_gradients_row_wise():
    # the sparse table's touched rows are updated eagerly; nothing is compiled for them
    layer = torch.nn.Embedding(5, 2, sparse=True)
    start = layer.weight.detach().clone()
    opt = ours.AdaGrad(layer.parameters(), fused=True)
    for _ in range(2):
        layer(torch.tensor([1, 2])).sum().backward()
        opt.step()
    changed = (layer.weight.detach() != start).any(dim=1)
    assert changed.tolist() == [False, True, True, False, False]
    assert not opt._compiled


@pytest.mark.parametrize("name", ["Adadelta", "RMSProp"])
def test_no_fused_keyword_where_torch_has_none(name):
    with pytest.raises(TypeError):
        getattr(ours, name)(make_params(), fused=True)


def _dynamo_only_compile(real_compile):
    """torch.compile with dynamo's no-op backend: the same tracing, guards and
    recompile limit as the default backend, without inductor's minutes of C++."""
    def compile_(fn, **kwargs):
        return real_compile(fn, backend="eager", dynamic=kwargs.get("dynamic"))
    return compile_


def _graphs() -> int:
    from torch._dynamo.utils import counters
    return counters["stats"]["unique_graphs"]


def test_many_group_layouts_in_one_process_stay_compiled(monkeypatch):
    # Past torch._dynamo.config.recompile_limit (8) variants of one function
    # dynamo silently runs it eagerly; one layout per group must not add up.
    monkeypatch.setattr(_compiled_update.torch, "compile", _dynamo_only_compile(torch.compile))
    limit = torch._dynamo.config.recompile_limit
    n = limit + 3
    g = torch.Generator().manual_seed(1)

    def layouts(offset):
        # group i holds i + 1 tensors of distinct shapes: every group is a new layout
        return [[torch.randn(offset + i + 1, j + 1, generator=g, dtype=torch.float64).requires_grad_()
                 for j in range(i + 1)] for i in range(n)]

    one_opt = layouts(0)  # one optimizer, n groups
    many_opts = layouts(n)  # n optimizers, one group each
    twins = [[[p.detach().clone().requires_grad_() for p in grp] for grp in groups]
             for groups in (one_opt, many_opts)]
    kw = dict(lr=0.05, weight_decay=0.1)
    fused = [ours.Adam([{"params": grp} for grp in one_opt], fused=True, **kw)]
    fused += [ours.Adam(grp, fused=True, **kw) for grp in many_opts]
    eager = [ours.Adam([{"params": grp} for grp in twins[0]], foreach=True, **kw)]
    eager += [ours.Adam(grp, foreach=True, **kw) for grp in twins[1]]
    all_params = [p for groups in (one_opt, many_opts) for grp in groups for p in grp]
    all_twins = [p for groups in twins for grp in groups for p in grp]

    def step(opts, params):
        for p in params:
            p.grad = p.detach() + torch.cos(p.detach())
        for opt in opts:
            opt.step()

    step(fused, all_params)  # creates state: eager by design
    step(eager, all_twins)
    before = _graphs()
    for opt in fused:  # the first compiled step of each layout traces a new graph
        graphs = _graphs()
        for p in (p for grp in opt.param_groups for p in grp["params"]):
            p.grad = p.detach() + torch.cos(p.detach())
        opt.step()
        assert _graphs() > graphs, "a layout past the recompile limit ran eagerly"
    assert _graphs() - before == 2 * n
    assert not _compile._failed
    step(eager, all_twins)
    for _ in range(2):  # later steps reuse each layout's graph: nothing new is traced
        step(fused, all_params)
        step(eager, all_twins)
    assert _graphs() - before == 2 * n
    for f, e in zip(all_params, all_twins):
        torch.testing.assert_close(f, e, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- the default path


def _count_compiles(monkeypatch, compile_):
    made = []

    def counting(fn, **kwargs):
        made.append(fn)
        return compile_(fn, **kwargs)

    monkeypatch.setattr(_compiled_update.torch, "compile", counting)
    return made


@pytest.mark.parametrize("name", ["SGD", "AdaGrad", "Adadelta", "RMSProp", "Adam", "AdamW"])
def test_default_compiles_groups_above_the_threshold(name, monkeypatch):
    # the threshold lowered below the test's 39 elements: the default path must compile
    # once (one layout) and take the steps the eager multi-tensor path takes
    made = _count_compiles(monkeypatch, _dynamo_only_compile(torch.compile))
    monkeypatch.setattr(_compiled_update, "COMPILE_MIN_NUMEL", 30)
    kw = dict(lr=0.05, momentum=0.9) if name in ("SGD", "RMSProp") else dict(lr=0.05)
    default_params, eager_params = make_params(), make_params()
    opt = getattr(ours, name)(default_params, **kw)
    run(opt, default_params, 6)
    run(getattr(ours, name)(eager_params, foreach=True, **kw), eager_params, 6)
    assert len(made) == 1 and len(opt._compiled) == 1 and not _compile._failed
    for d, e in zip(default_params, eager_params):
        torch.testing.assert_close(d, e, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kw", [{}, dict(foreach=True), dict(foreach=False), dict(fused=False)], ids=str)
def test_no_compilation_below_the_threshold_or_when_told_not_to(kw, monkeypatch):
    made = _count_compiles(monkeypatch, _broken_compile)
    if kw:  # an explicit path is obeyed even for a group above the threshold
        monkeypatch.setattr(_compiled_update, "COMPILE_MIN_NUMEL", 1)
    params = make_params()
    assert sum(p.numel() for p in params) < _compiled_update.COMPILE_MIN_NUMEL or kw
    run(ours.Adam(params, **kw), params, 4)
    assert made == []


def _refusing_compile(fn, **kwargs):
    raise RuntimeError("Dynamo is not supported on this Python (as torch.compile says on a new one)")


@pytest.mark.parametrize("broken", [_broken_compile, _refusing_compile], ids=["first-call", "compile"])
def test_default_path_falls_back_with_one_warning(broken, monkeypatch):
    _count_compiles(monkeypatch, broken)
    monkeypatch.setattr(_compile, "_failed", False)
    monkeypatch.setattr(_compiled_update, "COMPILE_MIN_NUMEL", 1)
    default_params, eager_params = make_params(), make_params()
    with pytest.warns(RuntimeWarning, match="torch.compile failed") as record:
        for _ in range(2):  # a second optimizer does not warn again, nor try again
            opt = ours.Adam(default_params, lr=0.05)
            run(opt, default_params, 5)
    assert len([w for w in record if "torch.compile failed" in str(w.message)]) == 1
    assert _compile._failed
    for _ in range(2):
        run(ours.Adam(eager_params, lr=0.05, foreach=True), eager_params, 5)
    for d, e in zip(default_params, eager_params):
        assert torch.equal(d, e)


def test_inside_a_compiled_region_the_rule_is_traced_not_compiled_again(monkeypatch):
    made = _count_compiles(monkeypatch, _dynamo_only_compile(torch.compile))
    monkeypatch.setattr(_compiled_update, "COMPILE_MIN_NUMEL", 1)
    monkeypatch.setattr(_compiled_update.torch.compiler, "is_compiling", lambda: True)
    params, eager_params = make_params(), make_params()
    run(ours.Adam(params, lr=0.05), params, 3)
    run(ours.Adam(eager_params, lr=0.05, foreach=True), eager_params, 3)
    assert made == []
    for d, e in zip(params, eager_params):
        assert torch.equal(d, e)
