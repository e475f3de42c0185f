"""A stand-in for API Gateway's stage prefix: serves the local API under ``/api``.

``https://…/api/jobs`` reaches the route ``/jobs`` on AWS; this proxy does the same for
the local stack (``/api`` and ``/api/`` are the page). Anything outside the prefix is
refused with 404 and remembered, so a test can prove the page never used an absolute
path (which would miss the stage on AWS).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

PREFIX = "/api"
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-encoding",
               "content-length", "server", "date"}


class StageProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.refused: list[str] = []
        self.forwarded: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The stage's URL, as API Gateway prints it: no trailing slash."""
        return f"http://127.0.0.1:{self._server.server_port}{PREFIX}"

    def __enter__(self) -> StageProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._forward()

            def do_POST(self) -> None:
                self._forward()

            def log_message(self, format: str, *args: object) -> None:
                pass  # the test reads proxy.forwarded and proxy.refused instead

            def _forward(self) -> None:
                path = self.path
                if path != PREFIX and not path.startswith(PREFIX + "/") \
                        and not path.startswith(PREFIX + "?"):
                    proxy.refused.append(path)
                    self._reply(404, {"Content-Type": "application/json"},
                                b'{"Code": "NotFound", "Message": "outside the stage"}')
                    return
                proxy.forwarded.append(path)
                rest = path[len(PREFIX):]
                if not rest.startswith("/"):
                    rest = "/" + rest
                length = int(self.headers.get("Content-Length") or 0)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in _HOP_BY_HOP and k.lower() != "host"}
                answer = requests.request(self.command, proxy.upstream + rest, headers=headers,
                                          data=self.rfile.read(length) if length else None,
                                          timeout=60)
                self._reply(answer.status_code,
                            {k: v for k, v in answer.headers.items()
                             if k.lower() not in _HOP_BY_HOP},
                            answer.content)

            def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler
