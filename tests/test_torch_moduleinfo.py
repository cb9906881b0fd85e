"""cs224n_nn.nn against PyTorch's own ModuleInfo database (``module_db``), the outside measure of drop-in.

For each twin in ``_torch_db.MODULE_TWINS`` that module_db covers and each dtype its ModuleInfo declares
(torch.nn.Dropout has no ModuleInfo: ``test_dropout_module`` runs it on the dropout OpInfo's samples):

* ``test_module``: ours, built with the ModuleInput's constructor arguments and torch's parameters
  (``load_state_dict``), gives the same output and the same gradients (inputs and parameters) for a
  random cotangent as the torch module.
* ``test_module_error``: every ``module_error_inputs`` case raises in ours too (and in torch).
* ``test_module_gradcheck`` (float64): torch's test_modules ``test_grad`` / ``test_gradgrad``: gradcheck
  and gradgradcheck over the inputs and parameters, with batched gradients (torch's testing defaults).

A case our API refuses on purpose is listed in ``_torch_db.REFUSALS``; its test asserts the refusal.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils import _pytree as pytree

import _torch_db as db

_cm = db._cm


def _build(cls, module_input, dtype):
    ci = module_input.constructor_input
    args, kwargs = db.clone_tree((ci.args, ci.kwargs), lambda t: False)
    return cls(*args, **kwargs).to(dtype)


def _params(requires_grad: bool = True, dtypes=None):
    out = []
    for name, twin in db.MODULE_TWINS.items():
        for dtype in (dtypes or db.module_dtypes(twin.torch_cls)):
            if dtype not in db.module_dtypes(twin.torch_cls):
                continue
            for i, (mi, x) in enumerate(db.module_inputs(twin.torch_cls, dtype, requires_grad)):
                if x.forward_input is None:
                    continue
                out.append(pytest.param(name, dtype, i, id=f"{name}-{db.dtype_name(dtype)}-{i}-{_describe(x)}"))
    return out


def _describe(module_input) -> str:
    ci, fi = module_input.constructor_input, module_input.forward_input
    ctor = ",".join([*map(db._describe, ci.args), *(f"{k}={db._describe(v)}" for k, v in ci.kwargs.items())])
    fwd = "-".join([*map(db._describe, fi.args), *(f"{k}={db._describe(v)}" for k, v in fi.kwargs.items())])
    return f"{module_input.desc or 'default'}-ctor({ctor})-{fwd}"


def _pair(name, dtype, index):
    """(twin, torch module, its inputs, the refusal if any, a builder of ours from the torch module)."""
    twin = db.MODULE_TWINS[name]
    _, module_input = db.module_inputs(twin.torch_cls, dtype, True)[index]
    torch.manual_seed(db.SEED)
    theirs = _build(twin.torch_cls, module_input, dtype)
    fi = module_input.forward_input
    args, kwargs = db.clone_tree((fi.args, fi.kwargs))
    refusal = db.refusal_for(name, twin.to_functional(args, theirs), {**db.module_options(theirs), **kwargs})

    def build_ours():
        ours = _build(twin.ours_cls, module_input, dtype)
        ours.load_state_dict(theirs.state_dict())
        return ours

    return twin, theirs, (args, kwargs), refusal, build_ours


@pytest.mark.parametrize("name, dtype, index", _params())
def test_module(name, dtype, index):
    twin, theirs, (args, kwargs), refusal, build_ours = _pair(name, dtype, index)
    if refusal is not None:
        db.assert_refused(refusal, lambda: build_ours()(*args, **kwargs))
        return
    ours = build_ours()
    assert isinstance(ours, twin.torch_cls)
    o_args, o_kwargs = db.clone_tree((args, kwargs))

    def run(m, a, kw, cot=None):
        out = [o for o in pytree.tree_leaves(m(*a, **kw)) if isinstance(o, torch.Tensor)]
        leaves = db.differentiable_leaves((a, kw)) + [p for p in m.parameters() if p.requires_grad]
        g = None
        if leaves and any(o.requires_grad for o in out):
            cot = db.cotangents_like(out) if cot is None else cot
            g = db.grads(out, leaves, cot)
        return out, leaves, g, cot

    theirs_out, _, g_theirs, cot = run(theirs, args, kwargs)
    ours_out, leaves, g_ours, _ = run(ours, o_args, o_kwargs)
    truth_out, g_truth = [None] * len(theirs_out), None
    if dtype != torch.float64:  # the float64 yardstick, as in test_torch_opinfo
        up = lambda t: t.to(torch.float64) if t.is_floating_point() else t  # noqa: E731
        x_args, x_kwargs = pytree.tree_map_only(torch.Tensor, up, db.clone_tree((args, kwargs)))
        truth_out, _, g_truth, _ = run(copy.deepcopy(theirs).double(), x_args, x_kwargs,
                                       None if cot is None else [c.double() for c in cot])
    assert len(ours_out) == len(theirs_out)
    for k, (a, b, t) in enumerate(zip(ours_out, theirs_out, truth_out)):
        db.assert_same(a, b, name, dtype, f"output {k}", truth=t)
    assert (g_ours is None) == (g_theirs is None)
    if g_theirs is not None:
        db.assert_same_grads(g_ours, g_theirs, leaves, name, dtype, g_truth)


def _error_params():
    out = []
    for name, twin in db.MODULE_TWINS.items():
        for i, (mi, e) in enumerate(db.module_error_inputs(twin.torch_cls, torch.float32)):
            out.append(pytest.param(name, i, id=f"{name}-{i}-{e.error_on.name}-{_describe(e.module_error_input)}"))
    return out


@pytest.mark.parametrize("name, index", _error_params())
def test_module_error(name, index):
    twin = db.MODULE_TWINS[name]
    _, err = db.module_error_inputs(twin.torch_cls, torch.float32)[index]
    module_input = err.module_error_input

    def attempt(cls):
        m = _build(cls, module_input, torch.float32)
        if err.error_on == _cm.ModuleErrorEnum.CONSTRUCTION_ERROR:
            raise AssertionError(f"{cls.__qualname__} was constructed although the case is a construction error")
        fi = module_input.forward_input
        a, kw = db.clone_tree((fi.args, fi.kwargs))
        m(*a, **kw)

    with pytest.raises(err.error_type, match=err.error_regex):  # the case is an error for torch ...
        attempt(twin.torch_cls)
    with pytest.raises(db.INPUT_ERRORS):  # ... and for ours, at the same step (constructor or forward)
        attempt(twin.ours_cls)


def _gradcheck_params():
    out = []
    for p in _params(dtypes=[torch.float64]):
        name, dtype, index = p.values
        mi, _ = db.module_inputs(db.MODULE_TWINS[name].torch_cls, dtype, True)[index]
        checks = ["grad"] + (["gradgrad"] if mi.supports_gradgrad else [])
        for check in checks:
            out.append(pytest.param(name, index, check, id=p.id.replace("-float64-", f"-{check}-", 1)))
    return out


# slow: about 230 gradcheck/gradgradcheck runs (210 of them CrossEntropyLoss's grid of shapes x options),
# about half of this file's time; still part of the default run.
@pytest.mark.slow
@pytest.mark.parametrize("name, index, check", _gradcheck_params())
def test_module_gradcheck(name, index, check):
    """torch's test_modules._test_gradients_helper: the inputs that require grad and the parameters."""
    twin, theirs, (args, kwargs), refusal, build_ours = _pair(name, torch.float64, index)
    if refusal is not None:
        db.assert_refused(refusal, lambda: build_ours()(*args, **kwargs))
        return
    mi, _ = db.module_inputs(twin.torch_cls, torch.float64, True)[index]
    ours = build_ours()
    with torch.no_grad():
        theirs_out = [o for o in pytree.tree_leaves(theirs(*args, **kwargs)) if isinstance(o, torch.Tensor)]
    if not all(o.isfinite().all() for o in theirs_out):
        # A random draw that makes torch's own loss NaN (e.g. every target equal to ignore_index with
        # reduction="mean": 0/0); finite differences of NaN mean nothing and torch's own gradcheck fails
        # on it too. test_module compares ours with torch on this very case (NaN output, zero gradient);
        # here ours must give the same non-finite output.
        with torch.no_grad():
            ours_out = [o for o in pytree.tree_leaves(ours(*args, **kwargs)) if isinstance(o, torch.Tensor)]
        for a, b in zip(ours_out, theirs_out, strict=True):
            torch.testing.assert_close(a, b, equal_nan=True)
        return
    params = tuple(p for p in ours.parameters() if p.requires_grad)
    flat, spec = pytree.tree_flatten((args, kwargs))
    diff = [i for i, t in enumerate(flat) if isinstance(t, torch.Tensor) and t.requires_grad]

    def f(*tensors):
        leaves = list(flat)
        for i, t in zip(diff, tensors):
            leaves[i] = t
        a, kw = pytree.tree_unflatten(leaves, spec)
        return tuple(o for o in pytree.tree_leaves(ours(*a, **kw)) if isinstance(o, torch.Tensor))

    inputs = tuple(flat[i] for i in diff) + params
    assert inputs, "nothing to differentiate"
    fast_mode = True if mi.gradcheck_fast_mode is None else mi.gradcheck_fast_mode
    options = dict(check_batched_grad=True, fast_mode=fast_mode,
                   nondet_tol=mi.gradcheck_nondet_tol, raise_exception=True)
    if check == "grad":
        assert torch.autograd.gradcheck(f, inputs, **options)
    else:
        assert torch.autograd.gradgradcheck(f, inputs, **options)


def _dropout_params():
    name = "nn.functional.dropout"
    return [pytest.param(dtype, i,
                         id=f"Dropout-{db.dtype_name(dtype)}-{i}-{db.describe_call(s.input, s.args, s.kwargs)}")
            for dtype in db.op_dtypes(name) for i, s in enumerate(db.op_samples(name, dtype, "sample", False))]


@pytest.mark.parametrize("dtype, index", _dropout_params())
def test_dropout_module(dtype, index):
    """torch.nn.Dropout has no ModuleInfo in module_db: its twin runs on the dropout OpInfo's samples instead.

    Same p, same train/eval mode, same seed before each forward: the same output and gradient as
    torch's inverted dropout on the same draw (``db.inverted_dropout``: torch.nn.Dropout's formula; its
    own mask comes from another random stream); p = 0, 0.5, 1; training and eval; 2-D, 1-D and 0-d inputs.
    """
    sample = db.op_samples("nn.functional.dropout", dtype, "sample", False)[index]
    p, training = sample.kwargs.get("p", 0.5), sample.kwargs.get("training", True)
    outs, grads = [], []
    torch_twin = lambda x: db.inverted_dropout(x, p, training)  # noqa: E731
    for m in (torch_twin, db.MODULE_TWINS["Dropout"].ours_cls(p).train(training)):
        x = db.clone_tree(sample.input, lambda t: True)
        torch.manual_seed(42)
        y = m(x)
        (g,) = torch.autograd.grad(y, x, db.cotangents_like([y])[0])
        outs.append(y)
        grads.append(g)
    db.assert_same(outs[1], outs[0], "Dropout", dtype, "output")
    db.assert_same(grads[1], grads[0], "Dropout", dtype, "grad of input")
