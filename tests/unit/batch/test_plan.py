"""The shard planner (plan_shards): it cuts only where the one-pass engine starts a record.

The reference is the engine itself: its line source (_Lines) and csv.reader, driven the
way _Scorer.read drives them, list each record's first line after the header; the line
offsets come from splitting the text on "\\n", "\\r\\n" and a lone "\\r". Generated files
are rich in quotes, commas and line breaks, with small byte and field limits so that
every resynchronisation rule is exercised, and read in blocks of a few bytes.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from unittest import mock

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from model_store.batch import plan as planner
from model_store.batch.engine import FileRejected, _first_record, _Lines, _TooLong, score_text
from model_store.batch.plan import BOM, Plan, Shard, Unplannable, plan_shards
from model_store.gate import LoadedModel
from tests.support.batch_files import FEATURES

HUGE = 10**12  # a shard size never reached


class OnlyRead:
    """A stream with nothing but read(n), as an S3 streaming body is used; it notes the
    sizes asked for."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.asked: list[int] = []

    def read(self, size: int, /) -> bytes:
        self.asked.append(size)
        return self._data.read(size)


@contextlib.contextmanager
def field_limit(limit: int) -> Iterator[None]:
    """csv's field size limit set to LIMIT for the block, then restored."""
    before = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(before)


@contextlib.contextmanager
def small_steps(text_chunk: int, linear: int, window: int = 4096) -> Iterator[None]:
    """The planner's steps made small enough for small files: the header's text reader
    reads TEXT_CHUNK bytes at a time (8192, as the engine's, reads all of a small file
    before the scan starts), the n-th line end is found line by line only below LINEAR
    bytes, and quoted lines are checked WINDOW bytes at a time to begin with."""
    with (
        mock.patch.object(planner, "_TEXT_CHUNK", text_chunk),
        mock.patch.object(planner, "_LINEAR", linear),
        mock.patch.object(planner, "_MIN_WINDOW", window),
    ):
        yield


@pytest.fixture
def small_field_limit() -> Iterator[int]:
    """csv's field size limit at 5 characters for the test, restored after it."""
    with field_limit(5):
        yield 5


class _Tracked(_Lines):
    """The engine's line source, noting each record's first line and the end of the text
    (a record the reader returns after it ended was cut short inside a quoted field)."""

    def __init__(self, text: io.TextIOWrapper, max_bytes: int) -> None:
        super().__init__(text, max_bytes)
        self.exhausted = False
        self.yielded = 0
        self.record_line = 0

    def __call__(self, first: str = "") -> Iterator[str]:
        for line in super().__call__(first):
            self.yielded += 1
            if len(self.pending) == 1:
                self.record_line = self.yielded
            yield line
        self.exhausted = True


@dataclass(frozen=True)
class Reading:
    """What the engine's one pass makes of a file."""

    rejected: str | None = None
    header_lines: int = 0
    starts: tuple[int, ...] = ()  # the first line of each record after the header
    lines: int = 0
    unbalanced: int | None = None  # a record the file ends inside a quoted field of


def engine_reading(data: bytes, max_line_bytes: int) -> Reading:
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
    source = _Tracked(text, max_line_bytes)
    try:
        _, _, taken = _first_record(source)
    except FileRejected as exc:
        return Reading(rejected=str(exc))
    if source.exhausted:
        return Reading(header_lines=taken, unbalanced=source.record_line)
    header_lines, starts, unbalanced = taken, [], None
    pending = source.pending
    reader = csv.reader(source())
    while True:  # as _Scorer.read goes through the records
        try:
            for _ in reader:
                starts.append(taken + 1)
                if source.exhausted:
                    unbalanced = taken + 1
                taken += len(pending)
                pending.clear()
            break
        except csv.Error:
            starts.append(taken + 1)
            taken += len(pending)
            pending.clear()
        except _TooLong as exc:
            starts.append(taken + 1)
            taken += exc.lines
            pending.clear()
            reader = csv.reader(source(exc.carry))
    return Reading(None, header_lines, tuple(starts), taken, unbalanced)


def line_offsets(data: bytes) -> list[int]:
    """The byte offset where each physical line starts, then the file's size."""
    offsets = [len(BOM) if data.startswith(BOM) else 0]
    for line in io.StringIO(data[offsets[0] :].decode(), newline=""):
        offsets.append(offsets[-1] + len(line.encode()))
    return offsets


def expected_cuts(
    reading: Reading, offsets: list[int], shard_lines: int, shard_bytes: int, align_lines: int
) -> list[tuple[int, int]]:
    """(offset, line) of each cut: a shard closes at the first record end where it holds
    shard_lines lines or shard_bytes bytes (shard 0 counted from the header's end), of
    those that are the first at or past a multiple of align_lines lines: where the
    engine (_Scorer.read) flushes a chunk whatever its chunk_bytes."""
    size = offsets[-1]
    cuts: list[tuple[int, int]] = []
    first = done = reading.header_lines + 1
    start = offsets[first - 1]
    for line in [*reading.starts[1:], reading.lines + 1]:  # where each record ends
        end = offsets[line - 1]
        aligned = (line - 1) // align_lines > (done - 1) // align_lines
        done = line
        full = line - first >= shard_lines or end - start >= shard_bytes
        if end < size and aligned and full:
            cuts.append((end, line))
            first, start = line, end
    return cuts


def _plan(data: bytes, **options: int) -> Plan | Unplannable:
    return plan_shards(OnlyRead(data), **{"shard_lines": 1, **options})


def _planned(data: bytes, **options: int) -> Plan:
    plan = _plan(data, **options)
    assert isinstance(plan, Plan), plan
    return plan


def _cuts(plan: Plan) -> list[tuple[int, int]]:
    return [(s.start, s.first_line) for s in plan.shards[1:]]


def _assert_tiles(plan: Plan) -> None:
    """Shards are contiguous, indexed, cover the file, and none is empty."""
    assert plan.shards[0].start == 0
    assert plan.shards[0].first_line == 1
    assert plan.shards[-1].end == plan.size
    for index, shard in enumerate(plan.shards):
        assert shard.index == index
        assert shard.start < shard.end or plan.size == 0
    for before, after in zip(plan.shards, plan.shards[1:], strict=False):
        assert before.end == after.start
    assert plan.shards[0].end > plan.header_end or len(plan.shards) == 1


def check_against_engine(
    data: bytes,
    *,
    shard_lines: int,
    shard_bytes: int,
    max_line_bytes: int,
    block_size: int,
    align_lines: int = 1,
) -> str:
    """Plan DATA and compare with the engine's one pass; the outcome's kind."""
    reading = engine_reading(data, max_line_bytes)
    stream = OnlyRead(data)
    plan = plan_shards(
        stream,
        shard_lines=shard_lines,
        shard_bytes=shard_bytes,
        max_line_bytes=max_line_bytes,
        block_size=block_size,
        align_lines=align_lines,
    )
    assert max(stream.asked) <= block_size
    if reading.rejected is not None:
        assert plan == Unplannable(reading.rejected)
        return "rejected"
    if reading.unbalanced is not None:
        assert isinstance(plan, Unplannable)
        assert re.search(f"starts on line {reading.unbalanced} never ends", plan.reason)
        return "unbalanced"
    assert isinstance(plan, Plan), plan
    offsets = line_offsets(data)
    assert reading.lines == len(offsets) - 1  # the reference's own consistency
    assert (plan.size, plan.lines) == (len(data), reading.lines)
    assert plan.header_lines == reading.header_lines
    assert plan.header_end == offsets[reading.header_lines]
    _assert_tiles(plan)
    record_starts = {(offsets[line - 1], line) for line in reading.starts}
    assert set(_cuts(plan)) <= record_starts
    assert _cuts(plan) == expected_cuts(reading, offsets, shard_lines, shard_bytes, align_lines)
    if shard_lines == 1 and shard_bytes >= len(data) and align_lines == 1:
        # Every record after the header starts a shard, but shard 0 keeps the first.
        assert _cuts(plan) == sorted(record_starts)[1:]
    return "planned"


# -- generated files ----------------------------------------------------------------------

PIECES = ['"', '"', '""', ",", ",", "\n", "\r\n", "\r", "a", "aaaaaaa", " ", "é", "€a", "\n\n"]
PIECES += ['"a\nb"', '"\r\n"', ',"c\rd",']  # quoted fields over lines, closed


@st.composite
def csv_bytes(draw: st.DrawFn) -> bytes:
    body = "".join(draw(st.lists(st.sampled_from(PIECES), max_size=60)))
    header = draw(st.sampled_from(["", "h,k\n", "h,k\r\n", '"h\nk",k\r', " \n\nh,k\n"]))
    bom = BOM if draw(st.booleans()) else b""
    return bom + (header + body).encode()


@settings(max_examples=300, deadline=None)
@given(
    data=csv_bytes(),
    shard_lines=st.integers(1, 5),
    shard_bytes=st.one_of(st.integers(1, 60), st.just(HUGE)),
    max_line_bytes=st.one_of(st.integers(4, 40), st.just(1024)),
    limit=st.one_of(st.integers(1, 12), st.just(131_072)),
    block_size=st.one_of(st.integers(1, 7), st.just(4096)),
    text_chunk=st.one_of(st.integers(1, 7), st.just(8192)),
    linear=st.sampled_from([1, 3, 2048]),
    window=st.sampled_from([1, 5, 4096]),
    align_lines=st.sampled_from([1, 1, 2, 3, 5]),
)
def test_every_cut_is_where_the_one_pass_starts_a_record(
    data: bytes,
    shard_lines: int,
    shard_bytes: int,
    max_line_bytes: int,
    limit: int,
    block_size: int,
    text_chunk: int,
    linear: int,
    window: int,
    align_lines: int,
) -> None:
    with field_limit(limit), small_steps(text_chunk, linear, window):
        outcome = check_against_engine(
            data,
            shard_lines=shard_lines,
            shard_bytes=shard_bytes,
            max_line_bytes=max_line_bytes,
            block_size=block_size,
            align_lines=align_lines,
        )
    event(outcome)


@settings(max_examples=120, deadline=None)
@given(
    data=csv_bytes(),
    max_line_bytes=st.integers(4, 40),
    limit=st.integers(1, 12),
    block_size=st.integers(1, 7),
    text_chunk=st.integers(1, 7),
)
def test_one_line_shards_cut_at_every_record_start_after_the_first(
    data: bytes, max_line_bytes: int, limit: int, block_size: int, text_chunk: int
) -> None:
    with field_limit(limit), small_steps(text_chunk, linear=1, window=1):
        check_against_engine(
            data,
            shard_lines=1,
            shard_bytes=HUGE,
            max_line_bytes=max_line_bytes,
            block_size=block_size,
        )


# -- examples -----------------------------------------------------------------------------


@pytest.mark.parametrize("block_size", [1, 2, 3, 5, 4096])
def test_records_that_span_lines_crlf_and_lone_cr_are_never_cut_inside(block_size: int) -> None:
    lines = [
        b"h,k\r\n",  # 1
        b"1,2\r\n",  # 2
        b'3,"four\r\n',  # 3: a quoted field over three lines
        b"still four\r",  # 4
        b'end"\r\n',  # 5
        b"5,6\r",  # 6
        b'"a ""quoted"" quote",7\n',  # 7
        b"8,9",  # 8, no line break
    ]
    data = b"".join(lines)
    starts = [sum(map(len, lines[:i])) for i in range(len(lines))]

    plan = _planned(data, block_size=block_size)

    assert _cuts(plan) == [(starts[2], 3), (starts[5], 6), (starts[6], 7), (starts[7], 8)]
    assert (plan.header_end, plan.header_lines, plan.lines, plan.size) == (5, 1, 8, len(data))
    assert plan.to_items()[:2] == [
        {"index": 0, "start": 0, "end": starts[2], "first_line": 1},
        {"index": 1, "start": starts[2], "end": starts[5], "first_line": 3},
    ]


def test_a_cut_by_size_waits_for_the_end_of_the_record() -> None:
    data = b'h\n"' + b"x\n" * 50 + b'"\nlast\n'

    plan = _planned(data, shard_lines=HUGE, shard_bytes=10)

    assert _cuts(plan) == [(len(data) - 5, 53)]


def test_the_bom_and_blank_records_before_the_header_belong_to_shard_0() -> None:
    data = BOM + b"\n \r\n,\nh,k\n1,2\n3,4\n"

    plan = _planned(data)

    assert (plan.header_lines, plan.header_end) == (4, len(BOM) + 10)
    assert _cuts(plan) == [(len(data) - 4, 6)]
    assert plan.shards[0] == Shard(index=0, start=0, end=len(data) - 4, first_line=1)


@pytest.mark.parametrize("data", [b"h,k", b"h,k\n", BOM + b'"h\r\n",k\r\n'])
def test_a_file_with_no_data_records_is_one_shard(data: bytes) -> None:
    plan = _planned(data)

    assert plan.shards == [Shard(index=0, start=0, end=len(data), first_line=1)]


def test_an_unbalanced_quote_makes_the_file_unplannable_naming_its_line() -> None:
    data = b'h,k\n1,2\n3,"x""\n4,5\n\n6,7\n7,8\n'  # line 3 opens a field nothing closes

    assert _plan(data) == Unplannable(
        "an unbalanced quote: the quoted field in the record that starts on line 3 never "
        "ends; the file cannot be split safely"
    )


def test_an_unbalanced_quote_in_the_header_is_named_too() -> None:
    plan = _plan(b'\n\nh,"k\n1,2\n')

    assert isinstance(plan, Unplannable)
    assert "starts on line 3 never ends" in plan.reason


def test_the_byte_limit_resynchronises_an_unbalanced_quote() -> None:
    # Line 2's record is 13 bytes by the end of line 3: it ends there, and line 4 is new.
    data = b'h\n"abcde\nfghijk\nx,"y"\nz\n'
    assert engine_reading(data, 12).starts == (2, 4, 5)

    plan = _planned(data, max_line_bytes=12)

    assert _cuts(plan) == [(16, 4), (22, 5)]


def test_the_field_limit_resynchronises_an_unbalanced_quote(small_field_limit: int) -> None:
    # The quoted field passes 5 characters on line 3 (its line break counts): line 4 is
    # new, and opens a quoted field that line 5 closes.
    data = b'h\n"ab\ncdef\n"g\n"z\n'
    assert small_field_limit == 5
    assert engine_reading(data, 1024).starts == (2, 4)

    plan = _planned(data)

    assert _cuts(plan) == [(11, 4)]
    assert isinstance(_plan(data[:-4]), Unplannable)  # line 4's field never closes


def test_a_line_far_over_the_byte_limit_is_skipped_whole_across_blocks() -> None:
    data = b'h\n1\n"' + b"x" * 5000 + b'\r\n2,"\n3"\n4\n'
    assert engine_reading(data, 100).starts == (2, 3, 4, 6)

    plan = _planned(data, max_line_bytes=100, block_size=64)

    assert _cuts(plan) == [(4, 3), (5007, 4), (5014, 6)]


def test_a_line_far_over_the_byte_limit_is_not_kept() -> None:
    data = b"h\n1\n" + b"x" * 20_000_000 + b"\n2\n"
    tracemalloc.start()
    try:
        plan = _planned(data, max_line_bytes=1024, block_size=65_536)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert _cuts(plan) == [(4, 3), (len(data) - 2, 4)]
    assert peak < 1_000_000


@pytest.mark.parametrize("block_size", [1, 4096])
def test_quotes_the_non_strict_reader_takes_literally(block_size: int) -> None:
    lines = [
        b"h,k\n",  # 1
        b"5'11\",x\n",  # 2: a quote inside an unquoted field is a character
        b'"a"b,"c\n',  # 3: after "a" the field goes on unquoted; "c opens a field...
        b'd"\n',  # 4: ...that ends here
        b'x"",""\n',  # 5
        b'"""",""""""\n',  # 6
        b'""x\n',  # 7: an empty quoted field, then x joins it
        b'"a""\n',  # 8: a doubled quote, then the field goes on...
        b'b"\n',  # 9: ...to here
    ]
    data = b"".join(lines)
    starts = [sum(map(len, lines[:i])) for i in range(len(lines))]
    assert engine_reading(data, 1024).starts == (2, 3, 5, 6, 7, 8)

    plan = _planned(data, block_size=block_size)

    assert _cuts(plan) == [(starts[i - 1], i) for i in (3, 5, 6, 7, 8)]


def test_blank_lines_before_the_header_are_not_all_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(planner, "_KEEP_SLACK", 16)
    data = b"\n" * 10_000 + b"h\n1\n2\n"

    plan = _planned(data, block_size=7)

    assert (plan.header_lines, plan.header_end) == (10_001, 10_002)
    assert _cuts(plan) == [(len(data) - 2, 10_003)]


@pytest.mark.parametrize(
    ("data", "max_line_bytes", "reason"),
    [
        (b"", 64, "empty file: expected a header row naming the features"),
        (BOM + b"\n \n", 64, "empty file: expected a header row naming the features"),
        (b"\n\n" + b"h" * 70 + b"\n1\n", 64, "the header (line 3) is 70 bytes; the limit is 64"),
        (
            b"h,\xff\n1,2\n",
            64,
            "the file is not UTF-8 text (invalid start byte) at or after line 1",
        ),
    ],
)
def test_a_file_the_engine_rejects_is_unplannable_with_its_reason(
    loaded_model: LoadedModel, data: bytes, max_line_bytes: int, reason: str
) -> None:
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
    with pytest.raises(FileRejected) as rejected:
        score_text(text, loaded_model, io.BytesIO(), io.BytesIO(), max_line_bytes=max_line_bytes)

    assert str(rejected.value) == reason
    assert _plan(data, max_line_bytes=max_line_bytes) == Unplannable(reason)


def test_a_header_that_is_not_valid_csv_is_unplannable(small_field_limit: int) -> None:
    assert small_field_limit == 5
    assert _plan(b"header\n1\n") == Unplannable(
        "the header (line 1) is not valid CSV: field larger than field limit (5)"
    )


def test_an_iris_file_is_cut_every_n_lines() -> None:
    rows = [",".join(FEATURES)] + [f"5.{i % 10},3.5,1.4,0.2" for i in range(1000)]
    data = ("\n".join(rows) + "\n").encode()

    plan = _planned(data, shard_lines=300, block_size=1000)

    assert [s.first_line for s in plan.shards] == [1, 302, 602, 902]
    assert [s.end - s.start for s in plan.shards[1:]] == [4800, 4800, 1600]  # 16-byte rows


def test_cuts_aligned_on_the_engines_chunks_wait_for_a_multiple_of_lines() -> None:
    rows = [",".join(FEATURES)] + [f"5.{i % 10},3.5,1.4,0.2" for i in range(1000)]
    rows[649] = '"5.0\n",3.5,1.4,0.2'  # lines 650-651: one record over the multiple 650
    data = ("\n".join(rows) + "\n").encode()

    plan = _planned(data, shard_lines=300, align_lines=50, block_size=1000)

    # 300 lines past the header is line 301: the cut waits for the record end at line
    # 350; then 650 is inside a record, which ends at 651; then 951 waits for 1000.
    assert [s.first_line for s in plan.shards] == [1, 351, 652, 1001]
    assert plan.lines == 1002


def test_sizes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        plan_shards(OnlyRead(b"h\n"), shard_lines=0)
