"""A local HTTP server on 127.0.0.1 that misbehaves on request, for the download tests.

Each served path has a behaviour: ``good`` (honours Range), ``drop`` (the first
full request sends half the bytes and closes), ``drop-norange`` (drops once,
then ignores Range and sends everything), ``short`` (a truncated copy with a
consistent length), ``corrupt`` (one byte flipped), ``missing`` (404) and
``slow`` (waits before answering). Every request is logged with its Range.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Served:
    body: bytes
    behaviour: str = "good"
    delay: float = 0.0
    dropped: bool = False


@dataclass
class LocalServer:
    files: dict[str, Served] = field(default_factory=dict)
    log: list[tuple[str, str | None]] = field(default_factory=list)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def serve(self, path: str, body: bytes, behaviour: str = "good", delay: float = 0.0) -> str:
        self.files[path] = Served(body, behaviour, delay)
        return self.url(path)

    def requests_for(self, path: str) -> list[str | None]:
        return [rng for p, rng in self.log if p == path]


def _handler(state: LocalServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def do_GET(self):
            path = self.path.lstrip("/")
            state.log.append((path, self.headers.get("Range")))
            served = state.files.get(path)
            if served is None or served.behaviour == "missing":
                self.send_error(404, "Not Found")
                return
            if served.behaviour == "slow":
                time.sleep(served.delay)
            body = served.body
            if served.behaviour == "short":
                body = body[: len(body) // 2]
            elif served.behaviour == "corrupt":
                body = body[:10] + bytes([body[10] ^ 0xFF]) + body[11:]
            start = 0
            wanted = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            honour_range = served.behaviour != "drop-norange" or not served.dropped
            if wanted and honour_range and int(wanted.group(1)) < len(body):
                start = int(wanted.group(1))
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body) - start))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if served.behaviour.startswith("drop") and not served.dropped:
                served.dropped = True
                self.wfile.write(body[start : len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body[start:])

    return Handler


def start(state: LocalServer):
    """Start serving ``state`` on a free port; returns the server (call ``shutdown``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
