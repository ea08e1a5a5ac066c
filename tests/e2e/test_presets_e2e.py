"""The issue's first "Done means": on a real ``acs serve``, new devices of a model with a
preset converge in their first session, and their next Inform queues nothing."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.e2e.test_simulate import _simulate

NTP = "InternetGatewayDevice.Time.NTPServer1"
WLAN = "InternetGatewayDevice.LANDevice.1.WLANConfiguration."


def test_new_devices_of_a_model_converge_then_inform_for_nothing(acs, tmp_path: Path):
    preset = {
        "name": "acme-igd",
        "filter": {"oui": "00D09E", "product_class": "IGD"},
        "desired": {
            "parameters": {"Time.NTPServer1": "ntp.example.net"},
            "objects": [{"path": WLAN, "keys": {"SSID": "guest"}, "parameters": {"Channel": 11}}],
            "tags": ["acme"],
            "periodic_inform_interval": 900,
        },
    }
    with httpx.Client(base_url=acs.api_url, auth=("ops", "ops-password"), timeout=60) as api:
        r = api.post("/api/v1/presets", json=preset)
        assert r.status_code == 201, r.text
        state = tmp_path / "fleet.json"
        first = _simulate(acs.cwmp_url, tmp_path / "first.json", "--state", str(state))
        assert (first["sessions_ok"], first["sessions_failed"]) == (12, 0)
        # per device: bootstrap's SetParameterValues, its own CWMP pair's, the preset's
        # refresh, AddObject and one SetParameterValues of what differs
        assert first["acs_requests"] == {
            "SetParameterValues": 36,
            "GetParameterValues": 12,
            "AddObject": 12,
        }
        device = "00D09E-IGD-E2ESIM00000005"
        found = api.get(f"/api/v1/devices/{device}").json()
        params = found["parameters"]
        assert params[NTP]["value"] == "ntp.example.net"
        assert params[WLAN + "2.SSID"]["value"] == "guest"
        assert params[WLAN + "2.Channel"]["value"] == 11
        assert found["tags"] == ["acme"] and found["periodic_inform_interval"] == 900
        kept = json.loads(state.read_text())["devices"][device]["parameters"]
        assert kept[NTP]["value"] == "ntp.example.net"  # the device has it, not only the ACS

        # the next Informs (the same devices, restarted from their state) queue nothing
        second = _simulate(
            acs.cwmp_url, tmp_path / "second.json", "--running", "--state", str(state)
        )
        assert (second["sessions_ok"], second["sessions_failed"]) == (12, 0)
        assert second["acs_requests"] == {}
        tasks = api.get("/api/v1/tasks", params={"device_id": device}).json()
        assert tasks["data"] == []
