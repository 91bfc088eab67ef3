"""The report's HTML page: its numbers are the JSON's, its text is escaped, it stands alone.

Pages are read back with the stdlib HTMLParser: numbers through the data-* attributes the
page puts on them (and the text shown beside), text as a browser would show it.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import model_store.batch.html_report
from model_store.batch import BatchReport, score_file, score_s3_object
from model_store.batch.html_report import render_html
from model_store.batch.report import Drift, FeatureDrift, RowError, SourceInfo
from model_store.exceptions import ModelStoreError
from model_store.gate import LoadedModel, load_model
from model_store.registry import Registry
from tests.support.batch_files import csv_text, iris_table
from tests.support.s3 import keys_under, read_object

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ROOT = Path(__file__).resolve().parents[3]
HOSTILE_NAME = "<script>alert(1)</script>.csv"
HOSTILE_CELL = "<img src=x onerror=alert(1)>"
VOID = {"meta", "br", "link", "img", "input", "hr", "source"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join("".join(self.parts).split())


class Page(HTMLParser):
    """Every element with its attributes and text content, as a browser reads them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self._open: list[Element] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.elements.append(element)
        if tag not in VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.parts.append(data)

    @property
    def tags(self) -> set[str]:
        return {e.tag for e in self.elements}

    @property
    def text(self) -> str:
        return next(e for e in self.elements if e.tag == "html").text

    def field(self, name: str) -> Element:
        [found] = [e for e in self.elements if e.attrs.get("data-field") == name]
        return found

    def having(self, attribute: str) -> list[Element]:
        return [e for e in self.elements if attribute in e.attrs]


def assert_self_contained(html: str) -> Page:
    """No script, no external resource, readable on a phone; the parsed page."""
    page = Page(html)
    lowered = html.lower()
    assert "<script" not in lowered
    assert "http://" not in lowered
    assert "https://" not in lowered
    assert "url(" not in lowered
    assert "@import" not in lowered
    assert not page.tags & {"script", "img", "link", "iframe", "object", "embed", "image", "use"}
    assert not [(e.tag, name) for e in page.elements for name in e.attrs if name.startswith("on")]
    assert not [e for e in page.elements if {"src", "href", "xlink:href"} & set(e.attrs)]
    [viewport] = [e for e in page.elements if e.attrs.get("name") == "viewport"]
    assert "width=device-width" in viewport.attrs["content"]
    [policy] = [e for e in page.elements if e.attrs.get("http-equiv") == "Content-Security-Policy"]
    assert "default-src 'none'" in policy.attrs["content"]
    return page


def assert_matches(page: Page, report: dict[str, Any]) -> None:
    """Every number of the page against the report's JSON."""
    assert page.field("status").text == report["status"]
    for name in ("rows_in", "rows_scored", "rows_failed"):
        shown = page.field(name)
        assert int(shown.attrs["data-value"]) == report[name]
        assert shown.text == f"{report[name]:,}"
    for name in ("duration_seconds", "rows_per_second"):
        assert float(page.field(name).attrs["data-value"]) == report[name]
    assert page.field("duration_seconds").text == f"{report['duration_seconds']:,.3f} s"
    assert page.field("rows_per_second").text == f"{report['rows_per_second']:,.0f}"
    assert page.field("source.location").text == report["source"]["location"]
    if report["reason"] is not None:
        assert page.field("reason").text == " ".join(report["reason"].split())
    model = report["model"]
    assert page.field("model").text == (
        f"{model['name']}@{model['version']}" if model else "none loaded"
    )

    drift = report["drift"]
    bars = {e.attrs["data-feature"]: e for e in page.having("data-feature")}
    if drift is None:
        assert bars == {}
    else:
        assert float(page.field("drift.threshold").attrs["data-value"]) == drift["threshold"]
        assert int(page.field("drift.rows").attrs["data-value"]) == drift["rows"]
        assert set(bars) == set(drift["features"])
        for name, feature in drift["features"].items():
            assert float(bars[name].attrs["data-psi"]) == feature["psi"]
            assert bars[name].attrs["data-flagged"] == str(feature["flagged"]).lower()
            assert f"{feature['psi']:.3f}" in bars[name].text
        fields = {e.attrs["data-field"] for e in page.having("data-field")}
        if drift["note"] is None:
            assert "drift.note" not in fields
        else:
            assert page.field("drift.note").text == drift["note"]

    expected: dict[str, list[int]] = {}
    for error in report["first_errors"]:
        expected.setdefault(error["reason"], []).append(error["line"])
    groups = page.having("data-reason")
    assert {g.attrs["data-reason"]: g.attrs["data-lines"] for g in groups} == {
        reason: " ".join(map(str, lines)) for reason, lines in expected.items()
    }
    counts = [int(g.attrs["data-count"]) for g in groups]
    assert counts == sorted(counts, reverse=True)  # the most frequent first
    assert sum(counts) == len(report["first_errors"])
    for group in groups:
        assert group.text.startswith(f"{group.attrs['data-count']}\N{MULTIPLICATION SIGN}")


# -- local files ---------------------------------------------------------------------------


def _local(
    tmp_path: Path, model: LoadedModel, text: str, name: str = "input.csv"
) -> tuple[dict[str, Any], str]:
    source = tmp_path / name
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    score_file(source, model, out)
    stem = source.name.removesuffix(".csv")
    report = json.loads((out / f"{stem}.report.json").read_text(encoding="utf-8"))
    return report, (out / f"{stem}.report.html").read_text(encoding="utf-8")


def _rows(bad: list[list[str]]) -> str:
    table = iris_table()
    return csv_text(table.header, [*table.rows, *bad])


def test_the_page_beside_the_json_shows_the_reports_numbers(
    tmp_path: Path, loaded_model: LoadedModel
) -> None:
    bad = [
        ["b1", "5.1", "oops", "1.4", "0.2"],
        ["b2", "5.1", "3.5"],
        ["b3", "5.1", "3.5", "1.4", "0.2", "9"],
        ["b4", "5.1", "3.5"],
    ]
    report, html = _local(tmp_path, loaded_model, _rows(bad))

    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "input.errors.csv",
        "input.predictions.csv",
        "input.report.html",
        "input.report.json",
    ]
    page = assert_self_contained(html)
    assert report["status"] == "succeeded"
    assert report["rows_failed"] == 4
    assert_matches(page, report)
    # Four failed rows, all of them listed: the page does not call them a sample.
    assert page.field("first_errors_scope").text.startswith("All 4 failed rows")
    assert page.having("data-reason")[0].attrs["data-reason"] == "expected 5 fields, found 3"
    assert "2\N{MULTIPLICATION SIGN}" in page.having("data-reason")[0].text
    assert "lines 153, 155" in page.having("data-reason")[0].text


def test_past_the_first_errors_the_page_says_its_groups_are_from_them_only(
    tmp_path: Path, loaded_model: LoadedModel
) -> None:
    bad = [[f"b{i}", "5.1", "3.5"] for i in range(3)]
    bad += [[f"n{i}", "x", "3.5", "1.4", "0.2"] for i in range(12)]
    report, html = _local(tmp_path, loaded_model, _rows(bad))

    page = assert_self_contained(html)
    assert (report["rows_failed"], len(report["first_errors"])) == (15, 10)
    assert_matches(page, report)
    scope = page.field("first_errors_scope").text
    assert scope.startswith("From the first 10 errors only")
    assert "of the 15 failed rows" in scope
    assert report["outputs"]["errors"] in scope
    [most, fewer] = page.having("data-reason")
    assert (most.attrs["data-count"], fewer.attrs["data-count"]) == ("7", "3")
    assert most.attrs["data-reason"] == "sepal_length: 'x' is not a number"


def test_a_few_rows_show_the_drift_note_and_no_flag(
    tmp_path: Path, loaded_model: LoadedModel
) -> None:
    table = iris_table(shift=3.0)
    report, html = _local(tmp_path, loaded_model, csv_text(table.header, table.rows[:5]))

    page = assert_self_contained(html)
    assert report["drift"]["note"].startswith("too few rows for a drift signal")
    assert_matches(page, report)
    assert all(e.attrs["data-flagged"] == "false" for e in page.having("data-feature"))
    assert "No feature is flagged." in page.text


def test_drifted_features_are_flagged_on_the_page(
    tmp_path: Path, loaded_model: LoadedModel
) -> None:
    table = iris_table(shift=2.0)
    report, html = _local(tmp_path, loaded_model, csv_text(table.header, table.rows))

    page = assert_self_contained(html)
    flagged = [name for name, d in report["drift"]["features"].items() if d["flagged"]]
    assert flagged
    assert_matches(page, report)
    assert f"Flagged: {', '.join(flagged)}" in page.text
    assert sum(e.tag == "svg" for e in page.elements) == 4  # a bar each, inline SVG


def test_a_hostile_file_name_and_cell_are_escaped(
    tmp_path: Path, loaded_model: LoadedModel
) -> None:
    # The name's "/" makes a directory "<script>alert(1)<" holding "script>.csv": the
    # location the report names is the whole path.
    name = HOSTILE_NAME
    report, html = _local(
        tmp_path, loaded_model, _rows([["x", "5.1", HOSTILE_CELL, "1.4", "0.2"]]), name
    )

    page = assert_self_contained(html)
    assert "<img" not in html.lower()
    assert report["source"]["location"].endswith(HOSTILE_NAME)
    assert_matches(page, report)
    assert HOSTILE_NAME in page.text
    assert f"sepal_width: '{HOSTILE_CELL}' is not a number" in page.text


def test_a_rejected_file_gets_a_page_that_says_so(
    tmp_path: Path, loaded_model: LoadedModel
) -> None:
    report, html = _local(tmp_path, loaded_model, "id,sepal_length\n1,2\n")

    page = assert_self_contained(html)
    assert report["status"] == "rejected"
    assert_matches(page, report)
    assert "no row was scored" in page.text
    assert "missing feature column(s)" in page.field("reason").text
    assert "No drift in this report." in page.text
    assert "No row failed." in page.text


def test_every_text_of_a_report_is_escaped_svg_titles_too() -> None:
    evil = "<script>alert(1)</script>\"'&<img src=x onerror=alert(1)>"
    report = BatchReport(
        status="failed",
        reason=f"scoring stopped: {evil}",
        source=SourceInfo(location=f"s3://b/incoming/{evil}.csv", etag=evil, version_id=evil),
        model={"name": evil, "version": evil},
        outputs={"errors": f"s3://b/errors/{evil}.csv"},
        rows_in=30,
        rows_failed=30,
        first_errors=[RowError(line=n, reason=evil) for n in range(2, 12)],
        drift=Drift(
            threshold=0.2,
            features={evil: FeatureDrift(psi=0.5, flagged=True)},
            rows=150,
            note=evil,
        ),
        started_at=datetime(2026, 1, 2, tzinfo=UTC),
    )

    html = render_html(report)

    page = assert_self_contained(html)
    assert "<img" not in html.lower()
    assert_matches(page, json.loads(report.to_json()))
    [title] = [e for e in page.elements if e.tag == "title" and e.text.startswith(evil)]
    assert title.text == f"{evil}: PSI 0.500, threshold 0.2 (flagged)"
    assert page.text.count(evil) >= 8
    assert "this attempt wrote no predictions or errors" in page.text


# -- S3 ------------------------------------------------------------------------------------


@pytest.fixture
def model(iris_registry: Registry) -> Callable[[], LoadedModel]:
    return functools.partial(load_model, iris_registry, "iris", "1", cache_dir=None)


def _s3_page(s3: S3Client, bucket: str, stem: str) -> tuple[dict[str, Any], Page]:
    report = json.loads(read_object(s3, bucket, f"reports/{stem}.json"))
    head = s3.head_object(Bucket=bucket, Key=f"reports/{stem}.html")
    assert head["ContentType"] == "text/html; charset=utf-8"
    page = assert_self_contained(read_object(s3, bucket, f"reports/{stem}.html"))
    assert_matches(page, report)
    return report, page


def test_s3_writes_the_page_beside_the_json_with_its_content_type(
    s3: S3Client, data_bucket: str, model: Callable[[], LoadedModel]
) -> None:
    key = f"incoming/2026/{HOSTILE_NAME}"
    bad = [["x", "5.1", HOSTILE_CELL, "1.4", "0.2"]]
    s3.put_object(Bucket=data_bucket, Key=key, Body=_rows(bad).encode())

    outcome = score_s3_object(s3, data_bucket, key, model)

    assert outcome.report.status == "succeeded"
    stem = "2026/<script>alert(1)</script>"
    assert keys_under(s3, data_bucket, "reports/") == [
        f"reports/{stem}.html",
        f"reports/{stem}.json",
    ]
    _, page = _s3_page(s3, data_bucket, stem)
    assert f"s3://{data_bucket}/{key}" in page.text
    assert f"sepal_width: '{HOSTILE_CELL}' is not a number" in page.text


def test_s3_rejected_and_failed_reports_get_pages_that_say_so(
    s3: S3Client, data_bucket: str, model: Callable[[], LoadedModel]
) -> None:
    s3.put_object(Bucket=data_bucket, Key="incoming/bad.csv", Body=b"id,sepal_length\n1,2\n")
    s3.put_object(Bucket=data_bucket, Key="incoming/notes.txt", Body=b"hello")
    s3.put_object(Bucket=data_bucket, Key="incoming/down.csv", Body=_rows([]).encode())

    def no_model() -> LoadedModel:
        raise ModelStoreError("the registry is unreachable")

    rejected = score_s3_object(s3, data_bucket, "incoming/bad.csv", model)
    refused = score_s3_object(s3, data_bucket, "incoming/notes.txt", model)
    with pytest.raises(ModelStoreError):
        score_s3_object(s3, data_bucket, "incoming/down.csv", no_model)

    assert (rejected.report.status, refused.report.status) == ("rejected", "rejected")
    report, page = _s3_page(s3, data_bucket, "bad")
    assert "no row was scored" in page.text
    assert "missing feature column(s)" in page.field("reason").text
    report, page = _s3_page(s3, data_bucket, "notes.txt")
    assert page.field("model").text == "none loaded"
    report, page = _s3_page(s3, data_bucket, "down")
    assert report["status"] == "failed"
    assert "Scoring stopped" in page.text
    assert page.field("reason").text == "no model: the registry is unreachable"


def test_a_page_that_cannot_be_written_does_not_fail_the_run(
    s3: S3Client,
    data_bucket: str,
    model: Callable[[], LoadedModel],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(report: BatchReport) -> str:
        raise RuntimeError("a bug in the page")

    monkeypatch.setattr(model_store.batch.html_report, "render_html", broken)
    s3.put_object(Bucket=data_bucket, Key="incoming/iris.csv", Body=_rows([]).encode())

    outcome = score_s3_object(s3, data_bucket, "incoming/iris.csv", model)

    assert outcome.report.status == "succeeded"
    assert keys_under(s3, data_bucket, "reports/") == ["reports/iris.json"]
    assert "the report page s3://" in caplog.text
    assert "reports/iris.html was not written" in caplog.text


# -- imports -------------------------------------------------------------------------------


def test_the_page_module_is_stdlib_only_and_loaded_only_to_write_a_page() -> None:
    probe = """
import json, sys
import model_store
api = "model_store.batch" in sys.modules
import model_store.batch
batch = "model_store.batch.html_report" in sys.modules
before = set(sys.modules)
import model_store.batch.html_report
print(json.dumps({"api": api, "batch": batch, "new": sorted(set(sys.modules) - before)}))
"""
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    imported = json.loads(done.stdout)
    # The API's model_store has no batch package; the batch package (the batch function's
    # init) does not load the page module; the page module brings only the stdlib's html.
    assert (imported["api"], imported["batch"]) == (False, False)
    assert set(imported["new"]) <= {"model_store.batch.html_report", "html", "html.entities"}
