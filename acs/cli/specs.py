"""Tasks as the command line takes them, validated as the API validates them.

A task is the RPC's name and flags (``Reboot``; ``GetParameterValues --param PATH``;
``SetParameterValues --value PATH=VALUE``; any other argument ``--arg FIELD=VALUE``), or
the API's JSON body (``--json-spec``). Either way it goes through the API's model
(``task_specs.TASK_ADAPTER``), and a refusal says each mistake once, as the API does
(``acs.web.api.validation.explain``), naming the flag that sets the field.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from acs.cli.common import Usage
from acs.services import task_specs
from acs.services.errors import Invalid
from acs.web.api.validation import explain

# The fields the simple form sets with a flag of their own.
TASK_FLAGS = {"parameter_names": "--param", "parameter_values": "--value", "name": "TASK"}


class SpecInvalid(Invalid):
    """A task (or rollout) the API's model refuses; the message lists every mistake."""


def explained(
    exc: ValidationError,
    body: Any = None,
    *,
    label: str = "",
    flags: Mapping[str, str] | None = None,
) -> str:
    """Every mistake of ``exc`` on one line: ``label: field (--flag): what is wrong; ...``.
    With ``body`` (what was validated), locations are walked along it as the API walks a
    request body, so union members and pydantic's labels drop out."""
    if body is None:
        raw = [dict(e) for e in exc.errors(include_url=False)]
        problems = explain(raw, None, json_sent=True)
    else:
        raw = [{**e, "loc": ["body", *e["loc"]]} for e in exc.errors(include_url=False)]
        problems = [{**p, "loc": p["loc"][1:]} for p in explain(raw, body, json_sent=True)]
    said = []
    for problem in problems:
        loc = [str(step) for step in problem["loc"]]
        if problem["type"] == "extra_forbidden":
            loc = loc[:-1]  # the message names the field it does not know
        flag = (flags or {}).get(loc[-1]) if loc else None
        where = ".".join(loc) + (f" ({flag})" if flag else "")
        said.append(f"{where}: {problem['msg']}" if where else problem["msg"])
    text = "; ".join(said)
    return f"{label}: {text}" if label else text


def _value(text: str) -> dict[str, Any]:
    """``PATH=VALUE`` or ``PATH:TYPE=VALUE`` (parameter paths never hold a colon)."""
    left, sep, value = text.partition("=")
    path, _, type_ = left.partition(":")
    if not sep or not path:
        raise argparse.ArgumentTypeError(f"expected PATH=VALUE or PATH:TYPE=VALUE, got {text!r}")
    return {"name": path, "value": value, **({"type": type_} if type_ else {})}


def _argument(text: str) -> tuple[str, str]:
    field, sep, value = text.partition("=")
    if not sep or not field:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE, got {text!r}")
    return field, value


def add_spec_flags(parser: argparse.ArgumentParser) -> None:
    """TASK and its flags, or --json-spec."""
    parser.add_argument(
        "task",
        nargs="?",
        metavar="TASK",
        help="the RPC: GetParameterValues, SetParameterValues, Reboot, Download, ... "
        "(or --json-spec)",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="PATH",
        help="a parameter of GetParameterValues or GetParameterAttributes (parameter_names); "
        "a path ending in '.' is a subtree; repeatable",
    )
    parser.add_argument(
        "--value",
        action="append",
        default=[],
        type=_value,
        metavar="PATH=VALUE",
        help="a value of SetParameterValues (parameter_values), typed as the device reported "
        "it or as its data model defines it, else a string; PATH:TYPE=VALUE names the type "
        "(PATH:xsd:unsignedInt=600); repeatable",
    )
    parser.add_argument(
        "--arg",
        action="append",
        default=[],
        type=_argument,
        metavar="FIELD=VALUE",
        help="any other argument of the RPC, named as in the API (snake_case): "
        "--arg delay_seconds=30, --arg file=fw.bin, --arg next_level=true; repeatable",
    )
    parser.add_argument(
        "--json-spec",
        metavar="JSON",
        help='the task as the API takes it (\'{"name": "Reboot"}\'), or a list of them run '
        "in order; - reads it from standard input (for passwords)",
    )


def spec_body(args: argparse.Namespace) -> Any:
    """The task as JSON (the API's body): from --json-spec, or from TASK and its flags."""
    simple = bool(args.task or args.param or args.value or args.arg)
    if args.json_spec is not None:
        if simple:
            raise Usage("give the task as TASK and flags, or as --json-spec, not both")
        text = sys.stdin.read() if args.json_spec == "-" else args.json_spec
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecInvalid(
                f"--json-spec: not valid JSON at character {exc.pos}: {exc.msg}"
            ) from None
    if not args.task:
        raise Usage("give the task: TASK (Reboot, GetParameterValues, ...) or --json-spec")
    body: dict[str, Any] = {"name": args.task}
    for field, value in args.arg:
        if field in body or field in TASK_FLAGS:
            flag = TASK_FLAGS.get(field)
            raise Usage(f"--arg {field} given twice" if flag is None else f"give {field} as {flag}")
        body[field] = value
    if args.param:
        body["parameter_names"] = list(args.param)
    if args.value:
        body["parameter_values"] = list(args.value)
    return body


def validate_specs(body: Any, *, many: bool = True) -> list[Any]:
    """The tasks of ``body`` (one object, or a list when ``many``), validated by the API's
    model; ``SpecInvalid`` naming every mistake."""
    if isinstance(body, list) and many:
        if not body:
            raise SpecInvalid("task: no tasks given")
        items: Sequence[Any] = body
    elif isinstance(body, dict):
        items = [body]
    else:
        raise SpecInvalid(f"task: should be an object{' or a list' if many else ''}")
    specs, problems = [], []
    for i, item in enumerate(items):
        try:
            specs.append(task_specs.TASK_ADAPTER.validate_python(item))
        except ValidationError as exc:
            label = f"tasks[{i}]" if isinstance(body, list) else "task"
            problems.append(explained(exc, item, label=label, flags=TASK_FLAGS))
    if problems:
        raise SpecInvalid("; ".join(problems))
    return specs
