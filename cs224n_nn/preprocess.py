"""Data preprocessing from the notes (section "Data Preprocessing").

Four fitted transforms for feature matrices ``x`` of shape
``(n_samples, n_features)``, one row per example:

- :class:`MeanSubtraction`: ``x - mean``;
- :class:`Normalization`: ``(x - mean) / std``, per feature;
- :class:`PCAWhitening`: ``(x - mean) @ U / sqrt(S + eps)``;
- :class:`ZCAWhitening`: ``(x - mean) @ U diag(1 / sqrt(S + eps)) U^T``.

As the notes insist, the statistics are "calculated only across the training
set" and the same ones are applied to the training, validation and test sets:
call ``fit(train_x)`` once, then ``transform`` (or call the module) on any
split. Each transform is a ``torch.nn.Module`` whose statistics are buffers,
so ``state_dict()`` / ``load_state_dict()`` save and restore a fitted
transform exactly, ``.to(device)`` moves it, and it can sit first in an
``nn.Sequential`` in front of a model.

Conventions: the mean, the standard deviation (``correction=0``, dividing by
``n``) and the covariance ``x'^T x' / n`` are population statistics of the
training set. Statistics are computed in at least float32 (so half-precision
data can be fitted) and stored in the training data's dtype; a transform
returns the dtype of its input. ``fit`` stores the buffers on the training
data's device; afterwards move the module like any other.

Nothing here imports Lightning or :mod:`cs224n_nn.ner`.
"""

from __future__ import annotations

import math
from typing import Self

import torch
from torch import Tensor, nn

from cs224n_nn.errors import NotFittedError

__all__ = [
    "NotFittedError",
    "FittedTransform",
    "MeanSubtraction",
    "Normalization",
    "PCAWhitening",
    "ZCAWhitening",
]


class FittedTransform(nn.Module):
    """Base class: statistics learnt by :meth:`fit`, kept as buffers, applied by ``forward``.

    A subclass names its statistics in ``statistics`` (buffer names; the first
    one has shape ``(n_features,)``), computes them in :meth:`_fit` and applies
    them in :meth:`_transform`. Before ``fit`` each buffer is an empty tensor;
    loading a state dict resizes them to the saved shapes, so an unfitted
    instance can load a fitted state.
    """

    statistics: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        for name in self.statistics:
            self.register_buffer(name, torch.empty(0))
        self.register_load_state_dict_pre_hook(self._resize_buffers_to_loaded)

    # -- public API --------------------------------------------------------

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` (or a load of a fitted state) has set the statistics."""
        return self._first_statistic().numel() > 0

    @property
    def n_features(self) -> int | None:
        """Number of features seen by :meth:`fit`, or ``None`` before it."""
        return self._first_statistic().shape[0] if self.fitted else None

    def fit(self, x: Tensor) -> Self:
        """Compute the statistics from the training data ``x`` (n_samples, n_features); return self."""
        self._check_tensor(x)
        if x.dim() != 2:
            raise ValueError(f"x must be 2-D (n_samples, n_features) to fit, got shape {tuple(x.shape)}")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"x must have at least one sample and one feature to fit, got shape {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError("x contains NaN or infinite values; cannot fit statistics on them")
        self._check_fit_shape(x)
        # float32 at least: half precision has no SVD and loses the variance of large sets
        work = x.detach().to(torch.promote_types(x.dtype, torch.float32))
        with torch.no_grad():
            stats = self._fit(work)
        for name in self.statistics:
            setattr(self, name, stats[name].to(x.dtype))
        return self

    def forward(self, x: Tensor) -> Tensor:
        """Apply the fitted statistics to ``x`` of shape ``(..., n_features)``."""
        if not self.fitted:
            raise NotFittedError(
                f"{type(self).__name__} is not fitted: call fit(train_x) (or load a fitted "
                "state_dict) before transforming data"
            )
        self._check_tensor(x)
        if x.dim() == 0 or x.shape[-1] != self.n_features:
            raise ValueError(
                f"x has shape {tuple(x.shape)}, but {type(self).__name__} was fitted on "
                f"{self.n_features} features: the last dimension must be {self.n_features}"
            )
        return self._transform(x)

    def transform(self, x: Tensor) -> Tensor:
        """Same as calling the module: ``transform(x) == self(x)``."""
        return self(x)

    def fit_transform(self, x: Tensor) -> Tensor:
        """``fit(x)`` then transform the same ``x``."""
        return self.fit(x)(x)

    def extra_repr(self) -> str:
        return f"n_features={self.n_features}"

    # -- for subclasses ----------------------------------------------------

    def _fit(self, x: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    def _transform(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _check_fit_shape(self, x: Tensor) -> None:
        """Extra conditions on the training data's shape (whitening needs enough samples)."""

    def _statistic(self, name: str, like: Tensor) -> Tensor:
        # the output follows the input's dtype; buffers follow the module's device
        return getattr(self, name).to(like.dtype)

    # -- internals ---------------------------------------------------------

    def _first_statistic(self) -> Tensor:
        return getattr(self, self.statistics[0])

    @staticmethod
    def _check_tensor(x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"x must have a floating-point dtype, got {x.dtype}; convert it with x.float()")

    def _resize_buffers_to_loaded(self, module, state_dict, prefix, *args) -> None:
        # load_state_dict copies into existing buffers and rejects a shape
        # mismatch, so give each statistic the saved shape and dtype first
        for name in self.statistics:
            saved = state_dict.get(prefix + name)
            if isinstance(saved, Tensor):
                current = getattr(self, name)
                setattr(self, name, torch.empty(saved.shape, dtype=saved.dtype, device=current.device))


class MeanSubtraction(FittedTransform):
    """Zero-centre each feature with the training mean: ``x - mean``.

    Notes, "Data Preprocessing", "Mean Subtraction": the mean feature vector
    is computed on the training set only and subtracted from every split.

    Buffers: ``mean`` (n_features,).
    """

    statistics = ("mean",)

    def _fit(self, x: Tensor) -> dict[str, Tensor]:
        return {"mean": x.mean(dim=0)}

    def _transform(self, x: Tensor) -> Tensor:
        return x - self._statistic("mean", x)


class Normalization(FittedTransform):
    """Scale each feature by its training standard deviation: ``(x - mean) / std``.

    Notes, "Data Preprocessing", "Normalization": divide every feature by its
    standard deviation on the training set, so features in different units
    weigh the same; usually after mean subtraction, which ``center=True`` (the
    default) does in the same step. ``center=False`` gives ``x / std``.

    ``std`` is the population standard deviation (``correction=0``), so the
    fitted training data have variance exactly 1 per feature. A feature that
    is constant on the training set (all values equal) has no scale to
    divide by: its ``std`` is stored as 1, so it comes out as 0 when centred
    (and unchanged when not) instead of a division by zero.

    Buffers: ``mean``, ``std`` (n_features,).
    """

    statistics = ("mean", "std")

    def __init__(self, center: bool = True) -> None:
        super().__init__()
        self.center = bool(center)

    def _fit(self, x: Tensor) -> dict[str, Tensor]:
        std = x.std(dim=0, correction=0)
        # exact test for a constant column: rounding makes its computed std a
        # tiny nonzero number, which we must not divide by
        constant = x.amax(dim=0) == x.amin(dim=0)
        return {"mean": x.mean(dim=0), "std": torch.where(constant, torch.ones_like(std), std)}

    def _transform(self, x: Tensor) -> Tensor:
        if self.center:
            x = x - self._statistic("mean", x)
        return x / self._statistic("std", x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, center={self.center}"


class _Whitening(FittedTransform):
    """Shared fit of PCA and ZCA whitening; subclasses choose the matrix.

    Notes, "Data Preprocessing", "Whitening": mean-subtract to get ``x'``,
    decompose, rotate into the basis ``U``, divide each direction by its
    scale. Here ``U, S`` come from the SVD of the training covariance
    ``C = x'^T x' / n`` (symmetric positive semi-definite, so ``C = U S U^T``:
    ``U`` holds the principal directions as columns and ``S`` the variance
    along each). The notes print ``U X'``; the projection onto the columns of
    ``U`` is ``U^T X'`` (examples as columns), which is ``x' @ U`` in our row
    layout, and dividing by ``sqrt(S)`` (not by the singular values of ``X'``,
    which would leave variance ``1/n``) gives unit variance (docs/errata.md, 14).

    Zero or tiny singular values (constant or linearly dependent features,
    or ``n_samples <= n_features``): the notes say to "divide by a small
    number instead"; we divide by ``sqrt(S + eps)`` throughout. A direction
    with ``S = 0`` carries no training variance and maps to 0 on the training
    data instead of NaN; held-out data that do vary along it are amplified by
    ``1/sqrt(eps)``. ``eps`` is in the units of the variance (choose it below
    the smallest variance you want whitened); whitened directions have
    variance ``S / (S + eps)``, i.e. 1 up to ``eps / S``.

    Buffers: ``mean`` (n_features,), ``components`` = ``U`` (n_features,
    n_features), ``singular_values`` = ``S`` (n_features,), ``matrix`` = the
    whitening matrix ``W`` applied as ``(x - mean) @ W``.
    """

    statistics = ("mean", "components", "singular_values", "matrix")

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        eps = float(eps)
        if not math.isfinite(eps) or eps <= 0:
            raise ValueError(f"eps must be a finite number > 0 (it replaces zero singular values), got {eps}")
        self.eps = eps

    def _check_fit_shape(self, x: Tensor) -> None:
        n_samples, n_features = x.shape
        if n_samples < n_features:
            raise ValueError(
                f"{type(self).__name__} needs at least as many samples as features to estimate "
                f"the covariance: x has shape {tuple(x.shape)} ({n_samples} samples < "
                f"{n_features} features)"
            )

    def _fit(self, x: Tensor) -> dict[str, Tensor]:
        mean = x.mean(dim=0)
        centered = x - mean
        covariance = centered.T @ centered / x.shape[0]
        components, singular_values, _ = torch.linalg.svd(covariance)
        scale = torch.rsqrt(singular_values + self.eps)  # 1 / sqrt(S + eps)
        # SVD returns U column-major, and products keep that layout; a state
        # loaded into fresh buffers is row-major, and BLAS may round a matmul
        # with either layout differently. Row-major here makes a reloaded
        # transform reproduce the fitted one bit for bit.
        return {
            "mean": mean,
            "components": components.contiguous(),
            "singular_values": singular_values,
            "matrix": self._whitening_matrix(components, scale).contiguous(),
        }

    @staticmethod
    def _whitening_matrix(components: Tensor, scale: Tensor) -> Tensor:
        raise NotImplementedError

    def _transform(self, x: Tensor) -> Tensor:
        return (x - self._statistic("mean", x)) @ self._statistic("matrix", x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, eps={self.eps}"


class PCAWhitening(_Whitening):
    """PCA whitening: rotate onto the principal axes, then scale each to unit variance.

    ``y = (x - mean) @ U diag(1 / sqrt(S + eps))``: output feature ``k`` is the
    (scaled) coordinate along the ``k``-th principal direction, in decreasing
    order of training variance, and the training covariance of ``y`` is
    ``diag(S / (S + eps))``, the identity up to ``eps / S``. See
    :class:`_Whitening` for the fit and for zero singular values.
    """

    @staticmethod
    def _whitening_matrix(components: Tensor, scale: Tensor) -> Tensor:
        return components * scale  # scales column k of U by 1/sqrt(S_k + eps)


class ZCAWhitening(_Whitening):
    """ZCA whitening: PCA whitening rotated back into the original coordinates.

    ``y = (x - mean) @ U diag(1 / sqrt(S + eps)) U^T``. The matrix is
    symmetric, so output feature ``k`` still corresponds to input feature
    ``k``; of all whitening transforms it gives the output closest to the
    centred input in mean squared distance (Bell & Sejnowski, 1997; Kessy,
    Lewin & Strimmer, "Optimal whitening and decorrelation", 2018). The
    training covariance of ``y`` is ``U diag(S / (S + eps)) U^T``. See
    :class:`_Whitening` for the fit and for zero singular values.
    """

    @staticmethod
    def _whitening_matrix(components: Tensor, scale: Tensor) -> Tensor:
        return (components * scale) @ components.T
