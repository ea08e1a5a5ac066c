"""Authentication of CPEs on the CWMP listener: Digest (default), Basic, or none.

Credentials are the shared pair from settings, unless the device has its own (stored as
HA1 per algorithm), which then override it. While a pair the ACS gave the device is pending
(``acs.services.policy.device_credentials``), it is accepted besides the usual one: the
username the device offers picks which. Nonces are bound to the device id, so a nonce
issued to one device cannot be used by another.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from acs.config import Settings
from acs.cwmp import digest
from acs.db import hot, queries


@dataclass(frozen=True, slots=True)
class DeviceCredentials:
    username: str
    ha1: dict[str, str]  # by algorithm: {"MD5": ..., "SHA-256": ...}


def device_credentials(
    username: str | None, ha1_md5: str | None, ha1_sha256: str | None
) -> DeviceCredentials | None:
    if not username or not ha1_md5:
        return None
    ha1 = {"MD5": ha1_md5}
    if ha1_sha256:
        ha1["SHA-256"] = ha1_sha256
    return DeviceCredentials(username, ha1)


def hash_credentials(username: str, password: str, realm: str) -> dict[str, str]:
    """The HA1 values to store for a device's own credentials."""
    return {alg: digest.ha1(alg, username, realm, password) for alg in digest.ALGORITHMS}


@dataclass(frozen=True, slots=True)
class AuthOutcome:
    ok: bool
    reason: str = ""
    challenge: list[str] = field(default_factory=list)  # WWW-Authenticate values
    nonce: str | None = None
    nonce_count: int | None = None
    scheme: Literal["digest", "basic", "none"] = "none"
    username: str | None = None  # the pair that verified (None: no authentication)
    # a refusal that is the normal first step (no credentials yet, or a stale nonce), not
    # wrong credentials: logged at DEBUG
    expected: bool = False


Mode = Literal["digest", "basic", "any", "none"]


class CpeAuthenticator:
    """Checks a device's Authorization header. ``mode``: ``digest`` challenges Digest and
    takes Basic where allowed (over TLS, or over HTTP with ``allow_basic_over_http``), as
    CPEs that send it pre-emptively need; ``basic`` challenges and takes Basic only; ``any``
    challenges both (Basic only where allowed) and takes either; ``none`` takes anyone.
    The CWMP endpoint's is ``ACS_CWMP_AUTH``'s; the file server's ``for_provisioning``."""

    def __init__(
        self,
        settings: Settings,
        secret: bytes,
        shared: DeviceCredentials,
        *,
        mode: Mode | None = None,
        allow_basic_over_http: bool | None = None,
    ):
        self.mode: Mode = settings.cwmp_auth if mode is None else mode
        self.realm = settings.cwmp_realm
        self.strict = settings.cwmp_digest_strict
        self.allow_basic_over_http = (
            settings.cwmp_allow_basic_over_http
            if allow_basic_over_http is None
            else allow_basic_over_http
        )
        self.algorithms = settings.digest_algorithms
        self.lifetime = settings.cwmp_nonce_lifetime
        self.authority = digest.NonceAuthority(secret, self.realm, lifetime=self.lifetime)
        self.shared = shared  # HA1s only: the shared password is never kept in clear

    @classmethod
    def for_provisioning(
        cls, settings: Settings, secret: bytes, shared: DeviceCredentials
    ) -> CpeAuthenticator:
        """The file server's: ``ACS_PROVISIONING_AUTH`` and
        ``ACS_PROVISIONING_ALLOW_BASIC_OVER_HTTP``, the CWMP realm and shared pair."""
        return cls(
            settings,
            secret,
            shared,
            mode=settings.provisioning_auth,
            allow_basic_over_http=settings.provisioning_allow_basic_over_http,
        )

    def check(
        self,
        authorization: str | None,
        *,
        method: str,
        path: str,
        tls: bool,
        credentials: DeviceCredentials | None,
        binding: str,
        now: float,
        pending: DeviceCredentials | None = None,
    ) -> AuthOutcome:
        """Verify an Authorization header against the device's (or shared) credentials, or
        the ``pending`` pair the ACS gave it when the header names its username."""
        if self.mode == "none":
            return AuthOutcome(ok=True)
        expected = credentials or self.shared
        parsed = digest.parse_authorization(authorization)
        if pending is not None and parsed is not None and parsed.username == pending.username:
            expected = pending
        basic_allowed = tls or self.allow_basic_over_http
        if isinstance(parsed, digest.BasicCredentials):
            if not basic_allowed:
                return self._refuse(
                    "Basic credentials over plain HTTP are refused", now, binding, tls=tls
                )
            if parsed.username == expected.username and digest.basic_matches(
                parsed, self.realm, expected.ha1["MD5"]
            ):
                return AuthOutcome(ok=True, scheme="basic", username=expected.username)
            return self._refuse("wrong username or password", now, binding, tls=tls)
        if isinstance(parsed, digest.DigestCredentials) and self.mode in ("digest", "any"):
            if parsed.username != expected.username:
                return self._refuse("unknown username", now, binding, tls=tls)
            verdict = self.authority.verify(
                parsed,
                method=method,
                ha1_by_algorithm=expected.ha1,
                now=now,
                binding=binding,
                allow_no_qop=not self.strict,
                request_path=path,
            )
            if verdict is digest.Verdict.OK:
                return AuthOutcome(
                    ok=True,
                    scheme="digest",
                    nonce=parsed.nonce,
                    nonce_count=parsed.nonce_count,
                    username=expected.username,
                )
            if verdict is digest.Verdict.STALE:
                return self._refuse(
                    "nonce expired", now, binding, stale=True, expected=True, tls=tls
                )
            return self._refuse(f"digest {verdict.value}", now, binding, tls=tls)
        if parsed is None:
            return self._refuse("no credentials", now, binding, expected=True, tls=tls)
        return self._refuse("wrong scheme", now, binding, tls=tls)

    def password_matches(
        self, username: str, password: str, credentials: DeviceCredentials | None = None
    ) -> bool:
        """A cleartext password (FTP sends one) against the device's credentials, or the
        shared pair: only HA1s are needed, so it works however the password is kept."""
        expected = credentials or self.shared
        if username != expected.username:
            return False
        given = digest.ha1("MD5", username, self.realm, password)
        return hmac.compare_digest(given, expected.ha1["MD5"])

    def challenge(
        self, now: float, binding: str, *, stale: bool = False, tls: bool = True
    ) -> list[str]:
        """The WWW-Authenticate values of a 401: the mode's schemes (``any``: Digest first,
        then Basic where Basic would be taken)."""
        basic = [f'Basic realm="{self.realm}"']
        if self.mode == "basic":
            return basic
        offered = self.authority.challenge(
            now, binding=binding, stale=stale, algorithms=self.algorithms
        )
        if self.mode == "any" and (tls or self.allow_basic_over_http):
            return [*offered, *basic]
        return offered

    def _refuse(
        self,
        reason: str,
        now: float,
        binding: str,
        *,
        stale: bool = False,
        expected: bool = False,
        tls: bool = True,
    ) -> AuthOutcome:
        return AuthOutcome(
            ok=False,
            reason=reason,
            challenge=self.challenge(now, binding, stale=stale, tls=tls),
            expected=expected,
        )

    async def authenticate(
        self,
        tx: hot.Transaction,
        authorization: str | None,
        *,
        method: str,
        path: str,
        tls: bool,
        credentials: DeviceCredentials | None,
        binding: str,
        now: float,
        pending: DeviceCredentials | None = None,
    ) -> AuthOutcome:
        """``check``, and in strict mode refuse (with a fresh challenge) a nonce count already
        seen: a replayed request."""
        outcome = self.check(
            authorization,
            method=method,
            path=path,
            tls=tls,
            credentials=credentials,
            binding=binding,
            now=now,
            pending=pending,
        )
        if outcome.ok and not await self._nonce_count_fresh(tx, outcome, now):
            return self._refuse("nonce count replayed", now, binding)
        return outcome

    async def _nonce_count_fresh(
        self, tx: hot.Transaction, outcome: AuthOutcome, now: float
    ) -> bool:
        if not self.strict or outcome.scheme != "digest" or outcome.nonce is None:
            return True
        if outcome.nonce_count is None:
            return False
        expires = datetime.fromtimestamp(now, UTC) + timedelta(seconds=self.lifetime + 60)
        return await queries.advance_nonce_count(tx, outcome.nonce, outcome.nonce_count, expires)
