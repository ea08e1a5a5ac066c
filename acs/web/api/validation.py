"""Request validation errors as an operator can act on them: one error per mistake.

FastAPI answers a body that fails validation with pydantic's errors as they are: every member
of every union reports (a task body is ``TaskSpec | list[TaskSpec]``, so a task with one wrong
field also says "Input should be a valid list"), locations carry pydantic's labels for union
members (``tagged-union[GetRPCMethodsTask,...]``), a misspelt field is two errors (unknown,
and the one it meant missing), and a body sent without ``Content-Type: application/json``
starts with "Input should be a valid dictionary or object". ``explain`` keeps FastAPI's shape
(``{"detail": [{"type", "loc", "msg"}]}``, status 422) and says each mistake once:

* a union keeps the members the input got into (the one whose type it has); when it fits
  none, one error says what it may be ("should be an object or a list");
* the location is the path in the request (``body, 1, object_name``), without pydantic's
  labels of union members;
* an unknown task name or field says the nearest known one (difflib);
* a body that is not JSON says to send JSON.

Inputs are left out: they may be passwords.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

# What each "not of this type" error says its input should have been.
_SHOULD_BE = {
    "model_attributes_type": "an object",
    "model_type": "an object",
    "dict_type": "an object",
    "list_type": "a list",
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "bool_type": "a boolean",
    "bool_parsing": "a boolean",
    "float_type": "a number",
    "float_parsing": "a number",
    "none_required": "null",
}
SEND_JSON = "send JSON (Content-Type: application/json)"


def json_content_type(value: str | None) -> bool:
    """Whether a Content-Type is JSON, as FastAPI decides it reads a body as JSON."""
    if not value:
        return False
    message = Message()
    message["content-type"] = value
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


@dataclass
class _Error:
    type: str
    loc: list[Any]  # the path in the request, union labels left out
    msg: str
    ctx: Mapping[str, Any]
    unions: dict[tuple[Any, ...], str] = field(default_factory=dict)  # where: which member


_NOT_FOUND = object()


def _step(value: Any, item: Any) -> Any:
    """``value[item]`` if ``item`` is a step of the request's own path, else ``_NOT_FOUND``."""
    if isinstance(value, Mapping) and isinstance(item, str):
        return value.get(item, _NOT_FOUND)
    if isinstance(value, list) and isinstance(item, int) and -len(value) <= item < len(value):
        return value[item]
    return _NOT_FOUND


def _error(raw: Mapping[str, Any], body: Any) -> _Error:
    """A pydantic error with its location split into the path in the request and the union
    members on the way. A body location is walked along the body itself: what is not a key or
    an index there is pydantic's (a union member's label, a discriminated union's tag)."""
    error = _Error(raw["type"], [], raw["msg"], raw.get("ctx") or {})
    items = list(raw["loc"])
    if items[:1] != ["body"] or error.type == "json_invalid":
        error.loc = items
        return error
    error.loc.append("body")
    value = body
    for n, item in enumerate(items[1:], start=2):
        inner = _step(value, item)
        if inner is not _NOT_FOUND or (n == len(items) and error.type == "missing"):
            error.loc.append(item)
            value = inner
        else:
            where = tuple(error.loc)
            label = error.unions.get(where)
            error.unions[where] = str(item) if label is None else f"{label}|{item}"
    return error


def _mismatch_at(error: _Error, where: tuple[Any, ...]) -> bool:
    """The error says only that the input is not of this union member's type."""
    return tuple(error.loc) == where and error.type in _SHOULD_BE


def _one_per_union(errors: list[_Error]) -> list[_Error]:
    for where in sorted({w for e in errors for w in e.unions}, key=len):
        inside = [e for e in errors if where in e.unions]
        if not inside:
            continue
        entered = {e.unions[where] for e in inside if not _mismatch_at(e, where)}
        if entered:  # the members the input got into: the others' complaints are noise
            errors = [e for e in errors if where not in e.unions or e.unions[where] in entered]
            continue
        kinds = list(dict.fromkeys(_SHOULD_BE[e.type] for e in inside))
        choice = kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} or {kinds[-1]}"
        merged = _Error("type_error", list(where), f"should be {choice}", {})
        first = errors.index(inside[0])
        errors = [e for e in errors if e not in inside]
        errors.insert(first, merged)
    return errors


def _nearest(word: str, known: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return close[0] if close else None


def _tags(ctx: Mapping[str, Any]) -> list[str]:
    return [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",") if t]


def _said(errors: list[_Error]) -> list[_Error]:
    """Messages that say the mistake and, where a name was mistyped, the nearest one."""
    missing = {(tuple(e.loc[:-1]), e.loc[-1]): e for e in errors if e.type == "missing" and e.loc}
    out: list[_Error] = []
    for e in errors:
        if e.type == "union_tag_invalid":
            tag, tags = str(e.ctx.get("tag", "")), _tags(e.ctx)
            nearest = _nearest(tag, tags)
            hint = f"did you mean {nearest}?" if nearest else f"one of {', '.join(tags)}"
            e.msg = f"unknown task name {tag!r}; {hint}"
        elif e.type == "union_tag_not_found":
            e.msg = 'a task needs a "name": the RPC (GetParameterValues, Reboot, ...)'
        elif e.type == "extra_forbidden" and e.loc:
            parent, name = tuple(e.loc[:-1]), str(e.loc[-1])
            wanted = [str(n) for (p, n) in missing if p == parent]
            nearest = _nearest(name, wanted)
            if nearest is not None:
                missing.pop((parent, nearest)).type = "merged"
                e.msg = f"unknown field {name!r}; did you mean {nearest!r}?"
            else:
                e.msg = f"unknown field {name!r}"
        elif e.type == "missing":
            e.msg = "field required"
        elif e.type in _SHOULD_BE:
            e.msg = f"should be {_SHOULD_BE[e.type]}"
        elif e.type == "json_invalid":
            position = e.loc[1] if len(e.loc) > 1 else None
            e.loc = e.loc[:1]
            at = f" at character {position}" if isinstance(position, int) else ""
            e.msg = f"not valid JSON{at}: {e.ctx.get('error', e.msg)}"
        else:
            e.msg = e.msg.removeprefix("Value error, ")
        out.append(e)
    return [e for e in out if e.type != "merged"]


def explain(
    errors: Sequence[Mapping[str, Any]], body: Any, *, json_sent: bool
) -> list[dict[str, Any]]:
    """FastAPI's validation errors of a request with ``body`` (as FastAPI parsed it), one per
    mistake (see the module docstring); ``json_sent``: the request said its body is JSON."""
    parsed = [_error(raw, body) for raw in errors]
    body = [e for e in parsed if e.loc[:1] == ["body"]]
    if body and not json_sent:
        first = parsed.index(body[0])
        parsed = [e for e in parsed if e not in body]
        parsed.insert(first, _Error("content_type", ["body"], SEND_JSON, {}))
    out: list[dict[str, Any]] = []
    for e in _said(_one_per_union(parsed)):
        detail = {"type": e.type, "loc": e.loc, "msg": e.msg}
        if detail not in out:
            out.append(detail)
    return out
