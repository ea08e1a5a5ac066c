"""``acs serve``: the listeners in each of N worker processes sharing the bound sockets.

The parent binds the CWMP sockets (HTTP, and HTTPS with a certificate: one app on both) and
the management socket (and TFTP's, FTP's and SIP PnP's when their ports are set; SIP PnP's
joins its multicast group), checks the certificate, migrates an SQLite database, then runs
one worker itself (N=1) or spawns N workers that inherit the sockets; the kernel spreads
connections (and TFTP and SIP datagrams) between them.
Workers share nothing but the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

import uvicorn

from acs import logs, tls
from acs.config import Settings
from acs.db import migrate, param_index
from acs.db.engine import Database
from acs.db.errors import DatabaseUnavailable
from acs.listeners import sip, tftp
from acs.listeners.ftp import FtpListener
from acs.listeners.sip import SipPnpListener
from acs.listeners.tftp import TftpListener
from acs.scheduler import Scheduler
from acs.services import metrics
from acs.services.runtime import Runtime, check_schema, load_secrets
from acs.sip.pnp import GROUP
from acs.supervisor import RestartPolicy, Supervisor
from acs.web.api_app import create_api_app
from acs.web.cwmp_app import create_cwmp_app
from acs.web.guard import ConnectionGuard, ConnectionLimits, guarded_protocol

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


SOMAXCONN = Path("/proc/sys/net/core/somaxconn")
# Linux's own somaxconn since 5.4, for kernels that do not say (or say nothing usable).
DEFAULT_BACKLOG = 4096


def accept_backlog(somaxconn: Path = SOMAXCONN) -> int:
    """The listeners' accept queue: as long as the kernel allows (``somaxconn``; listen()
    cuts anything longer to it), so that a boot storm's burst of connections waits to be
    accepted instead of being dropped (SYNs dropped cost a CPE a 1 s, 3 s... retransmit)."""
    try:
        value = int(somaxconn.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return DEFAULT_BACKLOG
    return value if value > 0 else DEFAULT_BACKLOG


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
    sock.listen(accept_backlog())
    sock.set_inheritable(True)
    return sock


def configure_logging(settings: Settings) -> None:
    logs.configure(settings.log_level, settings.log_format)


# How every listener runs (bench/ceiling.py uses the same, so that it measures the same HTTP).
# No WebSocket: nothing of acs speaks it, and an upgraded connection would leave the guard.
UVICORN_OPTIONS: dict[str, Any] = {
    "log_config": None,
    "access_log": False,
    "lifespan": "off",
    "timeout_keep_alive": 30,
    "server_header": False,
    "proxy_headers": False,
    "ws": "none",
}


def listener_config(app: Any, guard: ConnectionGuard, **extra: Any) -> uvicorn.Config:
    """A listener's uvicorn configuration: ``UVICORN_OPTIONS``, its connections under
    ``guard`` (acs.web.guard: read deadlines, a cap per source, idle connections bounded;
    the CWMP listener's HTTP and HTTPS sockets share one)."""
    # uvicorn calls listen() again on the sockets it is handed, with its own backlog (2048)
    options = {"backlog": accept_backlog(), **UVICORN_OPTIONS, **extra}
    return uvicorn.Config(app, http=guarded_protocol(guard), **options)


def https_options(settings: Settings) -> dict[str, Any]:
    """``uvicorn.Config`` options of the CWMP listener's HTTPS side: our own ``SSLContext``
    (``acs.tls``: ACS_TLS_MIN_VERSION), made in the worker (a context does not pickle)."""
    assert settings.cwmp_tls_certfile is not None and settings.cwmp_tls_keyfile is not None
    context = tls.server_context(
        settings.cwmp_tls_certfile, settings.cwmp_tls_keyfile, settings.tls_min_version
    )
    return {"ssl_context_factory": lambda _config, _default: context}


def run_processes(
    target: Callable[..., None],
    args: tuple[Any, ...],
    count: int,
    *,
    on_ready: Callable[[list[int], int], None] | None = None,
    policy: RestartPolicy | None = None,
) -> int:
    """Run ``target(*args, ready)`` in ``count`` spawned processes (they inherit the sockets
    in ``args``; ``ready``: a connection on which each sends its pid once it serves), forward
    SIGINT/SIGTERM to them, respawn one that dies (``acs.supervisor``), and wait; the exit
    status (non-zero: a worker could not stay up, or exited so when stopped)."""
    supervisor = Supervisor(target, args, count, policy=policy, on_ready=on_ready)

    def forward(sig: int, _frame: object) -> None:
        supervisor.stop(sig)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    return supervisor.run()


@dataclass
class Sockets:
    """The listeners' sockets, bound by the parent and inherited by every worker."""

    cwmp: socket.socket | None  # HTTP; None: ACS_CWMP_HTTP=false
    api: socket.socket
    cwmp_tls: socket.socket | None = None  # HTTPS, with a certificate configured
    tftp: socket.socket | None = None  # UDP
    ftp: socket.socket | None = None
    sip: socket.socket | None = None  # UDP, SIP PnP
    sip_group: socket.socket | None = None  # bound to the PnP group (ACS_BIND an address)
    sip_multicast: str | None = None  # where the group was joined; None: not joined
    stun: socket.socket | None = None  # UDP, the STUN server (and UDP connection requests)

    @property
    def sip_sockets(self) -> list[socket.socket]:
        return [sock for sock in (self.sip, self.sip_group) if sock is not None]


async def run_worker(
    settings: Settings, sockets: Sockets, ready: Callable[[], None] | None = None
) -> None:
    """One worker: every listener on one event loop, until SIGINT/SIGTERM; ``ready()`` once
    all serve."""
    runtime = await Runtime.start(settings, migrate_sqlite=False, warn=False)
    if runtime.stun is not None and sockets.stun is not None:
        await runtime.stun.start(sockets.stun)
    xmpp = asyncio.create_task(runtime.xmpp.run(), name="acs-xmpp") if runtime.xmpp else None
    scheduler = Scheduler(runtime, settings.scheduler_interval)
    limits = ConnectionLimits.of(settings)
    cwmp_app, cwmp_guard = create_cwmp_app(runtime), ConnectionGuard(limits, "cwmp")
    # (server, its socket): the CWMP app on HTTP and on HTTPS (scope["scheme"] tells it
    # which), then the management API
    listening: list[tuple[_Server, socket.socket]] = []
    if sockets.cwmp is not None:
        listening.append((_Server(listener_config(cwmp_app, cwmp_guard)), sockets.cwmp))
    if sockets.cwmp_tls is not None:
        config = listener_config(cwmp_app, cwmp_guard, **https_options(settings))
        listening.append((_Server(config), sockets.cwmp_tls))
    api = ConnectionGuard(limits, "api")
    listening.append((_Server(listener_config(create_api_app(runtime), api)), sockets.api))
    servers = [server for server, _ in listening]
    # What exists now (modules, apps, the runtime) lives as long as the worker: out of the
    # garbage collector's sight, a full collection, which holds the GIL and so the event
    # loop, scans only what requests made (a whole tree in one answer: 300 ms -> tens).
    gc.collect()
    gc.freeze()
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
    # TFTP and FTP serve before the HTTP listeners do, so "ready" covers them.
    tftp_listener = TftpListener(runtime, sockets.tftp) if sockets.tftp is not None else None
    ftp_listener = FtpListener(runtime, sockets.ftp) if sockets.ftp is not None else None
    sip_listener = SipPnpListener(runtime, sockets.sip_sockets) if sockets.sip else None
    scheduler.start()
    monitor = asyncio.create_task(metrics.WorkerMonitor(runtime.db).run(), name="acs-monitor")
    try:
        if tftp_listener is not None:
            tftp_listener.start()
        if ftp_listener is not None:
            await ftp_listener.start()
        if sip_listener is not None:
            sip_listener.start()
        await asyncio.gather(*(server.serve(sockets=[sock]) for server, sock in listening))
    finally:
        monitor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await monitor
        if tftp_listener is not None:
            await tftp_listener.close()
        if ftp_listener is not None:
            await ftp_listener.close()
        if sip_listener is not None:
            await sip_listener.close()
        if xmpp is not None:
            xmpp.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await xmpp
        await scheduler.stop()
        await runtime.close()


def _worker_entry(settings: Settings, sockets: Sockets, ready: Connection) -> None:
    configure_logging(settings)

    def serving() -> None:
        ready.send(os.getpid())
        ready.close()

    run_loop(run_worker(settings, sockets, serving), settings.event_loop)


async def prepare(settings: Settings) -> str | None:
    """Migrate SQLite, make sure secrets exist; returns the shared CPE password if this start
    generated it (said once: only its HA1 is kept)."""
    db = Database(settings.resolved_database_url)
    try:
        await db.probe(create=True)  # SQLite: created and migrated on first start
        if db.is_sqlite:
            await migrate.upgrade(db)
        await check_schema(db)
        await param_index.ensure_indexes(db, settings.indexed_parameter_list)
        return (await load_secrets(db, settings)).shared.generated
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


def bind_listeners(settings: Settings) -> Sockets:
    """The listeners' sockets, bound (TCP ones listening); ``ListenerUnavailable`` names the
    one that cannot be."""
    listeners: list[tuple[str, int, str, Callable[[str, int], socket.socket]]] = []
    if settings.cwmp_http:
        listeners.append(("CWMP listener", settings.cwmp_port, "ACS_CWMP_PORT (--cwmp-port)", bind))
    if settings.cwmp_tls:
        listeners.append(
            ("CWMP listener (HTTPS)", settings.cwmp_tls_port, "ACS_CWMP_TLS_PORT", bind)
        )
    listeners.append(("management API", settings.api_port, "ACS_API_PORT (--api-port)", bind))
    if settings.ftp_port is not None:
        listeners.append(("FTP listener", settings.ftp_port, "ACS_FTP_PORT (--ftp-port)", bind))
    if settings.tftp_port is not None:
        listeners.append(
            ("TFTP listener", settings.tftp_port, "ACS_TFTP_PORT (--tftp-port)", tftp.bind)
        )
    if settings.sip_pnp_port is not None:
        listeners.append(
            (
                "SIP PnP responder",
                settings.sip_pnp_port,
                "ACS_SIP_PNP_PORT (--sip-pnp-port)",
                tftp.bind,  # a UDP socket like TFTP's
            )
        )
    if settings.stun_port is not None:
        listeners.append(("STUN server", settings.stun_port, "ACS_STUN_PORT", bind_stun))
    for tcp in (True, False):
        same = [(n, port, s) for n, port, s, binder in listeners if (binder is bind) == tcp]
        for i, (name, port, setting) in enumerate(same):
            for other, other_port, other_setting in same[:i]:
                if port == other_port != 0:
                    raise ListenerUnavailable(
                        f"the {other} and the {name} are both on port {port}: give them "
                        f"different ports ({other_setting.split()[0]}, {setting.split()[0]})"
                    )
    socks: list[socket.socket] = []
    try:
        for name, port, port_setting, binder in listeners:
            try:
                socks.append(binder(settings.bind, port))
            except OSError as exc:
                raise _unavailable(name, settings.bind, port, port_setting, exc) from exc
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    by_name = dict(zip((name for name, *_ in listeners), socks, strict=True))
    sockets = Sockets(
        by_name.get("CWMP listener"),
        by_name["management API"],
        cwmp_tls=by_name.get("CWMP listener (HTTPS)"),
        tftp=by_name.get("TFTP listener"),
        ftp=by_name.get("FTP listener"),
        sip=by_name.get("SIP PnP responder"),
        stun=by_name.get("STUN server"),
    )
    if sockets.sip is not None and settings.sip_pnp_multicast:
        try:
            sockets.sip_group, sockets.sip_multicast = sip.join(sockets.sip)
        except sip.MulticastUnavailable as exc:
            log.warning(
                "SIP PnP responder: cannot join the multicast group %s (%s): only phones "
                "given this server's address are answered; ACS_SIP_PNP_MULTICAST=false "
                "says so without this warning",
                GROUP,
                exc,
            )
    return sockets


def _unavailable(
    name: str, host: str, port: int, port_setting: str, exc: OSError
) -> ListenerUnavailable:
    """One line: which listener, where, why, and what to do."""
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    why, fix = _BIND_ERRORS.get(
        exc.errno or 0, (exc.strerror or str(exc), "fix ACS_BIND or {port_setting}")
    )
    return ListenerUnavailable(
        f"{name}: cannot listen on {address}: {why}; " + fix.format(port_setting=port_setting)
    )


def bind_stun(host: str, port: int) -> socket.socket:
    """The STUN server's UDP socket, shared by every worker. No SO_REUSEADDR: on UDP it would
    let a second server bind the port and steal datagrams."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
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
    if (
        settings.cwmp_auth == "basic"
        and settings.cwmp_http
        and settings.cwmp_tls
        and not settings.cwmp_allow_basic_over_http
    ):
        log.warning(
            "ACS_CWMP_AUTH=basic: CPEs on the HTTP port are refused (Basic only over TLS); "
            "ACS_CWMP_HTTP=false closes that port, ACS_CWMP_ALLOW_BASIC_OVER_HTTP=true "
            "accepts them"
        )
    if settings.cwmp_tls:
        try:
            https_options(settings)  # each worker makes its own; a bad pair is said here once
        except tls.TlsUnavailable as exc:
            log.error("CWMP listener (HTTPS): %s", exc)
            return 2
    # The ports first: a port in use must not leave a new data directory and database behind.
    try:
        sockets = bind_listeners(settings)
    except ListenerUnavailable as exc:
        log.error("%s", exc)
        return 2
    log.info("using %s", settings.storage)
    try:
        password = asyncio.run(prepare(settings))
    except DatabaseUnavailable as exc:
        log.error("%s (%s)", exc, settings.storage)
        return 2
    shown: list[bool] = []  # the CWMP line (with a generated password) was said

    def unshown() -> None:
        """A password generated at this start is shown once, when acs serves: if it never
        did, say it now (only its hash is kept; `acs cpe-password reset` is the way out)."""
        if password is not None and not shown:
            log.error(
                "the shared CPE password generated at this start, not shown since acs did "
                "not serve: %s / %s (note it)",
                settings.cwmp_username,
                password,
            )

    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)  # the file store's
    except OSError as exc:
        log.error(
            "cannot create the data dir %s: %s; choose a writable --data-dir (ACS_DATA_DIR)",
            settings.data_dir.resolve(),
            exc.strerror or exc,
        )
        unshown()
        return 2
    host = f"[{settings.bind}]" if ":" in settings.bind else settings.bind
    if settings.cwmp_password:
        cpe_said = "<from ACS_CWMP_PASSWORD>"
    elif password is not None:
        cpe_said = f"{password} (generated now and shown this once: note it)"
    else:
        cpe_said = "<shown when generated; `acs cpe-password reset` makes a new one>"
    cwmp_urls = [
        f"{scheme}://{host}:{sock.getsockname()[1]}/"
        for scheme, sock in (("http", sockets.cwmp), ("https", sockets.cwmp_tls))
        if sock is not None
    ]
    tls_versions = f"; TLS {settings.tls_min_version} and up" if sockets.cwmp_tls else ""

    def ready(pids: list[int], count: int) -> None:
        """Every listener serves once the first worker does; the count once all do."""
        if len(pids) == 1:
            shown.append(True)
            log.info(
                "CWMP listener: %s (auth %s; CPE credentials %s / %s%s)",
                " and ".join(cwmp_urls),
                settings.cwmp_auth,
                settings.cwmp_username,
                cpe_said,
                tls_versions,
            )
            log.info("management API: http://%s:%d/api/v1/docs", host, sockets.api.getsockname()[1])
            if sockets.tftp is not None:
                log.info(
                    "TFTP listener: tftp://%s:%d/ (read-only; allowed: %s)",
                    host,
                    sockets.tftp.getsockname()[1],
                    ", ".join(str(n) for n in settings.tftp_networks),
                )
            if sockets.ftp is not None:
                log.info(
                    "FTP listener: ftp://%s:%d/ (read-only; passive data ports %s; "
                    "provisioning auth %s)",
                    host,
                    sockets.ftp.getsockname()[1],
                    settings.ftp_passive_ports or "any",
                    settings.provisioning_auth,
                )
            if sockets.sip is not None:
                log.info(
                    "SIP PnP responder: sip:%s:%d (%s; answers %s with %s)",
                    host,
                    sockets.sip.getsockname()[1],
                    f"multicast {GROUP} on {sockets.sip_multicast}"
                    if sockets.sip_multicast
                    else "unicast only",
                    _sip_pnp_phones(settings),
                    settings.sip_pnp_url
                    or settings.cwmp_base_url("<address reached>") + "/prov/$mac.cfg",
                )
            if sockets.stun is not None:
                log.info(
                    "STUN server: udp %s:%d (TR-111; devices keep their binding every %d s)",
                    host,
                    sockets.stun.getsockname()[1],
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

    try:
        if settings.workers == 1:
            with contextlib.suppress(KeyboardInterrupt):
                serving = run_worker(settings, sockets, lambda: ready([os.getpid()], 1))
                run_loop(serving, settings.event_loop)
            return 0
        with _metrics_dir():
            return run_processes(
                _worker_entry, (settings, sockets), settings.workers, on_ready=ready
            )
    finally:
        unshown()


def _sip_pnp_phones(settings: Settings) -> str:
    """Which phones the SIP PnP responder answers, for the start-up line."""
    which = []
    if settings.sip_pnp_mac_prefix_list:
        which.append("MACs " + ",".join(settings.sip_pnp_mac_prefix_list))
    if settings.sip_pnp_model_list:
        which.append("models " + ",".join(settings.sip_pnp_model_list))
    if settings.sip_pnp_known_only:
        which.append("the ACS's phones")
    return " and ".join(which) or "every phone"


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
