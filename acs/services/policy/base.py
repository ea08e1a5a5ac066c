"""The session policy: what the ACS does inside a CWMP session, beyond the protocol.

Theory of operation
-------------------
The protocol (``acs.cwmp.session``) says who may say what next; the policy says what the ACS
wants to say. It is a chain of small components in a fixed order (built-in provisioning,
CTC binding, the task queue, ...). Each is a flow with state of its own: a frozen dataclass
that round-trips through JSON, stored with the session between HTTP requests. A component
sees only its own state; what the whole session knows of its Inform is ``SessionFacts``.

Per request, the service hands the chain the protocol's events:

* the Inform: every component may act on it, and says by returning a state (or ``None``)
  what it has to do in this session;
* a CPE request (TransferComplete, ...): every component sees it; its answer is the
  protocol's (``CPE_ANSWERS``);
* the ACS's turn: the components are asked in order; the first that offers a request sends
  it, under a ``Ref`` (component and an id of its own) that travels with the request in the
  session machine;
* an answer (response, fault, or none): it goes to the component its ``Ref`` names, and to no
  other; an answer to a request of an earlier session (a CPE that started over) goes to the
  component that sent it, if its cwmp:ID matches what that session left unanswered;
* a session that ends other than by a 204 (replaced, expired, protocol error): every
  component may put right what it had in flight.

Every hook runs inside the request's transaction (a ``hot.Transaction``: prepared statements
only): what it writes commits or rolls back with the session state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Generic, Self, TypeVar

from acs.cwmp import datamodel, faults
from acs.cwmp import messages as m
from acs.cwmp import session as cs
from acs.db import hot
from acs.db.queries import DeviceAuth
from acs.services.inform import BOOT_EVENTS

S = TypeVar("S")


class JsonState:
    """A flow's state: a frozen dataclass of JSON values (no nesting), stored as a dict."""

    def to_json(self) -> dict[str, Any]:
        # not dataclasses.asdict, which deep-copies every value: these are flat
        names = _FIELDS.get(type(self))
        if names is None:
            names = _FIELDS[type(self)] = tuple(f.name for f in dataclasses.fields(self))  # type: ignore[arg-type]
        return {name: getattr(self, name) for name in names}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(**data)


_FIELDS: dict[type, tuple[str, ...]] = {}


@dataclass(frozen=True, slots=True)
class Ref:
    """Which component sent an ACS request, and its own id for it (a task id...)."""

    component: str
    id: str = ""

    def encode(self) -> str:
        return f"{self.component}:{self.id}"

    @classmethod
    def decode(cls, text: str | None) -> Ref | None:
        if not text or ":" not in text:
            return None
        component, _, ident = text.partition(":")
        return cls(component, ident)


@dataclass(frozen=True, slots=True)
class SessionFacts(JsonState):
    """What the session's Inform told, for its later requests."""

    mode: str  # "common" or "ctc": the device's, else the server's
    root: str  # the data model's root object: "InternetGatewayDevice" or "Device"
    events: tuple[str, ...]
    software_version: str | None = None

    @property
    def booted(self) -> bool:
        return bool(BOOT_EVENTS.intersection(self.events))

    @classmethod
    def of(cls, inform: m.Inform, mode: str) -> SessionFacts:
        root, version = "InternetGatewayDevice", None
        for p in inform.parameter_list:
            head = p.name.partition(".")[0]
            if head in datamodel.ROOTS:
                root = head
                break
        for p in inform.parameter_list:
            if p.name.endswith(".DeviceInfo.SoftwareVersion"):
                version = str(p.value)
                break
        return cls(mode, root, tuple(inform.event_codes), version)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SessionFacts:
        return cls(**{**data, "events": tuple(data["events"])})


@dataclass(frozen=True, slots=True)
class SessionContext:
    """One request's view of its session, handed to every hook."""

    session_id: str
    device_id: str
    now: datetime
    base_url: str  # how this CPE reaches us, for URLs we hand it (Download)
    facts: SessionFacts
    has_queued_tasks: bool | None = None  # known at this request's lookup; None: look
    # the username the Inform authenticated with (None: later requests, or no authentication)
    authenticated_as: str | None = None


Answer = cs.ResponseReceived | cs.FaultReceived | cs.RequestUnanswered


@dataclass(frozen=True, slots=True)
class Offer(Generic[S]):
    """A component's next ACS request, its own id for it, and its state once sent.

    ``request`` ``None``: nothing to send, only the new state (the next components are
    asked); ``queued``: it queued tasks, so the task queue must look even if the session's
    lookup found none."""

    request: Any
    id: str
    state: S | None
    queued: bool = False


@dataclass(frozen=True, slots=True)
class Answered(Generic[S]):
    """A component's state after an answer; ``end_session``: send nothing more (CPEs ignore
    whatever follows a RebootResponse)."""

    state: S | None
    end_session: bool = False


class Component(Generic[S]):
    """One flow of the session policy. The defaults do nothing; ``state`` is ``None`` when the
    component has nothing going on in this session."""

    name: ClassVar[str]
    State: ClassVar[type[JsonState] | None] = None

    async def on_inform(
        self, tx: hot.Transaction, ctx: SessionContext, inform: m.Inform, known: DeviceAuth
    ) -> S | None:
        """The device row is up to date; act on the Inform. Returns this session's state."""
        return None

    async def on_cpe_request(
        self, tx: hot.Transaction, ctx: SessionContext, request: Any, state: S | None
    ) -> S | None:
        return state

    async def next_request(
        self, tx: hot.Transaction, ctx: SessionContext, state: S | None
    ) -> Offer[S] | None:
        return None

    async def on_answer(
        self, tx: hot.Transaction, ctx: SessionContext, ref_id: str, answer: Answer, state: S | None
    ) -> Answered[S]:
        return Answered(state)

    async def on_stray_answer(
        self, tx: hot.Transaction, ctx: SessionContext, ref_id: str, message: Any
    ) -> None:
        """An answer to this component's request of an earlier session (dropped by default)."""

    async def on_session_closed(
        self, tx: hot.Transaction, device_id: str, reason: str, now: datetime
    ) -> None:
        """A session ended other than by a 204: put right what was in flight."""

    # --- state as JSON ------------------------------------------------------------------

    def load(self, data: Any) -> S | None:
        if data is None or self.State is None:
            return None
        state: S = self.State.from_json(data)  # type: ignore[assignment]
        return state

    @staticmethod
    def dump(state: Any) -> Any:
        return None if state is None else state.to_json()


# The protocol's answers to CPE requests; what the ACS does about them is the components'.
CPE_ANSWERS: dict[type, Callable[[Any], Any]] = {
    m.GetRPCMethods: lambda _r: m.GetRPCMethodsResponse(method_list=m.ACS_METHODS),
    m.TransferComplete: lambda _r: m.TransferCompleteResponse(),
    m.AutonomousTransferComplete: lambda _r: m.AutonomousTransferCompleteResponse(),
    m.RequestDownload: lambda _r: m.RequestDownloadResponse(),
    m.Kicked: lambda r: m.KickedResponse(next_url=r.next),
}

Flows = dict[str, Any]  # component name -> its state's JSON


class SessionPolicy:
    """The chain of components, in order (see the module docstring)."""

    def __init__(self, components: Sequence[Component[Any]]):
        self.components = {c.name: c for c in components}
        assert len(self.components) == len(components), "component names must be unique"

    async def on_inform(
        self, tx: hot.Transaction, ctx: SessionContext, inform: m.Inform, known: DeviceAuth
    ) -> Flows:
        flows: Flows = {}
        for name, component in self.components.items():
            state = await component.on_inform(tx, ctx, inform, known)
            if state is not None:
                flows[name] = component.dump(state)
        return flows

    async def on_cpe_request(
        self, tx: hot.Transaction, ctx: SessionContext, request: Any, flows: Flows
    ) -> tuple[Any, Flows]:
        """The answer to a CPE request (a response or an ``m.Fault``), after every component
        has seen it."""
        flows = dict(flows)
        for name, component in self.components.items():
            state = component.load(flows.get(name))
            after = await component.on_cpe_request(tx, ctx, request, state)
            _put(flows, name, component.dump(after))
        answer = CPE_ANSWERS.get(type(request))
        if answer is None:
            return m.Fault(faults.ACS_METHOD_NOT_SUPPORTED), flows
        return answer(request), flows

    async def next_request(
        self, tx: hot.Transaction, ctx: SessionContext, flows: Flows
    ) -> tuple[Any, Ref, Flows] | None:
        for name, component in self.components.items():
            offer = await component.next_request(tx, ctx, component.load(flows.get(name)))
            if offer is not None:
                flows = dict(flows)
                _put(flows, name, component.dump(offer.state))
                if offer.queued:
                    ctx = dataclasses.replace(ctx, has_queued_tasks=None)
                if offer.request is None:
                    continue
                return offer.request, Ref(name, offer.id), flows
        return None

    async def on_answer(
        self, tx: hot.Transaction, ctx: SessionContext, answer: Answer, flows: Flows
    ) -> tuple[Flows, bool]:
        """Route an answer to the component that sent its request; (flows, end the session)."""
        ref = Ref.decode(answer.request.ref)
        component = self.components.get(ref.component) if ref is not None else None
        if ref is None or component is None:
            return flows, False
        state = component.load(flows.get(ref.component))
        answered = await component.on_answer(tx, ctx, ref.id, answer, state)
        after = dict(flows)
        _put(after, ref.component, component.dump(answered.state))
        return after, answered.end_session

    async def on_stray_answer(
        self,
        tx: hot.Transaction,
        ctx: SessionContext,
        orphan: cs.PendingRequest | None,
        stray: cs.StrayAnswer,
    ) -> bool:
        """Credit an answer to a request of an earlier session to what sent it, if its
        cwmp:ID is that request's; ``False``: dropped."""
        if orphan is None or stray.cwmp_id is None or stray.cwmp_id != orphan.cwmp_id:
            return False
        ref = Ref.decode(orphan.ref)
        component = self.components.get(ref.component) if ref is not None else None
        if ref is None or component is None:
            return False
        await component.on_stray_answer(tx, ctx, ref.id, stray.message)
        return True

    async def on_session_closed(
        self, tx: hot.Transaction, device_id: str, reason: str, now: datetime
    ) -> None:
        for component in self.components.values():
            await component.on_session_closed(tx, device_id, reason, now)


def _put(flows: Flows, name: str, data: Any) -> None:
    if data is None:
        flows.pop(name, None)
    else:
        flows[name] = data
