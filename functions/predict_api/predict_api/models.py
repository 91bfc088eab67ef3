"""Response shapes, for the OpenAPI document (responses are serialised directly).

Their validators are built on first use (``defer_build``), not at import: a cold start
only pays for the ones a request needs (ModelInfo, for /model).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from model_store import Manifest
from predict_api.errors import MAX_DETAILS


class _Deferred(BaseModel):
    model_config = ConfigDict(defer_build=True)


class ErrorDetail(_Deferred):
    model_config = ConfigDict(extra="forbid")

    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(_Deferred):
    model_config = ConfigDict(extra="forbid")

    code: str
    message: str
    details: list[ErrorDetail] = Field(max_length=MAX_DETAILS)
    details_omitted: int | None = Field(None, ge=1, description="details beyond those shown")


class ErrorResponse(_Deferred):
    """The API's one error envelope (errors.envelope)."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorBody
    request_id: str


class GatewayError(_Deferred):
    """API Gateway's own answer, where it answers before the function (key, plan, size)."""

    model_config = ConfigDict(extra="forbid")

    message: str


class ModelRef(_Deferred):
    name: str
    version: str


class PredictResponse(_Deferred):
    prediction: str
    probabilities: dict[str, float] | None
    model: ModelRef
    request_id: str


class BatchItem(_Deferred):
    prediction: str
    probabilities: dict[str, float] | None


class BatchResponse(_Deferred):
    predictions: list[BatchItem]
    count: int
    model: ModelRef
    request_id: str


class HealthResponse(_Deferred):
    status: str


class FeatureInfo(_Deferred):
    name: str
    dtype: str
    min: float
    max: float
    mean: float
    std: float
    example: float


class ModelInfo(_Deferred):
    name: str
    version: str
    alias: str | None
    loaded: bool
    algorithm: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    features: list[FeatureInfo]
    classes: list[str]
    created_at: str
    sha256: str
    trained_with: dict[str, str]

    @classmethod
    def from_manifest(cls, manifest: Manifest, *, loaded: bool, alias: str | None) -> ModelInfo:
        return cls(
            name=manifest.name,
            version=manifest.version or "",
            alias=alias,
            loaded=loaded,
            algorithm=manifest.algorithm,
            params=dict(manifest.params),
            metrics=manifest.metrics.model_dump(),
            features=[
                FeatureInfo(
                    name=f.name,
                    dtype=f.dtype,
                    min=f.stats.min,
                    max=f.stats.max,
                    mean=f.stats.mean,
                    std=f.stats.std,
                    example=f.example,
                )
                for f in manifest.features
            ],
            classes=manifest.target.classes,
            created_at=manifest.created_at.isoformat(),
            sha256=manifest.sha256,
            trained_with=manifest.runtime.model_dump(),
        )
