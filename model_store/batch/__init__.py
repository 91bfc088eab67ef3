"""Batch scoring of CSV files: streamed, chunked, row-level errors, report and drift."""

from model_store.batch.engine import DEFAULT_CHUNK_ROWS, FileRejected, score_text
from model_store.batch.local import score_file
from model_store.batch.report import BatchReport, Drift, FeatureDrift, RowError, SourceInfo
from model_store.batch.s3 import Outcome, OutputLayout, score_s3_object
from model_store.batch.sinks import FileSink, S3MultipartSink, Sink

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "BatchReport",
    "Drift",
    "FeatureDrift",
    "FileRejected",
    "FileSink",
    "Outcome",
    "OutputLayout",
    "RowError",
    "S3MultipartSink",
    "Sink",
    "SourceInfo",
    "score_file",
    "score_s3_object",
    "score_text",
]
