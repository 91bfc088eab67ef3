"""Execution environments of one function: a pool of real RIE processes running a tiny handler.

The handler reports the pid of its runtime and the interval it ran in, sleeps when asked
and exits the runtime when asked, so reuse, concurrency and crashes can be observed from
outside.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.pool import FunctionPool, NoEnvironmentError, PoolClosedError
from devstack.rie import FunctionSpec, Invocation, RieProcess
from devstack.runtime import base_python, runtime_dir

HANDLER = """
import os
import pathlib
import time


def handler(event, context):
    if event.get("crash"):
        os._exit(3)
    started = time.time()
    if event.get("mark"):
        pathlib.Path(event["mark"]).touch()
    time.sleep(event.get("sleep", 0))
    if event.get("allocate_mb"):
        held = bytearray(event["allocate_mb"] * 1024 * 1024)
        held[::4096] = b"x" * len(held[::4096])  # touched: resident, not just reserved
    return {"pid": os.getpid(), "started": started, "ended": time.time()}
"""


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> FunctionSpec:
    code = tmp_path_factory.mktemp("pool-fn")
    (code / "app.py").write_text(textwrap.dedent(HANDLER))
    return FunctionSpec(
        name="PoolFn",
        handler="app.handler",
        code_dir=code,
        memory_mb=128,
        timeout_s=10,
        python=base_python(),
        runtime_dirs=[runtime_dir()],
        isolated=True,
    )


@pytest.fixture
def make_pool(spec: FunctionSpec) -> Iterator[Any]:
    pools: list[FunctionPool] = []

    def make(max_environments: int) -> FunctionPool:
        pool = FunctionPool(spec, max_environments=max_environments)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.stop()


def succeeded(invocation: Invocation) -> dict[str, Any]:
    assert not invocation.failed, invocation.payload
    payload: dict[str, Any] = invocation.payload
    return payload


def test_sequential_invocations_reuse_one_environment(make_pool: Any) -> None:
    pool: FunctionPool = make_pool(4)
    invocations = [pool.invoke({}) for _ in range(3)]
    pids = {succeeded(i)["pid"] for i in invocations}
    assert len(pids) == 1
    assert pool.cold_starts == 1
    assert len(pool.environments) == 1
    # Only the first one initialised the function.
    assert invocations[0].report is not None
    assert invocations[0].report.init_ms is not None
    assert all(i.report is not None and i.report.init_ms is None for i in invocations[1:])


def test_report_lines_show_measured_figures_not_the_emulators(spec: FunctionSpec) -> None:
    # The emulator prints Init Duration ~0.02 ms and Max Memory Used = Memory Size: the
    # logs and reports carry the INIT REPORT's duration and the runtime's peak RSS.
    logs: list[str] = []
    environment = RieProcess(spec, on_log=lambda line: logs.append(line))
    with environment:
        first = environment.invoke({})
        second = environment.invoke({"allocate_mb": 64})
    assert first.report is not None
    assert second.report is not None
    assert first.report.init_ms is not None
    assert first.report.init_ms > 1  # the emulator's own figure is ~0.02 ms
    assert second.report.init_ms is None
    assert first.report.max_memory_mb is not None
    assert second.report.max_memory_mb is not None
    assert first.report.max_memory_mb < spec.memory_mb  # not Memory Size
    assert second.report.max_memory_mb >= first.report.max_memory_mb + 60
    reports = [line for line in logs if line.startswith("REPORT")]
    assert reports == [first.report.line, second.report.line]
    assert f"Max Memory Used: {second.report.max_memory_mb} MB" in reports[1]


def test_concurrent_invocations_never_share_an_environment(make_pool: Any) -> None:
    pool: FunctionPool = make_pool(2)
    with concurrent.futures.ThreadPoolExecutor(max_workers=5) as threads:
        invocations = list(threads.map(lambda _: pool.invoke({"sleep": 0.15}), range(5)))
    payloads = [succeeded(i) for i in invocations]
    pids = {p["pid"] for p in payloads}
    assert len(pids) <= 2
    assert pool.cold_starts <= 2
    assert len(pool.environments) <= 2
    # Within one environment, the invocations ran one after the other.
    for pid in pids:
        runs = sorted((p["started"], p["ended"]) for p in payloads if p["pid"] == pid)
        for (_, ended), (started, _) in itertools.pairwise(runs):
            assert ended <= started


def test_a_crashed_environment_is_replaced(make_pool: Any) -> None:
    pool: FunctionPool = make_pool(2)
    first = succeeded(pool.invoke({}))
    (environment,) = pool.environments
    crash = pool.invoke({"crash": True})
    assert crash.crashed
    assert not environment.alive  # thrown away, as Lambda does
    assert pool.environments == []
    after = succeeded(pool.invoke({}))
    assert after["pid"] != first["pid"]
    assert pool.cold_starts == 2


def test_a_full_pool_makes_the_next_caller_wait_then_gives_up(
    make_pool: Any, tmp_path: Path
) -> None:
    pool: FunctionPool = make_pool(1)
    mark = tmp_path / "running"
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as threads:
        busy = threads.submit(pool.invoke, {"sleep": 1.0, "mark": str(mark)})
        deadline = time.monotonic() + 10
        while not mark.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert mark.exists()  # the one environment is running an invocation
        with pytest.raises(NoEnvironmentError):
            pool.invoke({}, wait=0.2)
        succeeded(busy.result())
    # Once it is free again, the waiting caller gets it (no second environment).
    succeeded(pool.invoke({}, wait=5))
    assert pool.cold_starts == 1


def test_stop_kills_every_emulator(make_pool: Any) -> None:
    pool: FunctionPool = make_pool(2)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as threads:
        list(threads.map(lambda _: succeeded(pool.invoke({"sleep": 0.2})), range(2)))
    environments = pool.environments
    assert environments
    assert all(e.alive for e in environments)
    pool.stop()
    assert not any(e.alive for e in environments)
    with pytest.raises(PoolClosedError):
        pool.invoke({})


def test_runtime_pids_are_the_functions_interpreter(spec: FunctionSpec) -> None:
    process = RieProcess(spec)
    assert process.runtime_pids() == []  # not started
    with process:
        payload = succeeded(process.invoke({}))
        assert process.runtime_pids() == [payload["pid"]]
    assert not process.alive
