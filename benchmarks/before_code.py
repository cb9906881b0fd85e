"""The package as it was at an earlier commit, importable beside today's, to time the two in one process.

Why: the before column of BENCHMARKS.md compares today's ratio with one
measured in another run, hours or days earlier. On this project's shared
2-core machine a Python-bound row moves by 10-20% between two such runs
with the same code, so a row can land on the "worse than before" list
without any change in the code. Timing today's piece against the same
piece at the before commit, alternately in one process (the method of
:mod:`benchmarks._timing`), answers the question directly: a ratio of
about 1 says the two report runs differ, not the code.

:func:`load` extracts ``cs224n_nn/`` of a commit (``git archive``) into a
temporary folder under the name :data:`NAME` (every ``cs224n_nn`` in its
sources renamed, so that its absolute imports stay inside the old copy) and
imports it. Only the benchmark groups that say how to build their piece
from either package offer a re-check (``recheck_case(piece, setting,
before)`` in the group's module; today: the optimizers, the only rows on
the list that no semantic fix of the old piece explains).
"""

from __future__ import annotations

import atexit
import importlib
import io
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from types import ModuleType

#: The module name the earlier package is imported under.
NAME = "cs224n_nn_before"


def commit_of(stem: str, repo: Path) -> str | None:
    """The full commit ``stem`` names in ``repo`` (a report's file stem, e.g. ``a5b2e59``), or None
    (also when ``repo`` is not a git checkout or git is missing)."""
    if not re.fullmatch(r"[0-9a-f]{7,40}", stem):
        return None
    try:
        found = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{stem}^{{commit}}"],
                               capture_output=True, text=True)
    except OSError:  # no git on this machine: there is no commit to name
        return None
    if found.returncode != 0:
        return None
    return found.stdout.strip() or None


def load(commit: str, repo: Path) -> ModuleType:
    """Import ``cs224n_nn`` as it was at ``commit`` of ``repo``, as the package :data:`NAME`.

    One commit per process: a second call with another commit raises.
    """
    loaded = sys.modules.get(NAME)
    if loaded is not None:
        if getattr(loaded, "__before_commit__", None) != commit:
            raise RuntimeError(f"{NAME} is already loaded from {loaded.__before_commit__}, not {commit}")
        return loaded
    archive = subprocess.run(["git", "-C", str(repo), "archive", commit, "cs224n_nn"],
                             capture_output=True, check=True).stdout
    folder = Path(tempfile.mkdtemp(prefix="cs224n-nn-before-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    package = folder / NAME
    (folder / "cs224n_nn").rename(package)
    for source in package.rglob("*.py"):
        # \b keeps names that only start with it (cs224n_nn_before itself) intact.
        source.write_text(re.sub(r"\bcs224n_nn\b", NAME, source.read_text(encoding="utf-8")), encoding="utf-8")
    sys.path.insert(0, str(folder))
    module = importlib.import_module(NAME)
    module.__before_commit__ = commit
    return module
