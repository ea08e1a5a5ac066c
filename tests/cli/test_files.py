"""``acs files``: upload (streamed; a progress bar on a terminal only), list, show, delete."""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import subprocess
import sys
import time

from tests.cli.conftest import CPE_PASSWORD, SECRET_KEY

FIRMWARE = "1 Firmware Upgrade Image"
TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def test_upload_list_show_delete(acs, tmp_path, where):
    content = b"ACS-SIM-FIRMWARE 2.5.0\n" * 1000
    (tmp_path / "fw-2.5.0.bin").write_bytes(content)
    sha = hashlib.sha256(content).hexdigest()
    code, out, err = acs(
        "files", "upload", "fw-2.5.0.bin", "--type", FIRMWARE, "--version", "2.5.0"
    )
    assert (code, err) == (0, "")  # standard error is no terminal: no progress bar
    assert re.fullmatch(
        "name:          fw-2.5.0.bin\n"
        f"type:          {FIRMWARE}\n"
        "version:       2.5.0\n"
        "oui:           -\n"
        "product class: -\n"
        "size:          23000 bytes \\(22.5 KiB\\)\n"
        f"sha256:        {sha}\n"
        "content type:  application/octet-stream\n"
        f"created:       {TIME}\n"
        r"created by:    cli:\w+" + "\n",
        out,
    ), out
    blob = tmp_path / "data" / "files" / sha[:2] / sha
    assert blob.read_bytes() == content

    (tmp_path / "book.xml").write_bytes(b"<phonebook/>")
    assert (
        acs("files", "upload", "book.xml", "--type", "phonebook", "--name", "pb.xml", "--json")[0]
        == 0
    )
    code, out, err = acs("files", "list")
    assert [line.split()[0] for line in out.splitlines()] == ["NAME", "fw-2.5.0.bin", "pb.xml"]
    assert out.splitlines()[1].split()[1:7] == [
        "1",
        "Firmware",
        "Upgrade",
        "Image",
        "2.5.0",
        "23000",
    ]
    page = json.loads(acs("files", "list", "--type", "phonebook", "--json")[1])
    assert (page["count"], page["data"][0]["name"], page["data"][0]["content_type"]) == (
        1,
        "pb.xml",
        "application/xml",
    )
    shown = json.loads(acs("files", "show", "pb.xml", "--json")[1])
    assert shown == page["data"][0]

    assert acs("files", "delete", "fw-2.5.0.bin") == (0, "file fw-2.5.0.bin deleted\n", "")
    assert not blob.exists()
    assert acs("files", "delete", "fw-2.5.0.bin") == (1, "", f"no file 'fw-2.5.0.bin'{where}\n")
    assert acs("files", "show", "nope") == (1, "", f"no file 'nope'{where}\n")


def test_refused_uploads_store_nothing(acs, tmp_path, where):
    (tmp_path / "book.txt").write_bytes(b"x")
    assert acs("files", "upload", "book.txt", "--type", "phonebook") == (
        1,
        "",
        f"a phonebook file ends with one of ['.xml', '.vcf', '.csv']{where}\n",
    )
    assert acs("files", "upload", "book.txt", "--type", "firmware") == (
        1,
        "",
        "file_type must be one of ['1 Firmware Upgrade Image', '2 Web Content', "
        "'3 Vendor Configuration File', '4 Tone File', '5 Ringer File', 'phonebook', "
        "'certificate', 'background', 'mmiset', 'dialpeer', 'accesslist']" + where + "\n",
    )
    assert acs("files", "upload", "missing.bin", "--type", FIRMWARE) == (
        1,
        "",
        f"cannot read missing.bin: No such file or directory{where}\n",
    )
    assert acs("files", "upload", "book.txt", "--type", FIRMWARE, "--name", "../x") == (
        1,
        "",
        "file names are 1-200 of A-Z a-z 0-9 . _ - (not starting with . or -)" + where + "\n",
    )
    assert acs("files", "list") == (0, "", "")


def test_progress_bar_on_a_terminal(database_url, tmp_path):
    """Standard error on a pseudo-terminal (the child's own): the bar is redrawn in place
    each time the percentage moves, and ends with a line break."""
    size = 3 * 1024 * 1024 + 512 * 1024  # 3.5 chunks of 1 MiB: 28, 57, 85, 100 %
    (tmp_path / "fw.bin").write_bytes(os.urandom(size))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ACS_")},
        "ACS_DATABASE_URL": database_url,
        "ACS_DATA_DIR": str(tmp_path / "data"),
        "ACS_SECRET_KEY": SECRET_KEY,
        "ACS_CWMP_PASSWORD": CPE_PASSWORD,
    }
    primary, secondary = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "acs.cli", "files", "upload", "fw.bin", "--type", FIRMWARE],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=secondary,
    )
    os.close(secondary)
    seen = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], deadline - time.monotonic())
            if not ready:
                continue
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(primary)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, seen
    assert out.startswith(b"name:          fw.bin\n")

    def frame(percent: int, done: str) -> bytes:
        filled = 30 * percent // 100
        bar = "#" * filled + "-" * (30 - filled)
        return f"\rfw.bin [{bar}] {percent:3d}% {done} of 3.5 MiB".encode()

    assert seen == (
        frame(28, "1.0 MiB")
        + frame(57, "2.0 MiB")
        + frame(85, "3.0 MiB")
        + frame(100, "3.5 MiB")
        + b"\r\n"  # the terminal's line discipline writes \n as \r\n
    )
