"""A fault-injecting HTTP proxy in front of a moto server: S3 that fails, hangs or drags.

``FaultyS3(upstream)`` listens on a free loopback port and forwards each request to
UPSTREAM, unless its ``mode`` says otherwise: ``"error"`` answers 503 SlowDown, ``"hang"``
holds the connection and never answers (until the proxy stops), ``"slow"`` waits
``delay`` seconds before forwarding. ``requests`` counts what arrived.
"""

from __future__ import annotations

import http.client
import http.server
import threading
import time
from typing import Any, Literal
from urllib.parse import urlsplit

Mode = Literal["pass", "error", "hang", "slow"]
_SLOW_DOWN = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
    b"<Message>Please reduce your request rate.</Message></Error>"
)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FaultyS3

    def _serve(self) -> None:
        proxy = self.server
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        proxy.requests.append(f"{self.command} {self.path}")
        mode = proxy.mode
        if mode == "hang":
            proxy.released.wait()
            self.close_connection = True
            return
        if mode == "error":
            self.send_response(503)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(_SLOW_DOWN)))
            self.end_headers()
            self.wfile.write(_SLOW_DOWN)
            return
        if mode == "slow":
            time.sleep(proxy.delay)
        upstream = http.client.HTTPConnection(proxy.upstream_host, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            headers["Host"] = proxy.upstream_host
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
        finally:
            upstream.close()
        self.send_response(answer.status)
        head = self.command == "HEAD"  # its Content-Length is the object's: keep it
        for name, value in answer.getheaders():
            dropped = {"transfer-encoding", "connection"} | (set() if head else {"content-length"})
            if name.lower() not in dropped:
                self.send_header(name, value)
        if not head:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _serve  # noqa: N815 - http.server's names

    def log_message(self, *args: Any) -> None:
        """Quiet: the tests read ``requests``."""


class FaultyS3(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream_host = urlsplit(upstream).netloc
        self.mode: Mode = "pass"
        self.delay = 0.0
        self.requests: list[str] = []
        self.released = threading.Event()  # set: hung requests give up
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FaultyS3:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self.shutdown()
        self.server_close()
