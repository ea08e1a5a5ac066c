"""``acs devices``: search, show, forget and tag devices; their own CWMP credentials."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from acs.cli.common import (
    Cli,
    add_json_flag,
    add_page_flags,
    database_command,
    now,
    read_password,
)
from acs.cli.output import Column, fields, key, one, page, print_json, table
from acs.services import devices
from acs.web.api.schemas import DeviceDetail, DevicesPublic, TagsPublic

COLUMNS: list[Column] = [
    ("ID", key("id")),
    ("SERIAL", key("serial_number")),
    ("PRODUCT CLASS", key("product_class")),
    ("SOFTWARE", key("software_version")),
    ("IP", key("ip")),
    ("STATUS", key("status")),
    ("LAST INFORM", key("last_inform")),
    ("TAGS", key("tags")),
]
PARAMETER_COLUMNS: list[Column] = [
    ("PARAMETER", key("name")),
    ("VALUE", lambda p: p.get("value")),
    ("TYPE", lambda p: p.get("type")),
    ("WRITABLE", lambda p: p.get("writable")),
]


def _parameter(text: str) -> tuple[str, str]:
    path, sep, value = text.partition("=")
    if not sep or not path:
        raise argparse.ArgumentTypeError(f"expected PATH=VALUE, got {text!r}")
    return path, value


def _datetime(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give the time zone (2024-05-01T12:00:00Z): {text!r}")
    return value


def add_filter_flags(parser: argparse.ArgumentParser) -> None:
    """The device filter of the API (GET /api/v1/devices, a rollout's ``filter``)."""
    parser.add_argument("--id", action="append", default=[], help="a device id; repeatable")
    for name in ("serial-number", "oui", "product-class", "software-version", "mac", "ip"):
        parser.add_argument(f"--{name}", help=f"the device's {name.replace('-', ' ')}")
    parser.add_argument("--tag", help="carrying this tag")
    parser.add_argument(
        "--status",
        choices=devices.STATUSES,
        help="never_seen, online, late (missed a periodic Inform), offline (missed "
        "ACS_OFFLINE_AFTER_MISSED), unknown (no interval known); silent: late or offline",
    )
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        type=_parameter,
        metavar="PATH=VALUE",
        help="a value in its parameter tree (Device.DeviceInfo.ModelName=X6); repeatable",
    )


def filter_of(args: argparse.Namespace) -> dict[str, Any]:
    """The filter flags given, as a rollout's ``filter`` (the API's JSON)."""
    given: dict[str, Any] = {}
    if args.id:
        given["ids"] = list(args.id)
    for name in ("serial_number", "oui", "product_class", "software_version", "mac", "ip"):
        if getattr(args, name) is not None:
            given[name] = getattr(args, name)
    if args.tag is not None:
        given["tag"] = args.tag
    if args.status is not None:
        given["status"] = args.status
    if args.parameter:
        given["parameters"] = [list(p) for p in args.parameter]
    return given


def show_device(device: Mapping[str, Any], *, parameters: bool) -> str:
    poke = device["connection_request"]
    text = fields(
        [
            ("id", device["id"]),
            ("manufacturer", device["manufacturer"]),
            ("oui", device["oui"]),
            ("product class", device["product_class"]),
            ("serial number", device["serial_number"]),
            ("mac", device["mac"]),
            ("software version", device["software_version"]),
            ("hardware version", device["hardware_version"]),
            ("ip", device["ip"]),
            ("status", device["status"]),
            ("status since", device["status_since"]),
            ("first seen", device["first_seen"]),
            ("last inform", device["last_inform"]),
            ("last events", device["last_events"]),
            ("last boot", device["last_boot"]),
            ("last bootstrap", device["last_bootstrap"]),
            ("periodic inform", device["periodic_inform_interval"]),
            ("cwmp version", device["cwmp_version"]),
            ("tags", device["tags"]),
            ("mode", device["mode"]),
            ("connection request url", device["connection_request_url"]),
            ("udp connection request", device["udp_connection_request_address"]),
            ("connection request credentials", device["connection_request_credentials_set"]),
            (
                "last connection request",
                None
                if not poke
                else f"{'ok' if poke['ok'] else 'failed'} ({poke['method']}) {poke['time']}"
                + (f": {poke['error']}" if poke.get("error") else ""),
            ),
            ("own cwmp credentials", device["own_cwmp_credentials"]),
            (
                "cwmp credentials",
                device["cwmp_credentials"]
                + (
                    f" ({device['cwmp_credentials_reason']})"
                    if device["cwmp_credentials_reason"]
                    else ""
                ),
            ),
            ("rpc methods", device["rpc_methods"]),
        ]
    )
    if parameters:
        rows = [{"name": name, **value} for name, value in device["parameters"].items()]
        text += "\n" + table(PARAMETER_COLUMNS, rows) if rows else ""
    return text


async def cmd_list(cli: Cli, args: argparse.Namespace) -> int:
    given = filter_of(args)
    found = devices.DeviceFilter(
        **{k: v for k, v in given.items() if k != "parameters"},
        parameters=list(args.parameter),
        last_inform_after=args.last_inform_after,
        last_inform_before=args.last_inform_before,
    )
    data, count = await devices.search(
        cli.db, found, now=now(), sort=args.sort, limit=args.limit, offset=args.offset
    )
    return page(args.json, DevicesPublic, COLUMNS, data, count, args.offset)


async def cmd_show(cli: Cli, args: argparse.Namespace) -> int:
    device = await devices.get_device(cli.db, args.device_id, now=now(), path=args.params or None)
    listed = args.params is not None
    return one(args.json, DeviceDetail, device, lambda d: show_device(d, parameters=listed))


async def cmd_delete(cli: Cli, args: argparse.Namespace) -> int:
    cli.audit(device=args.device_id)
    await devices.delete_device(cli.db, args.device_id)
    print(f"device {args.device_id} forgotten")
    return 0


async def cmd_tag(cli: Cli, args: argparse.Namespace) -> int:
    present = args.devices == "tag"
    cli.audit(device=args.device_id, tags=list(args.tags), present=present)
    tags: list[str] = []
    for tag in args.tags:
        tags = await devices.set_tag(cli.db, args.device_id, tag, present)
    if args.json:
        print_json(TagsPublic, {"tags": tags})
    else:
        print(" ".join(tags))
    return 0


async def cmd_credentials(cli: Cli, args: argparse.Namespace) -> int:
    password = None if args.clear else read_password(args)
    cli.audit(device=args.device_id, cleared=args.clear)
    await devices.set_cwmp_credentials(
        cli.db, args.device_id, args.username, password, cli.settings.cwmp_realm
    )
    print("credentials cleared" if args.clear else "credentials set")
    return 0


def register(sub: Any) -> None:
    # `acs device credentials` was the first command of this group
    group = sub.add_parser("devices", aliases=["device"], help="devices: search, show, tags")
    commands = group.add_subparsers(dest="devices", required=True)

    listing = commands.add_parser(
        "list", help="devices matching every filter given (the API's filters)"
    )
    add_filter_flags(listing)
    listing.add_argument("--last-inform-after", type=_datetime, metavar="TIME")
    listing.add_argument("--last-inform-before", type=_datetime, metavar="TIME")
    listing.add_argument(
        "--sort",
        default="id",
        help=f"one of {', '.join(devices.SORTABLE)}; '-' first for descending, written "
        "--sort=-last_inform (default: id)",
    )
    add_page_flags(listing)
    add_json_flag(listing)
    database_command(listing, cmd_list)

    show = commands.add_parser("show", help="a device; --params: its parameter tree too")
    show.add_argument("device_id", metavar="DEVICE")
    show.add_argument(
        "--params",
        nargs="?",
        const="",
        metavar="PATH",
        help="list its parameters (only those under PATH, if given; --json: the tree under it)",
    )
    add_json_flag(show)
    database_command(show, cmd_show)

    delete = commands.add_parser(
        "delete",
        help="forget a device: its tasks, faults and history go too; it registers again "
        "on its next Inform",
    )
    delete.add_argument("device_id", metavar="DEVICE")
    database_command(delete, cmd_delete, audited=True)

    for name, text in (("tag", "add tags to a device"), ("untag", "remove tags from a device")):
        tag = commands.add_parser(name, help=text + "; prints its tags")
        tag.add_argument("device_id", metavar="DEVICE")
        tag.add_argument("tags", nargs="+", metavar="TAG", help="1-64 of A-Z a-z 0-9 _ . : @ -")
        add_json_flag(tag)
        database_command(tag, cmd_tag, audited=True)

    creds = commands.add_parser(
        "credentials", help="set the CWMP credentials of one device (override the shared pair)"
    )
    creds.add_argument("device_id", metavar="DEVICE")
    creds.add_argument("--username", default="")
    creds.add_argument("--password-stdin", action="store_true")
    creds.add_argument(
        "--clear",
        action="store_true",
        help="forget its own pair: it is new again (the shared pair admits it; in common mode "
        "it gets a new pair in its next session), e.g. after a factory reset by hand",
    )
    database_command(creds, cmd_credentials, audited=True)
