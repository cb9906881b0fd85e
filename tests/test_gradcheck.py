"""The notes' numerical gradient, check_function, the check_all suite and its command."""

from __future__ import annotations

import inspect
import math
import re
import subprocess
import sys

import pytest
import torch

from cs224n_nn.gradcheck import Report, check_all, check_function, main, numerical_gradient

f64 = torch.float64


def bits(x: torch.Tensor) -> torch.Tensor:
    """The raw bit patterns of a float tensor, so -0.0 and 0.0 differ."""
    return x.contiguous().view({torch.float64: torch.int64, torch.float32: torch.int32}[x.dtype]).clone()


# --------------------------------------------------------------------------
# numerical_gradient against known analytic gradients
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "f, grad",
    [
        (lambda x: (x**3).sum(), lambda x: 3 * x**2),
        (lambda x: torch.sin(x).sum(), torch.cos),
        (lambda x: torch.exp(x).prod(), lambda x: torch.exp(x).prod() * torch.ones_like(x)),
    ],
    ids=["cube", "sin", "exp-product"],
)
def test_matches_analytic_gradient(f, grad):
    x = torch.randn(3, 4, dtype=f64)
    numeric = numerical_gradient(f, x)
    assert numeric.shape == x.shape and numeric.dtype == f64
    torch.testing.assert_close(numeric, grad(x), rtol=1e-8, atol=1e-9)


def test_matrix_quadratic():
    # f(X) = trace(X^T A X), df/dX = (A + A^T) X
    a, x = torch.randn(4, 4, dtype=f64), torch.randn(4, 3, dtype=f64)
    numeric = numerical_gradient(lambda x: torch.trace(x.T @ a @ x), x)
    torch.testing.assert_close(numeric, (a + a.T) @ x, rtol=1e-8, atol=1e-9)


def test_tensor_valued_f_gives_gradient_of_the_sum():
    x = torch.randn(5, dtype=f64)
    torch.testing.assert_close(numerical_gradient(lambda x: x**2, x), 2 * x, rtol=1e-8, atol=1e-9)


def test_scalar_and_empty_inputs():
    x = torch.tensor(0.7, dtype=f64)
    numeric = numerical_gradient(lambda x: x**2, x)
    assert numeric.shape == () and abs(numeric.item() - 1.4) < 1e-9
    assert numerical_gradient(lambda x: x.sum(), torch.empty(0, 3)).shape == (0, 3)


def test_non_contiguous_input():
    x = torch.randn(4, 3, dtype=f64).T  # a transposed view
    before = x.clone()
    torch.testing.assert_close(numerical_gradient(lambda x: (x**3).sum(), x), 3 * x**2, rtol=1e-8, atol=1e-9)
    assert torch.equal(bits(x), bits(before))


def test_float32_input_uses_the_step_it_actually_stored():
    x = torch.randn(6)
    numeric = numerical_gradient(lambda x: (x.double() ** 2).sum(), x, eps=1e-3)
    torch.testing.assert_close(numeric, 2 * x.double(), rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------
# x comes back bit for bit
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("method", ["central", "forward"])
def test_x_is_restored_exactly(dtype, method):
    # 0.1 + 1e-5 - 1e-5 != 0.1 in floating point: restoring by arithmetic would fail
    x = torch.tensor([[0.1, -0.0, 10.0], [3.3, -7.77, 1e-30]], dtype=dtype)
    before = bits(x)
    numerical_gradient(lambda x: (x * x).sum(), x, method=method)
    assert torch.equal(bits(x), before)


def test_x_is_restored_when_f_raises():
    x = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=f64)
    before = bits(x)
    calls = 0

    def f(t):
        nonlocal calls
        calls += 1
        if calls == 4:  # second element, perturbed by -eps
            raise RuntimeError("boom")
        return t.sum()

    with pytest.raises(RuntimeError, match="boom"):
        numerical_gradient(f, x)
    assert torch.equal(bits(x), before)


def test_perturbs_in_place_so_closures_see_it():
    # The notes' use: f reads the model's parameters, not its argument.
    w = torch.randn(3, dtype=f64)
    numeric = numerical_gradient(lambda _: (w**2).sum(), w)
    torch.testing.assert_close(numeric, 2 * w, rtol=1e-8, atol=1e-9)


def test_x_requiring_grad_is_left_alone():
    x = torch.randn(3, dtype=f64, requires_grad=True)
    numerical_gradient(lambda x: (x**2).sum(), x)
    assert x.grad is None and x.requires_grad and x.is_leaf


# --------------------------------------------------------------------------
# central O(eps^2) against one-sided O(eps)
# --------------------------------------------------------------------------


def test_central_error_is_second_order_one_sided_is_first_order():
    x = torch.linspace(-2, 2, 9, dtype=f64)
    f = lambda x: torch.sin(x).sum()  # noqa: E731

    def error(eps, method):
        return (numerical_gradient(f, x, eps, method=method) - torch.cos(x)).abs().max().item()

    central = error(1e-2, "central") / error(1e-3, "central")
    forward = error(1e-2, "forward") / error(1e-3, "forward")
    # eps 10x smaller: error ~100x smaller for the centred formula, ~10x for the one-sided one
    assert 70 < central < 130
    assert 7 < forward < 13
    assert error(1e-3, "central") < error(1e-3, "forward") / 100


# --------------------------------------------------------------------------
# bad arguments
# --------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [0, -1e-5, math.nan, math.inf])
def test_bad_eps_value(eps):
    with pytest.raises(ValueError, match="eps"):
        numerical_gradient(lambda x: x.sum(), torch.ones(2, dtype=f64), eps)


@pytest.mark.parametrize("eps", ["1e-5", True, None])
def test_bad_eps_type(eps):
    with pytest.raises(TypeError, match="eps"):
        numerical_gradient(lambda x: x.sum(), torch.ones(2, dtype=f64), eps)


@pytest.mark.parametrize(
    "x, message",
    [
        (torch.ones(2, dtype=torch.int64), "x must be a floating-point tensor, got dtype torch.int64"),
        (torch.ones(2, dtype=torch.bool), "x must be a floating-point tensor"),
        ([1.0, 2.0], "x must be a torch.Tensor"),
    ],
)
def test_bad_x(x, message):
    with pytest.raises(TypeError, match=message):
        numerical_gradient(lambda x: x.sum(), x)


def test_bad_method_expanded_x_bad_f_and_too_small_eps():
    with pytest.raises(ValueError, match="method"):
        numerical_gradient(lambda x: x.sum(), torch.ones(2, dtype=f64), method="backward")
    with pytest.raises(ValueError, match="overlapping"):
        numerical_gradient(lambda x: x.sum(), torch.ones(1, dtype=f64).expand(3))
    with pytest.raises(TypeError, match="f must return"):
        numerical_gradient(lambda x: "zero", torch.ones(2, dtype=f64))
    with pytest.raises(ValueError, match="resolution of torch.float32"):
        numerical_gradient(lambda x: x.sum(), torch.full((2,), 1e4), eps=1e-9)


# --------------------------------------------------------------------------
# check_function
# --------------------------------------------------------------------------


class _Cube(torch.autograd.Function):
    """x^3 with a backward chosen per subclass."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 3 * x**2


class _CubeWrongFactor(_Cube):
    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 2 * x**2


class _CubeIgnoresIncomingGradient(_Cube):
    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 3 * x**2  # right local derivative, but drops the chain rule's factor


@pytest.mark.parametrize("function, ok", [(_Cube, True), (_CubeWrongFactor, False), (_CubeIgnoresIncomingGradient, False)])
def test_check_function_tells_right_from_wrong_backward(function, ok):
    x = torch.randn(3, 4, dtype=torch.float32, requires_grad=True)
    result = check_function(function.apply, x)
    assert result.ok is ok
    if ok:
        assert result.max_rel_error < 1e-7 and result.max_abs_error < 1e-8
    else:
        assert result.max_rel_error > 0.1
    assert x.grad is None  # the caller's tensor is untouched


def test_check_function_skips_inputs_without_grad_and_non_floating_inputs():
    ids = torch.tensor([2, 0, 2])
    weight = torch.randn(3, 2, dtype=f64, requires_grad=True)
    scale = torch.tensor(3.0, dtype=f64)  # requires_grad=False: not checked
    assert check_function(lambda ids, w, s: w[ids] * s, ids, weight, scale).ok


def test_check_function_bad_arguments():
    x = torch.randn(3, dtype=f64)
    with pytest.raises(ValueError, match="requires_grad=True"):
        check_function(torch.sin, x)
    with pytest.raises(ValueError, match="eps"):
        check_function(torch.sin, x.requires_grad_(), eps=-1.0)
    with pytest.raises(TypeError, match="fn must return a floating-point tensor"):
        check_function(lambda x: x.argmax(), x)


# --------------------------------------------------------------------------
# check_all and the command
# --------------------------------------------------------------------------

FUNCTIONS = [
    "Sigmoid", "Tanh", "HardTanh", "SoftSign", "ReLU", "LeakyReLU", "Affine",
    "Dropout", "Embedding", "MaxMarginLoss", "MultiClassMaxMarginLoss", "SoftmaxCrossEntropy",
]  # fmt: skip


COLUMNS = ("worst rel. error", "gradcheck", "gradgradcheck", "forward AD", "batched grad", "batched fwd grad", "vmap")


@pytest.fixture(scope="module")
def report() -> Report:
    state = torch.get_rng_state()
    report = check_all()
    assert torch.equal(torch.get_rng_state(), state), "check_all changed the caller's RNG state"
    return report


def test_check_all_passes_every_case(report):
    # Needs every mode of every Function: forward AD (jvp) and batched backward included.
    failures = [f"{row.name}: {row.error}" for row in report if not row.ok]
    assert report.ok, "\n".join(failures)
    for row in report:
        assert row.uses_function and row.notes_ok and row.gradcheck_ok and row.gradgradcheck_ok
        assert row.max_rel_error < 1e-6
        for check in row.verification:
            assert check.status == "ok" or check.name in ("compile", "devices"), (row.name, check)


def test_check_all_requires_every_mode_and_reports_each_in_a_column(report):
    from cs224n_nn.gradcheck import MODES

    for row in report:
        assert [check.name for check in row.verification] == list(MODES)
        assert row.verification["compile"].status == "skipped"  # only with compile=True
        assert row.verification["reference"].status != "skipped"  # torch's twin
        # a mode our Function lacks is a failure here, never a silent "not implemented"
        assert not any(check.status == "not implemented" for check in row.verification)
    header = report.table().splitlines()[0]
    for column in COLUMNS:
        assert f"  {column}  " in header, column


def test_check_all_covers_every_function_of_the_autograd_package(report):
    from cs224n_nn import autograd

    exported = {
        name
        for name, value in vars(autograd).items()
        if inspect.isclass(value) and issubclass(value, torch.autograd.Function) and value.__module__.startswith("cs224n_nn")
    }
    assert set(FUNCTIONS) <= exported
    assert {row.function for row in report} == exported


def test_check_all_catches_a_broken_backward(monkeypatch):
    from cs224n_nn import autograd

    # a sign error, like the notes' sigmoid derivative
    monkeypatch.setattr(autograd.Sigmoid, "backward", staticmethod(lambda ctx, grad: -grad))
    report = check_all(functions=("Sigmoid", "Tanh"))
    rows = {row.name: row for row in report}
    assert not report.ok and set(rows) == {"Sigmoid", "Tanh"}
    sigmoid = rows["Sigmoid"]
    assert not sigmoid.ok and not sigmoid.notes_ok and not sigmoid.gradcheck_ok
    assert {"notes", "gradcheck_fast", "gradcheck_full", "reference"} <= set(sigmoid.verification.failed)
    assert sigmoid.error and "notes: worst rel. error" in sigmoid.error
    assert sigmoid.verification["notes"].worst.input == "x"
    assert rows["Tanh"].notes_ok and rows["Tanh"].gradcheck_ok and rows["Tanh"].gradgradcheck_ok
    assert "Sigmoid:\n    notes: worst rel. error" in report.table()


def test_check_all_catches_a_missing_jvp_as_a_failure(monkeypatch):
    from cs224n_nn import autograd

    monkeypatch.setattr(autograd.Tanh, "jvp", staticmethod(torch.autograd.Function.jvp))
    (row,) = check_all(functions="Tanh")
    assert not row.ok and "forward_ad" in row.verification.failed
    assert row.verification["forward_ad"].detail.startswith("required, but not implemented: You must implement the jvp")
    header, _, line = Report((row,)).table().splitlines()[:3]
    assert line[header.index("forward AD") :].split()[0] == "n/i"  # the column says why, the case fails


def test_check_all_bad_functions():
    with pytest.raises(ValueError, match="unknown Function"):
        check_all(functions=("Swish",))


def test_main_prints_the_table_and_returns_zero(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for header in ("Function", *COLUMNS):
        assert header in out
    for name in FUNCTIONS:
        assert any(line.startswith(name) for line in out.splitlines()), name
    assert "FAIL" not in out and re.search(r"^ok: all \d+ cases passed$", out, re.M)


def test_main_returns_non_zero_on_failure(monkeypatch, capsys):
    from cs224n_nn import autograd

    monkeypatch.setattr(autograd.Tanh, "backward", staticmethod(lambda ctx, grad: 2 * grad))
    assert main(["--seed", "3", "--function", "Tanh"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "Tanh:\n    notes:" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--eps", "0"], "--eps"),
        (["--eps", "tiny"], "--eps"),
        (["--rtol", "-1"], "--rtol"),
        (["--seed", "x"], "--seed"),
        (["--device", "nonsense"], "--device"),
        (["--colour"], "unrecognized"),
        (["--function", "Swish"], "--function"),
        (["--compile", "--backend", "nonsense"], "--backend"),
    ],
)
def test_main_bad_options(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_main_cuda_without_cuda(capsys):
    with pytest.raises(SystemExit):
        main(["--device", "cuda"])
    assert "CUDA is not available" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_check_all_on_cuda():
    report = check_all(device="cuda")
    assert report.ok, report.table()


def test_the_command_runs_without_lightning():
    # -X importtime lists every module imported: Lightning must not be among them.
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "cs224n_nn.cli", "gradcheck", "--seed", "1", "--function", "Affine"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr  # pass or fail is test_main_prints_the_table's job
    assert done.stdout.splitlines()[2].startswith("Function") and "Affine (no bias)" in done.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line]
    assert "torch" in imported and "cs224n_nn.functional" in imported  # the listing was read
    assert not [name for name in imported if "lightning" in name]
    help_ = subprocess.run([sys.executable, "-m", "cs224n_nn.gradcheck", "--help"], capture_output=True, text=True)
    assert help_.returncode == 0 and "--eps" in help_.stdout and "--target" in help_.stdout
