"""Training configurations shipped with the package, named by keyword.

``cs224n-nn train --config sample`` (the small corpus in ``cs224n_nn/data``)
and ``--config conll2003`` (CoNLL-2003 English, read from
``../shared/data/conll2003/`` relative to the working directory) name the
YAML files of this folder; any other value of ``--config`` is a path.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CONFIGS", "resolve_config"]

FOLDER = Path(__file__).resolve().parent
CONFIGS = {path.stem: path for path in sorted(FOLDER.glob("*.yaml"))}


def resolve_config(value: str) -> str:
    """The shipped config's path for a keyword (``sample``, ``conll2003``); any other value unchanged."""
    return str(CONFIGS[value]) if value in CONFIGS else value
