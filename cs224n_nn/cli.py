"""The ``cs224n-nn`` command (also ``python -m cs224n_nn.cli``).

Each subcommand lives beside the code it drives as a function
``(argv: list[str]) -> int``; this module only dispatches, so that
``cs224n-nn gradcheck`` never imports Lightning and every subcommand owns its
own arguments (``train`` follows Lightning's CLI conventions).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from cs224n_nn.errors import CS224nError

# name -> ("module:function" taking argv and returning an exit code, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("cs224n_nn.ner.commands:train", "train the window NER model from a YAML config"),
    "evaluate": ("cs224n_nn.ner.commands:evaluate", "entity P/R/F1 of a checkpoint on a CoNLL file"),
    "predict": ("cs224n_nn.ner.commands:predict", "tag text, stdin lines or a CoNLL file with a checkpoint"),
    "gradcheck": ("cs224n_nn.gradcheck:main", "check every hand-written backward; print a report"),
    "bench": ("benchmarks.run:main", "measure cs224n-nn against native PyTorch (quick run)"),
    "experiment": ("experiments.run:main", "run one of the experiments that reproduce the notes' claims"),
}


def _usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    lines = ["usage: cs224n-nn COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines += ["", "Run `cs224n-nn COMMAND --help` for the options of one command."]
    return "\n".join(lines)


def _repo_root_on_path() -> None:
    """Let ``bench`` and ``experiment`` import the repo's top-level folders.

    ``benchmarks/`` and ``experiments/`` are not installed packages (they are
    tools of the source tree), so a console script started from anywhere
    finds them through the checkout that the editable install points at.
    """
    root = Path(__file__).resolve().parents[1]
    if ((root / "benchmarks").is_dir() or (root / "experiments").is_dir()) and str(root) not in sys.path:
        sys.path.insert(0, str(root))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"cs224n-nn: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, function = SUBCOMMANDS[name][0].split(":")
    if not module_name.startswith("cs224n_nn."):
        _repo_root_on_path()
    entry = getattr(importlib.import_module(module_name), function)
    try:
        return int(entry(rest) or 0)
    except CS224nError as err:
        print(f"cs224n-nn {name}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"cs224n-nn {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
