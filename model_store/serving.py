"""A lazy, cached, self-refreshing model holder for long-lived processes (Lambda).

Construction does no I/O. The first ``get()`` loads through the gate; later calls
re-resolve the alias at most every ``refresh_seconds`` so promotions and rollbacks reach
warm functions, and a failed refresh keeps the last good model serving.

Everything runs on the request path (Lambda freezes threads between invocations, so
nothing runs in the background), and under deadlines where the store can keep them: the
alias check of a due refresh gets one try and ``refresh_timeout`` seconds in all, so a
hung S3 costs a warm request about a second, not the API's 29; a load (the first one, or
a promoted version's) gets ``load_timeout`` seconds, below the function's timeout, after
which the caller gets ModelUnavailableError (the API's 503 with Retry-After).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from model_store.exceptions import ModelStoreError, ModelUnavailableError
from model_store.gate import DEFAULT_CACHE_DIR, LoadedModel, load_model
from model_store.manifest import Manifest
from model_store.registry import Registry
from model_store.runtimes import RuntimeName
from model_store.signing import Verifier
from model_store.tracing import subsegment

log = logging.getLogger(__name__)


class ModelLoader:
    def __init__(
        self,
        registry: Registry | Callable[[], Registry],
        name: str,
        *,
        alias: str = "production",
        version: str | None = None,
        runtime: RuntimeName = "sklearn",
        refresh_seconds: float = 60.0,
        refresh_timeout: float = 1.0,
        load_timeout: float = 20.0,
        cache_dir: Path | None = DEFAULT_CACHE_DIR,
        allow_version_mismatch: bool = False,
        verifier: Verifier | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry_source = registry
        self._registry: Registry | None = registry if isinstance(registry, Registry) else None
        self.name = name
        self.alias = alias
        self.pinned_version = version
        self.runtime: RuntimeName = runtime
        self.refresh_seconds = refresh_seconds
        self.refresh_timeout = refresh_timeout
        self.load_timeout = load_timeout
        self.cache_dir = cache_dir
        self.allow_version_mismatch = allow_version_mismatch
        self.verifier = verifier
        self._clock = clock
        self._lock = threading.Lock()
        self._loaded: LoadedModel | None = None
        self._checked_at = 0.0

    @property
    def target(self) -> str:
        return f"{self.name}@{self.pinned_version or self.alias}"

    @property
    def current(self) -> LoadedModel | None:
        """The model being served, or None before the first successful load."""
        return self._loaded

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            source = self._registry_source
            assert not isinstance(source, Registry)
            self._registry = source()
        return self._registry

    def get(self) -> LoadedModel:
        """The model to serve; raises ModelUnavailableError if none could ever be loaded."""
        loaded = self._loaded
        if loaded is None:
            with self._lock:
                if self._loaded is None:
                    self._loaded = self._load_initial()
                    self._checked_at = self._clock()
                return self._loaded
        if self._refresh_due() and self._lock.acquire(blocking=False):
            # One caller refreshes; the others keep serving the current model meanwhile.
            try:
                if self._refresh_due():
                    self._refresh(loaded)
            finally:
                self._lock.release()
        return self._loaded or loaded

    def peek_manifest(self) -> Manifest:
        """The manifest the next load would use, without downloading or unpickling."""
        try:
            with self.registry.deadline(self.load_timeout):
                return self.registry.read_manifest(
                    self.name, self._resolve(), verifier=self.verifier
                )
        except Exception as exc:
            raise ModelUnavailableError(f"cannot read model {self.target}: {exc}") from exc

    def _refresh_due(self) -> bool:
        return (
            self.pinned_version is None and self._clock() - self._checked_at >= self.refresh_seconds
        )

    def _resolve(self) -> str:
        return self.pinned_version or self.registry.resolve_alias(self.name, self.alias)

    def _load(self, version: str) -> LoadedModel:
        with (
            subsegment(
                "model load", model=self.name, version=version, runtime=self.runtime
            ) as trace,
            self.registry.deadline(self.load_timeout),
        ):
            loaded = load_model(
                self.registry,
                self.name,
                version,
                runtime=self.runtime,
                cache_dir=self.cache_dir,
                allow_version_mismatch=self.allow_version_mismatch,
                verifier=self.verifier,
            )
            trace.annotate(from_cache=loaded.from_cache)
        log.info(
            "loaded model %s version %s (%s, %s runtime) in %.3fs%s",
            self.name,
            loaded.version,
            loaded.manifest.algorithm,
            self.runtime,
            loaded.load_seconds,
            " from cache" if loaded.from_cache else "",
        )
        return loaded

    def _load_initial(self) -> LoadedModel:
        try:
            with self.registry.deadline(self.load_timeout):
                return self._load(self._resolve())
        except ModelStoreError as exc:
            raise ModelUnavailableError(f"cannot load model {self.target}: {exc}") from exc
        except Exception as exc:
            # e.g. credentials or network errors boto raises before any S3 call
            raise ModelUnavailableError(
                f"cannot load model {self.target}: {type(exc).__name__}: {exc}"
            ) from exc

    def _refresh(self, current: LoadedModel) -> None:
        try:
            with (
                subsegment("alias check", model=self.name, alias=self.alias),
                self.registry.deadline(self.refresh_timeout, attempts=1),
            ):
                version = self._resolve()
            if version != current.version:
                self._loaded = self._load(version)
                log.info("%s moved from version %s to %s", self.target, current.version, version)
        except Exception as exc:
            log.warning(
                "refreshing %s failed, still serving version %s: %s",
                self.target,
                current.version,
                exc,
            )
        finally:
            self._checked_at = self._clock()
