"""Presets: declarative configuration of the devices a filter matches (zero-touch).

Theory of operation
-------------------
A preset says which devices it is for (``PresetFilter``), when it acts (the Inform's event
codes, a schedule window), its order (``weight``: lower first, a higher weight wins a path
both set) and the state those devices must reach (``Desired``): parameter values with their
xsd types, objects that must exist with their parameters, a firmware version (a stored
file), a phone profile, tags, the periodic inform interval.

Declarative: ``plan()`` compares a preset's desired state with what the ACS knows of the
device (its parameter tree, tags, software version) and gives only the difference: what to
ask first (paths the ACS does not know: ``refresh``), then objects to add, values to set,
tags, the firmware Download, the phone profile. A device whose plans are all empty is
*converged*; the session policy's ``Presets`` component (``policy/presets.py``) then writes
the device's mark, so that its next Informs cost nothing (``Catalog.mark``).

This module is pure apart from ``PresetStore`` (the API's CRUD and dry-run) and
``Catalog.load`` (the presets of one ``presets_version``, cached per worker).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)
from sqlalchemy import and_, delete, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError

from acs.cwmp import datamodel, xsd
from acs.db import hot, tables
from acs.db.engine import Database
from acs.db.tables import insert_for
from acs.db.types import JSONDoc
from acs.services import devices as device_search
from acs.services.errors import Conflict, Invalid, NotFound

ROOTS: Final = datamodel.ROOTS
DEFAULT_PRESET: Final = "bootstrap"  # the built-in provisioning, as a preset (migration 0012)
ANY_EVENT: Final = "*"
MAX_ROUNDS: Final = 4  # evaluations per session: more means presets undo each other
BACKOFF_BASE: Final = 300  # seconds before a failed preset is tried again; doubles per failure
BACKOFF_MAX: Final = 86400
SPREAD_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)  # PeriodicInformTime's reference
_NAME_RE = re.compile(r"[A-Za-z0-9_.:@-]{1,128}")
_TAG_RE = re.compile(r"[A-Za-z0-9_.:@-]{1,64}")
_DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_SETS: Final = {
    "daily": frozenset(range(7)),
    "weekdays": frozenset(range(5)),
    "weekends": frozenset({5, 6}),
}
Scalar = str | int | bool


class BadPreset(Invalid):
    """A preset that cannot be: the message says which part and why."""


# --- the model --------------------------------------------------------------------------


class TypedValue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: Scalar
    type: str | None = Field(None, description="xsd type; default: the standard's, else inferred")


# Strict members: in a left-to-right union a lax int took JSON true as 1 (sent as xsd:int).
ParameterValue = Annotated[
    StrictStr | StrictInt | StrictBool | TypedValue, Field(union_mode="left_to_right")
]


class PresetFilter(BaseModel):
    """Which devices a preset is for: every condition given must hold (none: every device)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="DeviceInfo.ModelName")
    oui: str | None = None
    product_class: str | None = None
    software_version: str | None = None
    tag: str | None = None
    mode: str | None = Field(None, description="common or ctc")
    parameters: dict[str, str] = Field(
        default_factory=dict, description="path: value (as text), as the device reported it"
    )


class ObjectSpec(BaseModel):
    """An instance of a multi-instance object that must exist: the one under ``path``
    whose ``keys`` have these values (added and given them if none has), then set to
    ``parameters``."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="the table, ending in '.' (e.g. Device.NAT.PortMapping.)")
    keys: dict[str, ParameterValue] = Field(min_length=1)
    parameters: dict[str, ParameterValue] = Field(default_factory=dict)

    @field_validator("path")
    @classmethod
    def _table(cls, value: str) -> str:
        if not value.endswith(".") or ".." in value:
            raise ValueError("an object table path ends in '.'")
        return value


class Desired(BaseModel):
    """The state a matching device must reach."""

    model_config = ConfigDict(extra="forbid")

    parameters: dict[str, ParameterValue] = Field(default_factory=dict)
    objects: list[ObjectSpec] = Field(default_factory=list)
    firmware: str | None = Field(None, description="a stored file with a version")
    phone_profile: str | None = Field(None, description="a named phone profile")
    tags: list[str] = Field(default_factory=list)
    periodic_inform_interval: int | None = Field(None, ge=1, le=2**32 - 1)
    connection_request_credentials: bool = Field(
        False,
        description="per-device connection-request credentials set by bootstrap provisioning "
        "(the default preset's)",
    )

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not _TAG_RE.fullmatch(tag):
                raise ValueError("tags are 1-64 of A-Z a-z 0-9 _ . : @ -")
        return sorted(set(value))


class PresetSpec(BaseModel):
    """A preset as an operator writes it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="1-128 of A-Z a-z 0-9 _ . : @ -")
    enabled: bool = True
    weight: int = Field(0, ge=-(2**31), le=2**31 - 1)
    filter: PresetFilter = Field(default_factory=PresetFilter)
    events: list[str] = Field(
        default_factory=list,
        description="event codes it acts on ('*': any; none: every session)",
    )
    schedule: str | None = Field(
        None, description="a local time window it acts in, e.g. '02:00-04:00 weekdays'"
    )
    desired: Desired = Field(default_factory=Desired)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.fullmatch(value):
            raise ValueError("names are 1-128 of A-Z a-z 0-9 _ . : @ -")
        return value

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        for code in value:
            if not code.strip() or len(code) > 64:
                raise ValueError("an event code is 1-64 characters, e.g. '1 BOOT'")
        return list(dict.fromkeys(value))

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value is not None:
            Window.parse(value)
        return value


# --- schedule windows -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """``HH:MM-HH:MM [local] [days]``, local time (``ACS_PRESETS_TIMEZONE``; ``local`` may
    say so): days are ``daily`` (default), ``weekdays``, ``weekends``, or day names and ranges
    (``mon-fri``, ``saturday,sunday``). A window that ends before it starts runs past midnight
    (its start's day counts)."""

    start: time
    end: time
    days: frozenset[int]

    @classmethod
    def parse(cls, text_: str) -> Window:
        parts = text_.strip().lower().split(None, 1)
        if not parts:
            raise ValueError("an empty window: HH:MM-HH:MM, then days, e.g. weekdays")
        if len(parts) == 2:  # "local" says what every window is
            rest = re.sub(r"^local\b[,\s]*", "", parts[1])
            parts = [parts[0], rest] if rest else [parts[0]]
        m = re.fullmatch(r"([0-2]?[0-9]):([0-5][0-9])-([0-2]?[0-9]):([0-5][0-9])", parts[0])
        if m is None or int(m[1]) > 23 or int(m[3]) > 24 or (int(m[3]) == 24 and m[4] != "00"):
            raise ValueError(f"{text_!r}: a window is HH:MM-HH:MM, then days, e.g. weekdays")
        start = time(int(m[1]), int(m[2]))
        end = time.max if int(m[3]) == 24 else time(int(m[3]), int(m[4]))
        days = _DAY_SETS["daily"]
        if len(parts) == 2:
            days = _days(parts[1], text_)
        if start == end:
            raise ValueError(f"{text_!r}: the window is empty")
        return cls(start, end, days)

    def contains(self, local: datetime) -> bool:
        now = local.time()
        if self.start < self.end:
            return local.weekday() in self.days and self.start <= now < self.end
        if now >= self.start:  # past midnight: the evening part
            return local.weekday() in self.days
        return now < self.end and (local.weekday() - 1) % 7 in self.days


def _days(text_: str, whole: str) -> frozenset[int]:
    out: set[int] = set()
    for part in re.split(r"[,\s]+", text_.strip()):
        if part in _DAY_SETS:
            out |= _DAY_SETS[part]
            continue
        first, _, last = part.partition("-")
        a, b = _day(first), _day(last or first)
        if a is None or b is None:
            raise ValueError(f"{whole!r}: days are daily, weekdays, weekends or mon-fri, sat...")
        out |= {(a + n) % 7 for n in range((b - a) % 7 + 1)}
    return frozenset(out)


def _day(name: str) -> int | None:
    """Monday is 0: a day by its three letters or its whole name."""
    for names in (_DAYS, _DAY_NAMES):
        if name in names:
            return names.index(name)
    return None


# --- a preset as the session policy uses it --------------------------------------------


@dataclass(frozen=True, slots=True)
class Preset:
    id: int
    name: str
    weight: int
    version: int
    filter: PresetFilter
    events: tuple[str, ...]
    window: Window | None
    desired: Desired
    invalid: str | None = None  # a desired value its type refuses (stored before checks were)

    @classmethod
    def of(cls, row: Any) -> Preset:
        desired = Desired.model_validate(row.desired or {})
        return cls(
            id=row.id,
            name=row.name,
            weight=row.weight,
            version=row.version,
            filter=PresetFilter.model_validate(row.filter or {}),
            events=tuple(row.events or ()),
            window=Window.parse(row.schedule) if row.schedule else None,
            desired=desired,
            invalid=invalid_value(desired),
        )

    @property
    def channel(self) -> str:
        """Where its faults are recorded (GenieACS's word): one per preset."""
        return f"preset:{self.name}"

    def acts_on(self, events: Iterable[str], local_now: datetime) -> bool:
        """Whether it acts in a session of these event codes, at this local time."""
        codes = set(events)
        if self.events and ANY_EVENT not in self.events and not codes.intersection(self.events):
            return False
        return self.window is None or self.window.contains(local_now)

    def filter_paths(self, root: str) -> list[str]:
        paths = [absolute(root, p) for p in self.filter.parameters]
        if self.filter.model is not None:
            paths.append(f"{root}.DeviceInfo.ModelName")
        return paths


def absolute(root: str, path: str) -> str:
    """A preset's path: full (``Device.``/``InternetGatewayDevice.``) or under the root."""
    return path if path.partition(".")[0] in ROOTS else f"{root}.{path}"


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """What a preset's filter and plan look at."""

    id: str
    root: str
    oui: str
    product_class: str
    software_version: str | None
    mode: str
    tags: tuple[str, ...]
    tree: Mapping[str, Any]  # the parameter tree: {path: {"value", "type", ...}}
    secrets: Mapping[str, str] = field(default_factory=dict)  # path -> digest of what we set

    def value(self, path: str) -> Any:
        entry = self.tree.get(path)
        return None if not isinstance(entry, Mapping) else entry.get("value")

    def knows(self, path: str) -> bool:
        entry = self.tree.get(path)
        return isinstance(entry, Mapping) and "value" in entry


def matches(f: PresetFilter, facts: DeviceFacts) -> bool | None:
    """Whether the filter holds; ``None``: it depends on values the ACS does not know."""
    for column in ("oui", "product_class", "software_version", "mode"):
        wanted = getattr(f, column)
        if wanted is not None and getattr(facts, column) != wanted:
            return False
    if f.tag is not None and f.tag not in facts.tags:
        return False
    checks = dict(f.parameters)
    if f.model is not None:
        checks["DeviceInfo.ModelName"] = f.model
    unknown = False
    for path, wanted in checks.items():
        full = absolute(facts.root, path)
        if not facts.knows(full):
            unknown = True
        elif _text(facts.value(full)) != wanted:
            return False
    return None if unknown else True


def _text(value: Any) -> str:
    return xsd.encode(value) if isinstance(value, str | int | bool) else str(value)


# --- inform storms ----------------------------------------------------------------------


def spread_time(device_id: str, interval: int) -> str:
    """PeriodicInformTime for ``device_id``: an offset within ``interval`` derived from its
    id, so devices set at once (after a power cut) do not inform on the same second."""
    digest = hashlib.sha256(device_id.encode()).digest()
    offset = int.from_bytes(digest[:8], "big") % max(interval, 1)
    return xsd.format_datetime(SPREAD_EPOCH + timedelta(seconds=offset))


def interval_values(
    root: str, device_id: str, interval: int, spread: bool
) -> list[tuple[str, Scalar, str]]:
    """The parameters that set the periodic inform interval (and spread its time)."""
    base = f"{root}.ManagementServer."
    values: list[tuple[str, Scalar, str]] = [
        (base + "PeriodicInformEnable", True, xsd.BOOLEAN),
        (base + "PeriodicInformInterval", interval, xsd.UNSIGNED_INT),
    ]
    if spread:
        values.append(
            (base + "PeriodicInformTime", spread_time(device_id, interval), xsd.DATE_TIME)
        )
    return values


# --- plans ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetValue:
    path: str
    value: Scalar
    type: str

    def as_json(self) -> list[Any]:
        return [self.path, self.value, self.type]


@dataclass(frozen=True, slots=True)
class AddObject:
    """Add an instance to ``table``; ``index``: which object of the preset."""

    table: str
    index: int


@dataclass(slots=True)
class Plan:
    """What one preset still needs on one device, in the order it is done."""

    preset: Preset
    refresh: list[str] = field(default_factory=list)  # paths to ask first
    add: list[AddObject] = field(default_factory=list)
    set: list[SetValue] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)  # to add
    firmware: str | None = None  # a Download of this stored file to queue
    phone_profile: str | None = None  # to assign

    @property
    def converged(self) -> bool:
        return not (
            self.refresh or self.add or self.set or self.tags or self.firmware or self.phone_profile
        )

    def view(self) -> dict[str, Any]:
        """What the dry-run shows."""
        return {
            "preset": self.preset.name,
            "refresh": self.refresh,
            "add_objects": [a.table for a in self.add],
            "set_parameter_values": [
                {"name": s.path, "value": s.value, "type": s.type} for s in self.set
            ],
            "tags": self.tags,
            "firmware": self.firmware,
            "phone_profile": self.phone_profile,
        }


def invalid_value(desired: Desired) -> str | None:
    """Why a desired value does not fit its type, or None. Types depend on the path alone
    (the standard's, whatever the instance), so this is checked once for every device: under
    each root, an object's parameters under its instance 1."""
    try:
        for root in ROOTS:
            for path, given in desired.parameters.items():
                typed(absolute(root, path), given)
            for obj in desired.objects:
                for name, given in {**obj.keys, **obj.parameters}.items():
                    typed(absolute(root, obj.path) + "1." + name, given)
    except ValueError as exc:
        return str(exc)
    return None


def typed(path: str, given: Scalar | TypedValue) -> tuple[Scalar, str]:
    """A desired value and its xsd type: the given type, the standard's, else inferred."""
    value, kind = (given.value, given.type) if isinstance(given, TypedValue) else (given, None)
    kind = kind or datamodel.standard_type(path) or xsd.infer_type(value)
    return xsd.check(value, kind), kind


def secret_digest(value: Scalar) -> str:
    return hashlib.sha256(xsd.encode(value).encode()).hexdigest()[:16]


def same(facts: DeviceFacts, path: str, value: Scalar, kind: str) -> bool:
    """Whether the ACS knows the device has ``value`` at ``path``."""
    if path in facts.secrets:  # what we set is kept as a digest only (never the value)
        return facts.secrets[path] == secret_digest(value)
    if not facts.knows(path):
        return False
    known = facts.value(path)
    if kind == xsd.DATE_TIME:
        return xsd.parse_datetime(_text(known)) == xsd.parse_datetime(str(value))
    try:
        return xsd.check(known, kind) == value
    except (ValueError, TypeError):
        return False


@dataclass(frozen=True, slots=True)
class Extras:
    """What a plan needs beyond the parameter tree: the firmware file's version, the
    phone's profile (``None``: no such file or phone)."""

    firmware_versions: Mapping[str, str | None] = field(default_factory=dict)
    phone_profile: str | None = None
    firmware_pending: bool = False  # a Download of the preset's file is still under way


def plan(
    preset: Preset,
    facts: DeviceFacts,
    *,
    spread: bool,
    owned: Mapping[str, int] | None = None,
    added: Mapping[str, str] | None = None,
    extras: Extras | None = None,
) -> Plan:
    """The difference between ``preset``'s desired state and what the ACS knows.

    ``owned``: path -> the id of the preset whose value wins there (a higher weight);
    ``added``: "<object index>" -> the instance this session added for it (its keys not
    set yet)."""
    out = Plan(preset)
    d = preset.desired
    root = facts.root
    extras = extras or Extras()
    wanted: list[tuple[str, Scalar, str]] = []
    fresh: set[str] = set()  # parameters of instances added in this session: set them
    for path, given in d.parameters.items():
        full = absolute(root, path)
        wanted.append((full, *typed(full, given)))
    if d.periodic_inform_interval is not None:
        wanted.extend(interval_values(root, facts.id, d.periodic_inform_interval, spread))
    for index, obj in enumerate(d.objects):
        table = absolute(root, obj.path)
        new = (added or {}).get(str(index))
        instance = new or _instance(facts, table, obj)
        if instance is None:
            if not any(k.startswith(table) for k in facts.tree):
                out.refresh.append(table)  # the ACS knows none of its instances: ask
            else:
                out.add.append(AddObject(table, index))
            continue
        for name, given in {**obj.keys, **obj.parameters}.items():
            full = instance + name
            wanted.append((full, *typed(full, given)))
            if new:
                fresh.add(full)
    for full, value, kind in wanted:
        if owned is not None and owned.get(full, preset.id) != preset.id:
            continue  # a preset of higher weight sets this path
        if not facts.knows(full) and full not in facts.secrets and full not in fresh:
            out.refresh.append(full)
        elif not same(facts, full, value, kind):
            out.set.append(SetValue(full, value, kind))
    out.tags = [t for t in d.tags if t not in facts.tags]
    if d.firmware is not None and not extras.firmware_pending:
        version = extras.firmware_versions.get(d.firmware)
        if version is not None and version != facts.software_version:
            out.firmware = d.firmware
    if d.phone_profile is not None and extras.phone_profile != d.phone_profile:
        out.phone_profile = d.phone_profile
    return out


def _instance(facts: DeviceFacts, table: str, obj: ObjectSpec) -> str | None:
    """The instance of ``table`` whose keys have the object's values, if the ACS knows one."""
    instances = sorted(
        {
            k[: len(table) + len(k[len(table) :].split(".", 1)[0]) + 1]
            for k in facts.tree
            if k.startswith(table) and k[len(table) :].split(".", 1)[0].isdigit()
        }
    )
    for instance in instances:
        if all(same(facts, instance + n, *typed(instance + n, v)) for n, v in obj.keys.items()):
            return instance
    return None


def ownership(presets: Sequence[Preset], facts: DeviceFacts, spread: bool) -> dict[str, int]:
    """path -> the preset that sets it: of two presets setting one path, the later in
    order (higher weight) wins."""
    owned: dict[str, int] = {}
    for p in presets:
        for path in p.desired.parameters:
            owned[absolute(facts.root, path)] = p.id
        if p.desired.periodic_inform_interval is not None:
            for path, _, _ in interval_values(facts.root, facts.id, 1, spread):
                owned[path] = p.id
    return owned


# --- the catalog: presets of one version, and the device's mark --------------------------

_LOAD = hot.Statement(
    "SELECT id, name, weight, version, filter, events, schedule, desired, "
    "(SELECT value FROM meta WHERE key = 'presets_version') AS presets_version "
    "FROM presets WHERE enabled ORDER BY weight, id",
    columns=(
        "id",
        "name",
        "weight",
        "version",
        "filter",
        "events",
        "schedule",
        "desired",
        "presets_version",
    ),
    types={"filter": JSONDoc, "events": JSONDoc, "desired": JSONDoc},
)
_VERSION = hot.Statement("SELECT value FROM meta WHERE key = 'presets_version'", columns=("value",))


@dataclass(frozen=True, slots=True)
class Catalog:
    """The enabled presets of one ``presets_version``, in order (weight, id)."""

    version: str
    presets: tuple[Preset, ...]

    def by_id(self, preset_id: int) -> Preset | None:
        return next((p for p in self.presets if p.id == preset_id), None)

    def depends_on(self, root: str) -> list[str]:
        """Paths whose values an Inform may carry and a preset looks at."""
        paths: set[str] = set()
        for p in self.presets:
            paths.update(p.filter_paths(root))
            paths.update(absolute(root, q) for q in p.desired.parameters)
        return sorted(paths)

    def mark(
        self,
        *,
        root: str,
        oui: str,
        product_class: str,
        software_version: str | None,
        mode: str,
        values: Mapping[str, Any],
    ) -> str:
        """A digest of this version and the facts of an Inform the presets depend on (the
        values of ``depends_on`` paths it carries); the rest of what they look at (the
        tree, tags) clears the device's mark when it changes."""
        facts: list[Any] = [self.version, root, oui, product_class, software_version, mode]
        facts.extend([p, _text(values[p])] for p in self.depends_on(root) if p in values)
        return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:32]


class CatalogCache:
    """The catalog of the current version, per worker: read again only when the version
    the device row's read returned is not the one held."""

    def __init__(self) -> None:
        self.catalog: Catalog | None = None

    async def get(self, tx: hot.Transaction, version: str | None) -> Catalog:
        held = self.catalog
        if held is not None and version is not None and held.version == version:
            return held
        rows = await tx.fetch(_LOAD)
        if rows:
            current = str(rows[0].presets_version or "0")
        else:
            row = await tx.first(_VERSION)
            current = str(row.value) if row is not None else "0"
        presets = []
        for row in rows:
            try:
                presets.append(Preset.of(row))
            except (ValidationError, ValueError):
                continue  # written by a newer acs: not ours to apply
        self.catalog = Catalog(current, tuple(presets))
        return self.catalog


def backoff(failures: int) -> int:
    return int(min(BACKOFF_BASE * 2 ** max(failures - 1, 0), BACKOFF_MAX))


# --- the management side: CRUD and dry-run ---------------------------------------------


def _view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "enabled": row.enabled,
        "weight": row.weight,
        "filter": row.filter or {},
        "events": row.events or [],
        "schedule": row.schedule,
        "desired": row.desired or {},
        "version": row.version,
        "created": row.created,
        "updated": row.updated,
        "created_by": row.created_by,
    }


def _dump(spec: PresetSpec) -> dict[str, Any]:
    data = spec.model_dump(mode="json", exclude_defaults=False)
    data["filter"] = spec.filter.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    data["desired"] = spec.desired.model_dump(mode="json", exclude_defaults=True)
    return data


async def _bump(conn: Any) -> None:
    """Every device's mark is stale: the presets changed."""
    p = tables.presets
    version = await conn.scalar(select(func.coalesce(func.sum(p.c.version), 0) + func.count()))
    stamp = f"{int(version or 0)}.{datetime.now(UTC).timestamp():.6f}"
    await conn.execute(
        insert_for(conn, tables.meta)
        .values(key="presets_version", value=stamp)
        .on_conflict_do_update(index_elements=["key"], set_={"value": stamp})
    )


class PresetStore:
    """Presets as operators see them (``/api/v1/presets``)."""

    def __init__(self, db: Database, *, mode: str, spread: bool, timezone: str):
        self.db = db
        self.mode = mode
        self.spread = spread
        self.zone = ZoneInfo(timezone)

    async def list_all(self) -> list[dict[str, Any]]:
        p = tables.presets
        async with self.db.read() as conn:
            rows = await conn.execute(select(p).order_by(p.c.weight, p.c.id))
            return [_view(r) for r in rows]

    async def get(self, name: str) -> dict[str, Any]:
        p = tables.presets
        async with self.db.read() as conn:
            row = (await conn.execute(select(p).where(p.c.name == name))).first()
        if row is None:
            raise NotFound(f"no preset {name!r}")
        return _view(row)

    async def _check(self, conn: Any, spec: PresetSpec) -> None:
        invalid = invalid_value(spec.desired)
        if invalid is not None:
            raise BadPreset(f"desired: {invalid}")
        if spec.filter.mode not in (None, "common", "ctc"):
            raise BadPreset("filter.mode is common or ctc")
        if spec.desired.firmware is not None:
            f = tables.files
            row = (
                await conn.execute(select(f.c.version).where(f.c.name == spec.desired.firmware))
            ).first()
            if row is None or not row.version:
                raise BadPreset(
                    f"desired.firmware: no stored file {spec.desired.firmware!r} with a version"
                )

    async def create(self, spec: PresetSpec, *, now: datetime, created_by: str) -> dict[str, Any]:
        p = tables.presets
        async with self.db.write() as conn:
            await self._check(conn, spec)
            # one statement decides, so two creates of one name at once are a 409, not an
            # integrity error
            made = await conn.execute(
                insert_for(conn, p)
                .values(**_dump(spec), version=1, created=now, updated=now, created_by=created_by)
                .on_conflict_do_nothing(index_elements=[p.c.name])
            )
            if not made.rowcount:
                raise Conflict(f"a preset named {spec.name!r} exists")
            await _bump(conn)
        return await self.get(spec.name)

    async def update(
        self, name: str, changes: Mapping[str, Any], *, now: datetime
    ) -> dict[str, Any]:
        """Replace the fields given (``changes``: PresetSpec's fields, validated here). The
        row is read locked in the transaction that writes it: two changes at once apply one
        after the other, neither lost."""
        p = tables.presets
        async with self.db.write() as conn:
            row = (await conn.execute(select(p).where(p.c.name == name).with_for_update())).first()
            if row is None:
                raise NotFound(f"no preset {name!r}")
            current = _view(row)
            merged = {
                k: current[k]
                for k in ("name", "enabled", "weight", "filter", "events", "schedule", "desired")
            }
            merged.update(changes)
            try:
                spec = PresetSpec.model_validate(merged)
            except ValidationError as exc:
                raise BadPreset(_first_error(exc)) from None
            await self._check(conn, spec)
            if name == DEFAULT_PRESET and spec.name != name:
                raise Conflict("the default preset keeps its name (switch it off instead)")
            taken = Conflict(f"a preset named {spec.name!r} exists")
            if (
                spec.name != name
                and (await conn.execute(select(p.c.id).where(p.c.name == spec.name))).first()
            ):
                raise taken
            try:
                await conn.execute(
                    update(p)
                    .where(p.c.id == row.id)
                    .values(**_dump(spec), version=p.c.version + 1, updated=now)
                )
            except IntegrityError:  # the name was taken meanwhile
                raise taken from None
            await _bump(conn)
        return await self.get(spec.name)

    async def delete(self, name: str) -> None:
        if name == DEFAULT_PRESET:
            raise Conflict("the default preset is switched off (enabled: false), not deleted")
        p = tables.presets
        async with self.db.write() as conn:
            result = await conn.execute(delete(p).where(p.c.name == name))
            if not result.rowcount:
                raise NotFound(f"no preset {name!r}")
            await _bump(conn)

    # --- dry-run ---------------------------------------------------------------------

    def _conditions(self, dialect: str, f: PresetFilter, now: datetime) -> list[Any]:
        search = device_search.DeviceFilter(
            oui=f.oui,
            product_class=f.product_class,
            software_version=f.software_version,
            tag=f.tag,
            # relative paths are under the device's root, as in sessions (either, here)
            parameters=sorted(f.parameters.items())
            + ([("DeviceInfo.ModelName", f.model)] if f.model is not None else []),
        )
        out = device_search.conditions(dialect, search, now)
        d = tables.devices
        if f.mode is not None:
            out.append(
                or_(d.c.mode == f.mode, and_(d.c.mode.is_(None), literal(f.mode == self.mode)))
            )
        return out

    async def dry_run(
        self, name: str, *, now: datetime, device_id: str | None, limit: int = 100
    ) -> dict[str, Any]:
        """Which devices the preset matches (a count and the first page of ids), and, for
        ``device_id``, what it would do there now (whatever the session's events)."""
        view = await self.get(name)
        spec = PresetSpec.model_validate(
            {k: view[k] for k in ("name", "enabled", "weight", "filter", "events", "schedule")}
            | {"desired": view["desired"]}
        )
        d = tables.devices
        async with self.db.read() as conn:
            where = self._conditions(conn.dialect.name, spec.filter, now)
            total = await conn.scalar(select(func.count()).select_from(d).where(*where))
            ids = (
                await conn.execute(select(d.c.id).where(*where).order_by(d.c.id).limit(limit))
            ).scalars()
            out: dict[str, Any] = {"preset": name, "count": int(total or 0), "devices": list(ids)}
            if device_id is not None:
                out["device"] = await self._device_plan(conn, view, device_id, now)
        return out

    async def _device_plan(
        self, conn: Any, view: dict[str, Any], device_id: str, now: datetime
    ) -> dict[str, Any]:
        d = tables.devices
        row = (await conn.execute(select(d).where(d.c.id == device_id))).first()
        if row is None:
            raise NotFound(f"no device {device_id!r}")
        preset = Preset.of(_Row(view))
        facts = facts_of(row, self.mode)
        matched = matches(preset.filter, facts)
        extras = await load_extras(hot.over(conn), preset, facts, row.mac)
        p = plan(preset, facts, spread=self.spread, extras=extras)
        local = now.astimezone(self.zone)
        return {
            "id": device_id,
            "matches": matched,
            "acts_now": preset.window is None or preset.window.contains(local),
            "converged": p.converged,
            "would": p.view(),
        }


class _Row:
    def __init__(self, data: Mapping[str, Any]):
        self.__dict__.update(data)


def facts_of(row: Any, default_mode: str) -> DeviceFacts:
    """A device row (``root`` from its tree) as a plan sees it."""
    tree = row.parameters or {}
    root = next((r for r in ROOTS if any(k.startswith(r + ".") for k in tree)), "Device")
    state = row.presets_state or {}
    return DeviceFacts(
        id=row.id,
        root=root,
        oui=row.oui,
        product_class=row.product_class,
        software_version=row.software_version,
        mode=row.mode or default_mode,
        tags=tuple(row.tags or ()),
        tree=tree,
        secrets=state.get("secrets", {}),
    )


_FILE_VERSION = hot.Statement("SELECT version FROM files WHERE name = :name", columns=("version",))
_PHONE_PROFILE = hot.Statement("SELECT profile FROM phones WHERE mac = :mac", columns=("profile",))


async def load_extras(
    tx: hot.Transaction,
    preset: Preset,
    facts: DeviceFacts,
    mac: str | None,
    *,
    pending: bool = False,
) -> Extras:
    """The rows a plan needs besides the device's (only for presets that name them)."""
    versions: dict[str, str | None] = {}
    if preset.desired.firmware is not None:
        row = await tx.first(_FILE_VERSION, name=preset.desired.firmware)
        versions[preset.desired.firmware] = row.version if row is not None else None
    profile = None
    if preset.desired.phone_profile is not None and mac:
        row = await tx.first(_PHONE_PROFILE, mac=phone_mac(mac))
        profile = row.profile if row is not None else None
    return Extras(versions, profile, pending)


def phone_mac(mac: str) -> str:
    """The phones table's key: 12 lower-case hex digits."""
    return mac.replace(":", "").replace("-", "").lower()


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else str(err["msg"])


async def seed_default(conn: Any, now: datetime) -> None:
    """The default preset and version as migration 0012 leaves them (tests truncate tables),
    on a SQLAlchemy connection in a transaction."""
    p = tables.presets
    await conn.execute(
        insert_for(conn, p)
        .values(
            name=DEFAULT_PRESET,
            enabled=True,
            weight=-100,
            filter={},
            events=["0 BOOTSTRAP"],
            schedule=None,
            desired={"connection_request_credentials": True},
            version=1,
            created=now,
            updated=now,
            created_by="migration 0012",
        )
        .on_conflict_do_nothing()
    )
    await conn.execute(
        insert_for(conn, tables.meta)
        .values(key="presets_version", value="1")
        .on_conflict_do_nothing()
    )
