"""cs224n_nn.optim against torch.optim: step for step, state dicts, errors.

Every optimizer runs beside its torch.optim twin on the same tiny model in
float64 for 100 steps, for every combination of its options, on both of our
execution paths (per-parameter and multi-tensor); the fused (compiled) path
is in test_optim_fused.py.
"""

from __future__ import annotations

import copy
import inspect
import io
import itertools

import pytest
import torch

import cs224n_nn.optim as ours

STEPS = 100
TWIN = {
    "SGD": torch.optim.SGD,
    "AdaGrad": torch.optim.Adagrad,
    "Adadelta": torch.optim.Adadelta,
    "RMSProp": torch.optim.RMSprop,
    "Adam": torch.optim.Adam,
    "AdamW": torch.optim.AdamW,
}


def grid(**options):
    """Every combination of the listed option values, as kwargs dicts."""
    keys = list(options)
    return [dict(zip(keys, values)) for values in itertools.product(*options.values())]


def _sgd_cases():
    cases = []
    for kw in grid(momentum=[0.0, 0.9], dampening=[0.0, 0.3], nesterov=[False, True],
                   weight_decay=[0.0, 0.01], maximize=[False, True]):
        if kw["momentum"] == 0 and (kw["dampening"] or kw["nesterov"]):
            continue
        if kw["nesterov"] and kw["dampening"]:
            continue
        cases.append(dict(kw, lr=0.05))
    return cases


CASES = (
    [("SGD", kw) for kw in _sgd_cases()]
    + [("AdaGrad", dict(kw, lr=0.1)) for kw in grid(lr_decay=[0.0, 0.01], weight_decay=[0.0, 0.1],
                                                     initial_accumulator_value=[0.0, 0.1],
                                                     maximize=[False, True])]
    + [("Adadelta", kw) for kw in grid(rho=[0.9, 0.5], weight_decay=[0.0, 0.1], maximize=[False, True])]
    + [("RMSProp", dict(kw, lr=0.01)) for kw in grid(momentum=[0.0, 0.5], centered=[False, True],
                                                      weight_decay=[0.0, 0.1], maximize=[False, True])]
    + [("Adam", dict(kw, lr=0.01)) for kw in grid(amsgrad=[False, True], weight_decay=[0.0, 0.1],
                                                   decoupled_weight_decay=[False, True],
                                                   maximize=[False, True])
       if not (kw["decoupled_weight_decay"] and not kw["weight_decay"])]
    + [("AdamW", dict(kw, lr=0.01)) for kw in grid(amsgrad=[False, True], weight_decay=[0.0, 0.1],
                                                    maximize=[False, True])]
)


def case_id(case):
    name, kw = case
    return name + "-" + ",".join(f"{k}={v}" for k, v in kw.items())


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny tensors: threads only add contention on a shared machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class TinyModel:
    """A one-hidden-layer tanh regressor as bare tensors, with its gradient
    written out by hand (the notes' backprop) so that a step costs
    microseconds; ``loss`` gives the same objective through autograd.
    """

    def __init__(self, seed: int = 0, dtype=torch.float64):
        g = torch.Generator().manual_seed(seed)
        self.params = [
            (torch.randn(4, 6, generator=g, dtype=dtype) * 0.5).requires_grad_(),
            torch.zeros(6, dtype=dtype, requires_grad=True),
            (torch.randn(6, 3, generator=g, dtype=dtype) * 0.5).requires_grad_(),
            torch.zeros(3, dtype=dtype, requires_grad=True),
        ]
        self.x = torch.randn(STEPS, 8, 4, generator=g, dtype=dtype)
        self.y = torch.randn(STEPS, 8, 3, generator=g, dtype=dtype)

    def clone(self) -> TinyModel:
        other = copy.copy(self)
        other.params = [p.detach().clone().requires_grad_() for p in self.params]
        return other

    def loss(self, t: int) -> torch.Tensor:
        w1, b1, w2, b2 = self.params
        scores = torch.tanh(self.x[t % STEPS] @ w1 + b1) @ w2 + b2
        return 0.5 * ((scores - self.y[t % STEPS]) ** 2).sum() / len(scores)

    def gradients(self, t: int) -> list[torch.Tensor]:
        w1, b1, w2, b2 = (p.detach() for p in self.params)
        x, y = self.x[t % STEPS], self.y[t % STEPS]
        h = torch.tanh(x @ w1 + b1)
        delta2 = (h @ w2 + b2 - y) / len(x)
        delta1 = (delta2 @ w2.T) * (1 - h * h)
        return [x.T @ delta1, delta1.sum(0), h.T @ delta2, delta2.sum(0)]

    def backward(self, t: int) -> None:
        for p, g in zip(self.params, self.gradients(t)):
            p.grad = g

    def train(self, opt, steps, start=0, scheduler=None):
        for t in range(start, start + steps):
            self.backward(t)
            opt.step()
            if scheduler is not None:
                scheduler.step()


def test_tiny_model_gradients_are_autograd_gradients():
    model = TinyModel()
    for t in range(3):
        expected = torch.autograd.grad(model.loss(t), model.params)
        for g, e in zip(model.gradients(t), expected):
            torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-14)


def assert_follows(mine, theirs, rtol=1e-6):
    for p, q in zip(mine, theirs):
        scale = q.detach().abs().max().item()
        torch.testing.assert_close(p, q, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_follows_torch_twin_on_both_paths(case):
    name, kw = case
    base = TinyModel()
    twin = base.clone()
    twin.train(TWIN[name](twin.params, foreach=False, **kw), STEPS)
    start = [p.detach().clone() for p in base.params]
    for foreach in (False, True):
        model = base.clone()
        model.train(getattr(ours, name)(model.params, foreach=foreach, **kw), STEPS)
        assert_follows(model.params, twin.params)
    # the twin really moved, so agreeing with it is not agreeing on nothing
    assert any(not torch.equal(p, q) for p, q in zip(twin.params, start))


@pytest.mark.parametrize("name", list(TWIN))
def test_per_parameter_and_multi_tensor_paths_agree(name):
    a, b = TinyModel(), TinyModel()
    a.train(getattr(ours, name)(a.params, foreach=False), 30)
    b.train(getattr(ours, name)(b.params, foreach=True), 30)
    assert_follows(a.params, b.params, rtol=1e-12)


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("name", list(TWIN))
def test_parameters_without_gradient_on_some_steps(name, foreach):
    # Biases get no gradient on odd steps, so step counts differ within a
    # group (the multi-tensor path must bucket them) and skipped parameters
    # must not move.
    mine, twin = TinyModel(), TinyModel()
    opt = getattr(ours, name)(mine.params, foreach=foreach)
    topt = TWIN[name](twin.params, foreach=False)
    for t in range(40):
        for model, o in ((mine, opt), (twin, topt)):
            model.backward(t)
            if t % 2:
                model.params[1].grad = None
                model.params[3].grad = None
            before = model.params[1].detach().clone()
            o.step()
            if t % 2:
                assert torch.equal(before, model.params[1])
    assert_follows(mine.params, twin.params)


@pytest.mark.parametrize("name", list(TWIN))
def test_parameter_groups_follow_torch(name):
    mine, twin = TinyModel(), TinyModel()

    def groups(params):
        return [{"params": params[:2]}, {"params": params[2:], "lr": 0.003, "weight_decay": 0.05}]

    mine.train(getattr(ours, name)(groups(mine.params), lr=0.02), 50)
    twin.train(TWIN[name](groups(twin.params), lr=0.02), 50)
    assert_follows(mine.params, twin.params)


def test_mixed_dtypes_in_one_group_multi_tensor():
    torch.manual_seed(1)
    ps = [torch.randn(5, dtype=torch.float64, requires_grad=True), torch.randn(3, requires_grad=True)]
    qs = [p.detach().clone().requires_grad_() for p in ps]
    mine, twin = ours.Adam(ps, lr=0.1, foreach=True), torch.optim.Adam(qs, lr=0.1, foreach=False)
    for _ in range(20):
        for opt, xs in ((mine, ps), (twin, qs)):
            opt.zero_grad()
            sum((x.double() ** 3).sum() for x in xs).backward()
            opt.step()
    assert_follows(ps, qs, rtol=1e-5)
    assert ps[1].dtype == torch.float32


# ---------------------------------------------------------------- resuming

RESUME_CASES = [
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, lr_in_velocity=True)),
    ("AdaGrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)),
    ("Adadelta", dict(weight_decay=0.01)),
    ("RMSProp", dict(momentum=0.5, centered=True)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.01)),
    ("Adam", dict(lr=0.01, bias_correction=False)),
    ("AdamW", dict(lr=0.01, amsgrad=True)),
]


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("case", RESUME_CASES, ids=case_id)
def test_state_dict_resume_is_bit_identical(case, foreach):
    name, kw = case
    cls = getattr(ours, name)
    whole = TinyModel()
    whole.train(cls(whole.params, foreach=foreach, **kw), 60)

    first = TinyModel()
    opt = cls(first.params, foreach=foreach, **kw)
    first.train(opt, 25)
    buffer = io.BytesIO()
    torch.save({"params": [p.detach() for p in first.params], "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer)

    resumed = TinyModel()
    with torch.no_grad():
        for p, s in zip(resumed.params, saved["params"]):
            p.copy_(s)
    opt2 = cls(resumed.params, foreach=foreach, **kw)
    opt2.load_state_dict(saved["opt"])
    resumed.train(opt2, 35, start=25)
    for p, q in zip(resumed.params, whole.params):
        assert torch.equal(p, q)


@pytest.mark.parametrize("name", list(TWIN))
def test_state_dict_is_interchangeable_with_torch(name):
    # Same state keys and step layout as torch.optim: a torch checkpoint
    # resumes in ours (and continues as torch would).
    model = TinyModel()
    topt = TWIN[name](model.params, foreach=False)
    model.train(topt, 20)
    twin = model.clone()
    twin_opt = TWIN[name](twin.params, foreach=False)
    # deep copies: load_state_dict keeps the very step tensors it is given
    twin_opt.load_state_dict(copy.deepcopy(topt.state_dict()))
    mine_opt = getattr(ours, name)(model.params)
    mine_opt.load_state_dict(copy.deepcopy(topt.state_dict()))
    model.train(mine_opt, 20, start=20)
    twin.train(twin_opt, 20, start=20)
    assert_follows(model.params, twin.params)


# ---------------------------------------------------------------- closures


@pytest.mark.parametrize("name", list(TWIN))
def test_closure_runs_with_grad_and_its_loss_is_returned(name):
    mine, twin = TinyModel(), TinyModel()
    opt, topt = getattr(ours, name)(mine.params), TWIN[name](twin.params)
    for t in range(10):
        def closure(model=mine, o=opt, t=t):
            o.zero_grad()
            loss = model.loss(t)
            loss.backward()
            return loss

        def tclosure(model=twin, o=topt, t=t):
            o.zero_grad()
            loss = model.loss(t)
            loss.backward()
            return loss

        with torch.no_grad():  # step must re-enable grad for the closure
            loss = opt.step(closure)
        tloss = topt.step(tclosure)
        torch.testing.assert_close(loss, tloss)
    assert_follows(mine.params, twin.params)


# ---------------------------------------------------------------- sparse


def _embedding_runs(make_opt, steps=100, **emb):
    torch.manual_seed(3)
    emb_weight = torch.randn(20, 4, dtype=torch.float64)
    layer = torch.nn.Embedding(20, 4, sparse=True, dtype=torch.float64, **emb)
    with torch.no_grad():
        layer.weight.copy_(emb_weight)
    opt = make_opt([layer.weight])
    g = torch.Generator().manual_seed(4)
    for _ in range(steps):
        # ids drawn from rows 0..9 only, with repeats: rows 10..19 are never touched
        ids = torch.randint(0, 10, (6,), generator=g)
        opt.zero_grad()
        (layer(ids).sin().sum()).backward()
        assert layer.weight.grad.is_sparse
        opt.step()
    return layer.weight.detach(), emb_weight


@pytest.mark.parametrize("kw", grid(lr_decay=[0.0, 0.01], initial_accumulator_value=[0.0, 0.1],
                                    maximize=[False, True]), ids=str)
def test_sparse_adagrad_follows_torch_and_is_lazy(kw):
    mine, start = _embedding_runs(lambda ps: ours.AdaGrad(ps, lr=0.1, **kw))
    twin, _ = _embedding_runs(lambda ps: torch.optim.Adagrad(ps, lr=0.1, **kw))
    assert_follows([mine], [twin])
    assert torch.equal(mine[10:], start[10:])
    assert not torch.equal(mine[:10], start[:10])


def test_sparse_adagrad_matches_dense_gradients():
    sparse, _ = _embedding_runs(lambda ps: ours.AdaGrad(ps, lr=0.1, eps_inside_sqrt=True), steps=30)
    torch.manual_seed(3)
    weight = torch.randn(20, 4, dtype=torch.float64).requires_grad_()
    opt = ours.AdaGrad([weight], lr=0.1, eps_inside_sqrt=True)
    g = torch.Generator().manual_seed(4)
    for _ in range(30):
        ids = torch.randint(0, 10, (6,), generator=g)
        opt.zero_grad()
        weight[ids].sin().sum().backward()
        opt.step()
    # dense zero-gradient rows stay put too, since their sum stays 0 -> 0/sqrt(eps)
    assert_follows([sparse], [weight.detach()], rtol=1e-12)


def test_sparse_sgd_without_momentum_follows_torch():
    mine, _ = _embedding_runs(lambda ps: ours.SGD(ps, lr=0.1, maximize=True))
    twin, _ = _embedding_runs(lambda ps: torch.optim.SGD(ps, lr=0.1, maximize=True))
    assert_follows([mine], [twin])


@pytest.mark.parametrize("name", ["Adadelta", "RMSProp"])  # Adam/AdamW: tests/test_sparse_adam.py
def test_sparse_gradient_rejected_naming_the_optimizer(name):
    with pytest.raises(RuntimeError, match=f"{name} does not support sparse gradients"):
        _embedding_runs(lambda ps: getattr(ours, name)(ps), steps=1)


@pytest.mark.parametrize("kw", [dict(momentum=0.9), dict(momentum=0.9, dampening=0.3),
                                dict(momentum=0.9, nesterov=True), dict(momentum=0.5, maximize=True)],
                         ids=str)
@pytest.mark.parametrize("foreach", [None, False])
def test_sparse_sgd_with_momentum_follows_torch(kw, foreach):
    # torch keeps a sparse momentum buffer; every row it ever touched keeps
    # moving as its velocity decays, so the never-touched rows 10..19 stay put
    mine, start = _embedding_runs(lambda ps: ours.SGD(ps, lr=0.1, foreach=foreach, **kw), steps=30)
    twin, _ = _embedding_runs(lambda ps: torch.optim.SGD(ps, lr=0.1, **kw), steps=30)
    assert_follows([mine], [twin])
    assert torch.equal(mine[10:], start[10:])


def test_sparse_sgd_with_momentum_moves_rows_after_their_last_gradient():
    # the difference from a lazy (touched-rows) update: a row keeps moving
    # on the steps after its gradient, carried by its velocity
    layer = torch.nn.Embedding(4, 2, sparse=True)
    opt = ours.SGD(layer.parameters(), lr=0.1, momentum=0.9)
    layer(torch.tensor([0])).sum().backward()
    opt.step()
    after_one = layer.weight.detach().clone()
    opt.zero_grad()
    layer(torch.tensor([1])).sum().backward()
    opt.step()
    assert not torch.equal(layer.weight[0], after_one[0])  # row 0: no gradient this step
    torch.testing.assert_close(layer.weight[0], after_one[0] - 0.1 * 0.9)


def test_sparse_gradient_rejected_with_weight_decay():
    with pytest.raises(RuntimeError, match="weight_decay"):
        _embedding_runs(lambda ps: ours.AdaGrad(ps, weight_decay=0.1), steps=1)


# ---------------------------------------------------------------- signatures and errors


@pytest.mark.parametrize("name", list(TWIN))
def test_signature_has_torch_names_defaults_and_order(name):
    mine = inspect.signature(getattr(ours, name).__init__).parameters
    theirs = inspect.signature(TWIN[name].__init__).parameters
    for pname, p in theirs.items():
        assert pname in mine, pname
        assert mine[pname].default == p.default, pname
        assert mine[pname].kind == p.kind, pname
    positional = [n for n, p in theirs.items() if p.kind == p.POSITIONAL_OR_KEYWORD]
    assert [n for n, p in mine.items() if p.kind == p.POSITIONAL_OR_KEYWORD] == positional
    assert issubclass(getattr(ours, name), torch.optim.Optimizer)


BAD = [
    (name, kw, word)
    for name in TWIN
    for kw, word in [
        (dict(lr=-0.1), "lr"), (dict(lr=float("nan")), "lr"), (dict(lr=float("inf")), "lr"),
        (dict(weight_decay=-1.0), "weight_decay"), (dict(weight_decay=float("nan")), "weight_decay"),
        (dict(differentiable=True), "differentiable"),
    ]
] + [
    ("SGD", dict(momentum=-0.5), "momentum"),
    ("SGD", dict(dampening=-0.5), "dampening"),
    ("SGD", dict(nesterov=True), "nesterov"),
    ("SGD", dict(momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
    ("SGD", dict(foreach=True, fused=True), "fused"),
    ("AdaGrad", dict(eps=-1e-10), "eps"),
    ("AdaGrad", dict(lr_decay=-0.1), "lr_decay"),
    ("AdaGrad", dict(initial_accumulator_value=-1.0), "initial_accumulator_value"),
    ("Adadelta", dict(rho=1.5), "rho"),
    ("Adadelta", dict(rho=-0.1), "rho"),
    ("Adadelta", dict(eps=-1.0), "eps"),
    ("Adadelta", dict(capturable=True), "capturable"),
    ("RMSProp", dict(alpha=-0.1), "alpha"),
    ("RMSProp", dict(momentum=-0.1), "momentum"),
    ("RMSProp", dict(eps=float("nan")), "eps"),
    ("Adam", dict(betas=(1.0, 0.999)), "beta1"),
    ("Adam", dict(betas=(-0.1, 0.999)), "beta1"),
    ("Adam", dict(betas=(0.9, 1.0)), "beta2"),
    ("Adam", dict(betas=(0.9, float("nan"))), "beta2"),
    ("Adam", dict(betas=(0.9,)), "betas"),
    ("Adam", dict(eps=-1e-8), "eps"),
    ("Adam", dict(capturable=True), "capturable"),
    ("AdamW", dict(betas=(0.9, 1.5)), "beta2"),
    ("AdamW", dict(foreach=True, fused=True), "fused"),
]


@pytest.mark.parametrize("name,kw,word", BAD, ids=lambda v: str(v))
def test_invalid_hyperparameter_is_a_value_error_naming_it(name, kw, word):
    p = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match=word):
        getattr(ours, name)([p], **kw)


# ---------------------------------------------------------------- the notes' forms


def test_notes_momentum_equals_torch_while_lr_is_constant():
    mine, twin = TinyModel(), TinyModel()
    mine.train(ours.SGD(mine.params, lr=0.05, momentum=0.9, lr_in_velocity=True), STEPS)
    twin.train(torch.optim.SGD(twin.params, lr=0.05, momentum=0.9), STEPS)
    assert_follows(mine.params, twin.params)


@pytest.mark.parametrize("nesterov", [False, True])
def test_notes_momentum_under_a_changing_lr(nesterov):
    # Snippet 2.2 by hand: v = mu*v - lr_t*g; x += v  (Nesterov: x += mu*v - lr_t*g)
    mu, steps = 0.9, 30
    lrs = [0.1 if t < 10 else 0.01 for t in range(steps)]
    notes, torch_form = TinyModel(), TinyModel()
    opt = ours.SGD(notes.params, lr=0.1, momentum=mu, nesterov=nesterov, lr_in_velocity=True)
    topt = ours.SGD(torch_form.params, lr=0.1, momentum=mu, nesterov=nesterov)
    by_hand = TinyModel().clone()
    velocity = [torch.zeros_like(p) for p in by_hand.params]
    for t in range(steps):
        for o in (opt, topt):
            for group in o.param_groups:
                group["lr"] = lrs[t]
        notes.train(opt, 1, start=t)
        torch_form.train(topt, 1, start=t)
        grads = by_hand.gradients(t)
        with torch.no_grad():
            for x, v, g in zip(by_hand.params, velocity, grads):
                v.mul_(mu).sub_(lrs[t] * g)
                x.add_(mu * v - lrs[t] * g if nesterov else v)
    assert_follows(notes.params, by_hand.params, rtol=1e-10)
    # after the drop, torch's form rescales the old velocity at once: they differ
    assert max((p - q).abs().max().item() for p, q in zip(notes.params, torch_form.params)) > 1e-4


def test_notes_adagrad_eps_inside_sqrt():
    # Snippet 2.3 by hand: cache += dx**2; x += -lr*dx/sqrt(cache + eps)
    lr, eps = 0.1, 1e-8
    mine, by_hand = TinyModel(), TinyModel()
    mine.train(ours.AdaGrad(mine.params, lr=lr, eps=eps, eps_inside_sqrt=True), 50)
    cache = [torch.zeros_like(p) for p in by_hand.params]
    for t in range(50):
        grads = by_hand.gradients(t)
        with torch.no_grad():
            for x, c, dx in zip(by_hand.params, cache, grads):
                c += dx**2
                x += -lr * dx / torch.sqrt(c + eps)
    assert_follows(mine.params, by_hand.params, rtol=1e-10)


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
@pytest.mark.parametrize("foreach", [False, True])
def test_notes_adam_without_bias_correction(name, foreach):
    # Snippet 2.5 by hand: m = b1*m + (1-b1)*dx; v = b2*v + (1-b2)*dx**2;
    # x += -lr * m / (sqrt(v) + eps)   (AdamW first decays x by 1 - lr*wd)
    lr, b1, b2, eps, wd = 0.01, 0.9, 0.999, 1e-8, 0.1
    mine, by_hand = TinyModel(), TinyModel()
    kw = dict(weight_decay=wd) if name == "AdamW" else {}
    mine.train(getattr(ours, name)(mine.params, lr=lr, bias_correction=False, foreach=foreach, **kw), 50)
    m = [torch.zeros_like(p) for p in by_hand.params]
    v = [torch.zeros_like(p) for p in by_hand.params]
    for t in range(50):
        grads = by_hand.gradients(t)
        with torch.no_grad():
            for x, mi, vi, dx in zip(by_hand.params, m, v, grads):
                if name == "AdamW":
                    x *= 1 - lr * wd
                mi.copy_(b1 * mi + (1 - b1) * dx)
                vi.copy_(b2 * vi + (1 - b2) * dx**2)
                x += -lr * mi / (torch.sqrt(vi) + eps)
    assert_follows(mine.params, by_hand.params, rtol=1e-10)
    # and with the correction (the default) it is a different optimizer
    twin = TinyModel()
    twin.train(getattr(ours, name)(twin.params, lr=lr, **kw), 50)
    assert max((p - q).abs().max().item() for p, q in zip(twin.params, by_hand.params)) > 1e-4


def test_update_functions_are_public_and_pure_rules():
    # the rule alone, on one tensor, is Adam's first step: -lr * sign(g)
    p, g = torch.zeros(3, dtype=torch.float64), torch.tensor([2.0, -3.0, 0.5], dtype=torch.float64)
    m, v = torch.zeros_like(p), torch.zeros_like(p)
    ours.adam(p, g, m, v, None, bias_correction1=1 - 0.9, bias_correction2_sqrt=(1 - 0.999) ** 0.5,
              lr=0.1, beta1=0.9, beta2=0.999, eps=0.0, weight_decay=0.0,
              decoupled_weight_decay=False, amsgrad=False, maximize=False)
    torch.testing.assert_close(p, -0.1 * g.sign())


def test_tensor_learning_rate_is_accepted():
    a, b = TinyModel(), TinyModel()
    a.train(ours.Adam(a.params, lr=torch.tensor(0.01, dtype=torch.float64)), 20)
    b.train(ours.Adam(b.params, lr=0.01), 20)
    assert_follows(a.params, b.params, rtol=1e-12)


# a group mixing sparse and dense gradients is split: the sparse one's touched
# rows are gathered and take the group's eager path, the dense one the group's path
@pytest.mark.parametrize("foreach,sparse,expected", [
    (None, False, ["_multi_tensor_update"]),
    (None, True, ["_update_touched_rows", "_multi_tensor_update", "_multi_tensor_update"]),
    (False, False, ["_per_parameter_update"]),
    (False, True, ["_update_touched_rows", "_per_parameter_update", "_per_parameter_update"]),
    (True, False, ["_multi_tensor_update"]),
    (True, True, ["_update_touched_rows", "_multi_tensor_update", "_multi_tensor_update"]),
])
def test_path_choice(foreach, sparse, expected, monkeypatch):
    calls = []
    for method in ("_multi_tensor_update", "_per_parameter_update", "_update_touched_rows",
                   "_compiled_update"):
        original = getattr(ours.AdaGrad, method)

        def spy(self, *args, _name=method, _original=original, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(ours.AdaGrad, method, spy)
    layer = torch.nn.Embedding(6, 2, sparse=sparse)
    dense = torch.zeros(3, requires_grad=True)
    opt = ours.AdaGrad([layer.weight, dense], foreach=foreach)
    (layer(torch.tensor([1, 4])).sum() + dense.sum()).backward()
    opt.step()
    assert calls == expected


def test_torch_spellings_are_the_same_classes():
    assert ours.Adagrad is ours.AdaGrad and ours.RMSprop is ours.RMSProp
    assert {"Adagrad", "RMSprop", "AdaGrad", "RMSProp"} <= set(ours.__all__)


def test_grouping_without_torchs_private_helper(monkeypatch):
    # torch._C._group_tensors_by_device_and_dtype is private: without it the
    # step groups by the public attributes and takes the same steps
    from cs224n_nn.optim import _buckets
    tensors = [torch.zeros(2), torch.zeros(3, dtype=torch.float64), torch.zeros(1), torch.zeros(2, dtype=torch.float64)]
    assert sorted(_buckets.by_device_and_dtype(tensors)) == sorted(_buckets.python_by_device_and_dtype(tensors))
    a, b = TinyModel(), TinyModel()
    a.train(ours.Adam(a.params, lr=0.01), 20)
    monkeypatch.delattr(torch._C, "_group_tensors_by_device_and_dtype")
    assert sorted(_buckets.by_device_and_dtype(tensors)) == [[0, 2], [1, 3]]
    b.train(ours.Adam(b.params, lr=0.01), 20)
    for p, q in zip(a.params, b.params):
        assert torch.equal(p, q)
