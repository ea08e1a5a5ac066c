"""NAT traversal provisioning: how the ACS will reach the device behind a NAT, set with the
rest of bootstrap provisioning (after ``BootstrapProvisioning``, before the task queue).

* STUN (TR-111 part 2), when ``ACS_STUN_PORT`` is set and the device has STUNEnable: the
  ACS's STUN server address and port, per-device STUNUsername/STUNPassword (the password
  kept sealed: the STUN server checks MESSAGE-INTEGRITY with it), the keep-alive period.
* XMPP (TR-069 Annex K), when ``ACS_XMPP_JID`` is set and the device has
  ConnReqXMPPConnection: ConnReqAllowedJabberIDs (the ACS's JID) and ConnReqXMPPConnection
  (its first XMPP.Connection). With ``ACS_XMPP_CPE_DOMAIN`` the ACS also gives the device an
  account of its own: that connection (added if there is none) gets a username, password,
  domain and resource (and a server, with ``ACS_XMPP_CPE_SERVER``), and the session's
  holder makes the account on the server (``acs.services.xmpp``).
* Active notification on UDPConnectionRequestAddress and ConnReqJabberID, so that the ACS
  hears of a new NAT binding or JID in the Inform that follows it.

It runs in the first session and after every ``0 BOOTSTRAP``, and on a boot when the ACS's
settings changed since the device was provisioned (``provisioned.fingerprint``: one extra
statement, in boot sessions only). What a device lacks is left out, never faulted on: the
first request asks which ManagementServer parameters it has.

Phases (``phase`` is the request to send next; ``sent`` while it is in flight)::

    discover (GPN ManagementServer.) --> discover_xmpp | set | (done: nothing to set)
    discover_xmpp (GPN XMPP.Connection.) --> add_connection | discover_server | set
    add_connection (AddObject XMPP.Connection.) --> add_server | set
    discover_server (GPN <connection>Server.) --> add_server | set
    add_server (AddObject <connection>Server.) --> set
    set (SetParameterValues) --> notify | (done) ; the device's row is written here
    notify (SetParameterAttributes, active) --> (done)

A fault or no answer ends it (a fault of ``set`` is logged as the device's fault); what was
learnt so far is recorded, so a device is not asked again before its next bootstrap.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from acs.config import Settings
from acs.cwmp import messages as m
from acs.cwmp import session as cs
from acs.cwmp import xsd
from acs.db import hot, queries
from acs.db.queries import DeviceAuth
from acs.db.types import JSONDoc, UTCDateTime
from acs.services import fault_log
from acs.services.inform import set_values_patch
from acs.services.policy.base import (
    Answer,
    Answered,
    Component,
    JsonState,
    Offer,
    SessionContext,
)
from acs.services.secretbox import SecretBox

XMPP_RESOURCE = "cwmp"
DONE = "done"
ACCOUNT_TTL = timedelta(days=1)  # an account not made by then is given up


@dataclass(frozen=True, slots=True)
class NatState(JsonState):
    phase: str
    sent: bool = False
    stun: bool = False  # the device has the STUN parameters (and the ACS a STUN server)
    max_keepalive: bool = False  # ... and STUNMaximumKeepAlivePeriod
    xmpp: bool = False  # the device has ConnReqXMPPConnection (and the ACS an XMPP JID)
    jabber_id: bool = False  # the device has ConnReqJabberID
    udp_address: bool = False  # the device has UDPConnectionRequestAddress
    connection: str = ""  # the XMPP.Connection instance used ("Device.XMPP.Connection.1.")
    server: str = ""  # its Server instance, with ACS_XMPP_CPE_SERVER
    stun_username: str = ""
    stun_password: str = ""  # sealed
    xmpp_jid: str = ""  # the account the ACS makes for it, with ACS_XMPP_CPE_DOMAIN
    xmpp_password: str = ""  # sealed
    error: str = ""


def fingerprint(settings: Settings) -> str:
    """What a device's NAT traversal settings depend on: provisioned again on a boot when
    it changed."""
    basis = [
        settings.stun_port,
        settings.stun_server_address,
        settings.stun_keepalive,
        settings.xmpp_jid,
        settings.xmpp_cpe_domain,
        settings.xmpp_cpe_server,
    ]
    return hashlib.sha256(json.dumps(basis).encode()).hexdigest()[:16]


_PROVISIONED = hot.Statement(
    "SELECT provisioned FROM nat_traversal WHERE device_id = :id",
    columns=("provisioned",),
    types={"provisioned": JSONDoc},
)
_RECORD = hot.Statement(
    "INSERT INTO nat_traversal (device_id, stun_username, stun_password_enc, xmpp_jid, "
    "xmpp_password_enc, xmpp_account, provisioned) VALUES (:id, :stun_username, "
    ":stun_password, :xmpp_jid, :xmpp_password, :xmpp_account, :provisioned) "
    "ON CONFLICT (device_id) DO UPDATE SET stun_username = excluded.stun_username, "
    "stun_password_enc = excluded.stun_password_enc, xmpp_jid = excluded.xmpp_jid, "
    "xmpp_password_enc = excluded.xmpp_password_enc, xmpp_account = excluded.xmpp_account, "
    "provisioned = excluded.provisioned",
    binds={"provisioned": JSONDoc},
)
_ACCOUNT_REQUEST = hot.Statement(
    "INSERT INTO xmpp_requests (kind, device_id, jid, username, password_enc, created, "
    "expires) VALUES ('account', :id, :jid, NULL, :password, :now, :expires)",
    binds={"now": UTCDateTime(), "expires": UTCDateTime()},
)


def account_jid(device_id: str, domain: str) -> str:
    """The JID of the account the ACS makes for a device: its id in lower case where that
    is a plain XMPP localpart, else a digest of it (ids hold %-escapes)."""
    local = device_id.lower()
    if not re.fullmatch(r"[a-z0-9._-]{1,64}", local):
        local = "cpe-" + hashlib.sha256(device_id.encode()).hexdigest()[:24]
    return f"{local}@{domain}"


def _instances(names: list[str], table: str) -> list[str]:
    """``X.1.``, ``X.2.`` ... among GetParameterNames' names under ``table`` (``X.``)."""
    pattern = re.compile(re.escape(table) + r"(\d+)\.$")
    found = sorted({int(g.group(1)) for n in names if (g := pattern.match(n))})
    return [f"{table}{i}." for i in found]


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


class NatProvisioning(Component[NatState]):
    name = "nat"
    State = NatState

    def __init__(self, settings: Settings, box: SecretBox):
        self.settings = settings
        self.box = box
        self.stun_on = settings.stun_port is not None
        self.xmpp_on = bool(settings.xmpp_jid)
        self.fingerprint = fingerprint(settings)

    async def on_inform(
        self, tx: hot.Transaction, ctx: SessionContext, inform: m.Inform, known: DeviceAuth
    ) -> NatState | None:
        if not (self.stun_on or self.xmpp_on):
            return None
        first = "0 BOOTSTRAP" in ctx.facts.events or known.cr_username is None
        if not first:
            if not ctx.facts.booted:
                return None
            row = await tx.first(_PROVISIONED, id=ctx.device_id)
            done = row.provisioned if row is not None else None
            if done and done.get("fingerprint") == self.fingerprint:
                return None
        return NatState("discover")

    async def next_request(
        self, tx: hot.Transaction, ctx: SessionContext, state: NatState | None
    ) -> Offer[NatState] | None:
        if state is None or state.sent:
            return None
        root = ctx.facts.root
        request: Any
        if state.phase == "discover":
            request = m.GetParameterNames(f"{root}.ManagementServer.", next_level=True)
        elif state.phase == "discover_xmpp":
            request = m.GetParameterNames(f"{root}.XMPP.Connection.", next_level=True)
        elif state.phase == "add_connection":
            request = m.AddObject(f"{root}.XMPP.Connection.", parameter_key="acs-nat")
        elif state.phase == "discover_server":
            request = m.GetParameterNames(f"{state.connection}Server.", next_level=True)
        elif state.phase == "add_server":
            request = m.AddObject(f"{state.connection}Server.", parameter_key="acs-nat")
        elif state.phase == "set":
            state = self._credentials(ctx, state)
            request = m.SetParameterValues(self._values(ctx, state), parameter_key="acs-nat")
        elif state.phase == "notify":
            request = m.SetParameterAttributes(self._notifications(ctx, state))
        else:
            return None
        return Offer(request, state.phase, replace(state, sent=True))

    async def on_answer(
        self,
        tx: hot.Transaction,
        ctx: SessionContext,
        ref_id: str,
        answer: Answer,
        state: NatState | None,
    ) -> Answered[NatState]:
        if state is None:
            return Answered(None)
        state = replace(state, sent=False)
        if not isinstance(answer, cs.ResponseReceived):
            why = (
                f"fault {answer.fault.fault_code} {answer.fault.fault_string}"
                if isinstance(answer, cs.FaultReceived)
                else f"no answer ({answer.reason})"
            )
            return Answered(await self._failed(tx, ctx, state, why, answer))
        after = self._after(ctx, state, answer.response)
        if state.phase == "set":
            await self._record(tx, ctx, state)
        elif after.phase == DONE and state.phase != "notify":
            await self._record(tx, ctx, after)  # nothing to set: remember it was asked
        return Answered(None if after.phase == DONE else after)

    def _after(self, ctx: SessionContext, state: NatState, response: Any) -> NatState:
        """The state after a response in ``state.phase`` (the module docstring's table)."""
        root = ctx.facts.root
        phase = state.phase
        managed = bool(self.settings.xmpp_cpe_domain)
        if phase == "discover":
            ms = f"{root}.ManagementServer."
            present = {p.name for p in response.parameter_list}
            state = replace(
                state,
                stun=self.stun_on and {ms + "STUNEnable", ms + "STUNUsername"} <= present,
                max_keepalive=ms + "STUNMaximumKeepAlivePeriod" in present,
                xmpp=self.xmpp_on and ms + "ConnReqXMPPConnection" in present,
                jabber_id=ms + "ConnReqJabberID" in present,
                udp_address=ms + "UDPConnectionRequestAddress" in present,
            )
            if state.xmpp:
                return replace(state, phase="discover_xmpp")
            return replace(state, phase="set" if state.stun else DONE)
        if phase == "discover_xmpp":
            names = [p.name for p in response.parameter_list]
            found = _instances(names, f"{root}.XMPP.Connection.")
            if found:
                state = replace(state, connection=found[0])
                if managed and self.settings.xmpp_cpe_server:
                    return replace(state, phase="discover_server")
                return replace(state, phase="set")
            if managed:
                return replace(state, phase="add_connection")
            # no connection, and no account to give it: XMPP cannot work
            state = replace(state, xmpp=False, error="the device has no XMPP.Connection")
            return replace(state, phase="set" if state.stun else DONE)
        if phase == "add_connection":
            state = replace(state, connection=f"{root}.XMPP.Connection.{response.instance_number}.")
            if self.settings.xmpp_cpe_server:
                return replace(state, phase="add_server")
            return replace(state, phase="set")
        if phase == "discover_server":
            names = [p.name for p in response.parameter_list]
            found = _instances(names, f"{state.connection}Server.")
            if found:
                return replace(state, server=found[0], phase="set")
            return replace(state, phase="add_server")
        if phase == "add_server":
            server = f"{state.connection}Server.{response.instance_number}."
            return replace(state, server=server, phase="set")
        if phase == "set" and (
            (state.stun and state.udp_address) or (state.xmpp and state.jabber_id)
        ):
            return replace(state, phase="notify")
        return replace(state, phase=DONE)

    async def _failed(
        self, tx: hot.Transaction, ctx: SessionContext, state: NatState, why: str, answer: Answer
    ) -> NatState | None:
        """A fault or no answer. Objects to find or add are optional (XMPP falls away); a
        refused set ends it, recorded with the fault."""
        phase = state.phase
        if phase in ("discover_xmpp", "add_connection"):
            state = replace(state, xmpp=False, error=f"XMPP.Connection: {why}")
            if state.stun:
                return replace(state, phase="set")
        elif phase in ("discover_server", "add_server"):
            return replace(state, server="", phase="set")  # the device looks the domain up
        elif phase == "notify":
            return None  # the settings are in; notification is a nicety
        if isinstance(answer, cs.FaultReceived) and phase == "set":
            await fault_log.from_cpe(
                tx,
                device_id=ctx.device_id,
                now=ctx.now,
                code=answer.fault.fault_code,
                string=answer.fault.fault_string,
                detail={"nat_provisioning": True},
            )
        await self._record(
            tx, ctx, replace(state, stun=False, xmpp=False, error=state.error or f"{phase}: {why}")
        )
        return None

    # --- what is set ---------------------------------------------------------------------

    def _credentials(self, ctx: SessionContext, state: NatState) -> NatState:
        if state.stun:
            state = replace(
                state,
                stun_username=f"stun-{secrets.token_hex(8)}",
                stun_password=self.box.seal(secrets.token_urlsafe(16)),
            )
        if state.xmpp and self.settings.xmpp_cpe_domain:
            state = replace(
                state,
                xmpp_jid=account_jid(ctx.device_id, self.settings.xmpp_cpe_domain),
                xmpp_password=self.box.seal(secrets.token_urlsafe(18)),
            )
        return state

    def _stun_server(self, ctx: SessionContext) -> str:
        if self.settings.stun_server_address:
            return self.settings.stun_server_address
        return urlsplit(self.settings.public_url or ctx.base_url).hostname or ""

    def _values(
        self, ctx: SessionContext, state: NatState, *, secrets_too: bool = True
    ) -> tuple[m.ParameterValueStruct, ...]:
        ms = f"{ctx.facts.root}.ManagementServer."
        out: list[m.ParameterValueStruct] = []

        def put(name: str, value: xsd.Value, kind: str) -> None:
            out.append(m.ParameterValueStruct(name, value, kind))

        def secret(sealed: str) -> str:
            return self.box.open(sealed) if secrets_too else ""

        if state.stun:
            keepalive = self.settings.stun_keepalive
            put(ms + "STUNEnable", True, xsd.BOOLEAN)
            put(ms + "STUNServerAddress", self._stun_server(ctx), xsd.STRING)
            put(ms + "STUNServerPort", self.settings.stun_port or 3478, xsd.UNSIGNED_INT)
            put(ms + "STUNUsername", state.stun_username, xsd.STRING)
            put(ms + "STUNPassword", secret(state.stun_password), xsd.STRING)
            put(ms + "STUNMinimumKeepAlivePeriod", keepalive, xsd.UNSIGNED_INT)
            if state.max_keepalive:
                put(ms + "STUNMaximumKeepAlivePeriod", keepalive, xsd.INT)
        if state.xmpp:
            conn = state.connection
            if state.xmpp_jid:
                local, _, domain = state.xmpp_jid.partition("@")
                put(conn + "Enable", True, xsd.BOOLEAN)
                put(conn + "Username", local, xsd.STRING)
                put(conn + "Password", secret(state.xmpp_password), xsd.STRING)
                put(conn + "Domain", domain, xsd.STRING)
                put(conn + "Resource", XMPP_RESOURCE, xsd.STRING)
                put(conn + "UseTLS", True, xsd.BOOLEAN)
                if state.server and self.settings.xmpp_cpe_server:
                    host, port = _host_port(self.settings.xmpp_cpe_server)
                    put(state.server + "Enable", True, xsd.BOOLEAN)
                    put(state.server + "ServerAddress", host, xsd.STRING)
                    put(state.server + "Port", port, xsd.UNSIGNED_INT)
            put(ms + "ConnReqXMPPConnection", conn.rstrip("."), xsd.STRING)
            put(ms + "ConnReqAllowedJabberIDs", self.settings.xmpp_jid or "", xsd.STRING)
        return tuple(out)

    def _notifications(
        self, ctx: SessionContext, state: NatState
    ) -> tuple[m.SetParameterAttributesStruct, ...]:
        ms = f"{ctx.facts.root}.ManagementServer."
        names = []
        if state.stun and state.udp_address:
            names.append(ms + "UDPConnectionRequestAddress")
        if state.xmpp and state.jabber_id:
            names.append(ms + "ConnReqJabberID")
        return tuple(
            m.SetParameterAttributesStruct(n, notification_change=True, notification=2)
            for n in names
        )

    async def _record(self, tx: hot.Transaction, ctx: SessionContext, state: NatState) -> None:
        """The device's NAT traversal row: its credentials and what was provisioned."""
        account = bool(state.xmpp and state.xmpp_jid)
        provisioned = {
            "fingerprint": self.fingerprint,
            "time": xsd.format_datetime(ctx.now),
            "stun": state.stun,
            "xmpp": state.xmpp,
            "xmpp_connection": state.connection.rstrip(".") if state.xmpp else None,
            "error": state.error or None,
        }
        await tx.execute(
            _RECORD,
            id=ctx.device_id,
            stun_username=state.stun_username or None if state.stun else None,
            stun_password=state.stun_password or None if state.stun else None,
            xmpp_jid=state.xmpp_jid if account else None,
            xmpp_password=state.xmpp_password if account else None,
            xmpp_account="pending" if account else None,
            provisioned=provisioned,
        )
        if account:
            await tx.execute(
                _ACCOUNT_REQUEST,
                id=ctx.device_id,
                jid=state.xmpp_jid,
                password=state.xmpp_password,
                now=ctx.now,
                expires=ctx.now + ACCOUNT_TTL,
            )
        if state.stun or state.xmpp:
            done = self._values(ctx, state, secrets_too=False)
            await queries.merge_parameters(tx, ctx.device_id, set_values_patch(done, ctx.now))
