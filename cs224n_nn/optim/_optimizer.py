"""The optimizer base class: one ``step`` for every optimizer.

Each optimizer is three things:

* one small function named after it (``sgd``, ``adagrad``, ``adam``, ...)
  that holds the update rule for dense tensors, written once with
  ``Tensor`` methods, like optax's ``scale_by_adam``;
* a subclass of :class:`Optimizer` that validates the hyperparameters, says
  which per-parameter state the rule needs and which scalars it reads from
  that state (the step count);
* nothing else: ``step`` lives here.

A step of a parameter group:

1. **sparse gradients** (``nn.Embedding(sparse=True)``) are turned into
   dense work once, here: for a rule that updates only the rows a gradient
   touches (AdaGrad, Adam, AdamW, SGD without momentum) the touched rows of
   the parameter and its state are gathered, the rule runs on them, and they
   are scattered back (:mod:`._sparse_rows`); where the rule would change
   every row anyway (SGD with momentum: the velocity of every row decays)
   the gradient is made dense, as torch.optim.SGD's sparse momentum buffer
   amounts to. No rule ever sees a sparse tensor.
2. **the dense parameters** run the rule on one of three paths:

   ``compiled``       the rule looped over the group and compiled
                      (:mod:`._compiled_update`): ``fused=True``, and the
                      default for groups of at least
                      ``COMPILE_MIN_NUMEL`` elements;
   ``multi-tensor``   the rule called on :class:`TensorList` s (one
                      ``torch._foreach_*`` call per line of the rule for each
                      (device, dtype, step) bucket): ``foreach=True``, the
                      default for smaller groups, and the fallback;
   ``per-parameter``  the rule called on each tensor: ``foreach=False``, or
                      a default group spread over several devices or dtypes.

   The step that creates the state runs eagerly (rules may branch on it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .. import _compile
from . import _compiled_update as compiled_update
from ._buckets import buckets, by_device_and_dtype, subset
from ._sparse_rows import SparseRows, sparse_weight_decay_error
from ._tensor_list import TensorList

_ONE = torch.tensor(1.0)


class Optimizer(torch.optim.Optimizer):
    """Base class: collects gradients and state, picks a path, calls the rule.

    Subclasses set :attr:`update` (the rule), :attr:`state_keys` (the state
    tensors it takes, in order) and may override :meth:`_init_state`,
    :meth:`_hyperparameters`, :meth:`_step_scalars` and
    :meth:`_sparse_touches_every_row`.
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
        #: compiled update loops, one per group layout
        #: (:func:`._compiled_update.layout`); a layout seen again reuses its loop.
        self._compiled: dict[tuple, Callable] = {}

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

    def _sparse_touches_every_row(self, group: dict[str, Any]) -> bool:
        """Whether the rule, given a sparse gradient, would still change rows
        it does not touch (then the gradient is made dense instead of the
        touched rows being gathered)."""
        return False

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
            if self._sparse_touches_every_row(group):
                for i in sparse:
                    grads[i] = grads[i].to_dense()
            else:
                self._update_touched_rows(*subset(sparse, params, grads, state_lists, scalars), hyper,
                                          foreach=group["foreach"] is not False)
                taken = set(sparse)
                dense = [i for i in range(len(params)) if i not in taken]
                if not dense:
                    return
                params, grads, state_lists, scalars, fresh = subset(dense, params, grads, state_lists,
                                                                    scalars, fresh)
        self._update_dense(params, grads, state_lists, scalars, fresh, hyper, group)

    def _check_sparse(self, param: Tensor, group: dict[str, Any]) -> None:
        """Refuse a sparse gradient before any state changes, naming the optimizer."""
        name = type(self).__name__
        if not self.supports_sparse:
            raise RuntimeError(
                f"{name} does not support sparse gradients (parameter of shape "
                f"{tuple(param.shape)}); use cs224n_nn.optim.SGD, AdaGrad, Adam or AdamW "
                "(with weight_decay=0)"
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

    # the paths -------------------------------------------------------------
    def _update_touched_rows(self, params, grads, state_lists, scalars, hyper, *, foreach: bool) -> None:
        """Gather the rows each sparse gradient touches, run the dense rule on
        them (eagerly: the row count changes every step), scatter them back."""
        rows = [SparseRows(g) for g in grads]
        row_params = [r.gather(p) for r, p in zip(rows, params)]
        row_states = [None if s is None else [r.gather(t) for r, t in zip(rows, s)] for s in state_lists]
        row_grads = [r.values for r in rows]
        if foreach:
            self._multi_tensor_update(row_params, row_grads, row_states, scalars, hyper)
        else:
            self._per_parameter_update(row_params, row_grads, row_states, scalars, hyper)
        for i, r in enumerate(rows):
            r.scatter_(params[i], row_params[i])
            for s, row_s in zip(state_lists, row_states):
                if s is not None:
                    r.scatter_(s[i], row_s[i])

    def _update_dense(self, params, grads, state_lists, scalars, fresh, hyper, group) -> None:
        """The step dispatcher: pick the path for the group's dense gradients."""
        fused, foreach = group["fused"], group["foreach"]
        wants_compiled = fused or (fused is None and foreach is None and compiled_update.worth_compiling(params))
        if wants_compiled and self._compiled_update(params, grads, state_lists, scalars, fresh, hyper):
            return
        groups = None
        if foreach is None:
            groups = by_device_and_dtype(params)
            foreach = fused or len(groups) == 1
        if foreach:
            self._multi_tensor_update(params, grads, state_lists, scalars, hyper, groups)
        else:
            self._per_parameter_update(params, grads, state_lists, scalars, hyper)

    def _per_parameter_update(self, params, grads, state_lists, scalars, hyper) -> None:
        for i, (p, g) in enumerate(zip(params, grads)):
            tensors = [None if s is None else s[i] for s in state_lists]
            self.update(p, g, *tensors, **scalars[i], **hyper)

    def _multi_tensor_update(self, params, grads, state_lists, scalars, hyper, groups=None) -> None:
        # Bucket by (device, dtype, scalars): a foreach call needs one device
        # and dtype, and the rule takes one value of each step scalar.
        # ``groups``: the (device, dtype) grouping when the caller has it.
        for idx in buckets(params, scalars, groups):
            some_params, some_grads, some_states = subset(idx, params, grads, state_lists)
            tensors = [None if s is None else TensorList(s) for s in some_states]
            self.update(TensorList(some_params), TensorList(some_grads), *tensors, **scalars[idx[0]], **hyper)

    def _compiled_update(self, params, grads, state_lists, scalars, fresh, hyper) -> bool:
        """Run the compiled update; False to run eagerly instead: on a step
        that creates state, inside another compilation, or once compilation
        has failed in this process (the first failure warns)."""
        if any(fresh) or not _compile.available():
            return False
        table = compiled_update.scalar_table(scalars)
        # lr goes in as a tensor too, so that a schedule does not recompile.
        hyper = dict(hyper, lr=torch.tensor(float(hyper["lr"]), dtype=torch.float64))
        key = compiled_update.layout(params, state_lists, table, hyper)
        try:  # torch.compile itself may refuse (an unsupported Python), or the first call
            loop = self._compiled.get(key)
            if loop is None:
                loop = self._compiled[key] = compiled_update.compile_loop()
            loop(type(self).update, params, grads, state_lists, table, hyper)
        except Exception as err:  # noqa: BLE001 - any compiler failure falls back
            _compile.mark_failed(type(self).__name__, err)
            return False
        return True
