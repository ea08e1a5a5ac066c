"""Operators, API tokens and the audit log of the management API.

Passwords are hashed through passlib's API (argon2, the maintained ``libpass``
distribution). API tokens are 256-bit random strings shown once; only their SHA-256 is
stored (a slow hash adds nothing for a random 256-bit secret, and lookups stay O(1)).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from passlib.context import CryptContext
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from acs.db import tables
from acs.db.engine import Database
from acs.services.errors import Conflict, Invalid, NotFound

ROLES: Final = ("viewer", "operator", "admin")  # each includes the rights of those before it
_RANK: Final = {role: i for i, role in enumerate(ROLES)}
TOKEN_PREFIX: Final = "acs_"  # noqa: S105 - a marker, not a secret
_NAME_RE: Final = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")

_crypt = CryptContext(schemes=["argon2"], deprecated="auto")

o = tables.operators
tk = tables.api_tokens
al = tables.audit_log


class OperatorError(Invalid):
    """An operator the service refuses: a malformed name, an unknown role, a short password,
    a name taken already, or an update that would leave no enabled admin."""


class OperatorNotFound(NotFound):
    """No operator of this name (``name``)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no operator {name!r}")
        self.name = name


class TokenNotFound(NotFound):
    """No token with this id (``token_id``), or (``mine``) not the caller's own."""

    def __init__(self, token_id: int, mine: bool = True) -> None:
        super().__init__(f"no token {token_id}" + (" of yours" if mine else ""))
        self.token_id = token_id


class LastAdmin(Conflict):
    """Deleting this operator would leave no enabled admin: nobody could undo it."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an operator, by password or by token."""

    name: str
    role: str
    via: str  # "password", "token" or "console" (a console session)
    expires: datetime | None = None  # a token's expiry (None: a password, or no expiry)

    def can(self, role: str) -> bool:
        return _RANK[self.role] >= _RANK[role]


def hash_password(password: str) -> str:
    return str(_crypt.hash(password))


def _check_name(name: str) -> None:
    if not _NAME_RE.fullmatch(name):
        raise OperatorError("operator names are 1-128 of A-Z a-z 0-9 _ . @ -")


def _check_role(role: str) -> None:
    if role not in _RANK:
        raise OperatorError(f"role must be one of {list(ROLES)}")


def _check_password(password: str) -> None:
    if len(password) < 8:
        raise OperatorError("passwords have at least 8 characters")


def operator_view(row: Any) -> dict[str, Any]:
    return {"name": row.name, "role": row.role, "disabled": row.disabled, "created": row.created}


async def create_operator(
    db: Database, name: str, role: str, password: str | None, now: datetime
) -> dict[str, Any]:
    """A new operator. Without a password it can only use API tokens."""
    _check_name(name)
    _check_role(role)
    if password is not None:
        _check_password(password)
    hashed = await asyncio.to_thread(hash_password, password) if password else None
    try:
        async with db.write() as conn:
            row = (
                await conn.execute(
                    o.insert()
                    .values(name=name, role=role, password_hash=hashed, disabled=False, created=now)
                    .returning(*o.c)
                )
            ).one()
    except IntegrityError:
        raise OperatorError(f"operator {name!r} exists already") from None
    return operator_view(row)


async def update_operator(
    db: Database,
    name: str,
    *,
    role: str | None = None,
    password: str | None = None,
    disabled: bool | None = None,
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if role is not None:
        _check_role(role)
        values["role"] = role
    if password is not None:
        _check_password(password)
        values["password_hash"] = await asyncio.to_thread(hash_password, password)
    if disabled is not None:
        values["disabled"] = disabled
    async with db.write() as conn:
        if values:
            await conn.execute(update(o).where(o.c.name == name).values(**values))
        row = (await conn.execute(select(o).where(o.c.name == name))).first()
        if row is None:
            raise OperatorNotFound(name)
        await _keep_an_admin(conn, OperatorError)
    return operator_view(row)


async def delete_operator(db: Database, name: str) -> None:
    async with db.write() as conn:
        result = await conn.execute(delete(o).where(o.c.name == name))
        if not result.rowcount:
            raise OperatorNotFound(name)
        await _keep_an_admin(conn, LastAdmin)


async def _keep_an_admin(conn: Any, refusal: type[OperatorError | LastAdmin]) -> None:
    """Refuse (roll back) a change that leaves no enabled admin: nobody could undo it. An
    update is refused as invalid (422), a deletion as a conflict (409): as the API always
    answered them."""
    admins = await conn.scalar(
        select(func.count()).select_from(o).where(o.c.role == "admin", o.c.disabled.is_(False))
    )
    if not admins:
        raise refusal("that would leave no enabled admin")


async def list_operators(db: Database) -> list[dict[str, Any]]:
    async with db.read() as conn:
        return [operator_view(r) for r in await conn.execute(select(o).order_by(o.c.name))]


async def ensure_admin(db: Database, password: str, now: datetime) -> bool:
    """Create the operator ``admin`` with this password unless it exists; True if created.
    A password the policy refuses raises (OperatorError), so start-up fails saying why."""
    _check_password(password)
    async with db.read() as conn:
        exists = await conn.scalar(select(o.c.id).where(o.c.name == "admin"))
    if exists:
        return False
    try:
        await create_operator(db, "admin", "admin", password, now)
    except OperatorError:
        async with db.read() as conn:
            if await conn.scalar(select(o.c.id).where(o.c.name == "admin")):
                return False  # another node created it first
        raise
    return True


# --- authentication ---------------------------------------------------------------------

_verified: dict[tuple[str, str], float] = {}  # (stored hash, sha256(password)) -> expiry
_VERIFY_CACHE_SECONDS: Final = 300.0


async def authenticate_password(db: Database, name: str, password: str) -> Principal | None:
    """Check an operator's password. argon2 costs ~0.1 s by design, so a success is
    remembered for a few minutes (keyed by the stored hash: a password change forgets it)."""
    async with db.read() as conn:
        row = (await conn.execute(select(o).where(o.c.name == name))).first()
    if row is None or row.disabled or not row.password_hash:
        await asyncio.to_thread(_crypt.dummy_verify)  # same cost: do not reveal who exists
        return None
    key = (row.password_hash, hashlib.sha256(password.encode()).hexdigest())
    now = time.monotonic()
    if _verified.get(key, 0.0) > now:
        return Principal(row.name, row.role, "password")
    ok = await asyncio.to_thread(_crypt.verify, password, row.password_hash)
    if not ok:
        return None
    if len(_verified) > 10_000:
        _verified.clear()
    _verified[key] = now + _VERIFY_CACHE_SECONDS
    return Principal(row.name, row.role, "password")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(
    db: Database, operator: str, name: str, now: datetime, ttl: int | None = None
) -> tuple[str, dict[str, Any]]:
    """A new token for ``operator``: (the token, shown this once; its record)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    async with db.write() as conn:
        op_id = await conn.scalar(select(o.c.id).where(o.c.name == operator))
        if op_id is None:
            raise OperatorNotFound(operator)
        row = (
            await conn.execute(
                tk.insert()
                .values(
                    operator_id=op_id,
                    name=name[:128] or "token",
                    token_hash=_token_hash(token),
                    created=now,
                    expires=now + timedelta(seconds=ttl) if ttl else None,
                )
                .returning(*tk.c)
            )
        ).one()
    return token, token_view(row, operator)


def token_view(row: Any, operator: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "operator": operator,
        "name": row.name,
        "created": row.created,
        "last_used": row.last_used,
        "expires": row.expires,
    }


async def list_tokens(db: Database, operator: str | None = None) -> list[dict[str, Any]]:
    stmt = select(tk, o.c.name.label("operator")).join(o, o.c.id == tk.c.operator_id)
    if operator is not None:
        stmt = stmt.where(o.c.name == operator)
    async with db.read() as conn:
        rows = await conn.execute(stmt.order_by(tk.c.id))
        return [token_view(r, r.operator) for r in rows]


async def revoke_token(db: Database, token_id: int, operator: str | None = None) -> None:
    """Delete a token (only the operator's own when ``operator`` is given)."""
    async with db.write() as conn:
        stmt = delete(tk).where(tk.c.id == token_id)
        if operator is not None:
            stmt = stmt.where(
                tk.c.operator_id == select(o.c.id).where(o.c.name == operator).scalar_subquery()
            )
        result = await conn.execute(stmt)
        if not result.rowcount:
            raise TokenNotFound(token_id, mine=operator is not None)


async def authenticate_token(db: Database, token: str, now: datetime) -> Principal | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    digest = _token_hash(token)
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(
                    tk.c.id,
                    tk.c.token_hash,
                    tk.c.expires,
                    tk.c.last_used,
                    o.c.name,
                    o.c.role,
                    o.c.disabled,
                )
                .join(o, o.c.id == tk.c.operator_id)
                .where(tk.c.token_hash == digest)
            )
        ).first()
    if row is None or not hmac.compare_digest(row.token_hash, digest) or row.disabled:
        return None
    if row.expires is not None and row.expires <= now:
        return None
    if row.last_used is None or now - row.last_used > timedelta(minutes=5):
        async with db.write() as conn:  # coarse, to keep reads from turning into writes
            await conn.execute(update(tk).where(tk.c.id == row.id).values(last_used=now))
    return Principal(row.name, row.role, "token", row.expires)


# --- audit log ----------------------------------------------------------------------------


async def record_audit(
    db: Database,
    *,
    now: datetime,
    operator: str | None,
    method: str,
    path: str,
    status: int,
    client: str | None,
    detail: dict[str, Any] | None = None,
) -> None:
    async with db.write() as conn:
        await conn.execute(
            al.insert().values(
                time=now,
                operator=operator,
                method=method,
                path=path[:2048],
                status=status,
                client=client,
                detail=detail,
            )
        )


async def list_audit(
    db: Database,
    *,
    operator: str | None = None,
    method: str | None = None,
    path: str | None = None,
    status: int | None = None,
    since: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """Audit entries, newest first; ``path`` matches entries whose path starts with it."""
    conditions: list[Any] = [al.c.operator == operator] if operator else []
    if method:
        conditions.append(al.c.method == method.upper())
    if path:
        escaped = path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(al.c.path.like(escaped + "%", escape="\\"))
    if status is not None:
        conditions.append(al.c.status == status)
    if since is not None:
        conditions.append(al.c.time >= since)
    async with db.read() as conn:
        total = await conn.scalar(select(func.count()).select_from(al).where(*conditions))
        rows = await conn.execute(
            select(al).where(*conditions).order_by(al.c.id.desc()).limit(limit).offset(offset)
        )
        return [
            {
                "id": r.id,
                "time": r.time,
                "operator": r.operator,
                "method": r.method,
                "path": r.path,
                "status": r.status,
                "client": r.client,
                "detail": r.detail,
            }
            for r in rows
        ], int(total or 0)
