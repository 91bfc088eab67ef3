"""The batch function's configuration, read once from the environment."""

from __future__ import annotations

from pydantic import Field

from model_store.batch import DEFAULT_CHUNK_ROWS, OutputLayout
from model_store.batch.handover import (
    DEFAULT_CONCURRENCY,
    DEFAULT_SHARD_ABOVE_BYTES,
    DEFAULT_SHARD_BYTES,
    DEFAULT_SHARD_ROWS,
)
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
    # A .csv over this many bytes is scored in shards by this state machine (empty: never).
    sharding_state_machine_arn: str = ""
    shard_above_bytes: int = Field(DEFAULT_SHARD_ABOVE_BYTES, ge=1)

    @property
    def layout(self) -> OutputLayout:
        return OutputLayout(
            input_prefix=self.input_prefix,
            predictions_prefix=self.predictions_prefix,
            errors_prefix=self.errors_prefix,
            reports_prefix=self.reports_prefix,
        )


class ShardSettings(BatchSettings):
    """The sharded run's steps: the batch function's settings and the shards' sizes."""

    shard_rows: int = Field(DEFAULT_SHARD_ROWS, ge=1)
    shard_bytes: int = Field(DEFAULT_SHARD_BYTES, ge=1)
    shard_concurrency: int = Field(DEFAULT_CONCURRENCY, ge=1)
    # The scorer's reserved concurrency, when one is set: the Map never runs more shards
    # at once than the function may run.
    shard_reserved_concurrency: int | None = Field(None, ge=1)

    @property
    def concurrency(self) -> int:
        reserved = self.shard_reserved_concurrency
        return min(self.shard_concurrency, reserved) if reserved else self.shard_concurrency
