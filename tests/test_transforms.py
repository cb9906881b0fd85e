"""torch.func transforms (vmap, grad, jacrev) and torch.compile(fullgraph=True) over the Functions.

Compiling is slow on small machines, so each compiled test traces one graph
that strings several Functions together (forward and backward), rather than
one graph per Function, with the ``aot_eager`` backend: dynamo (where graph
breaks would raise under ``fullgraph=True``) and AOTAutograd (which traces the
hand-written backward) run in full; only inductor's C++ code generation, which
adds nothing about our Functions, is left out.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as TF
from torch.func import grad, jacrev, vmap

import cs224n_nn.functional as F

ELEMENTWISE = [
    (F.sigmoid, torch.sigmoid),
    (F.tanh, torch.tanh),
    (lambda x: F.hardtanh(x, -0.5, 0.5), lambda x: TF.hardtanh(x, -0.5, 0.5)),
    (lambda x: F.hardtanh(x, -0.5, 1.5), lambda x: TF.hardtanh(x, -0.5, 1.5)),
    (F.softsign, TF.softsign),
    (F.relu, torch.relu),
    (lambda x: F.leaky_relu(x, 0.1), lambda x: TF.leaky_relu(x, 0.1)),
]
NAMES = ["sigmoid", "tanh", "hardtanh", "hardtanh(-0.5,1.5)", "softsign", "relu", "leaky_relu"]


@pytest.mark.parametrize("ours,ref", ELEMENTWISE, ids=NAMES)
def test_elementwise_vmap_grad_jacrev(ours, ref):
    x = torch.randn(3, 4, dtype=torch.float64)
    torch.testing.assert_close(vmap(ours)(x), ref(x))
    torch.testing.assert_close(vmap(grad(lambda v: ours(v).sum()))(x), vmap(grad(lambda v: ref(v).sum()))(x))
    torch.testing.assert_close(jacrev(ours)(x), jacrev(ref)(x))
    # second derivative through the hand-written backward
    torch.testing.assert_close(grad(grad(lambda v: ours(v).sum()))(x[0, 0]), grad(grad(lambda v: ref(v).sum()))(x[0, 0]))


def test_affine_transforms():
    x, w, b = torch.randn(6, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    torch.testing.assert_close(vmap(F.affine, (0, None, None))(x, w, b), TF.linear(x, w, b))
    ws = torch.randn(6, 3, 4, dtype=torch.float64)  # one weight matrix per example
    torch.testing.assert_close(vmap(F.affine, (0, 0, None))(x, ws, b), torch.einsum("noi,ni->no", ws, x) + b)
    for argnums in (0, 1, 2):
        torch.testing.assert_close(jacrev(F.affine, argnums)(x, w, b), jacrev(TF.linear, argnums)(x, w, b))
    per_example = vmap(grad(lambda v, ww: F.affine(v, ww, b).tanh().sum(), argnums=1), (0, None))(x, w)
    reference = vmap(grad(lambda v, ww: TF.linear(v, ww, b).tanh().sum(), argnums=1), (0, None))(x, w)
    torch.testing.assert_close(per_example, reference)


def test_embedding_transforms_with_batched_ids():
    weight = torch.randn(7, 3, dtype=torch.float64)
    ids = torch.randint(0, 7, (4, 5))
    torch.testing.assert_close(vmap(F.embedding, (0, None))(ids, weight), TF.embedding(ids, weight))
    f = lambda w, i: F.embedding(i, w, padding_idx=1).pow(2).sum()  # noqa: E731
    t = lambda w, i: TF.embedding(i, w, padding_idx=1).pow(2).sum()  # noqa: E731
    torch.testing.assert_close(vmap(grad(f), (None, 0))(weight, ids), vmap(grad(t), (None, 0))(weight, ids))
    torch.testing.assert_close(jacrev(f)(weight, ids[0]), jacrev(t)(weight, ids[0]))


def test_out_of_range_ids_under_vmap_still_fail():
    # The id-range check needs values, which a batched tensor cannot give; torch's index kernel refuses instead.
    weight = torch.randn(4, 2)
    with pytest.raises((IndexError, RuntimeError)):
        vmap(F.embedding, (0, None))(torch.tensor([[0, 1], [2, 9]]), weight)


def test_loss_transforms():
    scores = torch.randn(5, 4, dtype=torch.float64)
    target = torch.tensor([0, 3, 1, 1, 2])
    pairs = [
        (F.softmax_cross_entropy, TF.cross_entropy),
        (F.multiclass_max_margin_loss, TF.multi_margin_loss),
    ]
    for ours, ref in pairs:
        # per-example gradients: vmap over (C,) rows with 0-d targets
        torch.testing.assert_close(vmap(grad(ours))(scores, target), vmap(grad(ref))(scores, target))
        torch.testing.assert_close(jacrev(lambda s: ours(s, target, reduction="none"))(scores),
                                   jacrev(lambda s: ref(s, target, reduction="none"))(scores))
    hessian = jacrev(jacrev(lambda s: F.softmax_cross_entropy(s, target)))(scores)
    torch.testing.assert_close(hessian, jacrev(jacrev(lambda s: TF.cross_entropy(s, target)))(scores))
    s, s_c = torch.randn(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    ones = torch.ones(5, dtype=torch.float64)
    torch.testing.assert_close(grad(F.max_margin_loss, argnums=(0, 1))(s, s_c),
                               grad(lambda a, b: TF.margin_ranking_loss(a, b, ones, margin=1.0), argnums=(0, 1))(s, s_c))
    torch.testing.assert_close(vmap(F.max_margin_loss)(s, s_c), TF.relu(1 + s_c - s))


def test_dropout_under_vmap_follows_the_randomness_option():
    x = torch.ones(4, 1000)
    with pytest.raises(RuntimeError, match="randomness"):
        vmap(lambda v: F.dropout(v, 0.5))(x)
    different = vmap(lambda v: F.dropout(v, 0.5), randomness="different")(x)
    assert not torch.equal(different[0], different[1])
    same = vmap(lambda v: F.dropout(v, 0.5), randomness="same")(x)
    assert torch.equal(same[0], same[3])
    assert set(same.unique().tolist()) == {0.0, 2.0}
    g = vmap(grad(lambda v: F.dropout(v, 0.5).sum()), randomness="different")(x)
    assert set(g.unique().tolist()) == {0.0, 2.0}


def _compiled_matches_eager(fn, *inputs):
    """Compile fn with fullgraph=True (a graph break raises), run forward and backward, compare with eager."""
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    results = []
    for f in (compiled, fn):
        leaves = [t.detach().clone().requires_grad_(t.is_floating_point()) for t in inputs]
        out = f(*leaves)
        grads = torch.autograd.grad(out, [t for t in leaves if t.requires_grad])
        results.append((out.detach(), grads))
    torch.testing.assert_close(results[0], results[1])


def test_compile_fullgraph_window_classifier():
    # the notes' window model: embedding -> affine -> tanh -> dropout(eval: identity) -> affine -> cross-entropy,
    # plus the other losses and activations on the same scores.
    def model(weight_e, w1, b1, w2, ids, target):
        h = F.tanh(F.affine(F.embedding(ids, weight_e, padding_idx=0).flatten(1), w1, b1))
        h = F.dropout(h, 0.5, training=False)
        scores = F.affine(h, w2)
        a = F.sigmoid(scores) + F.relu(scores) + F.hardtanh(scores) + F.softsign(scores) + F.leaky_relu(scores)
        return (F.softmax_cross_entropy(scores, target, label_smoothing=0.1)
                + F.multiclass_max_margin_loss(scores, target)
                + F.max_margin_loss(scores[:, 0], scores[:, 1])
                + a.mean())

    inputs = (torch.randn(10, 4), torch.randn(6, 12), torch.randn(6), torch.randn(3, 6),
              torch.randint(0, 10, (8, 3)), torch.randint(0, 3, (8,)))
    _compiled_matches_eager(model, *inputs)


def test_compile_fullgraph_dropout_in_training():
    def f(x):
        return F.dropout(x, 0.3).sum()

    x = torch.randn(50, requires_grad=True)
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    out = compiled(x)
    (g,) = torch.autograd.grad(out, x)
    kept = g != 0
    torch.testing.assert_close(g[kept], torch.full_like(g[kept], 1 / 0.7))
    assert 0 < (g != 0).sum() < 50
