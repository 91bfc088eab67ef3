"""``model-store score``: the batch engine on a local CSV file."""

from __future__ import annotations

import argparse
import bisect
import gzip
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from model_store.batch import DEFAULT_CHUNK_ROWS, score_file
from model_store.batch.report import DEFAULT_DRIFT_THRESHOLD
from model_store.cli.options import Parser, add_command, integer, number, require_file, writable_dir
from model_store.cli.output import UsageError, emit, warn
from model_store.cli.progress import Bar, wanted
from model_store.cli.registries import registry_from, resolve
from model_store.gate import LoadedModel, load_artifact_dir, load_model
from model_store.runtimes import RUNTIME_NAMES

if TYPE_CHECKING:
    from model_store.batch.report import BatchReport
    from model_store.cli.options import Subparsers


def add_parser(commands: Subparsers, parents: list[Parser]) -> None:
    parser = add_command(
        commands,
        "score",
        run,
        parents=parents,
        help="score a CSV file with a model, as the batch function does",
        description="Stream INPUT.csv through a model in chunks: predictions, row errors and "
        "a report (with drift) are written to --out.",
    )
    parser.add_argument("input", type=Path, metavar="INPUT.csv", help="the CSV file to score")
    parser.add_argument(
        "--model",
        required=True,
        help="an artifact directory, or NAME[@VERSION|@ALIAS] in --registry (default alias "
        "production)",
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="directory for the outputs"
    )
    parser.add_argument(
        "--runtime",
        choices=RUNTIME_NAMES,
        default="onnx",
        help="score with the model's ONNX form in ONNX Runtime (default, as the stack's "
        "ServingRuntime) or with scikit-learn",
    )
    parser.add_argument(
        "--chunk-rows",
        type=integer(1),
        default=DEFAULT_CHUNK_ROWS,
        metavar="N",
        help=f"rows scored per call (default {DEFAULT_CHUNK_ROWS:,})",
    )
    parser.add_argument(
        "--drift-threshold",
        type=number(above=0),
        default=DEFAULT_DRIFT_THRESHOLD,
        metavar="PSI",
        help="flag a feature whose population stability index exceeds this "
        f"(default {DEFAULT_DRIFT_THRESHOLD})",
    )
    parser.add_argument(
        "--raw-cells",
        action="store_true",
        help="write cells exactly as they came; by default a cell a spreadsheet would run "
        "as a formula (=, +, -, @, tab or CR first, not a number) gets a leading apostrophe",
    )


def _model(args: argparse.Namespace) -> LoadedModel:
    path = Path(args.model)
    if path.is_dir():
        if args.registry:
            warn(f"--registry is not used: --model {args.model} is an artifact directory")
        return load_artifact_dir(path, runtime=args.runtime)
    if "/" in args.model or path.exists():  # a path, not NAME[@VERSION|@ALIAS]
        raise UsageError(f"{args.model} is not a directory (--model: an artifact directory)")
    registry = registry_from(args)
    return load_model(registry, *resolve(registry, args.model), runtime=args.runtime)


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


class LineIndex:
    """Where a file's lines end, block by block: the bytes behind a count of lines read.

    A .gz file is indexed as the engine reads it, decompressed: its bytes are the text's.
    """

    BLOCK = 1 << 20

    def __init__(self, handle: _Readable) -> None:
        self.lines = [0]
        self.offsets = [0]
        while block := handle.read(self.BLOCK):
            self.lines.append(self.lines[-1] + block.count(b"\n"))
            self.offsets.append(self.offsets[-1] + len(block))

    @classmethod
    def of(cls, path: Path) -> LineIndex | None:
        """The index of PATH; None if it cannot be read through (the engine will say why)."""
        try:
            with gzip.open(path) if path.name.lower().endswith(".gz") else path.open("rb") as f:
                return cls(f)
        except (OSError, EOFError, zlib.error):
            return None

    @property
    def total_lines(self) -> int:
        return self.lines[-1]

    @property
    def total_bytes(self) -> int:
        return self.offsets[-1]

    def bytes_at(self, lines: int) -> int:
        """Bytes read once LINES lines are (interpolated inside the block they end in)."""
        i = bisect.bisect_left(self.lines, lines)
        if i >= len(self.lines):
            return self.offsets[-1]
        if i == 0 or self.lines[i] == self.lines[i - 1]:
            return self.offsets[i]
        share = (lines - self.lines[i - 1]) / (self.lines[i] - self.lines[i - 1])
        return self.offsets[i - 1] + round(share * (self.offsets[i] - self.offsets[i - 1]))


def _score(args: argparse.Namespace, model: LoadedModel) -> BatchReport:
    """score_file, with a bar of the lines and bytes read when there is a terminal."""
    show = wanted(args.json)
    index = LineIndex.of(args.input) if show else None
    total = index.total_bytes if index is not None else None
    with Bar(f"scoring {args.input.name}", "lines", total=total, show=show) as bar:

        def read(lines: int) -> None:
            bar.update(completed=index.bytes_at(lines) if index else None, lines=lines)

        report = score_file(
            args.input,
            model,
            args.out,
            chunk_rows=args.chunk_rows,
            drift_threshold=args.drift_threshold,
            progress=read if show else None,
            neutralise_formulas=not args.raw_cells,
        )
        if index is not None and report.status == "succeeded":
            bar.finish(lines=index.total_lines)
    return report


def run(args: argparse.Namespace) -> int:
    require_file(args.input)
    writable_dir(args.out)
    model = _model(args)
    report = _score(args, model)
    lines = [
        f"{report.status}: {args.input} with {model.name}@{model.version} "
        f"({model.runtime.name} runtime)",
        f"  rows in {report.rows_in:,}, scored {report.rows_scored:,}, "
        f"failed {report.rows_failed:,} ({report.rows_per_second:,.0f} rows/s)",
    ]
    if report.reason:
        lines.append(f"  reason: {report.reason}")
    lines += [f"  line {e.line}: {e.reason}" for e in report.first_errors[:5]]
    if report.drift and report.drift.flagged:
        lines.append(
            f"  drift flagged (PSI > {report.drift.threshold}): {', '.join(report.drift.flagged)}"
        )
    lines += [f"  {name}: {path}" for name, path in report.outputs.items()]
    emit(args.json, report.model_dump(mode="json"), "\n".join(lines))
    return 0 if report.status == "succeeded" else 1
