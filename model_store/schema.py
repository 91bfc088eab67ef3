"""Request schemas built from a manifest: the model's features, numbers only, finite only."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from model_store.manifest import Manifest

FiniteNumber = Annotated[float, Field(strict=True, allow_inf_nan=False)]


def record_model(manifest: Manifest) -> type[BaseModel]:
    """A pydantic model of one record: every feature required, nothing else accepted.

    Feature names are used as aliases so any column name (spaces, units) works as a JSON
    key; ``model_dump(by_alias=True)`` gives the record back keyed by feature name.
    """
    fields: dict[str, Any] = {
        f"f{i}": (
            FiniteNumber,
            Field(
                alias=feature.name,
                description=(
                    f"{feature.name}: seen in training from {feature.stats.min:g} "
                    f"to {feature.stats.max:g} (mean {feature.stats.mean:.3g})"
                ),
                examples=[feature.example],
            ),
        )
        for i, feature in enumerate(manifest.features)
    }
    model: type[BaseModel] = create_model(
        _class_name(manifest.name, "Record"),
        __config__=ConfigDict(extra="forbid", populate_by_name=False),
        **fields,
    )
    return model


def batch_model(manifest: Manifest, record: type[BaseModel] | None = None) -> type[BaseModel]:
    """``{"records": [record, ...]}`` with at least one record."""
    record = record or record_model(manifest)
    model: type[BaseModel] = create_model(
        _class_name(manifest.name, "Batch"),
        __config__=ConfigDict(extra="forbid"),
        records=(list[record], Field(min_length=1)),  # type: ignore[valid-type]
    )
    return model


def example_record(manifest: Manifest) -> dict[str, float]:
    return {feature.name: feature.example for feature in manifest.features}


def _class_name(model_name: str, suffix: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in model_name).split()
    return "".join(w[:1].upper() + w[1:] for w in words) + suffix
