"""A chat-completions server on loopback for judge tests: 127.0.0.1, port 0, one thread, bounded.

`behaviour(body) -> reply` decides each answer: a str (a normal completion with that content), or
("status", code), ("sleep", seconds) (then a normal reply: for client timeouts), ("raw", bytes) (200 with a
malformed body). Every request body and Authorization header is recorded.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

MAX_REQUESTS = 500  # a runaway client loop fails the test instead of spinning


class ChatServer:
    def __init__(self, behaviour: Callable[[dict[str, Any]], Any]):
        self.behaviour = behaviour
        self.requests: list[dict[str, Any]] = []
        self.auth_headers: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                server.auth_headers.append(self.headers.get("Authorization"))
                if len(server.requests) > MAX_REQUESTS or self.path != "/v1/chat/completions":
                    return self._send(404, b"{}")
                reply = server.behaviour(body)
                if isinstance(reply, tuple) and reply[0] == "status":
                    return self._send(reply[1], b'{"error": "scripted"}')
                if isinstance(reply, tuple) and reply[0] == "raw":
                    return self._send(200, reply[1])
                if isinstance(reply, tuple) and reply[0] == "sleep":
                    time.sleep(reply[1])
                    reply = "10 10"
                payload = {"id": "x", "object": "chat.completion", "model": body.get("model", ""),
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                                        "finish_reason": "stop"}]}
                self._send(200, json.dumps(payload).encode())

            def _send(self, code: int, data: bytes) -> None:
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "ChatServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def free_port() -> int:
    """A port nothing listens on (bound and released at once)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
