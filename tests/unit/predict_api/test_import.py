"""Importing the handler (a Lambda cold start's init phase) makes no network call.

The subprocess gets the environment of a deployed function, with its S3 endpoint pointed at
a TCP listener run by the test: any S3 traffic at import would arrive there.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

# The import, with an audit hook watching every socket operation of the process.
AUDITED_IMPORT = """
import json, sys

calls = []

def audit(event, args):
    if event.startswith("socket.") and event != "socket.__new__":
        calls.append([event, repr(args)])

sys.addaudithook(audit)
import predict_api.handler
during_import = list(calls)
import socket
socket.getaddrinfo("127.0.0.1", 9)  # the control: the hook does see socket calls
openapi_models = sys.modules["fastapi.openapi.models"]
print(json.dumps({
    "socket_calls": during_import,
    "control_calls": [event for event, _ in calls[len(during_import):]],
    "sklearn_modules": sorted(m for m in sys.modules if m.split(".")[0] == "sklearn"),
    "unpickling_modules": sorted(m for m in sys.modules if m.split(".")[0] in {"joblib", "scipy"}),
    "botocore_client_imported": "botocore.client" in sys.modules,
    "openapi_models_deferred": not openapi_models.OpenAPI.__pydantic_complete__,
    "handler_callable": callable(predict_api.handler.handler),
    "bucket": predict_api.handler.app.state.service.settings.model_bucket,
}))
"""


class ConnectionRecorder:
    """A TCP listener on loopback that accepts, records and closes every connection."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.05)
        self.port: int = self._server.getsockname()[1]
        self.peers: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, peer = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.peers.append(peer)
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._server.close()


@pytest.fixture
def recorder() -> Iterator[ConnectionRecorder]:
    listener = ConnectionRecorder()
    try:
        yield listener
    finally:
        listener.close()


def _function_env(endpoint: str) -> dict[str, str]:
    """A deployed function's environment: bucket, prefix, S3 endpoint; no proxy detours."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in {"http_proxy", "https_proxy", "all_proxy"}
        and not k.startswith(("MODEL_", "PYTEST_"))
    }
    env.update(
        {
            "MODEL_BUCKET": "import-must-not-touch-this-bucket",
            "MODEL_PREFIX": "registry",
            "MODEL_NAME": "iris",
            "AWS_ENDPOINT_URL_S3": endpoint,
            "NO_PROXY": "*",
            "no_proxy": "*",
        }
    )
    return env


def _run(code: str, endpoint: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_function_env(endpoint),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _wait_for(recorder: ConnectionRecorder, count: int, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while len(recorder.peers) < count and time.monotonic() < deadline:
        time.sleep(0.01)


def test_importing_the_handler_makes_no_connection(recorder: ConnectionRecorder) -> None:
    result = _run("import predict_api.handler", recorder.url)

    assert result.returncode == 0, result.stderr
    assert recorder.peers == []
    # The control: the listener does record a connection when one is made.
    socket.create_connection(("127.0.0.1", recorder.port), timeout=5).close()
    _wait_for(recorder, 1)
    assert len(recorder.peers) == 1


def test_importing_the_handler_opens_no_socket_and_loads_no_sklearn(
    recorder: ConnectionRecorder,
) -> None:
    result = _run(AUDITED_IMPORT, recorder.url)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["handler_callable"] is True
    assert report["bucket"] == "import-must-not-touch-this-bucket"  # settings were read
    assert report["socket_calls"] == []
    assert report["control_calls"] == ["socket.getaddrinfo"]
    assert report["sklearn_modules"] == []
    assert report["unpickling_modules"] == []
    assert recorder.peers == []


def test_importing_the_handler_leaves_the_heavy_parts_for_later(
    recorder: ConnectionRecorder,
) -> None:
    """What the cold start does not pay at import: FastAPI's OpenAPI models are built when
    /openapi.json first needs them (if a pydantic release moves the default the package
    switches, this fails and says so), and no botocore client is made for the registry."""
    result = _run(AUDITED_IMPORT, recorder.url)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["openapi_models_deferred"] is True
    assert report["botocore_client_imported"] is False
