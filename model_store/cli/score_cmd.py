"""``model-store score``: the batch engine on a local CSV file."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from model_store.batch import DEFAULT_CHUNK_ROWS, score_file
from model_store.cli.output import UsageError, emit
from model_store.cli.registry_cmds import registry_from
from model_store.loading import LoadedModel, load_artifact_dir, load_model
from model_store.runtimes import RUNTIME_NAMES

if TYPE_CHECKING:
    from model_store.cli.registry_cmds import Subparsers


def add_parser(commands: Subparsers, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "score",
        parents=[common],
        help="score a CSV file with a model, as the batch function does",
        description="Stream INPUT.csv through a model in chunks: predictions, row errors and "
        "a report (with drift) are written to --out.",
    )
    parser.add_argument("input", type=Path, metavar="INPUT.csv")
    parser.add_argument(
        "--model",
        required=True,
        help="an artifact directory, or NAME[@VERSION|@ALIAS] in --registry (default alias "
        "production)",
    )
    parser.add_argument("--out", type=Path, required=True, help="directory for the outputs")
    parser.add_argument(
        "--runtime",
        choices=RUNTIME_NAMES,
        default="onnx",
        help="score with the model's ONNX form in ONNX Runtime (default, as the stack's "
        "ServingRuntime) or with scikit-learn",
    )
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS)
    parser.add_argument("--drift-threshold", type=float, default=0.2)
    parser.add_argument(
        "--raw-cells",
        action="store_true",
        help="write cells exactly as they came; by default a cell a spreadsheet would run "
        "as a formula (=, +, -, @, tab or CR first, not a number) gets a leading apostrophe",
    )
    parser.set_defaults(handler=run)


def _model(args: argparse.Namespace) -> LoadedModel:
    path = Path(args.model)
    if path.is_dir():
        return load_artifact_dir(path, runtime=args.runtime)
    registry = registry_from(args)
    return load_model(registry, *registry.resolve_ref(args.model), runtime=args.runtime)


class _Progress:
    """A one-line progress meter on stderr (only when it is a terminal)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.active = sys.stderr.isatty()

    def __call__(self, lines: int) -> None:
        if self.active:
            rate = lines / max(time.perf_counter() - self.started, 1e-9)
            print(f"\r  {lines:,} lines read, {rate:,.0f} lines/s", end="", file=sys.stderr)

    def done(self) -> None:
        if self.active:
            print(file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    if not args.input.is_file():
        raise UsageError(f"{args.input} is not a file")
    model = _model(args)
    progress = _Progress()
    report = score_file(
        args.input,
        model,
        args.out,
        chunk_rows=args.chunk_rows,
        drift_threshold=args.drift_threshold,
        progress=progress,
        neutralise_formulas=not args.raw_cells,
    )
    progress.done()
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
