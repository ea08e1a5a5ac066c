"""What commands print: aligned tables and ``key: value`` blocks for people, and JSON in the
shape the REST API answers (validated and dumped by the API's own response models, so a
script can move between ``acs ... --json`` and the API)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter

Column = tuple[str, Callable[[Mapping[str, Any]], Any]]

NONE = "-"


def cell(value: Any) -> str:
    """One value as a table shows it: no spaces inside where avoidable, ``-`` for nothing."""
    if value is None or value == "" or value == []:
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, list | tuple):
        return ",".join(cell(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def table(columns: Sequence[Column], rows: Iterable[Mapping[str, Any]]) -> str:
    """A header and one line per row, columns aligned by two spaces; nothing for no rows."""
    body = [[cell(get(row)) for _, get in columns] for row in rows]
    if not body:
        return ""
    lines = [[title for title, _ in columns], *body]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    return "".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        + "\n"
        for line in lines
    )


def key(name: str) -> Callable[[Mapping[str, Any]], Any]:
    """A column showing ``row[name]``."""
    return lambda row: row[name]


def fields(pairs: Sequence[tuple[str, Any]]) -> str:
    """``name: value`` lines, values aligned."""
    width = max(len(name) for name, _ in pairs) + 1
    return "".join(f"{(name + ':').ljust(width)} {cell(value)}\n" for name, value in pairs)


def print_json(shape: Any, value: Any) -> None:
    """``value`` as the API's response model ``shape`` validates and serialises it."""
    adapter: TypeAdapter[Any] = TypeAdapter(shape)
    sys.stdout.write(adapter.dump_json(adapter.validate_python(value), indent=2).decode() + "\n")


def page(
    as_json: bool,
    shape: Any,
    columns: Sequence[Column],
    data: list[Any],
    count: int,
    offset: int,
) -> int:
    """A page of a listing: the API's ``{data, count}`` as JSON, or a table and, on standard
    error, how to see the rows it leaves out."""
    if as_json:
        print_json(shape, {"data": data, "count": count})
        return 0
    sys.stdout.write(table(columns, data))
    if offset + len(data) < count:
        print(
            f"{len(data)} of {count} shown (from {offset}); --limit and --offset page on",
            file=sys.stderr,
        )
    return 0


def listing(as_json: bool, shape: Any, columns: Sequence[Column], data: list[Any]) -> int:
    """A listing the API answers as a plain list (no pages)."""
    if as_json:
        print_json(shape, data)
    else:
        sys.stdout.write(table(columns, data))
    return 0


def one(as_json: bool, shape: Any, value: Any, show: Callable[[Any], str]) -> int:
    """One resource: as JSON, or as ``show`` writes it for people."""
    if as_json:
        print_json(shape, value)
    else:
        sys.stdout.write(show(value))
    return 0


def human_size(size: int) -> str:
    """``512 B``, ``22.5 KiB``, ``3.5 MiB``, ... ``2.0 TiB``."""
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
