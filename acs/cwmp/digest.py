"""HTTP Digest (RFC 7616, with RFC 2617/2069 compatibility) and Basic, with no I/O.

Nonces are stateless: ``<hex seconds>.<hex salt>.<hex HMAC>``, the HMAC (SHA-256, server
secret) binding time, salt, realm and an optional binding string (we bind to the device
id, since a CPE reconnects after a 401 and its TCP connection cannot be bound). Any
process with the secret verifies any nonce, so a session may hop between workers and
nodes. Time is passed in by the caller; nothing here reads a clock.

Replay: a nonce is good for ``lifetime`` seconds. Many CPEs reuse one nonce for a whole
session with ``nc=00000001`` every time; the lenient default accepts that within the
lifetime. Strict checking of increasing ``nc`` needs shared state and lives in the
service layer, which gets the parsed ``nc`` from ``DigestCredentials``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from urllib.parse import urlsplit

ALGORITHMS: Final = ("MD5", "SHA-256")


def equal(given: str, expected: str) -> bool:
    """Whether a string a client sent is ours, in constant time. ``hmac.compare_digest``
    raises TypeError for text with non-ASCII characters (a header may carry any byte), so
    their UTF-8 bytes are compared: a refusal, never an exception."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


_HASHES: Final = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def _h(algorithm: str, data: str) -> str:
    return _HASHES[algorithm](data.encode()).hexdigest()


def ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """HA1 = H(username:realm:password): what we store instead of a CPE's password."""
    return _h(_base_algorithm(algorithm), f"{username}:{realm}:{password}")


def _base_algorithm(algorithm: str) -> str:
    base = algorithm.upper().removesuffix("-SESS")
    if base not in _HASHES:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    return base


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    """The parameters of a ``Authorization: Digest ...`` header."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None

    @property
    def nonce_count(self) -> int | None:
        try:
            return int(self.nc, 16) if self.nc else None
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class BasicCredentials:
    username: str
    password: str


_QUOTED_PAIR: Final = re.compile(r"\\(.)")
_PARAM_RE: Final = re.compile(
    r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*(?:,|$)'
)


def parse_authorization(header: str | None) -> DigestCredentials | BasicCredentials | None:
    """Parse an Authorization header; ``None`` when absent, unknown or unreadable."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "basic":
        try:
            raw = base64.b64decode(rest.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        username, sep, password = text.partition(":")
        return BasicCredentials(username, password) if sep else None
    if scheme != "digest":
        return None
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        match = _PARAM_RE.match(rest, pos)
        if not match or match.end() == pos:
            return None
        key = match.group(1).lower()
        quoted, bare = match.group(2), match.group(3)
        if quoted is None:
            params[key] = bare
        else:  # quoted-pair unescaping (RFC 7230 3.2.6); most values have no backslash
            params[key] = _QUOTED_PAIR.sub(r"\1", quoted) if "\\" in quoted else quoted
        pos = match.end()
    try:
        return DigestCredentials(
            username=params["username"],
            realm=params["realm"],
            nonce=params["nonce"],
            uri=params["uri"],
            response=params["response"].lower(),
            algorithm=(params.get("algorithm") or "MD5").upper(),
            qop=(params.get("qop") or None),
            nc=params.get("nc"),
            cnonce=params.get("cnonce"),
            opaque=params.get("opaque"),
        )
    except KeyError:
        return None


class Verdict(StrEnum):
    OK = "ok"
    STALE = "stale"  # right password, expired nonce: challenge again with stale=true
    BAD_NONCE = "bad_nonce"  # not one of ours, or bound to another device
    BAD_RESPONSE = "bad_response"  # wrong password (or user, realm, method...)
    UNSUPPORTED = "unsupported"  # algorithm or qop we do not do


class NonceAuthority:
    """Issues and verifies stateless nonces and checks Digest responses."""

    def __init__(self, secret: bytes, realm: str, *, lifetime: float = 300.0):
        self.secret = secret
        self.realm = realm
        self.lifetime = lifetime
        self.opaque = hmac.new(secret, b"opaque:" + realm.encode(), "sha256").hexdigest()[:32]

    def _mac(self, payload: str, binding: str) -> str:
        data = f"{payload}:{self.realm}:{binding}".encode()
        return hmac.new(self.secret, data, "sha256").hexdigest()[:32]

    def make_nonce(self, now: float, binding: str = "") -> str:
        payload = f"{int(now):x}.{secrets.token_hex(6)}"
        return f"{payload}.{self._mac(payload, binding)}"

    def nonce_age(self, nonce: str, now: float, binding: str = "") -> float | None:
        """Seconds since the nonce was issued, or ``None`` if it is not ours/not bound."""
        payload, _, mac = nonce.rpartition(".")
        if not payload or not equal(mac, self._mac(payload, binding)):
            return None
        try:
            issued = int(payload.partition(".")[0], 16)
        except ValueError:
            return None
        return now - issued

    def challenge(
        self,
        now: float,
        *,
        binding: str = "",
        stale: bool = False,
        algorithms: Iterable[str] = ALGORITHMS,
    ) -> list[str]:
        """``WWW-Authenticate`` values, one per algorithm, in the order given.

        Most CPEs know only MD5 and read one challenge, the first or the last, so which are
        offered and in what order is the operator's choice (``ACS_CWMP_DIGEST_ALGORITHMS``,
        MD5 alone by default), not RFC 7616's SHA-256 first.
        """
        nonce = self.make_nonce(now, binding)
        tail = ", stale=true" if stale else ""
        return [
            f'Digest realm="{self.realm}", qop="auth", algorithm={alg}, '
            f'nonce="{nonce}", opaque="{self.opaque}"{tail}'
            for alg in algorithms
        ]

    def verify(
        self,
        creds: DigestCredentials,
        *,
        method: str,
        ha1_by_algorithm: dict[str, str],
        now: float,
        binding: str = "",
        allow_no_qop: bool = True,
        request_path: str | None = None,
    ) -> Verdict:
        """Check a Digest answer against stored HA1 values (keyed ``MD5``/``SHA-256``).

        The response is checked before the nonce's age, so that a right answer to an
        expired nonce yields ``STALE`` (RFC 7616 3.3) and a wrong one ``BAD_RESPONSE``.
        """
        try:
            base = _base_algorithm(creds.algorithm)
        except ValueError:
            return Verdict.UNSUPPORTED
        stored = ha1_by_algorithm.get(base)
        if stored is None:
            return Verdict.UNSUPPORTED
        age = self.nonce_age(creds.nonce, now, binding)
        if age is None:
            return Verdict.BAD_NONCE
        if creds.realm != self.realm:
            return Verdict.BAD_RESPONSE
        if request_path is not None and not uri_matches(creds.uri, request_path):
            return Verdict.BAD_RESPONSE
        qop = (creds.qop or "").lower()
        if qop == "auth":
            if not creds.nc or creds.cnonce is None:
                return Verdict.BAD_RESPONSE
        elif qop or not allow_no_qop:
            return Verdict.UNSUPPORTED
        expected = compute_response(
            creds.algorithm,
            stored,
            nonce=creds.nonce,
            nc=creds.nc,
            cnonce=creds.cnonce,
            qop=qop or None,
            method=method,
            uri=creds.uri,
        )
        if not equal(creds.response, expected):
            return Verdict.BAD_RESPONSE
        if age > self.lifetime or age < -60:  # allow a minute of clock skew between nodes
            return Verdict.STALE
        return Verdict.OK


def compute_response(
    algorithm: str,
    ha1_value: str,
    *,
    nonce: str,
    nc: str | None,
    cnonce: str | None,
    qop: str | None,
    method: str,
    uri: str,
) -> str:
    """The ``response`` a client computes (RFC 7616 3.4.1; RFC 2069 without qop)."""
    base = _base_algorithm(algorithm)
    key = ha1_value
    if algorithm.upper().endswith("-SESS"):
        key = _h(base, f"{ha1_value}:{nonce}:{cnonce or ''}")
    ha2 = _h(base, f"{method}:{uri}")
    if qop:
        return _h(base, f"{key}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _h(base, f"{key}:{nonce}:{ha2}")


def uri_matches(digest_uri: str, request_path: str) -> bool:
    """Whether the ``uri`` a client hashed names the path it requested.

    CPEs send the path (``/acs``), the path and query, or the absolute URL; all are fine
    as long as the path is the one requested, so an answer cannot be replayed elsewhere.
    """
    path = urlsplit(digest_uri).path if "://" in digest_uri else digest_uri.partition("?")[0]
    return (path or "/").rstrip("/") == (request_path or "/").rstrip("/")


def basic_matches(creds: BasicCredentials, realm: str, ha1_md5: str) -> bool:
    """Check Basic credentials against a stored MD5 HA1 (we never keep the password)."""
    return hmac.compare_digest(ha1("MD5", creds.username, realm, creds.password), ha1_md5)


# --- the client side: connection requests to CPEs, and the simulated CPEs ------------------

_CHALLENGE_PARAM = re.compile(r'\s*,?\s*([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*')
_CHALLENGE_SCHEME = re.compile(r"\s*,?\s*([A-Za-z][\w-]*)(?:\s+|$)")


def parse_challenges(values: Iterable[str]) -> list[tuple[str, dict[str, str]]]:
    """``WWW-Authenticate`` values as (scheme, params); one header may hold several."""
    out: list[tuple[str, dict[str, str]]] = []
    for value in values:
        pos = 0
        current: dict[str, str] | None = None
        while pos < len(value):
            param = _CHALLENGE_PARAM.match(value, pos)
            if param and current is not None:
                quoted, bare = param.group(2), param.group(3)
                current[param.group(1).lower()] = (
                    re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
                )
                pos = param.end()
                continue
            scheme = _CHALLENGE_SCHEME.match(value, pos)
            if not scheme or scheme.end() == pos:
                break
            current = {}
            out.append((scheme.group(1).capitalize(), current))
            pos = scheme.end()
    return out


def client_authorization(
    challenge: dict[str, str], username: str, password: str, *, method: str, uri: str, nc: int = 1
) -> str:
    """The ``Authorization: Digest`` answering one challenge (params from
    ``parse_challenges``), with qop=auth when offered. ValueError for an algorithm we lack."""
    algorithm = challenge.get("algorithm", "MD5")
    realm, nonce = challenge.get("realm", ""), challenge.get("nonce", "")
    qops = [q.strip().lower() for q in challenge.get("qop", "").split(",") if q.strip()]
    qop = "auth" if "auth" in qops else None
    count = f"{nc:08x}"
    cnonce = secrets.token_hex(8)
    response = compute_response(
        algorithm,
        ha1(algorithm, username, realm, password),
        nonce=nonce,
        nc=count,
        cnonce=cnonce,
        qop=qop,
        method=method,
        uri=uri,
    )
    header = (
        f'Digest username="{username}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'response="{response}", algorithm={algorithm}'
    )
    if qop:
        header += f', qop={qop}, nc={count}, cnonce="{cnonce}"'
    if "opaque" in challenge:
        header += f', opaque="{challenge["opaque"]}"'
    return header


def udp_signature(password: str, ts: str, message_id: str, username: str, cnonce: str) -> str:
    """``sig`` of a UDP connection request (TR-069 Annex G.2.2.1): HMAC-SHA1 over ts, id, un
    and cn, keyed with the connection-request password, in upper-case hex."""
    text = f"{ts}{message_id}{username}{cnonce}"
    return hmac.new(password.encode(), text.encode(), hashlib.sha1).hexdigest().upper()
