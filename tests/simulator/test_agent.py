"""CpeAgent between sessions: which interval it informs at, what woke it; no network."""

from __future__ import annotations

from acs.cwmp import messages as m
from acs.cwmp import xsd
from acs.simulator import datamodels
from acs.simulator.agent import CpeAgent
from acs.simulator.model import CpeModel

MS = "InternetGatewayDevice.ManagementServer."


def _agent(model: CpeModel | None = None) -> CpeAgent:
    return CpeAgent(
        model or datamodels.gateway("SN0001"), "http://127.0.0.1:9/acs", username="acs", password=""
    )


def _set(agent: CpeAgent, name: str, value: xsd.Value, type_: str) -> None:
    answer = agent.model.handle(m.SetParameterValues((m.ParameterValueStruct(name, value, type_),)))
    assert answer == m.SetParameterValuesResponse(status=0)


def test_the_interval_is_what_the_data_model_says_now():
    agent = _agent()
    assert agent.periodic_inform_interval(default=60.0) == 3600.0  # the factory's
    _set(agent, MS + "PeriodicInformInterval", 600, xsd.UNSIGNED_INT)
    assert agent.periodic_inform_interval(default=60.0) == 600.0
    _set(agent, MS + "PeriodicInformEnable", False, xsd.BOOLEAN)
    assert agent.periodic_inform_interval(default=60.0) is None  # no periodic Informs
    _set(agent, MS + "PeriodicInformEnable", True, xsd.BOOLEAN)
    assert agent.periodic_inform_interval(default=60.0) == 600.0
    _set(agent, MS + "PeriodicInformInterval", 0, xsd.UNSIGNED_INT)
    assert agent.periodic_inform_interval(default=60.0) == 1.0  # the range is [1:]


def test_a_model_without_an_interval_takes_the_default():
    model = CpeModel("Acme", "000000", "X", "SN1", root="Device")
    assert _agent(model).periodic_inform_interval(default=42.0) == 42.0


def test_wake_events_are_taken_once_each_in_order():
    agent = _agent()
    for event in ("6 CONNECTION REQUEST", "M Reboot", "1 BOOT", "6 CONNECTION REQUEST"):
        agent.wake_soon(event)
    assert agent.wake.is_set()
    assert agent.take_wake_events() == ("6 CONNECTION REQUEST", "1 BOOT")
    assert not agent.wake.is_set()
    assert agent.take_wake_events() == ()
