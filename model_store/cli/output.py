"""How the CLI speaks: aligned tables for people, JSON for scripts, one line for errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from model_store.manifest import Manifest


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def emit(as_json: bool, data: Any, human: str) -> None:
    if as_json:
        print(json.dumps(data, indent=2, default=str))
    else:
        print(human)


def onnx_summary(manifest: Manifest) -> str:
    """One line: the ONNX form and its proof, or why there is none."""
    form = manifest.onnx
    if form is None:
        return f"ONNX form: none ({manifest.onnx_missing_reason}); the sklearn runtime serves it"
    proof = form.proof
    within = (
        ""
        if proof.max_probability_diff is None
        else f", probabilities within {proof.max_probability_diff:.1e} "
        f"(tolerance {proof.tolerance:g})"
    )
    return (
        f"ONNX form: {form.graph} graph, proven with ONNX Runtime {form.onnxruntime} on "
        f"{proof.total_rows:,} rows ({', '.join(f'{k} {v:,}' for k, v in proof.rows.items())}): "
        f"{proof.label_agreement:.0%} of labels equal{within}"
    )


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def note(message: str) -> None:
    """What a command is doing, for people: a line on stderr."""
    print(message, file=sys.stderr, flush=True)


def unexpected_error(exc: BaseException) -> str | None:
    """One line for a failure met outside model_store's own errors (None: a bug to show)."""
    if isinstance(exc, OSError):
        path = exc.filename2 or exc.filename  # a rename's target is the path people know
        return f"{path}: {exc.strerror or exc}" if path else str(exc.strerror or exc)
    if type(exc).__module__.split(".")[0] in {"botocore", "boto3", "s3transfer"}:
        hint = (
            " (set AWS_REGION or AWS_DEFAULT_REGION)"
            if type(exc).__name__ == "NoRegionError"
            else ""
        )
        return f"AWS: {exc}{hint}"
    return None


class UsageError(Exception):
    """A command line that cannot run as given (exit status 2, like argparse)."""
