"""Hand-written ``torch.autograd.Function``s, one per piece of math in the notes.

Each has a new-style ``forward`` + ``setup_context`` and a ``backward`` derived
and written by hand (never autograd of the forward), supports
``torch.func`` transforms (``generate_vmap_rule = True``) and
``torch.compile(fullgraph=True)``, and has a differentiable backward so that
double backward works. Call them through :mod:`cs224n_nn.functional` or the
modules in :mod:`cs224n_nn.nn`. Each also has a ``jvp`` (forward mode: ``torch.func.jvp``,
``jacfwd``, ``hessian``, dual numbers), a batchable backward (``is_grads_batched``,
``vmap``) and follows torch's autocast policy for its twin (docs/modules.md).
``Function.apply`` takes the same arguments
positionally, except that ``Dropout.apply(x, mask)`` takes the mask drawn by
:func:`keep_mask` and ``SoftmaxCrossEntropy.apply`` returns ``(loss, log_probs)``.
"""

from .activations import HardTanh, LeakyReLU, ReLU, Sigmoid, SoftSign, Tanh
from .dropout import Dropout, keep_mask
from .embedding import Embedding, embedding_grad, renorm_rows_
from .window import WindowLookup
from .linear import Affine
from .losses import MaxMarginLoss, MultiClassMaxMarginLoss, SoftmaxCrossEntropy
from .crf import CRFNegLogLikelihood

__all__ = [
    "Sigmoid", "Tanh", "HardTanh", "SoftSign", "ReLU", "LeakyReLU",
    "Affine", "Dropout", "keep_mask", "Embedding", "embedding_grad", "renorm_rows_", "WindowLookup",
    "MaxMarginLoss", "MultiClassMaxMarginLoss", "SoftmaxCrossEntropy",
    "CRFNegLogLikelihood",
]

# The fused layers (cs224n_nn.autograd.layer): f(x W^T + b) with optional dropout, and the output layer + its loss.
from .layer import DenseCrossEntropy, DenseLayer, DenseMultiMargin  # noqa: E402

__all__ += ["DenseLayer", "DenseCrossEntropy", "DenseMultiMargin"]
