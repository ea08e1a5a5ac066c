"""The session state machine driven by a FakeCpe: no database, no HTTP."""

from __future__ import annotations

import json

import pytest

from acs.cwmp import messages as m
from acs.cwmp import session as cs
from acs.cwmp import soap
from tests.fake_cpe import FakeCpe


def roundtrip(session: cs.CwmpSession) -> cs.CwmpSession:
    """Store and reload the state as the service layer does between requests."""
    return cs.CwmpSession.from_json(json.loads(json.dumps(session.to_json())))


def test_inform_empty_post_and_204():
    cpe = FakeCpe()
    s = cs.CwmpSession("abc.")
    [event] = s.receive(cpe.parse(cpe.inform("0 BOOTSTRAP", "1 BOOT")))
    assert isinstance(event, cs.InformReceived)
    assert event.inform.event_codes == ("0 BOOTSTRAP", "1 BOOT")
    assert event.cwmp_version == "1.2"
    assert s.state is cs.State.INFORM_RECEIVED
    reply = cpe.parse(s.send_inform_response())
    assert isinstance(reply.message, m.InformResponse)
    assert reply.message.max_envelopes == 1
    assert reply.cwmp_id == "1"  # echoes the Inform's ID
    assert reply.namespace == soap.CWMP_NAMESPACES["1.2"]
    s = roundtrip(s)
    assert s.receive(cpe.parse(b"")) == [cs.CpeRequestsDone()]
    assert s.state is cs.State.ACS_REQUESTS
    s.end()
    assert s.finished


def test_cpe_requests_then_acs_requests_matched_by_id():
    cpe = FakeCpe()
    s = cs.CwmpSession("sid.")
    s.receive(cpe.parse(cpe.inform("7 TRANSFER COMPLETE")))
    s.send_inform_response()
    [event] = s.receive(cpe.parse(cpe.request(m.TransferComplete("k1"))))
    assert isinstance(event, cs.CpeRequestReceived)
    assert event.request == m.TransferComplete("k1")
    answer = cpe.parse(s.send_response(m.TransferCompleteResponse()))
    assert answer.message == m.TransferCompleteResponse()
    assert answer.cwmp_id == "2"
    s = roundtrip(s)
    s.receive(cpe.parse(b""))
    body = s.send_request(
        m.GetParameterValues(("InternetGatewayDevice.DeviceInfo.SoftwareVersion",)), ref="task-7"
    )
    assert s.pending == cs.PendingRequest("sid.1", "GetParameterValues", "task-7")
    s = roundtrip(s)
    [event] = s.receive(cpe.parse(cpe.answer(body)))
    assert isinstance(event, cs.ResponseReceived)
    assert event.request.ref == "task-7"
    assert event.response.parameter_list == (
        m.ParameterValueStruct("InternetGatewayDevice.DeviceInfo.SoftwareVersion", "1.0.0"),
    )
    assert s.state is cs.State.ACS_REQUESTS
    # second request gets the next id
    body = s.send_request(m.GetParameterValues(("Nope.",)), ref="task-8")
    [event] = s.receive(cpe.parse(cpe.answer(body)))
    assert isinstance(event, cs.FaultReceived)
    assert event.request.cwmp_id == "sid.2"
    assert event.fault.fault_code == 9005
    s.end()
    assert s.state is cs.State.ENDED


def test_set_parameter_values_fault_list_reaches_the_acs():
    cpe = FakeCpe()
    s = cs.CwmpSession()
    s.receive(cpe.parse(cpe.inform()))
    s.send_inform_response()
    s.receive(cpe.parse(b""))
    body = s.send_request(
        m.SetParameterValues(
            (
                m.ParameterValueStruct("InternetGatewayDevice.DeviceInfo.SoftwareVersion", "x"),
                m.ParameterValueStruct("InternetGatewayDevice.Nope", "1"),
                m.ParameterValueStruct(
                    "InternetGatewayDevice.ManagementServer.PeriodicInformInterval",
                    "abc",
                    "xsd:unsignedInt",
                ),
            ),
            "key",
        )
    )
    [event] = s.receive(cpe.parse(cpe.answer(body)))
    assert isinstance(event, cs.FaultReceived)
    assert event.fault.fault_code == 9003
    assert [(f.parameter_name, f.fault_code) for f in event.fault.set_parameter_values_fault] == [
        ("InternetGatewayDevice.DeviceInfo.SoftwareVersion", 9008),
        ("InternetGatewayDevice.Nope", 9005),
        ("InternetGatewayDevice.ManagementServer.PeriodicInformInterval", 9007),
    ]


def test_unknown_and_invalid_cpe_requests_are_answered_with_faults():
    cpe = FakeCpe()
    s = cs.CwmpSession()
    s.receive(cpe.parse(cpe.inform()))
    s.send_inform_response()
    unknown = cpe.parse(
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
        b'xmlns:cwmp="urn:dslforum-org:cwmp-1-2"><soap:Header><cwmp:ID>9</cwmp:ID>'
        b"</soap:Header><soap:Body><cwmp:X_Vendor_Hello/></soap:Body></soap:Envelope>"
    )
    [event] = s.receive(unknown)
    assert event == cs.CpeRequestReceived(soap.UnknownMethod("X_Vendor_Hello"))
    fault = cpe.parse(s.send_fault(8000))
    assert fault.cwmp_id == "9"
    assert fault.message == m.Fault(8000, "Method not supported", soap_faultcode="Server")
    assert s.state is cs.State.CPE_REQUESTS


def test_empty_post_instead_of_answer_reports_request_unanswered():
    cpe = FakeCpe()
    s = cs.CwmpSession("p.")
    s.receive(cpe.parse(cpe.inform()))
    s.send_inform_response()
    s.receive(cpe.parse(b""))
    s.send_request(m.Reboot("r1"), ref="t1")
    [event] = s.receive(cpe.parse(b""))
    assert event == cs.RequestUnanswered(
        cs.PendingRequest("p.1", "Reboot", "t1"), "the CPE sent an empty POST"
    )
    assert s.state is cs.State.ACS_REQUESTS
    assert s.pending is None


def test_answer_with_wrong_id_or_type_is_never_credited():
    cpe = FakeCpe()
    s = cs.CwmpSession("p.")
    s.receive(cpe.parse(cpe.inform()))
    s.send_inform_response()
    s.receive(cpe.parse(b""))
    s.send_request(m.Reboot(), ref="t1")
    [event] = s.receive(cpe.parse(cpe._render(m.RebootResponse(), "other")))
    assert isinstance(event, cs.RequestUnanswered)
    assert "other" in event.reason
    s.send_request(m.Reboot(), ref="t2")
    [event] = s.receive(cpe.parse(cpe._render(m.FactoryResetResponse(), "p.2")))
    assert isinstance(event, cs.RequestUnanswered)
    assert event.reason == "answered with FactoryResetResponse, expected RebootResponse"


def test_answer_without_id_is_matched_by_type():
    cpe = FakeCpe()
    s = cs.CwmpSession("p.")
    s.receive(cpe.parse(cpe.inform()))
    s.send_inform_response()
    s.receive(cpe.parse(b""))
    s.send_request(m.Reboot(), ref="t1")
    [event] = s.receive(cpe.parse(cpe._render(m.RebootResponse(), None)))
    assert event == cs.ResponseReceived(
        cs.PendingRequest("p.1", "Reboot", "t1"), m.RebootResponse()
    )


def test_cpe_request_instead_of_answer():
    cpe = FakeCpe()
    s = cs.CwmpSession("p.")
    s.receive(cpe.parse(cpe.inform()))
    s.send_inform_response()
    s.receive(cpe.parse(b""))
    s.send_request(m.Reboot(), ref="t1")
    events = s.receive(cpe.parse(cpe.request(m.GetRPCMethods())))
    assert events == [
        cs.RequestUnanswered(
            cs.PendingRequest("p.1", "Reboot", "t1"), "the CPE sent a request instead"
        ),
        cs.CpeRequestReceived(m.GetRPCMethods()),
    ]
    body = s.send_response(m.GetRPCMethodsResponse(m.ACS_METHODS))
    assert cpe.parse(body).message.method_list == m.ACS_METHODS
    assert s.state is cs.State.CPE_REQUESTS


def test_hold_requests_refuses_cpe_requests_with_8001():
    cpe = FakeCpe()
    s = cs.CwmpSession()
    s.receive(cpe.parse(cpe.inform()))
    reply = cpe.parse(s.send_inform_response(hold_requests=True))
    assert reply.hold_requests is True
    [event] = s.receive(cpe.parse(cpe.request(m.TransferComplete("k"))))
    assert event == cs.CpeRequestReceived(m.TransferComplete("k"), held=True)
    with pytest.raises(cs.ProtocolError, match="requests are held"):
        s.send_response(m.TransferCompleteResponse())
    assert cpe.parse(s.send_fault(8001)).message.fault_code == 8001


def test_illegal_moves_raise_and_leave_state_unchanged():
    cpe = FakeCpe()
    s = cs.CwmpSession()
    with pytest.raises(cs.ProtocolError, match="cpe_empty is not allowed in state await_inform"):
        s.receive(cpe.parse(b""))
    assert s.state is cs.State.AWAIT_INFORM
    s.receive(cpe.parse(cpe.inform()))
    with pytest.raises(cs.ProtocolError):
        s.send_request(m.Reboot())
    with pytest.raises(cs.ProtocolError, match="does not answer Inform"):
        s.send_response(m.TransferCompleteResponse())
    s.send_inform_response()
    with pytest.raises(cs.ProtocolError, match="cpe_inform is not allowed"):
        s.receive(cpe.parse(cpe.inform()))
    assert s.state is cs.State.CPE_REQUESTS
    s.receive(cpe.parse(b""))
    with pytest.raises(cs.ProtocolError, match="InformResponse is not an ACS request"):
        s.send_request(m.InformResponse())


def test_an_answer_where_the_cpe_may_only_ask_is_a_stray_answer():
    """A CPE that started a new session on the connection where the ACS waited for its answer,
    then sends that answer: reported for the caller to credit by its cwmp:ID, and the CPE,
    which now waits for the ACS, has done with its own requests."""
    cpe = FakeCpe()
    s = cs.CwmpSession("new.")
    s.receive(cpe.parse(cpe.inform()))
    s.send_inform_response()
    events = s.receive(cpe.parse(cpe._render(m.RebootResponse(), "old.3")))
    assert events == [cs.StrayAnswer("old.3", m.RebootResponse()), cs.CpeRequestsDone()]
    assert s.state is cs.State.ACS_REQUESTS
    fault = m.Fault(9002, "Internal error")
    s.send_request(m.GetRPCMethods(), ref="t1")
    assert s.pending == cs.PendingRequest("new.1", "GetRPCMethods", "t1")
    s.receive(cpe.parse(b""))  # unanswered
    s.end()
    # a fault just the same, and one without an ID
    s = cs.CwmpSession("new.")
    s.receive(cpe.parse(cpe.inform()))
    s.send_inform_response()
    [stray, done] = s.receive(cpe.parse(cpe._render(fault, None)))
    assert (stray.cwmp_id, stray.message.fault_code, done) == (None, 9002, cs.CpeRequestsDone())


def test_cwmp_14_negotiation_uses_supported_versions_and_cwmp_1_2_namespace():
    cpe = FakeCpe(supported_versions=("1.0", "1.1", "1.2", "1.3", "1.4"))
    s = cs.CwmpSession()
    [event] = s.receive(cpe.parse(cpe.inform()))
    assert event.cwmp_version == "1.4"
    reply = cpe.parse(s.send_inform_response())
    assert reply.use_cwmp_version == "1.4"
    assert reply.namespace == "urn:dslforum-org:cwmp-1-2"


def test_negotiation_picks_the_highest_common_version():
    cpe = FakeCpe(supported_versions=("1.0", "1.1", "1.3", "2.0"))
    s = cs.CwmpSession()
    [event] = s.receive(cpe.parse(cpe.inform()))
    assert event.cwmp_version == "1.3"
    assert cpe.parse(s.send_inform_response()).use_cwmp_version == "1.3"


@pytest.mark.parametrize(
    ("namespace", "version"),
    [
        ("urn:dslforum-org:cwmp-1-0", "1.0"),
        ("urn:dslforum-org:cwmp-1-1", "1.1"),
        ("urn:dslforum-org:cwmp-1-2", "1.2"),
    ],
)
def test_old_versions_are_answered_in_their_namespace(namespace, version):
    cpe = FakeCpe(namespace=namespace)
    s = cs.CwmpSession()
    [event] = s.receive(cpe.parse(cpe.inform()))
    assert event.cwmp_version == version
    reply = cpe.parse(s.send_inform_response())
    assert reply.namespace == namespace
    assert reply.use_cwmp_version is None
    s.receive(cpe.parse(b""))
    assert cpe.parse(s.send_request(m.GetRPCMethods())).namespace == namespace


def test_unreadable_inform_gets_8003_and_ends():
    s = cs.CwmpSession()
    env = soap.parse_envelope(
        b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/" '
        b'xmlns:c="urn:dslforum-org:cwmp-1-0"><e:Body><c:Inform><MaxEnvelopes>x</MaxEnvelopes>'
        b"</c:Inform></e:Body></e:Envelope>"
    )
    [event] = s.receive(env)
    assert isinstance(event.request, soap.InvalidMessage)
    body = s.send_fault(8003, "bad")
    assert soap.parse_envelope(body).message.fault_code == 8003
    assert s.finished


def test_state_json_is_plain_json():
    cpe = FakeCpe()
    s = cs.CwmpSession("x.")
    s.receive(cpe.parse(cpe.inform()))
    s.send_inform_response()
    s.receive(cpe.parse(b""))
    s.send_request(m.Reboot("k"), ref="42")
    data = s.to_json()
    assert json.loads(json.dumps(data)) == data
    assert data["pending"] == {"cwmp_id": "x.1", "method": "Reboot", "ref": "42"}
    assert data["state"] == "await_response"
    assert roundtrip(s).to_json() == data


def test_transition_table_targets_are_states():
    for (state, move), target in cs.TRANSITIONS.items():
        assert isinstance(state, cs.State)
        assert isinstance(move, cs.Move)
        assert isinstance(target, cs.State)
    # ENDED is terminal: nothing leaves it
    assert not [k for k in cs.TRANSITIONS if k[0] is cs.State.ENDED]
