"""Execution environments of one function, as Lambda keeps them.

Lambda gives every concurrent request its own environment, and one emulator process
serves one invocation at a time (a second one makes it panic). So a function is a pool of
emulator processes that grows on demand up to a concurrency limit; each new one is a real
cold start, and an environment whose runtime died is thrown away, as Lambda does.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from devstack.rie import FunctionSpec, Invocation, RieProcess


class PoolClosedError(RuntimeError):
    """The stack is shutting down."""


class NoEnvironmentError(TimeoutError):
    """Every environment stayed busy for the whole wait."""


class FunctionPool:
    def __init__(
        self,
        spec: FunctionSpec,
        *,
        max_environments: int = 4,
        on_log: Callable[[str, str], None] | None = None,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        if max_environments < 1:
            raise ValueError("max_environments must be at least 1")
        self.spec = spec
        self.max_environments = max_environments
        self._on_log = on_log
        self._base_env = base_env
        self._idle: list[RieProcess] = []
        self._busy: set[RieProcess] = set()
        self._starting = 0
        self._ids = itertools.count(1)
        self._changed = threading.Condition()
        self._closed = False
        self.cold_starts = 0

    @property
    def environments(self) -> list[RieProcess]:
        with self._changed:
            return [*self._idle, *self._busy]

    def invoke(self, event: Any, *, wait: float | None = None) -> Invocation:
        """Run one invocation in a free environment, starting one if none is free."""
        environment = self._acquire(wait)
        spent = True
        try:
            result = environment.invoke(event)
            spent = result.crashed or not environment.alive
            return result
        finally:
            self._release(environment, spent=spent)

    def _acquire(self, wait: float | None) -> RieProcess:
        deadline = None if wait is None else time.monotonic() + wait
        with self._changed:
            while True:
                if self._closed:
                    raise PoolClosedError(f"{self.spec.name} is stopping")
                while self._idle:
                    environment = self._idle.pop()
                    if environment.alive:
                        self._busy.add(environment)
                        return environment
                    environment.stop()
                if len(self._busy) + self._starting < self.max_environments:
                    self._starting += 1
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise NoEnvironmentError(
                        f"{self.spec.name}: all {self.max_environments} environments busy"
                    )
                self._changed.wait(remaining)
        try:
            environment = self._start_environment()
        except BaseException:
            with self._changed:
                self._starting -= 1
                self._changed.notify()
            raise
        with self._changed:
            self._starting -= 1
            self._busy.add(environment)
            self.cold_starts += 1
        return environment

    def _start_environment(self) -> RieProcess:
        label = f"{self.spec.name}#{next(self._ids)}"
        on_log = self._on_log

        def log(line: str) -> None:
            if on_log is not None:
                on_log(label, line)

        environment = RieProcess(self.spec, on_log=log, base_env=self._base_env)
        environment.start()
        return environment

    def _release(self, environment: RieProcess, *, spent: bool) -> None:
        with self._changed:
            self._busy.discard(environment)
            keep = not spent and not self._closed
            if keep:
                self._idle.append(environment)
            self._changed.notify()
        if not keep:
            environment.stop()

    def stop(self) -> None:
        with self._changed:
            self._closed = True
            environments = [*self._idle, *self._busy]
            self._idle.clear()
            self._changed.notify_all()
        # Every environment is told first, then waited for: they end side by side.
        for environment in environments:
            with contextlib.suppress(Exception):
                environment.terminate()
        for environment in environments:
            with contextlib.suppress(Exception):
                environment.stop()
