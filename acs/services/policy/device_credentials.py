"""Per-device CWMP credentials in common mode: each device gets a pair of its own.

The shared pair (``ACS_CWMP_USERNAME`` / the shared password) admits any device id that has
no credentials of its own, so whoever has it can Inform as any such device. Carriers give
each device its own: on its first session the ACS sets ``ManagementServer.Username`` and
``.Password`` (TR-098 ``InternetGatewayDevice.``, TR-181 ``Device.``) to a pair it makes,
keeping only their Digest HA1s. Once the device has authenticated with it, the shared pair
no longer admits that device. A device that cannot take a pair (the parameter is not
writable, the SetParameterValues faulted) or does not use it keeps the shared one, and the
API says so. CTC mode rotates the ACS credentials on every bootstrap instead
(``bootstrap.py``); this flow leaves CTC devices and devices that already have a pair (an
operator's, CTC's) alone.

Lifecycle: ``acs.services.device_credentials`` (a table; NULL in the column is ``new``).
While ``pending`` both pairs are accepted. The pending pair is written when the request is
sent, not when it is answered: a device that applied it but whose answer was lost must
still get in with it.

The flow in a session (``phase``)::

    offer --SetParameterValues--> sent --response--> (done: pending)
                                       --fault-----> (done: shared)
                                       --none------> (done: pending, the device may have it)
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Literal

from acs.config import Settings
from acs.cwmp import messages as m
from acs.cwmp import session as cs
from acs.cwmp import xsd
from acs.db import hot, queries
from acs.db.queries import DeviceAuth
from acs.db.types import JSONDoc
from acs.services import fault_log
from acs.services.cpe_auth import hash_credentials
from acs.services.device_credentials import SESSIONS_TO_TAKE_IT, Lifecycle
from acs.services.inform import set_values_patch
from acs.services.policy.base import (
    Answer,
    Answered,
    Component,
    JsonState,
    Offer,
    SessionContext,
)

log = logging.getLogger("acs.credentials")

_SET = hot.Statement(
    "UPDATE devices SET cwmp_credentials = :doc WHERE id = :id", binds={"doc": JSONDoc}
)
_OWN = hot.Statement(
    "UPDATE devices SET cwmp_credentials = :doc, cwmp_username = :username, "
    "cwmp_ha1_md5 = :ha1_md5, cwmp_ha1_sha256 = :ha1_sha256 WHERE id = :id",
    binds={"doc": JSONDoc},
)


@dataclass(frozen=True, slots=True)
class CredentialsState(JsonState):
    phase: Literal["offer", "sent"]
    username: str = ""


class DeviceCredentialsProvisioning(Component[CredentialsState]):
    name = "credentials"
    State = CredentialsState

    def __init__(self, settings: Settings, *, enabled: bool):
        self.settings = settings
        self.enabled = enabled and settings.cwmp_auth != "none"

    async def on_inform(
        self, tx: hot.Transaction, ctx: SessionContext, inform: m.Inform, known: DeviceAuth
    ) -> CredentialsState | None:
        if not self.enabled or ctx.facts.mode != "common" or known.cwmp_username:
            return None
        life = Lifecycle.from_json(known.cwmp_credentials)
        if life.state == "new":
            return CredentialsState("offer")
        if life.state != "pending":
            return None
        if ctx.authenticated_as == life.username:
            own = life.then("own_pair_used")
            await tx.execute(
                _OWN,
                id=ctx.device_id,
                doc=own.to_json(),
                username=life.username,
                ha1_md5=life.ha1["MD5"],
                ha1_sha256=life.ha1.get("SHA-256"),
            )
            log.info(
                "%s: uses its own CWMP credentials; the shared pair no longer admits it",
                ctx.device_id,
            )
            return None
        count = life.shared_sessions + 1
        if count < SESSIONS_TO_TAKE_IT:
            waiting = life.then(
                "shared_pair_used", username=life.username, ha1=life.ha1, shared_sessions=count
            )
            await tx.execute(_SET, id=ctx.device_id, doc=waiting.to_json())
            return None
        reason = f"still used the shared pair {count} sessions after it was given its own"
        await tx.execute(
            _SET, id=ctx.device_id, doc=life.then("not_taken", reason=reason).to_json()
        )
        log.info("%s: keeps the shared CWMP credentials: it %s", ctx.device_id, reason)
        return None

    async def next_request(
        self, tx: hot.Transaction, ctx: SessionContext, state: CredentialsState | None
    ) -> Offer[CredentialsState] | None:
        if state is None or state.phase != "offer":
            return None
        username = f"cpe-{secrets.token_hex(8)}"
        password = secrets.token_urlsafe(18)
        ha1 = hash_credentials(username, password, self.settings.cwmp_realm)
        # written now, with the request: a device that applies it and loses the answer must
        # still get in with it (the password itself is kept nowhere)
        pending = Lifecycle().then("sent", username=username, ha1=ha1)
        await tx.execute(_SET, id=ctx.device_id, doc=pending.to_json())
        request = m.SetParameterValues(
            _parameters(ctx.facts.root, username, password), parameter_key="acs-credentials"
        )
        return Offer(request, "", CredentialsState("sent", username))

    async def on_answer(
        self,
        tx: hot.Transaction,
        ctx: SessionContext,
        ref_id: str,
        answer: Answer,
        state: CredentialsState | None,
    ) -> Answered[CredentialsState]:
        if state is None:
            return Answered(None)
        if isinstance(answer, cs.ResponseReceived):
            # what was set goes into the parameter tree with its types (the password empty)
            done = _parameters(ctx.facts.root, state.username, "")
            await queries.merge_parameters(tx, ctx.device_id, set_values_patch(done, ctx.now))
        elif isinstance(answer, cs.FaultReceived):
            fault = answer.fault
            reason = (
                "its SetParameterValues of ManagementServer.Username/Password faulted: "
                f"{fault.fault_code} {fault.fault_string}"
            )
            shared = Lifecycle("pending").then("refused", reason=reason)
            await tx.execute(_SET, id=ctx.device_id, doc=shared.to_json())
            log.info("%s: keeps the shared CWMP credentials: %s", ctx.device_id, reason)
            await fault_log.from_cpe(
                tx,
                device_id=ctx.device_id,
                now=ctx.now,
                code=fault.fault_code,
                string=fault.fault_string,
                detail={"device_credentials": True},
            )
        return Answered(None)


def _parameters(root: str, username: str, password: str) -> tuple[m.ParameterValueStruct, ...]:
    base = f"{root}.ManagementServer."
    return (
        m.ParameterValueStruct(base + "Username", username, xsd.STRING),
        m.ParameterValueStruct(base + "Password", password, xsd.STRING),
    )
