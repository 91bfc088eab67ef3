"""The manifest: what an artifact is, how it was made, and what it vouches for.

It is a versioned pydantic model (``schema_version``) so readers can refuse a schema
they do not know instead of misreading it. Schema 2 added the ONNX form (or the reason
there is none); schema 1 manifests are still read, as models without one.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from model_store.exceptions import ManifestError
from model_store.timestamps import Timestamp
from model_store.versions import RuntimeVersions

SCHEMA_VERSION: Literal[2] = 2
READABLE_SCHEMAS = (1, 2)

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


class ParityProof(_Frozen):
    """How the ONNX form was shown to score as the pickled model does.

    Every row of every set got the same label from both, and no class probability
    differed by more than ``tolerance`` (absolute).
    """

    tolerance: float
    rows: dict[str, int]  # set name (held_out, training, edges, generated) -> rows compared
    label_agreement: float
    max_probability_diff: float | None  # None for a model without probabilities

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


class OnnxForm(_Frozen):
    """model.onnx beside model.joblib: what it is, what made it, and its proof."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)
    opset: dict[str, int]  # ONNX domain ("" is the default one) -> opset version
    graph: str  # how it computes, e.g. "float64" or "float64 scaler, float32 classifier"
    input_name: str
    label_output: str
    probabilities_output: str | None
    # An output of the values the graph casts to float32 before its classifier, if it does.
    float32_stage: str | None = None
    converter: dict[str, str]  # skl2onnx and onnx versions
    onnxruntime: str  # the release the proof ran on
    proof: ParityProof


class Manifest(_Frozen):
    schema_version: Literal[1, 2] = SCHEMA_VERSION
    name: str
    version: str | None = None
    created_at: Timestamp
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
    onnx: OnnxForm | None = None
    onnx_refused: str | None = None  # why there is no ONNX form, when conversion was tried

    @property
    def onnx_missing_reason(self) -> str | None:
        """None when there is an ONNX form; otherwise why not, in words."""
        if self.onnx is not None:
            return None
        return self.onnx_refused or "it was published before ONNX forms existed"

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
        if found not in READABLE_SCHEMAS:
            raise ManifestError(
                f"{source} has schema_version {found!r}; this model_store reads "
                f"schema_version {' and '.join(map(str, READABLE_SCHEMAS))}"
            )
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ManifestError(f"{source} is invalid: {exc}") from None
