"""Connection requests: ask a CPE to open a session now (TR-069 3.2.2, Annex G / TR-111).

HTTP: a GET to the device's ConnectionRequestURL, answering its Digest or Basic challenge
with the connection-request credentials the ACS set on it. UDP (for CPEs behind NAT that
report UDPConnectionRequestAddress): the signed ``ts, id, un, cn, sig`` message, sent a
few times since UDP may drop it. The outcome is recorded on the device.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import secrets
import socket
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select, update

from acs import logs
from acs.config import Settings
from acs.cwmp import digest, xsd
from acs.db import tables
from acs.db.engine import Database
from acs.services import metrics
from acs.services.devices import DeviceNotFound
from acs.services.secretbox import SecretBox

log = logging.getLogger("acs.connreq")


@dataclass(frozen=True, slots=True)
class PokeResult:
    ok: bool
    method: str  # "http", "udp" or "none"
    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    time: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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


async def udp_connection_request(
    address: str, username: str, password: str, repeats: int
) -> PokeResult:
    now = datetime.now(UTC)
    started = time.monotonic()
    try:
        host, port = split_address(address)
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (ValueError, OSError) as exc:
        return PokeResult(False, "udp", None, None, f"unreachable: {exc}", xsd.format_datetime(now))
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
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        for i in range(repeats):
            sock.sendto(message, sockaddr)
            if i + 1 < repeats:
                await asyncio.sleep(0.05)
    except OSError as exc:
        return PokeResult(False, "udp", None, None, f"unreachable: {exc}", xsd.format_datetime(now))
    finally:
        sock.close()
    latency = round((time.monotonic() - started) * 1000, 1)
    # UDP has no answer: "ok" means sent; the Inform that follows is the proof.
    return PokeResult(True, "udp", None, latency, None, xsd.format_datetime(now))


class ConnectionRequester:
    def __init__(self, db: Database, box: SecretBox, settings: Settings):
        self.db = db
        self.box = box
        self.settings = settings

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

    async def poke(self, device_id: str) -> PokeResult:
        """Send a connection request to a device and record the outcome on it."""
        d = tables.devices
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(
                        d.c.connection_request_url,
                        d.c.udp_connection_request_address,
                        d.c.cr_username,
                        d.c.cr_password_enc,
                    ).where(d.c.id == device_id)
                )
            ).first()
        if row is None:
            raise DeviceNotFound(device_id)
        username = row.cr_username or None
        password = None
        if row.cr_password_enc:
            try:
                password = self.box.open(row.cr_password_enc)
            except ValueError:
                log.warning("%s: connection request password cannot be opened", device_id)
        if row.udp_connection_request_address and username and password:
            result = await udp_connection_request(
                row.udp_connection_request_address,
                username,
                password,
                self.settings.udp_connection_request_repeats,
            )
        elif row.connection_request_url:
            result = await http_connection_request(
                row.connection_request_url,
                username,
                password,
                self.settings.connection_request_timeout,
            )
        else:
            result = PokeResult(
                False,
                "none",
                error="the device reported no ConnectionRequestURL",
                time=xsd.format_datetime(datetime.now(UTC)),
            )
        async with self.db.write() as conn:
            await conn.execute(
                update(d).where(d.c.id == device_id).values(cr_result=result.as_dict())
            )
        metrics.CONNECTION_REQUESTS.labels(result.method, "ok" if result.ok else "failed").inc()
        if log.isEnabledFor(logging.INFO):
            if result.method == "udp":
                target: str | None = row.udp_connection_request_address
            else:
                target = _where(row.connection_request_url)
            log.info(
                "connection request",
                extra=logs.fields(
                    device=device_id,
                    via=result.method,
                    target=target,
                    outcome="ok" if result.ok else "failed",
                    status=result.status_code,
                    error=result.error,
                    latency_ms=result.latency_ms,
                ),
            )
        return result


def _where(url: str | None) -> str | None:
    """A ConnectionRequestURL without its query (some CPEs put a token there)."""
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
