"""Tests for cs224n_nn.preprocess: fitted mean subtraction, normalisation and
PCA / ZCA whitening (notes, "Data Preprocessing")."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from cs224n_nn.errors import CS224nError
from cs224n_nn.preprocess import (
    MeanSubtraction,
    Normalization,
    NotFittedError,
    PCAWhitening,
    ZCAWhitening,
)

ALL = [MeanSubtraction, Normalization, PCAWhitening, ZCAWhitening]
WHITENING = [PCAWhitening, ZCAWhitening]


def correlated_data(n=4000, d=6, dtype=torch.float64, seed=0):
    """Features with different means, scales and strong correlations."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, generator=g, dtype=dtype)
    # Q1 diag(s) Q2 with orthogonal Q1, Q2: correlated, scales from 0.3 to 10
    q1 = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=dtype))[0]
    q2 = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=dtype))[0]
    mixing = q1 @ torch.diag(torch.logspace(-0.5, 1, d, dtype=dtype)) @ q2
    offset = torch.linspace(-50, 50, d, dtype=dtype)
    return z @ mixing + offset


def covariance(y):
    c = y - y.mean(0)
    return c.T @ c / y.shape[0]


# -- what each transform does to its training data ----------------------------


def test_mean_subtraction_zero_mean_and_nothing_else():
    x = correlated_data()
    t = MeanSubtraction().fit(x)
    y = t(x)
    torch.testing.assert_close(y.mean(0), torch.zeros(6, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(y + t.mean, x)  # a pure shift
    torch.testing.assert_close(t.mean, x.mean(0))


def test_normalization_zero_mean_unit_variance():
    x = correlated_data()
    y = Normalization().fit_transform(x)
    torch.testing.assert_close(y.mean(0), torch.zeros(6, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(y.var(0, correction=0), torch.ones(6, dtype=torch.float64))


def test_normalization_without_centering_only_scales():
    x = correlated_data()
    t = Normalization(center=False).fit(x)
    torch.testing.assert_close(t(x), x / x.std(0, correction=0))


def test_normalization_constant_feature_has_no_division_by_zero():
    x = correlated_data(n=100, d=3)
    x[:, 1] = 0.1  # constant, and 0.1 is not exact in binary: a computed std would be tiny, not 0
    t = Normalization().fit(x)
    y = t(x)
    assert torch.isfinite(y).all()
    assert t.std[1].item() == 1.0
    torch.testing.assert_close(y[:, 1], torch.zeros(100, dtype=torch.float64), rtol=0, atol=1e-15)
    torch.testing.assert_close(y[:, [0, 2]].var(0, correction=0), torch.ones(2, dtype=torch.float64))
    # a held-out value away from the constant is shifted, not blown up
    assert t(torch.tensor([[0.0, 1.1, 0.0]], dtype=torch.float64))[0, 1].item() == pytest.approx(1.0)


@pytest.mark.parametrize("cls", WHITENING)
def test_whitened_covariance_is_identity(cls):
    x = correlated_data()
    t = cls(eps=1e-5).fit(x)
    y = t(x)
    torch.testing.assert_close(y.mean(0), torch.zeros(6, dtype=torch.float64), rtol=0, atol=1e-10)
    # exactly S / (S + eps) along the principal directions ...
    shrink = t.singular_values / (t.singular_values + t.eps)
    expected = torch.diag(shrink) if cls is PCAWhitening else t.components @ torch.diag(shrink) @ t.components.T
    torch.testing.assert_close(covariance(y), expected, rtol=0, atol=1e-10)
    # ... which is the identity up to eps / min(S)
    tol = 2 * t.eps / t.singular_values.min().item()
    assert tol < 1e-2  # the data are far from degenerate, so this is a real check
    torch.testing.assert_close(covariance(y), torch.eye(6, dtype=torch.float64), rtol=0, atol=tol)


def test_pca_components_are_the_eigenvectors_of_the_training_covariance():
    x = correlated_data()
    t = PCAWhitening().fit(x)
    cov = covariance(x)
    # C U = U S, S sorted in decreasing order
    torch.testing.assert_close(cov @ t.components, t.components * t.singular_values)
    assert torch.all(t.singular_values[:-1] >= t.singular_values[1:])
    eig = torch.linalg.eigvalsh(cov).flip(0)
    torch.testing.assert_close(t.singular_values, eig)


def test_zca_matrix_symmetric_and_output_closest_to_input():
    x = correlated_data(d=5)
    # a negligible eps so that every candidate below is white to 1e-10
    zca = ZCAWhitening(eps=1e-12).fit(x)
    pca = PCAWhitening(eps=1e-12).fit(x)
    torch.testing.assert_close(zca.matrix, zca.matrix.T, rtol=0, atol=1e-12)
    centred = x - x.mean(0)
    y_zca = zca(x)
    distance_zca = (y_zca - centred).pow(2).sum()
    # any rotation of a white output is still white; ZCA is the closest of them to the input
    g = torch.Generator().manual_seed(1)
    others = [pca(x)] + [y_zca @ torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64))[0] for _ in range(20)]
    for other in others:
        torch.testing.assert_close(covariance(other), torch.eye(5, dtype=torch.float64), rtol=0, atol=1e-10)
        assert distance_zca < (other - centred).pow(2).sum()
    # ZCA = U (PCA output): the PCA coordinates rotated back
    torch.testing.assert_close(y_zca, pca(x) @ pca.components.T)


# -- held-out data use the training statistics --------------------------------


@pytest.mark.parametrize("cls", ALL)
def test_held_out_data_use_training_statistics(cls):
    train = correlated_data(seed=0)
    test = correlated_data(n=500, seed=1) * 3 + 7  # a different distribution
    t = cls().fit(train)
    state_before = {k: v.clone() for k, v in t.state_dict().items()}
    y_test = t(test)
    # transforming did not refit
    for k, v in t.state_dict().items():
        assert torch.equal(v, state_before[k])
    # the output is the training-statistics formula, not a refit on test
    if cls is MeanSubtraction:
        manual = test - train.mean(0)
    elif cls is Normalization:
        manual = (test - train.mean(0)) / train.std(0, correction=0)
    else:
        manual = (test - train.mean(0)) @ t.matrix
    torch.testing.assert_close(y_test, manual)
    refit = cls().fit(test)(test)
    assert not torch.allclose(y_test, refit)
    # the test set is not centred by the training mean
    assert y_test.mean(0).abs().max() > 0.1


# -- zero singular values and the sample-size condition -----------------------


@pytest.mark.parametrize("cls", WHITENING)
def test_zero_singular_value_divides_by_small_number_instead(cls):
    x = correlated_data(n=1000, d=4)
    x = torch.cat([x, x[:, :1] * 2 - x[:, 1:2]], dim=1)  # a dependent 5th feature: rank 4
    t = cls(eps=1e-5).fit(x)
    y = t(x)
    assert torch.isfinite(y).all()
    assert t.singular_values[-1] < 1e-10 * t.singular_values[0]
    # the four real directions are white, the empty one stays (about) empty
    shrink = t.singular_values / (t.singular_values + t.eps)
    expected = torch.diag(shrink) if cls is PCAWhitening else t.components @ torch.diag(shrink) @ t.components.T
    torch.testing.assert_close(covariance(y), expected, rtol=0, atol=1e-8)
    assert torch.linalg.matrix_rank(covariance(y), hermitian=True) == 4


@pytest.mark.parametrize("cls", WHITENING)
def test_whitening_fewer_samples_than_features_is_an_error_naming_shapes(cls):
    with pytest.raises(ValueError, match=r"shape \(3, 5\).*3 samples < 5 features"):
        cls().fit(torch.randn(3, 5))


@pytest.mark.parametrize("cls", WHITENING)
def test_whitening_as_many_samples_as_features_is_accepted(cls):
    # rank n-1 after centring: one zero singular value, handled by eps
    y = cls().fit_transform(torch.randn(5, 5, dtype=torch.float64))
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("cls", WHITENING)
@pytest.mark.parametrize("eps", [0.0, -1e-5, float("nan")])
def test_bad_eps_is_an_error_naming_it(cls, eps):
    with pytest.raises(ValueError, match="eps"):
        cls(eps=eps)


# -- errors -------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL)
def test_use_before_fit_is_a_clear_error(cls):
    t = cls()
    assert not t.fitted and t.n_features is None
    with pytest.raises(NotFittedError, match=f"{cls.__name__} is not fitted: call fit"):
        t(torch.randn(4, 3))
    with pytest.raises(NotFittedError):
        t.transform(torch.randn(4, 3))
    assert issubclass(NotFittedError, CS224nError)


@pytest.mark.parametrize("cls", ALL)
def test_wrong_feature_count_is_a_clear_error(cls):
    t = cls().fit(torch.randn(50, 3))
    with pytest.raises(ValueError, match=r"shape \(4, 5\).*fitted on 3 features"):
        t(torch.randn(4, 5))
    with pytest.raises(ValueError, match="fitted on 3 features"):
        t(torch.tensor(1.0))


@pytest.mark.parametrize("cls", ALL)
def test_non_floating_input_is_a_clear_error(cls):
    with pytest.raises(TypeError, match="floating-point dtype, got torch.int64"):
        cls().fit(torch.ones(10, 2, dtype=torch.long))
    t = cls().fit(torch.randn(10, 2))
    with pytest.raises(TypeError, match="floating-point dtype, got torch.int32"):
        t(torch.ones(3, 2, dtype=torch.int32))
    with pytest.raises(TypeError, match="torch.Tensor"):
        t([[1.0, 2.0]])


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("bad", [torch.randn(5), torch.randn(2, 5, 3), torch.randn(0, 3), torch.randn(4, 0)])
def test_fit_needs_a_non_empty_matrix(cls, bad):
    with pytest.raises(ValueError, match=r"x must .*shape"):
        cls().fit(bad)


@pytest.mark.parametrize("cls", ALL)
def test_fit_rejects_nan(cls):
    x = torch.randn(10, 2)
    x[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        cls().fit(x)


# -- state, dtype, device -------------------------------------------------------


@pytest.mark.parametrize("cls", ALL)
def test_state_dict_round_trip_reproduces_outputs_exactly(cls):
    train, test = correlated_data(seed=0), correlated_data(n=100, seed=1)
    fitted = cls().fit(train)
    buffer = io.BytesIO()
    torch.save(fitted.state_dict(), buffer)
    buffer.seek(0)
    loaded = cls()
    loaded.load_state_dict(torch.load(buffer, weights_only=True))
    assert loaded.fitted and loaded.n_features == 6
    assert torch.equal(loaded(test), fitted(test))
    assert set(loaded.state_dict()) == set(cls.statistics)


@pytest.mark.parametrize("cls", ALL)
def test_state_dict_round_trip_inside_a_model(cls):
    model = nn.Sequential(cls(), nn.Linear(6, 2)).double()
    model[0].fit(correlated_data())
    copy = nn.Sequential(cls(), nn.Linear(6, 2)).double()
    copy.load_state_dict(model.state_dict())
    x = correlated_data(n=20, seed=3)
    assert torch.equal(copy(x), model(x))


@pytest.mark.parametrize("cls", ALL)
def test_deepcopy_and_whole_module_save(cls):
    import copy

    fitted = cls().fit(correlated_data(n=100))
    x = correlated_data(n=10, seed=2)
    assert torch.equal(copy.deepcopy(fitted)(x), fitted(x))
    buffer = io.BytesIO()
    torch.save(fitted, buffer)
    buffer.seek(0)
    assert torch.equal(torch.load(buffer, weights_only=False)(x), fitted(x))


@pytest.mark.parametrize("cls", ALL)
def test_fit_on_data_that_requires_grad_stores_plain_buffers(cls):
    x = correlated_data(n=50, d=3).requires_grad_(True)
    t = cls().fit(x)
    assert all(not b.requires_grad and b.grad_fn is None for b in t.buffers())


@pytest.mark.parametrize("cls", ALL)
def test_loading_a_state_refits_a_fitted_instance(cls):
    a = cls().fit(torch.randn(30, 4, dtype=torch.float64))
    b = cls().fit(torch.randn(30, 2, dtype=torch.float64))
    b.load_state_dict(a.state_dict())
    x = torch.randn(5, 4, dtype=torch.float64)
    assert b.n_features == 4 and torch.equal(b(x), a(x))


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_dtype_preserved(cls, dtype):
    x = correlated_data(n=200, d=3).to(dtype)
    t = cls().fit(x)
    assert all(b.dtype == dtype for b in t.buffers())
    assert t(x).dtype == dtype
    # input of another dtype comes out in its own dtype
    assert t(x.double()).dtype == torch.float64


@pytest.mark.parametrize("cls", WHITENING)
def test_float32_whitening_is_white_to_float32_precision(cls):
    y = cls().fit_transform(correlated_data(dtype=torch.float32))
    torch.testing.assert_close(covariance(y.double()), torch.eye(6, dtype=torch.float64), rtol=0, atol=1e-3)


@pytest.mark.parametrize("cls", ALL)
def test_transform_keeps_leading_dimensions_and_gradient(cls):
    t = cls().fit(torch.randn(100, 3, dtype=torch.float64))
    x = torch.randn(2, 7, 3, dtype=torch.float64, requires_grad=True)
    y = t(x)
    assert y.shape == (2, 7, 3)
    torch.testing.assert_close(y.reshape(-1, 3), t(x.detach().reshape(-1, 3)))
    assert torch.autograd.gradcheck(t, (x,))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("cls", ALL)
def test_cuda_fit_and_move(cls):
    x = correlated_data(dtype=torch.float32)
    cpu = cls().fit(x)
    gpu = cls().fit(x.cuda())
    assert all(b.device.type == "cuda" for b in gpu.buffers())
    y_gpu = gpu(x.cuda())
    assert y_gpu.device.type == "cuda"
    # the SVD may pick opposite signs for a principal direction on another
    # device: PCA columns can flip sign, everything else must agree
    same = (lambda y: y.abs()) if cls is PCAWhitening else (lambda y: y)
    torch.testing.assert_close(same(y_gpu.cpu()), same(cpu(x)), rtol=1e-3, atol=1e-3)
    moved = cls().fit(x).to("cuda")
    torch.testing.assert_close(moved(x.cuda()).cpu(), cpu(x), rtol=1e-4, atol=1e-4)
