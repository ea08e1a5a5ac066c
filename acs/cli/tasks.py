"""``acs tasks``: queue TR-069 RPCs for a device (optionally poking it and waiting for the
outcome), list, show, cancel and retry them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from acs.cli.common import (
    Cli,
    add_json_flag,
    add_page_flags,
    database_command,
    now,
    positive_seconds,
)
from acs.cli.output import Column, fields, key, one, page, print_json, table
from acs.cli.specs import add_spec_flags, spec_body, validate_specs
from acs.services import tasks
from acs.web.api.schemas import TaskPublic, TasksPublic, TasksSubmitted

# ``--wait``: not every task finished in time (1 is any task that did not end done).
EXIT_TIMEOUT = 3
WAIT_STATUS = """\
exit status with --wait: 0 every task done; 1 a task ended fault, expired or cancelled;
3 not every task finished within SECONDS (they stay queued: cancel them or look again with
`acs tasks show`). Without --wait: 0 once queued."""


def _fault(task: Mapping[str, Any]) -> str | None:
    fault = task["fault"]
    if not fault:
        return None
    return f"{fault.get('code')} {fault.get('string', '')}".strip()


COLUMNS: list[Column] = [
    ("ID", key("id")),
    ("DEVICE", key("device_id")),
    ("NAME", key("name")),
    ("STATUS", key("status")),
    ("ATTEMPTS", key("attempts")),
    ("CREATED", key("created")),
    ("FAULT", _fault),
]


def _result_lines(result: Any) -> str:
    """A task's result: one ``name = value`` line per parameter where it lists them."""
    if isinstance(result, dict) and isinstance(result.get("parameter_list"), list):
        entries = result["parameter_list"]
        lines = [
            f"  {e.get('name')} = {e['value']}" if "value" in e else f"  {e.get('name')}"
            for e in entries
            if isinstance(e, dict)
        ]
        return "".join(line + "\n" for line in lines)
    return ""


def show_task(task: Mapping[str, Any]) -> str:
    listed = _result_lines(task["result"])
    text = fields(
        [
            ("id", task["id"]),
            ("device", task["device_id"]),
            ("name", task["name"]),
            ("status", task["status"]),
            ("arguments", task["arguments"]),
            ("command key", task["command_key"]),
            ("created", task["created"]),
            ("created by", task["created_by"]),
            ("started", task["started"]),
            ("finished", task["finished"]),
            ("next attempt", task["next_attempt"]),
            ("expires", task["expires"]),
            ("attempts", task["attempts"]),
            ("fault", task["fault"]),
            ("result", None if listed else task["result"]),
        ]
    )
    return text + listed


async def cmd_queue(cli: Cli, args: argparse.Namespace) -> int:
    cli.audit(device=args.device_id)
    specs = validate_specs(spec_body(args))
    cli.audit(
        device=args.device_id,
        tasks=[s.name for s in specs],
        connection_request=args.connection_request,
    )
    runtime = cli.runtime
    queued = await tasks.queue(
        cli.db,
        args.device_id,
        specs,
        created_by=cli.actor,
        now=now(),
        default_ttl=cli.settings.task_default_ttl,
    )
    poke = None
    if args.connection_request:
        poke = (await runtime.connection_requests.poke(args.device_id)).as_dict()
    current, finished = queued, True
    if args.wait:
        await cli.record(200)  # queued: audited even if the wait is interrupted
        finished, current = await tasks.wait_finished(
            cli.db, [t["id"] for t in queued], args.wait, runtime.notifier
        )
    if args.json:
        print_json(
            TasksSubmitted, {"data": current, "count": len(current), "connection_request": poke}
        )
    else:
        sys.stdout.write(table(COLUMNS, current))
        if poke is not None:
            print(f"connection request: {_poke_line(poke)}")
        if args.wait:
            for task in current:
                if task["status"] == "done":
                    sys.stdout.write(_result_lines(task["result"]))
    if not args.wait:
        return 0
    if not finished:
        waiting = ", ".join(
            f"{t['id']} ({t['status']})" for t in current if t["status"] not in tasks.FINISHED
        )
        print(f"not finished within {args.wait:g} s: task {waiting}", file=sys.stderr)
        return EXIT_TIMEOUT
    return 0 if all(t["status"] == "done" for t in current) else 1


def _poke_line(poke: Mapping[str, Any]) -> str:
    how = poke["method"] + (f" {poke['status_code']}" if poke["status_code"] else "")
    if poke["ok"]:
        return f"ok ({how}, {poke['latency_ms']} ms)"
    return f"failed ({how}): {poke['error']}"


async def cmd_list(cli: Cli, args: argparse.Namespace) -> int:
    data, count = await tasks.list_tasks(
        cli.db,
        device_id=args.device,
        status=args.status,
        name=args.name,
        limit=args.limit,
        offset=args.offset,
    )
    return page(args.json, TasksPublic, COLUMNS, data, count, args.offset)


async def cmd_show(cli: Cli, args: argparse.Namespace) -> int:
    return one(args.json, TaskPublic, await tasks.get(cli.db, args.task_id), show_task)


async def cmd_cancel(cli: Cli, args: argparse.Namespace) -> int:
    cli.audit(task=args.task_id)
    task = await tasks.cancel(cli.db, args.task_id, now())
    return one(args.json, TaskPublic, task, show_task)


async def cmd_retry(cli: Cli, args: argparse.Namespace) -> int:
    cli.audit(task=args.task_id)
    task = await tasks.retry(cli.db, args.task_id, now(), cli.settings.task_default_ttl)
    return one(args.json, TaskPublic, task, show_task)


def register(sub: Any) -> None:
    group = sub.add_parser("tasks", help="the task queue: TR-069 RPCs for devices")
    commands = group.add_subparsers(dest="tasks", required=True)

    queue = commands.add_parser(
        "queue",
        help="queue tasks for a device",
        description="Queue a task (or, with --json-spec, a list run in order) for a device. "
        "Examples: `acs tasks queue DEVICE Reboot`; `acs tasks queue DEVICE GetParameterValues "
        "--param InternetGatewayDevice.DeviceInfo.`; `acs tasks queue DEVICE "
        "SetParameterValues --value "
        "InternetGatewayDevice.ManagementServer.PeriodicInformInterval=600`.",
        epilog=WAIT_STATUS,
    )
    queue.add_argument("device_id", metavar="DEVICE", help="the device id")
    add_spec_flags(queue)
    queue.add_argument(
        "--connection-request",
        action="store_true",
        help="poke the device now instead of waiting for its next Inform",
    )
    queue.add_argument(
        "--wait",
        type=positive_seconds,
        metavar="SECONDS",
        help="wait until every task finished, at most SECONDS (see the exit status below)",
    )
    add_json_flag(queue)
    database_command(queue, cmd_queue, runtime=True, audited=True)

    listing = commands.add_parser("list", help="list tasks, newest first")
    listing.add_argument("--device", metavar="DEVICE", help="of this device only")
    listing.add_argument("--status", choices=tasks.STATUSES, help="in this status only")
    listing.add_argument("--name", metavar="TASK", help="of this RPC only (Reboot, ...)")
    add_page_flags(listing)
    add_json_flag(listing)
    database_command(listing, cmd_list)

    for name, work, audited, text in (
        ("show", cmd_show, False, "show a task: arguments, outcome, result"),
        ("cancel", cmd_cancel, True, "cancel a task that has not finished"),
        ("retry", cmd_retry, True, "queue a task that ended fault, expired or cancelled again"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("task_id", type=int, metavar="ID")
        add_json_flag(command)
        database_command(command, work, audited=audited)
