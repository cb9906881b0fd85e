"""cs224n_nn.functional against PyTorch's own OpInfo database (``op_db``), the outside measure of drop-in.

For each twin in ``_torch_db.OP_TWINS`` and each of float32/float64/float16/bfloat16 its OpInfo
declares on CPU:

* ``test_sample`` / ``test_reference``: every ``sample_inputs`` / ``reference_inputs`` case gives our
  values and (where torch differentiates that dtype) our gradients for a random cotangent, equal to
  torch's within the dtype's tolerance (for dropout, whose mask torch draws from another stream,
  torch's formula on our draw: ``_torch_db.inverted_dropout``).
* ``test_error``: every ``error_inputs`` case raises in ours too (and in torch, which guards the harness).
* ``test_gradcheck``: in float64, torch's own gradient tests on ``sample_inputs(requires_grad=True)``:
  gradcheck (with batched gradients when the OpInfo asks), gradgradcheck, forward-over-reverse and
  forward AD (with batched forward gradients when asked), each as the OpInfo's flags say.

A case our API refuses on purpose is listed in ``_torch_db.REFUSALS``; its test asserts the refusal.
"""

from __future__ import annotations

import pytest
import torch

import _torch_db as db


def _params(kind: str):
    out = []
    for name, twin in db.OP_TWINS.items():
        if kind == "reference" and not db.has_reference_inputs(name):
            continue
        for dtype in db.op_dtypes(name):
            samples = db.op_samples(name, dtype, kind, False)
            start = 0
            if kind == "reference":
                # reference_inputs starts by repeating sample_inputs (fresh values, same cases), which
                # test_sample already runs; keep only the cases it adds.
                plain = [db.describe_call(s.input, s.args, s.kwargs)
                         for s in db.op_samples(name, dtype, "sample", False)]
                ref = [db.describe_call(s.input, s.args, s.kwargs) for s in samples]
                start = len(plain) if ref[:len(plain)] == plain else 0
            for i in range(start, len(samples)):
                s = samples[i]
                out.append(pytest.param(
                    name, dtype, kind, i,
                    id=f"{twin.ours_name}-{db.dtype_name(dtype)}-{i}-"
                       f"{db.describe_call(s.input, s.args, s.kwargs, s.name)}"))
    return out


def _check_sample(name: str, dtype: torch.dtype, kind: str, index: int) -> None:
    twin = db.OP_TWINS[name]
    op = twin.opinfo
    sample = db.op_samples(name, dtype, kind, False)[index]
    differentiable = op.supports_autograd and dtype in db.op_backward_dtypes(name)

    # torch's gradient tests differentiate sample.input and the floating tensors among sample.args.
    def fresh():
        input = db.clone_tree(sample.input, lambda t: differentiable)
        args = db.clone_tree(sample.args, lambda t: differentiable)
        kwargs = db.clone_tree(sample.kwargs, lambda t: False)
        return input, args, kwargs

    input, args, kwargs = fresh()
    refusal = db.refusal_for(name, twin.to_functional(input, args), kwargs)
    if refusal is not None:
        db.assert_refused(refusal, lambda: twin.call_ours(input, *args, **kwargs))
        return

    t_input, t_args, t_kwargs = fresh()
    process = sample.output_process_fn_grad or (lambda x: x)

    def outputs(out):
        return [o for o in torch.utils._pytree.tree_leaves(process(out)) if isinstance(o, torch.Tensor)]

    def run(fn, inp, a, kw, cot=None):
        out = outputs(fn(inp, *a, **kw))
        leaves = db.differentiable_leaves((inp, a))
        g = None
        if leaves and any(o.requires_grad for o in out):
            cot = db.cotangents_like(out) if cot is None else cot
            g = db.grads(out, leaves, cot)
        return out, leaves, g, cot

    try:
        theirs_out, _, g_theirs, cot = run(twin.torch_op, t_input, t_args, t_kwargs)
    except db.INPUT_ERRORS:
        # torch refuses the case itself on CPU (e.g. embedding's "scale_grad_by_freq not supported with
        # sparse gradients", raised in backward): ours must refuse it too, in forward or backward.
        with pytest.raises(db.INPUT_ERRORS):
            run(twin.call_ours, input, args, kwargs)
        return
    ours_out, ours_leaves, g_ours, _ = run(twin.call_ours, input, args, kwargs)

    # Below float64, the same case computed by torch in float64 is the yardstick (see db.assert_same).
    truth_out, g_truth = [None] * len(theirs_out), None
    if dtype != torch.float64:
        up = lambda t: t.to(torch.float64) if t.is_floating_point() else t  # noqa: E731
        x_input, x_args, x_kwargs = db.clone_tree((input, args, kwargs))
        x_input, x_args, x_kwargs = torch.utils._pytree.tree_map_only(torch.Tensor, up, (x_input, x_args, x_kwargs))
        truth_out, _, g_truth, _ = run(twin.torch_op, x_input, x_args, x_kwargs,
                                       None if cot is None else [c.double() for c in cot])

    assert len(ours_out) == len(theirs_out)
    for k, (a, b, t) in enumerate(zip(ours_out, theirs_out, truth_out)):
        db.assert_same(a, b, name, dtype, f"output {k}", truth=t)
        assert a.requires_grad == b.requires_grad, \
            f"output {k}: requires_grad {a.requires_grad} vs torch's {b.requires_grad}"
    assert (g_ours is None) == (g_theirs is None)
    if g_theirs is None:
        return
    for dev in db.deviations_for(name):  # documented places where ours deliberately differs
        m = dev.where(input)
        assert dev.accept(g_ours[0][m], cot[0].expand_as(input)[m]).all(), dev.reason
        g_theirs[0] = torch.where(m, g_ours[0], g_theirs[0])
        if g_truth is not None:
            g_truth[0] = torch.where(m, g_ours[0].double(), g_truth[0])
    db.assert_same_grads(g_ours, g_theirs, ours_leaves, name, dtype, g_truth)


@pytest.mark.parametrize("name, dtype, kind, index", _params("sample"))
def test_sample(name, dtype, kind, index):
    _check_sample(name, dtype, kind, index)


@pytest.mark.parametrize("name, dtype, kind, index", _params("reference"))
def test_reference(name, dtype, kind, index):
    _check_sample(name, dtype, kind, index)


def _error_params():
    out = []
    for name, twin in db.OP_TWINS.items():
        if not db.has_error_inputs(name):
            continue
        for i, e in enumerate(db.op_samples(name, torch.float32, "error", False)):
            s = e.sample_input
            out.append(pytest.param(name, i, id=f"{twin.ours_name}-{i}-{db.describe_call(s.input, s.args, s.kwargs)}"))
    return out


@pytest.mark.parametrize("name, index", _error_params())
def test_error(name, index):
    twin = db.OP_TWINS[name]
    err = db.op_samples(name, torch.float32, "error", False)[index]
    s = err.sample_input
    with pytest.raises(err.error_type, match=err.error_regex):  # the case is an error for torch ...
        twin.opinfo.op(*db.clone_tree((s.input, *s.args)), **db.clone_tree(s.kwargs))
    with pytest.raises(db.INPUT_ERRORS):  # ... and for ours
        twin.call_ours(*db.clone_tree((s.input, *s.args)), **db.clone_tree(s.kwargs))


def _gradcheck_params():
    out = []
    for name, twin in db.OP_TWINS.items():
        if torch.float64 not in db.op_dtypes(name):
            continue
        samples = db.op_samples(name, torch.float64, "sample", True)
        for check in db.op_checks(name):
            for i, s in enumerate(samples):
                out.append(pytest.param(
                    name, check, i,
                    id=f"{twin.ours_name}-{check}-{i}-{db.describe_call(s.input, s.args, s.kwargs)}"))
    return out


@pytest.mark.parametrize("name, check, index", _gradcheck_params())
def test_gradcheck(name, check, index):
    twin = db.OP_TWINS[name]
    sample = db.op_samples(name, torch.float64, "sample", True)[index]
    input, *args = db.clone_tree((sample.input, *sample.args))
    sample = type(sample)(input, args=tuple(args), kwargs=db.clone_tree(sample.kwargs),
                          output_process_fn_grad=sample.output_process_fn_grad)
    refusal = db.refusal_for(name, twin.to_functional(sample.input, sample.args), sample.kwargs)
    if refusal is not None:
        db.assert_refused(refusal, lambda: twin.call_ours(sample.input, *sample.args, **sample.kwargs))
        return
    f, inputs = db.gradcheck_fn(twin.call_ours, sample)
    assert inputs, "the sample has no tensor that requires grad"
    db.run_check(name, check, f, inputs)


def test_refusal_machinery():
    """A Refusal passes only when ours raises an input error whose message names what is refused."""
    r = db.Refusal(("x",), applies=lambda args, kwargs: True, match=r"\bp\b must be", reason="test")

    def refuses():
        raise ValueError("p must be 1 or 2")

    db.assert_refused(r, refuses)
    with pytest.raises(AssertionError, match="succeeded"):
        db.assert_refused(r, lambda: None)
    with pytest.raises(AssertionError, match="does not match"):
        db.assert_refused(r, lambda: (_ for _ in ()).throw(ValueError("something else")))
    with pytest.raises(KeyError):  # not an input error: propagates as a failure
        db.assert_refused(r, lambda: {}["k"])
    # Every refusal names a twin the harness knows and gives its reason.
    for refusal in db.REFUSALS:
        assert refusal.reason and set(refusal.twins) <= set(db.OP_TWINS) | set(db.MODULE_TWINS)


def test_databases_import_without_expecttest(monkeypatch):
    """expecttest is no dependency of ours: without it the harness installs a stand-in and imports torch's databases."""
    import sys
    import unittest

    monkeypatch.setitem(sys.modules, "expecttest", None)  # `import expecttest` now raises ImportError
    cmi, cm, cu = db._import_torch_testing()
    assert sys.modules["expecttest"].TestCase is unittest.TestCase
    assert any(o.name == "tanh" for o in cmi.op_db) and cm.module_db and cu.TestCase
