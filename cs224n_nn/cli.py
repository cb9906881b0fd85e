"""The ``cs224n-nn`` command (also ``python -m cs224n_nn`` and ``python -m cs224n_nn.cli``).

Each subcommand lives beside the code it drives as a function
``(argv: list[str]) -> int``; this module only dispatches, so that
``cs224n-nn gradcheck`` never imports Lightning and every subcommand owns its
own arguments (``train`` follows Lightning's CLI conventions).
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from pathlib import Path

from cs224n_nn.errors import CS224nError

# name -> ("module:function" taking argv and returning an exit code, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("cs224n_nn.ner.commands:train", "train the window NER model from a YAML config"),
    "evaluate": ("cs224n_nn.ner.commands:evaluate", "entity P/R/F1 of a checkpoint on a CoNLL file"),
    "predict": ("cs224n_nn.ner.commands:predict", "tag text, stdin lines or a CoNLL file with a checkpoint"),
    "plot": ("cs224n_nn.ner.plots:main", "draw a run's training loss and dev P/R/F1 per epoch (curves.png)"),
    "gradcheck": ("cs224n_nn.gradcheck:main", "check every hand-written backward; print a report"),
    "bench": ("benchmarks.run:main", "measure cs224n-nn against native PyTorch (quick run; source tree only)"),
    "experiment": ("experiments.run:main",
                   "run one of the experiments that reproduce the notes' claims (source tree only)"),
}
# Tools of the source tree: benchmarks/ and experiments/ are not installed by `pip install .`.
SOURCE_TREE_ONLY = {"bench": "benchmarks", "experiment": "experiments"}
# The checkout an editable install points at (site-packages after a plain `pip install .`).
SOURCE_ROOT = Path(__file__).resolve().parents[1]


def _usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    lines = ["usage: cs224n-nn COMMAND [options]    (or: python -m cs224n_nn COMMAND)", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines += ["", "`bench` and `experiment` run from a checkout of the repository (they use its benchmarks/ and",
              "experiments/ folders); the other commands work from any installation.",
              "Run `cs224n-nn COMMAND --help` for the options of one command; `cs224n-nn --version`."]
    return "\n".join(lines)


def _repo_root_on_path(folder: str) -> bool:
    """Let ``bench`` and ``experiment`` import the repo's top-level ``folder``; False outside a checkout.

    ``benchmarks/`` and ``experiments/`` are not installed packages (they are
    tools of the source tree), so a console script started from anywhere
    finds them through the checkout that the editable install points at.
    """
    root = SOURCE_ROOT
    if not (root / folder / "__init__.py").is_file():
        return False
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return True


def _one_line_warnings(command: str) -> None:
    """Print the warnings cs224n-nn itself raises as one line each, like its errors."""
    original = warnings.formatwarning
    ours = os.sep + "cs224n_nn" + os.sep

    def formatwarning(message, category, filename, lineno, line=None):
        if ours in filename:
            return f"cs224n-nn {command}: warning: {message}\n"
        return original(message, category, filename, lineno, line)

    warnings.formatwarning = formatwarning


def _version() -> str:
    from cs224n_nn import __version__

    return f"cs224n-nn {__version__}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(_version())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"cs224n-nn: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, function = SUBCOMMANDS[name][0].split(":")
    if name in SOURCE_TREE_ONLY and not _repo_root_on_path(SOURCE_TREE_ONLY[name]):
        print(f"cs224n-nn {name}: error: a tool of the source tree: run it from a checkout of the repository "
              f"(its {SOURCE_TREE_ONLY[name]}/ folder is not installed by pip)", file=sys.stderr)
        return 2
    entry = getattr(importlib.import_module(module_name), function)
    _one_line_warnings(name)
    try:
        return int(entry(rest) or 0)
    except CS224nError as err:
        print(f"cs224n-nn {name}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"cs224n-nn {name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `cs224n-nn predict ... | head`: the reader left; not an error of ours
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
