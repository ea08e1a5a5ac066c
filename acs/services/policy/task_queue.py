"""The task queue inside sessions: queued tasks run in order, one RPC per exchange.

Per device, tasks run in the order queued (priority first); Reboot and FactoryReset run last
and end the session (CPEs ignore anything sent after them). A task is ``sent`` only while its
request is in flight in the current session: a session that dies puts it back to ``queued``,
so nothing is ever half-done or lost. What the answer means is ``results.RESULTS``; how the
task's status moves, ``acs.services.task_lifecycle``.

Outcomes that arrive later are matched here too: a TransferComplete by its CommandKey (in any
later session, whatever a lost answer left the task in), a boot Inform for the Reboot or
FactoryReset waiting for it, the running software version for a firmware Download, and an
answer to a request of an earlier session by its cwmp:ID.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import ValidationError

from acs.config import Settings
from acs.cwmp import faults, xsd
from acs.cwmp import messages as m
from acs.cwmp import session as cs
from acs.db import hot
from acs.db.queries import DeviceAuth
from acs.services import fault_log, task_specs
from acs.services import task_lifecycle as lifecycle
from acs.services.policy import results
from acs.services.policy.base import Answer, Answered, Component, Offer, SessionContext
from acs.services.task_lifecycle import Move, TaskStatus

log = logging.getLogger("acs.tasks")


class DownloadResolver(Protocol):
    """Turns a Download of a stored file or of the device's configuration into the CWMP
    request, with a fresh signed URL (``acs.services.provisioning``)."""

    async def resolve(
        self, tx: hot.Transaction, ctx: SessionContext, spec: Any, command_key: str
    ) -> tuple[m.Download, dict[str, Any]]: ...


_TERMINAL = ", ".join(f"'{name}'" for name in sorted(task_specs.TERMINAL_TASKS))
_TRANSFERS = ", ".join(f"'{name}'" for name in sorted(task_specs.TRANSFER_TASKS))
_ROW = ", ".join(lifecycle.COLUMNS)
_NEXT = hot.Statement(
    f"SELECT {_ROW} FROM tasks WHERE device_id = :device_id AND status = 'queued' "
    f"ORDER BY CASE WHEN name IN ({_TERMINAL}) THEN 1 ELSE 0 END, priority DESC, id LIMIT 1",
    columns=lifecycle.COLUMNS,
    types=lifecycle.TYPES,
)
_TASK = hot.Statement(
    f"SELECT {_ROW} FROM tasks WHERE id = :id AND device_id = :device_id",
    columns=lifecycle.COLUMNS,
    types=lifecycle.TYPES,
)
_IN_FLIGHT = hot.Statement(
    "SELECT id, attempts FROM tasks WHERE device_id = :device_id AND status = 'sent'",
    columns=("id", "attempts"),
)
_BY_COMMAND_KEY = hot.Statement(
    "SELECT id, status, result FROM tasks WHERE device_id = :device_id "
    f"AND command_key = :key AND name IN ({_TRANSFERS}) "
    "AND status IN ('awaiting_transfer', 'sent', 'queued') ORDER BY id DESC LIMIT 1",
    columns=("id", "status", "result"),
    types={"result": lifecycle.TYPES["result"]},
)
_AWAITING_FIRMWARE = hot.Statement(
    "SELECT id, result FROM tasks WHERE device_id = :device_id AND name = 'Download' "
    "AND status = 'awaiting_boot'",
    columns=("id", "result"),
    types={"result": lifecycle.TYPES["result"]},
)
_LATE_ANSWER = hot.Statement(
    "UPDATE tasks SET result = :result WHERE id = :id", binds={"result": lifecycle.TYPES["result"]}
)


class TaskQueue(Component[None]):
    name = "tasks"

    def __init__(self, settings: Settings, downloads: DownloadResolver | None = None):
        self.settings = settings
        self.downloads = downloads

    # --- the Inform: boot events finish what waited for them --------------------------

    async def on_inform(
        self, tx: hot.Transaction, ctx: SessionContext, inform: m.Inform, known: DeviceAuth
    ) -> None:
        if ctx.facts.booted and known.exists:  # a new device has no tasks yet
            await self._booted(tx, ctx, inform.event)
        return None

    async def _booted(
        self, tx: hot.Transaction, ctx: SessionContext, events: tuple[m.EventStruct, ...]
    ) -> None:
        codes = set(ctx.facts.events)
        reboot_keys = [e.command_key for e in events if e.event_code == "M Reboot"]
        conditions, params = [], {"device_id": ctx.device_id}
        for n, key in enumerate(reboot_keys):
            # The command key names the task, whatever state a lost answer left it in.
            conditions.append(f"(name = 'Reboot' AND command_key = :key{n})")
            params[f"key{n}"] = key
        if "1 BOOT" in codes or reboot_keys:
            conditions.append("(name = 'Reboot' AND status = 'awaiting_boot')")
        if "0 BOOTSTRAP" in codes or "1 BOOT" in codes:
            # A factory reset device comes back with 0 BOOTSTRAP; seen in the field, with
            # 1 BOOT only (no BOOTSTRAP, no M Reboot): either means it is back.
            conditions.append("(name = 'FactoryReset' AND status = 'awaiting_boot')")
        if conditions:
            await lifecycle.move_all(
                tx,
                Move.COMPLETE,
                ctx.now,
                where=f"device_id = :device_id AND ({' OR '.join(conditions)})",
                params=params,
                result={"booted": xsd.format_datetime(ctx.now), "events": sorted(codes)},
            )
        # Firmware Downloads waiting for the reboot into the new image: check its version.
        for row in await tx.fetch(_AWAITING_FIRMWARE, device_id=ctx.device_id):
            await self._verify_firmware(tx, ctx, row.id, row.result or {})

    async def _verify_firmware(
        self, tx: hot.Transaction, ctx: SessionContext, task_id: int, result: dict[str, Any]
    ) -> None:
        """A firmware Download is done only when the device runs the file's version."""
        expected = result.get("expected_version")
        reported = ctx.facts.software_version
        result = {**result, "software_version": reported}
        if reported == expected:
            await lifecycle.move(tx, task_id, Move.COMPLETE, ctx.now, result=result)
            return
        string = (
            f"after the upgrade the device reports software version {reported!r}, "
            f"expected {expected!r} (the version of the file)"
        )
        fault = {"code": faults.ACS_FIRMWARE_MISMATCH, "string": string}
        if await lifecycle.move(tx, task_id, Move.FAIL, ctx.now, result=result, fault=fault):
            await fault_log.record(
                tx,
                device_id=ctx.device_id,
                task_id=task_id,
                now=ctx.now,
                source="acs",
                code=faults.ACS_FIRMWARE_MISMATCH,
                string=string,
            )

    # --- CPE requests -----------------------------------------------------------------

    async def on_cpe_request(
        self, tx: hot.Transaction, ctx: SessionContext, request: Any, state: None
    ) -> None:
        if isinstance(request, m.TransferComplete):
            await self._transfer_complete(tx, ctx, request)
        elif isinstance(request, m.AutonomousTransferComplete) and request.fault_struct.fault_code:
            await fault_log.from_cpe(
                tx,
                device_id=ctx.device_id,
                now=ctx.now,
                code=request.fault_struct.fault_code,
                string=request.fault_struct.fault_string,
                detail={"autonomous_transfer": results.plain(request)},
            )
        return None

    async def _transfer_complete(
        self, tx: hot.Transaction, ctx: SessionContext, tc: m.TransferComplete
    ) -> None:
        """Correlate by CommandKey, in this or any later session, with or without the
        ``7 TRANSFER COMPLETE`` event, whatever a lost answer left the task in."""
        row = await tx.first(_BY_COMMAND_KEY, device_id=ctx.device_id, key=tc.command_key)
        if row is None:
            log.info(
                "%s: TransferComplete for unknown CommandKey %r", ctx.device_id, tc.command_key
            )
            await fault_log.record(
                tx,
                device_id=ctx.device_id,
                task_id=None,
                now=ctx.now,
                source="acs",
                code=faults.ACS_UNMATCHED_TRANSFER,
                detail={"transfer_complete": results.plain(tc)},
            )
            return
        outcome = {
            "start_time": xsd.format_datetime(tc.start_time) if tc.start_time else None,
            "complete_time": xsd.format_datetime(tc.complete_time) if tc.complete_time else None,
        }
        result = {**(row.result or {}), "transfer": outcome}
        code = tc.fault_struct.fault_code
        if code == 0 and "expected_version" in result:
            # firmware: done only once the device runs the new version
            if ctx.facts.booted:
                await self._verify_firmware(tx, ctx, row.id, result)
            else:
                await lifecycle.move(
                    tx,
                    row.id,
                    Move.AWAIT_BOOT,
                    ctx.now,
                    result=result,
                    expires=ctx.now + timedelta(seconds=self.settings.boot_timeout),
                )
            return
        if code == 0:
            await lifecycle.move(tx, row.id, Move.COMPLETE, ctx.now, result=result)
            return
        string = tc.fault_struct.fault_string or faults.describe(code)
        fault = {"code": code, "string": string}
        await lifecycle.move(tx, row.id, Move.FAIL, ctx.now, result=result, fault=fault)
        await fault_log.from_cpe(
            tx,
            device_id=ctx.device_id,
            now=ctx.now,
            code=code,
            string=string,
            detail={"transfer_complete": results.plain(tc)},
            task_id=row.id,
        )

    # --- ACS requests -----------------------------------------------------------------

    async def next_request(
        self, tx: hot.Transaction, ctx: SessionContext, state: None
    ) -> Offer[None] | None:
        if ctx.has_queued_tasks is False:
            return None  # known at this request's lookup: nothing queued
        for _ in range(1000):  # bounded: each turn finishes a task or returns
            row = await tx.first(_NEXT, device_id=ctx.device_id)
            if row is None:
                return None
            if row.expires is not None and row.expires <= ctx.now:
                await lifecycle.move(tx, row.id, Move.EXPIRE, ctx.now)
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
                        tx, ctx, spec, row.command_key or ""
                    )
                    sent_result = {**(row.result or {}), **extra}
                else:
                    message = spec.to_message(row.command_key or "")
            except (ValidationError, ValueError, LookupError) as exc:
                await self._fail(
                    tx, ctx.device_id, ctx.now, row.id, faults.ACS_INVALID_TASK, str(exc)[:500]
                )
                continue
            await lifecycle.move(
                tx,
                row.id,
                Move.SEND,
                ctx.now,
                started=row.started or ctx.now,
                attempts=row.attempts + 1,
                session_id=ctx.session_id,
                result=sent_result,
            )
            return Offer(message, str(row.id), None)
        return None

    # --- answers ----------------------------------------------------------------------

    async def on_answer(
        self, tx: hot.Transaction, ctx: SessionContext, ref_id: str, answer: Answer, state: None
    ) -> Answered[None]:
        row = await tx.first(_TASK, id=int(ref_id), device_id=ctx.device_id)
        if row is None:
            return Answered(None)  # the device (and its tasks) were deleted meanwhile
        if isinstance(answer, cs.ResponseReceived):
            return Answered(
                None, await self._respond(tx, ctx, row, answer.response, TaskStatus.SENT)
            )
        if row.status != TaskStatus.SENT:
            return Answered(None)  # cancelled while in flight
        if isinstance(answer, cs.FaultReceived):
            await self._faulted(tx, ctx, row, answer.fault)
        else:
            await self._fail(
                tx,
                ctx.device_id,
                ctx.now,
                row.id,
                faults.ACS_NO_ANSWER,
                answer.reason,
                transient=True,
                attempts=row.attempts,
            )
        return Answered(None)

    async def on_stray_answer(
        self, tx: hot.Transaction, ctx: SessionContext, ref_id: str, message: Any
    ) -> None:
        """The answer to a task sent in the session this one replaced: the replacement put it
        back in the queue, and its answer still counts."""
        row = await tx.first(_TASK, id=int(ref_id), device_id=ctx.device_id)
        if row is None:
            return
        log.info("%s: answer to task %s of an earlier session credited", ctx.device_id, row.id)
        if not isinstance(message, m.Fault):
            await self._respond(tx, ctx, row, message, TaskStatus.QUEUED)
        elif (
            row.status == TaskStatus.QUEUED
            and message.fault_code not in faults.TRANSIENT_CPE_FAULTS
        ):
            await self._faulted(tx, ctx, row, message)  # a transient fault: it is queued again

    async def _respond(
        self,
        tx: hot.Transaction,
        ctx: SessionContext,
        row: Any,
        response: Any,
        waiting: TaskStatus,
    ) -> bool:
        """Apply a successful response to a task in status ``waiting`` (``sent``, or ``queued``
        for an answer of an earlier session) and move it on; whether the session must end."""
        if row.status != waiting:
            # cancelled while in flight: keep what the CPE said, change nothing else
            late = {**(row.result or {}), "late_answer": results.plain(response)}
            await tx.execute(_LATE_ANSWER, id=row.id, result=late)
            return False
        applying = results.Applying(
            tx,
            ctx.device_id,
            row.id,
            ctx.now,
            self.settings.silent_grace,
            self.settings.watched_parameter_list,
        )
        outcome = await results.apply(applying, row.name, row.arguments, response)
        values: dict[str, Any] = {"result": {**(row.result or {}), **outcome.result}}
        if outcome.wait == "transfer":
            values["expires"] = ctx.now + timedelta(seconds=self.settings.transfer_timeout)
        elif outcome.wait == "boot":
            values["expires"] = ctx.now + timedelta(seconds=self.settings.boot_timeout)
        if outcome.fault is not None:
            code, string = outcome.fault
            values["fault"] = {"code": code, "string": string}
        moved = await lifecycle.move(tx, row.id, outcome.move, ctx.now, **values)
        if moved and outcome.fault is not None:
            code, string = outcome.fault
            await fault_log.record(
                tx,
                device_id=ctx.device_id,
                task_id=row.id,
                now=ctx.now,
                source="acs",
                code=code,
                string=string,
            )
        return outcome.end_session

    async def _faulted(
        self, tx: hot.Transaction, ctx: SessionContext, row: Any, fault: m.Fault
    ) -> None:
        detail = (
            {"set_parameter_values_fault": results.plain(fault.set_parameter_values_fault)}
            if fault.set_parameter_values_fault
            else None
        )
        await self._fail(
            tx,
            ctx.device_id,
            ctx.now,
            row.id,
            fault.fault_code,
            fault.fault_string,
            source="cpe",
            detail=detail,
            transient=fault.fault_code in faults.TRANSIENT_CPE_FAULTS,
            attempts=row.attempts,
        )

    async def _fail(
        self,
        tx: hot.Transaction,
        device_id: str,
        now: datetime,
        task_id: int,
        code: int,
        string: str,
        *,
        source: str = "acs",
        detail: dict[str, Any] | None = None,
        transient: bool = False,
        attempts: int = 0,
        backoff: bool = True,
    ) -> None:
        """Record a fault; retry a transient one with backoff while attempts remain."""
        string = string or faults.describe(code)
        await fault_log.record(
            tx,
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
            await lifecycle.move(
                tx,
                task_id,
                Move.REQUEUE,
                now,
                fault=fault,
                next_attempt=now + timedelta(seconds=delay) if backoff else None,
            )
            return
        await lifecycle.move(tx, task_id, Move.FAIL, now, fault=fault)

    # --- sessions that end badly ------------------------------------------------------

    async def on_session_closed(
        self, tx: hot.Transaction, device_id: str, reason: str, now: datetime
    ) -> None:
        """Whatever was in flight goes back to the queue at once (or faults after
        ``task_max_attempts``): the CPE never answered, so nothing was half-done by us."""
        for row in await tx.fetch(_IN_FLIGHT, device_id=device_id):
            await self._fail(
                tx,
                device_id,
                now,
                row.id,
                faults.ACS_SESSION_LOST,
                reason,
                transient=True,
                attempts=row.attempts,
                backoff=False,
            )
