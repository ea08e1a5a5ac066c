"""``acs serve``: both listeners in each of N worker processes sharing the bound sockets.

The parent binds the CWMP and management sockets, migrates an SQLite database, then
runs one worker itself (N=1) or spawns N workers that inherit the sockets; the kernel
spreads connections between them. Workers share nothing but the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import ssl
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from multiprocessing import connection
from multiprocessing.connection import Connection
from typing import Any, TypeVar

import uvicorn

from acs import logs
from acs.config import Settings
from acs.db import migrate, param_index
from acs.db.engine import Database
from acs.db.errors import DatabaseUnavailable
from acs.scheduler import Scheduler
from acs.services import metrics
from acs.services.runtime import Runtime, check_schema, load_secrets
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
    """A uvicorn server that leaves signal handling to us (we run two per loop) and says when
    it serves (``on_started``: uvicorn logs nothing then for sockets it was handed)."""

    on_started: Callable[[], None] | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self.on_started is not None:
            self.on_started()


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


def configure_logging(settings: Settings) -> None:
    logs.configure(settings.log_level, settings.log_format)


# How every listener runs (bench/ceiling.py uses the same, so that it measures the same HTTP).
UVICORN_OPTIONS: dict[str, Any] = {
    "log_config": None,
    "access_log": False,
    "lifespan": "off",
    "timeout_keep_alive": 30,
    "server_header": False,
    "proxy_headers": False,
}


def run_processes(
    target: Callable[..., None],
    args: tuple[Any, ...],
    count: int,
    *,
    on_ready: Callable[[list[int], int], None] | None = None,
) -> int:
    """Run ``target(*args)`` in ``count`` spawned processes (they inherit the sockets in
    ``args``), forward SIGINT/SIGTERM to them, and wait; the first non-zero exit code.

    ``on_ready``: each process gets one more argument, a connection on which it sends its pid
    once it serves; ``on_ready(pids, count)`` is called as each does."""
    ctx = multiprocessing.get_context("spawn")
    pipes = [ctx.Pipe(duplex=False) for _ in range(count)] if on_ready else []
    procs = [
        ctx.Process(target=target, args=(*args, pipes[i][1]) if pipes else args, daemon=False)
        for i in range(count)
    ]
    for proc in procs:
        proc.start()
    for _, sender in pipes:
        sender.close()  # the workers' copies remain: a worker that dies closes its own

    def forward(sig: int, _frame: object) -> None:
        for proc in procs:
            if proc.pid and proc.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, sig)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    if on_ready is not None:
        _await_ready([receiver for receiver, _ in pipes], count, on_ready)
    code = 0
    for proc in procs:
        proc.join()
        if proc.pid is not None:
            metrics.worker_exited(proc.pid)
        code = code or (proc.exitcode or 0)
    return code


def _await_ready(
    receivers: list[Connection], count: int, on_ready: Callable[[list[int], int], None]
) -> None:
    """Until every worker said it serves, or exited before it did (its pipe closes)."""
    pids: list[int] = []
    waiting = list(receivers)
    while waiting:
        for receiver in connection.wait(waiting):
            assert isinstance(receiver, Connection)
            waiting.remove(receiver)
            try:
                pids.append(int(receiver.recv()))
            except EOFError:
                continue
            finally:
                receiver.close()
            on_ready(pids, count)
    if len(pids) < count:
        log.warning("%d of %d workers serving: the others exited first", len(pids), count)


async def run_worker(
    settings: Settings,
    cwmp_sock: socket.socket,
    api_sock: socket.socket,
    ready: Callable[[], None] | None = None,
    *,
    stun_sock: socket.socket | None = None,
) -> None:
    """One worker: both apps on one event loop (and the STUN server, the XMPP session when
    set), until SIGINT/SIGTERM; ``ready()`` once both apps serve."""
    runtime = await Runtime.start(settings, migrate_sqlite=False)
    if runtime.stun is not None and stun_sock is not None:
        await runtime.stun.start(stun_sock)
    xmpp = asyncio.create_task(runtime.xmpp.run(), name="acs-xmpp") if runtime.xmpp else None
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
        runtime.stopping.set()  # event streams end, so that the servers can drain
        for server in servers:
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)

    def started() -> None:
        if ready is not None and all(server.started for server in servers):
            ready()

    for server in servers:
        server.on_started = started
    scheduler.start()
    monitor = asyncio.create_task(metrics.WorkerMonitor(runtime.db).run(), name="acs-monitor")
    try:
        await asyncio.gather(
            servers[0].serve(sockets=[cwmp_sock]), servers[1].serve(sockets=[api_sock])
        )
    finally:
        monitor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await monitor
        if xmpp is not None:
            xmpp.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await xmpp
        await scheduler.stop()
        await runtime.close()


def _worker_entry(
    settings: Settings,
    cwmp_sock: socket.socket,
    api_sock: socket.socket,
    stun_sock: socket.socket | None,
    ready: Connection,
) -> None:
    configure_logging(settings)

    def serving() -> None:
        ready.send(os.getpid())
        ready.close()

    serving_worker = run_worker(settings, cwmp_sock, api_sock, serving, stun_sock=stun_sock)
    run_loop(serving_worker, settings.event_loop)


async def prepare(settings: Settings) -> str:
    """Migrate SQLite, make sure secrets exist; returns the shared CPE password."""
    db = Database(settings.resolved_database_url)
    try:
        await db.probe(create=True)  # SQLite: created and migrated on first start
        if db.is_sqlite:
            await migrate.upgrade(db)
        await check_schema(db)
        await param_index.ensure_indexes(db, settings.indexed_parameter_list)
        return (await load_secrets(db, settings)).cwmp_password
    finally:
        await db.dispose()


class ListenerUnavailable(Exception):
    """A listener's address cannot be bound; the message names it and says what to do."""


# Why a bind failed, and what to do about it, by errno.
_BIND_ERRORS = {
    errno.EADDRINUSE: (
        "the port is in use (another acs, or another program, listens there)",
        "stop it, or choose another port with {port_setting}",
    ),
    errno.EACCES: (
        "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)",
        "choose another port with {port_setting}",
    ),
    errno.EADDRNOTAVAIL: (
        "no interface of this host has that address",
        "fix ACS_BIND (--bind)",
    ),
}


def bind_listeners(settings: Settings) -> tuple[socket.socket, socket.socket]:
    """The CWMP and management sockets, bound and listening; ``ListenerUnavailable`` names
    the one that cannot be."""
    listeners = (
        ("CWMP listener", settings.cwmp_port, "ACS_CWMP_PORT (--cwmp-port)"),
        ("management API", settings.api_port, "ACS_API_PORT (--api-port)"),
    )
    if settings.cwmp_port == settings.api_port != 0:
        raise ListenerUnavailable(
            f"the CWMP listener and the management API are both on port {settings.cwmp_port}: "
            "give them different ports (ACS_CWMP_PORT, ACS_API_PORT)"
        )
    socks: list[socket.socket] = []
    try:
        for name, port, port_setting in listeners:
            try:
                socks.append(bind(settings.bind, port))
            except OSError as exc:
                raise _unavailable(name, settings.bind, port, port_setting, exc) from exc
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks[0], socks[1]


def _unavailable(
    name: str, host: str, port: int, port_setting: str, exc: OSError, kind: str = ""
) -> ListenerUnavailable:
    """One line: which listener, where, why, and what to do."""
    address = f"{kind}[{host}]:{port}" if ":" in host else f"{kind}{host}:{port}"
    why, fix = _BIND_ERRORS.get(
        exc.errno or 0, (exc.strerror or str(exc), "fix ACS_BIND or {port_setting}")
    )
    return ListenerUnavailable(
        f"{name}: cannot listen on {address}: {why}; " + fix.format(port_setting=port_setting)
    )


def bind_stun(settings: Settings) -> socket.socket | None:
    """The STUN server's UDP socket (``None`` when ACS_STUN_PORT is unset), shared by every
    worker; ``ListenerUnavailable`` names it when it cannot be bound."""
    if settings.stun_port is None:
        return None
    host = settings.bind
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # no SO_REUSEADDR: on UDP it would let a second server bind the port and steal datagrams
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, settings.stun_port))
    except OSError as exc:
        sock.close()
        raise _unavailable(
            "STUN server", host, settings.stun_port, "ACS_STUN_PORT", exc, "udp "
        ) from exc
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings) -> int:
    configure_logging(settings)
    if settings.cwmp_auth == "basic" and not (
        settings.cwmp_tls or settings.cwmp_allow_basic_over_http
    ):
        log.error(
            "ACS_CWMP_AUTH=basic needs TLS (ACS_CWMP_TLS_CERTFILE/KEYFILE) or "
            "ACS_CWMP_ALLOW_BASIC_OVER_HTTP=true"
        )
        return 2
    # The ports first: a port in use must not leave a new data directory and database behind.
    try:
        cwmp_sock, api_sock = bind_listeners(settings)
    except ListenerUnavailable as exc:
        log.error("%s", exc)
        return 2
    try:
        stun_sock = bind_stun(settings)
    except ListenerUnavailable as exc:
        log.error("%s", exc)
        cwmp_sock.close()
        api_sock.close()
        return 2
    log.info("using %s", settings.storage)
    try:
        password = asyncio.run(prepare(settings))
    except DatabaseUnavailable as exc:
        log.error("%s (%s)", exc, settings.storage)
        return 2
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)  # the file store's
    except OSError as exc:
        log.error(
            "cannot create the data dir %s: %s; choose a writable --data-dir (ACS_DATA_DIR)",
            settings.data_dir.resolve(),
            exc.strerror or exc,
        )
        return 2
    scheme = "https" if settings.cwmp_tls else "http"
    host = f"[{settings.bind}]" if ":" in settings.bind else settings.bind
    cpe_password = "<from ACS_CWMP_PASSWORD>" if settings.cwmp_password else password

    def ready(pids: list[int], count: int) -> None:
        """Both listeners serve once the first worker does; the count once all do."""
        if len(pids) == 1:
            log.info(
                "CWMP listener: %s://%s:%d/ (auth %s; CPE credentials %s / %s)",
                scheme,
                host,
                cwmp_sock.getsockname()[1],
                settings.cwmp_auth,
                settings.cwmp_username,
                cpe_password,
            )
            log.info("management API: http://%s:%d/api/v1/docs", host, api_sock.getsockname()[1])
            if stun_sock is not None:
                log.info(
                    "STUN server: udp %s:%d (TR-111; devices keep their binding every %d s)",
                    host,
                    stun_sock.getsockname()[1],
                    settings.stun_keepalive,
                )
            if settings.xmpp_jid:
                log.info(
                    "XMPP: one worker of the cluster signs in as %s (%s)",
                    settings.xmpp_jid,
                    settings.xmpp_server or "the domain's server",
                )
        if len(pids) == count:
            log.info(
                "%d worker%s serving (pid%s %s)",
                count,
                "" if count == 1 else "s",
                "" if count == 1 else "s",
                ", ".join(str(p) for p in sorted(pids)),
            )

    if settings.workers == 1:
        with contextlib.suppress(KeyboardInterrupt):
            serving = run_worker(
                settings,
                cwmp_sock,
                api_sock,
                lambda: ready([os.getpid()], 1),
                stun_sock=stun_sock,
            )
            run_loop(serving, settings.event_loop)
        return 0
    with _metrics_dir():
        return run_processes(
            _worker_entry,
            (settings, cwmp_sock, api_sock, stun_sock),
            settings.workers,
            on_ready=ready,
        )


@contextlib.contextmanager
def _metrics_dir() -> Iterator[None]:
    """Workers count into files of a directory of their own (prometheus_client's multiprocess
    mode), made before they start and removed after: a scrape of any worker reads them all."""
    path = tempfile.mkdtemp(prefix="acs-metrics-")
    os.environ[metrics.MULTIPROC_ENV] = path  # the spawned workers inherit it
    try:
        yield
    finally:
        os.environ.pop(metrics.MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)
