"""Batch scoring of a local CSV file into a directory, with the same engine as S3."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from model_store.batch.engine import DEFAULT_CHUNK_ROWS, Refused, score_stream
from model_store.batch.inputs import csv_text, input_stem, is_gzip
from model_store.batch.report import DEFAULT_DRIFT_THRESHOLD, BatchReport, ModelRef, SourceInfo
from model_store.batch.sinks import FileSink
from model_store.gate import LoadedModel


def score_file(
    source: Path,
    model: LoadedModel,
    out_dir: Path,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    drift_threshold: float = DEFAULT_DRIFT_THRESHOLD,
    progress: Callable[[int], None] | None = None,
    neutralise_formulas: bool = True,
) -> BatchReport:
    """Score SOURCE (a .csv, or a .csv.gz decompressed as it is read) into
    OUT_DIR/<stem>.predictions.csv, .errors.csv, .report.json and .report.html."""
    stem = input_stem(source.name) or source.name
    paths = {
        "predictions": out_dir / f"{stem}.predictions.csv",
        "errors": out_dir / f"{stem}.errors.csv",
        "report": out_dir / f"{stem}.report.json",
    }
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    gzipped = is_gzip(source.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    with source.open("rb") as binary, csv_text(binary, gzipped=gzipped) as text:
        scored = score_stream(
            text,
            model,
            FileSink(paths["predictions"]),
            FileSink(paths["errors"]),
            gzipped=gzipped,
            chunk_rows=chunk_rows,
            drift_threshold=drift_threshold,
            progress=progress,
            neutralise_formulas=neutralise_formulas,
        )
    info = SourceInfo(location=str(source))
    duration = time.perf_counter() - started
    ref = ModelRef(name=model.name, version=model.version)
    if isinstance(scored, Refused):
        report = BatchReport(
            status="rejected",
            reason=scored.reason,
            source=info,
            model=ref,
            started_at=started_at,
            duration_seconds=duration,
        )
    else:
        outputs = {k: str(v) for k, v in paths.items() if k != "report"}
        report = scored.report(
            source=info, started_at=started_at, duration=duration, model=ref, outputs=outputs
        )
    paths["report"].write_bytes(report.to_json())
    from model_store.batch.html_report import render_html  # batch reports only, on use

    (out_dir / f"{stem}.report.html").write_text(render_html(report), encoding="utf-8")
    return report
