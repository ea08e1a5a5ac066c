"""The listeners' accept backlog: the kernel's somaxconn, or 4096 where it says nothing."""

from __future__ import annotations

from pathlib import Path

from acs.server import DEFAULT_BACKLOG, SOMAXCONN, accept_backlog


def test_the_backlog_is_what_the_kernel_allows(tmp_path: Path):
    said = tmp_path / "somaxconn"
    said.write_text("65535\n")
    assert accept_backlog(said) == 65535
    said.write_text("128\n")  # an old kernel's: taken as it is (listen() could not do more)
    assert accept_backlog(said) == 128
    for nonsense in ("", "many\n", "0\n", "-1\n"):
        said.write_text(nonsense)
        assert accept_backlog(said) == DEFAULT_BACKLOG == 4096
    assert accept_backlog(tmp_path / "absent") == 4096
    if SOMAXCONN.exists():
        assert accept_backlog() == int(SOMAXCONN.read_text())
