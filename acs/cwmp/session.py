"""The CWMP session state machine, with no I/O (TR-069 Amendment 6, 3.7 and A.3).

Theory of operation
-------------------
A CWMP session is a run of HTTP POSTs from the CPE, each answered by the ACS. The CPE
opens with an Inform; the ACS answers InformResponse. The CPE then sends its own requests
(TransferComplete, GetRPCMethods, ...), each answered by the ACS, until it sends an empty
POST. From then on the ACS drives: each HTTP response carries one ACS request, and the
CPE's next POST carries the answer (a response or a SOAP Fault). An HTTP response with no
body (204) ends the session.

This module tracks who may say what next. The caller feeds it what the CPE sent
(``receive``) and gets back events; then it must answer with exactly one of
``send_response``, ``send_fault``, ``send_request`` or ``end``, which return the bytes of
the HTTP response body (or ``None`` for the 204 that ends the session). Any move the
table below does not allow raises ``ProtocolError``; the state is left unchanged.

The whole state is a small JSON value (``to_json``/``from_json``): the service layer
stores it in the database between HTTP requests, so any worker can serve the next one.

Sloppy CPEs are tolerated where the spec's intent is clear:

* an empty POST, or a new request, instead of the answer to an ACS request: the request
  is reported as ``RequestUnanswered`` and the session goes on;
* an answer without a cwmp:ID is matched by its type; an answer with a *different* ID, or
  of the wrong type, is never credited to the pending request (``RequestUnanswered``);
* an answer where the CPE may only send requests: a CPE that started a new session (a new
  Inform on the same connection) while the ACS waited for its answer, and then sends that
  answer. It is reported as ``StrayAnswer`` (the caller may credit it by its cwmp:ID to
  what sent it in the earlier session, or drop it), and the CPE, which now waits for the
  ACS, is taken to be done with its own requests.

States (``State``)::

    AWAIT_INFORM --Inform--> INFORM_RECEIVED --InformResponse--> CPE_REQUESTS
    CPE_REQUESTS --request--> CPE_REQUEST_RECEIVED --response/fault--> CPE_REQUESTS
    CPE_REQUESTS --empty POST--> ACS_REQUESTS
    CPE_REQUESTS --stray answer--> ACS_REQUESTS
    ACS_REQUESTS --ACS request--> AWAIT_RESPONSE --response/fault/empty--> ACS_REQUESTS
    ACS_REQUESTS --end (204)--> ENDED
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from acs.cwmp import faults, soap
from acs.cwmp import messages as m


class State(StrEnum):
    AWAIT_INFORM = "await_inform"
    INFORM_RECEIVED = "inform_received"  # the ACS owes an InformResponse
    CPE_REQUESTS = "cpe_requests"  # the CPE may send a request or an empty POST
    CPE_REQUEST_RECEIVED = "cpe_request_received"  # the ACS owes an answer
    ACS_REQUESTS = "acs_requests"  # the ACS must send a request or end the session
    AWAIT_RESPONSE = "await_response"  # the CPE owes the answer to an ACS request
    ENDED = "ended"


class Move(StrEnum):
    """What happened: a message from one side, classified."""

    CPE_INFORM = "cpe_inform"
    CPE_REQUEST = "cpe_request"
    CPE_EMPTY = "cpe_empty"
    CPE_RESPONSE = "cpe_response"
    CPE_FAULT = "cpe_fault"
    ACS_RESPONSE = "acs_response"
    ACS_FAULT = "acs_fault"
    ACS_REQUEST = "acs_request"
    ACS_END = "acs_end"


TRANSITIONS: Final[dict[tuple[State, Move], State]] = {
    (State.AWAIT_INFORM, Move.CPE_INFORM): State.INFORM_RECEIVED,
    (State.INFORM_RECEIVED, Move.ACS_RESPONSE): State.CPE_REQUESTS,
    (State.INFORM_RECEIVED, Move.ACS_FAULT): State.ENDED,
    (State.CPE_REQUESTS, Move.CPE_REQUEST): State.CPE_REQUEST_RECEIVED,
    (State.CPE_REQUESTS, Move.CPE_EMPTY): State.ACS_REQUESTS,
    (State.CPE_REQUEST_RECEIVED, Move.ACS_RESPONSE): State.CPE_REQUESTS,
    (State.CPE_REQUEST_RECEIVED, Move.ACS_FAULT): State.CPE_REQUESTS,
    (State.ACS_REQUESTS, Move.ACS_REQUEST): State.AWAIT_RESPONSE,
    (State.ACS_REQUESTS, Move.ACS_END): State.ENDED,
    (State.AWAIT_RESPONSE, Move.CPE_RESPONSE): State.ACS_REQUESTS,
    (State.AWAIT_RESPONSE, Move.CPE_FAULT): State.ACS_REQUESTS,
    # Tolerated: the CPE skipped the answer (reported as RequestUnanswered).
    (State.AWAIT_RESPONSE, Move.CPE_EMPTY): State.ACS_REQUESTS,
    (State.AWAIT_RESPONSE, Move.CPE_REQUEST): State.CPE_REQUEST_RECEIVED,
    # Tolerated: an answer to a request of an earlier session (reported as StrayAnswer).
    (State.CPE_REQUESTS, Move.CPE_RESPONSE): State.ACS_REQUESTS,
    (State.CPE_REQUESTS, Move.CPE_FAULT): State.ACS_REQUESTS,
}


class ProtocolError(Exception):
    """A move the session table does not allow in the current state."""

    def __init__(self, state: State, move: Move, detail: str = ""):
        self.state = state
        self.move = move
        text = f"{move.value} is not allowed in state {state.value}"
        super().__init__(f"{text}: {detail}" if detail else text)


# --- events -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PendingRequest:
    """An ACS request awaiting its answer; ``ref`` is the caller's (e.g. a task id)."""

    cwmp_id: str
    method: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class InformReceived:
    inform: m.Inform
    cwmp_version: str  # negotiated


@dataclass(frozen=True, slots=True)
class CpeRequestReceived:
    """The CPE asked something; ``request`` may be ``UnknownMethod``/``InvalidMessage``.

    ``held`` is true when the ACS had set HoldRequests: the answer must be fault 8001.
    """

    request: Any
    held: bool = False


@dataclass(frozen=True, slots=True)
class CpeRequestsDone:
    """The CPE sent its empty POST: the ACS may now send requests or end the session."""


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    request: PendingRequest
    response: Any  # the matching *Response message


@dataclass(frozen=True, slots=True)
class FaultReceived:
    request: PendingRequest
    fault: m.Fault


@dataclass(frozen=True, slots=True)
class RequestUnanswered:
    """The CPE did not answer an ACS request; ``reason`` says what it did instead."""

    request: PendingRequest
    reason: str


@dataclass(frozen=True, slots=True)
class StrayAnswer:
    """An answer (a response or an ``m.Fault``) to no request of this session; ``cwmp_id``
    is what it carried, which names the request of an earlier session it answers."""

    cwmp_id: str | None
    message: Any


Event = (
    InformReceived
    | CpeRequestReceived
    | CpeRequestsDone
    | ResponseReceived
    | FaultReceived
    | RequestUnanswered
    | StrayAnswer
)

_RESPONSE_TYPES: Final = {cls.__name__ for cls in m.ACS_REQUEST_RESPONSES.values()}
_EXPECTED_RESPONSE: Final = {
    req.__name__: resp.__name__ for req, resp in m.ACS_REQUEST_RESPONSES.items()
}
_CPE_REQUEST_RESPONSE: Final = {
    req.__name__: resp.__name__ for req, resp in m.CPE_REQUEST_RESPONSES.items()
}


def classify(envelope: soap.Envelope) -> Move:
    """Which CPE move an envelope is. Anything that is not a response, a fault or empty
    is a request (an unknown method included: it gets fault 8000)."""
    message = envelope.message
    if message is None:
        return Move.CPE_EMPTY
    if isinstance(message, m.Fault):
        return Move.CPE_FAULT
    if isinstance(message, m.Inform):
        return Move.CPE_INFORM
    name = soap.method_name(message)
    if isinstance(message, soap.InvalidMessage) and name == "Inform":
        return Move.CPE_INFORM
    if name in _RESPONSE_TYPES or (
        isinstance(message, soap.UnknownMethod) and name.endswith("Response")
    ):
        return Move.CPE_RESPONSE
    return Move.CPE_REQUEST


class CwmpSession:
    """One CWMP session, seen from the ACS. See the module docstring."""

    def __init__(self, id_prefix: str = "") -> None:
        self.state = State.AWAIT_INFORM
        self.cwmp_version = "1.0"
        self.namespace = soap.CWMP_NAMESPACES["1.0"]
        self.use_cwmp_version: str | None = None  # sent once, in the InformResponse
        self.hold_requests = False
        self.no_more_requests = False
        self.id_prefix = id_prefix
        self.request_count = 0
        self.cpe_request: dict[str, Any] | None = None  # {"id", "method", "held"}
        self.pending: PendingRequest | None = None

    # --- input from the CPE -----------------------------------------------------------

    def receive(self, envelope: soap.Envelope) -> list[Event]:
        """Take what the CPE sent and say what it means. May raise ``ProtocolError``."""
        move = classify(envelope)
        next_state = self._next(move)
        if move is Move.CPE_INFORM and not isinstance(envelope.message, m.Inform):
            # An Inform we cannot read: answer 8003 and end (no device to talk to).
            self._remember_cpe_request(envelope, held=False)
            self.state = next_state
            return [CpeRequestReceived(envelope.message)]
        events: list[Event] = []
        if move is Move.CPE_INFORM:
            self._negotiate(envelope)
            self.no_more_requests = envelope.no_more_requests
            self._remember_cpe_request(envelope, held=False)
            events.append(InformReceived(envelope.message, self.cwmp_version))
        elif move is Move.CPE_REQUEST:
            if self.pending is not None:
                events.append(RequestUnanswered(self.pending, "the CPE sent a request instead"))
                self.pending = None
            held = self.hold_requests
            self._remember_cpe_request(envelope, held=held)
            events.append(CpeRequestReceived(envelope.message, held=held))
        elif move is Move.CPE_EMPTY:
            if self.pending is not None:
                events.append(RequestUnanswered(self.pending, "the CPE sent an empty POST"))
                self.pending = None
            else:
                events.append(CpeRequestsDone())
        elif self.pending is None:  # an answer to no request of ours: see StrayAnswer
            events += [StrayAnswer(envelope.cwmp_id, envelope.message), CpeRequestsDone()]
        else:  # a response or fault to our pending request
            events.append(self._match(envelope, move))
            self.pending = None
        self.state = next_state
        return events

    def _match(self, envelope: soap.Envelope, move: Move) -> Event:
        pending = self.pending
        assert pending is not None
        if envelope.cwmp_id and envelope.cwmp_id != pending.cwmp_id:
            return RequestUnanswered(
                pending, f"answer carries cwmp:ID {envelope.cwmp_id!r}, not {pending.cwmp_id!r}"
            )
        if move is Move.CPE_FAULT:
            return FaultReceived(pending, envelope.message)
        message = envelope.message
        name = soap.method_name(message)
        if isinstance(message, soap.InvalidMessage):
            return RequestUnanswered(pending, f"unreadable {message.name}: {message.reason}")
        expected = _EXPECTED_RESPONSE[pending.method]
        if name != expected:
            return RequestUnanswered(pending, f"answered with {name}, expected {expected}")
        return ResponseReceived(pending, message)

    # --- output to the CPE -----------------------------------------------------------

    def send_response(self, message: Any) -> bytes:
        """Answer the CPE's request (InformResponse to an Inform, ...)."""
        self._check(Move.ACS_RESPONSE)
        assert self.cpe_request is not None
        expected = _CPE_REQUEST_RESPONSE.get(self.cpe_request["method"])
        if self.cpe_request["held"]:
            raise ProtocolError(self.state, Move.ACS_RESPONSE, "requests are held: send 8001")
        if type(message).__name__ != expected:
            raise ProtocolError(
                self.state,
                Move.ACS_RESPONSE,
                f"{type(message).__name__} does not answer {self.cpe_request['method']}",
            )
        return self._emit(Move.ACS_RESPONSE, message, self.cpe_request["id"])

    def send_inform_response(self, *, hold_requests: bool = False) -> bytes:
        """InformResponse (MaxEnvelopes 1), with UseCWMPVersion for a 1.4 CPE."""
        self.hold_requests = hold_requests
        return self.send_response(m.InformResponse(max_envelopes=1))

    def send_fault(self, code: int, string: str = "") -> bytes:
        """Answer the CPE's request with a CWMP fault (8000-8006, A.5.1)."""
        self._check(Move.ACS_FAULT)
        assert self.cpe_request is not None
        fault = m.Fault(
            fault_code=code,
            fault_string=string or faults.describe(code),
            soap_faultcode=faults.soap_faultcode(code),
        )
        return self._emit(Move.ACS_FAULT, fault, self.cpe_request["id"])

    def send_request(
        self, request: Any, *, ref: str | None = None, hold_requests: bool = False
    ) -> bytes:
        """Send an ACS request; its answer comes in the CPE's next POST."""
        self._check(Move.ACS_REQUEST)
        method = type(request).__name__
        if method not in _EXPECTED_RESPONSE:
            raise ProtocolError(self.state, Move.ACS_REQUEST, f"{method} is not an ACS request")
        self.request_count += 1
        cwmp_id = f"{self.id_prefix}{self.request_count}"
        self.hold_requests = hold_requests
        body = self._emit(Move.ACS_REQUEST, request, cwmp_id)
        self.pending = PendingRequest(cwmp_id, method, ref)
        return body

    def end(self) -> None:
        """End the session: the HTTP response is an empty 204."""
        self._check(Move.ACS_END)
        self.state = TRANSITIONS[(self.state, Move.ACS_END)]

    @property
    def finished(self) -> bool:
        return self.state is State.ENDED

    # --- state as JSON ----------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "cwmp_version": self.cwmp_version,
            "namespace": self.namespace,
            "use_cwmp_version": self.use_cwmp_version,
            "hold_requests": self.hold_requests,
            "no_more_requests": self.no_more_requests,
            "id_prefix": self.id_prefix,
            "request_count": self.request_count,
            "cpe_request": self.cpe_request,
            "pending": None
            if self.pending is None
            else {
                "cwmp_id": self.pending.cwmp_id,
                "method": self.pending.method,
                "ref": self.pending.ref,
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CwmpSession:
        session = cls(data["id_prefix"])
        session.state = State(data["state"])
        session.cwmp_version = data["cwmp_version"]
        session.namespace = data["namespace"]
        session.use_cwmp_version = data["use_cwmp_version"]
        session.hold_requests = data["hold_requests"]
        session.no_more_requests = data["no_more_requests"]
        session.request_count = data["request_count"]
        session.cpe_request = data["cpe_request"]
        pending = data["pending"]
        session.pending = None if pending is None else PendingRequest(**pending)
        return session

    # --- internals --------------------------------------------------------------------

    def _next(self, move: Move) -> State:
        try:
            return TRANSITIONS[(self.state, move)]
        except KeyError:
            raise ProtocolError(self.state, move) from None

    def _check(self, move: Move) -> None:
        self._next(move)

    def _emit(self, move: Move, message: Any, cwmp_id: str | None) -> bytes:
        next_state = self._next(move)
        use_version = None
        if isinstance(message, m.InformResponse):
            use_version = self.use_cwmp_version
        body = soap.render_envelope(
            message,
            namespace=self.namespace,
            cwmp_id=cwmp_id,
            hold_requests=True if self.hold_requests else None,
            use_cwmp_version=use_version,
        )
        self.state = next_state
        if move is not Move.ACS_REQUEST:
            self.cpe_request = None
        return body

    def _remember_cpe_request(self, envelope: soap.Envelope, *, held: bool) -> None:
        method = soap.method_name(envelope.message)
        self.cpe_request = {"id": envelope.cwmp_id, "method": method, "held": held}

    def _negotiate(self, envelope: soap.Envelope) -> None:
        version = soap.negotiate_version(envelope.namespace, envelope.supported_cwmp_versions)
        self.cwmp_version = version
        # Answer in the namespace the CPE used; fall back to the version's own.
        self.namespace = envelope.namespace or soap.CWMP_NAMESPACES[version]
        self.use_cwmp_version = version if envelope.supported_cwmp_versions else None
