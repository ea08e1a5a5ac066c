"""What a simulated CPE keeps across restarts: Flash (the diff against the factory model) and
the state file, with no network."""

from __future__ import annotations

import json

import pytest

from acs.cwmp import messages as m
from acs.cwmp import xsd
from acs.simulator import datamodels
from acs.simulator import state as state_module
from acs.simulator.state import Flash, StateFile, StateFileError, dumps, load

MS = "InternetGatewayDevice.ManagementServer."
WLAN = "InternetGatewayDevice.LANDevice.1.WLANConfiguration."


def _configured() -> Flash:
    """A gateway after an ACS's session: credentials, interval, an object added, one
    deleted, an active notification."""
    flash = Flash(datamodels.gateway("SN0001"))
    model = flash.model
    answer = model.handle(
        m.SetParameterValues(
            (
                m.ParameterValueStruct(MS + "ConnectionRequestUsername", "cr-user"),
                m.ParameterValueStruct(MS + "ConnectionRequestPassword", "cr-pass"),
                m.ParameterValueStruct(MS + "PeriodicInformInterval", 600, xsd.UNSIGNED_INT),
            ),
            parameter_key="key-1",
        )
    )
    assert answer == m.SetParameterValuesResponse(status=0)
    assert model.handle(m.AddObject(WLAN)) == m.AddObjectResponse(instance_number=2, status=0)
    deleted = model.handle(m.DeleteObject("InternetGatewayDevice.LANDevice.1.WLANConfiguration.1."))
    assert deleted == m.DeleteObjectResponse(status=0)
    model.handle(
        m.SetParameterAttributes(
            (m.SetParameterAttributesStruct(MS + "PeriodicInformInterval", True, 2),)
        )
    )
    # given by each run's listener: never kept
    model.parameters[MS + "ConnectionRequestURL"].value = "http://127.0.0.1:1234/cr/abc"
    return flash


def test_an_untouched_device_keeps_nothing():
    assert Flash(datamodels.gateway("SN0001")).save() == {"parameters": {}, "deleted": []}


def test_what_the_acs_changed_is_kept_and_nothing_else():
    saved = _configured().save()
    entry = {"type": "xsd:string", "writable": True, "notification": 0, "access_list": []}
    assert saved["parameters"] == {
        MS + "ConnectionRequestUsername": {**entry, "value": "cr-user"},
        MS + "ConnectionRequestPassword": {**entry, "value": "cr-pass"},
        MS + "PeriodicInformInterval": {
            **entry,
            "value": 600,
            "type": "xsd:unsignedInt",
            "notification": 2,
        },
        MS + "ParameterKey": {**entry, "value": "key-1", "writable": False},
        WLAN + "2.Enable": {**entry, "value": False, "type": "xsd:boolean"},
        WLAN + "2.SSID": {**entry, "value": ""},
        WLAN + "2.Channel": {**entry, "value": 0, "type": "xsd:unsignedInt"},
        WLAN + "2.KeyPassphrase": {**entry, "value": ""},
    }
    assert saved["deleted"] == [
        WLAN + "1.Enable",
        WLAN + "1.SSID",
        WLAN + "1.Channel",
        WLAN + "1.KeyPassphrase",
    ]
    json.dumps(saved)  # plain JSON


def test_a_fresh_device_restored_from_what_was_kept_is_the_same_device():
    before = _configured()
    after = Flash(datamodels.gateway("SN0001"))
    revision = after.model.revision
    after.restore(json.loads(json.dumps(before.save())))
    url = MS + "ConnectionRequestURL"
    assert {n: p for n, p in after.model.parameters.items() if n != url} == {
        n: p for n, p in before.model.parameters.items() if n != url
    }
    assert after.model.parameters[url].value == ""  # the factory's, until this run's listener
    assert after.model.revision > revision  # a cached Inform is not reused
    assert after.save() == before.save()


def test_unreadable_device_state_is_refused_naming_the_device():
    flash = Flash(datamodels.gateway("SN0001"))
    with pytest.raises(StateFileError, match=r"^device 00D09E-IGD-SN0001: unreadable state"):
        flash.restore({"parameters": {MS + "Username": {"value": "x"}}})


def test_state_file_round_trip_keeps_devices_of_other_runs(tmp_path):
    path = tmp_path / "fleet.json"
    path.write_text(dumps({"00D09E-IGD-OTHER": {"parameters": {}, "deleted": ["x"]}}))
    state = StateFile(path)
    flash = _configured()
    assert state.restore(flash) is False  # not in the file yet
    assert state.save([flash]) is True
    assert state.save([flash]) is False  # unchanged: not written again
    assert load(path) == {
        "00D09E-IGD-OTHER": {"parameters": {}, "deleted": ["x"]},
        "00D09E-IGD-SN0001": flash.save(),
    }
    assert json.loads(path.read_text())["format"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fleet.json"]  # no temporary left

    again = Flash(datamodels.gateway("SN0001"))
    assert StateFile(path).restore(again) is True
    assert again.model.get(MS + "ConnectionRequestPassword") == "cr-pass"


def test_a_missing_state_file_is_a_first_run(tmp_path):
    state = StateFile(tmp_path / "new.json")
    assert state.devices == {}
    assert not (tmp_path / "new.json").exists()  # nothing written before a save


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "cannot read {path}: Expecting property name enclosed in double quotes"),
        ('{"devices": {}}', "{path} is not an acs simulate state file (format 1)"),
        ('{"format": 1, "devices": []}', "{path}: no devices"),
    ],
)
def test_a_state_file_that_cannot_be_used_is_refused(tmp_path, text, problem):
    path = tmp_path / "fleet.json"
    path.write_text(text)
    with pytest.raises(StateFileError) as exc:
        StateFile(path)
    assert str(exc.value).startswith(problem.format(path=path))


def test_a_state_file_that_cannot_be_written_says_why(tmp_path):
    path = tmp_path / "no-such-dir" / "fleet.json"
    state = StateFile(path)  # nothing to read: a first run
    with pytest.raises(StateFileError) as exc:
        state.save([Flash(datamodels.gateway("SN0001"))])
    assert str(exc.value) == f"cannot write {path}: No such file or directory"


def test_a_save_with_no_model_changed_renders_nothing(tmp_path, monkeypatch):
    """A fleet of 30,000 devices saves every few seconds; rendering them all each time took
    two seconds of CPU. The models' revisions say whether anything changed."""
    rendered = []
    monkeypatch.setattr(state_module, "dumps", lambda devices: rendered.append(1) or dumps(devices))
    path = tmp_path / "fleet.json"
    state = StateFile(path)
    flash = _configured()
    assert state.save([flash]) is True
    assert state.save([flash]) is False
    assert len(rendered) == 1
    # a change after the write is rendered and written (the flash's kept save is stale)
    flash.model.handle(
        m.SetParameterValues(
            (m.ParameterValueStruct(MS + "PeriodicInformInterval", 900, xsd.UNSIGNED_INT),), "k2"
        )
    )
    assert state.save([flash]) is True
    assert len(rendered) == 2
    assert load(path)[flash.key]["parameters"][MS + "PeriodicInformInterval"]["value"] == 900


def test_a_save_that_failed_is_tried_again(tmp_path):
    path = tmp_path / "later" / "fleet.json"
    state = StateFile(path)
    flash = _configured()
    with pytest.raises(StateFileError):
        state.save([flash])
    path.parent.mkdir()
    assert state.save([flash]) is True
    assert load(path) == {flash.key: flash.save()}


def test_the_file_has_one_line_per_device():
    text = dumps(
        {"B": {"parameters": {}, "deleted": []}, "A": {"parameters": {}, "deleted": ["x"]}}
    )
    assert text.splitlines() == [
        '{"format": 1, "devices": {',
        '"A": {"deleted": ["x"], "parameters": {}},',
        '"B": {"deleted": [], "parameters": {}}',
        "}}",
    ]
    assert json.loads(text)["devices"]["A"] == {"deleted": ["x"], "parameters": {}}
