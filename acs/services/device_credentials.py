"""The lifecycle of a device's own CWMP credentials in common mode, as a table.

The flow that gives them is ``acs.services.policy.device_credentials``; this module is what
the rest reads: the state the API shows, the pending pair authentication accepts.

Lifecycle (``devices.cwmp_credentials``, a JSON value; NULL is ``new``)::

    new     --SetParameterValues(Username, Password) sent--------------> pending
    pending --the SetParameterValues faulted----------------------------> shared
    pending --the device authenticated with its own pair----------------> own
    pending --SESSIONS_TO_TAKE_IT sessions more on the shared pair-------> shared
    any     --an operator's reset (a factory-reset device...)-----------> new
    any     --a FactoryReset the ACS sent was answered-------------------> new

A reset leads every state to ``new``: it clears the value (``forget``, the API), and is not
a move of ``TRANSITIONS``, which holds what depends on the state.

While ``pending`` both pairs are accepted: the device may not have applied the new one yet
(some apply ManagementServer changes at the end of the session or on reboot). The pending
pair is written when the request is sent, not when it is answered: a device that applied it
but whose answer was lost must still get in. An ``own`` pair moves to the columns
``cwmp_username`` / ``cwmp_ha1_*`` that every device's own pair lives in (Digest, Basic over
TLS, FTP and the file server check them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from sqlalchemy import select

from acs.config import Settings
from acs.db import hot
from acs.db.engine import Database
from acs.db.queries import DeviceAuth
from acs.db.tables import meta
from acs.services.cpe_auth import DeviceCredentials

State = Literal["new", "pending", "own", "shared"]
Event = Literal["sent", "refused", "own_pair_used", "shared_pair_used", "not_taken"]

TRANSITIONS: Final[Mapping[tuple[State, Event], State]] = {
    ("new", "sent"): "pending",
    ("pending", "refused"): "shared",
    ("pending", "own_pair_used"): "own",
    ("pending", "shared_pair_used"): "pending",
    ("pending", "not_taken"): "shared",
}

# Sessions a device may go on authenticating with the shared pair after it was given its
# own before the ACS stops waiting (some apply ManagementServer changes only on reboot).
SESSIONS_TO_TAKE_IT: Final = 3


class IllegalMove(Exception):
    """A lifecycle event its state does not allow (our bug, never the device's)."""


def move(state: State, event: Event) -> State:
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalMove(f"{event} in state {state}") from None


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """The value of ``devices.cwmp_credentials``."""

    state: State = "new"
    username: str = ""  # pending: the pair given, as HA1s by algorithm
    ha1: dict[str, str] = field(default_factory=dict)
    shared_sessions: int = 0  # pending: sessions on the shared pair since
    reason: str = ""  # shared: why

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"state": self.state}
        if self.username:
            doc.update(username=self.username, ha1=self.ha1)
        if self.shared_sessions:
            doc["shared_sessions"] = self.shared_sessions
        if self.reason:
            doc["reason"] = self.reason
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any] | None) -> Lifecycle:
        if not doc:
            return cls()
        return cls(
            doc["state"],
            doc.get("username", ""),
            dict(doc.get("ha1", {})),
            int(doc.get("shared_sessions", 0)),
            doc.get("reason", ""),
        )

    def then(self, event: Event, **changes: Any) -> Lifecycle:
        return Lifecycle(move(self.state, event), **changes)


def state_of(cwmp_username: str | None, doc: Mapping[str, Any] | None) -> State:
    """What the API shows: ``own`` for any pair of the device's own (given by this flow, by
    an operator, by CTC), else the lifecycle's state."""
    return "own" if cwmp_username else Lifecycle.from_json(doc).state


def credentials_view(cwmp_username: str | None, doc: Mapping[str, Any] | None) -> dict[str, Any]:
    """The API's fields: the state, and why a device is ``shared`` (or how long ``pending``)."""
    life = Lifecycle.from_json(doc)
    state = state_of(cwmp_username, doc)
    reason = None
    if state == "shared":
        reason = life.reason
    elif state == "pending" and life.shared_sessions:
        reason = f"{life.shared_sessions} sessions on the shared pair since it was given its own"
    return {"cwmp_credentials": state, "cwmp_credentials_reason": reason}


def pending_pair(known: DeviceAuth) -> DeviceCredentials | None:
    """The pair given to a device that has not used it yet (accepted besides the shared)."""
    life = Lifecycle.from_json(known.cwmp_credentials)
    if known.cwmp_username or life.state != "pending":
        return None
    return DeviceCredentials(life.username, life.ha1)


# Written by migration 0010 into databases that had devices before this flow existed.
DEFAULT_KEY: Final = "cwmp_device_credentials"


async def enabled(db: Database, settings: Settings) -> bool:
    """``ACS_CWMP_DEVICE_CREDENTIALS`` if set; else on, unless the database was set up
    before the flow existed (it had devices then: they keep working as they did)."""
    if settings.cwmp_device_credentials is not None:
        return settings.cwmp_device_credentials
    async with db.read() as conn:
        default = await conn.scalar(select(meta.c.value).where(meta.c.key == DEFAULT_KEY))
    return default != "off"


_FORGET = hot.Statement(
    "UPDATE devices SET cwmp_credentials = NULL, cwmp_username = NULL, cwmp_ha1_md5 = NULL, "
    "cwmp_ha1_sha256 = NULL WHERE id = :id"
)


async def forget(tx: hot.Transaction, device_id: str) -> None:
    """The device is ``new`` again: it accepted a FactoryReset, and comes back with the
    credentials it left the factory with (which only the shared pair can be)."""
    await tx.execute(_FORGET, id=device_id)
