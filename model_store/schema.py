"""Request schemas built from a manifest: the model's features, numbers only, finite only."""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
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


def batch_model(
    manifest: Manifest,
    record: type[BaseModel] | None = None,
    *,
    max_records: int | None = None,
) -> type[BaseModel]:
    """``{"records": [record, ...]}`` with at least one (and at most max_records) record."""
    record = record or record_model(manifest)
    model: type[BaseModel] = create_model(
        _class_name(manifest.name, "Batch"),
        __config__=ConfigDict(extra="forbid"),
        records=(list[record], Field(min_length=1, max_length=max_records)),  # type: ignore[valid-type]
    )
    return model


def records_matrix(records: Sequence[BaseModel]) -> npt.NDArray[np.float64]:
    """Validated records (from record_model) as a float matrix in feature order.

    Values are read by the fields' declared names (features in order), so nothing
    depends on the order of a record's attribute dict; one C-level attrgetter per record
    avoids a ``model_dump`` per record on the hot path.
    """
    if not records:
        return np.empty((0, 0), dtype=np.float64)
    names = list(type(records[0]).model_fields)
    row = operator.attrgetter(*names)
    rows = map(row, records) if len(names) > 1 else ((row(r),) for r in records)
    values = itertools.chain.from_iterable(rows)
    matrix = np.fromiter(values, dtype=np.float64, count=len(records) * len(names))
    return matrix.reshape(len(records), len(names))


def batch_records(batch: BaseModel) -> list[BaseModel]:
    """The validated records of a batch_model instance."""
    records: list[BaseModel] = _RECORDS(batch)
    return records


_RECORDS = operator.attrgetter("records")


def example_record(manifest: Manifest) -> dict[str, float]:
    return {feature.name: feature.example for feature in manifest.features}


def _class_name(model_name: str, suffix: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in model_name).split()
    return "".join(w[:1].upper() + w[1:] for w in words) + suffix
