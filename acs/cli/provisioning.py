"""``acs phones`` and ``acs profiles``: VoIP phone provisioning (CSV import of phones, the
configuration file a phone gets, profiles)."""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from acs.cli.common import Cli, add_json_flag, add_page_flags, database_command, now
from acs.cli.output import Column, fields, key, listing, one, page, table
from acs.provisioning import crypto
from acs.provisioning import models as phone_models
from acs.services.errors import Invalid
from acs.web.api.schemas import PhonePublic, PhonesPublic, ProfilePublic

PHONE_COLUMNS: list[Column] = [
    ("MAC", key("mac")),
    ("MODEL", key("model")),
    ("PROFILE", key("profile")),
    ("INPUT ID", key("input_id")),
    ("VARIABLES", lambda p: sorted(p["variables"])),  # names only: values hold passwords
    ("MODE", key("mode")),
    ("UPDATED", key("updated")),
]
PROFILE_COLUMNS: list[Column] = [
    ("KIND", key("kind")),
    ("NAME", key("name")),
    ("MODULES", lambda p: len(p["modules"])),
    ("CONFIG KEY", key("config_key_set")),
    ("COMMON KEY", key("common_key_set")),
    ("MODE", key("mode")),
    ("UPDATED", key("updated")),
]


def _modules(modules: Mapping[str, Mapping[str, str]]) -> str:
    return "".join(
        f"[{module}]\n" + "".join(f"  {name} = {value}\n" for name, value in settings.items())
        for module, settings in modules.items()
    )


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise Invalid(f"cannot read {path}: {reason or exc}") from None


async def cmd_import(cli: Cli, args: argparse.Namespace) -> int:
    text = _read(args.file)
    cli.audit(file=args.file)
    report = await cli.runtime.provisioning.import_phones(text, now())
    cli.audit(file=args.file, imported=report.count)
    rows = [{"mac": mac, "taken": "created"} for mac in report.created]
    rows += [{"mac": mac, "taken": "updated"} for mac in report.updated]
    sys.stdout.write(table([("MAC", key("mac")), ("TAKEN", key("taken"))], rows))
    print(
        f"{report.count} phone(s) imported: {len(report.created)} created, "
        f"{len(report.updated)} updated"
    )
    return 0


async def cmd_list(cli: Cli, args: argparse.Namespace) -> int:
    data, count = await cli.runtime.provisioning.list_phones(
        model=args.model, profile=args.profile, limit=args.limit, offset=args.offset
    )
    return page(args.json, PhonesPublic, PHONE_COLUMNS, data, count, args.offset)


def show_phone(phone: Mapping[str, Any]) -> str:
    return (
        fields(
            [
                ("mac", phone["mac"]),
                ("model", phone["model"]),
                ("profile", phone["profile"]),
                ("input id", phone["input_id"]),
                ("mode", phone["mode"]),
                ("updated", phone["updated"]),
            ]
        )
        + "".join(
            f"{{{{{name}}}}} = {value}\n" for name, value in sorted(phone["variables"].items())
        )
        + _modules(phone["modules"])
    )


async def cmd_show(cli: Cli, args: argparse.Namespace) -> int:
    phone = await cli.runtime.provisioning.get_phone(args.mac)
    return one(args.json, PhonePublic, phone, show_phone)


def base_url(cli: Cli, args: argparse.Namespace) -> str:
    """How phones reach this ACS, for the auto-update URLs a configuration carries."""
    given = args.base_url or cli.settings.public_url
    return (given or f"http://{socket.gethostname()}:{cli.settings.cwmp_port}").rstrip("/")


async def cmd_render(cli: Cli, args: argparse.Namespace) -> int:
    fmt: phone_models.Format = "xml" if args.format == "xml" else "text"
    wanted = phone_models.MacFile(phone_models.normalize_mac(args.mac), fmt)
    rendered = await cli.runtime.provisioning.render(
        wanted, base_url=base_url(cli, args), now=now()
    )
    content = rendered.content
    if args.decrypt and rendered.key is not None:
        content = crypto.decrypt(content, rendered.key, cli.settings.phone_aes_mode)
    if args.output == "-":
        sys.stdout.buffer.write(content)
        sys.stdout.buffer.flush()
    else:
        Path(args.output).write_bytes(content)
    return 0


async def cmd_profiles(cli: Cli, args: argparse.Namespace) -> int:
    profiles = await cli.runtime.provisioning.list_profiles()
    return listing(args.json, list[ProfilePublic], PROFILE_COLUMNS, profiles)


def show_profile(profile: Mapping[str, Any]) -> str:
    return fields(
        [
            ("kind", profile["kind"]),
            ("name", profile["name"]),
            ("config key", profile["config_key_set"]),
            ("common key", profile["common_key_set"]),
            ("mode", profile["mode"]),
            ("updated", profile["updated"]),
        ]
    ) + _modules(profile["modules"])


async def cmd_profile(cli: Cli, args: argparse.Namespace) -> int:
    profile = await cli.runtime.provisioning.get_profile(args.kind, args.name)
    return one(args.json, ProfilePublic, profile, show_profile)


def register(sub: Any) -> None:
    phones = sub.add_parser("phones", help="VoIP phones: CSV import, configuration files")
    commands = phones.add_subparsers(dest="phones", required=True)

    imported = commands.add_parser(
        "import",
        help="phones and their variables from CSV; all rows or none",
        description="Create or update phones from CSV: a header line with a 'mac' column, "
        "optional 'model', 'profile', 'input_id'; every other column is a variable (filling "
        "{{name}} placeholders). All rows or none: a refusal names every line refused.",
    )
    imported.add_argument("file", metavar="FILE.csv", help="the CSV file, - for standard input")
    database_command(imported, cmd_import, runtime=True, audited=True)

    listing = commands.add_parser("list", help="phones, by MAC")
    listing.add_argument("--model")
    listing.add_argument("--profile")
    add_page_flags(listing)
    add_json_flag(listing)
    database_command(listing, cmd_list, runtime=True)

    show = commands.add_parser("show", help="a phone: model, profile, variables, settings")
    show.add_argument("mac", metavar="MAC")
    add_json_flag(show)
    database_command(show, cmd_show, runtime=True)

    render = commands.add_parser(
        "render",
        help="the configuration file a phone gets now, to standard output",
        description="Render the MAC file the phone would get now (as /prov/<mac>.cfg or .xml "
        "serves it: profiles merged, placeholders filled, encrypted if its profile has a "
        "key). Its version moves, as on a fetch, only when the content changed.",
    )
    render.add_argument("mac", metavar="MAC")
    render.add_argument(
        "--format", choices=["cfg", "xml"], default="cfg", help="the file asked for (default: cfg)"
    )
    render.add_argument(
        "--decrypt", action="store_true", help="the plain text of an encrypted file"
    )
    render.add_argument(
        "--base-url",
        metavar="URL",
        help="how phones reach this ACS, for the auto-update URLs in the file "
        "(default: ACS_PUBLIC_URL, else http://<host name>:<ACS_CWMP_PORT>)",
    )
    render.add_argument("-o", "--output", default="-", help="write here (default: - stdout)")
    database_command(render, cmd_render, runtime=True)

    profiles = sub.add_parser("profiles", help="phone profiles: per model and user-named")
    commands = profiles.add_subparsers(dest="profiles", required=True)
    listing = commands.add_parser("list", help="every profile")
    add_json_flag(listing)
    database_command(listing, cmd_profiles, runtime=True)
    show = commands.add_parser("show", help="a profile and its settings")
    show.add_argument("kind", choices=["general", "named"], help="general (a model's) or named")
    show.add_argument("name", metavar="NAME", help="the model (X6) or the profile's name")
    add_json_flag(show)
    database_command(show, cmd_profile, runtime=True)
