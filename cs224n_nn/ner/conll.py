"""CoNLL files and entity tag schemes.

The notes' running example ("Museums in Paris are amazing", section on
window classification) labels each word with whether it is a named entity.
CoNLL-2003 stores such labels one token per line::

    -DOCSTART- -X- O O          <- document marker, skipped

    EU NNP I-NP I-ORG           <- TOKEN POS CHUNK NER
    rejects VBZ I-VP O
                                <- a blank line ends the sentence

Reading (:func:`read_conll`, :func:`iter_conll`)
    * The token is the first column and the tag the last, so 4-column
      CoNLL-2003 files, 2-column ``TOKEN TAG`` files and 3-column files all
      read; every non-blank line of one file must have the same number of
      columns (at least two).  Columns are separated by spaces or tabs only,
      so a token may hold any other character (a no-break space, say).
    * ``-DOCSTART-`` lines are skipped and end the current sentence; blank
      lines end sentences; runs of blank lines never make empty sentences.
    * Files are UTF-8 (a leading byte-order mark is ignored) with ``\\n`` or
      ``\\r\\n`` line ends (a ``\\r`` inside a line is an error).  Another
      ASCII-compatible encoding (latin-1, cp1252) can be named with
      ``encoding=``.
    * Every problem is a :class:`~cs224n_nn.errors.DataFormatError` naming
      the file and, where there is one, the line: a line with one column or
      a column count that differs from the file's first line, a tag that is
      not ``O``/``B-X``/``I-X``/``E-X``/``S-X``, bytes that do not decode
      (with the column of the first bad byte), a stray ``\\r``, a line longer than
      :data:`MAX_LINE_BYTES`, a file with no sentence, and a path that does
      not exist or is not a file.  A missing path is a ``DataFormatError``
      too (not ``FileNotFoundError``), so the command line reports every
      unreadable input the same way: as one line, exit status 1.

Tag schemes (:data:`SCHEMES`)
    ``IOB1`` (CoNLL-2003's own): ``I-X`` marks tokens inside an entity of
    type X; ``B-X`` appears only where an entity starts right after another
    entity of the same type.  ``IOB2``: every entity starts with ``B-X``.
    ``IOBES``: ``S-X`` is a one-token entity, ``B-X``/``I-X``/``E-X`` its
    begin, inside and end tokens.

Chunks (:func:`spans`) follow conlleval, the scorer of the CoNLL shared
tasks: a chunk starts at ``B-X``, and also at an ``I-X`` that follows ``O``,
the sentence start or a token of another type (so a stray ``I-X`` in IOB2
input counts as an entity, as conlleval counts it); it ends before ``O``,
``B``, or a change of type.  For IOBES the same rules apply with ``S-X``
starting and ending a chunk and ``E-X`` ending one.  With these rules IOB1
and IOB2 text decode identically, which is why one scorer serves both.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from os import PathLike
from typing import TextIO

from cs224n_nn.errors import ConfigError, DataFormatError

__all__ = [
    "MAX_LINE_BYTES",
    "SCHEMES",
    "Sentence",
    "convert_tags",
    "detect_scheme",
    "entity_types",
    "iter_conll",
    "iter_text_lines",
    "parse_tag",
    "read_conll",
    "spans",
    "write_conll",
]

SCHEMES = ("IOB1", "IOB2", "IOBES")
DOCSTART = "-DOCSTART-"
# Bytes per line, line end included.  No real token comes near this; the cap
# keeps a corrupt file without line breaks from being pulled into memory whole.
MAX_LINE_BYTES = 1 << 20

_COLUMN_SEP = re.compile(r"[ \t]+")
_TAG = re.compile(r"(?:O|([BIES])-(\S+))\Z")


@dataclass(frozen=True)
class Sentence:
    """One sentence: its tokens and one tag per token (``"O"`` when unlabeled)."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    # The file line of each token (empty for text that did not come from a file),
    # so that a bad tag found later is reported where the user can fix it.
    lines: tuple[int, ...] = field(default=(), compare=False, repr=False)
    # Which document of its file the sentence belongs to (-DOCSTART- lines
    # count them, from 0), so that a training split can be cut into folds of
    # whole documents (the gazetteer feature, cs224n_nn.ner.gazetteer).
    document: int = field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Accept lists for convenience but store tuples, so a Sentence stays hashable.
        object.__setattr__(self, "tokens", tuple(self.tokens))
        object.__setattr__(self, "tags", tuple(self.tags))
        object.__setattr__(self, "lines", tuple(self.lines))
        if len(self.tokens) != len(self.tags):
            raise ValueError(f"Sentence has {len(self.tokens)} tokens but {len(self.tags)} tags")

    @classmethod
    def unlabeled(cls, tokens: Iterable[str]) -> Sentence:
        """A sentence of raw text: every tag is ``"O"``."""
        tokens = tuple(tokens)
        return cls(tokens, ("O",) * len(tokens))

    def __len__(self) -> int:
        return len(self.tokens)


# ---------------------------------------------------------------------------
# reading


def iter_text_lines(path: str | PathLike, *, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for each line of ``path``, without its line end.

    Lines are decoded one by one so that a byte that does not decode is
    reported with its line (a text-mode file decodes in blocks and loses the
    line).  Raises :class:`DataFormatError` for a missing path, a directory,
    an undecodable line or one longer than :data:`MAX_LINE_BYTES`.  Shared by
    the CoNLL reader and the word-vector loader.
    """
    _check_encoding(encoding)
    _check_readable(path)
    strip_bom = encoding.lower().replace("_", "-") in ("utf-8", "utf8", "utf-8-sig")
    try:
        f = open(path, "rb")
    except OSError as e:  # removed or locked since the check above
        raise DataFormatError(f"cannot open: {e.strerror}", path=path) from None
    with f:
        for number, raw in enumerate(iter(lambda: f.readline(MAX_LINE_BYTES + 1), b""), start=1):
            if len(raw) > MAX_LINE_BYTES:
                raise DataFormatError(f"line longer than {MAX_LINE_BYTES} bytes", path=path, line=number)
            if number == 1 and strip_bom and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as e:
                raise DataFormatError(
                    f"not valid {encoding}: byte 0x{raw[e.start]:02x} at column {e.start + 1}",
                    path=path,
                    line=number,
                ) from None
            yield number, text.rstrip("\r\n")


def _check_encoding(encoding: str) -> None:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ConfigError(f"unknown encoding {encoding!r}") from None
    # Lines are split on the byte 0x0a, which only works for these encodings.
    if "\n".encode(encoding, errors="replace") != b"\n":
        raise ConfigError(f"encoding {encoding!r} is not ASCII-compatible; convert the file to UTF-8")


def _check_readable(path: str | PathLike) -> None:
    if not os.path.exists(path):
        raise DataFormatError("no such file", path=path)
    if not os.path.isfile(path):
        raise DataFormatError("not a regular file", path=path)
    if not os.access(path, os.R_OK):
        raise DataFormatError("permission denied", path=path)


def iter_conll(path: str | PathLike, *, encoding: str = "utf-8") -> Iterator[Sentence]:
    """Stream the sentences of a CoNLL file (see the module docstring for the format).

    The path is checked when this is called; the file is read as the
    sentences are consumed, so a file of any size streams in bounded memory.
    """
    _check_encoding(encoding)
    _check_readable(path)
    return _sentences(path, encoding)


def _sentences(path: str | PathLike, encoding: str) -> Iterator[Sentence]:
    tokens: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    n_columns = None  # fixed by the first token line, then enforced
    n_sentences = 0
    document = -1  # the number of -DOCSTART- lines read, minus one (0 when the file has none)
    for number, text in iter_text_lines(path, encoding=encoding):
        line = text.strip(" \t\r")
        if "\r" in line:
            # Old Mac line ends, or a corrupt line: either way the columns are unreliable.
            raise DataFormatError(
                "carriage return (\\r) inside a line; line ends must be \\n or \\r\\n", path=path, line=number
            )
        columns = _COLUMN_SEP.split(line) if line else []
        if not columns or columns[0] == DOCSTART:
            if tokens:
                yield Sentence(tuple(tokens), tuple(tags), tuple(lines), max(document, 0))
                n_sentences += 1
                tokens, tags, lines = [], [], []
            if columns:
                document += 1
            continue
        if len(columns) < 2:
            raise DataFormatError(
                f"expected TOKEN ... TAG (at least 2 columns), got 1 column: {_clip(line)!r}",
                path=path,
                line=number,
            )
        if n_columns is None:
            n_columns = len(columns)
        elif len(columns) != n_columns:
            raise DataFormatError(
                f"expected {n_columns} columns like the file's first token line, got {len(columns)}: {_clip(line)!r}",
                path=path,
                line=number,
            )
        tag = columns[-1]
        if _TAG.match(tag) is None:
            raise DataFormatError(
                f"tag {_clip(tag)!r} is not O, B-X, I-X, E-X or S-X", path=path, line=number
            )
        tokens.append(columns[0])
        tags.append(tag)
        lines.append(number)
    if tokens:
        yield Sentence(tuple(tokens), tuple(tags), tuple(lines), max(document, 0))
        n_sentences += 1
    if n_sentences == 0:
        raise DataFormatError("no sentences (the file is empty or holds only blank and -DOCSTART- lines)", path=path)


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def read_conll(path: str | PathLike, *, encoding: str = "utf-8") -> list[Sentence]:
    """Read every sentence of a CoNLL file into a list (see :func:`iter_conll`)."""
    return list(iter_conll(path, encoding=encoding))


# ---------------------------------------------------------------------------
# writing


def write_conll(
    path_or_file: str | PathLike | TextIO,
    sentences: Iterable[Sentence | Sequence[str]],
    predictions: Iterable[Sequence[str]],
) -> None:
    """Write ``TOKEN GOLD PRED`` lines, a blank line after each sentence.

    This is the input format of conlleval and of most outside scorers.
    ``sentences`` are :class:`Sentence` objects (gold = their tags) or plain
    token sequences (gold written as ``O``); ``predictions`` holds one tag
    sequence per sentence.  A path is written as UTF-8 with ``\\n`` line ends,
    through a temporary file renamed into place (an existing file is replaced
    only once the whole output is written).
    """
    if isinstance(path_or_file, (str, PathLike)):
        from cs224n_nn.ner.atomic import atomic_write

        with atomic_write(path_or_file, "w", encoding="utf-8", newline="\n") as f:
            _write_conll(f, sentences, predictions)
    else:
        _write_conll(path_or_file, sentences, predictions)


def _write_conll(f: TextIO, sentences, predictions) -> None:
    sentences, predictions = list(sentences), list(predictions)
    if len(sentences) != len(predictions):
        raise ValueError(f"{len(sentences)} sentences but {len(predictions)} prediction sequences")
    for i, (sentence, predicted) in enumerate(zip(sentences, predictions)):
        if not isinstance(sentence, Sentence):
            sentence = Sentence.unlabeled(sentence)
        if len(predicted) != len(sentence):
            raise ValueError(f"sentence {i} has {len(sentence)} tokens but {len(predicted)} predicted tags")
        for token, gold, pred in zip(sentence.tokens, sentence.tags, predicted):
            # A separator inside a token would shift the columns for the reader.
            if not token or _COLUMN_SEP.search(token) or "\n" in token or "\r" in token:
                raise ValueError(f"sentence {i}: token {token!r} is empty or contains whitespace")
            f.write(f"{token} {gold} {pred}\n")
        f.write("\n")


# ---------------------------------------------------------------------------
# tag schemes


def parse_tag(tag: str) -> tuple[str, str]:
    """Split a tag into ``(prefix, type)``: ``"B-PER" -> ("B", "PER")``, ``"O" -> ("O", "")``.

    Raises ValueError for anything but ``O`` and ``B-/I-/E-/S-`` plus a
    non-empty type without whitespace.
    """
    m = _TAG.match(tag) if isinstance(tag, str) else None
    if m is None:
        raise ValueError(f"tag {tag!r} is not O, B-X, I-X, E-X or S-X")
    return (m.group(1), m.group(2)) if m.group(1) else ("O", "")


def _check_scheme(scheme: str) -> str:
    if scheme not in SCHEMES:
        raise ValueError(f"unknown tag scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    return scheme


def spans(tags: Sequence[str], scheme: str = "IOB1") -> list[tuple[str, int, int]]:
    """The entities of one sentence as ``(type, start, end)``, ``end`` exclusive.

    conlleval's chunk rules (module docstring).  ``E-``/``S-`` tags are only
    allowed when ``scheme == "IOBES"``; IOB1 and IOB2 decode the same way.

    >>> spans(["I-ORG", "O", "I-MISC", "O", "I-PER", "B-PER"])
    [('ORG', 0, 1), ('MISC', 2, 3), ('PER', 4, 5), ('PER', 5, 6)]
    """
    _check_scheme(scheme)
    result: list[tuple[str, int, int]] = []
    prev_prefix, prev_type = "O", ""
    start = None
    for i, tag in enumerate(tags):
        prefix, type_ = parse_tag(tag)
        if prefix in ("E", "S") and scheme != "IOBES":
            raise ValueError(f"tag {tag!r} at position {i} is not part of the {scheme} scheme")
        # Does the chunk that was open end before this token?
        if start is not None and (
            prefix in ("O", "B", "S") or prev_prefix in ("E", "S") or type_ != prev_type
        ):
            result.append((prev_type, start, i))
            start = None
        # Does a chunk begin at this token?  (I-/E- continue one when open.)
        if prefix != "O" and start is None:
            start = i
        prev_prefix, prev_type = prefix, type_
    if start is not None:
        result.append((prev_type, start, len(tags)))
    return result


def _encode(chunks: Sequence[tuple[str, int, int]], length: int, scheme: str) -> list[str]:
    tags = ["O"] * length
    prev_end, prev_type = -1, None
    for type_, start, end in chunks:
        if scheme == "IOBES":
            if end - start == 1:
                tags[start] = f"S-{type_}"
            else:
                tags[start] = f"B-{type_}"
                tags[start + 1 : end - 1] = [f"I-{type_}"] * (end - start - 2)
                tags[end - 1] = f"E-{type_}"
        else:
            # IOB1 marks a start with B- only where it touches a chunk of the same type.
            touching = start == prev_end and type_ == prev_type
            first = "B" if scheme == "IOB2" or touching else "I"
            tags[start] = f"{first}-{type_}"
            tags[start + 1 : end] = [f"I-{type_}"] * (end - start - 1)
        prev_end, prev_type = end, type_
    return tags


def convert_tags(tags: Sequence[str], source: str, target: str) -> list[str]:
    """Rewrite one sentence's tags from scheme ``source`` to scheme ``target``.

    Decodes the chunks with :func:`spans` and encodes them again, so round
    trips are exact for valid input; invalid input (a stray ``I-X`` in IOB2)
    is read the way conlleval reads it.  Unknown scheme names raise ValueError.
    """
    _check_scheme(target)
    return _encode(spans(tags, source), len(tags), target)


def detect_scheme(tag_sequences: Iterable[Sequence[str]]) -> str:
    """Guess the scheme of labeled data from how its entities start.

    ``IOBES`` if any ``E-``/``S-`` tag occurs.  Otherwise count the entities
    that start with ``I-`` (after ``O``, the sentence start, or another type)
    and those that start with ``B-`` there: more ``I-`` starts means
    ``IOB1``, more ``B-`` starts ``IOB2``.  Counting rather than demanding
    purity matters: eng.train (IOB1) has two entities that start with
    ``B-``.  Data with no entity start of either kind is ``IOB1`` when it
    has a ``B-`` between touching entities, else ``IOB2``.
    """
    i_starts = b_starts = 0
    b_between = False
    for tags in tag_sequences:
        prev_prefix, prev_type = "O", ""
        for tag in tags:
            prefix, type_ = parse_tag(tag)
            if prefix in ("E", "S"):
                return "IOBES"
            fresh = prev_prefix == "O" or prev_type != type_
            if prefix == "I" and fresh:
                i_starts += 1
            elif prefix == "B":
                if fresh:
                    b_starts += 1
                else:
                    b_between = True
            prev_prefix, prev_type = prefix, type_
    if i_starts > b_starts or (i_starts == b_starts == 0 and b_between):
        return "IOB1"
    return "IOB2"


def entity_types(tags: Iterable[str | Sequence[str]]) -> list[str]:
    """The sorted entity types named by some tags (a flat list or a list of sentences).

    >>> entity_types(["O", "B-PER", "I-LOC", "I-PER"])
    ['LOC', 'PER']
    """
    found: set[str] = set()
    for item in tags:
        for tag in (item,) if isinstance(item, str) else item:
            prefix, type_ = parse_tag(tag)
            if prefix != "O":
                found.add(type_)
    return sorted(found)
