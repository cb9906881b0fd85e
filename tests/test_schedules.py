"""The notes' learning-rate schedules: closed forms, chaining, state dicts,
argument errors, and use under Lightning."""

from __future__ import annotations

import math

import pytest
import torch
from torch.optim.lr_scheduler import LRScheduler

import cs224n_nn.optim as ours

LR0 = (0.5, 0.02)  # two parameter groups with different initial lrs


def make_optimizer():
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)
    return ours.SGD([{"params": [a], "lr": LR0[0]}, {"params": [b], "lr": LR0[1]}], lr=0.1)


CLOSED_FORMS = [
    ("StepAnnealing", dict(step_size=7, factor=0.5), lambda t: 0.5 ** (t // 7)),
    ("StepAnnealing", dict(step_size=1, factor=0.9), lambda t: 0.9**t),
    ("ExponentialDecay", dict(k=0.01), lambda t: math.exp(-0.01 * t)),
    ("ExponentialDecay", dict(k=0.0), lambda t: 1.0),
    ("InverseTimeDecay", dict(tau=25), lambda t: 25 / max(t, 25)),
    ("InverseTimeDecay", dict(tau=0.5), lambda t: 0.5 / max(t, 0.5)),
]


@pytest.mark.parametrize("name,kw,multiplier", CLOSED_FORMS, ids=lambda v: str(v))
def test_schedule_follows_its_closed_form(name, kw, multiplier):
    opt = make_optimizer()
    sched = getattr(ours, name)(opt, **kw)
    assert isinstance(sched, LRScheduler)
    for t in range(300):
        expected = [lr0 * multiplier(t) for lr0 in LR0]
        for group, e in zip(opt.param_groups, expected):
            assert group["lr"] == pytest.approx(e, rel=1e-12, abs=0.0)
        assert sched.get_last_lr() == [g["lr"] for g in opt.param_groups]
        # the closed form torch uses for step(epoch) agrees with the chain
        assert sched._get_closed_form_lr() == pytest.approx(expected, rel=1e-12)
        opt.step()
        sched.step()


def test_step_annealing_matches_torch_steplr():
    opt, topt = make_optimizer(), make_optimizer()
    mine = ours.StepAnnealing(opt, step_size=3, factor=0.25)
    theirs = torch.optim.lr_scheduler.StepLR(topt, step_size=3, gamma=0.25)
    for _ in range(40):
        assert mine.get_last_lr() == theirs.get_last_lr()
        opt.step(), topt.step()
        mine.step(), theirs.step()


def test_inverse_time_decay_is_constant_until_tau_then_one_over_t():
    opt = make_optimizer()
    sched = ours.InverseTimeDecay(opt, tau=10)
    lrs = []
    for _ in range(41):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:11] == [LR0[0]] * 11
    assert lrs[20] == pytest.approx(LR0[0] / 2) and lrs[40] == pytest.approx(LR0[0] / 4)


def test_schedules_chain_with_another_scheduler():
    # chainable: two multiplicative schedules compose into their product
    opt = make_optimizer()
    a = ours.ExponentialDecay(opt, k=0.1)
    b = ours.StepAnnealing(opt, step_size=5, factor=0.5)
    for t in range(1, 21):
        opt.step()
        a.step()
        b.step()
        assert opt.param_groups[0]["lr"] == pytest.approx(LR0[0] * math.exp(-0.1 * t) * 0.5 ** (t // 5))


@pytest.mark.parametrize("name,kw,multiplier", CLOSED_FORMS[::2], ids=lambda v: str(v))
def test_state_dict_round_trip_resumes_the_schedule(name, kw, multiplier):
    opt = make_optimizer()
    sched = getattr(ours, name)(opt, **kw)
    for _ in range(30):
        opt.step()
        sched.step()
    saved_opt, saved = opt.state_dict(), sched.state_dict()

    opt2 = make_optimizer()
    sched2 = getattr(ours, name)(opt2, **kw)
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved)
    assert sched2.last_epoch == 30
    for _ in range(30):
        opt.step(), opt2.step()
        sched.step(), sched2.step()
        assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]
    assert opt2.param_groups[1]["lr"] == pytest.approx(LR0[1] * multiplier(60), rel=1e-12)


@pytest.mark.parametrize("name,kw,word", [
    ("StepAnnealing", dict(step_size=0), "step_size"),
    ("StepAnnealing", dict(step_size=2.5), "step_size"),
    ("StepAnnealing", dict(step_size=True), "step_size"),
    ("StepAnnealing", dict(step_size=3, factor=0.0), "factor"),
    ("StepAnnealing", dict(step_size=3, factor=-0.5), "factor"),
    ("StepAnnealing", dict(step_size=3, factor=float("nan")), "factor"),
    ("ExponentialDecay", dict(k=-0.1), "k"),
    ("ExponentialDecay", dict(k=float("inf")), "k"),
    ("ExponentialDecay", dict(k="0.1"), "k"),
    ("InverseTimeDecay", dict(tau=0), "tau"),
    ("InverseTimeDecay", dict(tau=-3), "tau"),
    ("InverseTimeDecay", dict(tau=float("nan")), "tau"),
], ids=lambda v: str(v))
def test_invalid_argument_is_a_value_error_naming_it(name, kw, word):
    with pytest.raises(ValueError, match=word):
        getattr(ours, name)(make_optimizer(), **kw)


def test_works_under_lightning_per_step():
    pl = pytest.importorskip("pytorch_lightning")
    seen = []

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(3, 1)

        def training_step(self, batch, batch_idx):
            seen.append(self.trainer.optimizers[0].param_groups[0]["lr"])
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def configure_optimizers(self):
            opt = ours.Adam(self.parameters(), lr=0.1)
            sched = ours.InverseTimeDecay(opt, tau=2)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    data = torch.utils.data.TensorDataset(torch.randn(16, 3), torch.randn(16, 1))
    trainer = pl.Trainer(max_steps=6, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu", devices=1)
    trainer.fit(Tiny(), torch.utils.data.DataLoader(data, batch_size=2))
    assert trainer.global_step == 6
    assert seen == pytest.approx([0.1 * 2 / max(t, 2) for t in range(6)])
