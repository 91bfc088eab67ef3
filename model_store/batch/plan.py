"""Plan the shards of a huge CSV: byte offsets where the one-pass engine starts a record.

The planner reads the raw bytes once and cuts only where engine.score_text, reading the
whole file, would be at the start of a record, so a child that scores one shard (behind
the header) sees the same records and numbers them from the shard's ``first_line``.

It mirrors the engine byte for byte without decoding the data: physical lines end after
"\\n", "\\r\\n" or a lone "\\r"; a record goes on past a line end only while the CSV
reader is inside a quoted field; a record whose bytes (its last line break not counted)
go over max_line_bytes ends with that line unread, and a field over
csv.field_size_limit() characters ends the record at the end of its line, the next line
starting afresh either way. Line breaks, quotes and commas never occur inside a
multi-byte UTF-8 sequence, and a character is a byte that is not a continuation byte
(0x80-0xBF).

The header is found by the engine's own code (``_first_record``), so a file it rejects
is Unplannable with the very reason the engine would give.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Protocol, TextIO, cast

import numpy as np
import numpy.typing as npt

from model_store.batch.engine import (
    DEFAULT_MAX_LINE_BYTES,
    FileRejected,
    _first_record,
    _Lines,
    _utf8_len,
)

DEFAULT_SHARD_BYTES = 256 * 1024 * 1024
DEFAULT_BLOCK_SIZE = 8 * 1024 * 1024
BOM = b"\xef\xbb\xbf"
_CONTINUATION = bytes(range(0x80, 0xC0))
_KEEP_SLACK = 1024 * 1024  # decoded bytes the header's reader may pile up before they go
# What io.TextIOWrapper reads at a time: the engine's decoding errors name a line from it.
_TEXT_CHUNK = 8192
_LINEAR = 2048  # bytes: below this, the n-th line end is found line by line
# Bytes of quoted lines looked at in one go (numpy's check, or the regular expression):
# a window grows while its lines pass and shrinks to the distance between those that do
# not, so that lines which keep failing cost no more than the regular expression alone.
_MIN_WINDOW = 4096
_MAX_WINDOW = 16 * 1024 * 1024
_MAX_BACKOFF = 64  # records a failed check skips, at most

# The CSV reader's states (CPython's _csv.c) that matter between two line breaks.
_START = 0  # START_FIELD
_UNQUOTED = 1  # IN_FIELD
_QUOTED = 2  # IN_QUOTED_FIELD
_AFTER_QUOTE = 3  # QUOTE_IN_QUOTED_FIELD

# One field that leaves the reader outside a quoted field: a quoted one (doubled quotes
# inside, then possibly unquoted text, non-strict), an unquoted one (its quotes are
# literal), or an empty one. Atomic groups: the grammar is deterministic, so backtracking
# could only waste time on a line that does not match.
_FIELD = rb'(?>"[^"\r\n]*+(?:""[^"\r\n]*+)*+"(?:[^",\r\n][^,\r\n]*+)?|[^",\r\n][^,\r\n]*+|)'
# Consecutive lines that hold a quote and are each a whole record: for the quoted lines
# that numpy's check (_plain_records, 3x faster) leaves, the non-strict ones. Lines without
# quotes are left to bytes.find/count, faster still.
_QUOTED_RUN = re.compile(
    rb'(?>(?=[^"\r\n]*+")' + _FIELD + rb"(?:," + _FIELD + rb")*+(?:\r\n|\n|\r))++"
)
_QUOTE_OR_COMMA = re.compile(r'[",]')
# The bytes a quote may follow when it opens a field, or be followed by when it closes.
_FIELD_EDGE = np.zeros(256, dtype=bool)
_FIELD_EDGE[list(b'\n\r",')] = True


class ByteSource(Protocol):
    """What the planner reads: an S3 streaming body, an open file, a BytesIO."""

    def read(self, size: int, /) -> bytes: ...


@dataclass(frozen=True)
class Shard:
    index: int  # 0-based
    start: int  # byte offset in the file; shard 0 starts at 0 and holds the header
    end: int  # exclusive
    first_line: int  # physical line (1-based) of the shard's first byte


@dataclass(frozen=True)
class Plan:
    header_end: int  # just past the header record (a BOM and blank records before it included)
    header_lines: int  # physical lines up to and including the header record
    shards: list[Shard]  # contiguous, covering [0, size); at least one
    size: int
    lines: int  # physical lines in the file

    def to_items(self) -> list[dict[str, int]]:
        """The shards as JSON-able dicts: the Map's items."""
        return [
            {"index": s.index, "start": s.start, "end": s.end, "first_line": s.first_line}
            for s in self.shards
        ]


@dataclass(frozen=True)
class Unplannable:
    reason: str


def plan_shards(
    stream: ByteSource,
    *,
    shard_lines: int,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    block_size: int = DEFAULT_BLOCK_SIZE,
    align_lines: int = 1,
) -> Plan | Unplannable:
    """Shards of the CSV STREAM (read once, with .read(n) only), each cut at a record start.

    A shard closes at the first record boundary where it holds shard_lines physical lines
    or shard_bytes bytes (for shard 0, counted from the end of the header, so it always
    holds a record past the header when there is one); no shard is empty. Memory: a block
    and at most one record of up to max_line_bytes (a longer one is skipped, not kept).

    With ALIGN_LINES, only the first record boundary at or past each multiple of that
    many lines (counted from the file's first line) is a cut: where the engine with
    chunk_rows=ALIGN_LINES always ends a chunk, so a shard scores the very chunks one
    pass scores.
    """
    if min(shard_lines, shard_bytes, max_line_bytes, block_size, align_lines) < 1:
        raise ValueError("shard sizes, max_line_bytes, block_size and align_lines must be positive")
    tap = _Tap(stream, block_size)
    header = _read_header(tap, max_line_bytes)
    if isinstance(header, Unplannable):
        return header
    header_end, header_lines = header
    scanner = _Scanner(
        base=header_end,
        line=header_lines,
        shard_lines=shard_lines,
        shard_bytes=shard_bytes,
        max_line_bytes=max_line_bytes,
        field_limit=csv.field_size_limit(),
        align_lines=align_lines,
    )
    size = scanner.scan(stream, tap.rest(header_end), tap.eof, block_size)
    if scanner.cont:
        return Unplannable(_unbalanced(scanner.rec_line))
    starts = [(0, 1), *((at, line) for at, line in scanner.cuts if at < size)]
    ends = [at for at, _ in starts[1:]] + [size]
    shards = [
        Shard(index=i, start=start, end=end, first_line=line)
        for i, ((start, line), end) in enumerate(zip(starts, ends, strict=True))
    ]
    return Plan(header_end, header_lines, shards, size, scanner.line)


def _unbalanced(line: int) -> str:
    return (
        f"an unbalanced quote: the quoted field in the record that starts on line {line} "
        "never ends; the file cannot be split safely"
    )


# -- the header, read by the engine's own code ------------------------------------------


class _Tap(io.BufferedIOBase):
    """The stream as the header's text reader sees it (reads filled as BytesIO fills
    them, so a decoding error names the line the engine names), keeping the bytes from
    ``start`` on for the scan that follows."""

    def __init__(self, stream: ByteSource, block_size: int) -> None:
        super().__init__()
        self._stream = stream
        self._block_size = block_size
        self.data = bytearray()
        self.start = 0  # file offset of data[0]
        self._at = 0  # index in data of the next byte to serve
        self.eof = False
        self.head: bytes | None = None  # the file's first bytes (a BOM?)

    @property
    def name(self) -> str:
        return "<planned stream>"

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        want = size if size is not None and size >= 0 else -1
        while not self.eof and (want < 0 or len(self.data) - self._at < want):
            block = self._stream.read(self._block_size)
            if block:
                self.data += block
            else:
                self.eof = True
        if self.head is None and (len(self.data) >= len(BOM) or self.eof):
            # Before the text reader returns any text, so before anything is dropped.
            self.head = bytes(self.data[: len(BOM)])
        end = len(self.data) if want < 0 else self._at + want
        got = bytes(self.data[self._at : end])
        self._at += len(got)
        return got

    def read1(self, size: int = -1, /) -> bytes:
        return self.read(size)

    def drop_before(self, offset: int) -> None:
        """Forget the bytes before OFFSET (the text reader has decoded them)."""
        cut = min(offset - self.start, self._at)
        if cut > 0:
            del self.data[:cut]
            self.start += cut
            self._at -= cut

    def rest(self, offset: int) -> bytes:
        """The bytes read so far from OFFSET on."""
        return bytes(memoryview(self.data)[offset - self.start :])


class _CountingText:
    """The engine's text stream, counting the UTF-8 bytes and lines its readline returned
    (valid UTF-8 encodes back to the same bytes) and the line each record starts on."""

    def __init__(self, tap: _Tap) -> None:
        self._text = io.TextIOWrapper(tap, encoding="utf-8-sig", newline="")
        self._text._CHUNK_SIZE = _TEXT_CHUNK  # type: ignore[attr-defined]
        self._tap = tap
        self.pending: list[str] = []  # the _Lines' own: empty when a record starts
        self.consumed = 0  # bytes, a BOM not counted
        self.lines = 0
        self.record_line = 1

    def readline(self, size: int = -1, /) -> str:
        if not self.pending:
            self.record_line = self.lines + 1
        line = self._text.readline(size)
        if line:
            self.consumed += _utf8_len(line)
            self.lines += 1
            if self.consumed - self._tap.start > _KEEP_SLACK:  # many blank lines first
                self._tap.drop_before(self.consumed)
        return line


def _read_header(tap: _Tap, max_line_bytes: int) -> tuple[int, int] | Unplannable:
    """(header_end, header_lines), or the engine's reason for rejecting the file."""
    text = _CountingText(tap)
    source = _Lines(cast("TextIO", text), max_line_bytes)  # it only calls readline
    text.pending = source.pending
    try:
        _, raw, lines = _first_record(source)
    except FileRejected as exc:
        return Unplannable(str(exc))
    if _ends_quoted(raw):  # the header swallowed the rest of the file
        return Unplannable(_unbalanced(text.record_line))
    bom = len(BOM) if tap.head == BOM else 0
    return bom + text.consumed, lines


def _ends_quoted(record: str) -> bool:
    """Whether the CSV reader is inside a quoted field at the end of RECORD's text (its
    line breaks outside quoted fields stripped, as _first_record's raw text is)."""
    state, after = _START, 0
    for match in _QUOTE_OR_COMMA.finditer(record):
        at = match.start()
        if at > after and state != _QUOTED:
            state = _UNQUOTED  # other characters: a field has begun, or goes on unquoted
        if record[at] == '"':
            state = {_START: _QUOTED, _QUOTED: _AFTER_QUOTE, _AFTER_QUOTE: _QUOTED}.get(
                state, _UNQUOTED
            )
        elif state != _QUOTED:
            state = _START
        after = at + 1
    return state == _QUOTED


# -- the records after the header, on bytes -----------------------------------------------


def _count_ends(buf: bytes, start: int, stop: int) -> int:
    """Line ends in (START, STOP] (START a line start, or STOP of a range before).

    Additive over adjacent ranges: a "\\r\\n" cut by STOP ends past it, and is counted
    in the range that holds its "\\n"."""
    ends = buf.count(b"\n", start, stop)
    if buf.find(b"\r", start, stop) >= 0:  # a memchr: files without "\r" skip two counts
        ends += buf.count(b"\r", start, stop) - buf.count(b"\r\n", start, stop)
        if buf[stop - 1] == 13 and buf[stop : stop + 1] == b"\n":
            ends -= 1
    return ends


def _line_end(buf: bytes, at: int, stop: int) -> tuple[int, int]:
    """(where its text ends, where it ends) for the line that goes on at AT; STOP is past
    a line end, so there is one."""
    newline = buf.find(b"\n", at, stop)
    cr = buf.find(b"\r", at, newline if newline >= 0 else stop)
    if cr >= 0:
        return cr, cr + 2 if buf[cr + 1 : cr + 2] == b"\n" else cr + 1
    return newline, newline + 1


def _nth_end(buf: bytes, start: int, stop: int, n: int) -> tuple[int, int]:
    """The N-th line end after START, up to STOP: (where, N), or (-1, how many) if fewer."""
    low, width, need = start, max(_LINEAR, n * 32), n
    while True:  # gallop: the work stays proportional to the distance
        if low >= stop:
            return -1, n - need
        high = min(low + width, stop)
        found = _count_ends(buf, low, high)
        if found >= need:
            break
        need -= found
        low, width = high, width * 2
    while high - low > _LINEAR:
        middle = (low + high) // 2
        found = _count_ends(buf, low, middle)
        if found >= need:
            high = middle
        else:
            need, low = need - found, middle
    for _ in range(need):
        _, low = _line_end(buf, low, stop)
    return low, n


def _aligned(lines: int, align: int) -> int:
    """The first multiple of ALIGN at or past LINES."""
    return -(-lines // align) * align


def _upto(buf: bytes, start: int, stop: int, size: int) -> int:
    """The first line end at least SIZE bytes past START, or STOP."""
    return stop if stop - start <= size else _line_end(buf, start + size, stop)[1]


def _plain_records(
    buf: bytes, start: int, stop: int, limit: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """The records from START (a record start) to STOP (a line end) that are certainly
    quoted the plain way, up to the first that may not be, by a check numpy makes on all
    of them at once: where each ends (past its line break, from START), and the physical
    lines up to there.

    Number the quotes from START on. Where each even one (an opening quote) follows a
    comma, a line break or a quote, and each odd one (a closing quote) is followed by a
    comma, a quote or a line break, the reader's states agree with that numbering (a
    quote after a closing one is a doubled quote): a record ends at the first line end
    after an even number of quotes. One that spans lines must also stay within LIMIT
    bytes (the byte limit and the field size limit: a field's characters are at most
    its bytes), so that neither cuts it short. The first quote elsewhere (non-strict
    CSV), record over LIMIT, or record still open at STOP, stops the check.
    """
    text: npt.NDArray[np.uint8] = np.frombuffer(buf, np.uint8, stop - start, start)
    size = len(text)
    quotes = np.flatnonzero(text == 34)
    ends = np.flatnonzero(text == 10)  # a line's last byte
    if buf.find(b"\r", start, stop) >= 0:
        crs = np.flatnonzero(text == 13)
        lone = crs[text[np.minimum(crs + 1, size - 1)] != 10]  # the last byte is a break
        ends = np.sort(np.concatenate((ends, lone)))
    # Record ends: the line ends after an even number of quotes (as indexes in ENDS).
    last = np.flatnonzero((np.searchsorted(quotes, ends) & 1) == 0)
    record_ends = ends[last]
    record_starts = np.concatenate(([0], record_ends + 1))  # an open one's last
    problem = size if last.size and last[-1] == len(ends) - 1 else int(record_starts[-1])
    # Records over more than one line: their text up to their last line break.
    spans = np.flatnonzero(np.diff(last, prepend=-1) > 1)
    if spans.size:
        text_ends = record_ends[spans]
        text_ends = text_ends - ((text[text_ends] == 10) & (text[text_ends - 1] == 13))
        over = np.flatnonzero(text_ends - record_starts[spans] > limit)
        if over.size:
            problem = min(problem, int(record_starts[spans[over[0]]]))
    # The quotes' numbering holds up to the first of them out of place; text[-1] (before
    # a quote at START) is a line break.
    for edges, after in ((quotes[0::2] - 1, quotes[0::2]), (quotes[1::2] + 1, quotes[1::2])):
        bad = np.flatnonzero(~_FIELD_EDGE[text[edges]])
        if bad.size:
            problem = min(problem, int(after[bad[0]]))
    kept = int(np.searchsorted(record_ends, problem))  # the records before the problem's
    return record_ends[:kept] + 1, last[:kept] + 1


class _Scanner:
    """The engine's record boundaries after the header, on raw bytes, and the cuts."""

    def __init__(
        self,
        *,
        base: int,
        line: int,
        shard_lines: int,
        shard_bytes: int,
        max_line_bytes: int,
        field_limit: int,
        align_lines: int,
    ) -> None:
        self.base = base  # file offset of the current buffer's first byte
        self.line = line  # physical lines done
        self.shard_lines = shard_lines
        self.shard_bytes = shard_bytes
        self.max_bytes = max_line_bytes
        self.field_limit = field_limit
        self.align = align_lines
        self.last_end_line = line  # physical lines up to the last record end
        # A record still open at a line start: the reader is inside a quoted field.
        self.cont = False
        self.rec_start = 0  # its file offset
        self.rec_line = 0  # its first line
        self.field_chars = 0  # characters of the open field so far
        self._ascii = True  # the current buffer's (characters are then bytes)
        self._window = self._run = _MIN_WINDOW
        self._numpy_wait = self._numpy_backoff = self._run_wait = self._run_backoff = 0
        # The open shard: what counts towards its size starts here.
        self.shard_start = base
        self.shard_line_count = 0
        self.cuts: list[tuple[int, int]] = []  # (offset, first line)

    def scan(self, stream: ByteSource, buf: bytes, eof: bool, block_size: int) -> int:
        """Read the rest of STREAM after BUF (the bytes already read past the header);
        return the file's size."""
        skipping = False  # to the end of a line that put its record over the byte limit
        while True:
            if not eof:
                block = stream.read(block_size)
                if block:
                    buf = buf + block if buf else block
                else:
                    eof = True
            at = 0
            if skipping:
                at = self._skip(buf, eof)
                if at < 0:  # the line goes on past BUF (only a "\r" left to look at)
                    kept = 1 if buf.endswith(b"\r") else 0
                    self.base += len(buf) - kept
                    buf = buf[len(buf) - kept :]
                    continue
                skipping = False
            if eof:
                last = max(buf.rfind(b"\n", at), buf.rfind(b"\r", at), at - 1) + 1
                self._lines(buf, at, last)
                if last < len(buf):  # a last line without a line break
                    self._slow_line(buf, last, len(buf), len(buf))
                return self.base + len(buf)
            # Only whole lines, and a "\r" at the end may yet be a "\r\n".
            end = max(buf.rfind(b"\n", at), buf.rfind(b"\r", at))
            if end == len(buf) - 1 and buf[end] == 13:
                end = max(buf.rfind(b"\n", at, end), buf.rfind(b"\r", at, end))
            stop = max(end + 1, at)
            self._lines(buf, at, stop)
            self.base += stop
            buf = buf[stop:]
            start = self.rec_start if self.cont else self.base
            text_end = self.base + len(buf) - buf.endswith(b"\r")
            if buf and text_end - start > self.max_bytes:
                # Its record ends with this line whatever it holds: no need to keep it.
                kept = 1 if buf.endswith(b"\r") else 0
                self.base += len(buf) - kept
                buf = buf[len(buf) - kept :]
                skipping = True

    def _skip(self, buf: bytes, eof: bool) -> int:
        """End the over-long line that BUF goes on with: where it ends, or -1 if past BUF."""
        newline = buf.find(b"\n")
        cr = buf.find(b"\r", 0, newline if newline >= 0 else len(buf))
        if cr >= 0 and (cr + 1 < len(buf) or eof):
            end = cr + 2 if buf[cr + 1 : cr + 2] == b"\n" else cr + 1
        elif cr < 0 and newline >= 0:
            end = newline + 1
        elif cr < 0 and eof:
            end = len(buf)
        else:
            return -1
        self.line += 1
        self.shard_line_count += 1
        self.cont = False
        self._record_end(self.base + end)
        return end

    def _lines(self, buf: bytes, at: int, stop: int) -> None:
        """The whole lines in [AT, STOP)."""
        self._ascii = buf.isascii()
        while at < stop:
            if self.cont:
                text_end, end = _line_end(buf, at, stop)
                self._slow_line(buf, at, text_end, end)
                at = end
                continue
            quote = buf.find(b'"', at, stop)
            if quote < 0:
                self._whole_records(buf, at, stop)
                return
            line_start = max(buf.rfind(b"\n", at, quote), buf.rfind(b"\r", at, quote)) + 1
            if line_start > at:
                self._whole_records(buf, at, line_start)
            else:
                line_start = at
            at = self._quoted_lines(buf, line_start, stop)

    def _quoted_lines(self, buf: bytes, at: int, stop: int) -> int:
        """Records from AT (a record start, on a line with a quote) as far as one check
        goes: numpy's for plainly quoted ones, else the regular expression's for lines
        that are each a record, else the reader's states for one line. Where it got to.

        A check that fails on the very first record waits a while before its next try
        (twice as long each time), so records that need the next one pay little for it.
        """
        if self._numpy_wait:
            self._numpy_wait -= 1
        else:
            window_end = _upto(buf, at, stop, self._window)
            ends, lines = _plain_records(buf, at, window_end, min(self.max_bytes, self.field_limit))
            if ends.size:
                closed = at + int(ends[-1])
                self._window = min(
                    self._window * 2 if closed == window_end else 2 * (closed - at), _MAX_WINDOW
                )
                self._window = max(self._window, _MIN_WINDOW)
                self._run, self._numpy_backoff = _MIN_WINDOW, 0
                self._records(at, ends, lines)
                return closed
            self._window = _MIN_WINDOW
            self._numpy_backoff = min(2 * self._numpy_backoff + 1, _MAX_BACKOFF)
            self._numpy_wait = self._numpy_backoff
        if self._run_wait:
            self._run_wait -= 1
        else:
            run = _QUOTED_RUN.match(buf, at, _upto(buf, at, stop, self._run))
            self._run = min(self._run * 2, _MAX_WINDOW)
            if run is not None:
                self._run_backoff = 0
                self._whole_records(buf, at, run.end())
                return run.end()
            self._run_backoff = min(2 * self._run_backoff + 1, _MAX_BACKOFF)
            self._run_wait = self._run_backoff
        text_end, end = _line_end(buf, at, stop)
        self._slow_line(buf, at, text_end, end)
        return end

    def _whole_records(self, buf: bytes, at: int, stop: int) -> None:
        """Lines [AT, STOP) that are each a whole record: counted, cut where a shard fills.
        A record per line: the aligned ends are those after a multiple of align lines."""
        base = self.base
        while at < stop:
            done = self.line
            lines = _aligned(done + self.shard_lines - self.shard_line_count, self.align) - done
            # The shard's byte target is met at the first line end at or past it.
            target = max(self.shard_start + self.shard_bytes - base, at + 1)
            if target <= stop:
                by_size = _line_end(buf, target - 1, stop)[1]
                upto = _aligned(done + _count_ends(buf, at, by_size), self.align)
                lines = min(lines, upto - done)
            cut, lines = _nth_end(buf, at, stop, lines)
            self.line += lines
            self.shard_line_count += lines
            self.last_end_line = self.line
            if cut < 0:
                return
            self._cut(base + cut)
            at = cut

    def _records(self, at: int, ends: npt.NDArray[np.intp], lines: npt.NDArray[np.intp]) -> None:
        """Records from AT that end at AT + ENDS, after LINES physical lines from AT:
        counted, cut where a shard fills (at the aligned ends only)."""
        base, done, align = self.base + at, 0, self.align
        totals = lines + self.line
        aligned = np.flatnonzero(totals // align > np.append(self.line, totals[:-1]) // align)
        aligned_lines, aligned_ends = lines[aligned], ends[aligned]
        while True:
            need = self.shard_lines - self.shard_line_count
            by_lines = int(np.searchsorted(aligned_lines, done + need))
            by_size = int(np.searchsorted(aligned_ends, self.shard_start + self.shard_bytes - base))
            pick = min(by_lines, by_size)
            end = int(aligned[pick]) if pick < len(aligned) else len(lines) - 1
            counted = int(lines[end]) - done
            self.line += counted
            self.shard_line_count += counted
            self.last_end_line = self.line
            if pick >= len(aligned):
                return
            self._cut(base + int(ends[end]))
            done += counted

    def _chars(self, buf: bytes, start: int, stop: int) -> int:
        if self._ascii:
            return stop - start
        return len(buf[start:stop].translate(None, _CONTINUATION))

    def _slow_line(self, buf: bytes, at: int, text_end: int, end: int) -> None:
        """One physical line [AT, END) of a record that needs the reader's states: the
        line that opens a quoted field it does not close, and the ones after it."""
        if self.cont:
            state, chars = _QUOTED, self.field_chars
        else:
            state, chars = _START, 0
            self.rec_start, self.rec_line = self.base + at, self.line + 1
        self.line += 1
        self.shard_line_count += 1
        if self.base + text_end - self.rec_start > self.max_bytes:
            # The engine measures a line before the reader sees it: the record ends here.
            self.cont = False
            self._record_end(self.base + end)
            return
        limit = self.field_limit
        while at < text_end:
            if state == _QUOTED:
                quote = buf.find(b'"', at, text_end)
                if quote < 0:
                    chars += self._chars(buf, at, text_end)
                    at = text_end
                elif quote + 1 < text_end and buf[quote + 1] == 34:  # "" is one quote
                    chars += self._chars(buf, at, quote) + 1
                    at = quote + 2
                else:
                    chars += self._chars(buf, at, quote)
                    state, at = _AFTER_QUOTE, quote + 1
            elif state == _UNQUOTED:
                comma = buf.find(b",", at, text_end)
                if comma < 0:
                    break  # unquoted to the line end: the record ends, long field or not
                chars += self._chars(buf, at, comma)
                if chars <= limit:
                    state, chars, at = _START, 0, comma + 1
            elif state == _START and buf[at] == 34:
                state, at = _QUOTED, at + 1
            elif buf[at] == 44:  # an empty field, or the one a closing quote ended
                at += 1
                state, chars = _START, 0
            else:  # a field begins, or a quoted one goes on unquoted (non-strict)
                state = _UNQUOTED
            if chars > limit:
                break  # csv.Error: the rest of the line is not read, the record ends
        chars += end - text_end  # a line break inside a quoted field belongs to it
        # Still inside a quoted field: the record goes on (or the file ends inside it).
        self.cont = state == _QUOTED and chars <= limit
        if self.cont:
            self.field_chars = chars
        else:
            self._record_end(self.base + end)

    def _record_end(self, end: int) -> None:
        aligned = self.line // self.align > self.last_end_line // self.align
        self.last_end_line = self.line
        full = (
            self.shard_line_count >= self.shard_lines or end - self.shard_start >= self.shard_bytes
        )
        if aligned and full:
            self._cut(end)

    def _cut(self, at: int) -> None:
        self.cuts.append((at, self.line + 1))
        self.shard_start = at
        self.shard_line_count = 0
