"""``acs rollouts``: one task for every device matching a filter, in waves; create, list,
show, stop."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from acs.cli.common import Cli, add_json_flag, add_page_flags, database_command, now
from acs.cli.devices import add_filter_flags, filter_of
from acs.cli.output import Column, fields, key, one, page, print_json, table
from acs.cli.specs import SpecInvalid, add_spec_flags, explained, spec_body, validate_specs
from acs.services import rollouts
from acs.web.api.schemas import RolloutCreate, RolloutPublic, RolloutsPublic

FLAGS = {
    "name": "NAME",
    "wave_size": "--wave-size",
    "failure_threshold": "--failure-threshold",
    "task_ttl": "--task-ttl",
}

COLUMNS: list[Column] = [
    ("ID", key("id")),
    ("NAME", key("name")),
    ("TASK", lambda r: r["task"]["name"]),
    ("STATUS", key("status")),
    ("WAVE", lambda r: f"{r['current_wave']}/{r['waves']}"),
    ("TARGETS", key("targets")),
    ("DONE", lambda r: r["progress"]["done"]),
    ("FAILED", lambda r: r["progress"]["failed"]),
    ("PENDING", lambda r: r["progress"]["pending"]),
    ("CREATED", key("created")),
]
WAVE_COLUMNS: list[Column] = [
    ("WAVE", key("wave")),
    ("TARGETS", key("targets")),
    ("DONE", key("done")),
    ("FAILED", key("failed")),
    ("PENDING", key("pending")),
]


def show_rollout(rollout: Mapping[str, Any]) -> str:
    text = fields(
        [
            ("id", rollout["id"]),
            ("name", rollout["name"]),
            ("status", rollout["status"]),
            ("reason", rollout["reason"]),
            ("task", rollout["task"]),
            ("filter", rollout["filter"]),
            ("wave size", rollout["wave_size"]),
            ("failure threshold", rollout["failure_threshold"]),
            ("connection request", rollout["connection_request"]),
            ("wave", f"{rollout['current_wave']} of {rollout['waves']}"),
            ("targets", rollout["targets"]),
            ("done", rollout["progress"]["done"]),
            ("failed", rollout["progress"]["failed"]),
            ("pending", rollout["progress"]["pending"]),
            ("created", rollout["created"]),
            ("created by", rollout["created_by"]),
            ("finished", rollout["finished"]),
        ]
    )
    waves = table(WAVE_COLUMNS, rollout["wave_progress"])
    return text + ("\n" + waves if waves else "")


async def cmd_create(cli: Cli, args: argparse.Namespace) -> int:
    [spec] = validate_specs(spec_body(args), many=False)
    task = {"name": spec.name, **spec.arguments()}
    given: dict[str, Any] = {
        "name": args.name,
        "filter": filter_of(args),
        "task": task,
        "wave_size": args.wave_size,
        "connection_request": args.connection_request,
    }
    for name in ("failure_threshold", "task_ttl"):
        if getattr(args, name) is not None:
            given[name] = getattr(args, name)
    cli.audit(rollout=args.name, task=spec.name, filter=given["filter"])
    try:
        body = RolloutCreate.model_validate(given)
    except ValidationError as exc:
        raise SpecInvalid(explained(exc, given, label="rollout", flags=FLAGS)) from None
    rollout, poke = await rollouts.create(
        cli.db,
        name=body.name,
        filter=body.filter,
        task=body.task,
        wave_size=body.wave_size,
        failure_threshold=body.failure_threshold,
        connection_request=body.connection_request,
        created_by=cli.actor,
        now=now(),
        task_ttl=body.task_ttl or cli.settings.task_default_ttl,
    )
    await cli.record(200)  # created: audited even if the pokes are interrupted
    answered = await cli.runtime.connection_requests.poke_many(poke) if poke else None
    if args.json:
        print_json(RolloutPublic, rollout)
    else:
        sys.stdout.write(show_rollout(rollout))
        if answered is not None:
            print(f"connection requests: {answered} of {len(poke)} answered")
    return 0


async def cmd_list(cli: Cli, args: argparse.Namespace) -> int:
    data, count = await rollouts.list_rollouts(cli.db, args.limit, args.offset)
    return page(args.json, RolloutsPublic, COLUMNS, data, count, args.offset)


async def cmd_show(cli: Cli, args: argparse.Namespace) -> int:
    rollout = await rollouts.get(cli.db, args.rollout_id)
    return one(args.json, RolloutPublic, rollout, show_rollout)


async def cmd_stop(cli: Cli, args: argparse.Namespace) -> int:
    cli.audit(rollout=args.rollout_id)
    stopped = await rollouts.stop(cli.db, args.rollout_id, now(), f"stopped by {cli.actor}")
    return one(args.json, RolloutPublic, stopped, show_rollout)


def register(sub: Any) -> None:
    group = sub.add_parser("rollouts", help="one task for many devices, in waves")
    commands = group.add_subparsers(dest="rollouts", required=True)

    create = commands.add_parser(
        "create",
        help="target every device matching the filter with a task, a wave at a time",
        description="Fix the devices matching every filter flag given (none: every device), "
        "number them into waves of --wave-size and queue the task for the first wave; `acs "
        "serve` queues each next wave once the previous one finished, and stops when a "
        "wave's failed share exceeds --failure-threshold. The task is given as for `acs tasks "
        "queue`. Example: acs rollouts create fw-2.5 Download --arg file=fw-2.5.bin "
        "--product-class IGD --wave-size 100",
    )
    create.add_argument("name", metavar="NAME", help="a name for it")
    add_spec_flags(create)
    create.add_argument("--wave-size", type=int, required=True, help="devices per wave")
    create.add_argument(
        "--failure-threshold",
        type=float,
        metavar="SHARE",
        help="stop when a wave's failed share exceeds this, 0-1 (default: 0.1)",
    )
    create.add_argument(
        "--connection-request",
        action="store_true",
        help="poke each wave's devices when it is queued (default: their next Inform)",
    )
    create.add_argument(
        "--task-ttl",
        type=int,
        metavar="SECONDS",
        help="how long a device may take to run it (default: ACS_TASK_DEFAULT_TTL)",
    )
    add_filter_flags(create)
    add_json_flag(create)
    database_command(create, cmd_create, runtime=True, audited=True)

    listing = commands.add_parser("list", help="rollouts, newest first")
    add_page_flags(listing)
    add_json_flag(listing)
    database_command(listing, cmd_list)

    for name, work, audited, text in (
        ("show", cmd_show, False, "a rollout and its progress per wave"),
        ("stop", cmd_stop, True, "stop a running rollout: no further wave; queued tasks cancelled"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("rollout_id", type=int, metavar="ID")
        add_json_flag(command)
        database_command(command, work, audited=audited)
