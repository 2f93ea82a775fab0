"""A scripted OpenAI-compatible server on 127.0.0.1 for the openai_compat engine's tests.

Each POST is answered by ``script(call_number, body)`` with a status, a payload and headers. A
dict payload is sent as JSON; bytes are sent as they are (an HTML error page, a truncated body),
with the ``Content-Type`` the headers give.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = tuple[int, dict[str, Any] | bytes, dict[str, str]]  # status, JSON body or raw bytes, headers
Script = Callable[[int, dict[str, Any]], Reply]


@dataclass
class FakeServer:
    """Answers each POST with ``script(call_number, body)``; records bodies, headers and peak concurrency."""

    script: Script
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def handle(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        with self.lock:
            call = len(self.bodies)
            self.bodies.append(body)
            self.headers.append(headers)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            time.sleep(self.delay)
            return self.script(call, body)
        finally:
            with self.lock:
                self.in_flight -= 1


def completion(
    body: dict[str, Any], choices: int | None = None, prompt_tokens: int = 11, finish_reason: str = "stop"
) -> Reply:
    """A well-formed response; the text names the seed and choice so tests can tell samples apart."""
    count = body["n"] if choices is None else choices
    texts = [f"answer seed={body['seed']} choice={i} " + "x" * i for i in range(count)]
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": 5 * count, "total_tokens": prompt_tokens + 5 * count}
    payload = {
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": finish_reason}
            for i, t in enumerate(texts)
        ],
        "usage": usage,
    }
    return 200, payload, {}


@contextmanager
def fake_servers() -> Iterator[Callable[..., FakeServer]]:
    """Yields ``start(script, delay=0.0)``; every server started is shut down on exit."""
    servers: list[ThreadingHTTPServer] = []

    def start(script: Script, delay: float = 0.0) -> FakeServer:
        fake = FakeServer(script, delay=delay)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                assert self.path == "/v1/chat/completions"
                status, payload, headers = fake.handle(body, {k.lower(): v for k, v in self.headers.items()})
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                headers = {"Content-Type": "application/json", **headers}
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and hung up
                    pass

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        fake.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        return fake

    try:
        yield start
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
