"""Stream a CSV through a model in chunks: predictions and row errors out, counts kept.

Memory is bounded by the chunk size whatever the file size. Every data line ends up
exactly once in the predictions or in the errors, so rows_in = rows_scored + rows_failed.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np

from model_store.batch.report import Drift, FeatureDrift, RowError
from model_store.batch.sinks import Sink
from model_store.drift import bin_counts, population_stability_index
from model_store.loading import LoadedModel

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


class _LineRecorder:
    """Feeds csv.reader line by line and remembers the raw text of the current record."""

    def __init__(self, text: TextIO) -> None:
        self._text = text
        self.consumed: list[str] = []
        self.line = 0

    def __iter__(self) -> Iterator[str]:
        for line in self._text:
            self.line += 1
            self.consumed.append(line)
            yield line

    def take(self) -> tuple[int, str]:
        """(first line number, raw text) of the record just read; forgets it."""
        consumed = self.consumed
        first = self.line - len(consumed) + 1
        raw = (consumed[0] if len(consumed) == 1 else "".join(consumed)).rstrip("\r\n")
        consumed.clear()
        return first, raw


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
    def __init__(
        self,
        model: LoadedModel,
        predictions: Sink,
        errors: Sink,
        chunk_rows: int,
        drift_threshold: float,
    ) -> None:
        self.model = model
        self.features = model.manifest.feature_names
        self.predictions = predictions
        self.errors = errors
        self.chunk_rows = chunk_rows
        self.tally = Tally()
        self._edges = [f.stats.bins.edges for f in model.manifest.features]
        self._counts = [np.zeros(len(e) + 1) for e in self._edges]
        self._drift_threshold = drift_threshold
        self._values: list[float] = []
        self._raws: list[str] = []
        self._lines: list[int] = []
        self._bad: list[tuple[int, str, str]] = []
        # A class name as a CSV cell, quoted once here rather than per row.
        self._label_cells = {c: _csv_line([c]) for c in model.manifest.target.classes}

    def write_headers(self, header: list[str], raw: str) -> None:
        classes = self.model.manifest.target.classes
        self.tally.passthrough_columns = [h.strip() for h in header]
        self.predictions.write(f"{raw},{_csv_line(_output_names(header, classes))}\n".encode())
        self.errors.write(f"{_csv_line(ERROR_COLUMNS)}\n".encode())

    def good(self, line: int, raw: str, values: list[float]) -> None:
        self._values.extend(values)
        self._raws.append(raw)
        self._lines.append(line)
        if len(self._raws) == self.chunk_rows:
            self.flush()

    def bad(self, line: int, reason: str, raw: str) -> None:
        self._bad.append((line, reason, raw))
        if len(self.tally.first_errors) < FIRST_ERRORS:
            self.tally.first_errors.append(RowError(line=line, reason=reason))
        if len(self._bad) >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        n = len(self._raws)
        if n:
            matrix = np.array(self._values, dtype=np.float64).reshape(n, len(self.features))
            result = self.model.predict(matrix)
            for i, edges in enumerate(self._edges):
                self._counts[i] += bin_counts(matrix[:, i], edges)
            labels = [self._label_cells[label] for label in result.labels]
            # The record's own text carries the input columns, exactly as written; the
            # model's columns are appended to it.
            if result.probabilities is None:
                out = [
                    f"{raw},{label},{line}\n"
                    for raw, label, line in zip(self._raws, labels, self._lines, strict=True)
                ]
            else:
                probabilities = [",".join(map(repr, p)) for p in result.probabilities.tolist()]
                out = [
                    f"{raw},{label},{p},{line}\n"
                    for raw, label, p, line in zip(
                        self._raws, labels, probabilities, self._lines, strict=True
                    )
                ]
            self.predictions.write("".join(out).encode())
            self.tally.rows_scored += n
            self._values.clear()
            self._raws.clear()
            self._lines.clear()
        if self._bad:
            self.errors.write(_csv_bytes([list(b) for b in self._bad]))
            self.tally.rows_failed += len(self._bad)
            self._bad.clear()

    def finish(self) -> Tally:
        self.flush()
        self.tally.rows_in = self.tally.rows_scored + self.tally.rows_failed
        self.tally.drift = Drift(
            threshold=self._drift_threshold,
            features={
                name: FeatureDrift(psi=psi, flagged=psi > self._drift_threshold)
                for name, feature, counts in zip(
                    self.features, self.model.manifest.features, self._counts, strict=True
                )
                for psi in [population_stability_index(feature.stats.bins.fractions, counts)]
            },
        )
        return self.tally


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
) -> Tally:
    """Score a CSV text stream (decoded, newline='') into the two sinks.

    Raises FileRejected when the file as a whole cannot be scored; the caller aborts
    the sinks then. Sinks are neither committed nor aborted here.
    """
    recorder = _LineRecorder(text)
    reader = csv.reader(recorder)
    try:
        first = _first_record(reader, recorder)
        if first is None:
            raise FileRejected("empty file: expected a header row naming the features")
        header, header_raw = first
        features = [f.name for f in model.manifest.features]
        columns = _match_columns(header, features)
        scorer = _Scorer(model, predictions, errors, chunk_rows, drift_threshold)
        scorer.write_headers(header, header_raw)
        width = len(header)
        next_progress = PROGRESS_EVERY
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                start, raw = recorder.take()
                scorer.bad(start, f"unparseable CSV: {exc}", raw)
                continue
            start, raw = recorder.take()
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line is not a data row
            reason, values = _row_problem(row, width, columns, features)
            if reason:
                scorer.bad(start, reason, raw)
            else:
                scorer.good(start, raw, values)
            if progress is not None and recorder.line >= next_progress:
                progress(recorder.line)
                next_progress += PROGRESS_EVERY
    except UnicodeDecodeError as exc:
        # exc.start counts from the decoder's current chunk, not the file: name the line.
        raise FileRejected(
            f"the file is not UTF-8 text ({exc.reason}) at or after line {recorder.line + 1}"
        ) from None
    return scorer.finish()


def _first_record(
    reader: Iterator[list[str]], recorder: _LineRecorder
) -> tuple[list[str], str] | None:
    for row in reader:
        _, raw = recorder.take()
        if row and any(cell.strip() for cell in row):
            return row, raw
    return None
