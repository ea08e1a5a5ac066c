"""The FTP listener: provisioning files for phones given ``ftp://user:password@acs/...`` URLs.

aioftp runs the protocol (control connections, USER/PASS, PASV/EPSV, TYPE, REST, PWD) on the
worker's event loop, accepting on the socket ``acs serve`` bound (``ACS_FTP_PORT``) and
shares between its workers, like the HTTP listeners. What touches files is ours: RETR and
SIZE serve the one namespace of ``acs.services.provisioning_files``; CWD takes any safe
path (directories mean nothing there, as in ``/prov/``); LIST, NLST and MLSD list nothing
(the namespace is not enumerable, over HTTP either); every command that writes gets 550.
aioftp's own filesystem layer is an empty in-memory one, so no command reaches the disk.

A login is the shared CPE pair or a phone's own provisioning credentials, checked as Digest
HA1s; what each may fetch is ``provisioning_files.may_read``'s to say. A source that fails 10
times in a minute is refused for the rest of it. Passive data connections take their ports from
``ACS_FTP_PASSIVE_PORTS`` and announce ``ACS_FTP_PASSIVE_ADDRESS`` (behind NAT); aioftp has
no active mode (PORT/EPRT), nor do phones need it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import time
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Final, cast

import aioftp

from acs import logs
from acs.db.errors import UNAVAILABLE
from acs.provisioning.errors import ProvisioningError
from acs.services import provisioning_files as pf
from acs.services.runtime import Runtime
from acs.services.throttle import FailureThrottle

log = logging.getLogger("acs.ftp")

WELCOME: Final = "acs provisioning files (read-only)"
READ_ONLY: Final = "read-only: files are uploaded through the management API"
# Seconds: a command awaited, a socket read or write, a client connecting to its data port.
IDLE_TIMEOUT: Final = 120.0
SOCKET_TIMEOUT: Final = 60.0
DATA_CONNECTION_TIMEOUT: Final = 15.0


class _Account(aioftp.User):
    """A USER not yet (or now) logged in; ``login_as`` says how once PASS succeeded."""

    def __init__(self, login: str):
        super().__init__(login, home_path=PurePosixPath("/"))
        self.login_as: pf.Requester | None = None


class _Accounts(aioftp.AbstractUserManager):
    """Any USER gets asked for a password; PASS is checked by the server (``_Server.pass_``),
    which knows the client's address for the failure throttle."""

    async def get_user(
        self, login: str
    ) -> tuple[aioftp.AbstractUserManager.GetUserResponse, aioftp.User | None, str]:
        return self.GetUserResponse.PASSWORD_REQUIRED, _Account(login), "password required"

    async def authenticate(self, user: aioftp.User, password: str) -> bool:
        raise NotImplementedError("PASS is _Server.pass_'s")

    async def notify_logout(self, user: aioftp.User) -> None:
        return None


Connection = aioftp.Connection


class _Server(aioftp.Server):
    def __init__(self, listener: FtpListener):
        settings = listener.settings
        super().__init__(
            _Accounts(),
            socket_timeout=SOCKET_TIMEOUT,
            idle_timeout=IDLE_TIMEOUT,
            wait_future_timeout=DATA_CONNECTION_TIMEOUT,
            # typed for Path, made for PurePosixPath: aioftp's own pairing of the two
            path_io_factory=cast("type[aioftp.AbstractPathIO[Path]]", aioftp.MemoryPathIO),
            ipv4_pasv_forced_response_address=settings.ftp_passive_address,
            data_ports=settings.ftp_passive_port_range,
            welcome_message=WELCOME,
        )
        self.listener = listener
        self.failures = FailureThrottle()
        commands: dict[str, Any] = {
            "cwd": self.cwd,
            "feat": self.feat,
            "list": self.list,
            "mlsd": self.list,
            "nlst": self.list,
            "noop": self.noop,
            "pass": self.pass_,
            "retr": self.retr,
            "size": self.size,
        }
        for write in ("appe", "dele", "mkd", "rmd", "rnfr", "rnto", "site", "stor", "stou"):
            commands[write] = functools.partial(self.refuse_write, write.upper())
        self.commands_mapping.update(commands)
        self.commands_mapping.pop("mlst")  # answered "502 not implemented"

    async def start_on(self, sock: socket.socket) -> None:
        """Accept on a bound, listening socket (``Server.start`` binds its own, and would
        hand ``sock`` on to every passive data listener)."""
        self._start_server_extra_arguments = {}
        self.connections = {}
        self.server_host, self.server_port = sock.getsockname()[:2]
        self.server = await asyncio.start_server(self.dispatcher, sock=sock)

    async def parse_command(
        self, stream: aioftp.StreamIO, censor_commands: tuple[str] = ("pass",)
    ) -> tuple[str, str]:
        """aioftp's, with its ending quiet: a phone that closes its control connection ends
        this read with ConnectionResetError, which aioftp's dispatcher handles when it
        looks, but leaves unretrieved after QUIT (asyncio then logs it as an error)."""
        task = asyncio.current_task()
        if task is not None:
            task.add_done_callback(_retrieve)
        return await super().parse_command(stream, censor_commands)

    async def pasv(self, connection: Connection, rest: str | PurePosixPath) -> bool:
        _unmap(connection)
        return await super().pasv(connection, rest)

    async def epsv(self, connection: Connection, rest: str | PurePosixPath) -> bool:
        _unmap(connection)
        return await super().epsv(connection, rest)

    # --- login --------------------------------------------------------------------------------

    async def pass_(self, connection: Connection, rest: str) -> bool:
        if not connection.future.user.done():
            connection.response("503", "send USER first")
            return True
        if connection.future.logged.done():
            connection.response("503", "already logged in")
            return True
        client = str(connection.client_host)
        wait = self.failures.retry_after(client)
        if wait:
            connection.response("530", f"too many failed logins: try again in {wait} s")
            return True
        account: _Account = connection.user
        try:
            login = await self.listener.runtime.provisioning_files.login(account.login or "", rest)
        except UNAVAILABLE as exc:
            log.error(
                "FTP login of %r from %s: storage unavailable: %s", account.login, client, exc
            )
            connection.response("421", "service unavailable, try again later")
            return False
        if login is None:
            failures = self.failures.failed(client)
            if failures in (1, self.failures.limit):
                log.warning(
                    "FTP login refused",
                    extra=logs.fields(user=account.login, client=client, failures=failures),
                )
            connection.response("530", "wrong username or password")
            return True
        self.failures.succeeded(client)
        account.login_as = login
        connection.logged = True
        connection.response("230", "logged in")
        return True

    # --- what touches files -------------------------------------------------------------------

    async def cwd(self, connection: Connection, rest: str | PurePosixPath) -> bool:
        if not _ready(connection):
            return True
        path = _path(connection, rest)
        try:
            pf.split_path(str(path) + "/x")  # every segment a safe name
        except pf.BadName:
            connection.response("550", f"no directory {str(rest)!r}")
            return True
        connection.current_directory = path
        connection.response("250", f'directory is "{path}"')
        return True

    async def size(self, connection: Connection, rest: str | PurePosixPath) -> bool:
        if not _ready(connection):
            return True
        path = str(_path(connection, rest))
        try:
            found = await self._open(connection, path)
        except _Refused as refused:
            connection.response(refused.code, refused.message)
            return True
        connection.opened = (path, found)  # RETR sends these bytes, of this size
        connection.response("213", str(found.size))
        return True

    async def retr(self, connection: Connection, rest: str | PurePosixPath) -> bool:
        if not _ready(connection, data=True):
            return True
        started = time.perf_counter()
        path = str(_path(connection, rest))
        opened = connection.opened if connection.future.opened.done() else None
        del connection.opened
        offset = connection.restart_offset
        try:
            if opened is not None and opened[0] == path:
                found = opened[1]
            else:
                found = await self._open(connection, path)
        except _Refused as refused:
            connection.response(refused.code, refused.message)
            self._record(
                connection,
                path,
                started,
                refused.outcome,
                int(refused.code),
                0,
                None,
                refused.reason,
            )
            return True
        connection.response("150", f"sending {found.name} ({found.size} bytes)")
        send = asyncio.create_task(self._send(connection, path, found, offset, started))
        connection.extra_workers.add(send)
        return True

    async def _send(
        self,
        connection: Connection,
        path: str,
        found: pf.ProvisioningFile,
        offset: int,
        started: float,
    ) -> bool:
        sent = 0
        try:
            try:
                await asyncio.wait_for(
                    asyncio.shield(connection.future.data_connection),
                    connection.wait_future_timeout,
                )
            except TimeoutError:
                connection.response("425", "no data connection")
                self._record(
                    connection,
                    path,
                    started,
                    pf.Outcome.ABORTED,
                    425,
                    0,
                    found,
                    "no data connection",
                )
                return True
            stream = connection.data_connection
            del connection.data_connection
            reader = self.listener.runtime.provisioning_files.reader(found, offset)
            try:
                async with stream:
                    while chunk := await reader.read():
                        await stream.write(chunk)
                        sent += len(chunk)
            finally:
                reader.close()
        except asyncio.CancelledError:  # ABOR, or the control connection closed
            connection.response("426", "transfer aborted")
            connection.response("226", "abort successful")
            self._record(connection, path, started, pf.Outcome.ABORTED, 426, sent, found, "aborted")
            return True
        except (OSError, TimeoutError) as exc:
            connection.response("426", "connection closed; transfer aborted")
            self._record(
                connection,
                path,
                started,
                pf.Outcome.ABORTED,
                426,
                sent,
                found,
                str(exc) or type(exc).__name__,
            )
            return True
        connection.response("226", "transfer complete")
        self._record(connection, path, started, pf.Outcome.OK, 226, sent, found, None)
        return True

    async def list(self, connection: Connection, rest: str | PurePosixPath) -> bool:
        if not _ready(connection, data=True):
            return True

        async def empty() -> bool:
            try:
                await asyncio.wait_for(
                    asyncio.shield(connection.future.data_connection),
                    connection.wait_future_timeout,
                )
            except TimeoutError:
                connection.response("425", "no data connection")
                return True
            stream = connection.data_connection
            del connection.data_connection
            async with stream:
                pass
            connection.response("226", "nothing listed: ask for files by name")
            return True

        connection.extra_workers.add(asyncio.create_task(empty()))
        connection.response("150", "listing")
        return True

    async def refuse_write(
        self, command: str, connection: Connection, rest: str | PurePosixPath
    ) -> bool:
        if not _ready(connection):
            return True
        connection.response("550", READ_ONLY)
        path = str(_path(connection, rest))
        self._record(
            connection,
            path,
            time.perf_counter(),
            pf.Outcome.REFUSED,
            550,
            0,
            None,
            READ_ONLY,
            command,
        )
        return True

    async def feat(self, connection: Connection, rest: str | PurePosixPath) -> bool:
        connection.response(
            "211", ["features:", "SIZE", "REST STREAM", "EPSV", "PASV", "end"], True
        )
        return True

    async def noop(self, connection: Connection, rest: str | PurePosixPath) -> bool:
        connection.response("200", "ok")
        return True

    # --- inside -------------------------------------------------------------------------------

    async def _open(self, connection: Connection, path: str) -> pf.ProvisioningFile:
        account: _Account = connection.user
        login = account.login_as
        assert login is not None
        try:
            return await self.listener.runtime.provisioning_files.open(
                path,
                base_url=self.listener.base_url(str(connection.server_host)),
                now=datetime.now(UTC),
                requester=login,
            )
        except pf.NotYours as exc:
            raise _Refused(
                "550", str(exc), pf.Outcome.REFUSED, "a MAC file these credentials may not read"
            ) from None
        except pf.NoSuchFile as exc:
            raise _Refused("550", str(exc), pf.Outcome.NOT_FOUND) from None
        except pf.BadName as exc:
            raise _Refused("550", str(exc), pf.Outcome.INVALID) from None
        except ProvisioningError as exc:
            log.warning("provisioning %s: %s", path, exc)
            raise _Refused("550", str(exc), pf.Outcome.INVALID) from None
        except UNAVAILABLE as exc:
            log.error("FTP %s: storage unavailable: %s", path, exc)
            raise _Refused(
                "451", "storage unavailable, try again later", pf.Outcome.UNAVAILABLE
            ) from None

    def _record(
        self,
        connection: Connection,
        path: str,
        started: float,
        outcome: pf.Outcome,
        status: int,
        sent: int,
        found: pf.ProvisioningFile | None,
        reason: str | None,
        method: str = "RETR",
    ) -> None:
        account: _Account = connection.user
        login = account.login_as
        auth = None if login is None else str(login)
        pf.record(
            pf.Transfer(
                protocol="ftp",
                file=path,
                client=str(connection.client_host),
                method=method,
                outcome=outcome,
                status=status,
                bytes=sent,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
                mac=(found.mac if found is not None else None)
                or (login.mac if login is not None else None),  # the device, when known
                auth=auth,
                reason=reason,
            ),
        )


class _Refused(Exception):
    def __init__(self, code: str, message: str, outcome: pf.Outcome, reason: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.outcome = outcome
        self.reason = reason


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


class _QuietClosing(logging.Filter):
    """aioftp logs a phone that closed its connection as "dispatcher caught exception" with
    a traceback: a normal end, not an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ConnectionError))


logging.getLogger("aioftp.server").addFilter(_QuietClosing())


def _unmap(connection: Connection) -> None:
    """An IPv4 client of a dual-stack listener (ACS_BIND=::) reached ``::ffff:a.b.c.d``: its
    passive listener is made on ``a.b.c.d`` (asyncio's IPv6 sockets take no mapped address),
    which PASV can announce too."""
    host = str(connection.server_host)
    if host.startswith("::ffff:") and "." in host:
        connection.server_host = host.removeprefix("::ffff:")


def _ready(connection: Connection, *, data: bool = False) -> bool:
    """Logged in (and, for a command that sends data, a passive listener made): else the
    answer that says what is missing."""
    if not connection.future.logged.done():
        connection.response("530", "not logged in")
        return False
    if data and not connection.future.passive_server.done():
        connection.response("503", "bad sequence of commands: send PASV or EPSV first")
        return False
    return True


def _path(connection: Connection, rest: str | PurePosixPath) -> PurePosixPath:
    """The path a command names, from the current directory. ``..`` is kept (and refused by
    the namespace), not resolved: aioftp's own resolution would clamp it at the root."""
    path = PurePosixPath(str(rest) or ".")
    return path if path.is_absolute() else connection.current_directory / path


class FtpListener:
    """FTP on ``sock`` for one worker (see the module docstring)."""

    def __init__(self, runtime: Runtime, sock: socket.socket):
        self.runtime = runtime
        self.settings = runtime.settings
        self.sock = sock
        self.server = _Server(self)

    async def start(self) -> None:
        await self.server.start_on(self.sock)

    async def close(self) -> None:
        """Stop accepting; connections and transfers in flight end."""
        await self.server.close()

    def base_url(self, local: str) -> str:
        """Where the phone reaches the CPE-facing HTTP listener (for a configuration's URLs):
        ``ACS_PUBLIC_URL``, else the address it reached this FTP listener at."""
        host = (
            local.removeprefix("::ffff:") if local.startswith("::ffff:") and "." in local else local
        )
        return self.settings.cwmp_base_url(host)
