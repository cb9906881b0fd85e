"""Lazy (row-wise) Adam on sparse gradients, and groups mixing sparse and dense.

References: ``torch.optim.SparseAdam`` (the same lazy rule, eps placed
differently), dense ``torch.optim.Adam`` / our own dense path (a sparse
gradient that touches every row is a dense one), and the rows a gradient
does not touch (bit-identical before and after). All in float64.
"""

from __future__ import annotations

import io

import pytest
import torch

import cs224n_nn.nn as cnn
import cs224n_nn.optim as ours
from cs224n_nn import _compile
from cs224n_nn.optim import _compiled_update, _optimizer

ROWS, DIM, STEPS = 30, 4, 50
TINY_EPS = 1e-300  # SparseAdam refuses eps=0; 1e-300 vanishes beside sqrt(v) in float64


def sparse_grads(steps=STEPS, rows=ROWS, dim=DIM, touch=ROWS // 2, every_row=False, seed=1):
    """Uncoalesced COO gradients as ``nn.Embedding(sparse=True)`` gives them:
    one row per position, repeated ids. Only rows ``< touch`` are ever drawn
    (so the rest stay untouched), unless ``every_row`` (each row at least once)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        if every_row:
            ids = torch.cat([torch.randperm(rows, generator=g), torch.randint(0, rows, (7,), generator=g)])
        else:
            ids = torch.randint(0, touch, (int(torch.randint(1, 12, (), generator=g)),), generator=g)
        values = torch.randn(len(ids), dim, generator=g, dtype=torch.float64)
        out.append(torch.sparse_coo_tensor(ids.unsqueeze(0), values, (rows, dim), check_invariants=False))
    return out


def start_weight(rows=ROWS, dim=DIM):
    return torch.randn(rows, dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def run(make_opt, grads, dense=False, before_step=None):
    """Apply ``grads`` (sparse, or densified with ``dense``) one per step; return the weight."""
    weight = start_weight().requires_grad_()
    opt = make_opt([weight])
    for t, grad in enumerate(grads, start=1):
        # coalesce first: to_dense() of an uncoalesced tensor may sum repeated
        # rows in another order, which changes the last bit of the gradient
        weight.grad = grad.coalesce().to_dense() if dense else grad
        if before_step is not None:
            before_step(opt, t)
        opt.step()
    return weight.detach(), opt


def close(a, b, rtol):
    torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * b.abs().max().item())


# ---------------------------------------------------------------- vs torch.optim.SparseAdam


@pytest.mark.parametrize("maximize", [False, True])
def test_lazy_adam_follows_sparse_adam(maximize):
    grads = sparse_grads()
    kw = dict(lr=0.05, betas=(0.8, 0.95), eps=TINY_EPS, maximize=maximize)
    mine, opt = run(lambda ps: ours.Adam(ps, **kw), grads)
    twin, _ = run(lambda ps: torch.optim.SparseAdam(ps, **kw), grads)
    close(mine, twin, rtol=1e-10)
    assert opt.state[opt.param_groups[0]["params"][0]]["step"].item() == STEPS  # counted every step
    assert torch.equal(mine[ROWS // 2:], start_weight()[ROWS // 2:])


def test_lazy_adam_equals_sparse_adam_with_its_eps_rescaled():
    # SparseAdam divides by sqrt(v) + eps and multiplies by sqrt(bc2)/bc1;
    # Adam divides by sqrt(v/bc2) + eps, i.e. by sqrt(v) + eps*sqrt(bc2).
    # Giving SparseAdam eps*sqrt(1 - beta2^t) at step t makes them one formula.
    grads = sparse_grads()
    eps, beta2 = 1e-3, 0.999  # a large eps, so a misplaced eps would show

    def rescale(opt, t):
        opt.param_groups[0]["eps"] = eps * (1 - beta2**t) ** 0.5

    mine, _ = run(lambda ps: ours.Adam(ps, lr=0.05, eps=eps), grads)
    twin, _ = run(lambda ps: torch.optim.SparseAdam(ps, lr=0.05, eps=eps), grads, before_step=rescale)
    close(mine, twin, rtol=1e-10)
    plain, _ = run(lambda ps: torch.optim.SparseAdam(ps, lr=0.05, eps=eps), grads)
    assert not torch.allclose(mine, plain, rtol=1e-6, atol=0)  # the placement does matter


def test_lazy_adam_near_sparse_adam_at_default_eps():
    # With the default eps = 1e-8 the two differ only through eps vs
    # eps/sqrt(1 - beta2^t) in the denominator (at most 3.2e-7 at t = 1),
    # next to sqrt(v_hat) ~ |g| ~ 1 here: a relative difference of order 1e-7
    # per step, so a loose tolerance.
    grads = sparse_grads()
    mine, _ = run(lambda ps: ours.Adam(ps, lr=0.05), grads)
    twin, _ = run(lambda ps: torch.optim.SparseAdam(ps, lr=0.05), grads)
    close(mine, twin, rtol=1e-5)


# ---------------------------------------------------------------- vs dense Adam


@pytest.mark.parametrize("kw", [{}, {"amsgrad": True}, {"maximize": True}, {"bias_correction": False}],
                         ids=str)
def test_sparse_gradient_touching_every_row_is_dense_adam(kw):
    grads = sparse_grads(every_row=True, steps=30)
    sparse, _ = run(lambda ps: ours.Adam(ps, lr=0.05, **kw), grads)
    # the lazy branch runs the dense rule on the gathered rows: same bits as our dense step
    dense, _ = run(lambda ps: ours.Adam(ps, lr=0.05, foreach=False, **kw), grads, dense=True)
    assert torch.equal(sparse, dense)
    if "bias_correction" not in kw:
        twin, _ = run(lambda ps: torch.optim.Adam(ps, lr=0.05, foreach=False, **kw), grads, dense=True)
        close(sparse, twin, rtol=1e-10)


def test_untouched_rows_keep_parameter_and_state_bits():
    weight = start_weight().requires_grad_()
    opt = ours.Adam([weight], lr=0.05, amsgrad=True)
    keys = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    for grad in sparse_grads(steps=20, touch=ROWS):
        before = [weight.detach().clone()] + [opt.state[weight][k].clone() for k in keys if opt.state[weight]]
        weight.grad = grad
        opt.step()
        after = [weight.detach()] + [opt.state[weight][k] for k in keys]
        touched = torch.zeros(ROWS, dtype=torch.bool)
        touched[grad._indices()[0]] = True
        for old, new in zip(before, after):
            assert torch.equal(old[~touched], new[~touched])
        assert (before[0][touched] != after[0][touched]).all(dim=1).any()


def test_general_sparse_dim():
    # a (6, 5, 3) parameter with sparse_dim=2: the lazy update works on (i, j) rows
    shape = (6, 5, 3)
    g = torch.Generator().manual_seed(2)
    start = torch.randn(shape, generator=g, dtype=torch.float64)
    every = torch.cartesian_prod(torch.arange(6), torch.arange(5)).T
    lazy = start.clone().requires_grad_()
    dense = start.clone().requires_grad_()
    opt_lazy, opt_dense = ours.Adam([lazy], lr=0.1, amsgrad=True), ours.Adam([dense], lr=0.1, amsgrad=True)
    for _ in range(10):  # touching every (i, j): the dense step exactly
        idx = torch.cat([every, every[:, :4]], dim=1)
        grad = torch.sparse_coo_tensor(idx, torch.randn(idx.shape[1], 3, generator=g, dtype=torch.float64),
                                       shape, check_invariants=True)
        lazy.grad, dense.grad = grad, grad.coalesce().to_dense()
        opt_lazy.step()
        opt_dense.step()
    assert torch.equal(lazy, dense)
    before = lazy.detach().clone()
    lazy.grad = torch.sparse_coo_tensor(torch.tensor([[1, 4], [2, 0]]), torch.ones(2, 3, dtype=torch.float64),
                                        shape, check_invariants=True)
    opt_lazy.step()
    changed = (lazy.detach() != before).any(dim=2)
    assert changed.nonzero().tolist() == [[1, 2], [4, 0]]


# ---------------------------------------------------------------- mixed groups


class Window(torch.nn.Module):
    """A sparse embedding table and a dense layer: the NER model's shape in small."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(5)
        self.embed = cnn.Embedding(ROWS, DIM, sparse=True, dtype=torch.float64)
        self.out = cnn.Linear(3 * DIM, 5, dtype=torch.float64)

    def loss(self, ids):
        return self.out(self.embed(ids).reshape(len(ids), -1)).tanh().square().sum()


def train_window(make_opt, steps):
    model = Window()
    opt = make_opt(model)
    g = torch.Generator().manual_seed(6)
    for _ in range(steps):
        opt.zero_grad()
        model.loss(torch.randint(0, ROWS // 2, (4, 3), generator=g)).backward()
        assert model.embed.weight.grad.is_sparse and not model.out.weight.grad.is_sparse
        opt.step()
    return model, opt


class TorchPair:
    """torch's reference for a mixed group: SparseAdam on the table, Adam on the rest."""

    def __init__(self, model, **kw):
        dense = [p for n, p in model.named_parameters() if not n.startswith("embed")]
        self.opts = [torch.optim.SparseAdam([model.embed.weight], **kw),
                     torch.optim.Adam(dense, foreach=False, **kw)]

    def zero_grad(self):
        for o in self.opts:
            o.zero_grad()

    def step(self):
        for o in self.opts:
            o.step()


def spy_paths(monkeypatch):
    calls = []
    for method in ("_multi_tensor_update", "_per_parameter_update", "_compiled_update",
                   "_update_touched_rows"):
        original = getattr(_optimizer.Optimizer, method)

        def spy(self, params, *args, _name=method, _original=original, **kwargs):
            calls.append((_name, tuple(tuple(p.shape) for p in params)))
            return _original(self, params, *args, **kwargs)

        monkeypatch.setattr(_optimizer.Optimizer, method, spy)
    return calls


def test_mixed_group_splits_sparse_from_dense(monkeypatch):
    kw = dict(lr=0.05, eps=TINY_EPS)
    twin, _ = train_window(lambda m: TorchPair(m, **kw), 6)
    calls = spy_paths(monkeypatch)
    mine, _ = train_window(lambda m: ours.Adam(m.parameters(), **kw), 6)
    # the table's touched rows are gathered and updated eagerly, then the
    # dense parameters take the group's default path
    (gather, rows, dense) = calls[:3]
    assert gather == ("_update_touched_rows", ((ROWS, DIM),))
    assert rows[0] == "_multi_tensor_update" and len(rows[1]) == 1 and rows[1][0][1:] == (DIM,)
    assert rows[1][0][0] < ROWS  # only the rows the batch looked up
    assert dense == ("_multi_tensor_update", ((5, 3 * DIM), (5,)))
    for p, q in zip(mine.parameters(), twin.parameters()):
        close(p.detach(), q.detach(), rtol=1e-10)


@pytest.mark.slow
def test_mixed_group_fused(monkeypatch):
    # step 1 creates state (eager), step 2 compiles the dense params' loop, step 3 reuses it
    kw = dict(lr=0.05, eps=TINY_EPS)
    twin, _ = train_window(lambda m: TorchPair(m, **kw), 3)
    calls = spy_paths(monkeypatch)
    mine, opt = train_window(lambda m: ours.Adam(m.parameters(), fused=True, **kw), 3)
    assert len(opt._compiled) == 1 and not _compile._failed  # it really compiled
    dense_shapes = ((5, 3 * DIM), (5,))
    assert [c for c in calls if c[0] == "_compiled_update"] == [("_compiled_update", dense_shapes)] * 3
    assert ("_update_touched_rows", ((ROWS, DIM),)) in calls
    for p, q in zip(mine.parameters(), twin.parameters()):
        close(p.detach(), q.detach(), rtol=1e-10)


# ---------------------------------------------------------------- errors and state dicts


@pytest.mark.parametrize("make_opt", [
    lambda ps: ours.Adam(ps, weight_decay=0.1),
    lambda ps: ours.Adam(ps, weight_decay=0.1, decoupled_weight_decay=True),
    lambda ps: ours.AdamW(ps),  # default weight_decay=1e-2
], ids=["Adam", "Adam-decoupled", "AdamW-default"])
def test_weight_decay_with_sparse_gradient_raises_before_any_change(make_opt):
    weight = start_weight().requires_grad_()
    opt = make_opt([weight])
    weight.grad = sparse_grads(steps=1)[0]
    message = r"weight_decay=0\.\d+ is not compatible with sparse.*set weight_decay=0"
    with pytest.raises(RuntimeError, match=message):
        opt.step()
    assert torch.equal(weight.detach(), start_weight())
    assert not opt.state[weight]  # not even a step count


def test_state_dict_round_trip_mid_run():
    grads = sparse_grads(steps=20)
    make = lambda ps: ours.Adam(ps, lr=0.05, amsgrad=True)  # noqa: E731
    straight, _ = run(make, grads)
    half, opt = run(make, grads[:10])
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    resumed = half.clone().requires_grad_()
    opt2 = make([resumed])
    opt2.load_state_dict(torch.load(buffer))
    for grad in grads[10:]:
        resumed.grad = grad
        opt2.step()
    assert torch.equal(resumed.detach(), straight)
