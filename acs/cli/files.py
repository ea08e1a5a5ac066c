"""``acs files``: the file store (what CPEs and phones download): upload, list, show,
delete."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from acs.cli.common import Cli, add_json_flag, add_page_flags, database_command, now
from acs.cli.output import Column, fields, human_size, key, one, page
from acs.services import files
from acs.services.errors import Invalid
from acs.web.api.schemas import FilePublic, FilesPublic

CHUNK = 1024 * 1024
BAR = 30

COLUMNS: list[Column] = [
    ("NAME", key("name")),
    ("TYPE", key("file_type")),
    ("VERSION", key("version")),
    ("SIZE", key("size")),
    ("SHA256", lambda f: f["sha256"][:16]),
    ("CREATED", key("created")),
]


class Progress:
    """A progress bar on a terminal: redrawn in place each time the percentage moves,
    ended by a line break. Nothing on anything that is not a terminal (a log, a pipe)."""

    def __init__(self, label: str, total: int, stream: TextIO):
        self.label = label
        self.total = total
        self.stream = stream
        self.on = total > 0 and stream.isatty()
        self.done = 0
        self.shown = -1

    def advance(self, size: int) -> None:
        self.done += size
        if not self.on:
            return
        percent = min(100, self.done * 100 // self.total)
        if percent != self.shown:
            self.shown = percent
            filled = BAR * percent // 100
            bar = "#" * filled + "-" * (BAR - filled)
            self.stream.write(
                f"\r{self.label} [{bar}] {percent:3d}% "
                f"{human_size(self.done)} of {human_size(self.total)}"
            )
            self.stream.flush()

    def end(self) -> None:
        if self.on and self.shown >= 0:
            self.stream.write("\n")
            self.stream.flush()


async def _chunks(source: BinaryIO, progress: Progress) -> AsyncIterator[bytes]:
    while chunk := source.read(CHUNK):
        progress.advance(len(chunk))
        yield chunk


def show_file(meta: dict[str, Any]) -> str:
    return fields(
        [
            ("name", meta["name"]),
            ("type", meta["file_type"]),
            ("version", meta["version"]),
            ("oui", meta["oui"]),
            ("product class", meta["product_class"]),
            ("size", f"{meta['size']} bytes ({human_size(meta['size'])})"),
            ("sha256", meta["sha256"]),
            ("content type", meta["content_type"]),
            ("created", meta["created"]),
            ("created by", meta["created_by"]),
        ]
    )


async def cmd_upload(cli: Cli, args: argparse.Namespace) -> int:
    path = Path(args.path)
    name = args.name or path.name
    cli.audit(file=name, file_type=args.type, version=args.version)
    try:
        source = path.open("rb")
    except OSError as exc:
        raise Invalid(f"cannot read {path}: {exc.strerror or exc}") from None
    with source:
        total = os.fstat(source.fileno()).st_size if path.is_file() else 0
        progress = Progress(name, total, sys.stderr)
        try:
            meta = await cli.runtime.files.store(
                name,
                _chunks(source, progress),
                file_type=args.type,
                oui=args.oui,
                product_class=args.product_class,
                version=args.version,
                created_by=cli.actor,
                now=now(),
            )
        finally:
            progress.end()
    return one(args.json, FilePublic, meta.view(), show_file)


async def cmd_list(cli: Cli, args: argparse.Namespace) -> int:
    data, count = await cli.runtime.files.list(
        file_type=args.type,
        oui=args.oui,
        product_class=args.product_class,
        limit=args.limit,
        offset=args.offset,
    )
    views = [meta.view() for meta in data]
    return page(args.json, FilesPublic, COLUMNS, views, count, args.offset)


async def cmd_show(cli: Cli, args: argparse.Namespace) -> int:
    meta = (await cli.runtime.files.get(args.name)).view()
    return one(args.json, FilePublic, meta, show_file)


async def cmd_delete(cli: Cli, args: argparse.Namespace) -> int:
    cli.audit(file=args.name)
    await cli.runtime.files.delete(args.name)
    print(f"file {args.name} deleted")
    return 0


def register(sub: Any) -> None:
    group = sub.add_parser("files", help="the file store: firmware, configurations, phone files")
    commands = group.add_subparsers(dest="files", required=True)
    kinds = ", ".join(repr(k) for k in files.FILE_KINDS)

    upload = commands.add_parser(
        "upload",
        help="store a file (streamed; replaces a file of that name)",
        description="Store a file under its name (or --name), streamed into the file store, "
        "with a progress bar on standard error when that is a terminal.",
    )
    upload.add_argument("path", metavar="PATH", help="the file to store")
    upload.add_argument("--type", required=True, metavar="KIND", help=f"one of {kinds}")
    upload.add_argument("--name", help="the name it is stored and served under (default: PATH's)")
    upload.add_argument("--version", help="the firmware version it installs")
    upload.add_argument("--oui", help="the devices it is for (informational)")
    upload.add_argument("--product-class", help="the devices it is for (informational)")
    add_json_flag(upload)
    database_command(upload, cmd_upload, runtime=True, audited=True)

    listing = commands.add_parser("list", help="stored files, by name")
    listing.add_argument("--type", metavar="KIND", help="of this kind only")
    listing.add_argument("--oui")
    listing.add_argument("--product-class")
    add_page_flags(listing)
    add_json_flag(listing)
    database_command(listing, cmd_list, runtime=True)

    show = commands.add_parser("show", help="a stored file's metadata")
    show.add_argument("name", metavar="NAME")
    add_json_flag(show)
    database_command(show, cmd_show, runtime=True)

    delete = commands.add_parser("delete", help="delete a stored file")
    delete.add_argument("name", metavar="NAME")
    database_command(delete, cmd_delete, runtime=True, audited=True)
