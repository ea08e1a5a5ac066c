"""What an Inform tells us about a device, as column values and a parameter patch."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from typing import Any

from acs.cwmp import messages as m
from acs.cwmp import xsd

BOOT_EVENTS = frozenset({"0 BOOTSTRAP", "1 BOOT", "M Reboot"})
# Parameters whose values are secrets (TR-098/TR-181/TR-104 names): masked in task views, and
# kept out of the parameter tree (CPEs read them back as empty strings anyway, TR-069 A.3.2.1).
_SECRET_NAME = re.compile(r"(password|passphrase|presharedkey|wepkey|secret)$", re.IGNORECASE)
_MAC_RE = re.compile(r"^[0-9A-Fa-f]{2}([:-]?)[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}$")


def normalize_mac(text: str) -> str | None:
    """``00-15-65-11-3A-F8`` / ``001565113af8`` -> ``00:15:65:11:3a:f8``; else ``None``."""
    text = text.strip()
    if not _MAC_RE.match(text):
        return None
    digits = re.sub(r"[^0-9a-fA-F]", "", text).lower()
    if digits == "000000000000":
        return None
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def _root_relative(name: str) -> str:
    """``InternetGatewayDevice.DeviceInfo.X`` and ``Device.DeviceInfo.X`` -> ``DeviceInfo.X``."""
    return name.partition(".")[2]


# Columns filled from well-known parameters, by their path below the root object.
_COLUMN_PARAMETERS = {
    "DeviceInfo.SoftwareVersion": "software_version",
    "DeviceInfo.HardwareVersion": "hardware_version",
    "ManagementServer.ConnectionRequestURL": "connection_request_url",
    "ManagementServer.UDPConnectionRequestAddress": "udp_connection_request_address",
    "ManagementServer.PeriodicInformInterval": "periodic_inform_interval",
}


def device_values(
    inform: m.Inform,
    *,
    peer_host: str | None,
    now: datetime,
    cwmp_version: str,
    known_interval: int | None = None,
    silent_grace: int = 120,
) -> dict[str, Any]:
    """Column values of the device row an Inform updates.

    The device is ``online`` (``unknown`` without a periodic interval) until
    ``inform_deadline``: one periodic Inform missed, plus a grace period (clocks drift,
    sessions retry); see ``monitoring``.
    """
    ident = inform.device_id
    codes = inform.event_codes
    values: dict[str, Any] = {
        "id": ident.device_id,
        "manufacturer": ident.manufacturer,
        "oui": ident.oui,
        "product_class": ident.product_class,
        "serial_number": ident.serial_number,
        "ip": peer_host,
        "cwmp_version": cwmp_version,
        "last_inform": now,
        "last_boot": now if BOOT_EVENTS.intersection(codes) else None,
        "last_bootstrap": now if "0 BOOTSTRAP" in codes else None,
        "last_events": list(codes),
        "mac": None,
    }
    for name in _COLUMN_PARAMETERS.values():
        values[name] = None
    for param in inform.parameter_list:
        column = _COLUMN_PARAMETERS.get(_root_relative(param.name))
        if column == "periodic_inform_interval":
            values[column] = _int(param.value)
        elif column is not None:
            values[column] = xsd.encode(param.value)[:2048] or None
        elif values["mac"] is None and param.name.endswith("MACAddress"):
            values["mac"] = normalize_mac(xsd.encode(param.value))
    if values["mac"] is None and ident.serial_number[:6].upper() == ident.oui.upper():
        # VoIP phones often use their MAC as serial number; its first half is then the OUI.
        values["mac"] = normalize_mac(ident.serial_number)
    interval = values["periodic_inform_interval"] or known_interval
    values["status"] = "online" if interval else "unknown"
    values["status_since"] = now
    values["inform_deadline"] = inform_deadline(now, interval, silent_grace)
    return values


def inform_deadline(now: datetime, interval: int | None, grace: int) -> datetime | None:
    """When a device that informed ``now`` on this periodic inform interval is late: one
    Inform missed, plus a grace period (clocks drift, sessions retry); ``None`` without an
    interval."""
    return now + timedelta(seconds=interval + grace) if interval else None


def _int(value: xsd.Value) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def is_secret(name: str) -> bool:
    return _SECRET_NAME.search(name) is not None


def parameter_patch(
    params: tuple[m.ParameterValueStruct, ...], now: datetime
) -> dict[str, dict[str, Any]]:
    """``{path: {"value", "type", "updated"}}`` for merging into the parameter tree."""
    stamp = xsd.format_datetime(now)
    return {p.name: {"value": p.value, "type": p.type, "updated": stamp} for p in params}


def parameter_digest(params: tuple[m.ParameterValueStruct, ...]) -> str:
    """What an Inform's parameters hash to (``devices.inform_digest``): names, types and
    values, in the order the CPE sent them. The Inform that hashes to the stored digest
    carries what the tree already holds, so its parameters are not written again."""
    h = hashlib.blake2b(digest_size=16)
    for p in params:
        for text in (p.name, p.type, xsd.encode(p.value)):  # each length-prefixed
            h.update(b"%d:%s" % (len(text), text.encode(errors="surrogatepass")))
    return h.hexdigest()


def set_values_patch(
    params: tuple[m.ParameterValueStruct, ...], now: datetime
) -> dict[str, dict[str, Any]]:
    """What the ACS set (a SetParameterValues the CPE accepted), for the parameter tree: the
    values with their types, so that a later SetParameterValues of the same path knows its
    type; secrets with their type only."""
    patch = parameter_patch(params, now)
    for name, entry in patch.items():
        if is_secret(name):
            entry["value"] = ""
    return patch
