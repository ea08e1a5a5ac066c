"""The task lifecycle as data: statuses, the moves between them, and the one way to move.

Theory of operation
-------------------
A task is a row (``tasks``): one ACS RPC for one device. Its ``status`` changes only through
``move`` (one task) and ``move_all`` (a set of them, by a condition), which turn a ``Move``
into ``UPDATE tasks SET status = <to> ... WHERE <which> AND status IN (<allowed>)``, the
allowed statuses being those this table lets the move leave. The database decides, so a race
(an operator cancels a task whose answer is arriving; two workers time out the same task) has
one winner, and the loser learns it from the result: ``move`` says whether it applied.

Every move out of ``sent`` clears ``session_id`` (a task is ``sent`` only while its request is
in flight in that session); every move into a finished status stamps ``finished``.

Statuses (``TaskStatus``) and moves (``Move``)::

    queued --send--> sent --complete--> done
                     sent --await_transfer--> awaiting_transfer --complete--> done
                     sent --await_boot--> awaiting_boot --complete--> done
                     sent, awaiting_* --fail--> fault
                     sent --requeue--> queued            (no answer, transient fault)
    awaiting_transfer --await_boot--> awaiting_boot      (firmware: now the reboot into it)
    awaiting_* --time_out--> fault
    queued --expire--> expired
    queued, sent, awaiting_* --cancel--> cancelled
    fault, expired, cancelled --retry--> queued          (an operator)

A task whose answer was lost (its session died and requeued it) may still be finished by what
the CPE reports later, matched by CommandKey or cwmp:ID: hence ``complete``, ``fail`` and the
``await_*`` moves from ``queued`` too.

Every move that finishes a task, or requeues it after a fault, is logged and counted here
(``metrics.TASK_OUTCOMES``), one line per task (``OUTCOMES``), once its transaction commits
(``acs.logs.deferred``); the statement returns the task's id, device and name for them. A
task done or faulted is also an event (``EVENTS``), written in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from acs import logs
from acs.db import hot
from acs.db.types import JSONDoc, UTCDateTime
from acs.services import events, metrics
from acs.services.events import EventType, NewEvent

log = logging.getLogger("acs.tasks")


class TaskStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"  # its request is in flight in the device's current session
    AWAITING_TRANSFER = "awaiting_transfer"  # a TransferComplete will tell
    AWAITING_BOOT = "awaiting_boot"  # a boot Inform will tell
    DONE = "done"
    FAULT = "fault"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Move(StrEnum):
    SEND = "send"
    COMPLETE = "complete"
    AWAIT_TRANSFER = "await_transfer"
    AWAIT_BOOT = "await_boot"
    FAIL = "fail"
    REQUEUE = "requeue"
    TIME_OUT = "time_out"
    EXPIRE = "expire"
    CANCEL = "cancel"
    RETRY = "retry"


S = TaskStatus
TRANSITIONS: Final[dict[tuple[TaskStatus, Move], TaskStatus]] = {
    (S.QUEUED, Move.SEND): S.SENT,
    (S.SENT, Move.COMPLETE): S.DONE,
    (S.AWAITING_TRANSFER, Move.COMPLETE): S.DONE,
    (S.AWAITING_BOOT, Move.COMPLETE): S.DONE,
    (S.QUEUED, Move.COMPLETE): S.DONE,  # the answer was lost, the outcome was not
    (S.SENT, Move.AWAIT_TRANSFER): S.AWAITING_TRANSFER,
    (S.QUEUED, Move.AWAIT_TRANSFER): S.AWAITING_TRANSFER,
    (S.SENT, Move.AWAIT_BOOT): S.AWAITING_BOOT,
    (S.AWAITING_TRANSFER, Move.AWAIT_BOOT): S.AWAITING_BOOT,
    (S.QUEUED, Move.AWAIT_BOOT): S.AWAITING_BOOT,
    (S.QUEUED, Move.FAIL): S.FAULT,  # no longer valid when its turn came, or a lost answer
    (S.SENT, Move.FAIL): S.FAULT,
    (S.AWAITING_TRANSFER, Move.FAIL): S.FAULT,
    (S.AWAITING_BOOT, Move.FAIL): S.FAULT,
    (S.SENT, Move.REQUEUE): S.QUEUED,
    (S.AWAITING_TRANSFER, Move.TIME_OUT): S.FAULT,
    (S.AWAITING_BOOT, Move.TIME_OUT): S.FAULT,
    (S.QUEUED, Move.EXPIRE): S.EXPIRED,
    (S.QUEUED, Move.CANCEL): S.CANCELLED,
    (S.SENT, Move.CANCEL): S.CANCELLED,
    (S.AWAITING_TRANSFER, Move.CANCEL): S.CANCELLED,
    (S.AWAITING_BOOT, Move.CANCEL): S.CANCELLED,
    (S.FAULT, Move.RETRY): S.QUEUED,
    (S.EXPIRED, Move.RETRY): S.QUEUED,
    (S.CANCELLED, Move.RETRY): S.QUEUED,
}
FINISHED: Final = frozenset({S.DONE, S.FAULT, S.EXPIRED, S.CANCELLED})
# The moves logged and counted, as the line names them: "task done", "task timed out", ...
OUTCOMES: Final = {
    Move.COMPLETE: "done",
    Move.FAIL: "fault",
    Move.TIME_OUT: "timed out",
    Move.EXPIRE: "expired",
    Move.CANCEL: "cancelled",
    Move.REQUEUE: "requeued",
}


# The moves recorded as events (services/events.py).
EVENTS: Final = {
    Move.COMPLETE: EventType.TASK_DONE,
    Move.FAIL: EventType.TASK_FAULT,
    Move.TIME_OUT: EventType.TASK_FAULT,
}


def target(move: Move) -> TaskStatus:
    """The status a move leads to (one per move)."""
    return _TARGET[move]


def allowed(move: Move) -> frozenset[TaskStatus]:
    """The statuses a move may leave."""
    return _ALLOWED[move]


_TARGET: Final = {move: to for (_, move), to in TRANSITIONS.items()}
_ALLOWED: Final = {
    move: frozenset(s for (s, m), _ in TRANSITIONS.items() if m is move) for move in Move
}
assert all(  # a move leads to one status, whichever it leaves
    to is _TARGET[move] for (_, move), to in TRANSITIONS.items()
), "a move with two targets"


@dataclass(frozen=True, slots=True)
class Sql:
    """A value given as SQL over the row (``Sql("attempts + 1")``), not a parameter."""

    text: str


# The columns of a task, for statements that return whole rows, and the types to convert.
COLUMNS: Final = (
    "id",
    "device_id",
    "name",
    "arguments",
    "status",
    "priority",
    "command_key",
    "created",
    "created_by",
    "started",
    "finished",
    "next_attempt",
    "expires",
    "attempts",
    "result",
    "fault",
    "session_id",
)
TYPES: Final[dict[str, Any]] = {
    **{c: JSONDoc for c in ("arguments", "result", "fault")},
    **{c: UTCDateTime() for c in ("created", "started", "finished", "next_attempt", "expires")},
}

# What a reported move returns when its caller wants no rows (for its line and count).
_REPORTED_COLUMNS: Final = ("id", "device_id", "name")

_STATEMENTS: dict[
    tuple[Move, str, tuple[str, ...], tuple[str, ...], tuple[str, ...]], hot.Statement
] = {}


def _statement(
    move: Move,
    where: str,
    params: tuple[str, ...],
    values: Mapping[str, Any],
    returning: tuple[str, ...],
) -> hot.Statement:
    names = tuple(sorted(values))
    key = (move, where, params, names, returning)
    statement = _STATEMENTS.get(key)
    if statement is not None:
        return statement
    to = target(move)
    sets = [f"status = '{to.value}'"]
    if to in FINISHED:
        sets.append("finished = :now")
    if to is not S.SENT:
        sets.append("session_id = NULL")
    for name in names:
        value = values[name]
        sets.append(f"{name} = {value.text}" if isinstance(value, Sql) else f"{name} = :v_{name}")
    statuses = ", ".join(f"'{s.value}'" for s in sorted(allowed(move)))
    sql = f"UPDATE tasks SET {', '.join(sets)} WHERE ({where}) AND status IN ({statuses})"
    binds: dict[str, Any] = {"now": UTCDateTime()}
    binds.update({f"v_{n}": TYPES[n] for n in names if n in TYPES})
    if returning:
        sql += f" RETURNING {', '.join(returning)}"
    statement = hot.Statement(sql, columns=returning, binds=binds, types=TYPES)
    _STATEMENTS[key] = statement
    return statement


def _bound(values: Mapping[str, Any]) -> dict[str, Any]:
    return {f"v_{k}": v for k, v in values.items() if not isinstance(v, Sql)}


def _reported(how: Move) -> bool:
    return how in OUTCOMES


async def _report(
    tx: hot.Transaction, how: Move, now: datetime, rows: Sequence[Any], values: Mapping[str, Any]
) -> None:
    """A line per task moved and its count (after the commit): "task done", "task fault"
    with its code...; a ``task.done``/``task.fault`` event for each finished one."""
    outcome = OUTCOMES[how]
    label = outcome.replace(" ", "_")
    for row in rows:
        logs.on_commit(metrics.TASK_OUTCOMES.labels(metrics.rpc_label(row.name), label).inc)
    fault = values.get("fault")
    code, string = (
        (fault.get("code"), fault.get("string")) if isinstance(fault, dict) else (None, None)
    )
    event_type = EVENTS.get(how)
    if event_type is not None:
        details: dict[str, Any] = {}
        if code is not None:
            details.update(code=code, fault=string)
        await events.record(
            tx,
            now,
            [
                NewEvent(event_type, row.device_id, {**details, "task": row.id, "rpc": row.name})
                for row in rows
            ],
        )
    if not log.isEnabledFor(logging.INFO):
        return
    for row in rows:
        logs.after_commit(
            log,
            logging.INFO,
            f"task {outcome}",
            task=row.id,
            device=row.device_id,
            rpc=row.name,
            code=code,
            fault=string,
        )


async def move(tx: hot.Transaction, task_id: int, how: Move, now: datetime, **values: Any) -> bool:
    """Move one task; ``False`` if its status does not allow the move (someone else moved it
    first, or it is gone). ``values`` are further columns to set (``Sql`` for expressions)."""
    if not _reported(how):
        statement = _statement(how, "id = :id", ("id",), values, returning=())
        return bool(await tx.execute(statement, id=task_id, now=now, **_bound(values)))
    statement = _statement(how, "id = :id", ("id",), values, returning=_REPORTED_COLUMNS)
    row = await tx.first(statement, id=task_id, now=now, **_bound(values))
    if row is None:
        return False
    await _report(tx, how, now, [row], values)
    return True


async def move_returning(
    tx: hot.Transaction, task_id: int, how: Move, now: datetime, **values: Any
) -> Any:
    """``move``, returning the task's row as it is after the move, or ``None``."""
    statement = _statement(how, "id = :id", ("id",), values, returning=COLUMNS)
    row = await tx.first(statement, id=task_id, now=now, **_bound(values))
    if row is not None and _reported(how):
        await _report(tx, how, now, [row], values)
    return row


async def move_all(
    tx: hot.Transaction,
    how: Move,
    now: datetime,
    *,
    where: str,
    params: Mapping[str, Any] | None = None,
    returning: bool = False,
    **values: Any,
) -> list[Any] | int:
    """Move every task matching ``where`` (SQL over ``tasks`` with ``:name`` parameters from
    ``params``) whose status allows it: the rows moved with ``returning``, else how many."""
    params = dict(params or {})
    reported = _reported(how)
    columns = COLUMNS if returning else _REPORTED_COLUMNS if reported else ()
    statement = _statement(how, where, tuple(sorted(params)), values, columns)
    if not columns:
        return await tx.execute(statement, now=now, **params, **_bound(values))
    rows = await tx.fetch(statement, now=now, **params, **_bound(values))
    if reported:
        await _report(tx, how, now, rows, values)
    return rows if returning else len(rows)
