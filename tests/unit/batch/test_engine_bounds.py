"""The engine's byte bounds (score_text): over-long records, too-wide rows, byte chunks.

A data record over max_line_bytes (UTF-8 bytes, its final line break not counted) is one
row error whose raw cell holds at most RAW_EXCERPT characters, and reading goes on at the
next line; a header over the limit or wider than max_columns rejects the file; a data
row wider than max_columns is a row error with its raw text whole; a chunk is flushed at
chunk_rows records or chunk_bytes characters of text. Small limits are passed explicitly
so that multi-megabyte lines stay cheap.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from model_store.batch.engine import (
    DEFAULT_MAX_COLUMNS,
    DEFAULT_MAX_LINE_BYTES,
    RAW_EXCERPT,
    FileRejected,
    Tally,
    score_text,
)
from model_store.gate import LoadedModel
from tests.support.batch_files import ERRORS_HEADER, FEATURES, OUTPUT_COLUMNS, csv_text, iris_table

PLAIN_HEADER = ["id", *FEATURES]
GOOD_ROWS = ["a,5.1,3.5,1.4,0.2", "b,6.3,2.9,5.6,1.8", "c,5.9,3.0,4.2,1.5"]
LIMIT = 1_000
BIG = 3_000_000  # characters of an over-long line: far past every limit and excerpt
# UTF-8 widths 1 to 4 bytes: the limit counts bytes, not characters.
WIDE_CHARS = ["a", "é", "€", "😀"]


class Recorder:
    """A Sink that keeps each write apart: the engine writes once per flushed chunk."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def commit(self) -> None:
        pass

    def abort(self) -> None:
        pass

    @property
    def text(self) -> str:
        return b"".join(self.writes).decode()


@dataclass
class Scored:
    tally: Tally
    predictions: Recorder
    errors: Recorder

    def rows(self) -> list[list[str]]:
        """The predictions as parsed CSV, header first."""
        return list(csv.reader(io.StringIO(self.predictions.text, newline="")))

    def scored_lines(self) -> list[int]:
        return [int(row[-1]) for row in self.rows()[1:]]

    def error_rows(self) -> list[dict[str, str]]:
        text = self.errors.text
        assert text.startswith(ERRORS_HEADER)
        return list(csv.DictReader(io.StringIO(text, newline="")))


def _text(content: str | bytes) -> io.TextIOWrapper:
    """CONTENT as the engine gets a file: UTF-8 decoded as it is read, newline=''."""
    data = content.encode() if isinstance(content, str) else content
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")


def _score(model: LoadedModel, content: str | bytes, **options: object) -> Scored:
    predictions, errors = Recorder(), Recorder()
    tally = score_text(_text(content), model, predictions, errors, **options)  # type: ignore[arg-type]
    assert tally.rows_in == tally.rows_scored + tally.rows_failed
    return Scored(tally, predictions, errors)


def _file(*records: str, newline: str = "\n", header: list[str] | None = None) -> str:
    lines = [",".join(header or PLAIN_HEADER), *(r.replace("\n", newline) for r in records)]
    return newline.join(lines) + newline


def _record_of_bytes(size: int, char: str = "a", *, prefix: str = "x,5.1,3.5,1.4,0.2,") -> str:
    """PREFIX then a note cell of CHAR (fixed up with ASCII): exactly SIZE UTF-8 bytes."""
    need = size - len(prefix.encode())
    width = len(char.encode())
    record = prefix + char * (need // width) + "y" * (need % width)
    assert len(record.encode()) == size
    return record


def _too_long(size: int, limit: int = LIMIT, *, excerpt: bool = True) -> str:
    said = f"line is {size:,} bytes; the limit is {limit:,}"
    return said + (f"; raw shows its first {RAW_EXCERPT:,} characters" if excerpt else "")


# -- an over-long data record ------------------------------------------------------------


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_an_over_long_line_is_one_row_error_with_an_excerpt_and_reading_goes_on(
    loaded_model: LoadedModel, newline: str
) -> None:
    long = "big,1,1,1," + "9" * BIG
    content = _file(GOOD_ROWS[0], long, GOOD_ROWS[1], "", GOOD_ROWS[2], newline=newline)

    result = _score(loaded_model, content, max_line_bytes=LIMIT)

    assert (result.tally.rows_in, result.tally.rows_scored, result.tally.rows_failed) == (4, 3, 1)
    assert result.error_rows() == [
        {"line": "3", "reason": _too_long(len(long)), "raw": long[:1000]}
    ]
    assert [e.line for e in result.tally.first_errors] == [3]
    assert result.scored_lines() == [2, 4, 6]
    assert [row[:5] for row in result.rows()[1:]] == [r.split(",") for r in GOOD_ROWS]


class ReadSpy(io.TextIOWrapper):
    """A decoded stream that remembers the longest text handed out by one read."""

    longest = 0

    def readline(self, size: int | None = -1, /) -> str:  # type: ignore[override]
        return self._seen(super().readline(-1 if size is None else size))

    def __next__(self) -> str:  # type: ignore[override]
        return self._seen(super().__next__())

    def _seen(self, text: str) -> str:
        self.longest = max(self.longest, len(text))
        return text


def test_an_over_long_record_is_never_read_whole(loaded_model: LoadedModel) -> None:
    long = "big,1,1,1," + "9" * BIG
    quoted = f'"first\nsecond\n{"z" * BIG}",5.1,3.5,1.4,0.2'
    content = _file(GOOD_ROWS[0], long, quoted, GOOD_ROWS[1]).encode()
    text = ReadSpy(io.BytesIO(content), encoding="utf-8", newline="")
    predictions, errors = Recorder(), Recorder()

    tally = score_text(text, loaded_model, predictions, errors, max_line_bytes=LIMIT)

    assert (tally.rows_scored, tally.rows_failed) == (2, 2)
    # Pieces of the limit and a "\r\n", then of 64 KiB while the rest is skipped.
    assert 0 < text.longest <= 64 * 1024


def test_the_last_line_over_the_limit_without_a_line_break_is_a_row_error(
    loaded_model: LoadedModel,
) -> None:
    long = "big,1,1,1," + "9" * BIG
    content = _file(GOOD_ROWS[0], GOOD_ROWS[1]) + long  # no final line break

    result = _score(loaded_model, content, max_line_bytes=LIMIT)

    assert result.error_rows() == [
        {"line": "4", "reason": _too_long(len(long)), "raw": long[:1000]}
    ]
    assert result.scored_lines() == [2, 3]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_an_over_long_quoted_record_over_several_lines_is_one_row_error(
    loaded_model: LoadedModel, newline: str
) -> None:
    # A quoted id cell holding two line breaks; its last line goes over the limit.
    record = f'"first\nsecond\n{"z" * BIG}",5.1,3.5,1.4,0.2'
    content = _file(GOOD_ROWS[0], record, GOOD_ROWS[1], newline=newline)
    written = record.replace("\n", newline)

    result = _score(loaded_model, content, max_line_bytes=LIMIT)

    [error] = result.error_rows()
    assert error["line"] == "3"
    assert error["reason"] == (
        f"lines 3-5 are one record (a quoted cell holds line breaks) of {len(written):,} bytes "
        f"or more; the limit is 1,000; raw shows its first {RAW_EXCERPT:,} characters"
    )
    assert error["raw"] == written[:RAW_EXCERPT]
    assert result.scored_lines() == [2, 6]
    assert result.tally.rows_in == 3


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_quoted_record_going_over_mid_cell_accounts_for_every_line_after_it_once(
    loaded_model: LoadedModel, newline: str
) -> None:
    """Many short lines in one quoted cell: the record is cut where it goes over.

    Reading goes on at the next line as new records, whatever the rest of the cell was:
    each of its remaining lines is a record of its own (blank ones skipped), and the rows
    after the cell are read as usual.
    """
    cell_lines = [f"part {i:02d} " + "w" * 80 for i in range(20)]  # 88 characters each
    record = '"' + "\n".join(cell_lines) + '",5.1,3.5,1.4,0.2'  # lines 3-22
    content = _file(GOOD_ROWS[0], record, "", GOOD_ROWS[1], newline=newline)

    result = _score(loaded_model, content, max_line_bytes=LIMIT)

    # Its first 11 lines and their breaks make under 1,000 bytes, 12 make over: lines 3-14.
    first = result.error_rows()[0]
    assert first["line"] == "3"
    assert first["reason"].startswith("lines 3-14 are one record (a quoted cell holds line breaks)")
    assert first["raw"] == record.replace("\n", newline)[:RAW_EXCERPT]
    _assert_every_line_once(content, result, header_line=1, width=5, limit=LIMIT)
    assert result.scored_lines()[0] == 2
    assert result.scored_lines()[-1] == 24  # the row after the cell and a blank line
    assert result.tally.rows_in == 1 + 1 + 8 + 1  # the cut record, then 8 lines of its rest


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r", ""])
@pytest.mark.parametrize("char", WIDE_CHARS)
def test_a_record_of_exactly_the_limit_in_utf8_bytes_is_scored_one_byte_more_is_not(
    loaded_model: LoadedModel, newline: str, char: str
) -> None:
    """The limit counts UTF-8 bytes without the line break ("\\r" alone ends a line too);
    "" puts the record last, without a final line break."""
    header = [*PLAIN_HEADER, "note"]
    at_limit, over = _record_of_bytes(LIMIT, char), _record_of_bytes(LIMIT + 1, char)
    for record, scored in ((at_limit, True), (over, False)):
        if newline:
            content = _file(record, "b,6.3,2.9,5.6,1.8,n", newline=newline, header=header)
        else:
            content = _file("b,6.3,2.9,5.6,1.8,n", header=header) + record

        result = _score(loaded_model, content, max_line_bytes=LIMIT)

        line = 2 if newline else 3
        if scored:
            assert result.error_rows() == []
            assert sorted(result.scored_lines()) == [2, 3]
            [row] = [r for r in result.rows()[1:] if r[-1] == str(line)]
            assert row[:6] == record.split(",")  # passed through whole
        else:
            [error] = result.error_rows()
            assert error["line"] == str(line)
            assert error["reason"] == _too_long(LIMIT + 1, excerpt=len(record) >= RAW_EXCERPT)
            assert error["raw"] == record[:RAW_EXCERPT]
            assert result.scored_lines() == [5 - line]


def test_a_crlf_cut_apart_by_a_bounded_read_still_ends_one_line(
    loaded_model: LoadedModel,
) -> None:
    """An over-long line is read in pieces of limit + 2 characters, then of 64 KiB: where a
    piece ends between its "\\r" and "\\n", the "\\n" must not make an extra line."""
    header = ",".join(PLAIN_HEADER)
    for size in (LIMIT + 1, LIMIT + 1 + 65_536, LIMIT + 1 + 2 * 65_536):
        long = _record_of_bytes(size, prefix="big,1,1,1,")
        content = f"{header}\r\n{long}\r\n{GOOD_ROWS[0]}\r\n\r\n{GOOD_ROWS[1]}\r\n"

        result = _score(loaded_model, content, max_line_bytes=LIMIT)

        assert [(e["line"], e["reason"]) for e in result.error_rows()] == [
            ("2", _too_long(size))
        ], size
        assert result.scored_lines() == [3, 5], size


def test_the_default_limit_is_one_mib_and_the_default_width_a_thousand_columns(
    loaded_model: LoadedModel,
) -> None:
    """Rows as wide as the defaults allow: 1,000 cells (none past the CSV parser's own
    field limit) making exactly 1 MiB pass whole; one byte more is an over-long row."""
    header = [*FEATURES, *(f"c{i}" for i in range(DEFAULT_MAX_COLUMNS - len(FEATURES)))]
    fillers = DEFAULT_MAX_COLUMNS - len(FEATURES)

    def row(size: int) -> str:
        base = "5.1,3.5,1.4,0.2" + "," * fillers
        need = size - len(base)
        cells = ["q" * (need // fillers + (i < need % fillers)) for i in range(fillers)]
        text = ",".join(["5.1", "3.5", "1.4", "0.2", *cells])
        assert len(text) == size
        return text

    at_limit, over = row(DEFAULT_MAX_LINE_BYTES), row(DEFAULT_MAX_LINE_BYTES + 1)
    content = _file(at_limit, over, "6.3,2.9,5.6,1.8" + "," * fillers, header=header)

    result = _score(loaded_model, content)

    assert result.scored_lines() == [2, 4]
    assert result.predictions.text.splitlines()[1].startswith(at_limit + ",")
    assert result.error_rows() == [
        {
            "line": "3",
            "reason": _too_long(DEFAULT_MAX_LINE_BYTES + 1, DEFAULT_MAX_LINE_BYTES),
            "raw": over[:RAW_EXCERPT],
        }
    ]


# -- the header ----------------------------------------------------------------------------


@pytest.mark.parametrize("char", WIDE_CHARS)
def test_a_header_at_the_limit_is_read_one_byte_more_rejects_the_file(
    loaded_model: LoadedModel, char: str
) -> None:
    def header(size: int) -> str:
        return _record_of_bytes(size, char, prefix=",".join(PLAIN_HEADER) + ",")

    row = GOOD_ROWS[0] + ",n"
    at_limit = _score(loaded_model, _file(row, header=[header(LIMIT)]), max_line_bytes=LIMIT)
    assert at_limit.scored_lines() == [2]

    recorders = Recorder(), Recorder()
    with pytest.raises(FileRejected) as rejected:
        score_text(
            _text("\n \n" + header(LIMIT + 1) + "\n" + row + "\n"),
            loaded_model,
            *recorders,
            max_line_bytes=LIMIT,
        )
    assert str(rejected.value) == "the header (line 3) is 1,001 bytes; the limit is 1,000"
    assert [r.writes for r in recorders] == [[], []]  # nothing written before the verdict


def test_a_header_of_megabytes_is_rejected_without_reading_it_whole(
    loaded_model: LoadedModel,
) -> None:
    header = ",".join(PLAIN_HEADER) + "," + "h" * BIG
    said = f"the header (line 1) is {len(header):,} bytes; the limit is 1,000"

    with pytest.raises(FileRejected, match=f"^{re.escape(said)}$"):
        _score(loaded_model, header + "\r\n" + GOOD_ROWS[0] + ",n\r\n", max_line_bytes=LIMIT)


def test_a_header_wider_than_max_columns_rejects_the_file(loaded_model: LoadedModel) -> None:
    header = [*PLAIN_HEADER, *(f"extra{i}" for i in range(5))]  # 10 columns
    row = GOOD_ROWS[0] + ",,,,,"

    assert _score(loaded_model, _file(row, header=header), max_columns=10).scored_lines() == [2]
    recorders = Recorder(), Recorder()
    with pytest.raises(FileRejected) as rejected:
        score_text(_text(_file(row, header=header)), loaded_model, *recorders, max_columns=9)
    assert str(rejected.value) == "the header has 10 columns; the limit is 9"
    assert [r.writes for r in recorders] == [[], []]


def test_max_columns_is_never_below_the_model_s_own_features(loaded_model: LoadedModel) -> None:
    plain = _file("5.1,3.5,1.4,0.2", header=FEATURES)

    assert _score(loaded_model, plain, max_columns=1).scored_lines() == [2]
    with pytest.raises(FileRejected, match=r"^the header has 5 columns; the limit is 4$"):
        _score(loaded_model, _file(GOOD_ROWS[0]), max_columns=1)


def test_a_header_of_default_width_passes_one_more_column_is_rejected(
    loaded_model: LoadedModel,
) -> None:
    names = [*FEATURES, *(f"c{i}" for i in range(DEFAULT_MAX_COLUMNS - len(FEATURES)))]

    assert _score(loaded_model, _file(header=names)).tally.rows_in == 0
    with pytest.raises(FileRejected, match=r"^the header has 1,001 columns; the limit is 1,000$"):
        _score(loaded_model, _file(header=[*names, "one_more"]))


# -- a too-wide data row -------------------------------------------------------------------


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_data_row_wider_than_max_columns_is_a_row_error_with_its_raw_text_whole(
    loaded_model: LoadedModel, newline: str
) -> None:
    header = [*PLAIN_HEADER, "note"]  # 6 columns
    wide = GOOD_ROWS[0] + "," + ",".join("v" * 300 for _ in range(4))  # 9 cells, 1,221 chars
    wider_than_header = GOOD_ROWS[0] + ",n,x"  # 7 cells: within max_columns
    content = _file(
        wide,
        GOOD_ROWS[1] + ",n",
        wider_than_header,
        GOOD_ROWS[2] + ",n",
        newline=newline,
        header=header,
    )

    result = _score(loaded_model, content, max_columns=8, max_line_bytes=5_000)

    assert result.error_rows() == [
        {"line": "2", "reason": "row has 9 fields; the limit is 8", "raw": wide},
        {"line": "4", "reason": "expected 6 fields, found 7", "raw": wider_than_header},
    ]
    assert len(wide) > RAW_EXCERPT  # kept whole, not cut to an excerpt
    assert result.scored_lines() == [3, 5]


# -- chunks by bytes -----------------------------------------------------------------------


def _expected_chunks(sizes: list[int], chunk_rows: int, chunk_bytes: int) -> list[int]:
    """Records per chunk (one record a line, after a one-line header): flushed at the next
    line that is a multiple of CHUNK_ROWS (counted from the file's first), or at
    CHUNK_BYTES bytes."""
    chunks, rows, total = [], 0, 0
    next_flush = chunk_rows
    for line, size in enumerate(sizes, start=2):
        rows, total = rows + 1, total + size
        if line >= next_flush or total >= chunk_bytes:
            chunks.append(rows)
            rows = total = 0
            next_flush = (line // chunk_rows + 1) * chunk_rows
    return [*chunks, rows] if rows else chunks


@pytest.mark.parametrize(
    ("note", "long_from", "chunk_rows", "chunk_bytes"),
    [
        ("", 40, 1_000, 100),  # short rows only: bytes alone cut chunks
        ("n" * 900, 0, 10_000, 2_000),  # wide rows only: three to a chunk
        ("n" * 100, 20, 5, 200),  # rows cut the short half, bytes the wide half
    ],
)
def test_chunks_are_flushed_at_chunk_bytes_of_text_before_chunk_rows(
    loaded_model: LoadedModel, note: str, long_from: int, chunk_rows: int, chunk_bytes: int
) -> None:
    """Rows from LONG_FROM on carry NOTE in a pass-through column (the others an empty one)."""
    rows = [[*row, note if i >= long_from else ""] for i, row in enumerate(iris_table().rows[:40])]
    sizes = [len(",".join(row)) + 1 for row in rows]  # each record's text with its "\n"
    content = csv_text([*PLAIN_HEADER, "note"], rows)

    result = _score(loaded_model, content, chunk_rows=chunk_rows, chunk_bytes=chunk_bytes)

    # The header is one write; then one write per chunk, of its scored rows.
    per_write = [w.count(b"\n") for w in result.predictions.writes[1:]]
    expected = _expected_chunks(sizes, chunk_rows, chunk_bytes)
    assert per_write == expected
    assert result.tally.rows_scored == 40
    assert len(expected) > -(-40 // chunk_rows)  # more chunks than rows alone would make


# -- arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["chunk_rows", "chunk_bytes", "max_line_bytes", "max_columns"])
@pytest.mark.parametrize("value", [0, -1])
def test_limits_below_one_are_refused_before_anything_is_read(
    loaded_model: LoadedModel, name: str, value: int
) -> None:
    recorders = Recorder(), Recorder()
    text = _text(_file(GOOD_ROWS[0]))

    with pytest.raises(ValueError, match=r"^chunk and record limits must be positive$"):
        score_text(text, loaded_model, *recorders, **{name: value})  # type: ignore[arg-type]

    assert text.tell() == 0
    assert [r.writes for r in recorders] == [[], []]


# -- every line once, over generated files -------------------------------------------------


def _physical_lines(content: str) -> list[str]:
    """The file's lines as the engine counts them (no lone "\\r" is ever generated)."""
    lines = content.split("\n")
    return lines[:-1] if content.endswith("\n") else lines


_SPANNED = re.compile(r"lines (\d+)-(\d+) are one record")


def _assert_every_line_once(
    content: str, result: Scored, *, header_line: int, width: int, limit: int
) -> None:
    """Oracle-free accounting: the records named by both outputs tile the data lines.

    Each record spans its line and as many more as it holds line breaks (an over-long
    one: as its reason says); records neither overlap nor leave a gap but for blank
    lines; both files parse with one column count throughout; an over-long record's raw
    is a prefix of its text of at most RAW_EXCERPT characters.
    """
    physical = _physical_lines(content)
    parsed = result.rows()
    assert parsed[0][-len(OUTPUT_COLUMNS) :] == OUTPUT_COLUMNS
    assert {len(row) for row in parsed} == {width + len(OUTPUT_COLUMNS)}
    raw_errors = list(csv.reader(io.StringIO(result.errors.text, newline="")))
    assert {len(row) for row in raw_errors} == {3}

    spans: list[tuple[int, int, str]] = []
    for row in parsed[1:]:
        spans.append((int(row[-1]), 1 + sum(cell.count("\n") for cell in row[:width]), "scored"))
    for error in result.error_rows():
        start, reason, raw = int(error["line"]), error["reason"], error["raw"]
        over = re.match(_SPANNED, reason)
        if over:
            assert int(over[1]) == start
            span = int(over[2]) - start + 1
        elif reason.startswith("line is "):
            span = 1
        else:
            span = 1 + raw.count("\n")
        if over or reason.startswith("line is "):
            text = "\n".join(physical[start - 1 : start - 1 + span])
            excerpt = raw[1:] if raw.startswith("'") and not text.startswith("'") else raw
            assert 0 < len(excerpt) <= RAW_EXCERPT
            assert text.startswith(excerpt)
        else:
            assert len(raw) <= max(limit, RAW_EXCERPT) + 1  # + a formula's apostrophe
        spans.append((start, span, "error"))
    assert len(spans) == result.tally.rows_in

    spans.sort()
    at = header_line + 1
    for start, span, _ in spans:
        assert start >= at, f"line {start} is in two records"
        for skipped in range(at, start):
            assert not physical[skipped - 1].strip(), f"line {skipped} is in no record"
        at = start + span
    assert at <= len(physical) + 1
    assert not "".join(physical[at - 1 :]).strip()


EXTRAS = ["id", "note", "when"]
# Pass-through cells: commas, quotes, line breaks (LF, CRLF) inside quotes, multibyte
# text, cells a spreadsheet would run.
POOL = ["", "plain", "with, comma", 'say "hi"', "two\nlines", "cr\r\nlf", "é€😀", "a,\nb"]
FORMULAS = ["=1+1", "@x", "-note"]
SINGLE_LINE = [c for c in POOL if "\n" not in c]
BAD_NUMBERS = ["abc", "", "  ", "nan", "inf", "1_0", "1e999"]
KINDS = ["valid", "valid", "bad_number", "short", "wide", "blank", "long", "long_multiline"]


def _quote(cell: str) -> str:
    return '"' + cell.replace('"', '""') + '"' if any(c in cell for c in ',"\r\n') else cell


@dataclass
class Unit:
    """One record of a generated file: its text, and what the engine must make of it."""

    text: str
    kind: str  # "blank", or what it is when under the byte limit: "scored" or "error"
    cells: list[str] = field(default_factory=list)
    start: int = 0  # its first line in the file
    outcome: str = ""  # blank, scored, error, over_long, too_wide or mid_cell


@dataclass
class Case:
    content: str
    header: list[str]
    header_line: int
    units: list[Unit]
    options: dict[str, int | bool]


def _padded(cells: list[str], index: int, prefix: str, size: int, char: str) -> None:
    """Set CELLS[INDEX] to PREFIX and padding of CHAR, the record SIZE bytes if it can."""
    cells[index] = prefix
    need = size - len(",".join(map(_quote, cells)).encode())
    if need > 0:
        width = len(char.encode())
        cells[index] = prefix + char * (need // width) + "x" * (need % width)


@st.composite
def _units(
    draw: st.DrawFn, header: list[str], limit: int, max_columns: int, mid_cell: bool
) -> Unit:
    kind = draw(st.sampled_from([*KINDS, *(["long_mid_cell"] * mid_cell)]))
    if kind == "blank":
        return Unit(draw(st.sampled_from(["", "  ", " \t "])), "blank")
    width = len(header)
    extras = [i for i, name in enumerate(header) if name not in FEATURES]
    single = kind.startswith("long")  # one line, but for the cell that goes over
    cells = [
        f"{draw(st.integers(1, 79)) / 10:.1f}"
        if name in FEATURES
        else draw(st.sampled_from(SINGLE_LINE + FORMULAS if single else POOL + FORMULAS))
        for name in header
    ]
    outcome = "scored"
    if kind == "bad_number":
        cells[header.index(draw(st.sampled_from(FEATURES)))] = draw(st.sampled_from(BAD_NUMBERS))
        outcome = "error"
    elif kind == "short":
        cells = cells[: draw(st.integers(2, width - 1))]
        outcome = "error"
    elif kind == "wide":
        cells += ["0"] * draw(st.integers(1, max_columns - width + 3))
        outcome = "error"
    elif kind in ("long", "long_multiline"):
        size = limit + draw(
            st.one_of(st.integers(-2, 3), st.integers(4, 3 * limit), st.just(70_000))
        )
        if extras:
            prefix = "head\r\n" if kind == "long_multiline" else ""
            char = draw(st.sampled_from(WIDE_CHARS))
            _padded(cells, draw(st.sampled_from(extras)), prefix, size, char)
        else:  # spaces after a number: still a number
            index = draw(st.integers(0, width - 1))
            _padded(cells, index, cells[index], size, " ")
    elif kind == "long_mid_cell":  # the first line alone is over: the rest is cut off
        index = draw(st.integers(0, width - 1))
        rest = draw(st.sampled_from(["", "  ", "x" * 50, "y" * (limit + 5), "1.0,2.0"]))
        cells[index] = "x" * (limit + draw(st.integers(1, 200))) + "\n" + rest + "\ntail"
    return Unit(",".join(map(_quote, cells)), outcome, cells)


def _outcome(unit: Unit, limit: int, max_columns: int) -> str:
    if unit.kind == "blank":
        return "blank"
    text = unit.text
    if len(text.encode()) > limit:
        # Over on a line before its last: the rest of its quoted cell is read as new records.
        lines = text.split("\n")
        for end in range(1, len(lines)):
            before = "\n".join(lines[:end]).removesuffix("\r")
            if len(before.encode()) > limit:
                return "mid_cell"
        return "over_long"
    return "too_wide" if len(unit.cells) > max_columns else unit.kind


@st.composite
def _files(draw: st.DrawFn, *, mid_cell: bool) -> Case:
    extras = draw(st.lists(st.sampled_from(EXTRAS), unique=True, max_size=3))
    header = draw(st.permutations([*FEATURES, *extras]))
    limit = draw(st.integers(80, 1_500))
    max_columns = len(header) + draw(st.integers(0, 3))
    units = draw(st.lists(_units(header, limit, max_columns, mid_cell), max_size=20))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    leading = draw(st.sampled_from(["", newline, f" {newline}{newline}"]))
    header_line = 1 + leading.count("\n")
    content = leading + newline.join([",".join(header), *(u.text for u in units)])
    if draw(st.booleans()):
        content += newline
    line = header_line + 1
    for unit in units:
        unit.start, unit.outcome = line, _outcome(unit, limit, max_columns)
        line += unit.text.count("\n") + 1
    options: dict[str, int | bool] = {
        "max_line_bytes": limit,
        "max_columns": max_columns,
        "chunk_rows": draw(st.integers(1, 12)),
        "chunk_bytes": draw(st.integers(1, 3_000)),
        "neutralise_formulas": draw(st.booleans()),
    }
    return Case(content, header, header_line, units, options)


def _neutralised(text: str, case: Case) -> str:
    apostrophe = case.options["neutralise_formulas"] and text[:1] in "=@-"
    return "'" + text if apostrophe else text


@pytest.mark.slow  # over a second and a half (the quick lane skips it)
@settings(max_examples=150, deadline=None)
@given(case=_files(mid_cell=False))
def test_generated_files_put_each_record_once_where_its_kind_says(
    loaded_model: LoadedModel, case: Case
) -> None:
    assume(all(u.outcome != "mid_cell" for u in case.units))
    for outcome in sorted({u.outcome for u in case.units}):
        event(outcome)  # how often each kind of record is drawn (--hypothesis-show-statistics)
    limit = case.options["max_line_bytes"]
    assert isinstance(limit, int)

    result = _score(loaded_model, case.content, **case.options)

    _assert_every_line_once(
        case.content, result, header_line=case.header_line, width=len(case.header), limit=limit
    )
    records = [u for u in case.units if u.outcome != "blank"]
    scored = [u for u in records if u.outcome == "scored"]
    failed = [u for u in records if u.outcome != "scored"]
    assert result.tally.rows_in == len(records)
    assert result.scored_lines() == [u.start for u in scored]
    errors = result.error_rows()
    assert [int(e["line"]) for e in errors] == [u.start for u in failed]
    formula = case.options["neutralise_formulas"]
    for row, unit in zip(result.rows()[1:], scored, strict=True):
        assert row[: len(case.header)] == [
            "'" + c if formula and c in FORMULAS else c for c in unit.cells
        ]
    for error, unit in zip(errors, failed, strict=True):
        size = len(unit.text.encode())
        if unit.outcome == "over_long":
            lines = unit.text.count("\n") + 1
            said = (
                f"line is {size:,} bytes"
                if lines == 1
                else f"lines {unit.start}-{unit.start + lines - 1} are one record (a quoted "
                f"cell holds line breaks) of {size:,} bytes or more"
            )
            assert error["reason"].startswith(f"{said}; the limit is {limit:,}")
            assert _neutralised(unit.text, case).startswith(error["raw"])
        elif unit.outcome == "too_wide":
            limit_said = f"{case.options['max_columns']:,}"
            assert (
                error["reason"] == f"row has {len(unit.cells):,} fields; the limit is {limit_said}"
            )
            assert error["raw"] == _neutralised(unit.text, case)
        else:
            assert error["raw"] == _neutralised(unit.text, case)
            assert error["reason"]


@settings(max_examples=60, deadline=None)
@given(case=_files(mid_cell=True))
def test_generated_files_with_records_cut_mid_cell_still_account_for_every_line(
    loaded_model: LoadedModel, case: Case
) -> None:
    limit = case.options["max_line_bytes"]
    assert isinstance(limit, int)

    result = _score(loaded_model, case.content, **case.options)

    _assert_every_line_once(
        case.content, result, header_line=case.header_line, width=len(case.header), limit=limit
    )
    cut = [u.start for u in case.units if u.outcome == "mid_cell"]
    errors = {int(e["line"]): e["reason"] for e in result.error_rows()}
    for start in cut:
        assert errors[start].startswith("line is ")  # its first line alone is over
