"""What devstack.moto_server changes in moto, checked without a moto server: the client
factory's replacement, the Map tolerance rule, and the wrapper's own options.

The whole of it, in a moto server running state machines, is tests/unit/local_stack/
test_moto_server.py (slow). Nothing here touches moto's own modules: a replacement made in
this process would outlive the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from types import ModuleType
from typing import Any

import pytest

from devstack import sfn_interpreter
from devstack.moto_server import LAMBDA_ENDPOINT_VARIABLE, own_endpoint
from devstack.rie import free_port
from devstack.sfn_interpreter import MotoInternalsError, client_factory, tolerance_exceeded


def original_factory(region: str, service: str, state_credentials: Any = None) -> Any:
    raise AssertionError("the original factory is replaced")


def fake_modules(monkeypatch: pytest.MonkeyPatch, **holders: bool) -> dict[str, ModuleType]:
    """A fake factory module and modules that imported its factory by name (or did not)."""
    home = ModuleType("fake_moto_boto_client")
    home.boto_client_for = original_factory  # type: ignore[attr-defined]
    modules = {"fake_moto_boto_client": home}
    for name, imports_it in holders.items():
        module = ModuleType(name)
        if imports_it:
            module.boto_client_for = original_factory  # type: ignore[attr-defined]
        modules[name] = module
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(sfn_interpreter, "_FACTORY_MODULE", "fake_moto_boto_client")
    monkeypatch.setattr(sfn_interpreter, "_LAMBDA_CALLERS", tuple(holders))
    return modules


def test_the_factory_is_replaced_where_it_was_imported_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    modules = fake_modules(monkeypatch, fake_lambda_tasks=True, fake_sdk_tasks=True)
    factory = client_factory("http://127.0.0.1:1", "http://127.0.0.1:2")
    sfn_interpreter.replace_client_factory(factory)
    assert all(module.boto_client_for is factory for module in modules.values())


def test_a_lambda_caller_without_the_factory_is_moto_drift(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_modules(monkeypatch, fake_lambda_tasks=True, fake_renamed_tasks=False)
    with pytest.raises(MotoInternalsError, match="fake_renamed_tasks does not call"):
        sfn_interpreter.replace_client_factory(client_factory("http://a", "http://b"))


def test_a_missing_module_is_moto_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sfn_interpreter, "_FACTORY_MODULE", "moto.no_such_module_here")
    with pytest.raises(MotoInternalsError, match=r"no module moto\.no_such_module_here"):
        sfn_interpreter.replace_client_factory(client_factory("http://a", "http://b"))


def test_lambda_clients_go_to_the_lambda_endpoint_others_to_moto() -> None:
    factory = client_factory("http://127.0.0.1:1111", "http://127.0.0.1:2222")
    lambda_client = factory(region="eu-west-1", service="lambda")
    s3 = factory(region="eu-west-1", service="s3", state_credentials=None)
    assert lambda_client.meta.endpoint_url == "http://127.0.0.1:1111"
    assert lambda_client.meta.region_name == "eu-west-1"
    assert s3.meta.endpoint_url == "http://127.0.0.1:2222"
    # One attempt each (a state's Retry retries), and a long wait for a function.
    assert lambda_client.meta.config.retries["total_max_attempts"] == 1
    assert lambda_client.meta.config.read_timeout == sfn_interpreter.LAMBDA_READ_TIMEOUT


@pytest.mark.parametrize(
    ("failed", "total", "count", "percentage", "exceeded"),
    [
        (0, 10, 0, 0.0, False),
        (1, 10, 0, 0.0, True),  # nothing declared: any failure fails the run
        (1, 10, 0, 10.0, False),  # percentage only: 10 % is not over 10 %
        (2, 10, 0, 10.0, True),
        (2, 10, 2, 0.0, False),  # count only
        (3, 10, 2, 0.0, True),
    ],
)
def test_the_tolerance_rule(
    failed: int, total: int, count: int, percentage: float, exceeded: bool
) -> None:
    assert tolerance_exceeded(failed, total, count, percentage) is exceeded


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["-H", "127.0.0.1", "-p", "4567"], "http://127.0.0.1:4567"),
        (["--host", "0.0.0.0", "--port", "80"], "http://127.0.0.1:80"),
        (["-p", "5001", "-H", "::"], "http://[::1]:5001"),
        (["-H", "192.168.1.9", "-p", "9", "--reload"], "http://192.168.1.9:9"),
    ],
)
def test_the_wrapper_reaches_itself_where_moto_listens(argv: list[str], expected: str) -> None:
    assert own_endpoint(argv) == expected


def test_the_wrapper_refuses_to_start_without_a_lambda_endpoint() -> None:
    environment = {k: v for k, v in os.environ.items() if k != LAMBDA_ENDPOINT_VARIABLE}
    result = subprocess.run(
        [sys.executable, "-m", "devstack.moto_server", "-p", str(free_port())],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert LAMBDA_ENDPOINT_VARIABLE in result.stderr
