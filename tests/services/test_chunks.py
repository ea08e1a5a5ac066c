"""Stored files' chunks shared by the file servers' transfers (provisioning_files.Chunks):
1,000 phones fetching one firmware read each chunk from the disk once."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from acs.services import provisioning_files as pf
from acs.services.provisioning_files import READ_AHEAD, Chunks, ProvisioningFile, Reader


def stored(tmp_path: Path, content: bytes) -> ProvisioningFile:
    sha = hashlib.sha256(content).hexdigest()
    path = tmp_path / sha
    path.write_bytes(content)
    return ProvisioningFile(
        "fw.z", len(content), "application/octet-stream", sha, path=path, sha256=sha
    )


async def read_all(reader: Reader) -> bytes:
    out = bytearray()
    while chunk := await reader.read():
        out += chunk
    return bytes(out)


@pytest.fixture
def disk_reads(monkeypatch) -> list[int]:
    """The offsets read from the disk, in order."""
    reads: list[int] = []
    real = pf._read_chunk

    def counted(path: Path, offset: int) -> bytes:
        reads.append(offset)
        return real(path, offset)

    monkeypatch.setattr(pf, "_read_chunk", counted)
    return reads


async def test_a_hundred_readers_of_one_file_read_each_chunk_once(tmp_path, disk_reads):
    content = os.urandom(3 * READ_AHEAD + 1000)
    found = stored(tmp_path, content)
    chunks = Chunks(64 << 20)
    got = await asyncio.gather(*(read_all(Reader(found, chunks)) for _ in range(100)))
    assert got == [content] * 100
    assert disk_reads == [0, READ_AHEAD, 2 * READ_AHEAD, 3 * READ_AHEAD]
    assert chunks.size == len(content)


async def test_a_reader_from_an_offset_and_the_size_resolved(tmp_path, disk_reads):
    content = os.urandom(2 * READ_AHEAD)
    found = stored(tmp_path, content)
    chunks = Chunks(64 << 20)
    assert await read_all(Reader(found, chunks, offset=READ_AHEAD + 7)) == content[READ_AHEAD + 7 :]
    assert await read_all(Reader(found, chunks, offset=5)) == content[5:]
    assert disk_reads == [READ_AHEAD, 0]  # the second chunk was kept


async def test_the_least_recently_used_chunks_go_beyond_the_budget(tmp_path, disk_reads):
    a = stored(tmp_path, os.urandom(2 * READ_AHEAD))
    b = stored(tmp_path, os.urandom(READ_AHEAD))
    chunks = Chunks(budget=2 * READ_AHEAD)
    await read_all(Reader(a, chunks))
    await read_all(Reader(b, chunks))  # a's first chunk goes
    assert chunks.size == 2 * READ_AHEAD
    disk_reads.clear()
    await read_all(Reader(a, chunks))  # a0 from the disk drops a1, a1 then drops b0
    await read_all(Reader(b, chunks))
    assert disk_reads == [0, READ_AHEAD, 0]


async def test_a_missing_blob_fails_every_reader_and_is_not_kept(tmp_path, disk_reads):
    found = stored(tmp_path, os.urandom(1000))
    assert found.path is not None
    found.path.unlink()
    chunks = Chunks(64 << 20)
    results = await asyncio.gather(
        *(read_all(Reader(found, chunks)) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, FileNotFoundError) for r in results)
    assert disk_reads == [0]  # one read, its error shared
    found.path.write_bytes(b"x" * 1000)  # back (the digest is not checked here)
    assert await read_all(Reader(found, chunks)) == b"x" * 1000
    assert chunks.size == 1000


async def test_the_budget_is_the_setting_and_none_keeps_nothing(make_runtime, tmp_path, disk_reads):
    runtime = await make_runtime(file_cache_mb=3)
    assert runtime.provisioning_files.chunks.budget == 3 << 20
    runtime = await make_runtime(file_cache_mb=0)
    chunks = runtime.provisioning_files.chunks
    content = os.urandom(READ_AHEAD + 10)
    found = stored(tmp_path, content)
    for _ in range(2):
        assert await read_all(Reader(found, chunks)) == content
    assert (chunks.size, disk_reads) == (0, [0, READ_AHEAD, 0, READ_AHEAD])
