"""acs.logs: the text and JSON lines, the ids from the context, lines that wait for a commit."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from acs import logs


def _record(message: str = "session ended", **values: object) -> logging.LogRecord:
    record = logging.LogRecord("acs.cwmp", logging.INFO, __file__, 1, message, None, None)
    record.created = 1_800_000_000.25  # 2027-01-15T08:00:00.250Z
    record.process = 4242
    record.fields = values
    logs.ContextFilter().filter(record)
    return record


@pytest.fixture
def ids() -> Iterator[None]:
    request = logs.request_id.set("ab12cd-7")
    session = logs.session_id.set("Xy3_aB9z")
    yield
    logs.session_id.reset(session)
    logs.request_id.reset(request)


def test_text_lines_append_fields_then_ids(ids):
    record = _record(
        device="00D09E-IGD-SN0001",
        outcome="204",
        reason=None,
        events=("1 BOOT", "M Reboot"),
        rpcs=("GetParameterValues",),
        duration_ms=412,
        fault='said "no"',
    )
    stamp = logging.Formatter().formatTime(record)  # local time, as asctime
    assert logs.TextFormatter().format(record) == (
        f"{stamp} 4242 INFO acs.cwmp: session ended device=00D09E-IGD-SN0001 outcome=204 "
        'events="1 BOOT,M Reboot" rpcs=GetParameterValues duration_ms=412 '
        'fault="said \\"no\\"" request_id=ab12cd-7 session_id=Xy3_aB9z'
    )


def test_a_line_without_fields_or_ids_is_the_plain_format():
    record = _record("Started server process [7]")
    record.fields = None
    assert (
        logs.TextFormatter()
        .format(record)
        .endswith(" 4242 INFO acs.cwmp: Started server process [7]")
    )


def test_json_lines(ids):
    record = _record(device="00D09E-IGD-SN0001", events=("1 BOOT",), duration_ms=412, code=None)
    assert json.loads(logs.JsonFormatter().format(record)) == {
        "time": "2027-01-15T08:00:00.250Z",
        "level": "INFO",
        "logger": "acs.cwmp",
        "message": "session ended",
        "process": 4242,
        "request_id": "ab12cd-7",
        "session_id": "Xy3_aB9z",
        "device": "00D09E-IGD-SN0001",
        "events": ["1 BOOT"],
        "duration_ms": 412,
        "code": None,
    }


def test_json_lines_carry_the_traceback():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "acs", logging.ERROR, __file__, 1, "failed %s", ("job",), __import__("sys").exc_info()
        )
    logs.ContextFilter().filter(record)
    doc = json.loads(logs.JsonFormatter().format(record))
    assert (doc["message"], doc["request_id"], doc["session_id"]) == ("failed job", None, None)
    assert doc["exception"].splitlines()[-1] == "ValueError: boom"


def test_a_line_of_its_own_session_keeps_it(ids):
    extra = logs.fields(device="X", session_id="Old12345")
    assert extra == {"fields": {"device": "X"}, "session_id": "Old12345"}
    record = logging.makeLogRecord({"name": "acs", "msg": "m", **extra})
    logs.ContextFilter().filter(record)
    assert (record.session_id, record.request_id) == ("Old12345", "ab12cd-7")


def test_request_ids_are_unique_in_a_process():
    first, second = logs.new_request_id(), logs.new_request_id()
    assert first != second and first.split("-")[0] == second.split("-")[0]


def test_configure_text_or_json_and_httpx_quiet():
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    srcfile, threads = logging._srcfile, logging.logThreads
    stream = io.StringIO()
    try:
        logs.configure("info", "json", stream)
        logs.configure("debug", "json", stream)  # again: replaces its handler, no doubles
        logging.getLogger("acs.test").info("hello", extra=logs.fields(n=1))
        logging.getLogger("httpx").info("HTTP Request: GET http://cpe/")
        [line] = stream.getvalue().splitlines()
        assert {k: v for k, v in json.loads(line).items() if k in ("message", "n", "level")} == {
            "message": "hello",
            "n": 1,
            "level": "INFO",
        }
        assert logging.getLogger("httpx").level == logging.WARNING
        assert (logging._srcfile, logging.logThreads) == (None, False)  # not looked up
    finally:
        logging._srcfile, logging.logThreads = srcfile, threads
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


def test_deferred_lines_wait_for_the_commit_and_go_with_a_rollback(caplog):
    caplog.set_level(logging.INFO, logger="acs")
    log = logging.getLogger("acs.tasks")
    with logs.deferred():
        logs.after_commit(log, logging.INFO, "task done", task=1)
        assert caplog.records == []
    assert [(r.getMessage(), r.fields) for r in caplog.records] == [("task done", {"task": 1})]
    caplog.clear()
    with pytest.raises(RuntimeError), logs.deferred():
        logs.after_commit(log, logging.INFO, "task done", task=2)
        raise RuntimeError("rolled back")
    logs.after_commit(log, logging.DEBUG, "below the level", task=3)
    logs.after_commit(log, logging.INFO, "outside a transaction: now", task=4)
    assert [r.getMessage() for r in caplog.records] == ["outside a transaction: now"]
