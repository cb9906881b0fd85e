"""The CoNLL reader/writer and the tag-scheme functions of cs224n_nn.ner.conll."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cs224n_nn.errors import CS224nError, DataFormatError
from cs224n_nn.ner.conll import (
    MAX_LINE_BYTES,
    SCHEMES,
    Sentence,
    convert_tags,
    detect_scheme,
    entity_types,
    iter_conll,
    parse_tag,
    read_conll,
    spans,
    write_conll,
)

FOUR_COLUMNS = """-DOCSTART- -X- O O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC
call NN I-NP O

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- O O

Museums NNS I-NP O
in IN I-PP O
Paris NNP I-NP I-LOC
"""


def write(tmp_path: Path, content: str | bytes, name: str = "x.conll") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def expect_error(path: Path, line: int | None, fragment: str) -> DataFormatError:
    with pytest.raises(DataFormatError) as info:
        read_conll(path)
    err = info.value
    assert err.path == str(path)
    assert err.line == line
    assert fragment in str(err)
    # The message the CLI prints names file and line.
    assert str(err).startswith(f"{path}:{line}:" if line is not None else f"{path}:")
    return err


# ---------------------------------------------------------------------------
# reading valid files


def test_four_columns_with_docstart(tmp_path):
    sentences = read_conll(write(tmp_path, FOUR_COLUMNS))
    assert sentences == [
        Sentence(("EU", "rejects", "German", "call"), ("I-ORG", "O", "I-MISC", "O")),
        Sentence(("Peter", "Blackburn"), ("I-PER", "I-PER")),
        Sentence(("Museums", "in", "Paris"), ("O", "O", "I-LOC")),
    ]


def test_two_columns_tabs_and_extra_spaces(tmp_path):
    text = "Museums\tO\nin  O\n  Paris\tB-LOC  \nare O\n\n\namazing O\n"
    assert read_conll(write(tmp_path, text)) == [
        Sentence(("Museums", "in", "Paris", "are"), ("O", "O", "B-LOC", "O")),
        Sentence(("amazing",), ("O",)),
    ]


def test_three_columns_take_the_last_as_tag(tmp_path):
    # conlleval's own input (TOKEN GOLD PRED) reads as the predictions.
    assert read_conll(write(tmp_path, "Paris I-LOC B-LOC\n")) == [Sentence(("Paris",), ("B-LOC",))]


def test_docstart_without_blank_line_still_splits_documents(tmp_path):
    text = "a O\n-DOCSTART- O\nb O\n"
    assert [s.tokens for s in read_conll(write(tmp_path, text))] == [("a",), ("b",)]


@pytest.mark.parametrize("ending", ["\n", "\r\n"])
def test_crlf_bom_and_trailing_blank_lines(tmp_path, ending):
    lf = FOUR_COLUMNS + "\n\n\n"
    data = b"\xef\xbb\xbf" + lf.replace("\n", ending).encode("utf-8")
    assert read_conll(write(tmp_path, data)) == read_conll(write(tmp_path, FOUR_COLUMNS, "plain.conll"))


def test_no_final_newline(tmp_path):
    assert read_conll(write(tmp_path, "Paris I-LOC")) == [Sentence(("Paris",), ("I-LOC",))]


def test_non_ascii_tokens(tmp_path):
    text = "Zürich I-LOC\nSão I-LOC\nPaulo I-LOC\n東京 I-LOC\na\u00a0b O\n"
    (sentence,) = read_conll(write(tmp_path, text))
    # A no-break space is part of a token, not a column separator.
    assert sentence.tokens == ("Zürich", "São", "Paulo", "東京", "a\u00a0b")


def test_latin1_by_name(tmp_path):
    path = write(tmp_path, "Zürich I-LOC\n".encode("latin-1"))
    assert read_conll(path, encoding="latin-1")[0].tokens == ("Zürich",)


def test_iter_conll_streams(tmp_path):
    path = write(tmp_path, FOUR_COLUMNS)
    stream = iter_conll(path)
    assert next(stream).tokens[0] == "EU"
    assert [s.tokens[0] for s in stream] == ["Peter", "Museums"]


def test_sentence_validates_lengths():
    with pytest.raises(ValueError, match="2 tokens but 1 tags"):
        Sentence(("a", "b"), ("O",))
    assert Sentence.unlabeled(["a", "b"]).tags == ("O", "O")
    assert len(Sentence(["a"], ["O"])) == 1


# ---------------------------------------------------------------------------
# every error names file and line


def test_one_column_line(tmp_path):
    expect_error(write(tmp_path, "a O\nb O\n\nlonely\n"), 4, "1 column")


def test_inconsistent_column_count(tmp_path):
    expect_error(write(tmp_path, "EU NNP I-NP I-ORG\nrejects O\n"), 2, "expected 4 columns")


@pytest.mark.parametrize("tag", ["PER", "B_PER", "X-PER", "B-", "o", "I-"])
def test_bad_tag(tmp_path, tag):
    expect_error(write(tmp_path, f"a O\n\nb {tag}\n"), 3, f"tag {tag!r}")


def test_not_utf8_reports_line_and_column(tmp_path):
    data = "a O\nb O\n".encode() + b"caf\xe9 O\n"
    err = expect_error(write(tmp_path, data), 3, "not valid utf-8")
    assert "0xe9 at column 4" in str(err)


@pytest.mark.parametrize("content", ["", "\n\n\n", "-DOCSTART- -X- O O\n\n", "\r\n"])
def test_empty_file(tmp_path, content):
    expect_error(write(tmp_path, content), None, "no sentences")


def test_missing_path(tmp_path):
    path = tmp_path / "nope.conll"
    with pytest.raises(DataFormatError, match="no such file") as info:
        iter_conll(path)  # checked at the call, before any iteration
    assert info.value.path == str(path)
    assert isinstance(info.value, CS224nError)


def test_directory_is_not_a_file(tmp_path):
    with pytest.raises(DataFormatError, match="not a regular file"):
        read_conll(tmp_path)


def test_giant_line(tmp_path):
    expect_error(write(tmp_path, b"a O\n" + b"x" * (MAX_LINE_BYTES + 10) + b" O\n"), 2, "longer than")


def test_line_just_under_the_cap_reads(tmp_path):
    token = "x" * (MAX_LINE_BYTES - 3)
    (sentence,) = read_conll(write(tmp_path, token + " O\n"))
    assert sentence.tokens == (token,)


def test_utf16_encoding_is_refused():
    with pytest.raises(ValueError, match="ASCII-compatible"):
        read_conll(Path(__file__), encoding="utf-16")


# ---------------------------------------------------------------------------
# the real CoNLL-2003 files


@pytest.mark.parametrize(
    "name, n_sentences, n_tokens", [("eng.train", 14041, 203621), ("eng.testa", 3250, 51362)]
)
def test_conll2003_counts(conll_dir, name, n_sentences, n_tokens):
    sentences = read_conll(conll_dir / name)
    assert len(sentences) == n_sentences
    assert sum(len(s) for s in sentences) == n_tokens
    assert entity_types(s.tags for s in sentences) == ["LOC", "MISC", "ORG", "PER"]
    assert detect_scheme(s.tags for s in sentences) == "IOB1"


def test_conll2003_entity_count_and_round_trip(conll_dir):
    sentences = read_conll(conll_dir / "eng.train")
    # Tjong Kim Sang and De Meulder (2003), table 2: eng.train holds 7140 LOC,
    # 3438 MISC, 6321 ORG and 6600 PER entities.
    counts = Counter(type_ for s in sentences for type_, _, _ in spans(s.tags))
    assert counts == {"LOC": 7140, "MISC": 3438, "ORG": 6321, "PER": 6600}
    for s in sentences[:3000]:
        for target in SCHEMES:
            again = convert_tags(convert_tags(s.tags, "IOB1", target), target, "IOB2")
            assert again == convert_tags(s.tags, "IOB1", "IOB2")


# ---------------------------------------------------------------------------
# writing


def test_write_then_read(tmp_path):
    sentences = read_conll(write(tmp_path, FOUR_COLUMNS))
    predictions = [["O"] * len(s) for s in sentences]
    out = tmp_path / "pred.txt"
    write_conll(out, sentences, predictions)
    text = out.read_text(encoding="utf-8")
    assert text.startswith("EU I-ORG O\nrejects O O\n")
    assert text.endswith("Paris I-LOC O\n\n")
    assert text.count("\n\n") == 3
    # The third column is what the reader takes as the tag.
    assert [s.tokens for s in read_conll(out)] == [s.tokens for s in sentences]


def test_write_to_a_stream_and_plain_tokens():
    buffer = io.StringIO()
    write_conll(buffer, [["Paris", "rocks"]], [["I-LOC", "O"]])
    assert buffer.getvalue() == "Paris O I-LOC\nrocks O O\n\n"


def test_write_validates():
    with pytest.raises(ValueError, match="1 sentences but 2"):
        write_conll(io.StringIO(), [["a"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="1 tokens but 2"):
        write_conll(io.StringIO(), [["a"]], [["O", "O"]])
    with pytest.raises(ValueError, match="whitespace"):
        write_conll(io.StringIO(), [["a b"]], [["O"]])


# ---------------------------------------------------------------------------
# tags and chunks


def test_parse_tag():
    assert parse_tag("O") == ("O", "")
    assert parse_tag("B-PER") == ("B", "PER")
    assert parse_tag("I-B-X") == ("I", "B-X")
    for bad in ["", "B", "B-", "O-PER", "B- X", None]:
        with pytest.raises(ValueError):
            parse_tag(bad)


@pytest.mark.parametrize(
    "tags, expected",
    [
        # IOB1: I- after O starts a chunk; B- separates touching chunks of one type.
        (["I-PER", "I-PER", "B-PER", "O"], [("PER", 0, 2), ("PER", 2, 3)]),
        # A change of type ends a chunk even without B-.
        (["I-ORG", "I-LOC", "I-LOC"], [("ORG", 0, 1), ("LOC", 1, 3)]),
        # IOB2 with a stray I-: conlleval counts it as an entity.
        (["O", "I-MISC", "O", "B-PER", "I-PER"], [("MISC", 1, 2), ("PER", 3, 5)]),
        (["B-LOC", "B-LOC"], [("LOC", 0, 1), ("LOC", 1, 2)]),
        (["B-LOC", "I-PER"], [("LOC", 0, 1), ("PER", 1, 2)]),
        ([], []),
        (["O", "O"], []),
    ],
)
def test_spans_conlleval_rules(tags, expected):
    assert spans(tags, "IOB1") == expected
    assert spans(tags, "IOB2") == expected


@pytest.mark.parametrize(
    "tags, expected",
    [
        (["S-PER", "S-PER"], [("PER", 0, 1), ("PER", 1, 2)]),
        (["B-ORG", "I-ORG", "E-ORG", "S-LOC"], [("ORG", 0, 3), ("LOC", 3, 4)]),
        (["B-ORG", "E-ORG", "E-ORG"], [("ORG", 0, 2), ("ORG", 2, 3)]),
        (["E-ORG", "I-ORG"], [("ORG", 0, 1), ("ORG", 1, 2)]),
    ],
)
def test_spans_iobes(tags, expected):
    assert spans(tags, "IOBES") == expected


def test_scheme_errors():
    with pytest.raises(ValueError, match="unknown tag scheme 'BILOU'"):
        spans(["O"], "BILOU")
    with pytest.raises(ValueError, match="unknown tag scheme 'iob'"):
        convert_tags(["O"], "IOB1", "iob")
    with pytest.raises(ValueError, match="not part of the IOB2 scheme"):
        spans(["S-PER"], "IOB2")


@pytest.mark.parametrize(
    "sequences, scheme",
    [
        ([["I-PER", "O"], ["O", "I-LOC", "B-LOC"]], "IOB1"),
        ([["B-PER", "O"], ["O", "B-LOC", "I-LOC"]], "IOB2"),
        ([["S-PER", "O"]], "IOBES"),
        ([["I-PER", "B-PER"]], "IOB1"),
        ([["O"]], "IOB2"),
        # One stray B- start among IOB1 starts (eng.train has two such) is still IOB1.
        ([["I-PER"], ["I-LOC"], ["B-ORG"]], "IOB1"),
    ],
)
def test_detect_scheme(sequences, scheme):
    assert detect_scheme(sequences) == scheme


def test_entity_types_flat_and_nested():
    assert entity_types(["O", "I-PER", "B-LOC"]) == ["LOC", "PER"]
    assert entity_types([["O", "I-PER"], ["S-ORG"]]) == ["ORG", "PER"]


# Hypothesis: sentences as chunk lists built WITHOUT the module, then encoded
# in each scheme by the definitions (written out here independently).

TYPES = ["PER", "ORG", "LOC", "MISC"]
chunk_lists = st.lists(
    st.tuples(st.integers(0, 2), st.sampled_from(TYPES), st.integers(1, 4)), max_size=8
)  # (gap of O tokens before, type, length)


def layout(chunks):
    """(type, start, end) of each chunk and the sentence length."""
    out, position = [], 0
    for gap, type_, length in chunks:
        position += gap
        out.append((type_, position, position + length))
        position += length
    return out, position


def encode_by_definition(chunks, scheme):
    located, n = layout(chunks)
    tags = ["O"] * n
    prev = None
    for type_, start, end in located:
        for i in range(start, end):
            tags[i] = f"I-{type_}"
        if scheme == "IOB2" or (scheme == "IOB1" and prev == (type_, start)):
            tags[start] = f"B-{type_}"
        if scheme == "IOBES":
            if end - start == 1:
                tags[start] = f"S-{type_}"
            else:
                tags[start], tags[end - 1] = f"B-{type_}", f"E-{type_}"
        prev = (type_, end)
    return tags


@settings(max_examples=300, deadline=None)
@given(chunk_lists, st.sampled_from(SCHEMES), st.sampled_from(SCHEMES))
def test_conversion_matches_definitions_and_round_trips(chunks, source, target):
    tags = encode_by_definition(chunks, source)
    assert spans(tags, source) == layout(chunks)[0]
    converted = convert_tags(tags, source, target)
    assert converted == encode_by_definition(chunks, target)
    assert convert_tags(converted, target, source) == tags


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]), max_size=12))
def test_any_iob_sequence_decodes_to_disjoint_ordered_chunks(tags):
    found = spans(tags, "IOB1")
    covered = [i for _, s, e in found for i in range(s, e)]
    assert covered == sorted(set(covered))
    assert {i for i, t in enumerate(tags) if t != "O"} == set(covered)
    # Re-encoding in IOB2 is a fixed point of conversion.
    iob2 = convert_tags(tags, "IOB1", "IOB2")
    assert spans(iob2, "IOB2") == found
    assert convert_tags(iob2, "IOB2", "IOB2") == iob2


def test_carriage_return_inside_a_line(tmp_path):
    expect_error(write(tmp_path, b"a O\r\nb O\rc O\n"), 2, "carriage return")


# ---------------------------------------------------------------------------
# the sample corpus that ships with the package

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "cs224n_nn" / "data"


def test_sample_corpus_is_what_the_generator_writes():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_sample_corpus", ROOT / "experiments" / "make_sample_corpus.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    for name, text in generator.build().items():
        assert (SAMPLE / name).read_text(encoding="utf-8") == text, f"{name} is stale: rerun the generator"


def test_sample_corpus_shape():
    train = read_conll(SAMPLE / "sample_train.conll")
    dev = read_conll(SAMPLE / "sample_dev.conll")
    assert 500 <= len(train) <= 800 and 150 <= len(dev) <= 200
    for sentences in (train, dev):
        assert detect_scheme(s.tags for s in sentences) == "IOB1"
        assert entity_types(s.tags for s in sentences) == ["LOC", "MISC", "ORG", "PER"]
    # Four columns everywhere (the reader enforces one count per file; check it is 4).
    lines = (SAMPLE / "sample_train.conll").read_text(encoding="utf-8").splitlines()
    assert len(next(line for line in lines if line and "DOCSTART" not in line).split()) == 4
    # The notes' sentence is not in the training file, but Paris is a LOC there.
    demo = ("Museums", "in", "Paris", "are", "amazing")
    assert not any(demo == s.tokens[i : i + 5] for s in train for i in range(len(s)))
    paris = {tag for s in train for tok, tag in zip(s.tokens, s.tags) if tok == "Paris"}
    assert paris == {"I-LOC"}
    assert any(s.tokens[:2] == ("Museums", "in") for s in train)
    # Dev names that training never shows, so the score measures generalisation.
    train_names = {s.tokens[a:b] for s in train for _, a, b in spans(s.tags)}
    dev_names = [s.tokens[a:b] for s in dev for _, a, b in spans(s.tags)]
    unseen = sum(name not in train_names for name in dev_names)
    assert unseen > len(dev_names) / 4
