"""Iris CSV files as the batch tests write and read them: columns, rows, parsing."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
CLASSES = ["setosa", "versicolor", "virginica"]
OUTPUT_COLUMNS = [
    "prediction",
    *(f"probability_{c}" for c in CLASSES),
    "source_line",
]
ERRORS_HEADER = "line,reason,raw\n"


@dataclass(frozen=True)
class IrisTable:
    """The 150 iris rows as CSV cells: header + rows, and each id's true species."""

    header: list[str]
    rows: list[list[str]]
    labels: dict[str, str]


def iris_table(*, shift: float = 0.0, header: Sequence[str] | None = None) -> IrisTable:
    """The 150 iris rows with an ``id`` column, in the column order of HEADER.

    HEADER names the columns as they appear in the file (any case, padded with spaces);
    the default is ``id`` then the four features. SHIFT is added to every feature value.
    """
    from sklearn.datasets import load_iris

    iris = load_iris()
    names = list(header or ["id", *FEATURES])
    keys = [n.strip().lower() for n in names]
    rows: list[list[str]] = []
    labels: dict[str, str] = {}
    for index, (values, target) in enumerate(zip(iris.data, iris.target, strict=True)):
        ident = f"row-{index:03d}"
        cells = {"id": ident}
        cells.update(
            {f: repr(round(float(v) + shift, 6)) for f, v in zip(FEATURES, values, strict=True)}
        )
        rows.append([cells[k] for k in keys])
        labels[ident] = str(iris.target_names[target])
    return IrisTable(names, rows, labels)


def csv_text(header: Sequence[str], rows: Sequence[Sequence[str]], *, newline: str = "\n") -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=newline).writerows([list(header), *map(list, rows)])
    return buffer.getvalue()


def parse_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def parse_errors(text: str) -> list[dict[str, str]]:
    assert text.startswith(ERRORS_HEADER)
    return list(csv.DictReader(io.StringIO(text, newline="")))
