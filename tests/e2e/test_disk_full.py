"""A full disk under ``acs serve`` (SQLite and the file store on one small tmpfs): an upload
is refused with 507 and leaves nothing behind, API reads answer (or 503), CPEs get 503 with
Retry-After, never a 500 or a reset; service resumes once space is freed. Needs root (it
mounts the tmpfs); CI runs as root."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.serve import add_operator
from tests.e2e.test_serve import finish_session
from tests.fake_cpe import FakeCpe

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="mounts a small tmpfs to fill it: needs root (CI runs as root)"
)

OPS = ("ops", "ops-password")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    """Write a file until the disk says ENOSPC; the filler, to remove to free the space."""
    filler = folder / "filler"
    block = b"\0" * 65536
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(block)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    with contextlib.suppress(OSError), filler.open("ab", buffering=0) as out:
        while True:  # the last partial block
            out.write(b"\0" * 512)
    return filler


def files_on_disk(data: Path) -> set[str]:
    return {p.name for p in (data / "files").rglob("*") if p.is_file()}


def test_a_full_disk_is_507_for_uploads_and_503_for_cpes_never_500(start_server, small_disk):
    data = small_disk / "data"
    server = start_server("a", data_dir=str(data), log_level="info")
    add_operator({**os.environ, "ACS_DATA_DIR": str(data)}, "ops", "operator", "ops-password")
    api = httpx.Client(base_url=server.api_url, auth=OPS, timeout=30)
    cwmp = server.cwmp_url + "/acs"
    cpe = FakeCpe()
    with httpx.Client(auth=httpx.DigestAuth("acs", "cpe-secret"), timeout=30) as client:
        assert client.post(cwmp, content=cpe.inform()).status_code == 200
        assert finish_session(client, cwmp, cpe).status_code == 204
    kept = api.put("/api/v1/files/kept.bin", params={"file_type": "2 Web Content"}, content=b"k")
    assert kept.status_code == 201, kept.text
    before = files_on_disk(data)

    filler = fill(small_disk)

    # an upload: 507, said plainly; no row, no partial or orphaned bytes
    upload = api.put(
        "/api/v1/files/new.bin",
        params={"file_type": "1 Firmware Upgrade Image"},
        content=os.urandom(1 << 20),
    )
    assert upload.status_code == 507, upload.text
    assert upload.json()["detail"].startswith("insufficient storage")
    assert files_on_disk(data) == before
    # reads answer, or say come back later; never 500
    for path in ("/api/v1/files", "/api/v1/devices", "/api/v1/tasks", "/healthz"):
        answer = api.get(path)
        assert answer.status_code in (200, 503), (path, answer.status_code, answer.text)
        if answer.status_code == 503:
            assert answer.headers["retry-after"]
    assert [f["name"] for f in api.get("/api/v1/files").json()["data"]] == ["kept.bin"]
    # CPEs: sessions write; while the disk is full each gets 503 with Retry-After
    statuses = []
    for _ in range(5):
        with httpx.Client(auth=httpx.DigestAuth("acs", "cpe-secret"), timeout=30) as client:
            reply = client.post(cwmp, content=cpe.inform())
            statuses.append(reply.status_code)
            if reply.status_code == 200:
                finish_session(client, cwmp, cpe)
            else:
                assert reply.status_code == 503 and reply.headers["retry-after"], reply.text
    assert 503 in statuses and 500 not in statuses, statuses

    # space again: uploads and sessions work, nothing of the refused ones was kept
    filler.unlink()
    upload = api.put(
        "/api/v1/files/new.bin",
        params={"file_type": "1 Firmware Upgrade Image"},
        content=b"firmware",
    )
    assert upload.status_code == 201, upload.text
    with httpx.Client(auth=httpx.DigestAuth("acs", "cpe-secret"), timeout=30) as client:
        assert client.post(cwmp, content=cpe.inform()).status_code == 200
        assert finish_session(client, cwmp, cpe).status_code == 204
    assert " 500 " not in server.output() and "Traceback" not in server.output()
    api.close()
