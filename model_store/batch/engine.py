"""Stream a CSV through a model in chunks: predictions and row errors out, counts kept.

Memory is bounded by the chunk size whatever the file size. Every data line ends up
exactly once in the predictions or in the errors, so rows_in = rows_scored + rows_failed.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import io
import itertools
import math
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain, islice
from typing import TYPE_CHECKING, TextIO, cast

import numpy as np
import numpy.typing as npt

from model_store.batch.report import MIN_DRIFT_ROWS, Drift, FeatureDrift, RowError
from model_store.batch.sinks import Sink
from model_store.drift import bin_counts, population_stability_index
from model_store.loading import LoadedModel

if TYPE_CHECKING:
    import _csv

DEFAULT_CHUNK_ROWS = 10_000
FIRST_ERRORS = 10
PROGRESS_EVERY = 100_000  # lines
ERROR_COLUMNS = ["line", "reason", "raw"]


class FileRejected(Exception):  # noqa: N818 - an outcome for the whole file
    """The file as a whole cannot be scored (no header, missing features, not UTF-8)."""


@dataclass
class Tally:
    rows_in: int = 0
    rows_scored: int = 0
    rows_failed: int = 0
    first_errors: list[RowError] = field(default_factory=list)
    passthrough_columns: list[str] = field(default_factory=list)
    drift: Drift | None = None

    def report_fields(self, duration: float) -> dict[str, object]:
        """What a succeeded BatchReport takes from the scoring run."""
        return {
            "rows_in": self.rows_in,
            "rows_scored": self.rows_scored,
            "rows_failed": self.rows_failed,
            "first_errors": self.first_errors,
            "passthrough_columns": self.passthrough_columns,
            "drift": self.drift,
            "duration_seconds": duration,
            "rows_per_second": self.rows_in / duration if duration > 0 else 0.0,
        }


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
        predictions: Sink,
        errors: Sink,
        chunk_rows: int,
        drift_threshold: float,
        header: list[str],
        columns: list[int],
        neutralise_formulas: bool,
    ) -> None:
        self.model = model
        self._safe = _neutralised if neutralise_formulas else _as_is
        self.features = model.manifest.feature_names
        self.predictions = predictions
        self.errors = errors
        self.chunk_rows = chunk_rows
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
        self.errors.write(f"{_csv_line(ERROR_COLUMNS)}\n".encode())
        self._output_header = _csv_line([self._safe(n) for n in _output_names(header, classes)])

    def start(self, header_raw: str) -> None:
        # The header row as written in the input leads the predictions.
        (header_raw,) = self._safe_raws([header_raw], [self._header])
        self.predictions.write(f"{header_raw},{self._output_header}\n".encode())

    def read(
        self,
        reader: _csv.Reader,
        copies: Iterator[str],
        taken: int,
        progress: Callable[[int], None] | None,
    ) -> None:
        """Every record after the header into chunks; each full chunk is flushed.

        The parser reads lines from one copy of the stream; a record's own text is taken
        from the other, as many lines as the parser just consumed. The per-record work is
        the hot loop of a batch: locals, no calls it can do without.
        """
        lines, raws, rows = self._lines, self._raws, self._rows
        add_line, add_raw, add_row = lines.append, raws.append, rows.append
        chunk_rows = self.chunk_rows
        next_progress = PROGRESS_EVERY
        while True:
            try:
                for row in reader:
                    consumed = reader.line_num - taken
                    raw = next(copies) if consumed == 1 else "".join(islice(copies, consumed))
                    if len(row) < 2 and (not row or not row[0].strip()):
                        taken += consumed
                        continue  # a blank line is not a data row
                    add_line(taken + 1)
                    add_raw(raw.rstrip("\r\n"))
                    add_row(row)
                    taken += consumed
                    if len(rows) == chunk_rows:
                        self.flush()
                        if progress is not None and taken >= next_progress:
                            progress(taken)
                            next_progress = taken - taken % PROGRESS_EVERY + PROGRESS_EVERY
                break
            except csv.Error as exc:
                # The parser refused a record and goes on with the next: so does the loop.
                consumed = reader.line_num - taken
                self._refused[len(rows)] = f"unparseable CSV: {exc}"
                add_line(taken + 1)
                add_raw("".join(islice(copies, consumed)).rstrip("\r\n"))
                add_row(None)
                taken += consumed
                if len(rows) == chunk_rows:
                    self.flush()
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
        rows = self.tally.rows_scored
        signal = rows >= MIN_DRIFT_ROWS
        self.tally.drift = Drift(
            threshold=self._drift_threshold,
            rows=rows,
            note=None
            if signal
            else f"too few rows for a drift signal: {rows:,} scored, {MIN_DRIFT_ROWS:,} needed; "
            "nothing is flagged",
            features={
                name: FeatureDrift(psi=psi, flagged=signal and psi > self._drift_threshold)
                for name, feature, counts in zip(
                    self.features, self.model.manifest.features, self._counts, strict=True
                )
                for psi in [population_stability_index(feature.stats.bins.fractions, counts)]
            },
        )
        return self.tally


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
    predictions: Sink,
    errors: Sink,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    drift_threshold: float = 0.2,
    progress: Callable[[int], None] | None = None,
    neutralise_formulas: bool = True,
) -> Tally:
    """Score a CSV text stream (decoded, newline='') into the two sinks.

    With ``neutralise_formulas``, every cell written that a spreadsheet would run as a
    formula gets a leading apostrophe; without, cells are written exactly as they came.

    Raises FileRejected when the file as a whole cannot be scored; the caller aborts
    the sinks then. Sinks are neither committed nor aborted here.
    """
    lines, copies = itertools.tee(text)
    reader = csv.reader(lines)
    try:
        with _collector_paused():
            return _score_records(
                reader,
                copies,
                model,
                predictions,
                errors,
                chunk_rows,
                drift_threshold,
                progress,
                neutralise_formulas,
            )
    except UnicodeDecodeError as exc:
        # exc.start counts from the decoder's current chunk, not the file: name the line.
        raise FileRejected(
            f"the file is not UTF-8 text ({exc.reason}) at or after line {reader.line_num + 1}"
        ) from None


def _score_records(
    reader: _csv.Reader,
    copies: Iterator[str],
    model: LoadedModel,
    predictions: Sink,
    errors: Sink,
    chunk_rows: int,
    drift_threshold: float,
    progress: Callable[[int], None] | None,
    neutralise_formulas: bool,
) -> Tally:
    header, header_raw, taken = _first_record(reader, copies)
    features = [f.name for f in model.manifest.features]
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
    )
    scorer.start(header_raw)
    scorer.read(reader, copies, taken, progress)
    return scorer.finish()


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


def _first_record(reader: _csv.Reader, copies: Iterator[str]) -> tuple[list[str], str, int]:
    """The header (the first record with a non-blank cell), its raw text, lines consumed."""
    taken = 0
    for row in reader:
        consumed = reader.line_num - taken
        raw = "".join(islice(copies, consumed)).rstrip("\r\n")
        taken += consumed
        if row and any(cell.strip() for cell in row):
            return row, raw, taken
    raise FileRejected("empty file: expected a header row naming the features")
