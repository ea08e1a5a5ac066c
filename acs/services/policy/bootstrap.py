"""Bootstrap provisioning: what every device gets on its first session and after every
``0 BOOTSTRAP``, before anything queued for it.

One SetParameterValues: per-device connection-request credentials (the ACS keeps the
password sealed, so its connection requests can authenticate), the periodic inform settings
(``ACS_PERIODIC_INFORM_INTERVAL``, with ``PeriodicInformTime`` spread per device) and, in
CTC mode on a bootstrap, new ACS credentials (stored as Digest HA1 only; the device uses them
from its next session on).

What it does is the default preset's (``presets.DEFAULT_PRESET``, read only when it would
act): switched off or not matching, it sends nothing; its interval, when set, replaces the
setting; ``connection_request_credentials`` false leaves those alone.

States::

    pending --SetParameterValues--> sent --response--> (done: the device row has them)
                                         --fault or none--> (done: tried, not retried every
                                                             session; the next BOOTSTRAP will)
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from typing import Any

from acs.config import Settings
from acs.cwmp import messages as m
from acs.cwmp import session as cs
from acs.cwmp import xsd
from acs.db import hot, queries
from acs.db.queries import DeviceAuth
from acs.db.types import JSONDoc, UTCDateTime
from acs.services import fault_log, monitoring, presets
from acs.services.cpe_auth import hash_credentials
from acs.services.inform import inform_deadline, set_values_patch
from acs.services.policy.base import (
    Answer,
    Answered,
    Component,
    JsonState,
    Offer,
    SessionContext,
)
from acs.services.secretbox import SecretBox


@dataclass(frozen=True, slots=True)
class BootstrapState(JsonState):
    rotate_acs: bool  # CTC: the ACS credentials are rotated on every bootstrap as well
    sent: bool = False
    cr_username: str = ""
    cr_password: str = ""  # sealed
    acs_username: str = ""
    acs_password: str = ""  # sealed
    interval: int = 0
    cr: bool = True  # the default preset's connection_request_credentials
    no_spread: bool = False  # the device refused PeriodicInformTime: sent again without it


_PROVISIONED = hot.Statement(
    "UPDATE devices SET cr_username = COALESCE(:cr_username, cr_username, ''), "
    "cr_password_enc = COALESCE(:cr_password, cr_password_enc), "
    "periodic_inform_interval = COALESCE(:interval, periodic_inform_interval), "
    "inform_deadline = COALESCE(:deadline, inform_deadline), "
    f"{monitoring.WATCHED_NOW}, "
    "cwmp_username = COALESCE(:acs_username, cwmp_username), "
    "cwmp_ha1_md5 = COALESCE(:ha1_md5, cwmp_ha1_md5), "
    "cwmp_ha1_sha256 = COALESCE(:ha1_sha256, cwmp_ha1_sha256) WHERE id = :id",
    binds={"deadline": UTCDateTime(), "now": UTCDateTime()},
)
# Refused or unanswered: cr_username "" marks "tried"; NULL means "never tried".
_TRIED = hot.Statement("UPDATE devices SET cr_username = '' WHERE id = :id")
_DEFAULT_PRESET = hot.Statement(
    "SELECT p.enabled, p.filter, p.desired, d.tags FROM presets AS p, devices AS d "
    "WHERE p.name = :name AND d.id = :id",
    columns=("enabled", "filter", "desired", "tags"),
    types={"filter": JSONDoc, "desired": JSONDoc, "tags": JSONDoc},
)


class BootstrapProvisioning(Component[BootstrapState]):
    name = "bootstrap"
    State = BootstrapState

    def __init__(self, settings: Settings, box: SecretBox):
        self.settings = settings
        self.box = box

    async def on_inform(
        self, tx: hot.Transaction, ctx: SessionContext, inform: m.Inform, known: DeviceAuth
    ) -> BootstrapState | None:
        bootstrap = "0 BOOTSTRAP" in ctx.facts.events
        if not bootstrap and known.cr_username is not None:
            return None
        rotate_acs = ctx.facts.mode == "ctc" and bootstrap
        row = await tx.first(_DEFAULT_PRESET, name=presets.DEFAULT_PRESET, id=ctx.device_id)
        desired = presets.Desired.model_validate(row.desired) if row is not None else None
        if row is None or desired is None or not row.enabled or not _matches(row, ctx, inform):
            if not rotate_acs:
                await tx.execute(_TRIED, id=ctx.device_id)  # not for this device: done
                return None
            desired = presets.Desired()
        interval = desired.periodic_inform_interval or self.settings.periodic_inform_interval
        if not (desired.connection_request_credentials or interval or rotate_acs):
            await tx.execute(_TRIED, id=ctx.device_id)
            return None
        return BootstrapState(
            rotate_acs=rotate_acs, interval=interval, cr=desired.connection_request_credentials
        )

    async def next_request(
        self, tx: hot.Transaction, ctx: SessionContext, state: BootstrapState | None
    ) -> Offer[BootstrapState] | None:
        if state is None or state.sent:
            return None
        cr_username = f"cr-{secrets.token_hex(6)}"
        cr_password = secrets.token_urlsafe(16)
        acs_username = acs_password = ""
        if state.rotate_acs:
            acs_username = f"acs-{secrets.token_hex(6)}"
            acs_password = secrets.token_urlsafe(16)
        if not state.cr:
            cr_username = cr_password = ""
        interval = state.interval
        params = _parameters(
            ctx.facts.root, cr_username, cr_password, acs_username, acs_password, interval
        )
        params += self._spread(ctx, state)
        sent = BootstrapState(
            rotate_acs=state.rotate_acs,
            sent=True,
            cr_username=cr_username,
            cr_password=self.box.seal(cr_password) if cr_password else "",
            acs_username=acs_username,
            acs_password=self.box.seal(acs_password) if acs_password else "",
            interval=interval,
            cr=state.cr,
            no_spread=state.no_spread,
        )
        return Offer(m.SetParameterValues(params, parameter_key="acs-bootstrap"), "", sent)

    async def on_answer(
        self,
        tx: hot.Transaction,
        ctx: SessionContext,
        ref_id: str,
        answer: Answer,
        state: BootstrapState | None,
    ) -> Answered[BootstrapState]:
        if state is None:
            return Answered(None)
        if isinstance(answer, cs.ResponseReceived):
            await self._provisioned(tx, ctx, state)
        elif self._spread(ctx, state) and _refused_spread(answer):
            # a device without PeriodicInformTime: the rest still matters
            return Answered(replace(state, sent=False, no_spread=True))
        else:
            await tx.execute(_TRIED, id=ctx.device_id)
            if isinstance(answer, cs.FaultReceived):
                await fault_log.from_cpe(
                    tx,
                    device_id=ctx.device_id,
                    now=ctx.now,
                    code=answer.fault.fault_code,
                    string=answer.fault.fault_string,
                    detail={"bootstrap_provisioning": True},
                )
        return Answered(None)

    async def _provisioned(
        self,
        tx: hot.Transaction,
        ctx: SessionContext,
        state: BootstrapState,
    ) -> None:
        values: dict[str, Any] = {
            "id": ctx.device_id,
            "cr_username": state.cr_username or None,
            "cr_password": state.cr_password or None,
            "interval": state.interval or None,
            "deadline": inform_deadline(ctx.now, state.interval, self.settings.silent_grace),
            "now": ctx.now,
            "watched": bool(state.interval),
            "acs_username": None,
            "ha1_md5": None,
            "ha1_sha256": None,
        }
        if state.acs_username:
            ha1 = hash_credentials(
                state.acs_username, self.box.open(state.acs_password), self.settings.cwmp_realm
            )
            values.update(
                acs_username=state.acs_username, ha1_md5=ha1["MD5"], ha1_sha256=ha1["SHA-256"]
            )
        await tx.execute(_PROVISIONED, **values)
        # What was set goes into the parameter tree with its types (secrets without values).
        done = _parameters(
            ctx.facts.root, state.cr_username, "", state.acs_username, "", state.interval
        )
        done += self._spread(ctx, state)
        await queries.merge_parameters(tx, ctx.device_id, set_values_patch(done, ctx.now))

    def _spread(
        self, ctx: SessionContext, state: BootstrapState
    ) -> tuple[m.ParameterValueStruct, ...]:
        """PeriodicInformTime with the interval, spread per device (inform storms)."""
        if not state.interval or state.no_spread or not self.settings.spread_inform_time:
            return ()
        when = presets.spread_time(ctx.device_id, state.interval)
        name = f"{ctx.facts.root}.ManagementServer.PeriodicInformTime"
        return (m.ParameterValueStruct(name, when, xsd.DATE_TIME),)


def _refused_spread(answer: Answer) -> bool:
    return isinstance(answer, cs.FaultReceived) and any(
        f.parameter_name.endswith(".PeriodicInformTime")
        for f in answer.fault.set_parameter_values_fault
    )


def _matches(row: Any, ctx: SessionContext, inform: m.Inform) -> bool:
    """The default preset's filter, on what the Inform and the device's tags tell (a
    parameter the Inform does not carry counts as matching)."""
    d = inform.device_id
    facts = presets.DeviceFacts(
        id=ctx.device_id,
        root=ctx.facts.root,
        oui=d.oui,
        product_class=d.product_class,
        software_version=ctx.facts.software_version,
        mode=ctx.facts.mode,
        tags=tuple(row.tags or ()),
        tree={p.name: {"value": p.value} for p in inform.parameter_list},
    )
    return (
        presets.matches(presets.PresetFilter.model_validate(row.filter or {}), facts) is not False
    )


def _parameters(
    root: str,
    cr_username: str,
    cr_password: str,
    acs_username: str,
    acs_password: str,
    interval: int,
) -> tuple[m.ParameterValueStruct, ...]:
    base = f"{root}.ManagementServer."
    params = []
    if cr_username:
        params += [
            m.ParameterValueStruct(base + "ConnectionRequestUsername", cr_username, xsd.STRING),
            m.ParameterValueStruct(base + "ConnectionRequestPassword", cr_password, xsd.STRING),
        ]
    if acs_username:
        params += [
            m.ParameterValueStruct(base + "Username", acs_username, xsd.STRING),
            m.ParameterValueStruct(base + "Password", acs_password, xsd.STRING),
        ]
    if interval:
        params += [
            m.ParameterValueStruct(base + "PeriodicInformEnable", True, xsd.BOOLEAN),
            m.ParameterValueStruct(base + "PeriodicInformInterval", interval, xsd.UNSIGNED_INT),
        ]
    return tuple(params)
