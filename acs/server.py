"""``acs serve``: both listeners in each of N worker processes sharing the bound sockets.

The parent binds the CWMP and management sockets, migrates an SQLite database, then
runs one worker itself (N=1) or spawns N workers that inherit the sockets; the kernel
spreads connections between them. Workers share nothing but the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import ssl
import sys
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import uvicorn

from acs.config import Settings
from acs.db import migrate, param_index
from acs.db.engine import Database
from acs.scheduler import Scheduler
from acs.services.runtime import Runtime, SchemaOutdated, check_schema, load_secrets
from acs.web.api_app import create_api_app
from acs.web.cwmp_app import create_cwmp_app

log = logging.getLogger("acs")
T = TypeVar("T")


def loop_factory(kind: str = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop workers run on: uvloop where it is installed (uvicorn[standard] brings
    it on Linux and macOS; its sockets and transports cost a fraction of asyncio's, which is
    most of what a CWMP request spends outside the ACS), else asyncio's own (``None``)."""
    if kind == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if kind == "uvloop":
            raise
        return None
    return uvloop.new_event_loop


def run_loop(main: Coroutine[Any, Any, T], kind: str = "auto") -> T:
    """``asyncio.run`` on the loop ``loop_factory`` picks."""
    with asyncio.Runner(loop_factory=loop_factory(kind)) as runner:
        return runner.run(main)


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to us (we run two per loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that
    # say they are TCP, and accepted sockets inherit the listener's proto. With Nagle on, a
    # response written in two parts waited ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


# How every listener runs (bench/ceiling.py uses the same, so that it measures the same HTTP).
UVICORN_OPTIONS: dict[str, Any] = {
    "log_config": None,
    "access_log": False,
    "lifespan": "off",
    "timeout_keep_alive": 30,
    "server_header": False,
    "proxy_headers": False,
}


def run_processes(target: Callable[..., None], args: tuple[Any, ...], count: int) -> int:
    """Run ``target(*args)`` in ``count`` spawned processes (they inherit the sockets in
    ``args``), forward SIGINT/SIGTERM to them, and wait; the first non-zero exit code."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=target, args=args, daemon=False) for _ in range(count)]
    for proc in procs:
        proc.start()

    def forward(sig: int, _frame: object) -> None:
        for proc in procs:
            if proc.pid and proc.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, sig)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    code = 0
    for proc in procs:
        proc.join()
        code = code or (proc.exitcode or 0)
    return code


async def run_worker(settings: Settings, cwmp_sock: socket.socket, api_sock: socket.socket) -> None:
    """One worker: both apps on one event loop, until SIGINT/SIGTERM."""
    runtime = await Runtime.start(settings, migrate_sqlite=False)
    scheduler = Scheduler(runtime, settings.scheduler_interval)
    cwmp_kwargs = dict(UVICORN_OPTIONS)
    if settings.cwmp_tls:
        cwmp_kwargs.update(
            ssl_certfile=str(settings.cwmp_tls_certfile),
            ssl_keyfile=str(settings.cwmp_tls_keyfile),
            ssl_version=ssl.PROTOCOL_TLS_SERVER,
        )
    servers = [
        _Server(uvicorn.Config(create_cwmp_app(runtime), **cwmp_kwargs)),
        _Server(uvicorn.Config(create_api_app(runtime), **UVICORN_OPTIONS)),
    ]
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    scheduler.start()
    try:
        await asyncio.gather(
            servers[0].serve(sockets=[cwmp_sock]), servers[1].serve(sockets=[api_sock])
        )
    finally:
        await scheduler.stop()
        await runtime.close()


def _worker_entry(settings: Settings, cwmp_sock: socket.socket, api_sock: socket.socket) -> None:
    configure_logging(settings.log_level)
    run_loop(run_worker(settings, cwmp_sock, api_sock), settings.event_loop)


async def prepare(settings: Settings) -> str:
    """Migrate SQLite, make sure secrets exist; returns the shared CPE password."""
    db = Database(settings.resolved_database_url)
    try:
        if db.is_sqlite:
            await migrate.upgrade(db)
        await check_schema(db)
        await param_index.ensure_indexes(db, settings.indexed_parameter_list)
        return (await load_secrets(db, settings)).cwmp_password
    finally:
        await db.dispose()


def serve(settings: Settings) -> int:
    configure_logging(settings.log_level)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.cwmp_auth == "basic" and not (
        settings.cwmp_tls or settings.cwmp_allow_basic_over_http
    ):
        log.error(
            "ACS_CWMP_AUTH=basic needs TLS (ACS_CWMP_TLS_CERTFILE/KEYFILE) or "
            "ACS_CWMP_ALLOW_BASIC_OVER_HTTP=true"
        )
        return 2
    try:
        password = asyncio.run(prepare(settings))
    except SchemaOutdated as exc:
        log.error("%s", exc)
        return 2
    cwmp_sock = bind(settings.bind, settings.cwmp_port)
    api_sock = bind(settings.bind, settings.api_port)
    scheme = "https" if settings.cwmp_tls else "http"
    log.info("database: %s", _redact(settings.resolved_database_url))
    log.info(
        "CWMP listener: %s://%s:%d/ (auth %s; CPE credentials %s / %s)",
        scheme,
        settings.bind,
        cwmp_sock.getsockname()[1],
        settings.cwmp_auth,
        settings.cwmp_username,
        "<from ACS_CWMP_PASSWORD>" if settings.cwmp_password else password,
    )
    log.info("management API: http://%s:%d/api/v1/docs", settings.bind, api_sock.getsockname()[1])
    if settings.workers == 1:
        with contextlib.suppress(KeyboardInterrupt):
            run_loop(run_worker(settings, cwmp_sock, api_sock), settings.event_loop)
        return 0
    return run_processes(_worker_entry, (settings, cwmp_sock, api_sock), settings.workers)


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
