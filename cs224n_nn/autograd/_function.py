"""The base class of every hand-written Function here: ``torch.autograd.Function``
with a cheaper ``apply`` and ``backward``/``jvp`` run outside autocast.

Why the cheaper ``apply``: with a new-style ``forward`` + ``setup_context``
(which ``torch.func`` transforms require), torch's ``Function.apply`` binds
each call's arguments against ``inspect.signature(forward)`` to fill in
defaults. On a tensor of a thousand elements that binding costs more than the
forward itself (measured on this project's 2-core CPU: the ``apply`` of a
minimal tanh Function took 26 us against 9 us without it).

:meth:`HandWrittenFunction.apply` skips the binding when there is nothing to
bind -- every argument of ``forward`` given positionally (any number for a
trailing ``*tensors``) -- and no
``torch.func`` transform is active; it then calls the C++ ``apply`` exactly as
torch's Python ``apply`` does after binding. Every other call (keywords,
omitted defaults, ``vmap``/``grad``/``jacrev``/``jvp``) takes torch's own
path. ``torch.compile`` never runs this method: dynamo recognises ``apply`` on
a Function subclass and traces ``forward`` and ``backward`` itself.

The shortcut needs three private symbols (``torch._C._are_functorch_transforms_active``,
``torch._C._functorch.unwrap_if_dead`` and the C++ ``torch._C._FunctionBase.apply``).
They are looked up at the first call, not at import (:mod:`._private`), and if any is missing
(another torch release) every call takes torch's public ``Function.apply``:
slower, never broken (tests/test_autograd_modes.py simulates that).
"""

from __future__ import annotations

import inspect

import torch
from torch.autograd import Function

from ._amp import outside_autocast
from ._private import lookup

#: The private names the shortcut needs: transforms-active test, dead-wrapper unwrap, C++ apply.
FAST_PATH_SYMBOLS = ("_C._are_functorch_transforms_active", "_C._functorch.unwrap_if_dead", "_C._FunctionBase.apply")


class _ForwardRule:
    """Holds a Function's ``jvp``; reads as torch's default ``Function.jvp`` while ``torch.compile`` traces.

    Why: dynamo (torch 2.13) refuses to trace any ``autograd.Function`` that
    defines a custom ``jvp`` ("Unsupported custom jvp"), which would break
    ``torch.compile(fullgraph=True)`` of every model built from ours. Dynamo
    only checks ``cls.jvp is Function.jvp`` before tracing ``forward`` and
    ``backward``; a compiled graph has no forward mode anyway, so while it
    traces (``torch.compiler.is_compiling()``) the class shows torch's default.
    Everywhere else -- eager autograd, ``torch.func``, dual numbers -- the
    hand-written rule is returned.
    """

    def __init__(self, rule):
        self.rule = rule

    def __get__(self, obj, owner=None):
        if torch.compiler.is_compiling():
            return Function.jvp
        return self.rule


class HandWrittenFunction(Function):
    """``torch.autograd.Function`` whose ``apply`` skips argument binding when all arguments are given."""

    _arity: int = -1  # number of parameters of ``forward``; set for each subclass
    _varargs: bool = False  # ``forward`` ends in ``*tensors``: any number of arguments from ``_arity - 1`` on

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        parameters = inspect.signature(cls.forward).parameters.values()
        cls._arity = len(parameters)
        cls._varargs = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters)
        backward = cls.__dict__.get("backward")
        if isinstance(backward, staticmethod):
            cls.backward = staticmethod(outside_autocast(backward.__func__))
        jvp = cls.__dict__.get("jvp")
        if isinstance(jvp, staticmethod):
            setattr(cls, "jvp", _ForwardRule(outside_autocast(jvp.__func__)))

    @classmethod
    def apply(cls, *args, **kwargs):
        fast = lookup(*FAST_PATH_SYMBOLS)
        given_all = len(args) >= cls._arity - 1 if cls._varargs else len(args) == cls._arity
        if fast is None or kwargs or not given_all or fast[0]():
            return super().apply(*args, **kwargs)
        # What Function.apply does once the arguments are bound: drop dead
        # functorch wrappers (a tensor that escaped a finished transform), then
        # call the C++ apply of torch._C._FunctionBase.
        unwrap = fast[1]
        args = tuple(unwrap(a) if isinstance(a, torch.Tensor) else a for a in args)
        return super(Function, cls).apply(*args)
