"""``acs serve``'s listening sockets keep the kernel's longest accept queue (uvicorn would
set its own 2048 again on the sockets it is handed), read from ``ss``."""

from __future__ import annotations

import shutil
import subprocess
from urllib.parse import urlsplit

import pytest

from acs.server import accept_backlog


def _backlog(port: int) -> int:
    """Send-Q of a listening socket is its backlog."""
    out = subprocess.run(
        ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    [line] = out.splitlines()
    return int(line.split()[2])


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_listeners_use_the_kernels_backlog(start_server):
    server = start_server(workers="2")
    expected = accept_backlog()
    for url in (server.cwmp_url, server.api_url):
        assert _backlog(urlsplit(url).port or 0) == expected
