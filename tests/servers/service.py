"""A small HTTP service for the `localport up` tests.

``python service.py PORT [ARG ...]`` listens on 127.0.0.1:PORT; ``python service.py fd:N``
serves on the inherited listening socket N. Every GET answers JSON with the extra arguments
and the port-related environment it was given. It prints one line at start without flushing,
so the line shows up promptly only when PYTHONUNBUFFERED is set.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        wanted = {
            key: value
            for key, value in os.environ.items()
            if key == "PORT" or key.endswith(("_PORT", "_URL")) or key == "PYTHONUNBUFFERED"
        }
        body = json.dumps({"argv": sys.argv[2:], "env": wanted, "pid": os.getpid()}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    where = sys.argv[1]
    if where.startswith("fd:"):
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        server.socket.close()
        server.socket = socket.socket(fileno=int(where[3:]))
    else:
        server = ThreadingHTTPServer(("127.0.0.1", int(where)), Handler)
    print(f"serving on {server.socket.getsockname()[1]}")  # no flush: see the docstring
    server.serve_forever()


if __name__ == "__main__":
    main()
