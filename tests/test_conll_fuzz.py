"""Hostile input for the CoNLL reader (issue 7, item 4).

Whatever the bytes, ``read_conll`` either returns sentences that obey the
format's rules or raises the project's DataFormatError naming the file and
(for line faults) a line that exists; never any other exception.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cs224n_nn.errors import DataFormatError
from cs224n_nn.ner.conll import MAX_LINE_BYTES, Sentence, read_conll

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TAG = re.compile(r"O|[BIES]-\S+")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "input.conll"


def parse_or_error(path, data: bytes, encoding="utf-8"):
    """Read ``data`` from ``path``; check whichever outcome against the rules; return it."""
    path.write_bytes(data)
    n_lines = data.count(b"\n") + 1
    try:
        sentences = read_conll(path, encoding=encoding)
    except DataFormatError as err:
        assert err.path == str(path)
        assert err.line is None or 1 <= err.line <= n_lines
        assert str(err).startswith(str(path))
        return err
    assert sentences, "a successful read has at least one sentence"
    for s in sentences:
        assert isinstance(s, Sentence) and len(s) > 0
        for token, tag in zip(s.tokens, s.tags):
            assert token and not re.search(r"[ \t\r\n]", token)
            assert TAG.fullmatch(tag)
            assert token != "-DOCSTART-"
    return sentences


def first_undecodable_line(data: bytes, encoding="utf-8") -> int | None:
    lines = data.split(b"\n")
    if lines[0].startswith(b"\xef\xbb\xbf"):
        lines[0] = lines[0][3:]
    for number, raw in enumerate(lines, start=1):
        try:
            raw.decode(encoding)
        except UnicodeDecodeError:
            return number
    return None


@FUZZ
@given(st.binary(max_size=400))
@example(b"\xff\xfe")
@example(b"\xef\xbb\xbf")
@example(b"a O\n\x00 O\n")
@example(b"\r\r\r")
def test_random_bytes(scratch, data):
    parse_or_error(scratch, data)


@FUZZ
@given(st.binary(max_size=300))
def test_undecodable_bytes_are_reported_on_their_line(scratch, data):
    # Lines before the bad one are valid, so only decoding can fail first.
    prefix = b"Paris I-LOC\nis O\n\n"
    outcome = parse_or_error(scratch, prefix + data)
    bad = first_undecodable_line(prefix + data)
    if bad is not None:
        assert isinstance(outcome, DataFormatError)
        if "not valid" in outcome.reason:
            assert outcome.line == bad
        else:
            assert outcome.line < bad


pieces = st.sampled_from(
    ["Paris", "O", "I-LOC", "B-PER", "E-ORG", "S-MISC", "X-Y", "-DOCSTART-", "-X-", "NNP", "I-NP",
     "é", "東京", "\u00a0", "\u2028", "\x0b", "\x1c", "\x85", "", "B-", "O-O", "I--", "\\", '"', "#"]
)
separators = st.sampled_from([" ", "\t", "  ", " \t ", "\r"])
lines = st.lists(pieces, max_size=6).flatmap(
    lambda words: st.lists(separators, min_size=max(len(words) - 1, 0), max_size=max(len(words) - 1, 0)).map(
        lambda seps: "".join(w + s for w, s in zip(words, [*seps, ""]))
    )
)


@FUZZ
@given(st.lists(lines, max_size=25), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_random_lines(scratch, text_lines, newline, bom):
    data = newline.join(text_lines).encode("utf-8")
    parse_or_error(scratch, (b"\xef\xbb\xbf" if bom else b"") + data)


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.text(st.characters(blacklist_categories=("Cs",)), max_size=8),
            st.sampled_from(["utf-8", "latin-1", "cp1252", "utf-16", "shift_jis", "koi8-r"]),
        ),
        max_size=10,
    ),
    st.sampled_from(["utf-8", "latin-1"]),
)
def test_mixed_encodings(scratch, parts, read_as):
    data = b""
    for text, encoding in parts:
        data += (text + " O\n").encode(encoding, errors="replace")
    outcome = parse_or_error(scratch, data, encoding=read_as)
    if read_as == "latin-1":
        # Every byte is a latin-1 character: failures can only be about the format.
        assert not (isinstance(outcome, DataFormatError) and "not valid" in outcome.reason)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from([MAX_LINE_BYTES - 2, MAX_LINE_BYTES - 1, MAX_LINE_BYTES, MAX_LINE_BYTES + 1, 3 * MAX_LINE_BYTES]),
    st.sampled_from([b"x", b"\xc3\xa9", b" ", b"\xff"]),
    st.booleans(),
)
def test_giant_lines(scratch, size, unit, newline):
    body = (unit * (size // len(unit) + 1))[:size]
    data = b"a O\n" + body + (b"\n" if newline else b"") + b"b O\n"
    outcome = parse_or_error(scratch, data)
    if len(body) + int(newline) > MAX_LINE_BYTES:
        assert isinstance(outcome, DataFormatError) and outcome.line == 2


# A generator of VALID files: whatever layout is chosen, the sentences come back.

tokens = st.text(
    st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1, max_size=6
).filter(lambda t: t != "-DOCSTART-")
tags = st.sampled_from(["O", "I-PER", "B-LOC", "E-ORG", "S-MISC", "I-X_Y"])
sentences = st.lists(st.lists(st.tuples(tokens, tags), min_size=1, max_size=6), min_size=1, max_size=6)


@FUZZ
@given(
    sentences,
    st.sampled_from([2, 3, 4]),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
    st.lists(st.integers(1, 3), min_size=6, max_size=6),
    st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_valid_layouts_round_trip(scratch, sents, n_columns, newline, bom, gaps, docstarts):
    out = []
    for i, sentence in enumerate(sents):
        if docstarts[i]:
            out += ["-DOCSTART- -X- O O" if n_columns == 4 else "-DOCSTART- O", ""]
        for token, tag in sentence:
            out.append(" ".join([token, *["NNP"] * (n_columns - 2), tag]))
        out += [""] * gaps[i]
    data = (b"\xef\xbb\xbf" if bom else b"") + newline.join(out).encode("utf-8")
    result = parse_or_error(scratch, data)
    expected = [Sentence(tuple(t for t, _ in s), tuple(g for _, g in s)) for s in sents]
    assert result == expected
