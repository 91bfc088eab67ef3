"""The batch report: what was scored, by which model, how it went, and feature drift."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from model_store.timestamps import Timestamp

# "running": a file too large for one invocation, handed to the sharded run named in
# ``execution``; that run replaces the report with its outcome.
Status = Literal["succeeded", "rejected", "failed", "running"]

# A feature's population stability index above this flags it as drifted.
DEFAULT_DRIFT_THRESHOLD = 0.2


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceInfo(_Model):
    location: str
    etag: str | None = None
    version_id: str | None = None


class ModelRef(_Model):
    name: str
    version: str


class RowError(_Model):
    line: int
    reason: str


class FeatureDrift(_Model):
    psi: float
    flagged: bool


# Scored rows below which PSI says nothing: for an unchanged population its expected value
# is about (bins - 1) / rows from sampling noise alone, so with ten bins a few dozen rows
# reach the default threshold and a handful flag every feature (one row gave PSI 6-8).
MIN_DRIFT_ROWS = 100


class Drift(_Model):
    threshold: float
    features: dict[str, FeatureDrift] = Field(default_factory=dict)
    rows: int = 0  # the rows the PSI values come from
    # Why nothing is flagged whatever the PSI (too few rows), or None.
    note: str | None = None

    @property
    def flagged(self) -> list[str]:
        return [name for name, d in self.features.items() if d.flagged]


class BatchReport(_Model):
    status: Status
    reason: str | None = None
    source: SourceInfo
    model: ModelRef | None = None
    outputs: dict[str, str] = Field(default_factory=dict)
    rows_in: int = 0
    rows_scored: int = 0
    rows_failed: int = 0
    first_errors: list[RowError] = Field(default_factory=list)
    passthrough_columns: list[str] = Field(default_factory=list)
    drift: Drift | None = None
    started_at: Timestamp
    duration_seconds: float = 0.0
    rows_per_second: float = 0.0
    # The Step Functions execution that scored (or is scoring) a file in shards.
    execution: str | None = None

    def to_json(self) -> bytes:
        return self.model_dump_json(indent=2).encode()
