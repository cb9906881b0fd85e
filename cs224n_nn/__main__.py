"""``python -m cs224n_nn``: the ``cs224n-nn`` command."""

import sys

from cs224n_nn.cli import main

sys.exit(main())
