"""A file scored in shards gives the very outputs and report one pass gives.

Generated files over an alphabet of quotes, commas, CR, LF, blank lines and bad cells,
cut into shards of any size: the planner's cuts land anywhere a record can start (inside
a CRLF, after a quoted field with line breaks, right after the header, before a last line
without a newline). Each shard is scored as the shard step scores it (the header, then its
range), the parts joined in order, the tallies merged; everything must equal one pass,
byte for byte, but for the timings and the run's id.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from model_store.artifact import Artifact
from model_store.batch.engine import FileRejected, Part, score_text
from model_store.batch.handover import ShardedObject
from model_store.batch.inputs import csv_text
from model_store.batch.plan import Plan, plan_shards
from model_store.batch.report import BatchReport, ModelRef
from model_store.batch.sharded import (
    ShardTally,
    StepInput,
    merged_report,
    shard_stream,
)
from model_store.gate import LoadedModel, load_artifact_dir
from tests.support.batch_files import FEATURES

STARTED = datetime(2026, 12, 1, tzinfo=UTC)
OUTPUTS = {"predictions": "p.csv", "errors": "e.csv", "report": "r.json"}
TARGET = ShardedObject(
    bucket="data", key="incoming/f.csv", size=0, outputs=OUTPUTS, started_at=STARTED
)
VARYING = {"duration_seconds", "rows_per_second", "execution", "started_at"}
# Small limits, so that generated files meet them: a record over MAX_LINE_BYTES and a
# field over FIELD_LIMIT characters are both resynchronised at the next line.
MAX_LINE_BYTES = 120
FIELD_LIMIT = 40


@pytest.fixture(scope="module", params=["sklearn", "onnx"])
def model(
    request: pytest.FixtureRequest,
    iris_artifact: Artifact,
    tmp_path_factory: pytest.TempPathFactory,
) -> LoadedModel:
    """The iris model in each serving runtime: both must give one pass's bytes."""
    directory = iris_artifact.write(tmp_path_factory.mktemp("equivalence-artifact"))
    return load_artifact_dir(directory, runtime=request.param)


@pytest.fixture(autouse=True)
def small_field_limit() -> Iterator[None]:
    previous = csv.field_size_limit(FIELD_LIMIT)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


class _Written:
    """An Output that keeps what was written."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    def getvalue(self) -> bytes:
        return bytes(self.data)


def _one_pass(
    data: bytes, model: LoadedModel, chunk_rows: int
) -> tuple[bytes, bytes, dict[str, Any]]:
    predictions, errors = _Written(), _Written()
    tally = score_text(
        csv_text(io.BytesIO(data), gzipped=False),
        model,
        predictions,
        errors,
        chunk_rows=chunk_rows,
        max_line_bytes=MAX_LINE_BYTES,
    )
    report = tally.report(
        source=TARGET.source,
        started_at=STARTED,
        duration=1.0,
        model=ModelRef(name=model.name, version=model.version),
        outputs={k: f"s3://data/{v}" for k, v in OUTPUTS.items() if k != "report"},
    )
    return predictions.getvalue(), errors.getvalue(), _comparable(report)


def _sharded(
    data: bytes, plan: Plan, model: LoadedModel, chunk_rows: int
) -> tuple[bytes, bytes, dict[str, Any]]:
    predictions, errors, tallies = [], [], []
    for shard in plan.shards:
        first = shard.index == 0
        header = None if first else data[: plan.header_end]
        binary = shard_stream(header, io.BytesIO(data[shard.start : shard.end]))
        part_predictions, part_errors = _Written(), _Written()
        tally = score_text(
            csv_text(binary, gzipped=False),
            model,
            part_predictions,
            part_errors,
            chunk_rows=chunk_rows,
            max_line_bytes=MAX_LINE_BYTES,
            part=Part(first_line=shard.first_line, first=first),
        )
        predictions.append(part_predictions.getvalue())
        errors.append(part_errors.getvalue())
        tallies.append(ShardTally.of(shard.index, tally, model, 0.2))
    step = StepInput(run="run-1", object=TARGET)
    ref = ModelRef(name=model.name, version=model.version)
    report = merged_report(tallies, step, ref, finished=STARTED)
    return b"".join(predictions), b"".join(errors), _comparable(report)


def _comparable(report: BatchReport) -> dict[str, Any]:
    return report.model_dump(mode="json", exclude=VARYING)


def _number() -> st.SearchStrategy[str]:
    return st.floats(0.1, 8.0, allow_nan=False).map(lambda v: repr(round(v, 2)))


_TEXT = st.text(alphabet='ab ,"\r\né=', max_size=12)


def _cell() -> st.SearchStrategy[str]:
    return st.one_of(
        _number(),
        _number(),
        st.sampled_from(["", " ", "x", "1_0", "nan", "-inf"]),
        _TEXT,
        _TEXT.map(lambda t: '"' + t.replace('"', '""') + '"'),  # a quoted cell, maybe multi-line
        st.just("a" * 50),  # over the field limit
    )


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    """A header with the iris features (and a note column) and rows of mixed quality."""
    header = ",".join([*FEATURES, "note"])
    breaks = st.sampled_from(["\n", "\r\n", "\r"])
    lines = [header]
    blank_first = draw(st.integers(0, 2))
    lines = [""] * blank_first + lines
    rows = draw(st.integers(0, 25))
    for _ in range(rows):
        kind = draw(st.integers(0, 9))
        if kind == 0:
            lines.append("")  # a blank line
        elif kind == 1:
            lines.append(",".join(draw(st.lists(_cell(), min_size=1, max_size=7))))
        else:
            lines.append(",".join([*(draw(_number()) for _ in FEATURES), draw(_cell())]))
    text = ""
    for line in lines:
        text += line + draw(breaks)
    if draw(st.booleans()):
        text = text.rstrip("\r\n")  # the last line without a line break
    bom = "\ufeff" if draw(st.booleans()) else ""
    return (bom + text).encode()


@pytest.mark.slow  # 150 files scored twice in each runtime: 5-7 s
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    data=csv_files(),
    shard_lines=st.integers(1, 8),
    shard_bytes=st.integers(1, 400),
    chunk_rows=st.sampled_from([1, 2, 3, 5, 10_000]),
)
def test_shards_give_what_one_pass_gives(
    model: LoadedModel, data: bytes, shard_lines: int, shard_bytes: int, chunk_rows: int
) -> None:
    planned = plan_shards(
        io.BytesIO(data),
        shard_lines=shard_lines,
        shard_bytes=shard_bytes,
        max_line_bytes=MAX_LINE_BYTES,
        align_lines=chunk_rows,
    )
    try:
        expected = _one_pass(data, model, chunk_rows)
    except FileRejected:
        assert not isinstance(planned, Plan) or planned.shards  # checked in test_plan
        return
    assume(isinstance(planned, Plan))  # an unbalanced quote: the plan refuses the file
    assert isinstance(planned, Plan)
    assert _sharded(data, planned, model, chunk_rows) == expected


def test_drift_of_merged_shards_equals_one_pass(model: LoadedModel) -> None:
    """Enough rows for a drift signal: PSI from the merged bins equals one pass's."""
    from tests.support.batch_files import csv_text as table_text
    from tests.support.batch_files import iris_table

    table = iris_table(shift=0.3)
    data = table_text(table.header, table.rows * 2).encode()
    planned = plan_shards(
        io.BytesIO(data), shard_lines=37, max_line_bytes=MAX_LINE_BYTES, align_lines=10
    )
    assert isinstance(planned, Plan)
    assert len(planned.shards) > 5
    expected = _one_pass(data, model, 10)
    assert expected[2]["drift"]["note"] is None  # a real signal, not "too few rows"
    assert _sharded(data, planned, model, 10) == expected
