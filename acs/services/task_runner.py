"""Running queued tasks inside CWMP sessions (the SessionHooks of the task queue).

Per device, tasks run in the order queued, one RPC per exchange; Reboot and FactoryReset
run last and end the session (CPEs ignore anything sent after them). A task is ``sent``
only while its request is in flight in the current session: a session that dies puts it
back to ``queued``, so nothing is ever half-done or lost. Results land where they belong
(the parameter tree, the device row) in the same transaction as the session state.

On a device's first session, and after every ``0 BOOTSTRAP``, the ACS first provisions it:
per-device connection-request credentials (kept, sealed, so connection requests can
authenticate) and the periodic inform settings.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy import case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from acs.config import Settings
from acs.cwmp import faults, xsd
from acs.cwmp import messages as m
from acs.cwmp import session as cs
from acs.cwmp.soap import to_plain
from acs.db import queries, tables
from acs.services import ctc, fault_log, task_specs
from acs.services.cpe_auth import hash_credentials
from acs.services.cwmp import SessionContext, SessionHooks
from acs.services.inform import BOOT_EVENTS, parameter_patch
from acs.services.secretbox import SecretBox

log = logging.getLogger("acs.tasks")

t = tables.tasks
PROVISION_REF = "provision"
CTC_USERINFO_REF = "ctc-userinfo"
CTC_STATUS_REF = "ctc-status"


class DownloadResolver(Protocol):
    """Turns a Download of a stored file or of the device's configuration into the CWMP
    request, with a fresh signed URL (``acs.services.provisioning``)."""

    async def resolve(
        self, conn: AsyncConnection, ctx: SessionContext, spec: Any, command_key: str
    ) -> tuple[m.Download, dict[str, Any]]: ...


def plain(message: Any) -> Any:
    """A response as JSON result data, without the "@type" markers."""
    data = to_plain(message)
    return _strip_types(data)


def _strip_types(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_types(v) for k, v in value.items() if k != "@type"}
    if isinstance(value, list):
        return [_strip_types(v) for v in value]
    return value


def _software_version(inform: m.Inform) -> str | None:
    for p in inform.parameter_list:
        if p.name.endswith(".DeviceInfo.SoftwareVersion"):
            return str(p.value)
    return None


def _root(inform: m.Inform | None) -> str:
    """The data model's root object, from the Inform's parameter names."""
    if inform is not None:
        for p in inform.parameter_list:
            head = p.name.partition(".")[0]
            if head in ("Device", "InternetGatewayDevice"):
                return head
    return "InternetGatewayDevice"


class TaskRunner(SessionHooks):
    def __init__(
        self, settings: Settings, box: SecretBox, downloads: DownloadResolver | None = None
    ):
        self.settings = settings
        self.box = box
        self.downloads = downloads

    # --- Inform ----------------------------------------------------------------------

    async def on_inform(self, conn: AsyncConnection, ctx: SessionContext) -> None:
        assert ctx.inform is not None
        events = ctx.inform.event
        codes = {e.event_code for e in events}
        known = ctx.known
        mode = (known.mode if known is not None else None) or self.settings.mode
        booted = bool(BOOT_EVENTS.intersection(codes))
        # What later requests of this session need to know about its Inform.
        ctx.extra.update(mode=mode, booted=booted, software_version=_software_version(ctx.inform))
        if booted and known is not None and known.exists:  # a new device has no tasks yet
            await self._complete_boot_tasks(conn, ctx, events, codes)
        if "0 BOOTSTRAP" in codes or known is None or known.cr_username is None:
            ctx.extra["provision"] = {
                "root": _root(ctx.inform),
                # CTC: the ACS credentials are rotated on every bootstrap as well
                "rotate_acs": mode == "ctc" and "0 BOOTSTRAP" in codes,
            }
        if mode == "ctc" and "X CT-COM BIND" in codes:
            loid, password = ctc.userinfo_from(ctx.inform.parameter_list)
            if loid is None:
                ctx.extra["ctc"] = {"fetch": True, "root": _root(ctx.inform)}
            else:
                await self._ctc_bind(conn, ctx, loid, password, _root(ctx.inform))

    async def _ctc_bind(
        self,
        conn: AsyncConnection,
        ctx: SessionContext,
        loid: str | None,
        password: str | None,
        root: str,
    ) -> None:
        outcome = await ctc.bind(
            conn,
            device_id=ctx.device_id,
            loid=loid,
            password=password,
            now=ctx.now,
            task_ttl=self.settings.task_default_ttl,
        )
        log.info("%s: CTC bind of LOID %r: %s", ctx.device_id, loid, outcome.detail)
        ctx.extra["ctc"] = {"root": root, "status": outcome.status, "result": outcome.result}

    async def _complete_boot_tasks(
        self,
        conn: AsyncConnection,
        ctx: SessionContext,
        events: tuple[m.EventStruct, ...],
        codes: set[str],
    ) -> None:
        result = {"booted": xsd.format_datetime(ctx.now), "events": sorted(codes)}
        reboot_keys = [e.command_key for e in events if e.event_code == "M Reboot"]
        conditions = []
        if reboot_keys:
            # The command key names the task, whatever state a lost answer left it in.
            conditions.append(
                (t.c.name == "Reboot")
                & t.c.command_key.in_(reboot_keys)
                & t.c.status.in_(("awaiting_boot", "sent", "queued"))
            )
        if "1 BOOT" in codes or reboot_keys:
            conditions.append((t.c.name == "Reboot") & (t.c.status == "awaiting_boot"))
        if "0 BOOTSTRAP" in codes:
            conditions.append((t.c.name == "FactoryReset") & (t.c.status == "awaiting_boot"))
        if conditions:
            await conn.execute(
                update(t)
                .where(t.c.device_id == ctx.device_id, or_(*conditions))
                .values(status="done", finished=ctx.now, result=result, session_id=None)
            )
        # Firmware Downloads waiting for the reboot into the new image: check its version.
        upgrades = (
            await conn.execute(
                select(t.c.id, t.c.result).where(
                    t.c.device_id == ctx.device_id,
                    t.c.name == "Download",
                    t.c.status == "awaiting_boot",
                )
            )
        ).all()
        for row in upgrades:
            await self._verify_firmware(conn, ctx, row.id, row.result or {})

    async def _verify_firmware(
        self, conn: AsyncConnection, ctx: SessionContext, task_id: int, result: dict[str, Any]
    ) -> None:
        """A firmware Download is done only when the device runs the file's version."""
        expected = result.get("expected_version")
        reported = ctx.extra.get("software_version")
        if reported == expected:
            await self._finish(
                conn, task_id, ctx.now, "done", result={**result, "software_version": reported}
            )
            return
        string = (
            f"after the upgrade the device reports software version {reported!r}, "
            f"expected {expected!r} (the version of the file)"
        )
        await self._finish(
            conn,
            task_id,
            ctx.now,
            "fault",
            result={**result, "software_version": reported},
            fault={"code": faults.ACS_FIRMWARE_MISMATCH, "string": string},
        )
        await fault_log.record(
            conn,
            device_id=ctx.device_id,
            task_id=task_id,
            now=ctx.now,
            source="acs",
            code=faults.ACS_FIRMWARE_MISMATCH,
            string=string,
        )

    # --- CPE requests ----------------------------------------------------------------

    async def on_cpe_request(self, conn: AsyncConnection, ctx: SessionContext, request: Any) -> Any:
        if isinstance(request, m.TransferComplete):
            await self._transfer_complete(conn, ctx, request)
        elif isinstance(request, m.AutonomousTransferComplete) and request.fault_struct.fault_code:
            await _cpe_fault(
                conn,
                ctx,
                request.fault_struct.fault_code,
                request.fault_struct.fault_string,
                {"autonomous_transfer": plain(request)},
            )
        return await super().on_cpe_request(conn, ctx, request)

    async def _transfer_complete(
        self, conn: AsyncConnection, ctx: SessionContext, tc: m.TransferComplete
    ) -> None:
        """Correlate by CommandKey, in this or any later session, with or without the
        ``7 TRANSFER COMPLETE`` event, whatever a lost answer left the task in."""
        row = (
            await conn.execute(
                select(t.c.id, t.c.status, t.c.result)
                .where(
                    t.c.device_id == ctx.device_id,
                    t.c.command_key == tc.command_key,
                    t.c.name.in_(task_specs.TRANSFER_TASKS),
                    t.c.status.in_(("awaiting_transfer", "sent", "queued")),
                )
                .order_by(t.c.id.desc())
                .limit(1)
            )
        ).first()
        outcome = {
            "start_time": xsd.format_datetime(tc.start_time) if tc.start_time else None,
            "complete_time": xsd.format_datetime(tc.complete_time) if tc.complete_time else None,
        }
        code = tc.fault_struct.fault_code
        if row is None:
            log.info(
                "%s: TransferComplete for unknown CommandKey %r", ctx.device_id, tc.command_key
            )
            await fault_log.record(
                conn,
                device_id=ctx.device_id,
                task_id=None,
                now=ctx.now,
                source="acs",
                code=faults.ACS_UNMATCHED_TRANSFER,
                detail={"transfer_complete": plain(tc)},
            )
            return
        result = {**(row.result or {}), "transfer": outcome}
        if code == 0 and "expected_version" in result:
            # firmware: done only once the device runs the new version
            if ctx.extra.get("booted"):
                await self._verify_firmware(conn, ctx, row.id, result)
            else:
                await conn.execute(
                    update(t)
                    .where(t.c.id == row.id)
                    .values(
                        status="awaiting_boot",
                        result=result,
                        session_id=None,
                        expires=ctx.now + timedelta(seconds=self.settings.boot_timeout),
                    )
                )
            return
        if code == 0:
            await self._finish(conn, row.id, ctx.now, "done", result=result)
            return
        string = tc.fault_struct.fault_string or faults.describe(code)
        await self._finish(
            conn, row.id, ctx.now, "fault", result=result, fault={"code": code, "string": string}
        )
        await _cpe_fault(conn, ctx, code, string, {"transfer_complete": plain(tc)}, task_id=row.id)

    # --- ACS requests ----------------------------------------------------------------

    async def next_request(
        self, conn: AsyncConnection, ctx: SessionContext
    ) -> tuple[Any, str | None] | None:
        provision = ctx.extra.get("provision")
        if provision and not provision.get("sent"):
            return self._provision_request(ctx, provision), PROVISION_REF
        bind = ctx.extra.get("ctc")
        if bind and bind.get("fetch"):
            bind["fetch"] = False
            return m.GetParameterValues((f"{bind['root']}.{ctc.USERINFO}",)), CTC_USERINFO_REF
        if bind and "status" in bind and not bind.get("sent"):
            bind["sent"] = True
            base = f"{bind['root']}.{ctc.USERINFO}"
            return m.SetParameterValues(
                (
                    m.ParameterValueStruct(base + "Status", bind["status"], xsd.UNSIGNED_INT),
                    m.ParameterValueStruct(base + "Result", bind["result"], xsd.UNSIGNED_INT),
                ),
                parameter_key="acs-ctc-bind",
            ), CTC_STATUS_REF
        if ctx.has_queued_tasks is False:
            return None  # known at this request's lookup: nothing queued
        for _ in range(1000):  # bounded: each turn finishes a task or returns
            row = (
                await conn.execute(
                    select(t)
                    .where(t.c.device_id == ctx.device_id, t.c.status == "queued")
                    .order_by(
                        case((t.c.name.in_(task_specs.TERMINAL_TASKS), 1), else_=0),
                        t.c.priority.desc(),
                        t.c.id,
                    )
                    .limit(1)
                )
            ).first()
            if row is None:
                return None
            if row.expires is not None and row.expires <= ctx.now:
                await self._finish(conn, row.id, ctx.now, "expired")
                continue
            if row.next_attempt is not None and row.next_attempt > ctx.now:
                return None  # the head of the queue waits for its retry; order is kept
            sent_result = row.result
            try:
                spec = task_specs.load(row.name, row.arguments)
                if isinstance(spec, task_specs.DownloadTask) and spec.url is None:
                    if self.downloads is None:
                        raise ValueError("no file store to resolve the Download from")
                    message, extra = await self.downloads.resolve(
                        conn, ctx, spec, row.command_key or ""
                    )
                    sent_result = {**(row.result or {}), **extra}
                else:
                    message = spec.to_message(row.command_key or "")
            except (ValidationError, ValueError, LookupError) as exc:
                await self._fail(
                    conn,
                    ctx.device_id,
                    ctx.now,
                    row.id,
                    faults.ACS_INVALID_TASK,
                    str(exc)[:500],
                    source="acs",
                )
                continue
            await conn.execute(
                update(t)
                .where(t.c.id == row.id)
                .values(
                    status="sent",
                    started=row.started or ctx.now,
                    attempts=row.attempts + 1,
                    session_id=ctx.session_id,
                    result=sent_result,
                )
            )
            return message, str(row.id)
        return None

    def _provision_request(self, ctx: SessionContext, provision: dict[str, Any]) -> Any:
        root = provision["root"]
        username = f"cr-{secrets.token_hex(6)}"
        password = secrets.token_urlsafe(16)
        provision.update(sent=True, username=username, password=self.box.seal(password))
        params = [
            m.ParameterValueStruct(
                f"{root}.ManagementServer.ConnectionRequestUsername", username, xsd.STRING
            ),
            m.ParameterValueStruct(
                f"{root}.ManagementServer.ConnectionRequestPassword", password, xsd.STRING
            ),
        ]
        if provision.get("rotate_acs"):
            acs_user = f"acs-{secrets.token_hex(6)}"
            acs_password = secrets.token_urlsafe(16)
            provision.update(acs_username=acs_user, acs_password=self.box.seal(acs_password))
            params += [
                m.ParameterValueStruct(f"{root}.ManagementServer.Username", acs_user, xsd.STRING),
                m.ParameterValueStruct(
                    f"{root}.ManagementServer.Password", acs_password, xsd.STRING
                ),
            ]
        interval = self.settings.periodic_inform_interval
        if interval:
            provision["interval"] = interval
            params += [
                m.ParameterValueStruct(
                    f"{root}.ManagementServer.PeriodicInformEnable", True, xsd.BOOLEAN
                ),
                m.ParameterValueStruct(
                    f"{root}.ManagementServer.PeriodicInformInterval", interval, xsd.UNSIGNED_INT
                ),
            ]
        return m.SetParameterValues(tuple(params), parameter_key="acs-bootstrap")

    # --- answers ---------------------------------------------------------------------

    async def on_answer(self, conn: AsyncConnection, ctx: SessionContext, event: cs.Event) -> None:
        assert isinstance(event, cs.ResponseReceived | cs.FaultReceived | cs.RequestUnanswered)
        ref = event.request.ref
        if ref == PROVISION_REF:
            await self._provision_answer(conn, ctx, event)
            return
        if ref == CTC_USERINFO_REF:
            bind = ctx.extra.get("ctc") or {}
            if isinstance(event, cs.ResponseReceived):
                loid, password = ctc.userinfo_from(event.response.parameter_list)
                await self._ctc_bind(
                    conn, ctx, loid, password, bind.get("root", "InternetGatewayDevice")
                )
            return
        if ref == CTC_STATUS_REF:
            if isinstance(event, cs.FaultReceived):
                await _cpe_fault(
                    conn,
                    ctx,
                    event.fault.fault_code,
                    event.fault.fault_string,
                    {"ctc_bind_status": True},
                )
            return
        if ref is None or not ref.isdigit():
            return
        task_id = int(ref)
        row = (await conn.execute(select(t).where(t.c.id == task_id))).first()
        if row is None:
            return  # the device (and its tasks) were deleted meanwhile
        if row.status != "sent":
            # cancelled while in flight: keep what the CPE said, change nothing else
            if isinstance(event, cs.ResponseReceived):
                await conn.execute(
                    update(t)
                    .where(t.c.id == task_id)
                    .values(result={**(row.result or {}), "late_answer": plain(event.response)})
                )
            return
        if isinstance(event, cs.ResponseReceived):
            await self._apply(conn, ctx, row, event.response)
        elif isinstance(event, cs.FaultReceived):
            fault = event.fault
            detail = (
                {"set_parameter_values_fault": plain(fault.set_parameter_values_fault)}
                if fault.set_parameter_values_fault
                else None
            )
            transient = fault.fault_code in faults.TRANSIENT_CPE_FAULTS
            await self._fail(
                conn,
                ctx.device_id,
                ctx.now,
                task_id,
                fault.fault_code,
                fault.fault_string,
                source="cpe",
                detail=detail,
                transient=transient,
                attempts=row.attempts,
            )
        else:
            await self._fail(
                conn,
                ctx.device_id,
                ctx.now,
                task_id,
                faults.ACS_NO_ANSWER,
                event.reason,
                source="acs",
                transient=True,
                attempts=row.attempts,
            )

    async def _apply(
        self, conn: AsyncConnection, ctx: SessionContext, row: Any, response: Any
    ) -> None:
        """Record a successful response where it belongs, and finish (or park) the task."""
        # keep what was recorded when it was sent (a firmware's expected version...)
        result: dict[str, Any] = {**(row.result or {}), **plain(response)}
        status = "done"
        expires = None
        if isinstance(response, m.GetParameterValuesResponse):
            await queries.merge_parameters(
                conn, ctx.device_id, parameter_patch(response.parameter_list, ctx.now)
            )
        elif isinstance(response, m.GetParameterNamesResponse):
            await queries.merge_parameters(
                conn,
                ctx.device_id,
                {
                    p.name: (
                        {"writable": p.writable, "object": True}
                        if p.name.endswith(".")
                        else {"writable": p.writable}
                    )
                    for p in response.parameter_list
                    if p.name
                },
            )
        elif isinstance(response, m.SetParameterValuesResponse):
            spec = task_specs.load(row.name, row.arguments)
            request = spec.to_message("")
            await queries.merge_parameters(
                conn, ctx.device_id, parameter_patch(request.parameter_list, ctx.now)
            )
            result = {
                "status": response.status,
                "parameter_key": request.parameter_key,
                "applied": "after reboot" if response.status == 1 else "now",
            }
        elif isinstance(response, m.GetParameterAttributesResponse):
            await queries.merge_parameters(
                conn,
                ctx.device_id,
                {
                    p.name: {"notification": p.notification, "access_list": list(p.access_list)}
                    for p in response.parameter_list
                },
            )
        elif isinstance(response, m.SetParameterAttributesResponse):
            spec = task_specs.load(row.name, row.arguments)
            patch: dict[str, dict[str, Any]] = {}
            for a in spec.parameter_list:
                if a.name.endswith("."):
                    continue  # a whole subtree: the next GetParameterAttributes tells
                entry = patch.setdefault(a.name, {})
                if a.notification_change:
                    entry["notification"] = a.notification
                if a.access_list_change:
                    entry["access_list"] = list(a.access_list)
            await queries.merge_parameters(conn, ctx.device_id, patch)
        elif isinstance(response, m.AddObjectResponse):
            spec = task_specs.load(row.name, row.arguments)
            path = f"{spec.object_name}{response.instance_number}."
            await queries.merge_parameters(conn, ctx.device_id, {path: {"object": True}})
            result["object"] = path
        elif isinstance(response, m.DeleteObjectResponse):
            spec = task_specs.load(row.name, row.arguments)
            await queries.delete_parameter_subtree(conn, ctx.device_id, spec.object_name)
        elif isinstance(response, m.GetRPCMethodsResponse):
            await conn.execute(
                update(tables.devices)
                .where(tables.devices.c.id == ctx.device_id)
                .values(rpc_methods=list(response.method_list))
            )
        elif isinstance(response, m.DownloadResponse | m.UploadResponse):
            if response.status == 1:  # a TransferComplete will follow
                status = "awaiting_transfer"
                expires = ctx.now + timedelta(seconds=self.settings.transfer_timeout)
        elif isinstance(response, m.ScheduleDownloadResponse):
            status = "awaiting_transfer"
            expires = ctx.now + timedelta(seconds=self.settings.transfer_timeout)
        elif isinstance(response, m.RebootResponse | m.FactoryResetResponse):
            status = "awaiting_boot"
            expires = ctx.now + timedelta(seconds=self.settings.boot_timeout)
            ctx.end_after_answer = True  # CPEs ignore anything sent after RebootResponse
        values: dict[str, Any] = {"status": status, "result": result, "session_id": None}
        if status == "done":
            values["finished"] = ctx.now
        if expires is not None:
            values["expires"] = expires
        await conn.execute(update(t).where(t.c.id == row.id).values(**values))

    async def _fail(
        self,
        conn: AsyncConnection,
        device_id: str,
        now: datetime,
        task_id: int,
        code: int,
        string: str,
        *,
        source: str,
        detail: dict[str, Any] | None = None,
        transient: bool = False,
        attempts: int = 0,
        backoff: bool = True,
    ) -> None:
        """Record a fault; retry a transient one with backoff while attempts remain."""
        string = string or faults.describe(code)
        await fault_log.record(
            conn,
            device_id=device_id,
            task_id=task_id,
            now=now,
            source=source,
            code=code,
            string=string,
            detail=detail,
        )
        fault = {"code": code, "string": string, **({"detail": detail} if detail else {})}
        if transient and attempts < self.settings.task_max_attempts:
            delay = self.settings.task_retry_base_seconds * 2 ** max(0, attempts - 1)
            await conn.execute(
                update(t)
                .where(t.c.id == task_id)
                .values(
                    status="queued",
                    session_id=None,
                    fault=fault,
                    next_attempt=now + timedelta(seconds=delay) if backoff else None,
                )
            )
            return
        await self._finish(conn, task_id, now, "fault", fault=fault)

    async def _finish(
        self,
        conn: AsyncConnection,
        task_id: int,
        now: datetime,
        status: str,
        *,
        result: dict[str, Any] | None = None,
        fault: dict[str, Any] | None = None,
    ) -> None:
        values: dict[str, Any] = {"status": status, "finished": now, "session_id": None}
        if result is not None:
            values["result"] = result
        if fault is not None:
            values["fault"] = fault
        await conn.execute(update(t).where(t.c.id == task_id).values(**values))

    async def _provision_answer(
        self, conn: AsyncConnection, ctx: SessionContext, event: cs.Event
    ) -> None:
        provision = ctx.extra.get("provision") or {}
        devices = tables.devices
        if isinstance(event, cs.ResponseReceived):
            values: dict[str, Any] = {
                "cr_username": provision["username"],
                "cr_password_enc": provision["password"],
            }
            if provision.get("interval"):
                interval = provision["interval"]
                values["periodic_inform_interval"] = interval
                values["inform_deadline"] = ctx.now + timedelta(
                    seconds=2 * interval + self.settings.silent_grace
                )
            if provision.get("acs_username"):
                # the device uses these from its next session on (stored as HA1 only)
                ha1 = hash_credentials(
                    provision["acs_username"],
                    self.box.open(provision["acs_password"]),
                    self.settings.cwmp_realm,
                )
                values.update(
                    cwmp_username=provision["acs_username"],
                    cwmp_ha1_md5=ha1["MD5"],
                    cwmp_ha1_sha256=ha1["SHA-256"],
                )
            await conn.execute(
                update(devices).where(devices.c.id == ctx.device_id).values(**values)
            )
            return
        # Refused (or unanswered): do not retry every session; the next BOOTSTRAP will.
        # cr_username "" marks "tried"; NULL means "never tried".
        await conn.execute(
            update(devices).where(devices.c.id == ctx.device_id).values(cr_username="")
        )
        if isinstance(event, cs.FaultReceived):
            await _cpe_fault(
                conn,
                ctx,
                event.fault.fault_code,
                event.fault.fault_string,
                {"bootstrap_provisioning": True},
            )

    # --- sessions that end badly ------------------------------------------------------

    async def on_session_closed(
        self, conn: AsyncConnection, device_id: str, reason: str, now: datetime
    ) -> None:
        """Whatever was in flight goes back to the queue at once (or faults after
        ``task_max_attempts``): the CPE never answered, so nothing was half-done by us."""
        rows = (
            await conn.execute(
                select(t.c.id, t.c.attempts).where(t.c.device_id == device_id, t.c.status == "sent")
            )
        ).all()
        for row in rows:
            await self._fail(
                conn,
                device_id,
                now,
                row.id,
                faults.ACS_SESSION_LOST,
                reason,
                source="acs",
                transient=True,
                attempts=row.attempts,
                backoff=False,
            )


async def _cpe_fault(
    conn: AsyncConnection,
    ctx: SessionContext,
    code: int,
    string: str,
    detail: dict[str, Any],
    *,
    task_id: int | None = None,
) -> None:
    """Record a fault the CPE reported in this session."""
    await fault_log.record(
        conn,
        device_id=ctx.device_id,
        task_id=task_id,
        now=ctx.now,
        source="cpe",
        code=code,
        string=string,
        detail=detail,
    )
