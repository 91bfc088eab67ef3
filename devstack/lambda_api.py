"""Lambda's Invoke API on this machine, for what calls the local functions as a client.

Step Functions' lambda:invoke tasks (moto's interpreter, see devstack.moto_server) call
`POST /2015-03-31/functions/{FunctionName}/invocations` here; each call runs in the
function's FunctionPool, so a Map's children run side by side up to the pool's size and
queue beyond it. The answers are Lambda's: the payload with 200, a handler error as
X-Amz-Function-Error: Unhandled with the error document (Step Functions names the error by
its errorType, so Retry and Catch see what they would on AWS), and Lambda's error shape
for what Lambda refuses.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from devstack.http_server import BackgroundServer
from devstack.pool import PoolClosedError
from devstack.rie import Invocation

Invoker = Callable[[str, Any], Invocation]
_INVOKE = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")
# arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER], ACCOUNT:function:NAME[:QUALIFIER]
# (a partial ARN), or NAME[:QUALIFIER]: the forms Invoke's FunctionName takes.
_FUNCTION_NAME = re.compile(
    r"^(?:(?:arn:aws[a-z-]*:lambda:(?P<region>[a-z0-9-]+):)?(?P<account>\d{12}):function:)?"
    r"(?P<name>[A-Za-z0-9_-]+)(?::(?P<qualifier>[A-Za-z0-9$_-]+))?$"
)
_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # Lambda's synchronous request limit


@dataclass(frozen=True)
class LambdaResponse:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)


def lambda_error(status: int, error_type: str, message: str) -> LambdaResponse:
    """An error of Lambda's service itself (not the function's), as botocore parses it."""
    body = json.dumps({"Type": "User", "message": message}).encode()
    headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", error_type)]
    return LambdaResponse(status, body, headers)


class LocalLambdaApi:
    """Invoke, RequestResponse only, for the functions FUNCTIONS names (physical name to
    logical id), run by INVOKE (logical id, event)."""

    def __init__(
        self,
        functions: Mapping[str, str],
        invoke: Invoker,
        *,
        region: str,
        account: str,
        host: str = "127.0.0.1",
        port: int = 0,
        on_log: Callable[[str], None] | None = None,
    ) -> None:
        self.functions = dict(functions)
        self.invoke = invoke
        self.region = region
        self.account = account
        self.host = host
        self.port = port
        self.on_log = on_log
        self._http: BackgroundServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def function_arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{name}"

    def resolve(self, function_name: str) -> str | None:
        """The logical id of the function FUNCTION_NAME names here, if any. Every qualifier
        names the one code that runs locally (no versions or aliases are published)."""
        match = _FUNCTION_NAME.match(function_name)
        if match is None:
            return None
        if match["region"] not in (None, self.region):
            return None
        if match["account"] not in (None, self.account):
            return None
        return self.functions.get(match["name"])

    # -- request handling, independent of the HTTP server ------------------------------
    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> LambdaResponse:
        split = urlsplit(target)
        found = _INVOKE.match(split.path)
        if method != "POST" or found is None:
            return lambda_error(
                404, "UnknownOperationException", "only Invoke runs on the local Lambda API"
            )
        function_name = unquote(found["name"])
        logical_id = self.resolve(function_name)
        if logical_id is None:
            shown = function_name
            if not function_name.startswith("arn:"):
                shown = self.function_arn(function_name.rpartition(":function:")[2])
            return lambda_error(404, "ResourceNotFoundException", f"Function not found: {shown}")
        qualifier = parse_qs(split.query).get("Qualifier", [""])[0]
        invocation_type = _header(headers, "X-Amz-Invocation-Type") or "RequestResponse"
        if invocation_type != "RequestResponse":
            return lambda_error(
                400,
                "InvalidParameterValueException",
                f"InvocationType {invocation_type!r}: the local Lambda API runs "
                "RequestResponse invocations only",
            )
        if len(body) > _MAX_PAYLOAD_BYTES:
            return lambda_error(
                413,
                "RequestTooLargeException",
                f"Request must be smaller than {_MAX_PAYLOAD_BYTES} bytes for the "
                "InvokeFunction operation",
            )
        try:
            event = json.loads(body) if body else {}
        except ValueError as exc:
            return lambda_error(
                400,
                "InvalidRequestContentException",
                f"Could not parse request body into json: {exc}",
            )
        try:
            invocation = self.invoke(logical_id, event)
        except PoolClosedError as exc:
            return lambda_error(503, "ServiceException", str(exc))
        except Exception as exc:  # the environment could not run at all
            return lambda_error(500, "ServiceException", f"{type(exc).__name__}: {exc}")
        request_id = invocation.report.request_id if invocation.report else str(uuid.uuid4())
        out = [
            ("Content-Type", "application/json"),
            ("X-Amz-Executed-Version", qualifier if qualifier.isdigit() else "$LATEST"),
            ("x-amzn-RequestId", request_id),
        ]
        if invocation.failed:
            out.append(("X-Amz-Function-Error", "Unhandled"))
        return LambdaResponse(200, json.dumps(invocation.payload).encode(), out)

    # -- the HTTP server -------------------------------------------------------------------
    def start(self) -> None:
        api = self

        class Handler(_RequestHandler):
            pass

        Handler.api = api
        # A short poll: stop() waits for one, and the stack stops this on every Ctrl-C.
        self._http = BackgroundServer(
            self.host, self.port, Handler, name="lambda-api", poll_interval=0.05
        )
        self.port = self._http.port

    def stop(self) -> None:
        if self._http is not None:
            self._http.stop()
            self._http = None

    def __enter__(self) -> LocalLambdaApi:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


class _RequestHandler(BaseHTTPRequestHandler):
    api: LocalLambdaApi
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no delayed ACK wait
    server_version = "local-lambda"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per invocation below says more

    def _serve(self) -> None:
        started = time.perf_counter()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            response = lambda_error(400, "InvalidRequestContentException", "bad Content-Length")
            self.close_connection = True
        else:
            body = self.rfile.read(length) if length else b""
            try:
                response = self.api.handle(self.command, self.path, dict(self.headers), body)
            except Exception as exc:  # answer rather than hang up on the interpreter
                response = lambda_error(500, "ServiceException", f"{type(exc).__name__}: {exc}")
        self._write(response)
        if self.api.on_log is not None:
            elapsed_ms = (time.perf_counter() - started) * 1000
            headers = dict(response.headers)
            error = headers.get("X-Amz-Function-Error") or headers.get("x-amzn-ErrorType")
            note = f" ({error})" if error else ""
            target = unquote(self.path)
            self.api.on_log(f"{self.command} {target} {response.status} {elapsed_ms:.0f} ms{note}")

    def _write(self, response: LambdaResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(response.body)

    # http.server dispatches on do_<METHOD>: every method is answered, the others with
    # Lambda's UnknownOperationException.
    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)
