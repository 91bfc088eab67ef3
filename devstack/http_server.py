"""A threading HTTP server on a daemon thread: what the local gateway and the local
Lambda Invoke endpoint each serve on."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class BackgroundServer:
    """HANDLER served on HOST:PORT (0: a free port) by a thread of its own, until stop().

    POLL_INTERVAL is how long stop() may wait for the serving loop to notice.
    """

    def __init__(
        self,
        host: str,
        port: int,
        handler: type[BaseHTTPRequestHandler],
        *,
        name: str,
        poll_interval: float = 0.5,
    ) -> None:
        self._server: ThreadingHTTPServer | None = _Server((host, port), handler)
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = threading.Thread(
            target=self._server.serve_forever, args=(poll_interval,), name=name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
