"""Every autograd mode for all 12 hand-written Functions, against torch's twins (issue 11, items 1-3).

Forward mode (``jvp``: ``torch.func.jvp``, ``jacfwd``, ``hessian`` = forward
over reverse, ``torch.autograd.forward_ad`` dual numbers), batched backward
(``is_grads_batched``, ``jacobian(vectorize=True)``), and torch's own
``gradcheck`` with forward-AD and batched checks plus ``gradgradcheck``, all in
float64. The multi-margin loss has no forward AD in torch: its tangents are
compared with our reverse-mode Jacobian instead. Also: the private-symbol
fallback of ``HandWrittenFunction.apply`` and of the value checks, and
``torch.compile(fullgraph=True)`` of a graph using every Function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pytest
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as TF
from torch.autograd import gradcheck, gradgradcheck
from torch.func import hessian, jacfwd, jacrev, jvp

import cs224n_nn.functional as F
from cs224n_nn import autograd as A
from cs224n_nn.autograd import _compiled_chain, _function, _plain, _private, _validate

D = torch.float64
GEN = torch.Generator().manual_seed(11)


def randn(*shape, scale=1.0):
    return (scale * torch.randn(*shape, generator=GEN, dtype=D))


W = randn(5, 4)
B = randn(5)
MASK = A.keep_mask(torch.ones(3, 4, dtype=D), 0.4)
IDS = torch.tensor([[0, 2, 2], [5, 1, 0]])
TARGET = torch.tensor([0, 3, 1])
CLASS_W = torch.rand(4, generator=GEN, dtype=D) + 0.5
S_C = randn(3)
SPATIAL_TARGET = torch.tensor([[0, 3, 1], [2, 2, 0]])


@dataclass
class Case:
    name: str
    ours: Callable  # of the differentiable input(s)
    twin: Callable | None  # torch's function with the same meaning; None: compare with our reverse mode
    make: Callable[[], tuple]


CASES = [
    Case("sigmoid", F.sigmoid, torch.sigmoid, lambda: (randn(3, 4, scale=3),)),
    Case("tanh", F.tanh, torch.tanh, lambda: (randn(3, 4, scale=2),)),
    Case("hardtanh", lambda x: F.hardtanh(x, -0.7, 1.2), lambda x: TF.hardtanh(x, -0.7, 1.2),
         lambda: (randn(3, 4, scale=2),)),
    Case("softsign", F.softsign, TF.softsign, lambda: (randn(3, 4, scale=3),)),
    Case("relu", F.relu, torch.relu, lambda: (randn(3, 4),)),
    Case("leaky_relu", lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2), lambda: (randn(3, 4),)),
    Case("affine", F.affine, TF.linear, lambda: (randn(2, 3, 4), W.clone(), B.clone())),
    Case("dropout", lambda x: A.Dropout.apply(x, MASK), lambda x: x * MASK, lambda: (randn(3, 4),)),
    Case("embedding", lambda w: F.embedding(IDS, w), lambda w: TF.embedding(IDS, w), lambda: (randn(6, 3),)),
    Case("max_margin", lambda s, s_c: F.max_margin_loss(s, s_c, 0.5, "sum"),
         lambda s, s_c: TF.margin_ranking_loss(s, s_c, torch.ones_like(s), margin=0.5, reduction="sum"),
         lambda: (randn(3), randn(3))),
    Case("max_margin_none", lambda s: F.max_margin_loss(s, S_C, 0.5, "none"),
         lambda s: TF.margin_ranking_loss(s, S_C, torch.ones_like(s), margin=0.5, reduction="none"),
         lambda: (randn(3),)),
    Case("multi_margin", lambda x: F.multiclass_max_margin_loss(x, TARGET, 0.8, CLASS_W), None,
         lambda: (randn(3, 4),)),
    Case("multi_margin_p2_none", lambda x: F.multiclass_max_margin_loss(x, TARGET, 1.0, None, "none", p=2), None,
         lambda: (randn(3, 4),)),
    Case("cross_entropy", lambda x: F.softmax_cross_entropy(x, TARGET), lambda x: TF.cross_entropy(x, TARGET),
         lambda: (randn(3, 4, scale=2),)),
    Case("cross_entropy_weighted",
         lambda x: F.softmax_cross_entropy(x, TARGET, CLASS_W, 1, "none", 0.1),
         lambda x: TF.cross_entropy(x, TARGET, CLASS_W, ignore_index=1, reduction="none", label_smoothing=0.1),
         lambda: (randn(3, 4, scale=2),)),
    Case("cross_entropy_probabilities",
         lambda x, t: F.softmax_cross_entropy(x, t, CLASS_W, label_smoothing=0.1),
         lambda x, t: TF.cross_entropy(x, t, CLASS_W, label_smoothing=0.1),
         lambda: (randn(3, 4), torch.softmax(randn(3, 4), 1))),
    Case("cross_entropy_spatial_none",
         lambda x: F.softmax_cross_entropy(x, SPATIAL_TARGET, reduction="none"),
         lambda x: TF.cross_entropy(x, SPATIAL_TARGET, reduction="none"),
         lambda: (randn(2, 4, 3),)),
    Case("cross_entropy_both_outputs",
         lambda x: A.SoftmaxCrossEntropy.apply(x, TARGET, None, -100, "mean", 0.0),
         lambda x: (TF.cross_entropy(x, TARGET), torch.log_softmax(x, 1)),
         lambda: (randn(3, 4),)),
]
IDS_ = [c.name for c in CASES]


def leaves(args):
    return tuple(a.clone().requires_grad_() for a in args)


def tangents_like(args):
    return tuple(randn(*a.shape) for a in args)


def reverse_jvp(f, args, tangents):
    """The tangent from our own reverse-mode Jacobian: J @ t (for the multi-margin loss)."""
    jac = jacrev(f, argnums=tuple(range(len(args))))(*args)
    return sum((j.reshape(-1, t.numel()) @ t.reshape(-1)).reshape(j.shape[: j.dim() - t.dim()])
               for j, t in zip(jac, tangents))


def twin_of(case):
    return case.twin if case.twin is not None else case.ours


@pytest.mark.parametrize("case", CASES, ids=IDS_)
def test_gradcheck_forward_ad_batched_and_gradgradcheck(case):
    args = leaves(case.make())
    assert gradcheck(case.ours, args, check_forward_ad=True, check_batched_grad=True,
                     check_batched_forward_grad=True, check_backward_ad=True)
    assert gradgradcheck(case.ours, args, check_batched_grad=True)


@pytest.mark.parametrize("case", CASES, ids=IDS_)
def test_func_jvp_equals_twin(case):
    args, tangents = case.make(), None
    tangents = tangents_like(args)
    out, out_t = jvp(case.ours, args, tangents)
    if case.twin is None:
        expected_out, expected_t = case.ours(*args), reverse_jvp(case.ours, args, tangents)
    else:
        expected_out, expected_t = jvp(case.twin, args, tangents)
    torch.testing.assert_close(out, expected_out)
    torch.testing.assert_close(out_t, expected_t)


@pytest.mark.parametrize("case", CASES, ids=IDS_)
def test_dual_numbers_equal_func_jvp(case):
    args = case.make()
    tangents = tangents_like(args)
    with fwAD.dual_level():
        out = case.ours(*(fwAD.make_dual(a, t) for a, t in zip(args, tangents)))
        outs = out if isinstance(out, tuple) else (out,)
        got = tuple(fwAD.unpack_dual(o).tangent for o in outs)
    expected = jvp(case.ours, args, tangents)[1]
    expected = expected if isinstance(expected, tuple) else (expected,)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e)
    if case.twin is not None:
        twin_t = jvp(case.twin, args, tangents)[1]
        twin_t = twin_t if isinstance(twin_t, tuple) else (twin_t,)
        for g, e in zip(got, twin_t):
            torch.testing.assert_close(g, e)


def _scalar(f):
    def g(x, *rest):
        out = f(x, *rest)
        out = out[0] if isinstance(out, tuple) else out
        return (out * out).sum() if out.dim() else out
    return g


@pytest.mark.parametrize("case", CASES, ids=IDS_)
def test_jacfwd_and_hessian_equal_twin(case):
    args = case.make()
    first, rest = args[0], args[1:]

    def ours(x):
        out = case.ours(x, *rest)
        return out[0] if isinstance(out, tuple) else out

    def twin(x):
        out = twin_of(case)(x, *rest)
        return out[0] if isinstance(out, tuple) else out

    reference = jacrev if case.twin is None else jacfwd
    torch.testing.assert_close(jacfwd(ours)(first), reference(twin)(first))
    h = hessian(_scalar(ours))(first)  # forward over reverse, through our backward
    h_ref = jacrev(jacrev(_scalar(twin)))(first)
    torch.testing.assert_close(h, h_ref)


@pytest.mark.parametrize("case", CASES, ids=IDS_)
def test_is_grads_batched_and_vectorized_jacobian_equal_twin(case):
    args = leaves(case.make())

    def first(f):
        def g(*a):
            out = f(*a)
            return out[0] if isinstance(out, tuple) else out
        return g

    out = first(case.ours)(*args)
    batch = torch.randn(4, *out.shape, generator=GEN, dtype=D)
    batched = torch.autograd.grad(out, args, batch, is_grads_batched=True)
    looped = [torch.autograd.grad(first(case.ours)(*args), args, v) for v in batch]
    for i, g in enumerate(batched):
        torch.testing.assert_close(g, torch.stack([l[i] for l in looped]))
    jac = torch.autograd.functional.jacobian(first(case.ours), tuple(a.detach() for a in args), vectorize=True)
    jac_ref = torch.autograd.functional.jacobian(first(twin_of(case)), tuple(a.detach() for a in args))
    torch.testing.assert_close(jac, jac_ref)


def test_vectorized_jacobian_of_relu_like_the_issue():
    x = randn(5)
    torch.testing.assert_close(torch.autograd.functional.jacobian(F.relu, x, vectorize=True),
                               torch.autograd.functional.jacobian(torch.relu, x, vectorize=True))


def test_cross_entropy_jvp_gives_both_tangents():
    x, t = randn(3, 4), randn(3, 4)
    (loss, logp), (loss_t, logp_t) = jvp(lambda s: A.SoftmaxCrossEntropy.apply(s, TARGET, None, -100, "mean", 0.0),
                                         (x,), (t,))
    _, twin_loss_t = jvp(lambda s: TF.cross_entropy(s, TARGET), (x,), (t,))
    _, twin_logp_t = jvp(lambda s: torch.log_softmax(s, 1), (x,), (t,))
    torch.testing.assert_close(loss_t, twin_loss_t)
    torch.testing.assert_close(logp_t, twin_logp_t)
    assert loss_t.shape == () and logp_t.shape == (3, 4)


def test_affine_jvp_with_tangents_on_some_inputs_only():
    x, w, b = randn(2, 4), W.clone(), B.clone()
    for tangents in [(randn(2, 4), torch.zeros_like(w), torch.zeros_like(b)), ]:
        torch.testing.assert_close(jvp(F.affine, (x, w, b), tangents)[1], jvp(TF.linear, (x, w, b), tangents)[1])
    # only W carries a tangent (x and b are constants): a dual number on one input
    t = randn(5, 4)
    with fwAD.dual_level():
        got = fwAD.unpack_dual(F.affine(x, fwAD.make_dual(w, t), b)).tangent
    torch.testing.assert_close(got, x @ t.T)


@pytest.mark.parametrize("value", [0.0, -0.7, 1.2, float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("name, ours, twin", [
    ("relu", F.relu, torch.relu),
    ("hardtanh", lambda x: F.hardtanh(x, -0.7, 1.2), lambda x: TF.hardtanh(x, -0.7, 1.2)),
    ("leaky_relu", lambda x: F.leaky_relu(x, -0.3), lambda x: TF.leaky_relu(x, -0.3)),
    ("sigmoid", F.sigmoid, torch.sigmoid),
    ("tanh", F.tanh, torch.tanh),
    ("softsign", F.softsign, TF.softsign),
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_special_values_and_kinks_match_torch(name, ours, twin, value, dtype):
    # the one formula at kinks, NaN and infinities, with an inf/NaN/0 upstream
    # on a non-contiguous view (what the deleted compiled copy had to refuse)
    x = torch.tensor([value, 0.5, -2.0, 3.0] * 2, dtype=dtype).reshape(2, 4).t()
    upstream = torch.tensor([1.0, float("inf"), float("nan"), 0.0] * 2, dtype=dtype).reshape(4, 2)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    (ga,) = torch.autograd.grad(ours(xa), xa, upstream)
    (gb,) = torch.autograd.grad(twin(xb), xb, upstream)
    if name == "softsign":
        # torch's softsign is composite (x / (1 + |x|)): its autograd gives inf - inf = NaN
        # for an infinite upstream gradient or input, where g / (1 + |x|)^2 is inf (or its
        # limit 0 at x = inf). Compare the rest.
        finite = (upstream.isfinite() | upstream.isnan()) & ~x.isinf()
        ga, gb = ga[finite], gb[finite]
    torch.testing.assert_close(ga, gb, equal_nan=True)


def test_apply_falls_back_to_torch_function_apply_without_the_private_symbols(monkeypatch):
    x = randn(3, 4).requires_grad_()
    calls = []
    original = torch.autograd.Function.apply.__func__

    def spy(cls, *args, **kwargs):
        calls.append(cls.__name__)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(torch.autograd.Function, "apply", classmethod(spy))
    # a torch release that renamed one of the private symbols (torch itself still needs
    # the real one inside Function.apply, so the rename is simulated on our side)
    monkeypatch.setattr(_function, "FAST_PATH_SYMBOLS", ("_C._are_functorch_transforms_active",
                                                         "_C._functorch.unwrap_if_dead_renamed", "_C._FunctionBase.apply"))
    out = F.tanh(x)
    (g,) = torch.autograd.grad(out.sum(), x)
    assert calls == ["Tanh"]  # the public path was taken
    torch.testing.assert_close(g, 1 - torch.tanh(x.detach()) ** 2)
    assert _private.lookup(*_function.FAST_PATH_SYMBOLS) is None


def test_functorch_symbols_are_not_looked_up_at_import():
    import ast
    from pathlib import Path

    for module in (_function, _validate, _private, _compiled_chain, _plain):
        tree = ast.parse(Path(module.__file__).read_text())
        top_level = [node for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))]
        assert not any("torch._C" in ast.unparse(node) for node in top_level), module.__name__


def test_value_checks_are_skipped_without_the_private_wrapper_test(monkeypatch):
    monkeypatch.setattr(_private, "_found", {})  # look the names up again, now without the symbol
    monkeypatch.delattr(torch._C._functorch, "is_functorch_wrapped_tensor")
    ids = torch.tensor([0, 7])
    assert not _validate.values_checkable(ids)
    with pytest.raises(IndexError):  # torch's own index check still refuses the bad id
        F.embedding(ids, torch.randn(3, 2))


def test_jvp_is_hidden_from_dynamo_only_while_compiling(monkeypatch):
    assert A.Tanh.jvp is not torch.autograd.Function.jvp
    monkeypatch.setattr(torch.compiler, "_is_compiling_flag", True)
    assert A.Tanh.jvp is torch.autograd.Function.jvp


def test_compile_fullgraph_through_every_function():
    ids = torch.tensor([[0, 2], [3, 1], [2, 2]])
    table = torch.randn(4, 3, requires_grad=True)
    w = torch.randn(4, 6, requires_grad=True)
    target = torch.tensor([0, 3, 1])

    def model(table, w):
        h = F.affine(A.Dropout.apply(F.embedding(ids, table).flatten(1), torch.full((3, 6), 1.25)), w)
        h = F.sigmoid(h) + F.tanh(h) + F.hardtanh(h) + F.softsign(h) + F.relu(h) + F.leaky_relu(h)
        return (F.softmax_cross_entropy(h, target) + F.multiclass_max_margin_loss(h, target)
                + F.max_margin_loss(h[:, 0], h[:, 1]))

    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    got = torch.autograd.grad(compiled(table, w), (table, w))
    expected = torch.autograd.grad(model(table, w), (table, w))
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e)
