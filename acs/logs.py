"""Logging: one line per thing that happened, with its fields; the request id and the CWMP
session id on every line of one request and session; text (default) or JSON lines.

A line with structured fields is logged as ``log.info("session ended", extra=fields(...))``:
the text format appends them as ``key=value``, the JSON format gives them keys of their own.
Ids come from context variables (``request_id``, ``session_id``) that the HTTP layers set per
request, added to every record by ``ContextFilter``. Lines that describe what a transaction
did wait for its commit inside ``deferred()``: a rolled-back task is not logged as done.

The stdlib's logging is enough for this (a Formatter and a Filter); no dependency.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import secrets
import sys
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any, Final

request_id: ContextVar[str | None] = ContextVar("acs_request_id", default=None)
session_id: ContextVar[str | None] = ContextVar("acs_session_id", default=None)

# Request ids: a prefix per process and a counter, so a new id costs no system call.
_PREFIX: Final = secrets.token_hex(3)
_COUNTER = itertools.count(1)
TEXT_FORMAT: Final = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"


def new_request_id() -> str:
    return f"{_PREFIX}-{next(_COUNTER):x}"


def short_session_id(full: str) -> str:
    """What logs call a CWMP session: the start of its id. The whole id is the session
    cookie, which authenticates the session's requests, so it stays out of logs."""
    return full[:8]


_IDS: Final = ("request_id", "session_id")


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` for a line with structured fields; a ``request_id`` or ``session_id`` among
    them is the line's own, in place of the context's (a session the sweeper ended)."""
    extra: dict[str, Any] = {"fields": values}
    for name in _IDS:
        if name in values:
            extra[name] = values.pop(name)
    return extra


class ContextFilter(logging.Filter):
    """Adds ``request_id`` and ``session_id`` from the context to every record (a record
    logged with its own, e.g. a session ended by the sweeper, keeps them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        if not hasattr(record, "session_id"):
            record.session_id = session_id.get()
        return True


def _fields(record: logging.LogRecord) -> Mapping[str, Any]:
    values = getattr(record, "fields", None)
    return values if isinstance(values, Mapping) else {}


_SEQUENCES: Final = (list, tuple, set, frozenset)
_QUOTED: Final = re.compile(r'[\s"=\\]')
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


def _text(value: Any) -> str:
    """A field's value in a text line: lists comma-separated; quoted if it has a space, a
    quote, "=" or a backslash (escaped as JSON would, so a line stays one line)."""
    text = value if type(value) is str else None
    if text is None:
        text = ",".join(map(str, value)) if isinstance(value, _SEQUENCES) else str(value)
    if text and _QUOTED.search(text) is None:
        return text
    if _CONTROL.search(text) is not None:
        return json.dumps(text, ensure_ascii=False)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class TextFormatter(logging.Formatter):
    """``<time> <pid> <LEVEL> <logger>: <message> key=value ... request_id=... session_id=...``
    (fields without a value are left out)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        parts = [super().formatMessage(record)]
        for key, value in _fields(record).items():
            if value is not None:
                parts.append(f"{key}={_text(value)}")
        for key in _IDS:
            value = getattr(record, key, None)
            if value is not None:
                parts.append(f"{key}={_text(value)}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, process, request_id,
    session_id, the line's fields; ``exception`` with the traceback, if any."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        doc: dict[str, Any] = {
            "time": stamp.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
            "request_id": getattr(record, "request_id", None),
            "session_id": getattr(record, "session_id", None),
        }
        for key, value in _fields(record).items():
            if key not in doc:
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``configure`` installs (so that configuring again replaces it)."""


def configure(level: str, fmt: str = "text", stream: IO[str] | None = None) -> None:
    """Log to ``stream`` (standard error) at ``level``, as ``text`` or ``json`` lines.
    httpx's line per request (connection requests) and aioftp's per FTP connection and
    command are left out: WARNING and above only (acs logs each file transfer itself)."""
    handler = _Handler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Neither format shows the caller's file and line or the thread: skip finding them, a
    # third of what a record costs (the logging HOWTO's "Optimization").
    logging._srcfile = None
    logging.logThreads = False
    for noisy in ("httpx", "httpcore", "aioftp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# --- what waits for its transaction's commit --------------------------------------------

_Line = tuple[logging.Logger, int, str, dict[str, Any]]
_Pending = _Line | Callable[[], None]
_pending: ContextVar[list[_Pending] | None] = ContextVar("acs_log_pending", default=None)


def after_commit(logger: logging.Logger, level: int, message: str, **values: Any) -> None:
    """Log a line about what the transaction in progress did once it commits (inside
    ``deferred()``), else now. Nothing is built when ``level`` is off."""
    if not logger.isEnabledFor(level):
        return
    pending = _pending.get()
    extra = fields(**values)
    if pending is None:
        logger.log(level, message, extra=extra)
    else:
        pending.append((logger, level, message, extra))


def on_commit(action: Callable[[], None]) -> None:
    """Run ``action`` (counting what the transaction in progress did, for metrics) once it
    commits (inside ``deferred()``), else now."""
    pending = _pending.get()
    if pending is None:
        action()
    else:
        pending.append(action)


class deferred:  # lower case: used as `with logs.deferred():`, like contextlib's
    """Around a transaction: ``after_commit`` lines are logged and ``on_commit`` actions run
    when the block ends without an exception, and dropped with the rolled-back work
    otherwise. (A class, not a generator: it runs around every CWMP request.)"""

    __slots__ = ("pending", "token")

    def __enter__(self) -> None:
        self.pending: list[_Pending] = []
        self.token = _pending.set(self.pending)

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        _pending.reset(self.token)
        if kind is None:
            for item in self.pending:
                if isinstance(item, tuple):
                    logger, level, message, extra = item
                    logger.log(level, message, extra=extra)
                else:
                    item()
