"""The nn modules as drop-in replacements of their torch.nn twins."""

from __future__ import annotations

import pytest
import torch
from torch import nn as tnn

import cs224n_nn.nn as nn
from _torch_db import inverted_dropout

# (ours, torch twin, constructor args, input maker)
x_maker = lambda: torch.randn(4, 5)  # noqa: E731
ACTIVATIONS = [
    (nn.Sigmoid, tnn.Sigmoid, ()),
    (nn.Tanh, tnn.Tanh, ()),
    (nn.Hardtanh, tnn.Hardtanh, (-0.5, 0.7)),
    (nn.Softsign, tnn.Softsign, ()),
    (nn.ReLU, tnn.ReLU, ()),
    (nn.LeakyReLU, tnn.LeakyReLU, (0.2,)),
]


def run(module, *inputs):
    inputs = [t.clone().requires_grad_(True) if t.is_floating_point() else t for t in inputs]
    params = list(module.parameters())
    out = module(*inputs)
    wrt = [t for t in inputs if t.requires_grad] + [p for p in params if p.requires_grad]
    grads = torch.autograd.grad(out, wrt, torch.ones_like(out))
    return out.detach(), grads


@pytest.mark.parametrize("ours,twin,args", ACTIVATIONS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_activation_modules_match_torch(ours, twin, args):
    x = 2 * torch.randn(3, 4)
    a, b = ours(*args), twin(*args)
    assert isinstance(a, twin) and repr(a) == repr(b)
    torch.testing.assert_close(run(a, x), run(b, x))


def test_inplace_argument_is_accepted_and_leaves_input_alone():
    x = torch.randn(5)
    before = x.clone()
    for module in (nn.ReLU(inplace=True), nn.LeakyReLU(0.1, inplace=True), nn.Hardtanh(inplace=True),
                   nn.Dropout(0.5, inplace=True)):
        module(x)
        assert torch.equal(x, before)


def test_linear_is_a_drop_in_for_torch_linear():
    torch.manual_seed(0)
    ours = nn.Linear(5, 3)
    torch.manual_seed(0)
    twin = tnn.Linear(5, 3)
    assert isinstance(ours, tnn.Linear) and repr(ours) == repr(twin)
    torch.testing.assert_close(ours.state_dict(), twin.state_dict())  # torch's default initialisation
    x = torch.randn(2, 4, 5)
    torch.testing.assert_close(run(ours, x), run(twin, x))
    no_bias = nn.Linear(5, 3, bias=False, dtype=torch.float64)
    assert no_bias.bias is None and no_bias.weight.dtype == torch.float64
    assert "bias=False" in repr(no_bias)
    twin_nb = tnn.Linear(5, 3, bias=False, dtype=torch.float64)
    twin_nb.load_state_dict(no_bias.state_dict())
    torch.testing.assert_close(run(no_bias, x.double()), run(twin_nb, x.double()))


def test_linear_inside_a_torch_model_trains_like_the_native_one():
    torch.manual_seed(1)
    ours = tnn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    twin = tnn.Sequential(tnn.Linear(4, 8), tnn.Tanh(), tnn.Linear(8, 3))
    twin.load_state_dict(ours.state_dict())
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    for model in (ours, twin):
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        loss_fn = nn.CrossEntropyLoss() if model is ours else tnn.CrossEntropyLoss()
        for _ in range(5):
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
    torch.testing.assert_close(ours.state_dict(), twin.state_dict())


def test_embedding_is_a_drop_in_for_torch_embedding():
    torch.manual_seed(0)
    ours = nn.Embedding(10, 4, padding_idx=0)
    torch.manual_seed(0)
    twin = tnn.Embedding(10, 4, padding_idx=0)
    assert isinstance(ours, tnn.Embedding) and repr(ours) == repr(twin)
    torch.testing.assert_close(ours.state_dict(), twin.state_dict())
    ids = torch.tensor([[0, 3, 3], [9, 0, 1]])
    torch.testing.assert_close(run(ours, ids), run(twin, ids))
    sparse = nn.Embedding(10, 4, sparse=True)
    sparse(ids).sum().backward()
    assert sparse.weight.grad.is_sparse and "sparse=True" in repr(sparse)


def test_embedding_from_pretrained():
    vectors = torch.randn(6, 3)
    frozen = nn.Embedding.from_pretrained(vectors)
    assert isinstance(frozen, nn.Embedding) and not frozen.weight.requires_grad
    torch.testing.assert_close(frozen(torch.tensor([5, 0])), vectors[[5, 0]])
    tuned = nn.Embedding.from_pretrained(vectors, freeze=False, padding_idx=2, sparse=True)
    assert tuned.weight.requires_grad and tuned.padding_idx == 2 and tuned.sparse
    tuned(torch.tensor([2, 1, 2])).sum().backward()
    assert tuned.weight.grad.to_dense()[2].abs().sum() == 0
    assert tuned.weight.grad.to_dense()[1].tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("norm_type", [2.0, 1.0])
def test_embedding_max_norm_renormalises_rows_like_torch(norm_type):
    weight = 3 * torch.randn(6, 4)
    ids = torch.tensor([[0, 2, 2], [5, 0, 1]])
    ours = nn.Embedding.from_pretrained(weight.clone(), freeze=False, max_norm=1.5, norm_type=norm_type)
    twin = tnn.Embedding.from_pretrained(weight.clone(), freeze=False, max_norm=1.5, norm_type=norm_type)
    out, out_twin = ours(ids), twin(ids)
    torch.testing.assert_close(out, out_twin)
    torch.testing.assert_close(ours.weight, twin.weight)  # looked-up rows rescaled in place, others kept
    assert torch.equal(ours.weight[3], weight[3]) and not torch.equal(ours.weight[0], weight[0])
    upstream = torch.randn_like(out)
    (g,) = torch.autograd.grad(out, ours.weight, upstream)
    (g_twin,) = torch.autograd.grad(out_twin, twin.weight, upstream)
    torch.testing.assert_close(g, g_twin)


def test_embedding_scale_grad_by_freq_with_sparse_is_refused_like_torch():
    ids = torch.tensor([0, 0, 1])
    with pytest.raises(ValueError, match="scale_grad_by_freq=True is not supported with sparse=True"):
        nn.Embedding(3, 2, scale_grad_by_freq=True, sparse=True)(ids)
    twin = tnn.Embedding(3, 2, scale_grad_by_freq=True, sparse=True)
    with pytest.raises(RuntimeError, match="scale_grad_by_freq not supported with sparse"):
        twin(ids).sum().backward()


@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding_scale_grad_by_freq_like_torch(padding_idx):
    sparse = False
    weight = torch.randn(6, 3)
    ids = torch.tensor([[0, 2, 2], [5, 2, 1], [0, 5, 4]])
    ours = nn.Embedding.from_pretrained(weight.clone(), freeze=False, padding_idx=padding_idx,
                                        scale_grad_by_freq=True, sparse=sparse)
    twin = tnn.Embedding.from_pretrained(weight.clone(), freeze=False, padding_idx=padding_idx,
                                         scale_grad_by_freq=True, sparse=sparse)
    upstream = torch.randn(3, 3, 3)
    (g,) = torch.autograd.grad(ours(ids), ours.weight, upstream)
    (g_twin,) = torch.autograd.grad(twin(ids), twin.weight, upstream)
    if sparse:
        g, g_twin = g.to_dense(), g_twin.to_dense()
    torch.testing.assert_close(g, g_twin)
    # row 2 appears three times: its gradient is the mean, not the sum, of its positions'
    if padding_idx is None:
        torch.testing.assert_close(g[2], (upstream[0, 1] + upstream[0, 2] + upstream[1, 1]) / 3)


def test_embedding_ids_out_of_range_are_refused():
    with pytest.raises(IndexError, match=r"input \(the ids\) must lie in \[0, 5\)"):
        nn.Embedding(5, 2)(torch.tensor([7]))


def test_dropout_module_training_and_eval():
    x = torch.randn(200, 3)
    ours, twin = nn.Dropout(0.3), tnn.Dropout(0.3)
    assert repr(ours) == repr(twin)
    torch.manual_seed(4)
    a = ours(x)
    torch.manual_seed(4)
    torch.testing.assert_close(a, inverted_dropout(x, 0.3))  # torch's formula on the same draw
    ours.eval()
    assert ours(x) is x
    for p in (-0.1, 1.01, 2):
        with pytest.raises(ValueError, match=r"dropout probability p must be in \[0, 1\]"):
            nn.Dropout(p)
    ours, twin = nn.Dropout(1.0), tnn.Dropout(1.0)
    torch.testing.assert_close(ours(x), twin(x), rtol=0, atol=0)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_modules_match_torch(reduction):
    scores = torch.randn(6, 4)
    target = torch.tensor([0, 3, 1, 2, 2, 1])
    weight = torch.rand(4) + 0.5
    pairs = [
        (nn.CrossEntropyLoss(weight, ignore_index=1, reduction=reduction, label_smoothing=0.1),
         tnn.CrossEntropyLoss(weight, ignore_index=1, reduction=reduction, label_smoothing=0.1)),
        (nn.MultiClassMaxMarginLoss(margin=0.5, weight=weight, reduction=reduction),
         tnn.MultiMarginLoss(margin=0.5, weight=weight, reduction=reduction)),
    ]
    for ours, twin in pairs:
        assert isinstance(ours, type(twin)) and f"reduction={reduction!r}" in repr(ours)
        torch.testing.assert_close(run(ours, scores, target), run(twin, scores, target))
        assert "weight" in dict(ours.named_buffers())


def test_max_margin_loss_module():
    s, s_c = torch.randn(5), torch.randn(5)
    module = nn.MaxMarginLoss(margin=0.5, reduction="sum")
    assert repr(module) == "MaxMarginLoss(margin=0.5, reduction='sum')"
    twin = tnn.MarginRankingLoss(margin=0.5, reduction="sum")
    torch.testing.assert_close(module(s, s_c), twin(s, s_c, torch.ones(5)))
    with pytest.raises(ValueError, match="reduction must be one of"):
        nn.MaxMarginLoss(reduction="avg")
    with pytest.raises(TypeError, match="margin must be a real number"):
        nn.MaxMarginLoss(margin="1")


def test_loss_module_reprs():
    assert repr(nn.CrossEntropyLoss()) == "CrossEntropyLoss(ignore_index=-100, reduction='mean', label_smoothing=0.0)"
    assert repr(nn.MultiClassMaxMarginLoss(margin=2.0)) == "MultiClassMaxMarginLoss(margin=2.0, reduction='mean')"


def test_loss_module_bad_arguments():
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        nn.MultiClassMaxMarginLoss(p=3)
    with pytest.raises(ValueError, match="reduction must be one of"):
        nn.CrossEntropyLoss(reduction="avg")
    with pytest.raises(ValueError, match="reduction must be one of"):
        nn.MultiClassMaxMarginLoss(reduction="avg")


def test_docstrings_carry_formula_derivative_and_notes_section():
    for cls in (nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Softsign, nn.ReLU, nn.LeakyReLU, nn.Linear, nn.Dropout,
                nn.Embedding, nn.MaxMarginLoss, nn.MultiClassMaxMarginLoss, nn.CrossEntropyLoss):
        doc = cls.__doc__ or ""
        assert "section" in doc and "d" in doc and "=" in doc, cls.__name__


def test_the_example_in_docs_modules_runs():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "modules.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/modules.md", "exec"), namespace)
    assert torch.isfinite(namespace["loss"]) and namespace["w"].grad is None  # backward not called on it
    assert all(p.grad is not None for p in namespace["model"].parameters())
