"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import JSON, DateTime
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


def json_dumps(value: Any) -> str:
    """JSON text of a document, for both backends' JSON columns: orjson, a tenth of the
    stdlib's time (a whole parameter tree is megabytes, encoded while the GIL is held); the
    stdlib for what orjson refuses (integers past 64 bits)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"))


def json_loads(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)  # what only the stdlib wrote: NaN, integers past 64 bits


# The parameter tree and other documents: JSONB on PostgreSQL (indexable, `||` merges),
# JSON text on SQLite (json_patch / json_extract work on it).
JSONDoc = JSON().with_variant(JSONB(), "postgresql")
# Documents whose key order is meaning (phone configuration modules: the order of the lines
# the phone reads). JSONB sorts keys; PostgreSQL's plain json keeps the text as written.
OrderedJSON = JSON()


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes everywhere; SQLite keeps no zone, so we restore it."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # raw SQL paths on SQLite
            value = datetime.fromisoformat(value)
        result: datetime = value
        return result.replace(tzinfo=UTC) if result.tzinfo is None else result.astimezone(UTC)
