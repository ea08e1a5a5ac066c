"""What a simulated CPE keeps in flash across restarts (``acs simulate --state FILE``).

A real CPE that reboots, or is switched off and on, still has what the ACS configured: its
ManagementServer credentials, its connection-request credentials, its periodic inform
settings, every parameter a SetParameterValues wrote, objects added or deleted, notification
attributes, the firmware it installed. A fleet restarted without that would answer every
connection request with 401 until each device bootstrapped again.

The file keeps, per device, only what differs from the factory data model (``Flash``
compares against a snapshot taken when the device is made), so a new simulator version's
models still apply to what was never changed. Values that each run assigns afresh (the
connection-request addresses of this run's listener) are not kept. The file is JSON, one line
per device::

    {"format": 1, "devices": {"<OUI>-<ProductClass>-<SerialNumber>": {
        "parameters": {name: {"value", "type", "writable", "notification", "access_list"}},
        "deleted": [name, ...]}}}

It is written whole to a temporary file next to it and renamed over it, so a reader (or a
crash) sees the old file or the new one, never half of one. Devices of the file that this
run does not simulate are written back unchanged.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from acs.simulator.model import CpeModel, Parameter

FORMAT = 1
# Given afresh by each run (the listener's address, what STUN and XMPP find), never restored.
VOLATILE = (
    "ManagementServer.ConnectionRequestURL",
    "ManagementServer.UDPConnectionRequestAddress",
    "ManagementServer.NATDetected",
    "ManagementServer.ConnReqJabberID",
)

_Snapshot = tuple[Any, str, bool, int, tuple[str, ...]]


class StateFileError(Exception):
    """The state file cannot be read, used or written."""


def device_key(model: CpeModel) -> str:
    return f"{model.oui}-{model.product_class}-{model.serial_number}"


def _snapshot(p: Parameter) -> _Snapshot:
    return (p.value, p.type, p.writable, p.notification, tuple(p.access_list))


class Flash:
    """One device's persistent state: its factory data model and how it differs now."""

    def __init__(self, model: CpeModel):
        self.model = model
        self.key = device_key(model)
        self._volatile = {f"{model.root}.{suffix}" for suffix in VOLATILE}
        self._factory = {
            name: _snapshot(p) for name, p in model.parameters.items() if name not in self._volatile
        }
        self._saved: tuple[int, dict[str, Any]] | None = None  # (model revision, save())

    def save(self) -> dict[str, Any]:
        """What to keep: every parameter added or changed since the factory, and the
        factory's parameters that are gone. Worked out again only once the model changed
        (its revision moved): a fleet of 30,000 devices saves every few seconds."""
        if self._saved is not None and self._saved[0] == self.model.revision:
            return self._saved[1]
        changed = {}
        for name, p in self.model.parameters.items():
            if name in self._volatile:
                continue
            now = _snapshot(p)
            if self._factory.get(name) != now:
                value, type_, writable, notification, access_list = now
                changed[name] = {
                    "value": value,
                    "type": type_,
                    "writable": writable,
                    "notification": notification,
                    "access_list": list(access_list),
                }
        deleted = [name for name in self._factory if name not in self.model.parameters]
        saved = {"parameters": changed, "deleted": deleted}
        self._saved = (self.model.revision, saved)
        return saved

    def restore(self, saved: dict[str, Any]) -> None:
        """Put back what ``save`` kept (on the factory model this was made with)."""
        try:
            for name in saved.get("deleted", []):
                self.model.parameters.pop(name, None)
            for name, spec in saved.get("parameters", {}).items():
                if name in self._volatile:
                    continue
                self.model.parameters[name] = Parameter(
                    spec["value"],
                    spec["type"],
                    bool(spec["writable"]),
                    int(spec.get("notification", 0)),
                    tuple(spec.get("access_list", ())),
                )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise StateFileError(f"device {self.key}: unreadable state ({exc!r})") from None
        self.model.revision += 1


def load(path: Path) -> dict[str, dict[str, Any]]:
    """The devices of a state file by key; none if it does not exist yet."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateFileError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StateFileError(f"{path} is not an acs simulate state file (format {FORMAT})")
    devices = data.get("devices")
    if not isinstance(devices, dict):
        raise StateFileError(f"{path}: no devices")
    return devices


def dumps(devices: dict[str, dict[str, Any]]) -> str:
    """The file's text: one line per device, in key order. (json's indent would take the
    encoder written in Python, four times slower than its C one at 30,000 devices.)"""
    lines = ",\n".join(
        f"{json.dumps(key)}: {json.dumps(devices[key], sort_keys=True)}" for key in sorted(devices)
    )
    return f'{{"format": {FORMAT}, "devices": {{\n{lines}\n}}}}\n'


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` all at once (a temporary file renamed over it)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class StateFile:
    """The state file of a fleet: read at start, written periodically and at stop."""

    def __init__(self, path: Path):
        self.path = path
        self.devices = load(path)  # what the file had, devices of other runs included
        self._written: str | None = None
        self._written_revisions: list[tuple[str, int]] | None = None  # of the flashes then

    def restore(self, flash: Flash) -> bool:
        """Restore one device; False if the file does not know it."""
        saved = self.devices.get(flash.key)
        if saved is None:
            return False
        flash.restore(saved)
        return True

    def save(self, flashes: list[Flash]) -> bool:
        """Write the file if anything changed since the last write; True if written. No
        model changed since then (their revisions say so) means nothing is rendered."""
        revisions = [(f.key, f.model.revision) for f in flashes]
        if revisions == self._written_revisions:
            return False
        devices = dict(self.devices)
        devices.update((f.key, f.save()) for f in flashes)
        text = dumps(devices)
        if text == self._written:
            self._written_revisions = revisions
            return False
        try:
            write_atomically(self.path, text)
        except OSError as exc:
            raise StateFileError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        self._written, self._written_revisions = text, revisions
        return True
