"""The batch function's configuration, read once from the environment."""

from __future__ import annotations

from pydantic import Field

from model_store.batch import DEFAULT_CHUNK_ROWS, OutputLayout
from model_store.batch.inputs import DEFAULT_MAX_GZIP_BYTES
from model_store.batch.report import DEFAULT_DRIFT_THRESHOLD
from model_store.settings import ModelSourceSettings


class BatchSettings(ModelSourceSettings):
    chunk_rows: int = Field(DEFAULT_CHUNK_ROWS, ge=1)
    drift_threshold: float = Field(DEFAULT_DRIFT_THRESHOLD, gt=0)
    # A leading apostrophe on written cells a spreadsheet would run as formulas.
    neutralise_formulas: bool = True
    # A .csv.gz over this is refused whole: gzip cannot be split across invocations.
    max_gzip_bytes: int = Field(DEFAULT_MAX_GZIP_BYTES, ge=1)
    input_prefix: str = "incoming/"
    predictions_prefix: str = "predictions/"
    errors_prefix: str = "errors/"
    reports_prefix: str = "reports/"

    @property
    def layout(self) -> OutputLayout:
        return OutputLayout(
            input_prefix=self.input_prefix,
            predictions_prefix=self.predictions_prefix,
            errors_prefix=self.errors_prefix,
            reports_prefix=self.reports_prefix,
        )
