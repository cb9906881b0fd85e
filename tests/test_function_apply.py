"""HandWrittenFunction.apply: the fast call path gives what torch's own Function.apply gives.

The fast path (every argument positional, no torch.func transform active)
skips torch's per-call argument binding; everything else goes through
torch's ``Function.apply``. These tests check that the fast path is really
taken, that both paths give identical outputs and gradients, and that the
calls the fast path cannot serve (keywords, omitted defaults, vmap) still
work.
"""

from __future__ import annotations

import pytest
import torch
from torch.autograd import Function

from cs224n_nn import autograd as fn
from cs224n_nn.autograd._function import HandWrittenFunction

torch.manual_seed(0)
X = torch.randn(6, 4, dtype=torch.float64)
IDS = torch.tensor([[0, 3], [2, 3]])

# (Function, full positional arguments builder, index of the differentiable input)
CALLS = [
    (fn.Sigmoid, lambda x: (x,)),
    (fn.Tanh, lambda x: (x,)),
    (fn.HardTanh, lambda x: (x, -0.5, 0.5)),
    (fn.SoftSign, lambda x: (x,)),
    (fn.ReLU, lambda x: (x,)),
    (fn.LeakyReLU, lambda x: (x, 0.2)),
    (fn.Affine, lambda x: (x, torch.ones(3, 4, dtype=x.dtype), torch.zeros(3, dtype=x.dtype))),
    (fn.SoftmaxCrossEntropy, lambda x: (x, torch.tensor([0, 1, 2, 3, 0, 1]), None, -100, "mean", 0.0)),
    # a trailing *tensors: ids (B, C, W), the layout, then one table (x: 6 rows)
    (fn.WindowLookup, lambda x: (IDS.unsqueeze(1), ((0, ((0, None, False),)),), x)),
]


def first_output(out):
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("cls, args", CALLS, ids=[c[0].__name__ for c in CALLS])
def test_fast_path_equals_torch_apply(cls, args, monkeypatch):
    x1 = X.clone().requires_grad_()
    fast = first_output(cls.apply(*args(x1)))
    (g1,) = torch.autograd.grad(fast.sum(), x1)

    # torch's own path, with its argument binding, for the same call
    x2 = X.clone().requires_grad_()
    slow = first_output(Function.apply.__func__(cls, *args(x2)))
    (g2,) = torch.autograd.grad(slow.sum(), x2)
    assert torch.equal(fast, slow) and torch.equal(g1, g2)
    assert fast.grad_fn is not None and type(fast.grad_fn).__name__ == f"{cls.__name__}Backward"


@pytest.mark.parametrize("cls, args", CALLS, ids=[c[0].__name__ for c in CALLS])
def test_full_positional_call_skips_torch_binding(cls, args, monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("torch's Function.apply was called")

    monkeypatch.setattr(Function, "apply", classmethod(refuse))
    first_output(cls.apply(*args(X.clone().requires_grad_()))).sum().backward()


def test_keywords_and_omitted_defaults_take_torch_path():
    x = X.clone().requires_grad_()
    torch.testing.assert_close(fn.HardTanh.apply(x), torch.nn.functional.hardtanh(x))
    torch.testing.assert_close(fn.LeakyReLU.apply(x, negative_slope=0.3), torch.nn.functional.leaky_relu(x, 0.3))
    loss, _ = fn.SoftmaxCrossEntropy.apply(x, torch.tensor([0, 1, 2, 3, 0, 1]))
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(x, torch.tensor([0, 1, 2, 3, 0, 1])))


def test_transforms_take_torch_path():
    # vmap needs torch's functorch dispatch; the fast path must step aside.
    out = torch.func.vmap(fn.Tanh.apply)(X)
    torch.testing.assert_close(out, torch.tanh(X))
    grads = torch.func.vmap(torch.func.grad(lambda v: fn.Sigmoid.apply(v).sum()))(X)
    s = torch.sigmoid(X)
    torch.testing.assert_close(grads, s * (1 - s))


def test_arity_is_forward_parameter_count():
    assert fn.Tanh._arity == 1 and fn.HardTanh._arity == 3 and fn.Embedding._arity == 5
    assert fn.SoftmaxCrossEntropy._arity == 6
    assert fn.WindowLookup._arity == 3 and fn.WindowLookup._varargs and not fn.Embedding._varargs
    assert all(issubclass(c, HandWrittenFunction) for c, _ in CALLS)
