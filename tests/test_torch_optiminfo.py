"""Our optimizers against torch's own optimizer database.

``torch.testing._internal.common_optimizers.optim_db`` ships in the torch
wheel: for each optimizer, the constructor configurations torch's test
suite runs (``optim_inputs_func``) and the ones it must refuse
(``optim_error_inputs_func``). Nobody here wrote those cases. For each of
our optimizers and its torch twin:

* every configuration (the CPU ones and the CUDA-only ones, in float32 and
  float64, with our default path and ``foreach=False`` / ``foreach=True``
  where torch's entry lists ``foreach``) steps the same parameters from the
  same start and must land where torch's single-tensor path lands;
* a configuration that switches on a keyword we refuse
  (``cs224n_nn.optim._checks.REFUSED_KEYWORDS``, the one documented list)
  must raise a ``ValueError`` naming that keyword;
* each optimizer's richest configuration also runs on the compiled default
  path (threshold lowered, dynamo's ``eager`` backend) and lands there too;
* every error input raises the error type torch raises, with a message
  matching torch's own pattern.
"""

from __future__ import annotations

import copy
import re
import warnings

import pytest
import torch

import cs224n_nn.optim as ours
from cs224n_nn.optim._checks import REFUSED_KEYWORDS

common_optimizers = pytest.importorskip(
    "torch.testing._internal.common_optimizers",
    reason="torch's test databases need the expecttest package (pip install expecttest)",
)

OURS = {"SGD": ours.SGD, "Adagrad": ours.Adagrad, "Adadelta": ours.Adadelta,
        "RMSprop": ours.RMSprop, "Adam": ours.Adam, "AdamW": ours.AdamW}
INFOS = {info.optim_cls.__name__: info for info in common_optimizers.optim_db
         if info.optim_cls.__name__ in OURS}
DTYPES = [torch.float32, torch.float64]
STEPS = 5
# float32: torch's and our paths round differently (foreach vs single-tensor
# kernels, the folded bias correction); five steps stay well inside this
TOL = {torch.float32: dict(rtol=2e-5, atol=2e-6), torch.float64: dict(rtol=1e-10, atol=1e-12)}


def test_the_database_holds_every_twin():
    assert set(INFOS) == set(OURS)


def configurations(name: str, dtype: torch.dtype):
    """(description, kwargs) of every configuration torch's entry lists, CPU
    and CUDA-only ones together (the CUDA ones are where ``capturable`` is)."""
    info = INFOS[name]
    seen = {}
    for device in ("cpu", "cuda"):
        for inp in info.optim_inputs_func(device, dtype):
            seen.setdefault(inp.desc, inp.kwargs)
    return list(seen.items())


def paths(name: str) -> list[dict]:
    """Our paths to run each configuration on: the default, and each of
    torch's cliquey flags its entry lists that we take."""
    flags = [{}] + [{flag: False} for flag in ("foreach",) if flag in INFOS[name].supported_impls]
    return flags + [{"foreach": True}]


CASES = [(name, dtype, desc, kwargs) for name in OURS for dtype in DTYPES
         for desc, kwargs in configurations(name, dtype)]


def make_params(dtype: torch.dtype) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(shape, generator=g, dtype=torch.float64).to(dtype).requires_grad_()
            for shape in [(4, 3), (4,), (2, 2, 2)]]


def train(opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
    """STEPS steps on sum(p^2/2 + sin(3p)): gradient p + 3 cos(3p), the same
    function of the parameters on both sides."""
    for _ in range(STEPS):
        for p in params:
            p.grad = p.detach() + 3 * torch.cos(3 * p.detach())
        opt.step()


def refused_key(kwargs: dict) -> str | None:
    return next((k for k in REFUSED_KEYWORDS if kwargs.get(k)), None)


@pytest.mark.parametrize("name,dtype,desc,kwargs", CASES,
                         ids=[f"{n}-{str(d)[6:]}-{desc}" for n, d, desc, _ in CASES])
def test_configuration_steps_like_torch(name, dtype, desc, kwargs):
    key = refused_key(kwargs)
    if key is not None:  # refused: a clear error naming the keyword, before any step
        with pytest.raises(ValueError, match=rf"{key}=True is not supported"):
            OURS[name](make_params(dtype), **copy.deepcopy(kwargs))
        return
    twin = make_params(dtype)
    train(INFOS[name].optim_cls(twin, foreach=False, **copy.deepcopy(kwargs)), twin)
    for path in paths(name):
        kw = dict(copy.deepcopy(kwargs), **path)
        if path.get("foreach") and isinstance(kw.get("lr"), torch.Tensor) and name in ("Adam", "AdamW"):
            # torch refuses a Tensor lr with foreach=True (an error input below); so do we
            with pytest.raises(ValueError, match="lr as a Tensor"):
                OURS[name](make_params(dtype), **kw)
            continue
        mine = make_params(dtype)
        train(OURS[name](mine, **kw), mine)
        for p, q in zip(mine, twin):
            torch.testing.assert_close(p, q, **TOL[dtype], msg=lambda m, path=path: f"{path}: {m}")


def richest_configuration(name: str) -> tuple[str, dict]:
    """The accepted configuration of torch's entry that sets the most keywords."""
    accepted = [(desc, kw) for desc, kw in configurations(name, torch.float64) if refused_key(kw) is None]
    return max(reversed(accepted), key=lambda item: len(item[1]))


@pytest.mark.parametrize("name", list(OURS))
def test_compiled_default_steps_like_torch(name, monkeypatch):
    # The default path compiles groups above COMPILE_MIN_NUMEL; here the
    # threshold is lowered and dynamo's eager backend stands in for inductor
    # (the same tracing of the rule, no C++; inductor's arithmetic is checked
    # in test_optim_fused.py), on each optimizer's richest configuration.
    from cs224n_nn import _compile
    from cs224n_nn.optim import _compiled_update
    real_compile = torch.compile
    made = []

    def dynamo_only(fn, **kwargs):
        made.append(fn)
        return real_compile(fn, backend="eager", dynamic=kwargs.get("dynamic"))

    monkeypatch.setattr(_compiled_update.torch, "compile", dynamo_only)
    monkeypatch.setattr(_compiled_update, "COMPILE_MIN_NUMEL", 1)
    desc, kwargs = richest_configuration(name)
    twin, mine = make_params(torch.float64), make_params(torch.float64)
    train(INFOS[name].optim_cls(twin, foreach=False, **copy.deepcopy(kwargs)), twin)
    opt = OURS[name](mine, **copy.deepcopy(kwargs))
    train(opt, mine)
    assert len(made) == 1 and not _compile._failed, desc  # it really ran compiled
    for p, q in zip(mine, twin):
        torch.testing.assert_close(p, q, **TOL[torch.float64], msg=lambda m: f"{desc}: {m}")


@pytest.mark.parametrize("name", list(OURS))
@pytest.mark.parametrize("key", list(REFUSED_KEYWORDS))
def test_refused_keyword_is_a_clear_error(name, key):
    if key not in torch_keywords(name):  # neither of us takes the keyword
        with pytest.raises(TypeError, match=key):
            OURS[name](make_params(torch.float32), **{key: True})
        return
    with pytest.raises(ValueError, match=rf"{name}: {key}=True is not supported: "):
        OURS[name](make_params(torch.float32), **{key: True})


def torch_keywords(name: str) -> set[str]:
    import inspect
    return set(inspect.signature(INFOS[name].optim_cls.__init__).parameters)


def error_cases():
    for name in OURS:
        for i, err in enumerate(INFOS[name].optim_error_inputs_func(device="cpu", dtype=torch.float32)):
            yield pytest.param(name, i, id=f"{name}-{err.optimizer_error_input.desc}")


def raised(cls, err_input):
    """What constructing (and, for a step error, stepping) ``cls`` raises or warns."""
    inp = err_input.optimizer_error_input
    enum = common_optimizers.OptimizerErrorEnum
    params = inp.params if inp.params is not None else [torch.nn.Parameter(torch.randn(1, 1))]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            opt = cls(params, **copy.deepcopy(inp.kwargs))
            if err_input.error_on == enum.STEP_ERROR:
                for p in opt.param_groups[0]["params"]:
                    p.grad = torch.ones_like(p)
                opt.step()
        except Exception as e:  # noqa: BLE001 - the error is what is compared
            return type(e), str(e)
    hits = [w for w in caught if issubclass(w.category, err_input.error_type)]
    return (hits[0].category, str(hits[0].message)) if hits else (None, "")


@pytest.mark.parametrize("name,index", list(error_cases()))
def test_error_input_raises_what_torch_raises(name, index):
    err = INFOS[name].optim_error_inputs_func(device="cpu", dtype=torch.float32)[index]
    theirs = raised(INFOS[name].optim_cls, err)
    mine = raised(OURS[name], err)
    assert theirs[0] is not None and issubclass(theirs[0], err.error_type), theirs  # the database holds
    assert mine[0] is not None and issubclass(mine[0], err.error_type), mine
    assert re.search(err.error_regex, mine[1]), f"{mine[1]!r} does not match torch's {err.error_regex!r}"
