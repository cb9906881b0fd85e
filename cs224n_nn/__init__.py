"""cs224n-nn: the CS224n notes on neural networks and backpropagation as
hand-written, gradient-checked PyTorch pieces.

Subpackages are imported lazily by the user (``import cs224n_nn.nn``) so
that importing the package does not pull in Lightning.
"""

__version__ = "0.1.0"
