"""Batch scoring of a local CSV file into a directory, with the same engine as S3."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from model_store.batch.engine import DEFAULT_CHUNK_ROWS, FileRejected, score_text
from model_store.batch.inputs import GZIP_ERRORS, csv_text, input_stem, is_gzip
from model_store.batch.report import BatchReport, SourceInfo
from model_store.batch.sinks import FileSink
from model_store.loading import LoadedModel


def score_file(
    source: Path,
    model: LoadedModel,
    out_dir: Path,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    drift_threshold: float = 0.2,
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
    model_info = {"name": model.name, "version": model.version}
    base = {
        "source": SourceInfo(location=str(source)),
        "started_at": started_at,
        "model": model_info,
    }
    predictions = FileSink(paths["predictions"])
    errors = FileSink(paths["errors"])
    try:
        with source.open("rb") as binary, csv_text(binary, gzipped=is_gzip(source.name)) as text:
            tally = score_text(
                text,
                model,
                predictions,
                errors,
                chunk_rows=chunk_rows,
                drift_threshold=drift_threshold,
                progress=progress,
                neutralise_formulas=neutralise_formulas,
            )
        predictions.commit()
        errors.commit()
    except (FileRejected, *GZIP_ERRORS) as exc:
        predictions.abort()
        errors.abort()
        reason = str(exc) if isinstance(exc, FileRejected) else f"not a readable gzip file: {exc}"
        report = BatchReport.model_validate(
            {
                **base,
                "status": "rejected",
                "reason": reason,
                "duration_seconds": time.perf_counter() - started,
            }
        )
    except BaseException:
        predictions.abort()
        errors.abort()
        raise
    else:
        report = BatchReport.model_validate(
            {
                **base,
                "status": "succeeded",
                "outputs": {k: str(v) for k, v in paths.items() if k != "report"},
                **tally.report_fields(time.perf_counter() - started),
            }
        )
    paths["report"].write_bytes(report.to_json())
    from model_store.batch.html_report import render_html  # batch reports only, on use

    (out_dir / f"{stem}.report.html").write_text(render_html(report), encoding="utf-8")
    return report
