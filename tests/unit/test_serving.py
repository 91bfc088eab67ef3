"""ModelLoader: lazy, loads once under concurrency, follows the alias, survives bad refreshes."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from model_store import (
    LoadedModel,
    ModelLoader,
    ModelUnavailableError,
    Registry,
    RegistryError,
    open_registry,
)
from model_store.artifact import Artifact
from model_store.registry import LocalStore

REFRESH = 30.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingRegistry(Registry):
    """Counts downloads and alias look-ups; can be told to fail look-ups or slow downloads."""

    def __init__(self, root: Path, *, read_delay: float = 0.0) -> None:
        super().__init__(LocalStore(root))
        self.read_delay = read_delay
        self.fail_resolve = False
        self.byte_reads = 0
        self.resolves = 0
        self._count_lock = threading.Lock()

    def read_file(self, name: str, version: str, file: str) -> bytes:
        with self._count_lock:
            self.byte_reads += 1
        time.sleep(self.read_delay)
        return super().read_file(name, version, file)

    def resolve_alias(self, name: str, alias: str) -> str:
        with self._count_lock:
            self.resolves += 1
        if self.fail_resolve:
            raise RegistryError("S3 GetObject failed: SlowDown: injected for the test")
        return super().resolve_alias(name, alias)


@pytest.fixture
def two_version_registry(
    tmp_path: Path, iris_artifact: Artifact, iris_artifact_2: Artifact
) -> CountingRegistry:
    """iris v1 (logistic regression) and v2 (decision tree) published, production -> v1."""
    reg = CountingRegistry(tmp_path / "registry")
    reg.publish(iris_artifact, name="iris", version="v1")
    reg.publish(iris_artifact_2, name="iris", version="v2")
    reg.promote("iris", "v1")
    return reg


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _loader(
    two_version_registry: Registry, tmp_path: Path, clock: FakeClock, version: str | None = None
) -> ModelLoader:
    return ModelLoader(
        two_version_registry,
        "iris",
        version=version,
        refresh_seconds=REFRESH,
        cache_dir=tmp_path / "cache",
        clock=clock,
    )


def test_construction_does_no_io(tmp_path: Path, iris_artifact: Artifact) -> None:
    root = tmp_path / "registry"
    calls: list[Path] = []

    def factory() -> Registry:
        calls.append(root)
        return open_registry(root)

    loader = ModelLoader(factory, "iris", cache_dir=tmp_path / "cache")

    assert calls == []
    assert loader.current is None
    assert loader.target == "iris@production"
    assert not root.exists()
    assert not (tmp_path / "cache").exists()

    seed = open_registry(root)
    seed.publish(iris_artifact, name="iris", version="1")
    seed.promote("iris", "1")
    loaded = loader.get()
    assert calls == [root]
    assert loader.current is loaded
    assert loaded.version == "1"
    assert loader.get() is loaded
    assert calls == [root]


def test_concurrent_cold_gets_load_once(tmp_path: Path, iris_artifact: Artifact) -> None:
    registry = CountingRegistry(tmp_path / "registry", read_delay=0.05)
    registry.publish(iris_artifact, name="iris", version="1")
    registry.promote("iris", "1")
    loader = ModelLoader(registry, "iris", cache_dir=tmp_path / "cache")
    threads_n = 16
    barrier = threading.Barrier(threads_n)
    results: list[LoadedModel] = []
    errors: list[BaseException] = []
    results_lock = threading.Lock()

    def worker() -> None:
        try:
            barrier.wait(timeout=10)
            model = loader.get()
        except BaseException as exc:
            with results_lock:
                errors.append(exc)
        else:
            with results_lock:
                results.append(model)

    threads = [threading.Thread(target=worker) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert len(results) == threads_n
    assert registry.byte_reads == 1
    assert registry.resolves == 1
    first = results[0]
    assert all(result is first for result in results)
    assert loader.current is first


def test_promotion_is_served_after_refresh_interval(
    tmp_path: Path, two_version_registry: CountingRegistry, clock: FakeClock
) -> None:
    loader = _loader(two_version_registry, tmp_path, clock)
    v1 = loader.get()
    assert v1.version == "v1"
    assert v1.manifest.algorithm == "logistic_regression"

    two_version_registry.promote("iris", "v2")
    clock.advance(REFRESH - 0.5)
    assert loader.get() is v1
    assert two_version_registry.resolves == 1

    clock.advance(1.0)
    v2 = loader.get()
    assert v2.version == "v2"
    assert v2.manifest.algorithm == "decision_tree"
    assert loader.current is v2
    assert loader.get() is v2
    assert two_version_registry.resolves == 2


def test_rollback_reaches_a_warm_loader(
    tmp_path: Path, two_version_registry: CountingRegistry, clock: FakeClock
) -> None:
    two_version_registry.promote("iris", "v2")
    loader = _loader(two_version_registry, tmp_path, clock)
    assert loader.get().version == "v2"

    two_version_registry.rollback("iris")
    clock.advance(REFRESH + 1)
    assert loader.get().version == "v1"


def test_unchanged_alias_keeps_the_same_model(
    tmp_path: Path, two_version_registry: CountingRegistry, clock: FakeClock
) -> None:
    loader = _loader(two_version_registry, tmp_path, clock)
    v1 = loader.get()
    clock.advance(REFRESH + 1)
    assert loader.get() is v1
    assert two_version_registry.resolves == 2
    assert two_version_registry.byte_reads == 1


def test_failing_refresh_keeps_the_old_model(
    tmp_path: Path,
    two_version_registry: CountingRegistry,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    loader = _loader(two_version_registry, tmp_path, clock)
    v1 = loader.get()
    two_version_registry.promote("iris", "v2")
    two_version_registry.fail_resolve = True

    clock.advance(REFRESH + 1)
    with caplog.at_level(logging.WARNING, logger="model_store"):
        assert loader.get() is v1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "v1" in message
    assert "iris@production" in message
    assert "SlowDown" in message
    assert loader.current is v1

    # A failed refresh still waits out the interval: no look-up on every request.
    resolves = two_version_registry.resolves
    assert loader.get() is v1
    assert two_version_registry.resolves == resolves

    two_version_registry.fail_resolve = False
    clock.advance(REFRESH + 1)
    v2 = loader.get()
    assert v2.version == "v2"
    assert loader.current is v2


def test_deleted_alias_keeps_the_old_model(
    tmp_path: Path,
    two_version_registry: CountingRegistry,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    loader = _loader(two_version_registry, tmp_path, clock)
    v1 = loader.get()
    alias_file = tmp_path / "registry" / "models" / "iris" / "aliases" / "production.json"
    alias_file.unlink()

    clock.advance(REFRESH + 1)
    with caplog.at_level(logging.WARNING, logger="model_store"):
        assert loader.get() is v1
    assert any(r.levelno == logging.WARNING and "v1" in r.getMessage() for r in caplog.records)

    two_version_registry.promote("iris", "v2")
    clock.advance(REFRESH + 1)
    assert loader.get().version == "v2"


def test_unloadable_new_version_keeps_the_old_model(
    tmp_path: Path,
    two_version_registry: CountingRegistry,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    loader = _loader(two_version_registry, tmp_path, clock)
    v1 = loader.get()
    key = "models/iris/v2/model.joblib"
    good = two_version_registry.store.read(key)
    two_version_registry.store.write(key, good[:-1])
    two_version_registry.promote("iris", "v2")

    clock.advance(REFRESH + 1)
    with caplog.at_level(logging.WARNING, logger="model_store"):
        assert loader.get() is v1
    assert any(r.levelno == logging.WARNING and "v1" in r.getMessage() for r in caplog.records)

    two_version_registry.store.write(key, good)
    clock.advance(REFRESH + 1)
    assert loader.get().version == "v2"


def test_pinned_version_never_resolves_the_alias(
    tmp_path: Path, two_version_registry: CountingRegistry, clock: FakeClock
) -> None:
    loader = _loader(two_version_registry, tmp_path, clock, version="v1")
    assert loader.target == "iris@v1"
    v1 = loader.get()
    assert v1.version == "v1"

    two_version_registry.promote("iris", "v2")
    for _ in range(3):
        clock.advance(REFRESH * 10)
        assert loader.get() is v1
    assert two_version_registry.resolves == 0
    assert two_version_registry.byte_reads == 1


def test_pinned_version_needs_no_alias(tmp_path: Path, iris_artifact: Artifact) -> None:
    registry = CountingRegistry(tmp_path / "registry")
    registry.publish(iris_artifact, name="iris", version="7")
    loader = ModelLoader(registry, "iris", version="7", cache_dir=None)
    assert loader.get().version == "7"
    assert registry.resolves == 0


def test_unavailable_then_recovers(
    tmp_path: Path, iris_artifact: Artifact, clock: FakeClock
) -> None:
    registry = CountingRegistry(tmp_path / "registry")
    loader = _loader(registry, tmp_path, clock)

    for _ in range(2):
        with pytest.raises(ModelUnavailableError, match="iris@production") as excinfo:
            loader.get()
        assert excinfo.value.__cause__ is not None
        assert loader.current is None

    registry.publish(iris_artifact, name="iris", version="1")
    # Published but not promoted: still nothing to serve.
    with pytest.raises(ModelUnavailableError, match="iris@production"):
        loader.get()

    registry.promote("iris", "1")
    loaded = loader.get()
    assert loaded.version == "1"
    assert loader.current is loaded


def test_unavailable_names_a_pinned_target(tmp_path: Path, iris_artifact: Artifact) -> None:
    registry = open_registry(tmp_path / "registry")
    registry.publish(iris_artifact, name="iris", version="1")
    loader = ModelLoader(registry, "iris", version="2", cache_dir=None)
    with pytest.raises(ModelUnavailableError, match="iris@2"):
        loader.get()
