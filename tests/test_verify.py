"""verify(), assert_verified() and `cs224n-nn gradcheck --target` on Functions we write here.

The subject is swish, ``y = x * sigmoid(x)`` with ``dy/dx = s + x s (1 - s)``
(``s = sigmoid(x)``), written correctly and then broken one way per test, so
that each test shows the row that must catch that mistake.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from cs224n_nn.gradcheck import MODES, Verification, WorstElement, assert_verified, main, verify

f64 = torch.float64
NO_COMPILE = dict(skip=("compile",))  # compile costs seconds; the tests that need it say so


def swish_derivative(x: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(x)
    return s + x * s * (1 - s)  # the product rule: (x)' s + x (s)'


class Swish(torch.autograd.Function):
    """Correct: forward, backward and jvp; vmap by the generated rule."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        return x * torch.sigmoid(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        (x,) = inputs
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * swish_derivative(x)

    @staticmethod
    def jvp(ctx, tangent):
        (x,) = ctx.saved_tensors
        return tangent * swish_derivative(x)


class SwishForgetsProductRule(Swish):
    """The derivative of sigmoid alone: the ``1 * s`` term of the product rule is missing."""

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x)
        return grad * x * s * (1 - s)


class SwishWrongJvp(Swish):
    """Right backward, but the tangent forgets the same term."""

    @staticmethod
    def jvp(ctx, tangent):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x)
        return tangent * x * s * (1 - s)


class SwishItemInBackward(Swish):
    """Right numbers, but the backward reads a value on the host: no vmap over it."""

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        if torch.isnan(grad).any().item():
            raise ValueError("nan gradient")
        return grad * swish_derivative(x)


class SwishOutInBackward(Swish):
    """Right numbers, but the backward writes into a preallocated tensor with ``out=``."""

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        result = torch.empty_like(x)
        torch.mul(grad, swish_derivative(x), out=result)
        return result


class SwishWithoutJvp(Swish):
    jvp = staticmethod(torch.autograd.Function.jvp)  # back to torch's "You must implement the jvp function"


class SwishBeta2(Swish):
    """Self-consistent but not swish: ``x sigmoid(2x)`` with its own, correct derivative."""

    @staticmethod
    def forward(x):
        return x * torch.sigmoid(2 * x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(2 * x)
        return grad * (s + 2 * x * s * (1 - s))

    @staticmethod
    def jvp(ctx, tangent):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(2 * x)
        return tangent * (s + 2 * x * s * (1 - s))


def swish_reference(x):
    return torch.nn.functional.silu(x)


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=f64)


def statuses(result: Verification) -> dict[str, str]:
    return {check.name: check.status for check in result}


# --------------------------------------------------------------------------
# verify
# --------------------------------------------------------------------------


def test_a_correct_function_passes_every_row(x):
    result = verify(Swish, x, reference=swish_reference, require=tuple(m for m in MODES if m != "compile"))
    assert result.ok and result.failed == (), result.table()
    assert [c.name for c in result] == list(MODES)
    expected_skips = {"devices"} if not torch.cuda.is_available() else set()
    assert {name for name, status in statuses(result).items() if status == "skipped"} == expected_skips
    for name, status in statuses(result).items():
        if name == "compile":
            # torch 2.13's dynamo traces no Function with a custom jvp: torch's limit, shown as such
            assert status == "ok" or "custom jvp" in result["compile"].detail, result["compile"]
        elif name not in expected_skips:
            assert status == "ok", (name, status)
    table = result.table()
    assert table.startswith("verify(Swish)") and "FAILED" not in table
    for mode in MODES:
        assert re.search(rf"^{mode}\s+(ok|skipped|not implemented)", table, re.M), mode


def test_a_required_mode_torch_cannot_compile_fails(x):
    result = verify(Swish, x, require=("compile",))
    assert result.ok == (result["compile"].status == "ok")
    if not result.ok:
        assert result.failed == ("compile",) and "custom jvp" in result["compile"].detail


def test_compile_row_passes_a_function_dynamo_can_trace(x):
    result = verify(SwishWithoutJvp, x, reference=swish_reference)
    assert result.ok and result["compile"].status == "ok", result.table()
    assert "backend=aot_eager" in result["compile"].detail


def test_the_caller_s_tensor_and_rng_are_left_alone(x):
    x32 = x.float().requires_grad_()
    before, state = x32.detach().clone(), torch.get_rng_state()
    verify(Swish, x32, **NO_COMPILE)
    assert torch.equal(x32.detach(), before) and x32.grad is None and x32.dtype == torch.float32
    assert torch.equal(torch.get_rng_state(), state)


def test_a_wrong_backward_fails_the_gradient_rows_and_names_the_worst_element(x):
    result = verify(SwishForgetsProductRule, x, **NO_COMPILE)
    assert not result.ok
    assert {"notes", "gradcheck_fast", "gradcheck_full"} <= set(result.failed)
    assert "forward_ad" not in result.failed  # the jvp is right: the table points at backward
    worst = result["notes"].worst
    assert isinstance(worst, WorstElement) and worst.input == "x"
    # The worst element's numbers are the wrong and the right derivative times v at that index.
    wrong, right = worst.analytic, worst.numerical
    point = x[worst.index]
    s = torch.sigmoid(point)
    assert wrong / right == pytest.approx((point * s * (1 - s) / swish_derivative(point)).item(), rel=1e-6)
    assert result.worst == worst
    table = result.table()
    assert re.search(r"^notes\s+FAIL\s+worst rel\. error x ", table, re.M)
    assert re.search(rf"^  notes, .*: worst element x{re.escape(str(list(worst.index)))}: analytic", table, re.M)


def test_a_wrong_jvp_fails_the_forward_ad_row_only(x):
    result = verify(SwishWrongJvp, x, **NO_COMPILE)
    assert "forward_ad" in result.failed and "batched_forward_grad" in result.failed
    assert not {"notes", "gradcheck_fast", "gradcheck_full", "gradgradcheck", "batched_grad"} & set(result.failed)
    worst = result["forward_ad"].worst
    assert worst is not None and "tangent of x" in worst.input
    assert abs(worst.analytic - worst.numerical) > 1e-3


@pytest.mark.parametrize(
    "function, message",
    [(SwishItemInBackward, "item"), (SwishOutInBackward, "out=")],
    ids=["item", "out="],
)
def test_a_backward_that_breaks_under_vmap_fails_the_batched_rows(x, function, message):
    result = verify(function, x, **NO_COMPILE)
    assert "batched_grad" in result.failed
    assert message in result["batched_grad"].detail
    assert statuses(result)["notes"] == statuses(result)["gradcheck_full"] == "ok"  # the numbers are right


def test_a_self_consistent_wrong_forward_passes_alone_and_fails_the_reference_row(x):
    alone = verify(SwishBeta2, x, **NO_COMPILE)
    assert alone.ok and statuses(alone)["reference"] == "skipped"
    result = verify(SwishBeta2, x, reference=swish_reference, **NO_COMPILE)
    assert result.failed == ("reference",)
    assert "output 0" in result["reference"].detail
    worst = result["reference"].worst
    assert worst.what == "output 0"
    assert worst.got == pytest.approx(SwishBeta2.forward(x[worst.index]).item())
    assert worst.expected == pytest.approx(swish_reference(x[worst.index]).item())


def test_a_function_without_jvp_passes_with_not_implemented_shown(x):
    result = verify(SwishWithoutJvp, x, **NO_COMPILE)
    assert result.ok
    for mode in ("forward_ad", "batched_forward_grad"):
        assert result[mode].status == "not implemented"
        assert "You must implement the jvp function" in result[mode].detail  # torch's reason
    assert re.search(r"^forward_ad\s+not implemented\s+You must implement", result.table(), re.M)


def test_a_function_without_jvp_fails_when_forward_ad_is_required(x):
    result = verify(SwishWithoutJvp, x, require=("forward_ad",), **NO_COMPILE)
    assert result.failed == ("forward_ad",)
    assert result["forward_ad"].detail.startswith("required, but not implemented: You must implement the jvp")
    assert result["batched_forward_grad"].status == "not implemented"  # not required: no failure


def test_without_generate_vmap_rule_vmap_is_not_implemented(x):
    class NoVmap(Swish):
        generate_vmap_rule = False

    result = verify(NoVmap, x, **NO_COMPILE)
    assert result.ok and result["vmap"].status == "not implemented"
    assert "vmap" in result["vmap"].detail
    assert verify(NoVmap, x, require="vmap", **NO_COMPILE).failed == ("vmap",)


def test_a_graph_break_is_named(x):
    class SwishPrints(SwishWithoutJvp):
        @staticmethod
        def forward(x):
            print("forward of swish")  # dynamo cannot put print in a graph
            return x * torch.sigmoid(x)

    result = verify(SwishPrints, x)
    assert result.failed == ("compile",)
    detail = result["compile"].detail
    assert detail.startswith("graph break:") and "print" in detail


def test_a_layout_assumption_fails_the_non_contiguous_row(x):
    def flat_swish(x):
        return Swish.apply(x.view(-1)).view(x.shape)  # view() needs contiguous memory

    result = verify(flat_swish, x, **NO_COMPILE)
    assert result.failed == ("non_contiguous",)
    assert "view" in result["non_contiguous"].detail


def test_a_low_precision_overflow_fails_its_dtype_row():
    class SoftSignSquares(torch.autograd.Function):
        """softsign with a backward (1+|x|)^2 / (1+|x|)^4: right in float64, nan in float16 at |x| = 300."""

        @staticmethod
        def forward(x):
            return x / (1 + x.abs())

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(inputs[0])

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * (1 + x.abs()) ** 2 / (1 + x.abs()) ** 4  # 301^2 = inf in float16: inf / inf

    x = torch.tensor([-300.0, -2.0, 0.5, 3.0, 300.0], dtype=f64)
    result = verify(SoftSignSquares, x, **NO_COMPILE)
    assert "float16" in result.failed
    assert "float32" not in result.failed and "notes" not in result.failed


def test_a_callable_with_integer_inputs_checks_the_floating_ones_only():
    ids = torch.tensor([[0, 2, 2], [3, 0, 1]])
    weight = torch.randn(4, 3, dtype=f64)
    result = verify(lambda ids, weight: torch.tanh(weight[ids]), ids, weight, **NO_COMPILE)
    assert result.ok, result.table()
    assert "weight" in result["notes"].detail and "ids" not in result["notes"].detail


def test_nondiff_inputs_are_cast_and_moved_but_not_checked():
    scores, target = torch.randn(4, 3, dtype=f64), torch.tensor([0, 2, 1, 2])
    weight = torch.tensor([0.5, 1.0, 2.0], dtype=f64)

    def loss(scores, target, weight):
        assert weight.dtype == scores.dtype  # the dtype rows cast the constant with the scores
        return torch.nn.functional.cross_entropy(scores, target, weight=weight)

    result = verify(loss, scores, target, weight, nondiff=(2,), **NO_COMPILE)
    assert result.ok, result.table()
    assert result["notes"].detail == f"worst rel. error scores {result.notes.inputs[0].max_rel_error:.1e}"
    with pytest.raises(ValueError, match="nondiff"):
        verify(loss, scores, target, weight, nondiff=(1,))


def test_a_crashing_forward_fails_one_row_and_skips_the_rest(x):
    result = verify(lambda x: x @ x, x)  # (3, 4) @ (3, 4)
    assert result.failed == ("forward",)
    assert all(c.status == "skipped" and c.detail == "the forward failed" for c in list(result)[1:])


def test_tuple_outputs_are_all_checked():
    def softmax_and_log(s):
        return torch.softmax(s, -1), torch.log_softmax(s, -1) * 0.5

    s = torch.randn(2, 5, dtype=f64)
    assert verify(softmax_and_log, s, **NO_COMPILE).ok


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_devices_row_checks_cuda(x):
    result = verify(Swish, x, **NO_COMPILE)
    assert result["devices"].status == "ok" and "cuda:0" in result["devices"].detail


def test_bad_arguments(x):
    with pytest.raises(ValueError, match="unknown mode"):
        verify(Swish, x, require=("forward_mode",))
    with pytest.raises(TypeError, match="unknown option"):
        verify(Swish, x, tolerance=1e-3)
    with pytest.raises(ValueError, match="eps"):
        verify(Swish, x, eps=0)
    with pytest.raises(ValueError, match="floating-point tensor"):
        verify(Swish, torch.arange(3))
    with pytest.raises(TypeError, match="fn must be"):
        verify(3, x)
    with pytest.raises(TypeError, match="reference must be callable"):
        verify(Swish, x, reference="silu")


# --------------------------------------------------------------------------
# assert_verified
# --------------------------------------------------------------------------


def test_assert_verified_returns_the_result_or_raises_with_the_table(x):
    assert assert_verified(Swish, x, reference=swish_reference, **NO_COMPILE).ok
    with pytest.raises(AssertionError) as error:
        assert_verified(SwishBeta2, x, reference=swish_reference, **NO_COMPILE)
    message = str(error.value)
    assert "verify(SwishBeta2)" in message and "FAILED: reference" in message
    with pytest.raises(AssertionError, match="FAILED: forward_ad"):
        assert_verified(SwishWithoutJvp, x, require=("forward_ad",), **NO_COMPILE)


# --------------------------------------------------------------------------
# The worked example of docs/gradcheck.md runs as printed
# --------------------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[1] / "docs" / "gradcheck.md"


def test_the_worked_swish_example_of_the_docs_runs():
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    assert len(blocks) >= 2, "docs/gradcheck.md lost its Python blocks"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOCS), "exec"), namespace)  # each block asserts what the text claims
    assert not namespace["result"].ok and {"notes", "gradcheck_fast"} <= set(namespace["result"].failed)
    assert namespace["fixed"].ok


# --------------------------------------------------------------------------
# cs224n-nn gradcheck --target
# --------------------------------------------------------------------------

USER_MODULE = textwrap.dedent(
    '''
    import torch
    from test_verify import Swish, SwishBeta2, SwishForgetsProductRule, SwishWithoutJvp


    def lookup(weight, ids):
        return torch.tanh(weight[ids])


    def silu(x):
        return torch.nn.functional.silu(x)
    '''
)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_ops.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent))  # for `import test_verify`
    yield "my_ops"
    sys.modules.pop("my_ops", None)


@pytest.mark.parametrize(
    "argv, code, shown",
    [
        (["--target", "my_ops:Swish", "--input", "float64[3,4]", "--reference", "my_ops:silu"], 0, "ok:"),
        (["--target", "my_ops:SwishForgetsProductRule", "--input", "float32[5]"], 1, "FAILED: notes"),
        (["--target", "my_ops:SwishBeta2", "--input", "float64[4]", "--reference", "my_ops:silu"], 1, "FAILED: reference\n"),
        (["--target", "my_ops:SwishWithoutJvp", "--input", "float64[4]"], 0, "not implemented"),
        (["--target", "my_ops:SwishWithoutJvp", "--input", "float64[4]", "--require", "forward_ad"], 1, "FAILED: forward_ad"),
        (["--target", "my_ops:lookup", "--input", "float64[6,3]", "--input", "int64[2,4]<6"], 0, "ok:"),
    ],
    ids=["ok", "wrong-backward", "wrong-forward", "no-jvp", "no-jvp-required", "integer-input"],
)
def test_target_exit_codes(user_module, capsys, argv, code, shown):
    assert main(argv) == code
    out = capsys.readouterr().out
    assert shown in out and out.startswith("verify(")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--target", "my_ops:Swish", "--input", "float64[3,x]"], "--input 'float64[3,x]': the shape must be integers"),
        (["--target", "my_ops:Swish", "--input", "floaty[3]"], "'floaty' is not a real torch dtype"),
        (["--target", "my_ops:Swish", "--input", "3x4"], "expected DTYPE[SHAPE]"),
        (["--target", "my_ops:Swish", "--input", "int64[3]"], "needs an upper bound"),
        (["--target", "my_ops:Swish", "--input", "float64[3]<4"], "for integer inputs only"),
        (["--target", "my_ops:Swish", "--input", "int64[3]<0"], "must be >= 1"),
        (["--target", "my_ops:Swish", "--input", "int64[3]<6"], "at least one input must be floating-point"),
        (["--target", "my_ops:Swish"], "needs at least one --input"),
        (["--target", "my_ops", "--input", "float64[3]"], "expected MODULE:NAME"),
        (["--target", "no_such_module_here:Swish", "--input", "float64[3]"], "cannot import 'no_such_module_here'"),
        (["--target", "my_ops:Nope", "--input", "float64[3]"], "has no attribute 'Nope'"),
        (["--target", "my_ops:torch", "--input", "float64[3]"], "not a Function or callable"),
        (["--target", "my_ops:Swish", "--input", "float64[3]", "--reference", "my_ops:nope"], "--reference"),
        (["--target", "my_ops:Swish", "--input", "float64[3]", "--require", "everything"], "--require"),
        (["--input", "float64[3]"], "--input: needs --target"),
        (["--target", "my_ops:Swish", "--input", "float64[3]", "--backend", "nonsense"], "--backend"),
    ],
)
def test_bad_target_arguments_exit_2_with_one_line(user_module, capsys, argv, message):
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], captured.err
    assert lines[0].startswith("cs224n-nn gradcheck: error:")
    assert captured.out == ""


def test_a_target_whose_import_raises_is_one_line_too(tmp_path, monkeypatch, capsys):
    (tmp_path / "broken_ops.py").write_text("import torch\nraise RuntimeError('the module itself is broken')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["--target", "broken_ops:f", "--input", "float64[3]"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["cs224n-nn gradcheck: error: --target 'broken_ops:f': cannot import 'broken_ops': "
                   "RuntimeError: the module itself is broken"]  # fmt: skip


def test_the_command_takes_targets_from_the_current_folder_and_never_tracebacks(tmp_path):
    (tmp_path / "cube_op.py").write_text("def cube(x):\n    return x ** 3\n")
    env_path = str(Path(__file__).resolve().parents[1])
    run = lambda *argv: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "cs224n_nn.cli", "gradcheck", *argv],
        capture_output=True, text=True, cwd=tmp_path, timeout=300, env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    ok = run("--target", "cube_op:cube", "--input", "float64[4]")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "verify(cube)" in ok.stdout and re.search(r"^compile\s+ok", ok.stdout, re.M)
    bad = run("--target", "missing_op:cube", "--input", "float64[4]")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_one_of_our_functions_with_a_jvp_and_an_out_of_place_backward_passes_every_required_mode():
    # What check_all requires of cs224n_nn.autograd, shown on a subclass of our Sigmoid.
    from cs224n_nn import autograd

    class SigmoidWithJvp(autograd.Sigmoid):
        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(output)
            ctx.save_for_forward(output)

        @staticmethod
        def backward(ctx, grad):
            (y,) = ctx.saved_tensors
            return grad * y * (1 - y)

        @staticmethod
        def jvp(ctx, tangent):
            (y,) = ctx.saved_tensors
            return tangent * y * (1 - y)

    x = 3 * torch.randn(3, 4, generator=torch.Generator().manual_seed(1), dtype=f64)
    result = verify(SigmoidWithJvp, x, reference=torch.sigmoid, require=[m for m in MODES if m != "compile"], **NO_COMPILE)
    assert result.ok, result.table()
    for mode in ("forward_ad", "batched_grad", "batched_forward_grad", "vmap"):
        assert result[mode].status == "ok"
