"""What the services log: one line per finished CWMP session and per task outcome, the
session id on every line of a session, the expected 401 challenge at DEBUG (on SQLite and
PostgreSQL, no HTTP)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from acs import logs
from acs.cwmp import faults
from acs.db import queries
from acs.db.errors import StorageError
from acs.services import maintenance, tasks
from tests.services.harness import ServiceCpe, queue, rows, session

DEVICE = "00D09E-IGD-SN0001"
HOST = "192.0.2.10"


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture):
    """The lines of acs's loggers: (level, logger, message, fields, session id)."""
    caplog.set_level(logging.DEBUG, logger="acs")
    caplog.handler.addFilter(logs.ContextFilter())

    def get(*loggers: str, level: int = logging.DEBUG) -> list[tuple[Any, ...]]:
        return [
            (r.levelname, r.name, r.getMessage(), dict(getattr(r, "fields", {})), r.session_id)
            for r in caplog.records
            if r.levelno >= level and (not loggers or r.name in loggers)
        ]

    caplog.clear()
    return get


def ended(outcome: str, events: tuple[str, ...], rpcs: tuple[str, ...], ms: int | None, **more):
    return {
        "device": DEVICE,
        "outcome": outcome,
        "reason": more.get("reason"),
        "events": events,
        "rpcs": rpcs,
        "duration_ms": ms,
        "client": more.get("client", HOST),
    }


async def _session_id(db) -> str:
    [(full,)] = await rows(db, "SELECT id FROM cwmp_sessions")
    return logs.short_session_id(full)


async def test_a_session_ended_by_its_204_is_one_line(runtime, clock, lines):
    cpe = ServiceCpe(runtime)
    assert (await cpe.inform("0 BOOTSTRAP", "1 BOOT")).status == 200
    sid = await _session_id(runtime.db)
    clock.now += 2.5
    assert (await cpe.empty()).status == 204
    assert lines(level=logging.INFO) == [
        (
            "INFO",
            "acs.cwmp",
            "session ended",
            ended("204", ("0 BOOTSTRAP", "1 BOOT"), ("SetParameterValues",), 2500),
            sid,
        )
    ]
    # the challenge before credentials and the session's opening are DEBUG; the challenge
    # is answered from the DeviceId alone: the events after it are not read yet
    assert lines(level=logging.DEBUG)[:2] == [
        (
            "DEBUG",
            "acs.cwmp",
            "session refused",
            {
                "device": DEVICE,
                "outcome": "refused",
                "reason": "challenge: no credentials",
                "events": None,
                "client": HOST,
            },
            None,
        ),
        (
            "DEBUG",
            "acs.cwmp",
            "session opened",
            {"device": DEVICE, "events": ("0 BOOTSTRAP", "1 BOOT"), "client": HOST},
            sid,
        ),
    ]


async def test_wrong_credentials_are_refused_at_info(runtime, lines):
    cpe = ServiceCpe(runtime, password="wrong")
    assert (await cpe.inform("1 BOOT")).status == 401
    assert lines(level=logging.INFO) == [
        (
            "INFO",
            "acs.cwmp",
            "session refused",
            {
                "device": DEVICE,
                "outcome": "refused",
                "reason": "authentication: digest bad_response",
                "events": ("1 BOOT",),
                "client": HOST,
            },
            None,
        )
    ]


async def test_replaced_expired_and_protocol_error_sessions(runtime, clock, db, lines):
    cpe = ServiceCpe(runtime, cookies=False)
    await session(cpe, "0 BOOTSTRAP")
    assert (await cpe.inform("2 PERIODIC")).status == 200
    first = await _session_id(db)
    clock.now += 1
    assert (await cpe.inform("6 CONNECTION REQUEST")).status == 200  # starts over
    second = await _session_id(db)
    clock.now += 31
    assert await runtime.cwmp.expire_sessions() == 1
    assert (await cpe.inform("2 PERIODIC")).status == 200
    third = await _session_id(db)
    async with db.write() as conn:  # a state no request leaves: the CPE owes nothing
        [(raw,)] = (await conn.execute(text("SELECT state FROM cwmp_sessions"))).all()
        state = raw if isinstance(raw, dict) else json.loads(raw)
        state["machine"]["state"] = "acs_requests"
        await conn.execute(text("UPDATE cwmp_sessions SET state = :s"), {"s": json.dumps(state)})
    clock.now += 0.25
    assert (await cpe.post(b"")).status == 400
    assert lines("acs.cwmp", level=logging.INFO)[1:] == [
        ("INFO", "acs.cwmp", "session ended", ended("replaced", ("2 PERIODIC",), (), 1000), first),
        (
            "INFO",
            "acs.cwmp",
            "session ended",
            ended("expired", ("6 CONNECTION REQUEST",), (), 31000, client=None),
            second,
        ),
        (
            "INFO",
            "acs.cwmp",
            "session ended",
            ended(
                "protocol error",
                ("2 PERIODIC",),
                (),
                250,
                reason="cpe_empty is not allowed in state acs_requests",
            ),
            third,
        ),
    ]


def task_line(outcome: str, task: int, rpc: str, sid: str | None, code=None, fault=None):
    return (
        "INFO",
        "acs.tasks",
        f"task {outcome}",
        {"task": task, "device": DEVICE, "rpc": rpc, "code": code, "fault": fault},
        sid,
    )


async def test_each_task_outcome_is_one_line(runtime, clock, db, lines):
    cpe = ServiceCpe(runtime)
    await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    good, bad, reboot = await queue(
        runtime,
        clock,
        {"name": "GetParameterValues", "parameter_names": ["InternetGatewayDevice.DeviceInfo."]},
        {"name": "GetParameterValues", "parameter_names": ["Bad.Name."]},
        {"name": "Reboot"},
    )
    lines_before = len(lines(level=logging.INFO))
    assert (await cpe.inform("2 PERIODIC")).status == 200
    sid = await _session_id(db)
    assert (await cpe.empty()).status == 204
    assert (await cpe.inform("1 BOOT", "M Reboot")).status == 200
    boot = await _session_id(db)
    assert (await cpe.empty()).status == 204
    got = [line for line in lines(level=logging.INFO)[lines_before:] if line[1] == "acs.tasks"]
    assert got == [
        task_line("done", good, "GetParameterValues", sid),
        task_line(
            "fault",
            bad,
            "GetParameterValues",
            sid,
            code=9005,
            fault="Invalid parameter name: Bad.Name.",
        ),
        task_line("done", reboot, "Reboot", boot),
    ]


async def test_expired_timed_out_and_cancelled_tasks(runtime, clock, db, lines):
    cpe = ServiceCpe(runtime)
    await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    [late] = await queue(runtime, clock, {"name": "GetRPCMethods"}, ttl=60)
    clock.now += 61
    [cancelled] = await queue(runtime, clock, {"name": "FactoryReset"})
    await tasks.cancel(db, cancelled, clock.dt)
    assert await maintenance.expire_tasks(db, clock.dt) == 1
    assert lines("acs.tasks") == [
        task_line("cancelled", cancelled, "FactoryReset", None),
        task_line("expired", late, "GetRPCMethods", None),
    ]
    download = {
        "name": "Download",
        "url": "http://f/x.bin",
        "file_type": "1 Firmware Upgrade Image",
    }
    [transfer] = await queue(runtime, clock, download)
    await session(cpe, "2 PERIODIC")  # the CPE says 1: a TransferComplete will follow
    [(status,)] = await rows(db, "SELECT status FROM tasks WHERE id = :id", id=transfer)
    assert status == "awaiting_transfer"
    before = len(lines("acs.tasks"))
    later = clock.dt + timedelta(seconds=runtime.settings.transfer_timeout + 1)
    assert await maintenance.expire_tasks(db, later) == 1
    [(fault,)] = await rows(db, "SELECT fault FROM tasks WHERE id = :id", id=transfer)
    string = (fault if isinstance(fault, dict) else json.loads(fault))["string"]
    assert string.startswith("Download sent ")
    assert lines("acs.tasks")[before:] == [
        task_line(
            "timed out", transfer, "Download", None, code=faults.ACS_TRANSFER_TIMEOUT, fault=string
        )
    ]


async def test_a_rolled_back_request_logs_no_outcome(runtime, clock, db, lines, monkeypatch):
    cpe = ServiceCpe(runtime)
    await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    [task] = await queue(runtime, clock, {"name": "GetRPCMethods"})
    assert (await cpe.inform("2 PERIODIC")).status == 200
    sent = await cpe.post(b"")
    assert sent.status == 200  # GetRPCMethods

    async def disk_full(*_args: Any, **_kwargs: Any) -> bool:
        raise StorageError("disk full")

    monkeypatch.setattr(queries, "end_session", disk_full)
    start = len(lines())
    assert (await cpe.post(cpe.fake.answer(sent.body))).status == 503
    assert [line[2] for line in lines()[start:]] == ["storage unavailable: disk full"]
    [(status,)] = await rows(db, "SELECT status FROM tasks WHERE id = :id", id=task)
    assert status == "sent"  # rolled back: not done, and not logged as done


async def test_nothing_is_built_below_the_level(runtime, clock, caplog, monkeypatch):
    """With acs at WARNING, a session's end and its task outcomes build no line."""
    caplog.set_level(logging.WARNING, logger="acs")

    def never(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("a line was built below the level")

    monkeypatch.setattr(logs, "after_commit", never)
    cpe = ServiceCpe(runtime)
    await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    await queue(runtime, clock, {"name": "GetRPCMethods"})
    await session(cpe, "2 PERIODIC")
    [(status,)] = await rows(runtime.db, "SELECT status FROM tasks")
    assert status == "done"
    assert caplog.records == []
