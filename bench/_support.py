"""Shared benchmark plumbing: timing, percentiles, the iris model, quiet stdout."""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from model_store import Artifact
from model_store.training import build_artifact, load_iris_dataset, train


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
