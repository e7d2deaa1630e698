from __future__ import annotations

import functools
import http.server
import threading
import urllib.request
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

# Talk to the local server directly, even if the environment names an HTTP proxy.
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def test_the_server_serves_a_file(localport_tcp_port: int, tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("hello")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=tmp_path)
    with http.server.ThreadingHTTPServer(("127.0.0.1", localport_tcp_port), handler) as server:
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        try:
            with opener.open(f"http://127.0.0.1:{localport_tcp_port}/hello.txt") as response:
                assert response.read() == b"hello"
        finally:
            server.shutdown()
            thread.join()
