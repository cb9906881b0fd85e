"""``python -m cs224n_nn.gradcheck``: the same as ``cs224n-nn gradcheck``."""

import sys

from .cli import main

sys.exit(main())
