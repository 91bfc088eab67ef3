"""Shared benchmark plumbing: timing, percentiles, the iris model, quiet stdout,
iris-like CSV files and a moto server in its own process."""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from model_store import Artifact
from model_store.training import build_artifact, load_iris_dataset, train


def lambda_context(function_name: str, memory_mb: int = 1024) -> SimpleNamespace:
    """What a Python handler gets as its context, for calling it in process."""
    return SimpleNamespace(
        function_name=function_name,
        function_version="$LATEST",
        invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}",
        memory_limit_in_mb=memory_mb,
        aws_request_id="bench",
        log_group_name=f"/aws/lambda/{function_name}",
        log_stream_name="local",
        get_remaining_time_in_millis=lambda: 30_000,
    )


def iris_best_artifact() -> Artifact:
    """The model `model-store train` picks on iris: the full six-algorithm search."""
    return build_artifact(train(load_iris_dataset()), name="iris")


@dataclass(frozen=True)
class Timing:
    samples_us: list[float]

    @property
    def p50(self) -> float:
        return statistics.median(self.samples_us)

    @property
    def p99(self) -> float:
        ordered = sorted(self.samples_us)
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def interleaved(runs: int, warmup: int, *calls: Callable[[], object]) -> list[Timing]:
    """Time several calls turn by turn, so machine noise hits them all alike."""
    for _ in range(warmup):
        for call in calls:
            call()
    samples: list[list[float]] = [[] for _ in calls]
    for _ in range(runs):
        for i, call in enumerate(calls):
            started = time.perf_counter_ns()
            call()
            samples[i].append((time.perf_counter_ns() - started) / 1e3)
    return [Timing(s) for s in samples]


@contextlib.contextmanager
def stdout_to_devnull() -> Iterator[None]:
    """Lambda sends stdout to CloudWatch; here it would flood the terminal."""
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(devnull)
        os.close(saved)


# Per-class means and standard deviations of the iris measurements (cm), in the order
# sepal_length, sepal_width, petal_length, petal_width; classes setosa, versicolor, virginica.
IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
_IRIS_MEANS = np.array(
    [[5.006, 3.428, 1.462, 0.246], [5.936, 2.770, 4.260, 1.326], [6.588, 2.974, 5.552, 2.026]]
)
_IRIS_STDS = np.array(
    [[0.352, 0.379, 0.174, 0.105], [0.516, 0.314, 0.470, 0.198], [0.636, 0.322, 0.552, 0.275]]
)


def write_iris_like_csv(path: Path, rows: int, *, seed: int = 0, chunk: int = 100_000) -> Path:
    """An ``id`` column and the four iris features, drawn around a random class's means.

    Values have one decimal, as in the iris data, so the file size is realistic; every
    class is represented, so predictions vary. Written in chunks: memory stays small.
    """
    rng = np.random.default_rng(seed)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(",".join(["id", *IRIS_FEATURES]) + "\n")
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            species = rng.integers(0, 3, n)
            values = rng.normal(_IRIS_MEANS[species], _IRIS_STDS[species]).clip(0.1, None)
            ids = np.arange(start + 1, start + n + 1, dtype=np.float64)
            np.savetxt(
                out,
                np.column_stack([ids, values]),
                fmt=["%d", "%.1f", "%.1f", "%.1f", "%.1f"],
                delimiter=",",
            )
    return path


@contextlib.contextmanager
def moto_server(port: int, *, host: str = "127.0.0.1", timeout: float = 30.0) -> Iterator[str]:
    """``python -m moto.server`` in its own process; yields its URL, stops it at the end."""
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://{host}:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"moto server exited with {process.returncode}")
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                    break
            except urllib.error.HTTPError:
                break  # it answers: that is all we wait for
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"moto server did not answer on {url}") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send what child processes print (builds, installs) to stderr: stdout is for results."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def lambda_sdk_dir(python_version: str, root: Path | None = None) -> Path:
    """boto3 for PYTHON_VERSION, as Lambda's Python runtimes provide it beside awslambdaric.

    The target-runtime build leaves boto3 out of its layer (Lambda has it); to run that build
    here, the venv's boto3 version goes in a directory of its own under .local/runtime
    (gitignored), installed on first use and compiled to bytecode with that Python when this
    machine has it (Lambda's runtime ships it compiled).
    """
    from importlib.metadata import version

    from devstack.runtime import ROOT
    from layers.build_layer import runtime_python

    requirement = f"boto3=={version('boto3')}"
    target = (root or ROOT) / ".local" / "runtime" / f"python{python_version}-sdk"
    marker = target / ".installed"
    if marker.exists() and marker.read_text().strip() == requirement:
        return target
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    command += ["--no-compile", "--upgrade", "--target", str(target), "--only-binary=:all:"]
    command += ["--python-version", python_version, "--implementation", "cp", requirement]
    subprocess.run(command, check=True)
    python = runtime_python(python_version)
    if python is not None:
        compile_all = [python, "-m", "compileall", "-q", "-j", "0"]
        subprocess.run(
            [*compile_all, "--invalidation-mode", "unchecked-hash", str(target)], check=True
        )
    marker.write_text(requirement + "\n")
    return target
