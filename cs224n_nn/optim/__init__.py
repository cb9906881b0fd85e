"""Optimizers and learning-rate schedules written from the CS224n notes'
update rules (sections 2.7-2.9), as drop-ins for ``torch.optim``.

Each optimizer's maths is one function named after it (:func:`sgd`,
:func:`adagrad`, :func:`adadelta`, :func:`rmsprop`, :func:`adam`); the
classes add validation, state and the choice of execution path
(see :mod:`cs224n_nn.optim._optimizer`). See docs/optim.md.
"""

from .adadelta import Adadelta, adadelta
from .adagrad import AdaGrad, adagrad
from .adam import Adam, AdamW, adam
from .rmsprop import RMSProp, rmsprop
from .schedules import ExponentialDecay, InverseTimeDecay, StepAnnealing
from .sgd import SGD, sgd

# torch.optim's spellings, the same classes
Adagrad = AdaGrad
RMSprop = RMSProp

__all__ = [
    "SGD", "AdaGrad", "Adagrad", "Adadelta", "RMSProp", "RMSprop", "Adam", "AdamW",
    "StepAnnealing", "ExponentialDecay", "InverseTimeDecay",
    "sgd", "adagrad", "adadelta", "rmsprop", "adam",
]
