"""The fused layer Functions (cs224n_nn.autograd.layer) against the unfused composition of our own
pieces and against torch, in every mode a Function must support.

* ``DenseLayer`` / ``dense`` / ``nn.Dense``: ``f(x W^T + b) [* mask]`` vs
  ``cf.<act>(cf.affine(...))`` (and ``Dropout.apply`` with the same mask) and
  vs ``act(F.linear(...))``;
* ``dense_cross_entropy`` / ``dense_multi_margin`` vs
  ``cf.softmax_cross_entropy(cf.affine(...))``, ``cf.multiclass_max_margin_loss(cf.affine(...))``
  and ``F.cross_entropy(F.linear(...))``, ``F.multi_margin_loss(F.linear(...))``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

import cs224n_nn.autograd as ag
import cs224n_nn.functional as cf
import cs224n_nn.nn as cnn
from cs224n_nn.autograd.layer import ACTIVATION_PARAMS, activation_params
from _torch_db import inverted_dropout

# name -> (our unfused activation, torch twin); leaky_relu/hardtanh with non-default parameters
ACTS = {
    "sigmoid": (cf.sigmoid, torch.sigmoid, {}),
    "tanh": (cf.tanh, torch.tanh, {}),
    "hardtanh": (lambda z: cf.hardtanh(z, -0.5, 0.8), lambda z: F.hardtanh(z, -0.5, 0.8),
                 {"min_val": -0.5, "max_val": 0.8}),
    "softsign": (cf.softsign, F.softsign, {}),
    "relu": (cf.relu, torch.relu, {}),
    "leaky_relu": (lambda z: cf.leaky_relu(z, 0.2), lambda z: F.leaky_relu(z, 0.2), {"negative_slope": 0.2}),
}
NAMES = list(ACTS)
REDUCTIONS = ("mean", "sum", "none")


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: on the shared 2-core machine torch's thread pool waits for busy cores (20x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _inputs(dtype=torch.float64, batch=(5,), n_in=4, n_out=3, bias=True):
    x = torch.randn(*batch, n_in, dtype=dtype, requires_grad=True)
    w = torch.randn(n_out, n_in, dtype=dtype, requires_grad=True)
    b = torch.randn(n_out, dtype=dtype, requires_grad=True) if bias else None
    return x, w, b


def _mask(shape, dtype=torch.float64):
    """A fixed inverted-dropout mask (keep_prob 0.5) with both kept and dropped units."""
    m = ag.keep_mask(torch.empty(shape, dtype=dtype), 0.5)
    m.view(-1)[:2] = torch.tensor([0.0, 2.0], dtype=dtype)
    return m


def _fused(name, mask=None):
    params = activation_params(name, **ACTS[name][2])
    return lambda x, w, b: ag.DenseLayer.apply(x, w, b, name, params, mask)[0]


def _ours_unfused(name, mask=None):
    act = ACTS[name][0]
    return lambda x, w, b: (lambda a: a if mask is None else ag.Dropout.apply(a, mask))(act(cf.affine(x, w, b)))


def _torch(name, mask=None):
    act = ACTS[name][1]
    return lambda x, w, b: (lambda a: a if mask is None else a * mask.to(a.dtype))(act(F.linear(x, w, b)))


def _grads(f, inputs, seed=1):
    out = f(*inputs)
    g = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(seed))
    diff = [t for t in inputs if t is not None and t.requires_grad]
    return out, torch.autograd.grad(out, diff, g)


def _assert_same(f, refs, inputs, **tol):
    out, grads = _grads(f, inputs)
    for ref in refs:
        ref_out, ref_grads = _grads(ref, inputs)
        torch.testing.assert_close(out, ref_out, **tol)
        for a, r in zip(grads, ref_grads):
            torch.testing.assert_close(a, r, **tol)


# ------------------------------------------------------------------ DenseLayer: values and gradients


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("with_mask", [False, True], ids=["plain", "mask"])
@pytest.mark.parametrize("name", NAMES)
def test_dense_matches_our_composition_and_torch(name, with_mask, dtype):
    x, w, b = _inputs(dtype)
    mask = _mask((5, 3), dtype) if with_mask else None
    _assert_same(_fused(name, mask), [_ours_unfused(name, mask), _torch(name, mask)], (x, w, b))


@pytest.mark.parametrize("batch", [(), (2, 3)], ids=["1d", "3d"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("name", ["tanh", "softsign"])  # one output-saving, one input-saving activation
def test_dense_shapes_and_no_bias(name, batch, bias):
    x, w, b = _inputs(batch=batch, bias=bias)
    mask = _mask((*batch, 3))
    for m in (None, mask):
        _assert_same(_fused(name, m), [_ours_unfused(name, m), _torch(name, m)], (x, w, b))
        assert _fused(name, m)(x, w, b).shape == (*batch, 3)


def test_dense_non_contiguous_inputs():
    big = torch.randn(5, 8, dtype=torch.float64)
    x = big[:, ::2].requires_grad_()  # strided rows
    w = torch.randn(4, 3, dtype=torch.float64).t().requires_grad_()  # a transposed view, (3, 4)
    b = torch.randn(6, dtype=torch.float64)[::2].requires_grad_()
    assert not x.is_contiguous() and not w.is_contiguous() and not b.is_contiguous()
    for name in NAMES:
        _assert_same(_fused(name), [_torch(name)], (x, w, b))


@pytest.mark.parametrize("name", NAMES)
def test_dense_functional_and_kinks(name):
    """cf.dense with keyword parameters; inputs placed on the kinks (z = 0, z = the hard-tanh corners)."""
    x = torch.zeros(4, 2, dtype=torch.float64, requires_grad=True)
    w = torch.eye(2, dtype=torch.float64, requires_grad=True)
    b = torch.tensor([0.0, -0.5], dtype=torch.float64, requires_grad=True)  # z = 0 and z = -0.5 (a corner)
    f = lambda x, w, b: cf.dense(x, w, b, name, **ACTS[name][2])  # noqa: E731
    _assert_same(f, [_ours_unfused(name), _torch(name)], (x, w, b))


def test_dense_saves_only_what_the_derivative_needs():
    """output for sigmoid/tanh/hardtanh/relu, z for softsign/leaky_relu; x iff W needs grad; W iff x does."""
    for name in NAMES:
        for needs_x, needs_w in ((True, False), (False, True), (True, True)):
            x = torch.randn(5, 4, requires_grad=needs_x)
            w = torch.randn(3, 4, requires_grad=needs_w)
            packed = []
            with torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(t) or t, lambda t: t):
                out = _fused(name)(x, w, None)
            ptrs = {t.data_ptr() for t in packed}
            assert (x.data_ptr() in ptrs) == needs_w, name
            assert (w.data_ptr() in ptrs) == needs_x, name
            saves_output = ag.layer.ACTIVATIONS[name].saves == "output"
            assert (out.data_ptr() in ptrs) == saves_output, name
            assert len(packed) == needs_x + needs_w + 1, (name, [t.shape for t in packed])


def test_dense_backward_frees_the_dropout_product_before_the_matmuls():
    """Peak tensor bytes of one backward with a dropout mask, the incoming gradient allocated beforehand:
    no more than our unfused composition (Affine, Tanh and Dropout nodes, each freeing its gradient as the
    next consumes it). Holding ``dJ/da * mask`` through the affine backward, where the peak falls, was one
    activation-sized tensor more (BENCHMARKS.md's peak tensor memory row: 1.10 before the fix, 1.07 after)."""
    pytest.importorskip("torch.profiler")
    from benchmarks.ner import peak_tensor_bytes

    torch.manual_seed(0)
    x, w, b = _inputs(torch.float32, batch=(256,), n_in=300, n_out=300)
    mask = _mask((256, 300), torch.float32)
    peaks = {}
    for kind, f in (("fused", _fused("tanh", mask)), ("unfused", _ours_unfused("tanh", mask))):
        out = f(x, w, b)
        g = torch.randn_like(out)
        peaks[kind] = peak_tensor_bytes(lambda: torch.autograd.grad(out, (x, w, b), g))
        del out
    if peaks["fused"] is None:
        pytest.skip("this torch's profiler gives no memory events")
    assert peaks["fused"] <= peaks["unfused"], peaks


# ------------------------------------------------------------------ DenseLayer: every autograd mode


@pytest.mark.parametrize("with_mask", [False, True], ids=["plain", "mask"])
@pytest.mark.parametrize("name", NAMES)
def test_dense_gradcheck_all_modes(name, with_mask):
    x, w, b = _inputs()
    x.data.view(-1)[0] = 0.3  # keep gradcheck's finite differences off the kinks
    f = _fused(name, _mask((5, 3)) if with_mask else None)
    assert gradcheck(f, (x, w, b), check_forward_ad=True, check_batched_grad=True,
                     check_batched_forward_grad=True, check_undefined_grad=True)
    assert gradgradcheck(f, (x, w, b), check_fwd_over_rev=True, check_batched_grad=True)


def test_dense_gradcheck_bias_none_and_3d():
    x, w, _ = _inputs(batch=(2, 2))
    for name in ("sigmoid", "leaky_relu"):
        f = _fused(name, _mask((2, 2, 3)))
        assert gradcheck(f, (x, w, None), check_forward_ad=True, check_batched_grad=True,
                         check_batched_forward_grad=True)
        assert gradgradcheck(f, (x, w, None), check_fwd_over_rev=True)


@pytest.mark.parametrize("name", NAMES)
def test_dense_torch_func_transforms(name):
    x, w, b = (t.detach() for t in _inputs(torch.float32))
    mask = _mask((5, 3), torch.float32)
    ours, ref = _fused(name, mask), _torch(name, mask)
    for transform in (torch.func.jacrev, torch.func.jacfwd):
        for a, r in zip(transform(ours, argnums=(0, 1, 2))(x, w, b), transform(ref, argnums=(0, 1, 2))(x, w, b)):
            torch.testing.assert_close(a, r)
    xb = torch.randn(7, 5, 4)
    torch.testing.assert_close(torch.func.vmap(ours, (0, None, None))(xb, w, b),
                               torch.func.vmap(ref, (0, None, None))(xb, w, b))
    # per-example weight gradients: vmap over grad, W batched too
    wb = torch.randn(7, 3, 4)
    per_ex = torch.func.vmap(torch.func.grad(lambda w, x: ours(x, w, b).sum()))(wb, xb)
    per_ex_ref = torch.func.vmap(torch.func.grad(lambda w, x: ref(x, w, b).sum()))(wb, xb)
    torch.testing.assert_close(per_ex, per_ex_ref)
    ours1, ref1 = _fused(name, mask[0]), _torch(name, mask[0])  # one example: x (in,)
    hess = torch.func.hessian(lambda x: ours1(x, w, b).sum())(x[0])
    torch.testing.assert_close(hess, torch.func.hessian(lambda x: ref1(x, w, b).sum())(x[0]))


def test_dense_dropout_draw_is_torch_formula_on_the_same_draw_and_vmap_randomness():
    x, w, b = (t.detach() for t in _inputs(torch.float32))
    torch.manual_seed(3)
    ours = cf.dense(x, w, b, "relu", dropout=0.4)
    torch.manual_seed(3)
    ref = inverted_dropout(torch.relu(F.linear(x, w, b)), 0.4)
    torch.testing.assert_close(ours, ref)
    assert torch.equal(cf.dense(x, w, b, "relu", dropout=0.4, training=False), torch.relu(F.linear(x, w, b)))
    xb = torch.randn(6, 5, 4).abs() + 1  # positive inputs and weights: every zero is a dropped unit
    wp = w.abs()
    same = torch.func.vmap(lambda x: cf.dense(x, wp, None, "relu", dropout=0.5), randomness="same")(xb)
    assert torch.equal(same[0] == 0, same[1] == 0)  # one mask for the whole batch
    with pytest.raises(RuntimeError, match="randomness"):
        torch.func.vmap(lambda x: cf.dense(x, wp, None, "relu", dropout=0.5))(xb)


def test_dense_torch_compile_fullgraph():
    torch._dynamo.reset()
    x, w, b = _inputs(torch.float32)
    mask = _mask((5, 3), torch.float32)
    t = torch.randint(3, (5,))

    def everything(x, w, b):
        total = sum(cf.dense(x, w, b, n, **ACTS[n][2]).sum() for n in NAMES)
        total = total + ag.DenseLayer.apply(x, w, b, "tanh", (), mask)[0].sum()
        return total + cf.dense_cross_entropy(x, w, b, t) + cf.dense_multi_margin(x, w, b, t)

    def reference(x, w, b):
        total = sum(ACTS[n][1](F.linear(x, w, b)).sum() for n in NAMES)
        total = total + (torch.tanh(F.linear(x, w, b)) * mask).sum()
        return total + F.cross_entropy(F.linear(x, w, b), t) + F.multi_margin_loss(F.linear(x, w, b), t)

    compiled = torch.compile(everything, fullgraph=True, backend="aot_eager")
    _assert_same(compiled, [reference], (x, w, b))


def test_dense_module_with_dropout_under_torch_compile():
    """The mask drawn inside the compiled graph is the one eager mode draws after the same seed."""
    torch._dynamo.reset()
    layer = cnn.Dense(4, 3, activation="tanh", dropout=0.5)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    x = torch.randn(5, 4, requires_grad=True)
    params = (x, layer.weight, layer.bias)
    torch.manual_seed(2)
    out, grads = _grads(lambda x, w, b: compiled(x), params)
    torch.manual_seed(2)
    ref, ref_grads = _grads(lambda x, w, b: inverted_dropout(torch.tanh(F.linear(x, w, b)), 0.5), params)
    torch.testing.assert_close(out, ref)
    for a, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, r)
    assert (out == 0).any() and (out != 0).any()


@pytest.mark.parametrize("name", NAMES)
def test_dense_autocast_bf16_like_linear_then_activation(name):
    x, w, b = _inputs(torch.float32)
    mask = _mask((5, 3), torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for m in (None, mask):
            out, grads = _grads(_fused(name, m), (x, w, b))
            ref, ref_grads = _grads(_torch(name, m), (x, w, b))
            assert out.dtype == ref.dtype == torch.bfloat16
            torch.testing.assert_close(out, ref)
            for a, r in zip(grads, ref_grads):
                assert a.dtype == r.dtype == torch.float32
                torch.testing.assert_close(a, r, atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inputs_like_torch(dtype):
    """Half inputs without autocast: computed in that dtype, derivatives in float32 rounded once (as torch)."""
    x, w, b = (t.detach().to(dtype).requires_grad_() for t in _inputs(torch.float32, batch=(6,)))
    t = torch.tensor([0, 2, 1, 2, 0, 1])
    for name in NAMES:
        if name == "hardtanh":  # bounds representable in half (0.8 is not: see /work/notes/layer_notes.md)
            _assert_same(lambda x, w, b: cf.dense(x, w, b, "hardtanh", min_val=-0.5, max_val=0.75),
                         [lambda x, w, b: F.hardtanh(F.linear(x, w, b), -0.5, 0.75)], (x, w, b))
            continue
        _assert_same(_fused(name), [_torch(name)], (x, w, b), atol=3e-2, rtol=3e-2)
    _assert_same(lambda x, w, b: cf.dense_cross_entropy(x, w, b, t),
                 [lambda x, w, b: F.cross_entropy(F.linear(x, w, b), t)], (x, w, b), atol=3e-2, rtol=3e-2)
    out, grads = _grads(_fused("tanh"), (x, w, b))
    assert out.dtype == dtype and all(g.dtype == dtype for g in grads)


def test_one_autograd_node_per_layer():
    """The whole layer (and the output layer + loss) is one node whose inputs are x, W and b themselves."""
    x, w, b = _inputs()
    t = torch.tensor([0, 2, 1, 2, 0])
    for out, node in ((cf.dense(x, w, b, "tanh", dropout=0.5), "DenseLayerBackward"),
                      (cf.dense_cross_entropy(x, w, b, t), "DenseCrossEntropyBackward"),
                      (cf.dense_multi_margin(x, w, b, t), "DenseMultiMarginBackward")):
        assert type(out.grad_fn).__name__ == node
        leaves = [fn.variable for fn, _ in out.grad_fn.next_functions[:3]]  # AccumulateGrad of x, W, b
        assert all(leaf is v for leaf, v in zip(leaves, (x, w, b), strict=True))


# ------------------------------------------------------------------ fused output layer + loss


def _ce_cases(t, class_weight):
    yield ("plain", lambda x, w, b: cf.dense_cross_entropy(x, w, b, t, "mean"),
           lambda x, w, b: cf.softmax_cross_entropy(cf.affine(x, w, b), t),
           lambda x, w, b: F.cross_entropy(F.linear(x, w, b), t))
    for red in ("sum", "none"):
        yield (red, lambda x, w, b, red=red: cf.dense_cross_entropy(x, w, b, t, red),
               lambda x, w, b, red=red: cf.softmax_cross_entropy(cf.affine(x, w, b), t, reduction=red),
               lambda x, w, b, red=red: F.cross_entropy(F.linear(x, w, b), t, reduction=red))
    t_ign = t.clone()
    t_ign[1] = -100
    yield ("weighted+smooth+ignore",
           lambda x, w, b: cf.dense_cross_entropy(x, w, b, t_ign, class_weight=class_weight, label_smoothing=0.1),
           lambda x, w, b: cf.softmax_cross_entropy(cf.affine(x, w, b), t_ign, class_weight, label_smoothing=0.1),
           lambda x, w, b: F.cross_entropy(F.linear(x, w, b), t_ign, class_weight, label_smoothing=0.1))


def _margin_cases(t, class_weight):
    for red in REDUCTIONS:
        yield (red, lambda x, w, b, red=red: cf.dense_multi_margin(x, w, b, t, 1.0, red),
               lambda x, w, b, red=red: cf.multiclass_max_margin_loss(cf.affine(x, w, b), t, reduction=red),
               lambda x, w, b, red=red: F.multi_margin_loss(F.linear(x, w, b), t, reduction=red))
    yield ("p2+weighted+margin", lambda x, w, b: cf.dense_multi_margin(x, w, b, t, 0.5, class_weight=class_weight, p=2),
           lambda x, w, b: cf.multiclass_max_margin_loss(cf.affine(x, w, b), t, 0.5, class_weight, p=2),
           lambda x, w, b: F.multi_margin_loss(F.linear(x, w, b), t, 2, 0.5, class_weight))


@pytest.mark.parametrize("loss", ["cross_entropy", "multi_margin"])
def test_fused_losses_values_grads_and_all_modes(loss):
    x, w, b = _inputs()
    t = torch.tensor([0, 2, 1, 2, 0])
    cw = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    cases = _ce_cases(t, cw) if loss == "cross_entropy" else _margin_cases(t, cw)
    for i, (_, ours, unfused, ref) in enumerate(cases):
        _assert_same(ours, [unfused, ref], (x, w, b))
        # the full Jacobians once; torch's fast (random-projection) mode for the other reductions
        assert gradcheck(ours, (x, w, b), check_forward_ad=True, check_batched_grad=True,
                         check_batched_forward_grad=True, check_undefined_grad=True, fast_mode=i > 0)
        assert gradgradcheck(ours, (x, w, b), check_fwd_over_rev=True, check_batched_grad=True, fast_mode=True)


@pytest.mark.parametrize("loss", ["cross_entropy", "multi_margin"])
def test_fused_losses_float32_bias_none_1d_and_transforms(loss):
    fused = cf.dense_cross_entropy if loss == "cross_entropy" else cf.dense_multi_margin
    twin = F.cross_entropy if loss == "cross_entropy" else F.multi_margin_loss
    x, w, _ = _inputs(torch.float32)
    t = torch.tensor([0, 2, 1, 2, 0])
    _assert_same(lambda x, w, b: fused(x, w, None, t), [lambda x, w, b: twin(F.linear(x, w), t)], (x, w, None))
    # one example: x (in,), target 0-d
    x1 = x[0].detach().requires_grad_()
    _assert_same(lambda x, w, b: fused(x, w, None, t[0]), [lambda x, w, b: twin(F.linear(x, w), t[0])], (x1, w, None))
    xd, wd = x.detach(), w.detach()
    for transform in (torch.func.jacrev, torch.func.jacfwd):
        a = transform(lambda x, w: fused(x, w, None, t), argnums=(0, 1))(xd, wd)
        r = torch.func.jacrev(lambda x, w: twin(F.linear(x, w), t), argnums=(0, 1))(xd, wd)
        for ai, ri in zip(a, r):
            torch.testing.assert_close(ai, ri)
    xb, tb = torch.randn(3, 5, 4), torch.randint(3, (3, 5))
    torch.testing.assert_close(torch.func.vmap(lambda x, t: fused(x, wd, None, t))(xb, tb),
                               torch.func.vmap(lambda x, t: twin(F.linear(x, wd), t))(xb, tb))


@pytest.mark.parametrize("loss", ["cross_entropy", "multi_margin"])
def test_fused_losses_autocast_bf16(loss):
    fused = cf.dense_cross_entropy if loss == "cross_entropy" else cf.dense_multi_margin
    twin = F.cross_entropy if loss == "cross_entropy" else F.multi_margin_loss
    x, w, b = _inputs(torch.float32)
    t = torch.tensor([0, 2, 1, 2, 0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, grads = _grads(lambda x, w, b: fused(x, w, b, t), (x, w, b))
        ref, ref_grads = _grads(lambda x, w, b: twin(F.linear(x, w, b), t), (x, w, b))
    assert out.dtype == ref.dtype == torch.float32  # the loss in float32, as torch's autocast
    torch.testing.assert_close(out, ref)
    for a, r in zip(grads, ref_grads):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, r, atol=2e-2, rtol=2e-2)


# ------------------------------------------------------------------ the module


def test_dense_module_is_linear_with_an_activation():
    torch.manual_seed(5)
    ours = cnn.Dense(4, 3, activation="leaky_relu", negative_slope=0.2, dropout=0.5)
    torch.manual_seed(5)
    lin = torch.nn.Linear(4, 3)
    assert torch.equal(ours.weight, lin.weight) and torch.equal(ours.bias, lin.bias)  # torch's default init
    assert set(ours.state_dict()) == {"weight", "bias"}
    assert repr(ours) == ("Dense(in_features=4, out_features=3, bias=True, activation='leaky_relu', "
                          "negative_slope=0.2, dropout=0.5)")
    x = torch.randn(6, 4)
    ours.eval()
    torch.testing.assert_close(ours(x), F.leaky_relu(lin(x), 0.2))
    ours.train()
    torch.manual_seed(9)
    y = ours(x)
    torch.manual_seed(9)
    torch.testing.assert_close(y, inverted_dropout(F.leaky_relu(lin(x), 0.2), 0.5))
    y.sum().backward()
    assert ours.weight.grad is not None and ours.bias.grad is not None
    no_bias = cnn.Dense(4, 3, bias=False, activation="relu", dtype=torch.float64)
    assert no_bias.bias is None and no_bias.weight.dtype == torch.float64
    assert repr(no_bias) == "Dense(in_features=4, out_features=3, bias=False, activation='relu')"
    assert set(ACTIVATION_PARAMS) <= set(NAMES)


# ------------------------------------------------------------------ bad input


def test_bad_inputs_give_clear_errors():
    x, w, b = (t.detach() for t in _inputs(torch.float32))
    with pytest.raises(ValueError, match=r"activation must be one of 'sigmoid', 'tanh'.*got 'gelu'"):
        cf.dense(x, w, b, "gelu")
    with pytest.raises(ValueError, match="activation must be one of"):
        cnn.Dense(4, 3, activation="swish")
    with pytest.raises(ValueError, match="activation must be one of"):
        ag.DenseLayer.apply(x, w, b, None, (), None)
    with pytest.raises(ValueError, match=r"params must be the tuple \('min_val', 'max_val'\) of activation 'hardtanh'"):
        ag.DenseLayer.apply(x, w, b, "hardtanh", (), None)
    with pytest.raises(TypeError, match="activation 'tanh' takes no parameters; got unexpected negative_slope"):
        cf.dense(x, w, b, "tanh", negative_slope=0.1)
    with pytest.raises(TypeError, match="takes negative_slope; got unexpected slope"):
        cnn.Dense(4, 3, activation="leaky_relu", slope=0.1)
    with pytest.raises(ValueError, match="min_val must not be greater than max_val"):
        cf.dense(x, w, b, "hardtanh", min_val=1.0, max_val=0.0)
    with pytest.raises(ValueError, match=r"input must have shape \(\.\.\., in_features=4\)"):
        cf.dense(torch.randn(5, 3), w, b)
    with pytest.raises(TypeError, match="input must be a floating-point tensor"):
        cf.dense(torch.ones(5, 4, dtype=torch.long), w, b)
    with pytest.raises(ValueError, match="bias must have shape"):
        cf.dense(x, w, torch.randn(4))
    with pytest.raises(ValueError, match=r"mask must have the shape of the layer's output \(5, 3\)"):
        ag.DenseLayer.apply(x, w, b, "tanh", (), torch.ones(5, 4))
    with pytest.raises(ValueError, match="dropout probability p must be in"):
        cf.dense(x, w, b, dropout=1.5)
    with pytest.raises(ValueError, match="dropout probability p must be in"):
        cnn.Dense(4, 3, dropout=-0.1)
    t = torch.tensor([0, 2, 1, 2, 0])
    with pytest.raises(ValueError, match=r"input must be 1-D \(in_features,\) or 2-D"):
        cf.dense_cross_entropy(torch.randn(2, 5, 4), w, b, t)
    with pytest.raises(IndexError, match="target must lie in"):
        cf.dense_cross_entropy(x, w, b, torch.tensor([0, 2, 1, 3, 0]))
    with pytest.raises(ValueError, match="reduction must be one of"):
        cf.dense_multi_margin(x, w, b, t, reduction="avg")
    with pytest.raises(TypeError, match="target must be an int64"):
        cf.dense_multi_margin(x, w, b, t.float())


# ------------------------------------------------------------------ the benchmark rows compute the same thing


def test_benchmark_rows_compare_equal_work(monkeypatch):
    from benchmarks import layers

    # torch's F.dropout samples the same law from another random stream (cs224n_nn.autograd.dropout):
    # here the native side runs torch's formula on our draw, so that both sides can be compared exactly.
    monkeypatch.setattr(layers.F, "dropout", inverted_dropout)
    cases = [*layers.dense_cases(16), *layers.dense_loss_cases(16), layers.window_lookup_case(16)]
    assert [c.piece for c in cases] == ["dense (tanh)", "dense (tanh, dropout 0.5)", "dense_cross_entropy",
                                        "dense_multi_margin", "window lookup"]
    assert [c.target for c in layers.dense_cases(256)][0].bound == 1.0
    for case in cases:
        torch.manual_seed(4)
        ours = case.ours()
        torch.manual_seed(4)
        native = case.native()
        for a, r in zip(ours, native, strict=True):
            torch.testing.assert_close(a, r, rtol=1e-4, atol=1e-4)
    assert {c.piece for c in layers.cases("tiny")} >= {"dense (tanh)", "dense_cross_entropy"}
