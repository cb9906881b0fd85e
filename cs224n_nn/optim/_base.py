"""What every optimizer in :mod:`cs224n_nn.optim` shares.

Each optimizer is three things:

* one small function named after it (``sgd``, ``adagrad``, ``adam``, ...)
  that holds the update rule, written once with ``Tensor`` methods;
* a subclass of :class:`Optimizer` below that validates the
  hyperparameters, says which per-parameter state the rule needs and what
  scalars it reads from that state (the step count);
* nothing else: ``step`` lives here.

The rule is written once but runs three ways, picked per parameter group:

``per-parameter``  the rule is called on each ``(param, grad, state...)``;
                   sparse gradients always go this way (the rule updates
                   only the rows they touch, see :class:`SparseRows`).
``multi-tensor``   the rule is called on :class:`TensorList` s, whose methods
                   are ``torch._foreach_*`` calls, so one Python call updates
                   every tensor of a (device, dtype, step) bucket.
``fused``          the per-parameter loop over the whole group is compiled
                   with ``torch.compile`` (``fused=True``), once per group
                   layout (see :func:`_loop_for_layout`); if compilation is
                   unavailable or fails, we warn once and run eagerly.

The default (``foreach=None, fused=None``) is the multi-tensor path when all
dense gradients of the group share one device and dtype, the per-parameter
path otherwise. A group that mixes sparse and dense gradients is split: the
sparse ones go per parameter, the dense ones take the group's path.
"""

from __future__ import annotations

import math
import types
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

# --------------------------------------------------------------------------
# hyperparameter checks: every message names the parameter and its value


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"Invalid {name}: {value} (must be finite)")
    return float(value)


def check_nonnegative(name: str, value: Any) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is finite and >= 0."""
    if _as_float(name, value) < 0:
        raise ValueError(f"Invalid {name}: {value} (must be >= 0)")


def check_in_range(name: str, value: Any, low: float, high: float, *, high_inclusive: bool = False) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``low <= value < high`` (or ``<= high``)."""
    v = _as_float(name, value)
    ok = low <= v <= high if high_inclusive else low <= v < high
    if not ok:
        bracket = "]" if high_inclusive else ")"
        raise ValueError(f"Invalid {name}: {value} (must be in [{low}, {high}{bracket})")


def check_positive(name: str, value: Any) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is finite and > 0."""
    if _as_float(name, value) <= 0:
        raise ValueError(f"Invalid {name}: {value} (must be > 0)")


def check_common(
    cls_name: str,
    *,
    lr: Any,
    weight_decay: Any,
    foreach: bool | None,
    fused: bool | None,
    differentiable: bool,
    capturable: bool = False,
    eps: Any = None,
) -> None:
    """The checks every optimizer makes: lr, eps, weight decay and the path flags."""
    check_nonnegative("learning rate lr", lr)
    check_nonnegative("weight_decay", weight_decay)
    if eps is not None:
        check_nonnegative("eps", eps)
    if foreach and fused:
        raise ValueError(f"{cls_name}: foreach=True and fused=True cannot both be set")
    if differentiable:
        # step() runs under no_grad; torch's differentiable mode would need
        # every in-place update rewritten out of place.
        raise ValueError(f"{cls_name}: differentiable=True is not supported (use torch.optim.{cls_name})")
    if capturable:
        # CUDA-graph capture needs the step count kept on the device and every
        # bias correction computed there; our rules read it on the host.
        raise ValueError(f"{cls_name}: capturable=True is not supported (use torch.optim for CUDA graphs)")


# --------------------------------------------------------------------------
# the multi-tensor path: the Tensor methods the rules use, over a list


class TensorList:
    """A list of tensors that answers the in-place ``Tensor`` methods the
    update rules call, each with one ``torch._foreach_*`` call.

    It lets ``adam(param, grad, ...)`` run unchanged on a whole bucket of
    parameters. Only what the rules need is here; scalars are Python numbers.
    """

    __slots__ = ("tensors",)

    def __init__(self, tensors: Sequence[Tensor]):
        self.tensors = list(tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    # out of place
    def __neg__(self) -> TensorList:
        return TensorList(torch._foreach_neg(self.tensors))

    def add(self, other: TensorList | float, alpha: float = 1) -> TensorList:
        if isinstance(other, TensorList):
            return TensorList(torch._foreach_add(self.tensors, other.tensors, alpha=alpha))
        return TensorList(torch._foreach_add(self.tensors, other))

    def mul(self, other: TensorList | float) -> TensorList:
        return TensorList(torch._foreach_mul(self.tensors, _raw(other)))

    def sqrt(self) -> TensorList:
        return TensorList(torch._foreach_sqrt(self.tensors))

    def addcmul(self, t1: TensorList, t2: TensorList, value: float = 1) -> TensorList:
        return TensorList(torch._foreach_addcmul(self.tensors, t1.tensors, t2.tensors, value=value))

    # in place (return self so calls chain like Tensor methods)
    def add_(self, other: TensorList | float, alpha: float = 1) -> TensorList:
        if isinstance(other, TensorList):
            torch._foreach_add_(self.tensors, other.tensors, alpha=alpha)
        else:
            torch._foreach_add_(self.tensors, other)
        return self

    def mul_(self, other: TensorList | float) -> TensorList:
        torch._foreach_mul_(self.tensors, _raw(other))
        return self

    def div_(self, other: TensorList | float) -> TensorList:
        torch._foreach_div_(self.tensors, _raw(other))
        return self

    def sqrt_(self) -> TensorList:
        torch._foreach_sqrt_(self.tensors)
        return self

    def lerp_(self, end: TensorList, weight: float) -> TensorList:
        torch._foreach_lerp_(self.tensors, end.tensors, weight)
        return self

    def addcmul_(self, t1: TensorList, t2: TensorList, value: float = 1) -> TensorList:
        torch._foreach_addcmul_(self.tensors, t1.tensors, t2.tensors, value=value)
        return self

    def addcdiv_(self, t1: TensorList, t2: TensorList, value: float = 1) -> TensorList:
        torch._foreach_addcdiv_(self.tensors, t1.tensors, t2.tensors, value=value)
        return self

    def copy_(self, src: TensorList) -> TensorList:
        torch._foreach_copy_(self.tensors, src.tensors)
        return self


def _raw(x: TensorList | float) -> Any:
    return x.tensors if isinstance(x, TensorList) else x


def maximum_(a: Tensor | TensorList, b: Tensor | TensorList) -> None:
    """``a = max(a, b)`` elementwise, in place (Tensor has no ``maximum_``)."""
    if isinstance(a, TensorList):
        torch._foreach_maximum_(a.tensors, b.tensors)
    else:
        torch.maximum(a, b, out=a)


def sparse_weight_decay_error(weight_decay: float, owner: str = "") -> RuntimeError:
    """The error for ``weight_decay != 0`` with a sparse gradient: the decay
    term (L2 or decoupled) would touch every row, not just the looked-up ones."""
    prefix = f"{owner}: " if owner else ""
    return RuntimeError(
        f"{prefix}weight_decay={weight_decay} is not compatible with sparse gradients "
        "(its update would touch every row); set weight_decay=0 for the sparse parameters, "
        "e.g. in their own parameter group (AdamW's default weight_decay is 1e-2)"
    )


class SparseRows:
    """The rows a sparse COO gradient touches, to run a dense rule on them only.

    ``grad`` is coalesced first: repeated indices (one per looked-up position,
    as ``nn.Embedding(sparse=True)`` returns them) are summed, since the
    rules are non-linear in the gradient. :meth:`gather` copies the touched
    rows of a parameter or state tensor out, :meth:`scatter_` writes updated
    rows back; every other row is left as it is. With one sparse dimension
    (an embedding table) both are single ``index_select`` / ``index_copy_``
    calls along dim 0, cheaper than advanced indexing, which serves the
    general case (``sparse_dim > 1``).
    """

    __slots__ = ("values", "_index", "_key")

    def __init__(self, grad: Tensor):
        grad = grad.coalesce()
        self.values = grad._values()  # (rows touched, *dense dims)
        indices = grad._indices()     # (sparse_dim, rows touched)
        self._index = indices[0] if grad.sparse_dim() == 1 else None
        self._key = tuple(indices)

    def gather(self, t: Tensor) -> Tensor:
        return t.index_select(0, self._index) if self._index is not None else t[self._key]

    def scatter_(self, t: Tensor, rows: Tensor) -> None:
        if self._index is not None:
            t.index_copy_(0, self._index, rows)
        else:
            t.index_put_(self._key, rows)


def l2_gradient(param, grad, *, maximize: bool, weight_decay: float):
    """The gradient a descent rule follows: ``g = ±grad + weight_decay * param``.

    ``maximize`` flips the sign so that descent on ``-f`` ascends ``f``; the
    weight-decay term is the gradient of the L2 penalty
    ``weight_decay/2 * ||param||^2`` (notes section 2.2, Regularization).
    """
    if maximize:
        grad = -grad
    if weight_decay != 0:
        if isinstance(grad, Tensor) and grad.is_sparse:
            raise sparse_weight_decay_error(weight_decay)
        grad = grad.add(param, alpha=weight_decay)
    return grad


# --------------------------------------------------------------------------
# the optimizer base class

_warned_compile_failure = False
_ONE = torch.tensor(1.0)


def _warn_compile_failure(name: str, err: BaseException) -> None:
    global _warned_compile_failure
    if not _warned_compile_failure:
        _warned_compile_failure = True
        warnings.warn(
            f"{name}(fused=True): torch.compile failed ({type(err).__name__}: {err}); "
            "running the eager multi-tensor update instead",
            RuntimeWarning,
            stacklevel=4,
        )


def _update_each(update: Callable, params, grads, state_lists, scalar_table, hyper) -> None:
    # The loop that fused=True compiles: one update call per parameter, so
    # torch.compile sees the whole group. Numeric step scalars come in as one
    # float64 tensor per name (entry i for parameter i) so that new values
    # each step neither recompile nor add work inside the generated loops.
    for i in range(len(params)):
        states = [None if s is None else s[i] for s in state_lists]
        scalars = {name: column[i] for name, column in scalar_table.items()}
        update(params[i], grads[i], *states, **scalars, **hyper)


def _layout(params, state_lists, table, hyper) -> tuple:
    """What the compiled loop specialises on: each parameter's shape, strides,
    dtype and device, which state lists exist, the flags, and the constant
    hyperparameters (lr excluded: it goes in as a tensor)."""
    return (
        tuple((p.shape, p.stride(), p.dtype, p.device) for p in params),
        tuple(s is None for s in state_lists),
        tuple((k, tuple(v) if isinstance(v, list) else None) for k, v in table.items()),
        tuple((k, v) for k, v in hyper.items() if k != "lr"),
    )


def _loop_for_layout() -> Callable:
    """A new function object running :func:`_update_each`, with its own code object.

    Dynamo keeps the compiled variants of a function on its code object and,
    past ``torch._dynamo.config.recompile_limit`` (8) variants, silently runs
    it eagerly. Every group layout compiles to its own variant (the list
    length and each shape are baked into the graph), so a process holding
    several optimizers or groups would soon exhaust one shared code object.
    A copy of the code per layout gives each layout its own cache of one
    variant; the arithmetic is unchanged.
    """
    fn = _update_each
    return types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)


def _subset(idx: list[int], params, grads, state_lists, *per_param) -> tuple:
    """Entries ``idx`` of the per-parameter lists of a step: ``params``,
    ``grads``, each state list (``None`` where a state key is absent) and any
    further per-parameter lists, in that order; the same lists if ``idx``
    takes them all."""
    if len(idx) == len(params):
        return (params, grads, state_lists, *per_param)

    def pick(xs):
        return [xs[i] for i in idx]

    return (pick(params), pick(grads), [None if s is None else pick(s) for s in state_lists],
            *(pick(xs) for xs in per_param))


def _by_device_and_dtype(tensors: list[Tensor]) -> list[list[int]]:
    """Positions of ``tensors`` grouped by (device, dtype), in torch's C++ helper
    (a Python loop reading ``t.device`` costs about a microsecond per tensor)."""
    groups = torch._C._group_tensors_by_device_and_dtype([tensors], True)
    return [idx for _, idx in groups.values()]


def _buckets(params: list[Tensor], scalars: list[dict[str, Any]],
             groups: list[list[int]] | None = None) -> list[list[int]]:
    """Positions of the parameters one foreach call can update together: one
    device, one dtype and one set of step scalars (``groups``: the grouping by
    device and dtype, if already known)."""
    first = scalars[0]
    if all(s is first for s in scalars):  # the usual case: one step count (see _all_step_scalars)
        return groups if groups is not None else _by_device_and_dtype(params)
    buckets: dict[tuple, list[int]] = {}
    for i, p in enumerate(params):
        buckets.setdefault((p.device, p.dtype, *scalars[i].values()), []).append(i)
    return list(buckets.values())


class Optimizer(torch.optim.Optimizer):
    """Base class: collects gradients and state, picks a path, calls the rule.

    Subclasses set :attr:`update` (the rule), :attr:`state_keys` (the state
    tensors it takes, in order) and may override :meth:`_init_state`,
    :meth:`_hyperparameters` and :meth:`_step_scalars`.
    """

    update: Callable[..., None]
    #: state tensors passed positionally to ``update`` after ``param, grad``;
    #: a key whose state is absent (an unused option) is passed as ``None``.
    state_keys: tuple[str, ...] = ()
    supports_sparse: bool = False
    #: group keys that only exist in this project (set by subclasses); filled
    #: in by ``__setstate__`` when a state dict saved by torch.optim is loaded.
    extra_defaults: dict[str, Any] = {}

    def __init__(self, params, defaults: dict[str, Any]):
        super().__init__(params, defaults)
        #: compiled update loops of the fused path, one per group layout
        #: (:func:`_layout`); a layout seen again reuses its compiled loop.
        self._compiled: dict[tuple, Callable] = {}
        self._compile_failed = False

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            for key in ("foreach", "fused"):
                group.setdefault(key, None)
            group.setdefault("maximize", False)
            group.setdefault("differentiable", False)
            for key, value in self.extra_defaults.items():
                group.setdefault(key, value)
        self.__dict__.setdefault("_compiled", {})
        self.__dict__.setdefault("_compile_failed", False)

    # hooks -------------------------------------------------------------
    def _init_state(self, param: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Fill the empty state of ``param`` (step count and buffers)."""

    def _hyperparameters(self, group: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments of the rule that are the same for the whole group."""
        raise NotImplementedError

    def _step_scalars(self, step: float | None, fresh: bool, group: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments of the rule that depend on a parameter's step
        count ``step`` (``None`` when the state keeps none), as Python numbers.

        Parameters whose scalars differ are updated in separate buckets on
        the multi-tensor path. ``fresh`` says the state was created this step.
        """
        return {}

    # the step ------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one update of every parameter that has a gradient.

        ``closure`` (optional) re-evaluates the model and returns the loss;
        it runs with gradients enabled and its loss is returned.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._step_group(group)
        return loss

    def _step_group(self, group: dict[str, Any]) -> None:
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        grads = [p.grad for p in params]
        sparse = [i for i, g in enumerate(grads) if g.is_sparse]
        for i in sparse:  # before any state is created or changed
            self._check_sparse(params[i], group)
        # (comprehensions: at 100 parameters the Python loop here is a
        # measurable share of a multi-tensor step)
        states: list[dict[str, Any]] = [self.state[p] for p in params]
        fresh: list[bool] = [not state for state in states]
        for p, state, is_fresh in zip(params, states, fresh):
            if is_fresh:
                self._init_state(p, state, group)
        # Every step count is a 0-d float32 tensor on the CPU, as in
        # torch.optim, so state dicts load into either library. (Adding a
        # 0-d tensor is about 3x faster per tensor than adding a Python 1.)
        steps = [s["step"] for s in states if "step" in s]
        if steps:
            torch._foreach_add_(steps, _ONE, alpha=1.0)
        scalars = self._all_step_scalars(states, fresh, group)
        hyper = self._hyperparameters(group)
        state_lists = [
            [s[k] for s in states] if k in states[0] else None for k in self.state_keys
        ]
        if sparse:
            # Sparse gradients go one by one (the rule updates the rows they
            # touch); the group's dense gradients still take its path below.
            self._per_parameter_update(*_subset(sparse, params, grads, state_lists, scalars), hyper)
            taken = set(sparse)
            dense = [i for i in range(len(params)) if i not in taken]
            if not dense:
                return
            params, grads, state_lists, scalars, fresh = _subset(dense, params, grads, state_lists,
                                                                 scalars, fresh)
        if group["fused"]:
            if self._fused_update(params, grads, state_lists, scalars, fresh, hyper):
                return
            self._multi_tensor_update(params, grads, state_lists, scalars, hyper)
            return
        foreach = group["foreach"]
        groups = None
        if foreach is None:
            groups = _by_device_and_dtype(params)
            foreach = len(groups) == 1
        if foreach:
            self._multi_tensor_update(params, grads, state_lists, scalars, hyper, groups)
        else:
            self._per_parameter_update(params, grads, state_lists, scalars, hyper)

    def _check_sparse(self, param: Tensor, group: dict[str, Any]) -> None:
        """Refuse a sparse gradient before any state changes, naming the optimizer."""
        name = type(self).__name__
        if not self.supports_sparse:
            raise RuntimeError(
                f"{name} does not support sparse gradients (parameter of shape "
                f"{tuple(param.shape)}); use cs224n_nn.optim.AdaGrad, Adam or AdamW "
                "(with weight_decay=0), or SGD without momentum"
            )
        weight_decay = group.get("weight_decay", 0)
        if weight_decay != 0:
            raise sparse_weight_decay_error(weight_decay, f"{name} (parameter of shape {tuple(param.shape)})")

    def _all_step_scalars(self, states, fresh, group) -> list[dict[str, Any]]:
        # Parameters of a group nearly always share one step count: compute
        # each distinct set of scalars once.
        memo: dict[tuple, dict[str, Any]] = {}
        out = []
        for state, is_fresh in zip(states, fresh):
            step = state["step"].item() if "step" in state else None
            key = (step, is_fresh)
            if key not in memo:
                memo[key] = self._step_scalars(step, is_fresh, group)
            out.append(memo[key])
        return out

    def _per_parameter_update(self, params, grads, state_lists, scalars, hyper) -> None:
        for i, (p, g) in enumerate(zip(params, grads)):
            tensors = [None if s is None else s[i] for s in state_lists]
            self.update(p, g, *tensors, **scalars[i], **hyper)

    def _multi_tensor_update(self, params, grads, state_lists, scalars, hyper, groups=None) -> None:
        # Bucket by (device, dtype, scalars): a foreach call needs one device
        # and dtype, and the rule takes one value of each step scalar.
        # ``groups``: the (device, dtype) grouping when the caller has it.
        for idx in _buckets(params, scalars, groups):
            some_params, some_grads, some_states = _subset(idx, params, grads, state_lists)
            tensors = [None if s is None else TensorList(s) for s in some_states]
            self.update(TensorList(some_params), TensorList(some_grads), *tensors, **scalars[idx[0]], **hyper)

    def _fused_update(self, params, grads, state_lists, scalars, fresh, hyper) -> bool:
        """Run the compiled update; False to run eagerly instead: on a step
        that creates state (rules may branch on it), or after one warning if
        compilation fails."""
        if self._compile_failed or any(fresh):
            return False
        # Flags (SGD's ``first``) stay Python bools: the rule branches on them.
        table = {
            name: [sc[name] for sc in scalars] if isinstance(value, bool)
            else torch.tensor([float(sc[name]) for sc in scalars], dtype=torch.float64)
            for name, value in scalars[0].items()
        }
        # lr goes in as a tensor too, so that a schedule does not recompile.
        hyper = dict(hyper, lr=torch.tensor(hyper["lr"], dtype=torch.float64))
        key = _layout(params, state_lists, table, hyper)
        compiled = self._compiled.get(key)
        if compiled is None:
            # size_asserts off: inductor would re-check every tensor's shape
            # on each call, which costs more than the update at 100 x 1K.
            compiled = torch.compile(_loop_for_layout(), dynamic=False, options={"size_asserts": False})
            self._compiled[key] = compiled
        try:
            compiled(type(self).update, params, grads, state_lists, table, hyper)
        except Exception as err:  # noqa: BLE001 - any compiler failure falls back
            self._compile_failed = True
            _warn_compile_failure(type(self).__name__, err)
            return False
        return True
