"""The manifest: what an artifact is, how it was made, and what it vouches for.

It is a versioned pydantic model (``schema_version``) so readers can refuse a schema
they do not know instead of misreading it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from model_store.exceptions import ManifestError
from model_store.versions import RuntimeVersions

SCHEMA_VERSION = 1

JsonScalar = str | int | float | bool | None


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class QuantileBins(_Frozen):
    """Training distribution of one feature, for population stability checks.

    ``edges`` are interior cut points; bin i holds values in (edges[i-1], edges[i]],
    the first and last bins are open-ended. ``fractions`` has len(edges) + 1 entries.
    """

    edges: list[float]
    fractions: list[float]


class FeatureStats(_Frozen):
    min: float
    max: float
    mean: float
    std: float
    bins: QuantileBins


class Feature(_Frozen):
    name: str
    dtype: Literal["float64"] = "float64"
    stats: FeatureStats
    example: float


class Target(_Frozen):
    name: str
    classes: list[str]


class Metrics(_Frozen):
    cv_score: float
    test_accuracy: float
    cv_folds: int
    train_rows: int
    test_rows: int


class Manifest(_Frozen):
    schema_version: Literal[1] = 1
    name: str
    version: str | None = None
    created_at: datetime
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)
    compress: int = Field(ge=0, le=9)
    runtime: RuntimeVersions
    features: list[Feature] = Field(min_length=1)
    target: Target
    metrics: Metrics
    algorithm: str
    params: dict[str, JsonScalar]
    training_data_sha256: str

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def to_json(self) -> bytes:
        return self.model_dump_json(indent=2).encode()

    @classmethod
    def from_json(cls, data: bytes | str, *, source: str = "manifest") -> Manifest:
        """Parse a manifest, refusing unknown schema versions with a clear message."""
        try:
            raw: Any = json.loads(data)
        except ValueError as exc:
            raise ManifestError(f"{source} is not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise ManifestError(f"{source} is not a JSON object")
        found = raw.get("schema_version")
        if found != SCHEMA_VERSION:
            raise ManifestError(
                f"{source} has schema_version {found!r}; this model_store reads "
                f"schema_version {SCHEMA_VERSION}"
            )
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ManifestError(f"{source} is invalid: {exc}") from None
