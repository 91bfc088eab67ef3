"""The batch engine on local files (score_file): outputs, row errors, rejections, drift.

Every data line of a source ends up exactly once in the predictions (source_line) or the
errors (line), with rows_in = rows_scored + rows_failed; whole-file problems reject the
file with a report and leave no other file behind.
"""

from __future__ import annotations

import json
import math
import random
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_store.batch import BatchReport, score_file
from model_store.batch.report import ModelRef
from model_store.gate import LoadedModel
from tests.support.batch_files import (
    CLASSES,
    ERRORS_HEADER,
    FEATURES,
    OUTPUT_COLUMNS,
    csv_text,
    iris_table,
    parse_csv,
    parse_errors,
)

PLAIN_HEADER = ["id", *FEATURES]


@dataclass(frozen=True)
class Outputs:
    report: BatchReport
    predictions: str
    errors: str
    report_json: dict[str, object]


def _score(
    tmp_path: Path,
    model: LoadedModel,
    content: str | bytes,
    *,
    name: str = "input.csv",
    chunk_rows: int = 10_000,
    out: str = "out",
) -> Outputs:
    source = tmp_path / name
    if isinstance(content, str):
        source.write_text(content, encoding="utf-8", newline="")
    else:
        source.write_bytes(content)
    out_dir = tmp_path / out
    report = score_file(source, model, out_dir, chunk_rows=chunk_rows)
    stem = name.removesuffix(".csv")
    report_json = json.loads((out_dir / f"{stem}.report.json").read_text())
    if report.status != "succeeded":
        return Outputs(report, "", "", report_json)
    return Outputs(
        report,
        (out_dir / f"{stem}.predictions.csv").read_text(encoding="utf-8"),
        (out_dir / f"{stem}.errors.csv").read_text(encoding="utf-8"),
        report_json,
    )


# -- the happy path ------------------------------------------------------------------------

MESSY_HEADER = ["  PETAL_WIDTH", "id", "Sepal_Length ", " sepal_width ", "PETAL_length"]


def test_150_iris_rows_with_a_messy_header_are_all_scored_accurately(
    tmp_path: Path, loaded_model: LoadedModel
) -> None:
    table = iris_table(header=MESSY_HEADER)
    rows = list(table.rows)
    random.Random(7).shuffle(rows)

    result = _score(tmp_path, loaded_model, csv_text(table.header, rows))

    report = result.report
    assert report.status == "succeeded", report.reason
    assert (report.rows_in, report.rows_scored, report.rows_failed) == (150, 150, 0)
    assert report.first_errors == []
    assert report.model == ModelRef(name="iris", version="local")
    assert report.passthrough_columns == [
        "PETAL_WIDTH",
        "id",
        "Sepal_Length",
        "sepal_width",
        "PETAL_length",
    ]
    assert report.source.location == str(tmp_path / "input.csv")
    assert report.outputs == {
        "predictions": str(tmp_path / "out" / "input.predictions.csv"),
        "errors": str(tmp_path / "out" / "input.errors.csv"),
    }
    assert report.duration_seconds > 0
    assert report.rows_per_second > 0
    assert result.report_json == report.model_dump(mode="json")

    parsed = parse_csv(result.predictions)
    assert parsed[0] == [*MESSY_HEADER, *OUTPUT_COLUMNS]
    body = parsed[1:]
    assert len(body) == 150
    correct = 0
    for line_number, (written, out) in enumerate(zip(rows, body, strict=True), start=2):
        assert out[:5] == written  # input cells passed through untouched, in file order
        prediction, probabilities, source_line = out[5], [float(p) for p in out[6:9]], out[9]
        assert source_line == str(line_number)
        assert math.isclose(sum(probabilities), 1.0, abs_tol=1e-9)
        assert prediction == CLASSES[probabilities.index(max(probabilities))]
        correct += prediction == table.labels[written[1]]
    assert correct / 150 > 0.9
    assert result.errors == ERRORS_HEADER


def test_outputs_go_next_to_each_other_named_after_the_source(
    tmp_path: Path, loaded_model: LoadedModel
) -> None:
    table = iris_table()
    source = tmp_path / "Day One.CSV"
    source.write_text(csv_text(table.header, table.rows[:3]))

    report = score_file(source, loaded_model, tmp_path / "nested" / "out")

    assert report.status == "succeeded"
    assert sorted(p.name for p in (tmp_path / "nested" / "out").iterdir()) == [
        "Day One.errors.csv",
        "Day One.predictions.csv",
        "Day One.report.html",
        "Day One.report.json",
    ]


# -- row-level errors ----------------------------------------------------------------------

GOOD = "good"

# (raw record text, expected reason or GOOD, or None for a line that is not a data row)
MIXED: list[tuple[str, str | None]] = [
    ("a1,5.1,3.5,1.4,0.2", GOOD),
    ("a2,5.1,3.5", "expected 5 fields, found 3"),
    ("", None),
    ("a3,5.1,3.5,1.4,0.2,9", "expected 5 fields, found 6"),
    ("a4,,3.5,1.4,0.2", "empty value for sepal_length"),
    ("a5,5.1,   ,1.4,0.2", "empty value for sepal_width"),
    ("a6,5.1,3.5,abc,0.2", "petal_length: 'abc' is not a number"),
    ("a7,5.1,3.5,1.4,NaN", "petal_width: 'NaN' is not a finite number"),
    ("a8,inf,3.5,1.4,0.2", "sepal_length: 'inf' is not a finite number"),
    ("a9,5.1,-inf,1.4,0.2", "sepal_width: '-inf' is not a finite number"),
    ("   ", None),
    ('"a10\nsecond line",6.3,2.9,5.6,1.8', GOOD),
    ('a11,"4.2\n4.3",3.0,4.2,1.5', "sepal_length: '4.2\\n4.3' is not a number"),
    ("a12,6.7,3.1,4.4,1.4", GOOD),
    ("", None),
    ("", None),
    ('"a13, with a comma",5.0,3.6,1.4,0.2', GOOD),
    ("a14,5.0,3.6,1.4,Infinity", "petal_width: 'Infinity' is not a finite number"),
    (",,,,", "empty value for sepal_length"),
    ("a16", "expected 5 fields, found 1"),
    ("a17, 7.7 ,2.6, 6.9,2.3 ", GOOD),
]


def _mixed_text(records: list[tuple[str, str | None]], *, newline: str = "\n") -> str:
    lines = [",".join(PLAIN_HEADER), *(raw.replace("\n", newline) for raw, _ in records)]
    return newline.join(lines) + newline


def _expected(
    records: list[tuple[str, str | None]],
) -> tuple[list[tuple[int, str]], list[dict[str, str]]]:
    """(good (line, raw) pairs, expected error rows) with the source line numbers."""
    good: list[tuple[int, str]] = []
    errors: list[dict[str, str]] = []
    line = 2
    for raw, outcome in records:
        if outcome == GOOD:
            good.append((line, raw))
        elif outcome is not None:
            errors.append({"line": str(line), "reason": outcome, "raw": raw})
        line += raw.count("\n") + 1
    return good, errors


def test_every_kind_of_bad_row_is_reported_with_its_line_reason_and_raw_text(
    tmp_path: Path, loaded_model: LoadedModel
) -> None:
    good, expected_errors = _expected(MIXED)

    result = _score(tmp_path, loaded_model, _mixed_text(MIXED))

    report = result.report
    assert report.status == "succeeded"
    assert report.rows_scored == len(good) == 5
    assert report.rows_failed == len(expected_errors) == 12
    assert report.rows_in == report.rows_scored + report.rows_failed
    assert parse_errors(result.errors) == expected_errors
    assert [(e.line, e.reason) for e in report.first_errors] == [
        (int(e["line"]), e["reason"]) for e in expected_errors[:10]
    ]
    predicted = parse_csv(result.predictions)[1:]
    assert [int(row[-1]) for row in predicted] == [line for line, _ in good]
    assert [row[0] for row in predicted] == [
        "a1",
        "a10\nsecond line",
        "a12",
        "a13, with a comma",
        "a17",
    ]
    assert predicted[-1][1:5] == [" 7.7 ", "2.6", " 6.9", "2.3 "]  # cells kept as written


def test_a_field_too_large_for_the_csv_parser_is_a_row_error(
    tmp_path: Path, loaded_model: LoadedModel
) -> None:
    huge = "9" * 200_000
    text = f"id,{','.join(FEATURES)}\nbig,1,1,1,{huge}\nok,5.1,3.5,1.4,0.2\n"

    result = _score(tmp_path, loaded_model, text)

    assert (result.report.rows_in, result.report.rows_scored, result.report.rows_failed) == (
        2,
        1,
        1,
    )
    # (written with csv.writer: reading it back would hit the same field size limit)
    assert result.errors == ERRORS_HEADER + csv_text(
        ["2", "unparseable CSV: field larger than field limit (131072)", f"big,1,1,1,{huge}"], []
    )
    assert [row[-1] for row in parse_csv(result.predictions)[1:]] == ["3"]


# -- whole-file outcomes -------------------------------------------------------------------


def _assert_only_the_report(out_dir: Path, stem: str = "input") -> None:
    assert sorted(p.name for p in out_dir.iterdir()) == [
        f"{stem}.report.html",
        f"{stem}.report.json",
    ]


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        (["id", "sepal_length", "sepal_width", "petal_length"], "petal_width"),
        (["id", "petal_width", "SEPAL_WIDTH"], "sepal_length, petal_length"),
    ],
)
def test_a_missing_feature_column_rejects_the_file_and_leaves_no_outputs(
    tmp_path: Path, loaded_model: LoadedModel, header: list[str], missing: str
) -> None:
    rows = [["r1", *(["1.0"] * (len(header) - 1))]] * 30

    result = _score(tmp_path, loaded_model, csv_text(header, rows), chunk_rows=7)

    assert result.report.status == "rejected"
    assert result.report.reason is not None
    assert f"missing feature column(s): {missing};" in result.report.reason
    assert (result.report.rows_in, result.report.rows_scored, result.report.rows_failed) == (
        0,
        0,
        0,
    )
    assert result.report.outputs == {}
    assert result.report_json["status"] == "rejected"
    assert result.report_json["reason"] == result.report.reason
    _assert_only_the_report(tmp_path / "out")  # not even a hidden .partial temp file


def test_a_feature_column_twice_rejects_the_file(tmp_path: Path, loaded_model: LoadedModel) -> None:
    header = ["sepal_length", " Sepal_Length", "sepal_width", "petal_length", "petal_width"]

    result = _score(tmp_path, loaded_model, csv_text(header, [["1"] * 5]))

    assert result.report.status == "rejected"
    assert result.report.reason == "feature column(s) appear more than once: sepal_length"
    _assert_only_the_report(tmp_path / "out")


@pytest.mark.parametrize("content", ["", "   \n\n \r\n\t\n"], ids=["empty", "whitespace-only"])
def test_an_empty_file_is_rejected(tmp_path: Path, loaded_model: LoadedModel, content: str) -> None:
    result = _score(tmp_path, loaded_model, content)

    assert result.report.status == "rejected"
    assert result.report.reason is not None
    assert result.report.reason.startswith("empty file")
    assert result.report.rows_in == 0
    _assert_only_the_report(tmp_path / "out")


@pytest.mark.parametrize("content", [",".join(PLAIN_HEADER), ",".join(PLAIN_HEADER) + "\r\n\r\n"])
def test_a_header_only_file_succeeds_with_header_only_outputs(
    tmp_path: Path, loaded_model: LoadedModel, content: str
) -> None:
    result = _score(tmp_path, loaded_model, content)

    report = result.report
    assert report.status == "succeeded"
    assert (report.rows_in, report.rows_scored, report.rows_failed) == (0, 0, 0)
    assert result.predictions == ",".join([*PLAIN_HEADER, *OUTPUT_COLUMNS]) + "\n"
    assert result.errors == ERRORS_HEADER
    assert report.drift is not None
    assert report.drift.flagged == []
    assert report.rows_per_second == 0


def test_bom_and_crlf_give_the_same_results_as_plain_text(
    tmp_path: Path, loaded_model: LoadedModel
) -> None:
    single_line = [(raw, outcome) for raw, outcome in MIXED if "\n" not in raw]
    plain = _score(tmp_path, loaded_model, _mixed_text(single_line), name="plain.csv")
    windows = _score(
        tmp_path,
        loaded_model,
        b"\xef\xbb\xbf" + _mixed_text(single_line, newline="\r\n").encode(),
        name="windows.csv",
    )

    assert windows.report.status == plain.report.status == "succeeded"
    assert windows.predictions == plain.predictions
    assert windows.errors == plain.errors
    assert parse_csv(windows.predictions)[0][0] == "id"  # no BOM glued to the first name
    for field in ("rows_in", "rows_scored", "rows_failed", "first_errors", "passthrough_columns"):
        assert getattr(windows.report, field) == getattr(plain.report, field)
    assert windows.report.rows_failed > 0


def test_crlf_inside_a_quoted_field_counts_as_one_line_break(
    tmp_path: Path, loaded_model: LoadedModel
) -> None:
    header = ",".join(PLAIN_HEADER)
    text = f'{header}\r\n"x\r\ny",1,1,1,1\r\nbad\r\nz,1,1,1,1\r\n'

    result = _score(tmp_path, loaded_model, text)

    assert [row[-1] for row in parse_csv(result.predictions)[1:]] == ["2", "5"]
    assert [e["line"] for e in parse_errors(result.errors)] == ["4"]


def test_bytes_that_are_not_utf8_reject_the_file(tmp_path: Path, loaded_model: LoadedModel) -> None:
    content = (",".join(PLAIN_HEADER) + "\n" + "a,5.1,3.5,1.4,0.2\n" * 20).encode()
    content += b"b,5.1,3.5,1.4,0.2\xff\xfe\n" + b"c,5.1,3.5,1.4,0.2\n"

    result = _score(tmp_path, loaded_model, content, chunk_rows=7)

    assert result.report.status == "rejected"
    assert result.report.reason is not None
    assert "UTF-8" in result.report.reason
    _assert_only_the_report(tmp_path / "out")


def test_the_rejection_points_at_the_bad_line_not_past_it(
    tmp_path: Path, loaded_model: LoadedModel
) -> None:
    content = (",".join(PLAIN_HEADER) + "\n" + "a,5.1,3.5,1.4,0.2\n" * 2000).encode()
    content += b"b,5.1,\xff,1.4,0.2\n"  # line 2002, far past the first decoded chunk

    result = _score(tmp_path, loaded_model, content)

    assert result.report.status == "rejected"
    assert result.report.reason is not None
    found = re.search(r"UTF-8.*at or after line (\d+)$", result.report.reason)
    assert found is not None, result.report.reason
    assert 1500 < int(found.group(1)) <= 2002


def test_input_columns_named_like_outputs_keep_their_names_and_the_outputs_move_aside(
    tmp_path: Path, loaded_model: LoadedModel
) -> None:
    header = ["Prediction", *FEATURES, "source_line", "probability_setosa "]
    rows = [["old", "5.1", "3.5", "1.4", "0.2", "s", "p"]]

    result = _score(tmp_path, loaded_model, csv_text(header, rows))

    parsed = parse_csv(result.predictions)
    assert parsed[0] == [
        *header,
        "model_prediction",
        "model_probability_setosa",
        "probability_versicolor",
        "probability_virginica",
        "model_source_line",
    ]
    assert parsed[1][:7] == rows[0]
    assert parsed[1][7] == "setosa"
    assert parsed[1][-1] == "2"


# -- chunking ------------------------------------------------------------------------------


def test_small_chunks_give_exactly_the_outputs_of_one_large_chunk(
    tmp_path: Path, loaded_model: LoadedModel
) -> None:
    table = iris_table()
    text = _mixed_text(MIXED) + "".join(",".join(row) + "\n" for row in table.rows)

    small = _score(tmp_path, loaded_model, text, chunk_rows=7, out="small")
    large = _score(tmp_path, loaded_model, text, chunk_rows=100_000, out="large")

    assert small.report.rows_in == large.report.rows_in == 150 + 17
    small_rows, large_rows = parse_csv(small.predictions), parse_csv(large.predictions)
    assert len(small_rows) == len(large_rows) == 1 + 150 + 5
    for small_row, large_row in zip(small_rows, large_rows, strict=True):
        # Probabilities may differ in the last bit: BLAS takes other paths for other
        # batch sizes. Everything else is the same text.
        assert small_row[:6] == large_row[:6]
        assert small_row[9:] == large_row[9:]
        if small_row[6:9] != large_row[6:9]:
            assert [float(p) for p in small_row[6:9]] == pytest.approx(
                [float(p) for p in large_row[6:9]], rel=1e-12, abs=1e-300
            )
    assert small.errors == large.errors
    assert small.report.first_errors == large.report.first_errors
    assert small.report.drift == large.report.drift


# -- drift ---------------------------------------------------------------------------------


def test_the_training_population_shows_no_drift(tmp_path: Path, loaded_model: LoadedModel) -> None:
    table = iris_table()

    report = _score(tmp_path, loaded_model, csv_text(table.header, table.rows)).report

    assert report.drift is not None
    assert report.drift.threshold == 0.2
    assert set(report.drift.features) == set(FEATURES)
    assert report.drift.flagged == []
    for drift in report.drift.features.values():
        assert 0 <= drift.psi < 0.1


def test_a_shifted_population_flags_every_feature(
    tmp_path: Path, loaded_model: LoadedModel
) -> None:
    table = iris_table(shift=5.0)

    report = _score(tmp_path, loaded_model, csv_text(table.header, table.rows)).report

    assert report.status == "succeeded"
    assert report.drift is not None
    assert sorted(report.drift.flagged) == sorted(FEATURES)
    assert all(d.psi > 1.0 for d in report.drift.features.values())


@pytest.mark.parametrize(("rows", "flagged"), [(1, False), (99, False), (100, True)])
def test_too_few_rows_flag_nothing_and_say_so(
    tmp_path: Path, loaded_model: LoadedModel, rows: int, flagged: bool
) -> None:
    table = iris_table(shift=5.0)  # far off: every feature's PSI is huge

    report = _score(tmp_path, loaded_model, csv_text(table.header, table.rows[:rows])).report

    assert report.drift is not None
    assert report.drift.rows == rows
    assert all(d.psi > 1.0 for d in report.drift.features.values())
    assert bool(report.drift.flagged) is flagged
    if flagged:
        assert report.drift.note is None
    else:
        assert report.drift.note == (
            f"too few rows for a drift signal: {rows:,} scored, 100 needed; nothing is flagged"
        )


def test_drift_counts_scored_rows_only(tmp_path: Path, loaded_model: LoadedModel) -> None:
    table = iris_table()
    bad = [["x", "1e9", "1e9", "1e9", "oops"]] * 500  # wildly off, but never scored

    report = _score(tmp_path, loaded_model, csv_text(table.header, [*table.rows, *bad])).report

    assert report.rows_failed == 500
    assert report.drift is not None
    assert report.drift.flagged == []


# -- the invariant, over generated files ---------------------------------------------------

VALID = "valid"
BAD_KINDS = ["short", "long", "empty", "spaces", "text", "nan", "inf", "neg_inf", "multiline_bad"]
SKIPPED = ["blank", "whitespace"]
KINDS = [VALID, "valid_multiline", *BAD_KINDS, *SKIPPED]


def _record(kind: str, column: int, value: float, nl: str) -> str:
    cells = ["id", *(f"{value + i:.3f}" for i in range(4))]
    target = column + 1
    if kind == "valid_multiline":
        cells[0] = f'"first{nl}second"'
    elif kind == "short":
        cells = cells[:target]
    elif kind == "long":
        cells.append("extra")
    elif kind == "empty":
        cells[target] = ""
    elif kind == "spaces":
        cells[target] = "  "
    elif kind == "text":
        cells[target] = "n/a"
    elif kind == "nan":
        cells[target] = "nan"
    elif kind == "inf":
        cells[target] = "inf"
    elif kind == "neg_inf":
        cells[target] = "-Infinity"
    elif kind == "multiline_bad":
        cells[target] = f'"1.0{nl}2.0"'
    elif kind == "blank":
        return ""
    elif kind == "whitespace":
        return " \t "
    return ",".join(cells)


@settings(max_examples=50, deadline=None)
@given(
    records=st.lists(
        st.tuples(
            st.sampled_from(KINDS),
            st.integers(min_value=0, max_value=3),
            st.floats(min_value=0.0, max_value=8.0, allow_nan=False),
        ),
        max_size=40,
    ),
    newline=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    trailing_newline=st.booleans(),
    chunk_rows=st.integers(min_value=1, max_value=9),
)
def test_every_data_line_lands_exactly_once_in_predictions_or_errors(
    loaded_model: LoadedModel,
    records: list[tuple[str, int, float]],
    newline: str,
    bom: bool,
    trailing_newline: bool,
    chunk_rows: int,
) -> None:
    lines = [",".join(PLAIN_HEADER)]
    expected_good: list[int] = []
    expected_bad: list[int] = []
    line = 2
    for kind, column, value in records:
        record = _record(kind, column, value, newline)
        if kind in (VALID, "valid_multiline"):
            expected_good.append(line)
        elif kind in BAD_KINDS:
            expected_bad.append(line)
        lines.append(record)
        line += record.count(newline) + 1
    text = newline.join(lines) + (newline if trailing_newline else "")
    content = (b"\xef\xbb\xbf" if bom else b"") + text.encode()

    with tempfile.TemporaryDirectory() as tmp:
        result = _score(Path(tmp), loaded_model, content, chunk_rows=chunk_rows)

    report = result.report
    assert report.status == "succeeded"
    assert report.rows_in == report.rows_scored + report.rows_failed
    assert report.rows_in == len(expected_good) + len(expected_bad)
    scored_lines = [int(row[-1]) for row in parse_csv(result.predictions)[1:]]
    error_lines = [int(e["line"]) for e in parse_errors(result.errors)]
    assert len(scored_lines) == report.rows_scored
    assert len(error_lines) == report.rows_failed
    # Each data line exactly once, on the side its kind says.
    assert sorted(scored_lines + error_lines) == sorted(expected_good + expected_bad)
    assert scored_lines == expected_good
    assert error_lines == expected_bad


# -- a model of one feature ---------------------------------------------------------------


def test_a_one_feature_model_scores_valid_chunks_and_reports_bad_cells(tmp_path: Path) -> None:
    """Chunks are converted in one call; with a single feature column, cells come one per row."""
    from model_store.gate import load_artifact_dir
    from model_store.training import Dataset, build_artifact, train

    values = [[float(i % 10)] for i in range(60)]
    labels = ["low" if v[0] < 5 else "high" for v in values]
    import numpy as np

    dataset = Dataset(np.array(values), np.array(labels), ["x"], "level", "synthetic")
    artifact = build_artifact(
        train(dataset, algorithms=("decision_tree",), cv_folds=3), name="levels"
    )
    model = load_artifact_dir(artifact.write(tmp_path / "levels"), runtime="onnx")
    rows = [[str(v)] for v in (1.0, 8.0, 2.0)]
    text = csv_text(["x"], [*rows, ["oops"], ["9.5"]])

    result = _score(tmp_path, model, text, chunk_rows=3)

    predicted = parse_csv(result.predictions)
    assert [row[:2] for row in predicted[1:]] == [
        ["1.0", "low"],
        ["8.0", "high"],
        ["2.0", "low"],
        ["9.5", "high"],
    ]
    assert [(e["line"], e["reason"]) for e in parse_errors(result.errors)] == [
        ("5", "x: 'oops' is not a number")
    ]


def test_the_garbage_collector_is_paused_while_scoring_and_restored_after(
    tmp_path: Path, loaded_model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    seen: list[bool] = []
    real_score = LoadedModel.score

    def score(self: LoadedModel, rows: object) -> object:
        seen.append(gc.isenabled())
        return real_score(self, rows)

    monkeypatch.setattr(LoadedModel, "score", score)
    table = iris_table()
    assert gc.isenabled()

    _score(tmp_path, loaded_model, csv_text(table.header, table.rows), chunk_rows=50)
    rejected = _score(tmp_path, loaded_model, "no,features,here\n1,2,3\n", out="rejected")

    # Four chunks (lines 2-50, 51-100, 101-150, 151), each scored with it paused.
    assert seen == [False, False, False, False]
    assert rejected.report.status == "rejected"
    assert gc.isenabled()
    gc.disable()
    try:
        _score(tmp_path, loaded_model, csv_text(table.header, table.rows[:5]), out="again")
        assert not gc.isenabled()  # a caller's choice is left as it was
    finally:
        gc.enable()


def test_rows_the_model_cannot_score_go_to_the_errors_with_the_fields_named(
    tmp_path: Path, loaded_model: LoadedModel
) -> None:
    """Finite numbers past the model's arithmetic: a row error, never a failed file."""
    table = iris_table()
    huge = ["x1", "-3.9e112", "1.7976931348623157e308", "1.4", "0.2"]
    rows = [*table.rows[:3], huge, *table.rows[3:5]]

    result = _score(tmp_path, loaded_model, csv_text(table.header, rows), chunk_rows=4)

    report = result.report
    assert (report.status, report.rows_in, report.rows_scored, report.rows_failed) == (
        "succeeded",
        6,
        5,
        1,
    )
    [error] = parse_errors(result.errors)
    assert error["line"] == "5"
    assert error["reason"].startswith("the model cannot score these values: sepal_width=")
    assert error["raw"] == ",".join(huge)
    assert [int(row[-1]) for row in parse_csv(result.predictions)[1:]] == [2, 3, 4, 6, 7]


# -- cells a spreadsheet would run ---------------------------------------------------------

FORMULAS = ["=cmd|' /C calc'!A0", "+SUM(A1:A9)", "@SUM(1)", "-x", "\tlead", "=1+1"]


def _formula_file() -> str:
    table = iris_table()
    good = table.rows[0][1:]
    rows = [[cell, *good] for cell in FORMULAS]
    rows += [["-2.5", *good], ["plain", *good], ["=bad", "1", "x", "1", "1"]]
    return csv_text(["=id", *FEATURES], rows)


def test_cells_a_spreadsheet_would_run_get_an_apostrophe_numbers_do_not(
    tmp_path: Path, loaded_model: LoadedModel
) -> None:
    result = _score(tmp_path, loaded_model, _formula_file())

    predicted = parse_csv(result.predictions)
    assert predicted[0][0] == "'=id"
    assert [row[0] for row in predicted[1:]] == [
        *(f"'{cell}" for cell in FORMULAS),
        "-2.5",  # a negative number is a number
        "plain",
    ]
    assert [row[1:5] for row in predicted[1:]] == [iris_table().rows[0][1:]] * 8
    [error] = parse_errors(result.errors)
    assert error["raw"] == "'=bad,1,x,1,1"
    assert error["reason"] == "sepal_width: 'x' is not a number"


def test_cells_are_written_as_they_came_when_asked(
    tmp_path: Path, loaded_model: LoadedModel
) -> None:
    source = tmp_path / "input.csv"
    source.write_text(_formula_file(), encoding="utf-8", newline="")

    score_file(source, loaded_model, tmp_path / "out", neutralise_formulas=False)

    predicted = parse_csv((tmp_path / "out" / "input.predictions.csv").read_text())
    assert predicted[0][0] == "=id"
    assert [row[0] for row in predicted[1:7]] == FORMULAS
    errors = parse_errors((tmp_path / "out" / "input.errors.csv").read_text())
    assert errors[0]["raw"] == "=bad,1,x,1,1"
