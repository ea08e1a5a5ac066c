"""Connection requests: ask a CPE to open a session now (TR-069 3.2.2, Annex G / TR-111,
Annex K).

Three paths, tried in the operator's order (``ACS_CONNECTION_REQUEST_ORDER``, default http,
udp, xmpp) among those the device has:

* HTTP: a GET to the device's ConnectionRequestURL, answering its Digest or Basic challenge
  with the connection-request credentials the ACS set on it. A URL on a private address
  other than the one the device informs from (or a device reporting NATDetected) sits behind
  a NAT: tried only after the paths that can get through.
* UDP (TR-069 Annex G, TR-111): the signed ``ts, id, un, cn, sig`` message, sent a few times
  since UDP may drop it, to the NAT binding the STUN server saw while it is fresh (else to
  the UDPConnectionRequestAddress the device reported), from the STUN server's socket.
* XMPP (Annex K): the connectionRequest IQ to the device's ConnReqJabberID, over the one
  XMPP session of the cluster (``acs.services.xmpp``).

A path that gets no answer gives way to the next; an answer from the device (a 401 over
HTTP, an XMPP not-authorized) settles it. The outcome, the path that settled it, why, and
every path considered are recorded on the device (``cr_result``) and shown by the API.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import logging
import re
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from sqlalchemy import literal_column, select, update

from acs import logs
from acs.config import Settings
from acs.cwmp import datamodel, digest, xsd
from acs.db import param_index, tables
from acs.db.engine import Database
from acs.services import metrics
from acs.services.devices import DeviceNotFound
from acs.services.secretbox import SecretBox
from acs.services.stun import StunServer, fresh_for

log = logging.getLogger("acs.connreq")


@dataclass(frozen=True, slots=True)
class PokeResult:
    """A connection request's outcome: the path that settled it (``method``), why that path
    (``reason``), and each path considered in order (``attempts``: tried or skipped, why)."""

    ok: bool
    method: str  # "http", "udp", "xmpp" or "none"
    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    time: str = ""
    target: str | None = None
    reason: str = ""
    attempts: tuple[dict[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["attempts"] = list(self.attempts)
        return out


def authorization(
    challenges: list[tuple[str, dict[str, str]]], username: str, password: str, uri: str
) -> str | None:
    """An Authorization header answering the best challenge we can (Digest over Basic)."""
    digests = [p for scheme, p in challenges if scheme == "Digest"]
    # prefer SHA-256 when the CPE offers it, else the first (usually MD5)
    digests.sort(key=lambda p: 0 if p.get("algorithm", "MD5").upper().startswith("SHA-256") else 1)
    for params in digests:
        try:
            return digest.client_authorization(params, username, password, method="GET", uri=uri)
        except ValueError:
            continue
    if any(scheme == "Basic" for scheme, _ in challenges):
        return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    return None


async def http_connection_request(
    url: str, username: str | None, password: str | None, seconds: float
) -> PokeResult:
    started = time.monotonic()
    now = xsd.format_datetime(datetime.now(UTC))

    def result(ok: bool, status: int | None = None, error: str | None = None) -> PokeResult:
        latency = round((time.monotonic() - started) * 1000, 1)
        return PokeResult(ok, "http", status, latency, error, now)

    parts = urlsplit(url)
    uri = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        async with httpx.AsyncClient(timeout=seconds, follow_redirects=False, trust_env=False) as c:
            response = await c.get(url)
            if response.status_code == 401:
                challenges = digest.parse_challenges(response.headers.get_list("www-authenticate"))
                if not username:
                    return result(
                        False,
                        401,
                        "auth refused: no connection request credentials known for this device",
                    )
                header = authorization(challenges, username, password or "", uri)
                if header is None:
                    return result(False, 401, "auth refused: no challenge we can answer")
                response = await c.get(url, headers={"authorization": header})
    except httpx.TimeoutException:
        return result(False, None, "timeout")
    except (httpx.HTTPError, OSError) as exc:
        return result(False, None, f"unreachable: {exc or type(exc).__name__}")
    code = response.status_code
    if code in (200, 204):
        return result(True, code)
    if code == 401:
        return result(False, code, "auth refused: the device rejected our credentials")
    if code == 503:
        return result(False, code, "device busy (503): already in a session or rate-limited")
    return result(False, code, f"unexpected status {code}")


def udp_message(
    host: str, port: int, username: str, password: str, *, ts: int, message_id: int, cnonce: str
) -> bytes:
    """The UDP connection request of TR-069 Annex G.2.2.1 (an HTTP GET line, signed)."""
    sig = digest.udp_signature(password, str(ts), str(message_id), username, cnonce)
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return (
        f"GET http://{authority}?ts={ts}&id={message_id}&un={username}&cn={cnonce}&sig={sig} "
        f"HTTP/1.1\r\nHost: {authority}\r\n\r\n"
    ).encode()


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` / ``[v6]:port`` as reported in UDPConnectionRequestAddress."""
    match = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:]+):(\d+)|([^:]+)", address.strip())
    if not match:
        raise ValueError(f"bad UDPConnectionRequestAddress {address!r}")
    host = match.group(1) or match.group(3) or match.group(5)
    port = int(match.group(2) or match.group(4) or 80)
    return host, port


# Sends one datagram: from the STUN server's socket (a NAT that filters by address and port
# lets in only what comes from where its binding was made), or from a socket of its own.
UdpSender = Callable[[bytes, str, int], None]


async def udp_connection_request(
    address: str,
    username: str,
    password: str,
    repeats: int,
    *,
    sender: UdpSender | None = None,
) -> PokeResult:
    """Send the Annex G message ``repeats`` times, 50 ms apart (UDP may drop some)."""
    now = datetime.now(UTC)
    started = time.monotonic()

    def failed(exc: Exception) -> PokeResult:
        return PokeResult(
            False, "udp", None, None, f"unreachable: {exc}", xsd.format_datetime(now), address
        )

    try:
        host, port = split_address(address)
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (ValueError, OSError) as exc:
        return failed(exc)
    family, _, _, _, sockaddr = infos[0]
    message = udp_message(
        host,
        port,
        username,
        password,
        ts=int(now.timestamp()),
        message_id=secrets.randbelow(2**31),
        cnonce=secrets.token_hex(8),
    )
    sock = None
    try:
        if sender is None:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setblocking(False)
        for i in range(repeats):
            if sender is not None:
                sender(message, str(sockaddr[0]), int(sockaddr[1]))
            else:
                assert sock is not None
                sock.sendto(message, sockaddr)
            if i + 1 < repeats:
                await asyncio.sleep(0.05)
    except OSError as exc:
        return failed(exc)
    finally:
        if sock is not None:
            sock.close()
    latency = round((time.monotonic() - started) * 1000, 1)
    # UDP has no answer: "ok" means sent; the Inform that follows is the proof.
    return PokeResult(True, "udp", None, latency, None, xsd.format_datetime(now), address)


class XmppRequester(Protocol):
    """Sends the XMPP connection request (``acs.services.xmpp``), wherever its session is."""

    async def connection_request(
        self, device_id: str, jid: str, username: str, password: str, seconds: float
    ) -> PokeResult: ...


# What one path makes of a device: ready (try it, in the operator's order), unlikely (try it
# only after every ready one: e.g. a ConnectionRequestURL behind a NAT), or none (skip).
READY, UNLIKELY, NONE = "ready", "unlikely", "none"

# CPEs behind a NAT report a ConnectionRequestURL on their private side (RFC 1918 and the
# carrier-grade NAT's shared space, RFC 6598): unreachable unless the ACS is on that network.
_SHARED_SPACE = ipaddress.ip_network("100.64.0.0/10")


@dataclass(frozen=True, slots=True)
class _Plan:
    via: str
    kind: str  # READY, UNLIKELY or NONE
    target: str | None
    reason: str


def _private(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name: nothing to say about it
    return (ip.is_private and not ip.is_loopback) or ip in _SHARED_SPACE


def _ago(now: datetime, then: datetime) -> str:
    return f"{max(0, round((now - then).total_seconds()))} s ago"


class ConnectionRequester:
    def __init__(
        self,
        db: Database,
        box: SecretBox,
        settings: Settings,
        *,
        stun: StunServer | None = None,
        xmpp: XmppRequester | None = None,
    ):
        self.db = db
        self.box = box
        self.settings = settings
        self.stun = stun
        self.xmpp = xmpp

    async def poke_many(self, device_ids: list[str], concurrency: int = 32) -> int:
        """Poke many devices, a bounded number at a time; returns how many answered."""
        limit = asyncio.Semaphore(concurrency)

        async def one(device_id: str) -> bool:
            async with limit:
                try:
                    return (await self.poke(device_id)).ok
                except DeviceNotFound:
                    return False

        return sum(await asyncio.gather(*(one(d) for d in device_ids)))

    async def _device(self, device_id: str) -> Any:
        d, n = tables.devices, tables.nat_traversal
        dialect = self.db.dialect

        def parameter(name: str) -> Any:
            # the value the device reported, under either root object
            paths = datamodel.under_roots(f"ManagementServer.{name}")
            exprs = ", ".join(param_index.value_expression(dialect, p) for p in paths)
            return literal_column(f"COALESCE({exprs})").label(name)

        async with self.db.read() as conn:
            return (
                await conn.execute(
                    select(
                        d.c.connection_request_url,
                        d.c.udp_connection_request_address,
                        d.c.cr_username,
                        d.c.cr_password_enc,
                        d.c.ip,
                        n.c.stun_host,
                        n.c.stun_port,
                        n.c.stun_seen,
                        parameter("ConnReqJabberID"),
                        parameter("NATDetected"),
                    )
                    .select_from(d.outerjoin(n, n.c.device_id == d.c.id))
                    .where(d.c.id == device_id)
                )
            ).first()

    async def nat_view(self, device_id: str, now: datetime) -> dict[str, Any] | None:
        """What the ACS knows of the device behind a NAT: its STUN binding (fresh or not),
        its XMPP account, what was provisioned; ``None`` if nothing."""
        n = tables.nat_traversal
        async with self.db.read() as conn:
            row = (await conn.execute(select(n).where(n.c.device_id == device_id))).first()
        if row is None:
            return None
        binding = None
        if row.stun_host and row.stun_port:
            host = f"[{row.stun_host}]" if ":" in row.stun_host else row.stun_host
            binding = f"{host}:{row.stun_port}"
        fresh = fresh_for(self.settings.stun_keepalive)
        return {
            "stun_username": row.stun_username,
            "stun_binding": binding,
            "stun_seen": row.stun_seen,
            "stun_changed": row.stun_changed,
            "stun_fresh": bool(binding and row.stun_seen and now - row.stun_seen <= fresh),
            "xmpp_jid": row.xmpp_jid,
            "xmpp_account": row.xmpp_account,
            "provisioned": row.provisioned,
        }

    def _judge(self, row: Any, credentials: bool, now: datetime) -> dict[str, _Plan]:
        """Each path, judged for this device: ready, unlikely or none, and why."""
        plans: dict[str, _Plan] = {}
        url = row.connection_request_url
        if not url:
            plans["http"] = _Plan("http", NONE, None, "the device reported no ConnectionRequestURL")
        else:
            host = urlsplit(url).hostname or ""
            target = _where(url)
            if str(row.NATDetected).lower() in ("true", "1"):
                plans["http"] = _Plan(
                    "http", UNLIKELY, target, "the device reports NATDetected: behind a NAT"
                )
            elif _private(host) and host != row.ip:
                plans["http"] = _Plan(
                    "http",
                    UNLIKELY,
                    target,
                    f"its host {host} is a private address and the device informs from "
                    f"{row.ip}: behind a NAT",
                )
            else:
                plans["http"] = _Plan("http", READY, target, "the device's ConnectionRequestURL")
        fresh = fresh_for(self.settings.stun_keepalive)
        binding = f"{row.stun_host}:{row.stun_port}" if row.stun_host and row.stun_port else None
        if ":" in (row.stun_host or ""):
            binding = f"[{row.stun_host}]:{row.stun_port}"
        reported = row.udp_connection_request_address
        if not credentials:
            plans["udp"] = _Plan("udp", NONE, None, "no connection request credentials known")
        elif binding and row.stun_seen is not None and now - row.stun_seen <= fresh:
            plans["udp"] = _Plan(
                "udp", READY, binding, f"STUN binding {binding} seen {_ago(now, row.stun_seen)}"
            )
        elif binding and reported:
            plans["udp"] = _Plan(
                "udp",
                UNLIKELY,
                reported,
                f"the STUN binding was last seen {_ago(now, row.stun_seen)} (stale after "
                f"{fresh.total_seconds():g} s); UDPConnectionRequestAddress {reported} as "
                "the device reported it",
            )
        elif binding:
            plans["udp"] = _Plan(
                "udp",
                NONE,
                None,
                f"the STUN binding {binding} was last seen {_ago(now, row.stun_seen)} "
                f"(stale after {fresh.total_seconds():g} s)",
            )
        elif reported:
            plans["udp"] = _Plan(
                "udp", READY, reported, f"UDPConnectionRequestAddress {reported} (reported)"
            )
        else:
            plans["udp"] = _Plan(
                "udp", NONE, None, "no STUN binding and no UDPConnectionRequestAddress"
            )
        jid = row.ConnReqJabberID
        if self.xmpp is None:
            plans["xmpp"] = _Plan("xmpp", NONE, None, "XMPP is off (ACS_XMPP_JID)")
        elif not jid:
            plans["xmpp"] = _Plan("xmpp", NONE, None, "the device reported no ConnReqJabberID")
        elif not credentials:
            plans["xmpp"] = _Plan("xmpp", NONE, None, "no connection request credentials known")
        else:
            plans["xmpp"] = _Plan("xmpp", READY, str(jid), f"ConnReqJabberID {jid}")
        return plans

    async def _attempt(
        self, plan: _Plan, device_id: str, row: Any, username: str | None, password: str | None
    ) -> PokeResult:
        assert plan.target is not None
        if plan.via == "http":
            return await http_connection_request(
                row.connection_request_url,
                username,
                password,
                self.settings.connection_request_timeout,
            )
        assert username is not None and password is not None
        if plan.via == "udp":
            # from the STUN socket whenever it listens: a binding made with it lets in only
            # what comes from it (NATs filtering by address and port), any other no less
            stun = self.stun if self.stun is not None and self.stun.transport else None
            return await udp_connection_request(
                plan.target,
                username,
                password,
                self.settings.udp_connection_request_repeats,
                sender=stun.send if stun is not None else None,
            )
        assert self.xmpp is not None
        return await self.xmpp.connection_request(
            device_id, plan.target, username, password, self.settings.connection_request_timeout
        )

    async def poke(self, device_id: str) -> PokeResult:
        """Send a connection request to a device, over the paths of
        ``ACS_CONNECTION_REQUEST_ORDER`` it has (see ``_judge``) until one reaches it,
        and record the outcome on it."""
        row = await self._device(device_id)
        if row is None:
            raise DeviceNotFound(device_id)
        now = datetime.now(UTC)
        username = row.cr_username or None
        password = None
        if row.cr_password_enc:
            try:
                password = self.box.open(row.cr_password_enc)
            except ValueError:
                log.warning("%s: connection request password cannot be opened", device_id)
        judged = self._judge(row, bool(username and password), now)
        order = [judged[via] for via in self.settings.connection_request_paths]
        plans = [p for p in order if p.kind == READY] + [p for p in order if p.kind == UNLIKELY]
        skipped = [
            {"via": p.via, "outcome": "skipped", "detail": p.reason}
            for p in order
            if p.kind == NONE
        ]
        attempts: list[dict[str, Any]] = []
        result: PokeResult | None = None
        for plan in plans:
            result = replace(
                await self._attempt(plan, device_id, row, username, password),
                target=plan.target,
                reason=plan.reason,
            )
            attempts.append(
                {
                    "via": plan.via,
                    "outcome": "ok" if result.ok else "failed",
                    "detail": result.error or plan.reason,
                }
            )
            if result.ok or not _try_next(result):
                break
        if result is None:
            why = "; ".join(f"{a['via']}: {a['detail']}" for a in skipped)
            result = PokeResult(
                False,
                "none",
                error=f"no way to reach the device ({why})",
                time=xsd.format_datetime(now),
            )
        result = replace(result, attempts=tuple(attempts + skipped))
        async with self.db.write() as conn:
            await conn.execute(
                update(tables.devices)
                .where(tables.devices.c.id == device_id)
                .values(cr_result=result.as_dict())
            )
        metrics.CONNECTION_REQUESTS.labels(result.method, "ok" if result.ok else "failed").inc()
        if log.isEnabledFor(logging.INFO):
            log.info(
                "connection request",
                extra=logs.fields(
                    device=device_id,
                    via=result.method,
                    target=result.target,
                    outcome="ok" if result.ok else "failed",
                    status=result.status_code,
                    error=result.error,
                    reason=result.reason or None,
                    tried=",".join(a["via"] for a in attempts) or None,
                    latency_ms=result.latency_ms,
                ),
            )
        return result


def _try_next(result: PokeResult) -> bool:
    """Whether a failed attempt leaves the device unreached: no answer (another path may get
    through), as opposed to an answer from the device itself (a 401 or 503 over HTTP, an
    XMPP not-authorized: another path would reach the same device, with the same outcome)."""
    if result.method == "http":
        return result.status_code is None
    if result.method == "xmpp":
        return not (result.error or "").startswith("not-authorized")
    return True


def _where(url: str | None) -> str | None:
    """A ConnectionRequestURL without its query (some CPEs put a token there)."""
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
