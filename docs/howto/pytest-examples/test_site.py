from __future__ import annotations

import urllib.request

import pytest

opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.mark.parametrize("path", ["/", "/index.html"])
def test_the_page_says_hello(site_url: str, path: str) -> None:
    with opener.open(site_url + path) as response:
        assert response.read() == b"<h1>hello</h1>"
