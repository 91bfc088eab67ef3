"""X-Ray subsegments for the functions' own work: model load, S3 and KMS calls, scoring.

Written against the X-Ray daemon's UDP protocol rather than with the X-Ray SDK (or
Powertools' Tracer, which wraps it): importing the SDK costs 0.7-0.9 s here, against a
cold-start budget of 30 ms for tracing; this module imports nothing beyond the standard
library the functions load anyway.

Lambda with active tracing gives each invocation a trace header in ``_X_AMZN_TRACE_ID``
(Root, the Parent segment Lambda made for the function, Sampled) and a daemon address in
``AWS_XRAY_DAEMON_ADDRESS``. A subsegment is sent as one UDP datagram when it ends, under
the innermost open subsegment or else the function's segment. Unsampled invocations, and
any process without both variables (tests, the CLI, make local), send nothing and pay
one environment look-up per subsegment.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

TRACE_HEADER = "_X_AMZN_TRACE_ID"
DAEMON_ADDRESS = "AWS_XRAY_DAEMON_ADDRESS"
_PREAMBLE = b'{"format": "json", "version": 1}\n'
_MAX_DATAGRAM = 64 * 1024 - 512  # the daemon reads 64 KiB; metadata is trimmed below it

# The innermost open subsegment's id, per thread and task.
_open: contextvars.ContextVar[str | None] = contextvars.ContextVar("xray_open", default=None)


class Subsegment:
    """An open subsegment: annotations (indexed, searchable) and metadata can be added."""

    def __init__(self, name: str, trace_id: str, parent_id: str, namespace: str | None) -> None:
        self.document: dict[str, Any] = {
            "name": name,
            "id": os.urandom(8).hex(),
            "trace_id": trace_id,
            "parent_id": parent_id,
            "type": "subsegment",
            "start_time": time.time(),
        }
        if namespace is not None:
            self.document["namespace"] = namespace

    def annotate(self, **values: str | int | float | bool) -> None:
        self.document.setdefault("annotations", {}).update(values)

    def describe(self, key: str, value: Any) -> None:
        """A field of the AWS call the subsegment is (operation, bucket_name, ...)."""
        self.document.setdefault("aws", {})[key] = value

    def answered(self, status: int) -> None:
        self.document["http"] = {"response": {"status": status}}


class _Nothing(Subsegment):
    """What an untraced block gets: every call is a no-op."""

    def __init__(self) -> None:
        self.document = {}

    def annotate(self, **values: str | int | float | bool) -> None:
        return None

    def describe(self, key: str, value: Any) -> None:
        return None

    def answered(self, status: int) -> None:
        return None


_NOTHING = _Nothing()


def _header() -> tuple[str, str] | None:
    """(trace id, parent id) of a sampled invocation, or None."""
    header = os.environ.get(TRACE_HEADER)
    if not header or "Sampled=1" not in header:
        return None
    fields = dict(part.split("=", 1) for part in header.split(";") if "=" in part)
    root, parent = fields.get("Root"), fields.get("Parent")
    if not root or not parent:
        return None
    return root, parent


class _Daemon:
    """The UDP socket to the daemon, made on first use."""

    def __init__(self) -> None:
        self._socket: socket.socket | None = None
        self._address: tuple[str, int] | None = None
        self._configured: str | None = None

    def address(self) -> tuple[str, int] | None:
        configured = os.environ.get(DAEMON_ADDRESS)
        if configured != self._configured:
            self._configured, self._address = configured, _udp_address(configured or "")
        return self._address

    def send(self, document: dict[str, Any]) -> None:
        address = self.address()
        if address is None:
            return
        payload = _PREAMBLE + json.dumps(document, default=str).encode()
        if len(payload) > _MAX_DATAGRAM:
            document.pop("metadata", None)
            payload = _PREAMBLE + json.dumps(document, default=str).encode()
        if self._socket is None:
            self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # Tracing never fails the work it describes.
        with contextlib.suppress(OSError):
            self._socket.sendto(payload, address)


def _udp_address(configured: str) -> tuple[str, int] | None:
    """The UDP address in "host:port" or the SDK's "tcp:host:port udp:host:port"."""
    for part in configured.split():
        if part.startswith("tcp:"):
            continue
        host, _, port = part.removeprefix("udp:").rpartition(":")
        if host and port.isdigit():
            return host, int(port)
    return None


_daemon = _Daemon()


@contextlib.contextmanager
def subsegment(
    name: str, *, namespace: str | None = None, **annotations: str | int | float | bool
) -> Iterator[Subsegment]:
    """Time the block as a subsegment of the current invocation's trace, if sampled.

    NAMESPACE "aws" marks a call to an AWS service (X-Ray draws it as one). An exception
    marks the subsegment as a fault and propagates.
    """
    header = _header()
    if header is None or os.environ.get(DAEMON_ADDRESS) is None:
        yield _NOTHING
        return
    trace_id, segment_id = header
    current = Subsegment(name, trace_id, _open.get() or segment_id, namespace)
    if annotations:
        current.annotate(**annotations)
    token = _open.set(current.document["id"])
    try:
        yield current
    except BaseException as exc:
        current.document["fault"] = True
        current.document["cause"] = {
            "exceptions": [{"type": type(exc).__name__, "message": str(exc)[:1000]}]
        }
        raise
    finally:
        _open.reset(token)
        current.document["end_time"] = time.time()
        _daemon.send(current.document)


def trace_aws_client(client: Any) -> None:
    """Each call of a botocore CLIENT becomes an "aws" subsegment (operation, bucket, key,
    status), as the X-Ray SDK's botocore patch would, through the client's event hooks."""
    service = client.meta.service_model.service_id.hyphenize()  # as botocore names events
    name = {"s3": "S3", "kms": "KMS"}.get(service, service)

    def before(model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        header = _header()
        if header is None or os.environ.get(DAEMON_ADDRESS) is None:
            return
        trace_id, segment_id = header
        call = Subsegment(name, trace_id, _open.get() or segment_id, "aws")
        call.describe("operation", model.name)
        for field, label in (("Bucket", "bucket_name"), ("Key", "key")):
            if field in params:
                call.describe(label, params[field])
        context["xray_subsegment"] = call

    def after(context: dict[str, Any], http_response: Any = None, **kwargs: Any) -> None:
        call: Subsegment | None = context.pop("xray_subsegment", None)
        if call is None:
            return
        if http_response is not None:
            call.answered(http_response.status_code)
        if "exception" in kwargs or (
            http_response is not None and http_response.status_code >= 500
        ):
            call.document["fault"] = True
        call.document["end_time"] = time.time()
        _daemon.send(call.document)

    events = client.meta.events
    # Its API parameters (Bucket, Key) are what before-parameter-build sees; the same
    # context dict travels to after-call.
    events.register(f"before-parameter-build.{service}.*", before, unique_id="xray-before")
    events.register(f"after-call.{service}.*", after, unique_id="xray-after")
    events.register(f"after-call-error.{service}.*", after, unique_id="xray-after-error")
