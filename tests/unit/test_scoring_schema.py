"""Scoring records, matrices and frames with both runtimes; request schemas from the manifest."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from pydantic import BaseModel, ValidationError

from model_store import (
    InputError,
    Manifest,
    Predictions,
    batch_model,
    batch_records,
    example_record,
    record_model,
    records_matrix,
)
from model_store.artifact import Artifact
from model_store.gate import LoadedModel, load_artifact_dir
from model_store.training import load_iris_dataset

IRIS_CLASSES = ["setosa", "versicolor", "virginica"]
# One flower of each species, in dataset order.
SAMPLE_ROWS = [0, 50, 100]


class FakeFrame:
    """Just enough of a DataFrame (``columns``, ``frame[list]``, ``to_numpy``), no pandas."""

    def __init__(self, data: dict[str, list[float]]) -> None:
        self._data = data
        self.columns = list(data)

    def __getitem__(self, names: list[str]) -> FakeFrame:
        return FakeFrame({name: self._data[name] for name in names})

    def to_numpy(self, dtype: type[np.float64]) -> npt.NDArray[np.float64]:
        return np.array([self._data[name] for name in self.columns], dtype=dtype).T


@pytest.fixture(scope="module")
def iris_dir(iris_artifact: Artifact, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return iris_artifact.write(tmp_path_factory.mktemp("scoring") / "artifact")


@pytest.fixture(scope="module", params=["sklearn", "onnx"])
def model(request: pytest.FixtureRequest, iris_dir: Path) -> LoadedModel:
    """The session's iris model, loaded through the gate with each runtime."""
    return load_artifact_dir(iris_dir, runtime=request.param)


@pytest.fixture(scope="module")
def manifest(iris_artifact: Artifact) -> Manifest:
    return iris_artifact.manifest


@pytest.fixture(scope="module")
def matrix() -> npt.NDArray[np.float64]:
    return load_iris_dataset().features[SAMPLE_ROWS]


@pytest.fixture(scope="module")
def records(manifest: Manifest, matrix: npt.NDArray[np.float64]) -> list[dict[str, float]]:
    # Keys in reverse feature order: records are matched by name, not position.
    names = manifest.feature_names[::-1]
    return [
        {name: float(row[manifest.feature_names.index(name)]) for name in names} for row in matrix
    ]


def _check(predictions: Predictions) -> None:
    assert predictions.classes == IRIS_CLASSES
    assert predictions.labels == IRIS_CLASSES  # one of each species, in order
    probabilities = predictions.probabilities
    assert probabilities is not None
    assert probabilities.shape == (len(SAMPLE_ROWS), len(IRIS_CLASSES))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-9)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    # Each label is the most probable class of its row.
    assert [IRIS_CLASSES[i] for i in probabilities.argmax(axis=1)] == predictions.labels
    dicts = predictions.probability_dicts()
    assert dicts is not None
    assert [set(d) for d in dicts] == [set(IRIS_CLASSES)] * len(SAMPLE_ROWS)


def test_manifest_matches_iris(manifest: Manifest) -> None:
    assert manifest.target.classes == IRIS_CLASSES
    assert manifest.feature_names == load_iris_dataset().feature_names


def test_predict_records(
    model: LoadedModel, manifest: Manifest, records: list[dict[str, float]]
) -> None:
    _check(model.predict(records))


def test_predict_matrix(
    model: LoadedModel, manifest: Manifest, matrix: npt.NDArray[np.float64]
) -> None:
    _check(model.predict(matrix))


def test_predict_frame_without_pandas(
    model: LoadedModel, manifest: Manifest, matrix: npt.NDArray[np.float64]
) -> None:
    # Columns shuffled and one extra: selection is by name, in the manifest's order.
    order = [2, 0, 3, 1]
    data = {manifest.feature_names[j]: [float(v) for v in matrix[:, j]] for j in order}
    data["comment"] = [0.0] * len(SAMPLE_ROWS)
    _check(model.predict(FakeFrame(data)))


def test_all_paths_agree(
    model: LoadedModel,
    manifest: Manifest,
    matrix: npt.NDArray[np.float64],
    records: list[dict[str, float]],
) -> None:
    frame = FakeFrame(
        {n: [float(v) for v in matrix[:, j]] for j, n in enumerate(manifest.feature_names)}
    )
    results = [model.predict(rows) for rows in (records, matrix, frame)]
    assert results[0].labels == results[1].labels == results[2].labels
    assert results[0].probabilities is not None
    for other in results[1:]:
        assert other.probabilities is not None
        np.testing.assert_allclose(other.probabilities, results[0].probabilities)


def test_predict_nothing(model: LoadedModel, manifest: Manifest) -> None:
    predictions = model.predict([])
    assert predictions.labels == []
    assert predictions.classes == IRIS_CLASSES


@pytest.mark.parametrize(
    "rows",
    [
        pytest.param(np.ones((2, 3)), id="three-columns"),
        pytest.param(np.ones((2, 5)), id="five-columns"),
        pytest.param(np.ones(4), id="one-dimensional"),
        pytest.param(np.ones((1, 2, 4)), id="three-dimensional"),
    ],
)
def test_wrong_shape(model: LoadedModel, manifest: Manifest, rows: npt.NDArray[np.float64]) -> None:
    with pytest.raises(InputError, match="4 features"):
        model.predict(rows)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite(
    model: LoadedModel, manifest: Manifest, records: list[dict[str, float]], bad: float
) -> None:
    record = {**records[0], manifest.feature_names[2]: bad}
    with pytest.raises(InputError, match="finite"):
        model.predict([records[1], record])
    matrix = np.ones((2, 4))
    matrix[1, 3] = bad
    with pytest.raises(InputError, match="finite"):
        model.predict(matrix)


def test_missing_feature(
    model: LoadedModel, manifest: Manifest, records: list[dict[str, float]]
) -> None:
    missing = manifest.feature_names[1]
    record = {k: v for k, v in records[0].items() if k != missing}
    with pytest.raises(InputError, match=missing):
        model.predict([records[1], record])
    frame = FakeFrame({k: [v] for k, v in record.items()})
    with pytest.raises(InputError, match=missing):
        model.predict(frame)


def test_non_numeric_record(
    model: LoadedModel, manifest: Manifest, records: list[dict[str, float]]
) -> None:
    record: dict[str, Any] = {**records[0], manifest.feature_names[0]: "abc"}
    with pytest.raises(InputError, match="numbers"):
        model.predict([record])


# -- request schemas ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def record_cls(manifest: Manifest) -> type[BaseModel]:
    return record_model(manifest)


def test_record_accepts_example_and_ints(manifest: Manifest, record_cls: type[BaseModel]) -> None:
    example = example_record(manifest)
    assert list(example) == manifest.feature_names
    assert record_cls.model_validate(example).model_dump(by_alias=True) == example

    ints = dict.fromkeys(manifest.feature_names, 5)
    dumped = record_cls.model_validate(ints).model_dump(by_alias=True)
    assert dumped == dict.fromkeys(manifest.feature_names, 5.0)
    assert all(isinstance(v, float) for v in dumped.values())

    as_json = "{" + ", ".join(f'"{n}": 3' for n in manifest.feature_names) + "}"
    from_json = record_cls.model_validate_json(as_json).model_dump(by_alias=True)
    assert from_json == dict.fromkeys(manifest.feature_names, 3.0)


@pytest.mark.parametrize(
    ("change", "value"),
    [
        pytest.param("missing", None, id="missing-field"),
        pytest.param("set", "5.1", id="numeric-string"),
        pytest.param("set", math.nan, id="nan"),
        pytest.param("set", math.inf, id="inf"),
        pytest.param("set", -math.inf, id="minus-inf"),
        pytest.param("set", True, id="bool"),
        pytest.param("set", None, id="null"),
        pytest.param("extra", 1.0, id="unknown-field"),
        pytest.param("by-field-name", 1.0, id="internal-field-name"),
    ],
)
def test_record_rejects(
    manifest: Manifest, record_cls: type[BaseModel], change: str, value: object
) -> None:
    record: dict[str, object] = dict(example_record(manifest))
    first = manifest.feature_names[0]
    if change == "missing":
        del record[first]
    elif change == "set":
        record[first] = value
    elif change == "extra":
        record["colour"] = value
    else:
        record["f0"] = record.pop(first)
    with pytest.raises(ValidationError):
        record_cls.model_validate(record)


def test_record_rejects_string_in_json(manifest: Manifest, record_cls: type[BaseModel]) -> None:
    body = ", ".join(f'"{n}": "5.1"' for n in manifest.feature_names)
    with pytest.raises(ValidationError):
        record_cls.model_validate_json("{" + body + "}")


def test_record_json_schema(manifest: Manifest, record_cls: type[BaseModel]) -> None:
    schema = record_cls.model_json_schema()
    assert list(schema["properties"]) == manifest.feature_names
    assert sorted(schema["required"]) == sorted(manifest.feature_names)
    assert schema["additionalProperties"] is False
    for feature in manifest.features:
        prop = schema["properties"][feature.name]
        assert prop["type"] == "number"
        assert prop["examples"] == [feature.example]
        assert feature.name in prop["description"]


def test_batch_model(manifest: Manifest, record_cls: type[BaseModel]) -> None:
    batch = batch_model(manifest, record_cls)
    example = example_record(manifest)

    parsed = batch.model_validate({"records": [example, example]})
    assert parsed.model_dump(by_alias=True) == {"records": [example, example]}

    with pytest.raises(ValidationError):
        batch.model_validate({"records": []})
    with pytest.raises(ValidationError):
        batch.model_validate({})
    with pytest.raises(ValidationError):
        batch.model_validate({"records": [example], "extra": 1})
    with pytest.raises(ValidationError):
        batch.model_validate({"records": [example, {**example, manifest.feature_names[0]: "x"}]})


def test_batch_model_builds_its_own_record(manifest: Manifest) -> None:
    batch = batch_model(manifest)
    with pytest.raises(ValidationError):
        batch.model_validate({"records": []})
    with pytest.raises(ValidationError):
        batch.model_validate({"records": [{**example_record(manifest), "colour": 1.0}]})
    assert batch.model_validate({"records": [example_record(manifest)]})


def test_records_matrix_follows_the_declared_features_not_attribute_order(
    manifest: Manifest, record_cls: type[BaseModel]
) -> None:
    batch = batch_model(manifest, record_cls)
    rows = [
        {name: float(10 * r + c) for c, name in enumerate(manifest.feature_names)} for r in range(3)
    ]
    # Keys in reverse: validation must still place each value under its feature.
    parsed = batch.model_validate({"records": [dict(reversed(row.items())) for row in rows]})
    records = batch_records(parsed)
    for record in records:
        # A record whose attribute dict is in another order (as pydantic could keep it).
        object.__setattr__(record, "__dict__", dict(reversed(record.__dict__.items())))
    matrix = records_matrix(records)
    expected = [[row[name] for name in manifest.feature_names] for row in rows]
    assert matrix.tolist() == expected
    assert records_matrix([]).shape == (0, 0)


def test_records_matrix_of_one_feature() -> None:
    class One(BaseModel):
        f0: float

    assert records_matrix([One(f0=1.5), One(f0=2.0)]).tolist() == [[1.5], [2.0]]
