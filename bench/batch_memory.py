"""Batch scoring memory: peak RSS on a file of megabyte lines against one of ordinary rows.

    .venv/bin/python bench/batch_memory.py [--size-mb 200] [--runtime onnx] [--repeat 1]

The engine bounds memory by bytes (model_store/batch/engine.py): no record over
max_line_bytes (1 MiB by default) is ever read whole, a chunk is flushed at chunk_rows
records or chunk_bytes (8 MiB) of text, a row of more than max_columns (1,000) cells is let
go as soon as it is parsed. This measures what that costs, side by side in one run, each
measurement a fresh child process scoring a local file with ``score_file`` (the engine
behind ``model-store batch score``; outputs to local files) with the default limits:

- baseline: the interpreter, the same imports and the model loaded; nothing scored;
- long lines: --size-mb of lines of about 1 MB, three kinds in turn (the header names
  ``id``, the four features and ten pass-through columns ``n0``-``n9``):
  * under, scored: 1,000,000 bytes (under the 1 MiB = 1,048,576-byte limit), the four
    features and ten cells of ~100 KB (each under the CSV parser's own 131,072-character
    field limit): parsed, scored, written whole to the predictions;
  * under, too wide: 1,000,000 bytes of 500,000 one-digit cells (over max_columns):
    parsed (every cell a str for a moment), a row error with its raw text whole;
  * over the limit: 1,100,000 bytes, shaped like the first kind: a row error whose raw
    holds its first 1,000 characters; the line is read in 64 KiB pieces and dropped;
- iris rows: --size-mb of ordinary iris-like rows (``id`` and the four features,
  ~24 bytes a row), all scored.

Peak RSS is the child's ru_maxrss as the parent collects it (``os.wait4``): interpreter,
imports, model and scoring. A child's ru_maxrss starts from the high-water mark of the
process it was spawned from (subprocess uses vfork, and Linux carries the old memory's
peak over exec), so the parent stays a bare interpreter: training the model and writing
the files happen in a child of their own. The child's own VmHWM (its memory since exec)
is printed beside as a check. No target: the figures show what the byte bounds hold
memory to, against ordinary rows and the bare model.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The parent imports nothing beyond the standard library: every child's ru_maxrss starts at
# the parent's own peak (see above). Training and the files are made by a "prepare" child;
# scoring children import only what they measure.

MARKER = "BENCH_RESULT "
FEATURE_VALUES = "5.1,3.5,1.4,0.2"
NOTES = 10  # pass-through columns n0-n9 of the long-lines file
UNDER_BYTES = 1_000_000  # 1 MB: under the default 1 MiB max_line_bytes
OVER_BYTES = 1_100_000  # over it by ~51 KB
IRIS_ROW_BYTES = 24  # "1234567,5.1,3.5,1.4,0.2\n": ids up to 7 digits at 200 MB
LONG_FILE, IRIS_FILE, ARTIFACT = "long-lines.csv", "iris-rows.csv", "artifact"


def _say(message: str) -> None:
    """Progress goes to stderr; stdout carries only the results."""
    print(message, file=sys.stderr, flush=True)


# --- children -------------------------------------------------------------------------


def _proc_status_mb(field: str) -> float:
    try:
        with Path("/proc/self/status").open() as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _note_cells(size: int, prefix: str) -> str:
    """PREFIX then NOTES cells of "x" making a record of exactly SIZE bytes."""
    room = size - len(prefix) - (NOTES - 1)
    cells = ["x" * (room // NOTES + (i < room % NOTES)) for i in range(NOTES)]
    return prefix + ",".join(cells)


def write_long_lines_csv(path: Path, size_mb: float) -> dict[str, int]:
    """Lines of ~1 MB, the three kinds in turn, to SIZE_MB; how many of each were written."""
    from bench._support import IRIS_FEATURES

    counts = {"under, scored": 0, "under, too wide": 0, "over the limit": 0}
    target = size_mb * 1_000_000
    with path.open("w", encoding="utf-8", newline="") as out:
        header = ",".join(["id", *IRIS_FEATURES, *(f"n{i}" for i in range(NOTES))])
        out.write(header + "\n")
        written = len(header) + 1
        line = 1
        while written < target:
            line += 1
            kind = line % 3
            if kind == 2:
                record = _note_cells(UNDER_BYTES, f"{line},{FEATURE_VALUES},")
                counts["under, scored"] += 1
            elif kind == 0:
                record = ("1," * (UNDER_BYTES // 2))[:-1] + "1"  # 500,000 cells
                counts["under, too wide"] += 1
            else:
                record = _note_cells(OVER_BYTES, f"{line},{FEATURE_VALUES},")
                counts["over the limit"] += 1
            assert len(record) == (OVER_BYTES if kind == 1 else UNDER_BYTES)
            out.write(record + "\n")
            written += len(record) + 1
    return counts


def _prepare(spec: dict[str, Any]) -> dict[str, Any]:
    """The model and both files, in the temp dir; what the parent needs to know of them."""
    from bench._support import iris_best_artifact, write_iris_like_csv
    from model_store.batch import engine

    tmp, size_mb = Path(spec["tmp"]), spec["size_mb"]
    _say(f"writing {size_mb:g} MB of ~1 MB lines ...")
    counts = write_long_lines_csv(tmp / LONG_FILE, size_mb)
    iris_rows = int(size_mb * 1_000_000 / IRIS_ROW_BYTES)
    _say(f"writing {iris_rows:,} iris-like rows ...")
    write_iris_like_csv(tmp / IRIS_FILE, iris_rows)
    _say("training the iris best model (six-algorithm grid search) ...")
    artifact = iris_best_artifact()
    artifact.write(tmp / ARTIFACT)
    return {
        "counts": counts,
        "iris_rows": iris_rows,
        "algorithm": artifact.manifest.algorithm,
        "defaults": {
            "max_line_bytes": engine.DEFAULT_MAX_LINE_BYTES,
            "chunk_bytes": engine.DEFAULT_CHUNK_BYTES,
            "chunk_rows": engine.DEFAULT_CHUNK_ROWS,
            "max_columns": engine.DEFAULT_MAX_COLUMNS,
        },
    }


def _score(spec: dict[str, Any]) -> dict[str, Any]:
    """Load the model; score the file unless this is the baseline."""
    from model_store.batch.local import score_file
    from model_store.gate import load_artifact_dir

    model = load_artifact_dir(Path(spec["artifact"]), runtime=spec["runtime"])
    result: dict[str, Any] = {"rss_after_load_mb": _proc_status_mb("VmRSS")}
    if spec["kind"] == "score":
        started = time.perf_counter()
        report = score_file(Path(spec["source"]), model, Path(spec["out"]))
        result |= {
            "seconds": time.perf_counter() - started,
            "status": report.status,
            "reason": report.reason,
            "rows_scored": report.rows_scored,
            "rows_failed": report.rows_failed,
            "first_errors": [e.reason for e in report.first_errors[:3]],
        }
    result["vm_hwm_mb"] = _proc_status_mb("VmHWM")
    return result


def _child(spec: dict[str, Any]) -> None:
    result = _prepare(spec) if spec["kind"] == "prepare" else _score(spec)
    print(MARKER + json.dumps(result), flush=True)


# --- parent ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    label: str
    file_mb: float | None
    peak_rss_mb: float
    vm_hwm_mb: float
    rss_after_load_mb: float
    seconds: float | None = None
    rows_scored: int | None = None
    rows_failed: int | None = None


def _run_child(spec: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """A fresh interpreter; its BENCH_RESULT line and its ru_maxrss in MB."""
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    out = process.stdout.read()
    process.stdout.close()
    # wait4: this very child's usage (RUSAGE_CHILDREN would be the largest of all so far).
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    lines = [line for line in out.splitlines() if line.startswith(MARKER)]
    if process.returncode != 0 or not lines:
        tail = "\n".join(out.splitlines()[-20:])
        raise SystemExit(f"child {spec['kind']} failed ({process.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1][len(MARKER) :])
    return result, usage.ru_maxrss / 1024  # KiB on Linux


def _print_results(runtime: str, prepared: dict[str, Any], runs: list[Run]) -> None:
    defaults = ", ".join(f"{k} {v:,}" for k, v in prepared["defaults"].items())
    print(f"runtime: {runtime}; model: {prepared['algorithm']} (iris best)")
    print(f"engine defaults: {defaults}")
    counts = prepared["counts"]
    print("long lines, in turn: " + ", ".join(f"{n} {kind}" for kind, n in counts.items()))
    print("each row below is a fresh child process; peak RSS = the child's ru_maxrss\n")
    baseline = min(r.peak_rss_mb for r in runs if r.seconds is None)
    print(
        f"{'':37}{'file MB':>8}{'scored':>11}{'failed':>8}{'seconds':>9}"
        f"{'RSS loaded MB':>15}{'peak RSS MB':>13}{'VmHWM MB':>10}{'over baseline MB':>18}"
    )
    for run in runs:
        file_mb = "" if run.file_mb is None else f"{run.file_mb:,.1f}"
        scored = "" if run.rows_scored is None else f"{run.rows_scored:,}"
        failed = "" if run.rows_failed is None else f"{run.rows_failed:,}"
        seconds = "" if run.seconds is None else f"{run.seconds:.1f}"
        print(
            f"{run.label:37}{file_mb:>8}{scored:>11}{failed:>8}{seconds:>9}"
            f"{run.rss_after_load_mb:15.1f}{run.peak_rss_mb:13.1f}{run.vm_hwm_mb:10.1f}"
            f"{run.peak_rss_mb - baseline:18.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=200.0, help="of each file")
    parser.add_argument("--runtime", choices=["onnx", "sklearn"], default="onnx")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the three children")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(json.loads(args.child))
        return

    with tempfile.TemporaryDirectory(prefix="batch-memory-") as tmp_name:
        tmp = Path(tmp_name)
        prepared, _ = _run_child({"kind": "prepare", "tmp": tmp_name, "size_mb": args.size_mb})
        counts = prepared["counts"]
        expected = {
            "long": (counts["under, scored"], counts["under, too wide"] + counts["over the limit"]),
            "iris": (prepared["iris_rows"], 0),
        }
        files = {"long": tmp / LONG_FILE, "iris": tmp / IRIS_FILE}
        labels = {
            "baseline": "baseline (model loaded, no scoring)",
            "long": "long lines (~1 MB each)",
            "iris": "iris rows",
        }
        base = {"artifact": str(tmp / ARTIFACT), "runtime": args.runtime}
        runs: list[Run] = []
        for round_ in range(args.repeat):
            for name, label in labels.items():
                label += f", round {round_ + 1}" if args.repeat > 1 else ""
                _say(f"{label}: child process ...")
                if name == "baseline":
                    result, peak = _run_child({"kind": "baseline", **base})
                    runs.append(
                        Run(label, None, peak, result["vm_hwm_mb"], result["rss_after_load_mb"])
                    )
                    continue
                out = tmp / f"out-{name}-{round_}"
                spec = {"kind": "score", "source": str(files[name]), "out": str(out), **base}
                result, peak = _run_child(spec)
                got = (result["status"], result["rows_scored"], result["rows_failed"])
                if got != ("succeeded", *expected[name]):
                    raise SystemExit(f"{label}: unexpected outcome {result}")
                if name == "long":
                    _say("  first errors: " + " | ".join(result["first_errors"]))
                for output in out.iterdir():  # keep the temp dir's disk use down
                    output.unlink()
                runs.append(
                    Run(
                        label,
                        files[name].stat().st_size / 1_000_000,
                        peak,
                        result["vm_hwm_mb"],
                        result["rss_after_load_mb"],
                        result["seconds"],
                        result["rows_scored"],
                        result["rows_failed"],
                    )
                )
        _print_results(args.runtime, prepared, runs)
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\n(the parent's own peak RSS, the floor of every child's ru_maxrss: {own:.1f} MB)")


if __name__ == "__main__":
    main()
