"""Phone provisioning: profiles, phones, file assignments, rendering, and the Downloads of
stored files and configurations through TR-069.

Three levels merge, in this order, into a phone's configuration: the general profile of
its model, the user-named profile it is assigned, and its own settings; ``{{variable}}``
placeholders are then filled from the phone's variables (SIP accounts, display names...),
``{{mac}}`` and ``{{model}}``. The ``<AUTOUPDATE CONFIG MODULE>`` URLs come from the files
assigned to the model or the phone, pointing at this ACS's file server with content-bound
signed URLs (stable, so the configuration's version only moves when something changes).

Every rendering is remembered per file (``rendered_configs``): its digest decides whether
the version moves (``acs.provisioning.configfile.next_version``).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from acs.config import Settings
from acs.cwmp import messages as m
from acs.db import hot, tables
from acs.db.engine import Database
from acs.db.types import JSONDoc, OrderedJSON, UTCDateTime
from acs.provisioning import configfile, crypto, rules
from acs.provisioning import models as phone_models
from acs.provisioning.errors import MissingVariablesError, ProvisioningError
from acs.services import errors, renderings
from acs.services.cpe_auth import hash_credentials
from acs.services.files import FileNotFound, FileStore

pr = tables.profiles
ph = tables.phones
fa = tables.assignments
rc = tables.rendered
fl = tables.files

AUTOUPDATE: Final = "AUTOUPDATE CONFIG MODULE"
# Auto-update purposes, their key in the AUTOUPDATE module, and the file kinds they take.
PURPOSES: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "image": ("Auto Image Url", ("1 Firmware Upgrade Image",)),
    "pbook": ("Auto Pbook Url", ("phonebook",)),
    "etc": ("Auto Etc Url", ("certificate",)),
    "logo": ("Auto Logo Url", ("background",)),
    "mmiset": ("Auto Mmiset Url", ("mmiset",)),
    "dpeer": ("Auto DPeer Url", ("dialpeer",)),
    "alist": ("Auto AList Url", ("accesslist",)),
}
MODES: Final = ("common", "ctc")
_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class NotFound(errors.NotFound):
    """No such profile, phone, assignment or general profile to render; the message names
    what was looked for."""


_T = TypeVar("_T")


def _lookup(parse: Callable[[str], _T], name: str) -> _T:
    """``parse(name)`` for a lookup: a name no model or phone can have (``X9``, ``notamac``)
    finds nothing, so it is NotFound (404) where writing it is a ProvisioningError (422)."""
    try:
        return parse(name)
    except ProvisioningError as exc:
        raise NotFound(str(exc)) from None


@dataclass(frozen=True, slots=True)
class Rendered:
    content: bytes
    fmt: str
    version: str
    encrypted: bool
    file_name: str
    plain: bytes  # the content before encryption: what the console shows an operator
    mac: str | None = None  # the phone's, for its MAC file (asked for by MAC or $input id)
    key: str | None = field(default=None, repr=False)  # the AES key it is encrypted with

    @property
    def content_type(self) -> str:
        if self.encrypted:
            return "application/octet-stream"
        return "application/xml" if self.fmt == "xml" else "text/plain; charset=utf-8"


# How many refused lines a CSV import names (the rest are counted).
REFUSED_LINES: Final = 20


@dataclass(frozen=True, slots=True)
class PhoneImport:
    """What a CSV import took: the phones it created and those it updated (MACs, in the
    order of the file; a MAC given twice is created, then updated)."""

    created: list[str]
    updated: list[str]

    @property
    def count(self) -> int:
        return len(self.created) + len(self.updated)


class ImportRefused(errors.Invalid, ProvisioningError):
    """Lines of a CSV import that cannot be taken: nothing was imported. ``refused`` is every
    such line, (number, reason); the message names the first ``REFUSED_LINES``. (A
    ProvisioningError too, as the other refusals of an import are.)"""

    def __init__(self, refused: list[tuple[int, str]], accepted: int):
        more = len(refused) - REFUSED_LINES
        super().__init__(
            "nothing imported: "
            + "; ".join(f"line {n}: {reason}" for n, reason in refused[:REFUSED_LINES])
            + (f"; and {more} more line(s)" if more > 0 else "")
        )
        self.refused = refused
        self.accepted = accepted


def _check_modules(modules: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Settings as ``{module: {key: value}}`` of strings, in a shape both formats can carry."""
    if not isinstance(modules, dict):
        raise ProvisioningError("modules: an object of modules, each an object of settings")
    out: dict[str, dict[str, str]] = {}
    for module, settings in modules.items():
        if not isinstance(settings, dict):
            raise ProvisioningError(f"modules.{module}: an object of settings")
        out[module] = {str(k): str(v) for k, v in settings.items()}
    configfile.validate_config(out)
    return out


def _check_mode(mode: str | None) -> None:
    if mode is not None and mode not in MODES:
        raise ProvisioningError(f"mode must be one of {list(MODES)} or null")


def _check_key(key: str | None) -> str | None:
    if key is None:
        return None
    crypto.parse_key(key)
    return key.lower()


class Provisioning:
    def __init__(self, db: Database, files: FileStore, settings: Settings):
        self.db = db
        self.files = files
        self.settings = settings

    # --- profiles ---------------------------------------------------------------------

    async def put_profile(
        self,
        kind: str,
        name: str,
        *,
        modules: dict[str, Any],
        config_key: str | None,
        common_key: str | None,
        mode: str | None,
        now: datetime,
    ) -> dict[str, Any]:
        """Create or replace a general (per model) or user-named profile."""
        if kind == "general":
            name = phone_models.find_model(name).name
        elif kind == "named":
            if not _NAME_RE.fullmatch(name):
                raise ProvisioningError("profile names are 1-128 of A-Z a-z 0-9 _ . -")
        else:
            raise ProvisioningError("kind is general or named")
        _check_mode(mode)
        values = {
            "modules": _check_modules(modules),
            "config_key": _check_key(config_key),
            "common_key": _check_key(common_key),
            "mode": mode,
            "updated": now,
        }
        async with self.db.write() as conn:
            stmt = tables.insert_for(conn, pr).values(kind=kind, name=name, **values)
            await conn.execute(
                stmt.on_conflict_do_update(index_elements=["kind", "name"], set_=values)
            )
            await renderings.forget(conn)
        return await self.get_profile(kind, name)

    async def get_profile(self, kind: str, name: str) -> dict[str, Any]:
        if kind == "general":
            name = _lookup(phone_models.find_model, name).name
        async with self.db.read() as conn:
            row = (
                await conn.execute(select(pr).where(pr.c.kind == kind, pr.c.name == name))
            ).first()
        if row is None:
            raise NotFound(f"no {kind} profile {name!r}")
        return _profile_view(row)

    async def list_profiles(self) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            rows = await conn.execute(select(pr).order_by(pr.c.kind, pr.c.name))
            return [_profile_view(r) for r in rows]

    async def delete_profile(self, kind: str, name: str) -> None:
        async with self.db.write() as conn:
            result = await conn.execute(delete(pr).where(pr.c.kind == kind, pr.c.name == name))
            await renderings.forget(conn)
        if not result.rowcount:
            raise NotFound(f"no {kind} profile {name!r}")

    # --- phones -----------------------------------------------------------------------

    async def put_phone(
        self,
        mac: str,
        *,
        model: str | None,
        profile: str | None,
        input_id: str | None,
        variables: dict[str, Any],
        modules: dict[str, Any],
        mode: str | None,
        now: datetime,
    ) -> dict[str, Any]:
        mac = phone_models.normalize_mac(mac)
        if model is not None:
            model = phone_models.find_model(model).name
        if input_id is not None and not _NAME_RE.fullmatch(input_id):
            raise ProvisioningError("input_id: 1-128 of A-Z a-z 0-9 _ . -")
        _check_mode(mode)
        values = {
            "model": model,
            "profile": profile,
            "input_id": input_id,
            "variables": {str(k): str(v) for k, v in variables.items()},
            "modules": _check_modules(modules),
            "mode": mode,
            "updated": now,
        }
        try:
            async with self.db.write() as conn:
                stmt = tables.insert_for(conn, ph).values(mac=mac, **values)
                await conn.execute(stmt.on_conflict_do_update(index_elements=["mac"], set_=values))
                await renderings.forget(conn, mac=mac)
        except IntegrityError:
            raise ProvisioningError(f"input_id {input_id!r} belongs to another phone") from None
        return await self.get_phone(mac)

    async def get_phone(self, mac: str) -> dict[str, Any]:
        mac = _lookup(phone_models.normalize_mac, mac)
        async with self.db.read() as conn:
            row = (await conn.execute(select(ph).where(ph.c.mac == mac))).first()
        if row is None:
            raise NotFound(f"no phone {mac}")
        return _phone_view(row)

    async def list_phones(
        self,
        *,
        model: str | None = None,
        profile: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        conditions = []
        if model is not None:
            conditions.append(ph.c.model == model)
        if profile is not None:
            conditions.append(ph.c.profile == profile)
        async with self.db.read() as conn:
            total = await conn.scalar(select(func.count()).select_from(ph).where(*conditions))
            rows = await conn.execute(
                select(ph).where(*conditions).order_by(ph.c.mac).limit(limit).offset(offset)
            )
            return [_phone_view(r) for r in rows], int(total or 0)

    async def delete_phone(self, mac: str) -> None:
        mac = _lookup(phone_models.normalize_mac, mac)
        async with self.db.write() as conn:
            result = await conn.execute(delete(ph).where(ph.c.mac == mac))
            await renderings.forget(conn, mac=mac)
        if not result.rowcount:
            raise NotFound(f"no phone {mac}")

    async def import_phones(self, text: str, now: datetime) -> PhoneImport:
        """Bulk variables from CSV: a ``mac`` column, optional ``model``, ``profile``,
        ``input_id``; every other column is a variable. All rows or none: ``ImportRefused``
        names every line refused, so one round of fixes does."""
        rows, refused = _parse_import(text, shared_username=self.settings.cwmp_username)
        if refused:
            raise ImportRefused(refused, len(rows))
        report = PhoneImport([], [])
        try:
            async with self.db.write() as conn:
                await renderings.forget(conn)
                for mac, model, profile, input_id, variables, login in rows:
                    existing = (await conn.execute(select(ph).where(ph.c.mac == mac))).first()
                    (report.updated if existing else report.created).append(mac)
                    merged = {**(existing.variables if existing else {}), **variables}
                    values = {
                        "model": model or (existing.model if existing else None),
                        "profile": profile or (existing.profile if existing else None),
                        "input_id": input_id or (existing.input_id if existing else None),
                        "variables": merged,
                        "updated": now,
                    }
                    stmt = tables.insert_for(conn, ph).values(
                        mac=mac, modules={}, mode=None, **values
                    )
                    await conn.execute(
                        stmt.on_conflict_do_update(index_elements=["mac"], set_=values)
                    )
                    if login is not None:
                        await conn.execute(
                            update(ph)
                            .where(ph.c.mac == mac)
                            .values(**self._credential_values(*login))
                        )
        except IntegrityError:
            raise ProvisioningError(
                "nothing imported: an input_id or prov_username in the CSV belongs to another phone"
            ) from None
        return report

    async def set_credentials(self, mac: str, username: str, password: str) -> dict[str, Any]:
        """Give a phone its own provisioning credentials: its MAC file goes to them (and to
        nobody else but signed URLs, unless ``ACS_PROVISIONING_SHARED_READS_ALL``). Only
        their HA1s are kept (``cpe_auth.hash_credentials``, the CWMP realm).

        Raises:
            ProvisioningError: a username another phone has, the shared pair's, or unusable.
            NotFound: no such phone.
        """
        mac = _lookup(phone_models.normalize_mac, mac)
        values = self._credential_values(username, password)
        try:
            async with self.db.write() as conn:
                result = await conn.execute(update(ph).where(ph.c.mac == mac).values(**values))
        except IntegrityError:
            raise ProvisioningError(f"username {username!r} belongs to another phone") from None
        if not result.rowcount:
            raise NotFound(f"no phone {mac}")
        return await self.get_phone(mac)

    async def clear_credentials(self, mac: str) -> None:
        """Take a phone's own credentials away (its MAC file then goes to signed URLs, and to
        the shared pair if it reads all)."""
        mac = _lookup(phone_models.normalize_mac, mac)
        async with self.db.write() as conn:
            result = await conn.execute(
                update(ph)
                .where(ph.c.mac == mac)
                .values(prov_username=None, prov_ha1_md5=None, prov_ha1_sha256=None)
            )
        if not result.rowcount:
            raise NotFound(f"no phone {mac}")

    def _credential_values(self, username: str, password: str) -> dict[str, str]:
        check_credentials(username, password, shared_username=self.settings.cwmp_username)
        ha1 = hash_credentials(username, password, self.settings.cwmp_realm)
        return {
            "prov_username": username,
            "prov_ha1_md5": ha1["MD5"],
            "prov_ha1_sha256": ha1["SHA-256"],
        }

    # --- file assignments ---------------------------------------------------------------

    async def assign(self, scope: str, target: str, purpose: str, file_name: str) -> None:
        """Point a model's or a phone's auto-update URL for ``purpose`` at a stored file.

        Raises:
            ProvisioningError: a bad scope, target or purpose, a file of another kind, or an
                assignment the document's phones would ignore (``rules.AssignmentRefused``,
                naming the rule).
            FileNotFound: no such stored file.
        """
        model: phone_models.Model | None
        if scope == "model":
            model = phone_models.find_model(target)
            target = model.name
        elif scope == "phone":
            target = phone_models.normalize_mac(target)
            async with self.db.read() as conn:
                name = await conn.scalar(select(ph.c.model).where(ph.c.mac == target))
            model = phone_models.find_model(name) if name else None
        else:
            raise ProvisioningError("scope is model or phone")
        if purpose not in PURPOSES:
            raise ProvisioningError(f"purpose must be one of {list(PURPOSES)}")
        meta = await self.files.get(file_name)
        kinds = PURPOSES[purpose][1]
        if meta.file_type not in kinds:
            raise ProvisioningError(
                f"{purpose} takes a {' or '.join(kinds)} file, {file_name!r} is a {meta.file_type}"
            )
        rules.check_assignment(purpose, file_name, model, target)
        async with self.db.write() as conn:
            stmt = tables.insert_for(conn, fa).values(
                scope=scope, target=target, purpose=purpose, file_name=file_name
            )
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["scope", "target", "purpose"], set_={"file_name": file_name}
                )
            )
            await renderings.forget(conn)

    async def unassign(self, scope: str, target: str, purpose: str) -> None:
        async with self.db.write() as conn:
            result = await conn.execute(
                delete(fa).where(
                    fa.c.scope == scope, fa.c.target == target, fa.c.purpose == purpose
                )
            )
            await renderings.forget(conn)
        if not result.rowcount:
            raise NotFound(f"no {purpose} file assigned to {scope} {target}")

    async def list_assignments(self) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            rows = await conn.execute(select(fa).order_by(fa.c.scope, fa.c.target, fa.c.purpose))
            return [
                {
                    "scope": r.scope,
                    "target": r.target,
                    "purpose": r.purpose,
                    "file_name": r.file_name,
                }
                for r in rows
            ]

    # --- rendering ----------------------------------------------------------------------

    async def rendered_versions(self, mac: str) -> list[dict[str, Any]]:
        """The versions of a phone's configuration files as last served, per format."""
        rc = tables.rendered
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(rc.c.key, rc.c.version, rc.c.updated)
                .where(rc.c.key.like(f"mac:{mac}:%"))
                .order_by(rc.c.key)
            )
            return [
                {"format": r.key.rsplit(":", 1)[1], "version": r.version, "updated": r.updated}
                for r in rows
            ]

    async def render(
        self,
        request: phone_models.ProvisioningRequest,
        *,
        base_url: str,
        now: datetime,
        fmt: str | None = None,
    ) -> Rendered:
        """The bytes a phone gets for what it asked (static provisioning, TR-069 Download)."""
        async with self.db.write() as conn:
            return await self.render_in(
                hot.over(conn), request, base_url=base_url, now=now, fmt=fmt
            )

    async def render_kept(
        self,
        request: phone_models.ProvisioningRequest,
        *,
        key: str,
        base_url: str,
        now: datetime,
    ) -> Rendered:
        """``render``, and keep the result (``acs.services.renderings``) under ``key`` for
        ``base_url`` until one of its inputs changes: the next fetches are a read."""
        if len(base_url) > _MAX_KEPT_BASE_URL:  # a Host no phone sends: render, keep nothing
            return await self.render(request, base_url=base_url, now=now)
        # the hot path's transaction: on SQLite its statements run inline (no thread hop
        # each), which matters when a thousand phones' first fetches queue for the writer
        async with self.db.hot_write() as tx:
            await renderings.before_render(tx)
            rendered = await self.render_in(tx, request, base_url=base_url, now=now)
            others = await tx.first(renderings.OTHER_BASES, key=key, base_url=base_url)
            if others.n >= renderings.BASES_PER_KEY:  # made-up Hosts: render, keep nothing
                return rendered
            await tx.execute(
                renderings.KEEP,
                key=key,
                base_url=base_url,
                file_name=rendered.file_name,
                content_type=rendered.content_type,
                version=rendered.version,
                mac=rendered.mac,
                content=rendered.content,
            )
        return rendered

    async def render_in(
        self,
        tx: hot.Transaction,
        request: phone_models.ProvisioningRequest,
        *,
        base_url: str,
        now: datetime,
        fmt: str | None = None,
    ) -> Rendered:
        if isinstance(request, phone_models.NamedFile):
            found = await tx.first(_PHONE_BY_INPUT, input_id=request.name)
            if found is not None:  # an $input id an operator gave a phone
                request = phone_models.MacFile(found.mac, request.fmt)
        unfilled: str | None = None
        if isinstance(request, phone_models.GeneralFile):
            general = await tx.first(_PROFILE, kind="general", name=request.model)
            if general is None:
                raise NotFound(f"no general profile for {request.model}")
            layers = [general.modules]
            urls = await self._urls(tx, base_url, [("model", request.model)])
            variables = {"model": request.model}
            config_key, common_key = general.config_key, general.common_key
            name = phone_models.general_file_name(request.model)
            fmt = fmt or ("xml" if (general.mode or self.settings.mode) == "ctc" else "text")
            cache_key = f"general:{request.model}"
            mac = None
        elif isinstance(request, phone_models.MacFile):
            phone = await tx.first(_PHONE, mac=request.mac)
            if phone is None:
                raise NotFound(f"no phone {request.mac}")
            general = (
                await tx.first(_PROFILE, kind="general", name=phone.model) if phone.model else None
            )
            named = (
                await tx.first(_PROFILE, kind="named", name=phone.profile)
                if phone.profile
                else None
            )
            layers = [p.modules for p in (general, named) if p is not None] + [phone.modules]
            scopes = [("model", phone.model)] if phone.model else []
            urls = await self._urls(tx, base_url, [*scopes, ("phone", phone.mac)])
            variables = {**phone.variables, "mac": phone.mac, "model": phone.model or ""}
            config_key = general.config_key if general is not None else None
            common_key = (named.common_key if named is not None else None) or (
                general.common_key if general is not None else None
            )
            fmt = fmt or request.fmt
            name = phone_models.mac_file_name(phone.mac, "xml" if fmt == "xml" else "text")
            cache_key = f"mac:{phone.mac}"
            mac = phone.mac
        else:
            named = await tx.first(_PROFILE, kind="named", name=request.name)
            if named is None:
                raise NotFound(f"no phone or profile named {request.name!r}")
            layers, urls, variables = [named.modules], {}, {}
            unfilled = request.name  # no phone: nothing fills its placeholders
            config_key, common_key, fmt = None, named.common_key, fmt or request.fmt
            name = f"{request.name}.{'xml' if fmt == 'xml' else 'cfg'}"
            cache_key = f"named:{request.name}"
            mac = None
        key = crypto.key_for(request, config_key=config_key, common_key=common_key)
        config = configfile.merge(*layers, {AUTOUPDATE: urls} if urls else {})
        try:
            config = configfile.substitute(config, variables)
        except MissingVariablesError as exc:
            if unfilled is None:
                raise
            raise ProvisioningError(
                f"the named profile {unfilled!r} has placeholders "
                f"({', '.join('{{' + n + '}}' for n in exc.names)}) that only a phone "
                "fills: a phone fetches it through its MAC file or its $input id, not by "
                "the profile's name"
            ) from None
        digest = configfile.content_digest(config)
        cache_key += f":{fmt}"
        previous = await tx.first(_RENDERED, key=cache_key)
        version = configfile.next_version(
            previous.version if previous else None, previous.digest if previous else None, digest
        )
        plain = content = configfile.render(config, version, "xml" if fmt == "xml" else "text")
        if key:
            content = crypto.encrypt(content, key, self.settings.phone_aes_mode)
        if previous is None or previous.digest != digest or bytes(previous.content) != content:
            await tx.execute(
                _KEEP_RENDERED,
                key=cache_key,
                digest=digest,
                version=version,
                content=content,
                updated=now,
            )
        return Rendered(content, fmt, version, bool(key), name, plain, mac, key)

    async def _urls(
        self, tx: hot.Transaction, base_url: str, scopes: list[tuple[str, str]]
    ) -> dict[str, str]:
        """AUTOUPDATE keys for the assigned files; a phone's own assignment wins over its
        model's (scopes are given from the weakest to the strongest)."""
        by_purpose: dict[str, tuple[str, str | None]] = {}
        for scope, target in scopes:
            for row in await tx.fetch(_ASSIGNED, scope=scope, target=target):
                by_purpose[row.purpose] = (row.file_name, row.sha256)  # deleted file: no URL
        urls: dict[str, str] = {}
        for purpose, (file_name, sha) in sorted(
            by_purpose.items(), key=lambda item: list(PURPOSES).index(item[0])
        ):
            if sha is None:
                continue
            path = f"/files/{file_name}"
            urls[PURPOSES[purpose][0]] = f"{base_url}{path}?t={self.files.content_token(path, sha)}"
        return urls

    # --- TR-069: Download of a stored file or of the device's configuration -----------------

    async def resolve(
        self, tx: hot.Transaction, ctx: Any, spec: Any, command_key: str
    ) -> tuple[m.Download, dict[str, Any]]:
        """The Download request for a ``file`` or ``config`` task, with a fresh signed URL
        (valid ``ACS_FILE_URL_TTL``), FileType, FileSize and TargetFileName filled in."""
        expires = int((ctx.now + timedelta(seconds=self.settings.file_url_ttl)).timestamp())
        if spec.file is not None:
            row = await tx.first(_FILE, name=spec.file)
            if row is None:
                raise FileNotFound(spec.file)
            path = f"/files/{row.name}"
            file_type = spec.file_type or row.file_type
            extra: dict[str, Any] = {"file": row.name, "sha256": row.sha256}
            if file_type == "1 Firmware Upgrade Image" and row.version:
                extra["expected_version"] = row.version
            size, target = row.size, spec.target_file_name or row.name
        else:
            device = await tx.first(_DEVICE_MAC, id=ctx.device_id)
            if device is None or device.mac is None:
                raise NotFound("the device has reported no MAC address")
            fmt: phone_models.Format = "xml" if ctx.facts.mode == "ctc" else "text"
            rendered = await self.render_in(
                tx,
                phone_models.MacFile(device.mac.replace(":", ""), fmt),
                base_url=ctx.base_url,
                now=ctx.now,
            )
            path = f"/prov/{rendered.file_name}"
            file_type = spec.file_type or "3 Vendor Configuration File"
            size, target = len(rendered.content), spec.target_file_name or rendered.file_name
            extra = {"config": rendered.file_name, "config_version": rendered.version}
        url = f"{ctx.base_url}{path}?t={self.files.expiring_token(path, expires)}"
        return m.Download(
            command_key,
            file_type,
            url,
            spec.username,
            spec.password,
            size,
            target,
            spec.delay_seconds,
            spec.success_url,
            spec.failure_url,
        ), extra


# Statements of rendering and Downloads: they run inside CWMP sessions too (hot.Transaction).
_PROFILE_COLUMNS = ("modules", "config_key", "common_key", "mode")
_PROFILE = hot.Statement(
    "SELECT modules, config_key, common_key, mode FROM config_profiles "
    "WHERE kind = :kind AND name = :name",
    columns=_PROFILE_COLUMNS,
    types={"modules": OrderedJSON},
)
_PHONE = hot.Statement(
    "SELECT mac, model, profile, variables, modules FROM phones WHERE mac = :mac",
    columns=("mac", "model", "profile", "variables", "modules"),
    types={"variables": JSONDoc, "modules": OrderedJSON},
)
_PHONE_BY_INPUT = hot.Statement(
    "SELECT mac FROM phones WHERE input_id = :input_id", columns=("mac",)
)
_ASSIGNED = hot.Statement(
    "SELECT a.purpose, a.file_name, f.sha256 FROM file_assignments AS a "
    "LEFT OUTER JOIN files AS f ON f.name = a.file_name "
    "WHERE a.scope = :scope AND a.target = :target",
    columns=("purpose", "file_name", "sha256"),
)
_RENDERED = hot.Statement(
    "SELECT digest, version, content FROM rendered_configs WHERE key = :key",
    columns=("digest", "version", "content"),
)
_KEEP_RENDERED = hot.Statement(
    "INSERT INTO rendered_configs (key, digest, version, content, updated) "
    "VALUES (:key, :digest, :version, :content, :updated) ON CONFLICT (key) DO UPDATE SET "
    "digest = excluded.digest, version = excluded.version, content = excluded.content, "
    "updated = excluded.updated",
    binds={"updated": UTCDateTime()},
)
_FILE = hot.Statement(
    "SELECT name, file_type, version, sha256, size FROM files WHERE name = :name",
    columns=("name", "file_type", "version", "sha256", "size"),
)
_DEVICE_MAC = hot.Statement("SELECT mac FROM devices WHERE id = :id", columns=("mac",))


_MAX_KEPT_BASE_URL: Final = 512  # provisioning_renderings.base_url

_ImportRow = tuple[str, str | None, str | None, str | None, dict[str, str], tuple[str, str] | None]
_SPECIAL_COLUMNS: Final = frozenset(
    {"mac", "model", "profile", "input_id", "prov_username", "prov_password"}
)
_USERNAME_RE: Final = re.compile(r"[!-9;-~]{1,128}")  # printable ASCII, no ':' nor space


def check_credentials(username: str, password: str, *, shared_username: str) -> None:
    """Refuse credentials a phone could not send or that would be taken for the shared
    pair's: a username of 1-128 printable characters without ':' (Basic splits there)."""
    if not _USERNAME_RE.fullmatch(username):
        raise ProvisioningError(
            "prov_username: 1-128 printable ASCII characters, no ':' and no space"
        )
    if username == shared_username:
        raise ProvisioningError(
            f"prov_username {username!r} is the shared pair's (ACS_CWMP_USERNAME)"
        )
    if not password or len(password) > 128:
        raise ProvisioningError("prov_password: 1-128 characters")


def _parse_import(
    text: str, *, shared_username: str
) -> tuple[list[_ImportRow], list[tuple[int, str]]]:
    """The rows of a phone CSV, and the lines refused (number, reason); a CSV without the
    header line is refused whole."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    if reader.fieldnames is None or "mac" not in reader.fieldnames:
        raise ProvisioningError("CSV needs a header line with a 'mac' column")
    rows: list[_ImportRow] = []
    refused: list[tuple[int, str]] = []
    for number, record in enumerate(reader, start=2):
        try:
            mac = phone_models.normalize_mac((record.get("mac") or "").strip())
            model = (record.get("model") or "").strip() or None
            if model is not None:
                model = phone_models.find_model(model).name
            username = (record.get("prov_username") or "").strip()
            password = record.get("prov_password") or ""
            login = (username, password) if username or password else None
            if login is not None:
                check_credentials(username, password, shared_username=shared_username)
        except ProvisioningError as exc:
            refused.append((number, str(exc)))
            continue
        variables = {k: v for k, v in record.items() if k and k not in _SPECIAL_COLUMNS and v}
        rows.append(
            (
                mac,
                model,
                (record.get("profile") or "").strip() or None,
                (record.get("input_id") or "").strip() or None,
                variables,
                login,
            )
        )
    return rows, refused


def _profile_view(row: Any) -> dict[str, Any]:
    return {
        "kind": row.kind,
        "name": row.name,
        "modules": row.modules,
        "config_key_set": bool(row.config_key),
        "common_key_set": bool(row.common_key),
        "mode": row.mode,
        "updated": row.updated,
    }


def _phone_view(row: Any) -> dict[str, Any]:
    return {
        "mac": row.mac,
        "model": row.model,
        "profile": row.profile,
        "input_id": row.input_id,
        "variables": row.variables,
        "modules": row.modules,
        "mode": row.mode,
        "updated": row.updated,
        "prov_username": row.prov_username,
    }
