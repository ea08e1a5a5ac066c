"""What the answer to each ACS RPC means, keyed by response type: where its result goes (the
parameter tree, the device row) and how the task moves on. Adding an RPC adds a line here.

Each entry gets the task's spec (validated again from its stored arguments) and the
response, does its writes in the session's transaction, and returns an ``Outcome``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from acs.cwmp import faults
from acs.cwmp import messages as m
from acs.cwmp.soap import to_plain
from acs.db import hot, queries
from acs.db.types import JSONDoc, UTCDateTime
from acs.services import device_credentials, events, monitoring, task_specs
from acs.services import task_lifecycle as lifecycle
from acs.services.inform import inform_deadline, parameter_patch, set_values_patch
from acs.services.task_lifecycle import Move


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a task moves on after its answer: ``result`` is merged into what the task already
    recorded (a firmware's expected version...); ``wait`` sets its deadline; ``fault`` fails
    it (a success that says something impossible); ``end_session``: nothing may follow."""

    move: Move = Move.COMPLETE
    result: dict[str, Any] = field(default_factory=dict)
    wait: Literal["transfer", "boot"] | None = None
    fault: tuple[int, str] | None = None
    end_session: bool = False


@dataclass(frozen=True, slots=True)
class Applying:
    """What an entry may use: the transaction and whose answer it is."""

    tx: hot.Transaction
    device_id: str
    task_id: int
    now: datetime
    silent_grace: int  # seconds past a missed periodic Inform before a device is late
    watched: tuple[str, ...] = ()  # ACS_WATCHED_PARAMETERS


Apply = Callable[[Applying, Any, Any], Awaitable[Outcome]]


def plain(message: Any) -> Any:
    """A message as JSON result data, without the "@type" markers."""
    return _strip_types(to_plain(message))


def _strip_types(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_types(v) for k, v in value.items() if k != "@type"}
    if isinstance(value, list):
        return [_strip_types(v) for v in value]
    return value


async def _recorded(a: Applying, spec: Any, response: Any) -> Outcome:
    """Done; the response is the result (ScheduleInform, GetQueuedTransfers...)."""
    return Outcome(result=plain(response))


# An answer with more entries than this is recorded in the task as its count only: the values
# are in the parameter tree, and a copy of a whole tree (tens of thousands of entries from a
# TR-181 gateway asked for "Device.") in the task's result cost as much again.
LISTED_ENTRIES = 1000


def _listing(response: Any, entries: tuple[Any, ...]) -> dict[str, Any]:
    if len(entries) > LISTED_ENTRIES:
        return {"parameter_count": len(entries)}
    return plain(response)  # type: ignore[no-any-return]


async def _parameter_values(
    a: Applying, spec: Any, response: m.GetParameterValuesResponse
) -> Outcome:
    if a.watched:
        changed = await monitoring.watched_changes(
            a.tx, a.device_id, response.parameter_list, a.watched
        )
        await events.record(a.tx, a.now, changed)
    params = response.parameter_list
    if len(params) > queries.LARGE_PATCH:  # a whole tree: tens of thousands of entries
        patch = await asyncio.to_thread(parameter_patch, params, a.now)
    else:
        patch = parameter_patch(params, a.now)
    await queries.merge_parameters(a.tx, a.device_id, patch)
    return Outcome(result=_listing(response, params))


async def _parameter_names(
    a: Applying, spec: Any, response: m.GetParameterNamesResponse
) -> Outcome:
    patch = {
        p.name: {"writable": p.writable, "object": True}
        if p.name.endswith(".")
        else {"writable": p.writable}
        for p in response.parameter_list
        if p.name
    }
    await queries.merge_parameters(a.tx, a.device_id, patch)
    return Outcome(result=_listing(response, response.parameter_list))


_INTERVAL = hot.Statement(
    "UPDATE devices SET periodic_inform_interval = :interval, inform_deadline = :deadline, "
    f"{monitoring.WATCHED_NOW} WHERE id = :id",
    binds={"deadline": UTCDateTime(), "now": UTCDateTime()},
)


async def _set_values(a: Applying, spec: Any, response: m.SetParameterValuesResponse) -> Outcome:
    request = spec.to_message("")
    await queries.merge_parameters(
        a.tx, a.device_id, set_values_patch(request.parameter_list, a.now)
    )
    for p in request.parameter_list:
        if p.name.endswith(".ManagementServer.PeriodicInformInterval") and isinstance(p.value, int):
            # watched from now on at the new interval (a longer one would be flagged silent
            # at the old deadline, before the device's next Inform)
            deadline = inform_deadline(a.now, p.value, a.silent_grace)
            await a.tx.execute(
                _INTERVAL,
                interval=p.value,
                deadline=deadline,
                watched=deadline is not None,
                now=a.now,
                id=a.device_id,
            )
    return Outcome(
        result={
            "status": response.status,
            "parameter_key": request.parameter_key,
            "applied": "after reboot" if response.status == 1 else "now",
        }
    )


async def _parameter_attributes(
    a: Applying, spec: Any, response: m.GetParameterAttributesResponse
) -> Outcome:
    patch = {
        p.name: {"notification": p.notification, "access_list": list(p.access_list)}
        for p in response.parameter_list
    }
    await queries.merge_parameters(a.tx, a.device_id, patch)
    return Outcome(result=_listing(response, response.parameter_list))


async def _set_attributes(
    a: Applying, spec: Any, response: m.SetParameterAttributesResponse
) -> Outcome:
    patch: dict[str, dict[str, Any]] = {}
    for attributes in spec.parameter_list:
        if attributes.name.endswith("."):
            continue  # a whole subtree: the next GetParameterAttributes tells
        entry = patch.setdefault(attributes.name, {})
        if attributes.notification_change:
            entry["notification"] = attributes.notification
        if attributes.access_list_change:
            entry["access_list"] = list(attributes.access_list)
    await queries.merge_parameters(a.tx, a.device_id, patch)
    return Outcome(result=plain(response))


def _object_status(response: m.AddObjectResponse | m.DeleteObjectResponse) -> Outcome | None:
    """TR-069 A.3.2.6/7: Status is 0 (done) or 1 (done at the next reboot). Seen in the field:
    a CPE putting a fault code there; that is a failure, not a done with a bogus instance."""
    if response.status in (0, 1):
        return None
    string = (
        f"{type(response).__name__} with Status {response.status} "
        "(only 0 or 1 are defined): taken as a failure"
    )
    return Outcome(Move.FAIL, plain(response), fault=(faults.ACS_INVALID_RESPONSE, string))


async def _object_added(a: Applying, spec: Any, response: m.AddObjectResponse) -> Outcome:
    refused = _object_status(response)
    if refused is not None:
        return refused
    path = f"{spec.object_name}{response.instance_number}."
    await queries.merge_parameters(a.tx, a.device_id, {path: {"object": True}})
    return Outcome(result={**plain(response), "object": path})


async def _object_deleted(a: Applying, spec: Any, response: m.DeleteObjectResponse) -> Outcome:
    refused = _object_status(response)
    if refused is not None:
        return refused
    await queries.delete_parameter_subtree(a.tx, a.device_id, spec.object_name)
    return Outcome(result=plain(response))


_RPC_METHODS = hot.Statement(
    "UPDATE devices SET rpc_methods = :methods WHERE id = :id", binds={"methods": JSONDoc}
)


async def _rpc_methods(a: Applying, spec: Any, response: m.GetRPCMethodsResponse) -> Outcome:
    await a.tx.execute(_RPC_METHODS, methods=list(response.method_list), id=a.device_id)
    return Outcome(result=plain(response))


async def _transfer(
    a: Applying, spec: Any, response: m.DownloadResponse | m.UploadResponse
) -> Outcome:
    if response.status == 1:  # a TransferComplete will follow
        return Outcome(Move.AWAIT_TRANSFER, plain(response), wait="transfer")
    return Outcome(result=plain(response))


async def _scheduled(a: Applying, spec: Any, response: m.ScheduleDownloadResponse) -> Outcome:
    return Outcome(Move.AWAIT_TRANSFER, plain(response), wait="transfer")


async def _rebooting(
    a: Applying, spec: Any, response: m.RebootResponse | m.FactoryResetResponse
) -> Outcome:
    # CPEs ignore anything sent after RebootResponse
    return Outcome(Move.AWAIT_BOOT, plain(response), wait="boot", end_session=True)


async def _factory_reset(a: Applying, spec: Any, response: m.FactoryResetResponse) -> Outcome:
    # it comes back with its factory ACS credentials: its own pair would lock it out
    await device_credentials.forget(a.tx, a.device_id)
    return await _rebooting(a, spec, response)


async def _transfer_cancelled(
    a: Applying, spec: Any, response: m.CancelTransferResponse
) -> Outcome:
    """The transfer with the CommandKey is off: its task (waiting for a TransferComplete that
    will not come, or not yet sent) is cancelled rather than left to time out."""
    moved = await lifecycle.move_all(
        a.tx,
        Move.CANCEL,
        a.now,
        where=f"device_id = :device_id AND command_key = :key AND name IN ({_TRANSFERS})",
        params={"device_id": a.device_id, "key": spec.command_key},
        returning=True,
    )
    assert isinstance(moved, list)
    return Outcome(result={**plain(response), "cancelled_tasks": [row.id for row in moved]})


_TRANSFERS = ", ".join(f"'{name}'" for name in sorted(task_specs.TRANSFER_TASKS))

RESULTS: dict[type, Apply] = {
    m.GetRPCMethodsResponse: _rpc_methods,
    m.GetParameterNamesResponse: _parameter_names,
    m.GetParameterValuesResponse: _parameter_values,
    m.SetParameterValuesResponse: _set_values,
    m.GetParameterAttributesResponse: _parameter_attributes,
    m.SetParameterAttributesResponse: _set_attributes,
    m.AddObjectResponse: _object_added,
    m.DeleteObjectResponse: _object_deleted,
    m.DownloadResponse: _transfer,
    m.UploadResponse: _transfer,
    m.ScheduleDownloadResponse: _scheduled,
    m.RebootResponse: _rebooting,
    m.FactoryResetResponse: _factory_reset,
    m.CancelTransferResponse: _transfer_cancelled,
    m.ScheduleInformResponse: _recorded,
    m.GetQueuedTransfersResponse: _recorded,
    m.GetAllQueuedTransfersResponse: _recorded,
}


async def apply(a: Applying, name: str, arguments: dict[str, Any], response: Any) -> Outcome:
    """The outcome of a task's successful response."""
    spec = task_specs.load(name, arguments)
    return await RESULTS.get(type(response), _recorded)(a, spec, response)
