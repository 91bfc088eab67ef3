"""What X-Ray tracing costs the functions: at import (the cold start) and per subsegment.

    .venv/bin/python bench/tracing_cost.py [--imports 15] [--runs 20000]

- Import: wall time of loading model_store.tracing (by file, so the package's other
  modules stay out) in a fresh interpreter that has already imported what the functions
  import before it (the standard-library modules it uses, botocore), median of --imports
  interpreters, from bytecode as the built layers ship it. aws_xray_sdk.core (what
  Powertools' Tracer wraps) is timed the same way when installed.
- Per subsegment, interleaved with a floor (an empty @contextmanager block): unsampled
  (no trace header: tests, the CLI, make local, and unsampled invocations) and sampled
  (Sampled=1 and a daemon address: a UDP datagram to a socket bound here on 127.0.0.1,
  every datagram counted so the figure is of real sends). Both sides of this pair read
  the socket after each block (the floor finds nothing), so the figure is an upper bound.

A warm /predict opens one subsegment ("score"); a cold start opens about five (model
load, the S3 reads of alias, manifest and model, a KMS verify when signatures are on).

Target (issue 14): tracing adds <= 30 ms to the cold start and keeps the fast-path issue's
warm targets (bench/warm_overhead.py and bench/cold_start.py measure those end to end).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._support import interleaved  # noqa: E402
from model_store import tracing  # noqa: E402

BUDGET_MS = 30.0


# What the functions have imported before tracing is reached (botocore, for the SDK's patch).
_PRELUDE = (
    "import contextlib, contextvars, json, os, socket, time, typing, botocore.session\n"
    "import importlib.util as u"
)
_LOAD = {
    # By file, so the package's other modules stay out of the figure.
    "model_store.tracing": (
        "s = u.spec_from_file_location('t', {path!r}); "
        "m = u.module_from_spec(s); s.loader.exec_module(m)"
    ),
    "aws_xray_sdk.core": "import aws_xray_sdk.core",
}


def _import_ms(module: str, runs: int) -> float | None:
    """Median wall time of importing MODULE after _PRELUDE, each in a fresh interpreter."""
    load = _LOAD[module].format(path=str(ROOT / "model_store" / "tracing.py"))
    code = (
        f"{_PRELUDE}\nimport time as _t\n_s = _t.perf_counter()\n{load}\n"
        "print((_t.perf_counter() - _s) * 1000)"
    )
    samples = []
    with tempfile.TemporaryDirectory() as cache:
        # From bytecode, as the built layers ship it: the first, untimed run writes it.
        environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        environment["PYTHONPYCACHEPREFIX"] = cache
        for _ in range(runs + 1):
            done = subprocess.run(
                [sys.executable, "-c", code],
                cwd=ROOT,
                env=environment,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                return None
            samples.append(float(done.stdout.strip()))
    return statistics.median(samples[1:])


@contextlib.contextmanager
def _floor() -> Iterator[None]:
    yield


@contextlib.contextmanager
def _environment(**values: str | None) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _block_floor() -> None:
    with _floor():
        pass


def _block_traced() -> None:
    with tracing.subsegment("score", model="iris", version=3, rows=1):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--imports", type=int, default=15, help="fresh interpreters per module")
    parser.add_argument("--runs", type=int, default=20_000, help="blocks timed per variant")
    args = parser.parse_args()

    print(f"Python {sys.version.split()[0]}; medians of {args.imports} fresh interpreters\n")
    print("| import, after what the functions import before it | ms |")
    print("|---|---:|")
    own_ms = _import_ms("model_store.tracing", args.imports)
    assert own_ms is not None, "model_store.tracing did not import"
    print(f"| model_store.tracing | {own_ms:.2f} |")
    sdk_ms = _import_ms("aws_xray_sdk.core", args.imports)
    sdk_text = "not installed here" if sdk_ms is None else f"{sdk_ms:.2f}"
    print(f"| aws_xray_sdk.core (for comparison) | {sdk_text} |")

    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    port = receiver.getsockname()[1]
    received = 0

    def drain() -> None:
        nonlocal received
        with contextlib.suppress(BlockingIOError):
            while True:
                receiver.recv(65536)
                received += 1

    def floor_drained() -> None:
        _block_floor()
        drain()

    def traced_drained() -> None:
        _block_traced()
        drain()

    with _environment(**{tracing.TRACE_HEADER: None, tracing.DAEMON_ADDRESS: None}):
        floor, unsampled = interleaved(args.runs, 500, _block_floor, _block_traced)
    sampled_header = "Root=1-5e1b4151-5ac6c58f3f5c6f2c5f9b3f7a;Parent=53995c3f42cd8ad8;Sampled=1"
    with _environment(
        **{tracing.TRACE_HEADER: sampled_header, tracing.DAEMON_ADDRESS: f"127.0.0.1:{port}"}
    ):
        floor_sampled, sampled = interleaved(args.runs, 500, floor_drained, traced_drained)
    drain()
    receiver.close()
    expected = args.runs + 500
    print(f"\n{args.runs:,} blocks each, interleaved with the floor (an empty @contextmanager)\n")
    print("| per block | p50 us | p99 us | over the floor, p50 us |")
    print("|---|---:|---:|---:|")
    print(f"| floor | {floor.p50:.2f} | {floor.p99:.2f} | |")
    print(
        f"| subsegment, unsampled | {unsampled.p50:.2f} | {unsampled.p99:.2f} | "
        f"{unsampled.p50 - floor.p50:.2f} |"
    )
    print(
        f"| subsegment, sampled (UDP send) | {sampled.p50:.2f} | {sampled.p99:.2f} | "
        f"{sampled.p50 - floor_sampled.p50:.2f} |"
    )
    print(f"\ndatagrams received: {received:,} of {expected:,} sent")

    cold_ms = own_ms + 5 * sampled.p50 / 1000
    verdict = "PASS" if cold_ms <= BUDGET_MS else "FAIL"
    print(
        f"\ncold start: import {own_ms:.2f} ms + 5 sampled subsegments "
        f"{5 * sampled.p50 / 1000:.2f} ms = {cold_ms:.2f} ms (budget {BUDGET_MS:.0f} ms): {verdict}"
    )
    print(
        f"warm /predict: one subsegment, {unsampled.p50 - floor.p50:.2f} us unsampled, "
        f"{sampled.p50 - floor_sampled.p50:.2f} us sampled"
    )


if __name__ == "__main__":
    main()
