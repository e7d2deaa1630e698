from __future__ import annotations

import functools
import http.server
import threading
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from localport.pytest_plugin import PortFactory


@pytest.fixture(scope="session")
def site_url(
    localport_session_port_factory: PortFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One static file server for the whole session (one per xdist worker)."""
    root = tmp_path_factory.mktemp("site")
    (root / "index.html").write_text("<h1>hello</h1>")
    port = localport_session_port_factory()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=root)
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        yield f"http://127.0.0.1:{port}"
        server.shutdown()
        thread.join()
