"""A PostgreSQL server of the test's own, on a free port, that the test may kill and restart
(never the shared one on 5432). It needs PostgreSQL's server binaries (initdb, postgres); run
as root, the server runs as the ``postgres`` user, which initdb demands."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def server_binaries() -> Path | None:
    """Where initdb, postgres and pg_isready are, or ``None``."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    found = shutil.which("initdb")
    if found:
        candidates.insert(0, str(Path(found).parent))
    for folder in candidates:
        if all((Path(folder) / name).exists() for name in ("initdb", "postgres", "pg_isready")):
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnPostgres:
    """initdb in a temporary folder, then ``start``/``kill``/``start`` as the test needs."""

    def __init__(self, binaries: Path):
        self.binaries = binaries
        self.folder = Path(tempfile.mkdtemp(prefix="acs-own-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.folder, "postgres")
        self._run(
            [
                str(binaries / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        )

    def _argv(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if self._as_postgres else argv

    def _run(self, argv: list[str]) -> None:
        subprocess.run(self._argv(argv), check=True, capture_output=True, timeout=120)

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self, timeout: float = 60.0) -> None:
        argv = [
            str(self.binaries / "postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-k",
            str(self.folder),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
        ]
        log = (self.folder / "server.log").open("ab")
        self.proc = subprocess.Popen(self._argv(argv), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (self.folder / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"postgres exited:\n{tail}")
            probe = ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
            ready = subprocess.run(
                [str(self.binaries / "pg_isready"), *probe],
                capture_output=True,
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("postgres did not become ready")

    def kill(self) -> None:
        """The server dies at once: SIGKILL to the postmaster and every backend."""
        if self.proc is None:
            return
        for pid in [*_children(self.proc.pid), self.proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None
        # backends of a killed postmaster exit on their own; wait for the port to be free
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _listening(self.port):
            time.sleep(0.05)
        # what a killed server leaves behind, and a new one refuses to start on
        for left in (
            self.data / "postmaster.pid",
            self.folder / f".s.PGSQL.{self.port}",
            self.folder / f".s.PGSQL.{self.port}.lock",
        ):
            with contextlib.suppress(FileNotFoundError):
                left.unlink()

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


def _children(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                kids = [int(c) for c in (task / "children").read_text().split()]
                out += kids
                todo += kids
        except OSError:
            pass
    return out


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
