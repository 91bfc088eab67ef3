"""Stream a CSV through a model in chunks: predictions and row errors out, counts kept.

Memory is bounded by bytes whatever the file holds: no record longer than max_line_bytes
is ever read whole, a chunk is flushed within chunk_rows lines or at chunk_bytes of
text, whichever comes first (see _Scorer.read), and a row of more than max_columns cells
is let go as soon as it is seen. Every data line ends up exactly once in the predictions
or in the errors, so rows_in = rows_scored + rows_failed.

What the limits do (nothing is lost either way):
- the header over max_line_bytes or max_columns: the file is rejected whole, as nothing
  after it can be read against columns that were not read;
- a data record over max_line_bytes: a row error ("line is 6,000,000 bytes; the limit is
  1,048,576") whose raw cell holds only its first RAW_EXCERPT characters, so errors.csv
  stays bounded too; reading goes on at the next line;
- a data row of more than max_columns cells: a row error, its raw text kept whole.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import io
import math
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import TYPE_CHECKING, TextIO, cast

import numpy as np
import numpy.typing as npt

from model_store.batch.inputs import GZIP_ERRORS
from model_store.batch.report import (
    DEFAULT_DRIFT_THRESHOLD,
    MIN_DRIFT_ROWS,
    BatchReport,
    Drift,
    FeatureDrift,
    ModelRef,
    RowError,
    SourceInfo,
)
from model_store.batch.sinks import Output, Sink
from model_store.drift import bin_counts, population_stability_index
from model_store.gate import LoadedModel

if TYPE_CHECKING:
    import _csv

DEFAULT_CHUNK_ROWS = 10_000
# Text per chunk. Parsed, small cells cost up to ~20 bytes per character of text (a
# list slot and a str each), so a chunk of this much text stays under ~200 MB even at
# worst, while 10,000 ordinary rows (a few hundred KB) never reach it.
DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024
# A record (one line, or several when a quoted cell holds line breaks), in UTF-8 bytes
# without its line break: 1 MiB is thousands of times an ordinary row, and any record
# under it costs at most a few tens of MB once parsed.
DEFAULT_MAX_LINE_BYTES = 1024 * 1024
# Cells of a row. Fixed rather than a multiple of the model's features: pass-through
# columns (ids, context) are the file's business and wide exports have hundreds; 1,000
# caps a row at ~60 KB of cell objects beyond its text. Never below the model's own
# feature count (a file must be able to hold the features).
DEFAULT_MAX_COLUMNS = 1_000
RAW_EXCERPT = 1_000  # characters of an over-long record kept in errors.csv
_SKIP_CHARS = 64 * 1024  # the rest of an over-long line is read (and dropped) by this much
FIRST_ERRORS = 10
PROGRESS_EVERY = 100_000  # lines
ERROR_COLUMNS = ["line", "reason", "raw"]


class FileRejected(Exception):  # noqa: N818 - an outcome for the whole file
    """The file as a whole cannot be scored (no header, missing features, not UTF-8)."""


class _TooLong(Exception):  # noqa: N818 - a record, not a failure
    """A record over the byte limit, raised by the line source through the CSV reader.

    Every line of it has been read (the over-long one to its end, without keeping it);
    the reader is left mid-record, so the caller starts a new one with ``carry``.
    """

    def __init__(
        self, lines: int, size: int, limit: int, excerpt: str, carry: str, span: int
    ) -> None:
        super().__init__(f"{size} bytes")
        self.lines = lines  # physical lines of the record
        self.size = size  # its bytes, up to the end of the line that went over
        self.span = span  # its bytes with that line's break: where the next record starts
        self.limit = limit
        self.excerpt = excerpt  # its first RAW_EXCERPT characters
        self.carry = carry  # text read past the record: the next line's first piece

    def reason(self, first: int) -> str:
        if self.lines == 1:
            said = f"line is {self.size:,} bytes; the limit is {self.limit:,}"
        else:
            # The CSV reader was still inside a quoted cell; reading goes on at the next
            # line as a new record, whatever the rest of that cell was.
            said = (
                f"lines {first}-{first + self.lines - 1} are one record (a quoted cell holds "
                f"line breaks) of {self.size:,} bytes or more; the limit is {self.limit:,}"
            )
        if len(self.excerpt) >= RAW_EXCERPT:
            said += f"; raw shows its first {RAW_EXCERPT:,} characters"
        return said


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def _break_len(line: str) -> int:
    if line.endswith("\r\n"):
        return 2
    return 1 if line.endswith(("\n", "\r")) else 0


class _Lines:
    """The text's lines for the CSV reader, no record ever held past the byte limit.

    Lines are read with a size limit, so an over-long one is never materialised: a
    record that goes over raises _TooLong (the rest of its last line is read and
    dropped). ``pending`` holds the lines the reader took since the caller last emptied
    it: the current record's text, the CSV reader's own split into records kept as is.
    """

    def __init__(self, text: TextIO, max_bytes: int) -> None:
        self._read = text.readline
        self.limit = max_bytes
        # Characters per read: a line at the limit and its "\r\n". A read that fills
        # this without a line break is a piece of a longer line.
        self._size = max_bytes + 2
        # Up to this many characters a record is within the limit whatever its text
        # (UTF-8 takes 1-4 bytes a character): only longer ones are counted in bytes.
        self._quick = max_bytes // 4
        self.pending: list[str] = []

    def __call__(self, first: str = "") -> Iterator[str]:
        """A generator of lines, starting with FIRST if given (a _TooLong's carry)."""
        read, size, quick = self._read, self._size, self._quick
        pending = self.pending
        append = pending.append
        used = exact = 0
        line = first or read(size)
        while line:
            if not pending:  # a new record
                used = exact = 0
            used += len(line)
            if used > quick:
                exact = self._measure(line, exact)
            append(line)
            yield line
            line = read(size)

    def _measure(self, line: str, exact: int) -> int:
        """Bytes of the record so far with LINE (EXACT: before it, 0 if not yet counted).

        Raises _TooLong once the record is over the limit.
        """
        pending = self.pending
        if not exact:
            exact = sum(map(_utf8_len, pending))
        carry = ""
        if len(line) == self._size and not line.endswith("\n"):
            # A piece of a longer line (or one cut between "\r" and "\n"): over the limit
            # in characters already. The rest is read in bounded pieces and only counted.
            exact, cut, carry = self._rest_of_line(line, exact)
        else:
            exact += _utf8_len(line)
            cut = _break_len(line)
        if exact - cut <= self.limit:
            return exact
        excerpt = ""
        for part in (*pending, line):
            excerpt += part[: RAW_EXCERPT - len(excerpt)]
            if len(excerpt) >= RAW_EXCERPT:
                break
        raise _TooLong(len(pending) + 1, exact - cut, self.limit, excerpt, carry, exact)

    def _rest_of_line(self, piece: str, exact: int) -> tuple[int, int, str]:
        """Read on to the end of the line PIECE begins: (bytes so far, its line break's
        length, what was read past the line)."""
        read = self._read
        while True:
            exact += _utf8_len(piece)
            if piece.endswith("\n"):
                return exact, _break_len(piece), ""
            if piece.endswith("\r"):
                # With newline="" a "\r" ends a line, and a "\n" right after it belongs
                # to it; a size-limited read may have cut the two apart.
                after = read(self._size)
                if after == "\n":
                    return exact + 1, 2, ""
                return exact, 1, after
            piece = read(_SKIP_CHARS)
            if not piece:
                return exact, 0, ""  # the end of the file


@dataclass
class Tally:
    rows_in: int = 0
    rows_scored: int = 0
    rows_failed: int = 0
    first_errors: list[RowError] = field(default_factory=list)
    passthrough_columns: list[str] = field(default_factory=list)
    drift: Drift | None = None
    # Scored rows per training bin of each feature: what the drift is computed from, and
    # what shards of one file add up to get the same drift as one pass.
    bin_counts: list[list[int]] = field(default_factory=list)

    def report(
        self,
        *,
        source: SourceInfo,
        started_at: datetime,
        duration: float,
        model: ModelRef,
        outputs: dict[str, str],
    ) -> BatchReport:
        """The succeeded report of this scoring run."""
        return BatchReport(
            status="succeeded",
            source=source,
            model=model,
            outputs=outputs,
            rows_in=self.rows_in,
            rows_scored=self.rows_scored,
            rows_failed=self.rows_failed,
            first_errors=self.first_errors,
            passthrough_columns=self.passthrough_columns,
            drift=self.drift,
            started_at=started_at,
            duration_seconds=duration,
            rows_per_second=self.rows_in / duration if duration > 0 else 0.0,
        )


@dataclass(frozen=True)
class Part:
    """The text is one shard of a file (see model_store.batch.plan): the first shard is
    the file's start, header included; any other is the file's header followed by the
    shard's records, the first of them on FIRST_LINE of the file. Only the first shard
    writes the outputs' header rows, so the shards' outputs joined in order are one pass's."""

    first_line: int
    first: bool


@dataclass(frozen=True)
class Refused:
    """The file as a whole cannot be scored; its outputs were aborted."""

    reason: str


def score_stream(
    text: TextIO,
    model: LoadedModel,
    predictions: Sink,
    errors: Sink,
    *,
    gzipped: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    drift_threshold: float = DEFAULT_DRIFT_THRESHOLD,
    progress: Callable[[int], None] | None = None,
    neutralise_formulas: bool = True,
    part: Part | None = None,
) -> Tally | Refused:
    """Score TEXT into the two sinks (as score_text does), committed when it succeeds and
    aborted otherwise: a file that cannot be scored as a whole (including a .csv.gz that
    is not readable gzip: the bytes will not change on a retry) is Refused; any other
    failure propagates."""
    refusable: tuple[type[BaseException], ...] = GZIP_ERRORS if gzipped else ()
    try:
        with predictions, errors:
            return score_text(
                text,
                model,
                predictions,
                errors,
                chunk_rows=chunk_rows,
                drift_threshold=drift_threshold,
                progress=progress,
                neutralise_formulas=neutralise_formulas,
                part=part,
            )
    except FileRejected as exc:
        return Refused(str(exc))
    except refusable as exc:
        return Refused(f"not a readable gzip file ({type(exc).__name__}: {exc})")


def _match_columns(header: list[str], features: list[str]) -> list[int]:
    """Feature -> column index; case and surrounding spaces do not matter, order is free."""
    positions: dict[str, list[int]] = {}
    for index, name in enumerate(header):
        positions.setdefault(name.strip().casefold(), []).append(index)
    missing = [f for f in features if f.strip().casefold() not in positions]
    if missing:
        raise FileRejected(
            f"missing feature column(s): {', '.join(missing)}; the model needs "
            f"{', '.join(features)} and the header has {', '.join(h.strip() for h in header)}"
        )
    ambiguous = [f for f in features if len(positions[f.strip().casefold()]) > 1]
    if ambiguous:
        raise FileRejected(f"feature column(s) appear more than once: {', '.join(ambiguous)}")
    return [positions[f.strip().casefold()][0] for f in features]


def _output_names(header: list[str], classes: list[str]) -> list[str]:
    taken = {h.strip().casefold() for h in header}

    def fresh(name: str) -> str:
        while name.casefold() in taken:
            name = f"model_{name}"
        taken.add(name.casefold())
        return name

    return [
        fresh("prediction"),
        *(fresh(f"probability_{c}") for c in classes),
        fresh("source_line"),
    ]


def _row_problem(
    row: list[str], width: int, columns: list[int], features: list[str]
) -> tuple[str, list[float]]:
    """('' , values) for a good row, or (reason, []) for a bad one."""
    if len(row) != width:
        return f"expected {width} fields, found {len(row)}", []
    values = []
    for name, index in zip(features, columns, strict=True):
        cell = row[index].strip()
        if not cell:
            return f"empty value for {name}", []
        try:
            # float() also takes "1_000"; a CSV number never has underscores.
            if "_" in cell:
                raise ValueError(cell)
            value = float(cell)
        except ValueError:
            return f"{name}: {cell!r} is not a number", []
        if not math.isfinite(value):
            return f"{name}: {cell!r} is not a finite number", []
        values.append(value)
    return "", values


class _Scorer:
    """Rows in, chunks out: each chunk is validated, scored and written in one go."""

    def __init__(
        self,
        model: LoadedModel,
        predictions: Output,
        errors: Output,
        chunk_rows: int,
        drift_threshold: float,
        header: list[str],
        columns: list[int],
        neutralise_formulas: bool,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        max_columns: int = DEFAULT_MAX_COLUMNS,
    ) -> None:
        self.model = model
        self._safe = _neutralised if neutralise_formulas else _as_is
        self.features = model.manifest.feature_names
        self.predictions = predictions
        self.errors = errors
        self.chunk_rows = chunk_rows
        self.chunk_bytes = chunk_bytes
        self.max_columns = max_columns
        self.tally = Tally()
        self._width = len(header)
        self._columns = columns
        self._cells = operator.itemgetter(*columns)
        self._edges = [f.stats.bins.edges for f in model.manifest.features]
        self._counts = [np.zeros(len(e) + 1) for e in self._edges]
        self._drift_threshold = drift_threshold
        # The chunk: each record's first line, raw text and cells (None when the CSV
        # parser refused it, with its reason in _refused).
        self._lines: list[int] = []
        self._raws: list[str] = []
        self._rows: list[list[str] | None] = []
        self._refused: dict[int, str] = {}
        # A class name as a CSV cell, quoted once here rather than per row.
        classes = model.manifest.target.classes
        self._label_cells = {c: _csv_line([self._safe(c)]) for c in classes}
        self._header = header
        self.tally.passthrough_columns = [h.strip() for h in header]
        self._output_header = _csv_line([self._safe(n) for n in _output_names(header, classes)])

    def start(self, header_raw: str) -> None:
        # The header row as written in the input leads the predictions.
        (header_raw,) = self._safe_raws([header_raw], [self._header])
        self.predictions.write(f"{header_raw},{self._output_header}\n".encode())
        self.errors.write(f"{_csv_line(ERROR_COLUMNS)}\n".encode())

    def read(
        self,
        source: _Lines,
        reader: _csv.Reader,
        taken: int,
        progress: Callable[[int], None] | None,
    ) -> None:
        """Every record after the header into chunks; each full chunk is flushed.

        The parser reads lines from SOURCE, which keeps the current record's own text in
        ``pending`` for the loop to take. The per-record work is the hot loop of a batch:
        locals, no calls it can do without.

        A chunk ends at the first record end at or past the next physical line that is a
        multiple of chunk_rows (counted from the file's first line), or once its records
        (blank ones too) hold chunk_bytes bytes. Chunks are thus fixed by the file, not by
        where reading started: a shard that starts at a chunk's end (as the planner cuts
        them) makes the very chunks one pass makes, and a model's floating-point results,
        which can depend on the rows scored together, come out the same.
        """
        lines, raws, rows, refused = self._lines, self._raws, self._rows, self._refused
        add_line, add_raw, add_row = lines.append, raws.append, rows.append
        pending = source.pending
        chunk_rows, chunk_bytes = self.chunk_rows, self.chunk_bytes
        max_columns = self.max_columns
        size = 0  # UTF-8 bytes of the chunk's records, line breaks included
        next_flush = (taken // chunk_rows + 1) * chunk_rows
        next_progress = PROGRESS_EVERY
        while True:
            try:
                for row in reader:
                    if len(pending) == 1:
                        consumed = 1
                        raw = pending.pop()
                    else:
                        consumed = len(pending)
                        raw = "".join(pending)
                        pending.clear()
                    text_size = len(raw)
                    size += text_size if raw.isascii() else len(raw.encode())
                    if len(row) < 2 and (not row or not row[0].strip()):
                        taken += consumed  # a blank line is not a data row
                        if taken >= next_flush or size >= chunk_bytes:
                            self.flush()
                            size = 0
                            next_flush = (taken // chunk_rows + 1) * chunk_rows
                        continue
                    # A row of more cells than the limit has at least as many characters:
                    # only long rows are counted, and the cells of one over it let go.
                    add_line(taken + 1)
                    add_raw(raw.rstrip("\r\n"))
                    if text_size >= max_columns and len(row) > max_columns:
                        refused[len(rows)] = (
                            f"row has {len(row):,} fields; the limit is {max_columns:,}"
                        )
                        add_row(None)
                    else:
                        add_row(row)
                    taken += consumed
                    if taken >= next_flush or size >= chunk_bytes:
                        self.flush()
                        size = 0
                        next_flush = (taken // chunk_rows + 1) * chunk_rows
                        if progress is not None and taken >= next_progress:
                            progress(taken)
                            next_progress = taken - taken % PROGRESS_EVERY + PROGRESS_EVERY
                break
            except csv.Error as exc:
                # The parser refused a record and goes on with the next: so does the loop.
                refused[len(rows)] = f"unparseable CSV: {exc}"
                raw = "".join(pending)
                consumed = len(pending)
                pending.clear()
                size += _utf8_len(raw)
            except _TooLong as exc:
                # Its lines are all read; the reader, left inside it, is replaced.
                refused[len(rows)] = exc.reason(taken + 1)
                raw, consumed = exc.excerpt, exc.lines
                pending.clear()
                size += exc.span
                reader = csv.reader(source(exc.carry))
            except UnicodeDecodeError as exc:
                raise _not_utf8(exc, taken + len(pending) + 1) from None
            add_line(taken + 1)
            add_raw(raw.rstrip("\r\n"))
            add_row(None)
            taken += consumed
            if taken >= next_flush or size >= chunk_bytes:
                self.flush()
                size = 0
                next_flush = (taken // chunk_rows + 1) * chunk_rows
        self.flush()
        if progress is not None and taken >= next_progress:
            progress(taken)

    def flush(self) -> None:
        if not self._rows:
            return
        matrix = self._all_good()
        if matrix is not None:
            rows = cast("list[list[str]]", self._rows)  # all good: every row was parsed
            self._write_errors(self._score(matrix, self._lines, self._raws, rows))
        else:
            self._one_by_one()
        # Emptied in place: read() holds these very lists.
        self._lines.clear()
        self._raws.clear()
        self._rows.clear()
        self._refused.clear()

    def _all_good(self) -> npt.NDArray[np.float64] | None:
        """The chunk's feature matrix when every row is valid (the usual case), converted
        in one call; None as soon as anything needs a closer look row by row."""
        if self._refused:
            return None
        rows = cast("list[list[str]]", self._rows)  # none refused: every row was parsed
        if set(map(len, rows)) != {self._width}:
            return None
        picked = map(self._cells, rows)
        cells = list(chain.from_iterable(picked) if len(self._columns) > 1 else picked)
        if "_" in "".join(cells):  # float() takes "1_000"; a CSV number never has one
            return None
        try:
            # numpy parses each string as float() does (whitespace, exponents, nan, inf).
            values = np.array(cells, dtype=np.float64)
        except ValueError:  # an empty or non-numeric cell
            return None
        if not np.isfinite(values).all():
            return None
        return values.reshape(len(rows), len(self._columns))

    def _one_by_one(self) -> None:
        good_lines: list[int] = []
        good_raws: list[str] = []
        good_rows: list[list[str]] = []
        values: list[float] = []
        bad: list[tuple[int, str, str]] = []
        for i, (line, raw, row) in enumerate(zip(self._lines, self._raws, self._rows, strict=True)):
            reason = self._refused.get(i, "")
            if row is not None:
                reason, cells = _row_problem(row, self._width, self._columns, self.features)
            if reason:
                bad.append((line, reason, raw))
            elif row is not None:
                good_lines.append(line)
                good_raws.append(raw)
                good_rows.append(row)
                values.extend(cells)
        if good_lines:
            matrix = np.array(values, dtype=np.float64).reshape(len(good_lines), -1)
            bad += self._score(matrix, good_lines, good_raws, good_rows)
        self._write_errors(sorted(bad))

    def _score(
        self,
        matrix: npt.NDArray[np.float64],
        lines: list[int],
        raws: list[str],
        rows: list[list[str]],
    ) -> list[tuple[int, str, str]]:
        """Write the predictions of the rows the model can score; return the others."""
        result, unscorable = self.model.score(matrix)
        probabilities = result.probabilities
        labels = [self._label_cells[label] for label in result.labels]
        refused: list[tuple[int, str, str]] = []
        if unscorable:
            keep = np.ones(len(lines), dtype=bool)
            keep[list(unscorable)] = False
            refused = [(lines[i], why, raws[i]) for i, why in sorted(unscorable.items())]
            matrix = matrix[keep]
            lines = [line for line, k in zip(lines, keep.tolist(), strict=True) if k]
            raws = [raw for raw, k in zip(raws, keep.tolist(), strict=True) if k]
            labels = [label for label, k in zip(labels, keep.tolist(), strict=True) if k]
            probabilities = probabilities[keep] if probabilities is not None else None
        for i, edges in enumerate(self._edges):
            self._counts[i] += bin_counts(matrix[:, i], edges)
        if lines:
            # The record's own text carries the input columns, exactly as written (but for
            # cells a spreadsheet would run); the model's columns are appended to it.
            if unscorable:
                rows = [row for row, k in zip(rows, keep.tolist(), strict=True) if k]
            columns: list[Iterable[str]] = [self._safe_raws(raws, rows), labels]
            if probabilities is not None:
                columns.append(_probability_cells(probabilities))
            columns.append(map(str, lines))
            written = map(",".join, zip(*columns, strict=True))
            self.predictions.write(("\n".join(written) + "\n").encode())
            self.tally.rows_scored += len(lines)
        return refused

    def _write_errors(self, bad: list[tuple[int, str, str]]) -> None:
        """Rejected rows, in line order: (line, reason, raw text)."""
        if not bad:
            return
        room = FIRST_ERRORS - len(self.tally.first_errors)
        self.tally.first_errors += [RowError(line=line, reason=why) for line, why, _ in bad[:room]]
        safe = self._safe
        self.errors.write(_csv_bytes([(line, safe(why), safe(raw)) for line, why, raw in bad]))
        self.tally.rows_failed += len(bad)

    def _safe_raws(self, raws: list[str], rows: list[list[str]]) -> list[str]:
        """RAWS, each rewritten from its cells if one would run as a spreadsheet formula."""
        search = _FORMULA_START.search
        if self._safe is _as_is or not search("\n".join(raws)):
            return raws  # the usual chunk: one regular-expression pass over its text
        return [
            _rewritten(raw, row) if search(raw) else raw
            for raw, row in zip(raws, rows, strict=True)
        ]

    def finish(self) -> Tally:
        self.tally.rows_in = self.tally.rows_scored + self.tally.rows_failed
        self.tally.bin_counts = [[int(c) for c in counts.tolist()] for counts in self._counts]
        self.tally.drift = drift_of(
            self.tally.rows_scored,
            self.tally.bin_counts,
            {f.name: f.stats.bins.fractions for f in self.model.manifest.features},
            self._drift_threshold,
        )
        return self.tally


def drift_of(
    rows: int,
    bin_counts: Sequence[Sequence[int]],
    reference: dict[str, list[float]],
    threshold: float,
) -> Drift:
    """Each feature's PSI from the ROWS scored and their counts per training bin
    (REFERENCE: the training fractions per bin, by feature, in the model's feature order)."""
    signal = rows >= MIN_DRIFT_ROWS
    return Drift(
        threshold=threshold,
        rows=rows,
        note=None
        if signal
        else f"too few rows for a drift signal: {rows:,} scored, {MIN_DRIFT_ROWS:,} needed; "
        "nothing is flagged",
        features={
            name: FeatureDrift(psi=psi, flagged=signal and psi > threshold)
            for (name, fractions), counts in zip(reference.items(), bin_counts, strict=True)
            for psi in [population_stability_index(fractions, np.asarray(counts, dtype=np.float64))]
        },
    )


# Where a cell a spreadsheet would run as a formula can begin in a record's text.
_FORMULA_START = re.compile(r'(?:^|,)"?[=+\-@\t\r]', re.MULTILINE)
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def _neutralised(cell: str) -> str:
    """CELL with a leading apostrophe if a spreadsheet would run it as a formula.

    A cell that starts with =, +, -, @, a tab or a carriage return and is not a number
    (negative numbers stay as they are): OWASP's advice against CSV injection.
    """
    if cell[:1] in _FORMULA_CHARS and not _NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


_FORMULA_CHARS = frozenset("=+-@\t\r")


def _rewritten(raw: str, row: list[str]) -> str:
    """The record's text again from its cells, if one of them needed an apostrophe."""
    safe = [_neutralised(cell) for cell in row]
    return _csv_line(safe) if safe != row else raw


def _as_is(cell: str) -> str:
    return cell


def _probability_cells(probabilities: npt.NDArray[np.float64]) -> list[str]:
    """Each row's probabilities as "p1,p2,...", every float as repr() writes it.

    One repr of the whole matrix and two string operations, all in C: 40 % faster than
    joining each row's reprs, and the same text (a repr holds no ", " or "]").
    """
    return repr(probabilities.tolist())[2:-2].replace(", ", ",").split("],[")


def _csv_bytes(rows: Sequence[Sequence[object]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


def _csv_line(cells: Sequence[object]) -> str:
    return _csv_bytes([cells]).decode().rstrip("\n")


def score_text(
    text: TextIO,
    model: LoadedModel,
    predictions: Output,
    errors: Output,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    drift_threshold: float = DEFAULT_DRIFT_THRESHOLD,
    progress: Callable[[int], None] | None = None,
    neutralise_formulas: bool = True,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    max_columns: int = DEFAULT_MAX_COLUMNS,
    part: Part | None = None,
) -> Tally:
    """Score a CSV text stream (decoded, newline='') into the two sinks.

    With ``neutralise_formulas``, every cell written that a spreadsheet would run as a
    formula gets a leading apostrophe; without, cells are written exactly as they came.
    A chunk is scored and written at ``chunk_rows`` records or ``chunk_bytes`` characters
    of text (bytes, for ASCII); ``max_line_bytes`` and ``max_columns`` bound a record as
    the module's docstring says.

    With ``part``, TEXT is the file's header and one shard of it (see Part).

    Raises FileRejected when the file as a whole cannot be scored. Outputs are only
    written to here; score_stream commits or aborts them.
    """
    if min(chunk_rows, chunk_bytes, max_line_bytes, max_columns) < 1:
        raise ValueError("chunk and record limits must be positive")
    source = _Lines(text, max_line_bytes)
    with _collector_paused():
        header, header_raw, taken = _first_record(source)
        features = [f.name for f in model.manifest.features]
        max_columns = max(max_columns, len(features))
        if len(header) > max_columns:
            raise FileRejected(
                f"the header has {len(header):,} columns; the limit is {max_columns:,}"
            )
        columns = _match_columns(header, features)
        scorer = _Scorer(
            model,
            predictions,
            errors,
            chunk_rows,
            drift_threshold,
            header,
            columns,
            neutralise_formulas,
            chunk_bytes,
            max_columns,
        )
        if part is None or part.first:
            scorer.start(header_raw)
        else:
            taken = part.first_line - 1
        scorer.read(source, csv.reader(source()), taken, progress)
        return scorer.finish()


def _not_utf8(exc: UnicodeDecodeError, line: int) -> FileRejected:
    # exc.start counts from the decoder's current chunk, not the file: name the line.
    return FileRejected(f"the file is not UTF-8 text ({exc.reason}) at or after line {line}")


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a file streams through.

    Every parsed record is a new list, so the collector ran every few hundred rows and
    walked everything alive each time: a third of the engine's time (measured). Records,
    cells and chunks form no reference cycles and are freed by reference counting as
    usual; whatever else might make cycles meanwhile is collected when this ends.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _first_record(source: _Lines) -> tuple[list[str], str, int]:
    """The header (the first record with a non-blank cell), its raw text, lines consumed.

    The header must be whole and parse: the file is rejected otherwise.
    """
    pending = source.pending
    taken = 0
    try:
        for row in csv.reader(source()):
            raw = "".join(pending).rstrip("\r\n")
            taken += len(pending)
            pending.clear()
            if row and any(cell.strip() for cell in row):
                return row, raw, taken
    except _TooLong as exc:
        raise FileRejected(
            f"the header (line {taken + 1}) is {exc.size:,} bytes; the limit is {exc.limit:,}"
        ) from None
    except csv.Error as exc:
        raise FileRejected(f"the header (line {taken + 1}) is not valid CSV: {exc}") from None
    except UnicodeDecodeError as exc:
        raise _not_utf8(exc, taken + len(pending) + 1) from None
    raise FileRejected("empty file: expected a header row naming the features")
