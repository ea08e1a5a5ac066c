"""Provisioning end to end on `acs serve`: static provisioning of phones over HTTP, config
and firmware Downloads fetched for real from the ACS's file server, CTC binding, rollouts."""

from __future__ import annotations

import asyncio

import httpx

from acs.provisioning import configfile
from acs.simulator import datamodels
from acs.simulator.agent import FIRMWARE_MAGIC, CpeAgent
from tests.e2e.conftest import add_operator

MAC = "00:15:65:11:3a:f8"
PHONE = "0C383E-X6-001565113af8"


async def setup_phone(api: httpx.AsyncClient) -> None:
    r = await api.put(
        "/api/v1/profiles/general/X6",
        json={"modules": {"GLOBAL CONFIG MODULE": {"Time Zone": "32"}}},
    )
    assert r.status_code == 200, r.text
    r = await api.put(
        f"/api/v1/phones/{MAC}",
        json={
            "model": "X6",
            "variables": {"user": "1001", "name": "Alice"},
            "modules": {
                "SIP CONFIG MODULE": {
                    "SIP1 Register User": "{{user}}",
                    "SIP1 Display Name": "{{name}}",
                }
            },
        },
    )
    assert r.status_code == 200, r.text


async def test_phone_fetches_its_files_as_a_static_provisioning_client(acs):
    async with httpx.AsyncClient(base_url=acs.api_url, auth=("ops", "ops-password")) as api:
        await setup_phone(api)
        firmware = FIRMWARE_MAGIC + b"2.5.0\n" + b"\x00" * 1000
        r = await api.put(
            "/api/v1/files/x6-2.5.0.z",
            content=firmware,
            params={"file_type": "1 Firmware Upgrade Image", "version": "2.5.0"},
        )
        assert r.status_code == 201
        await api.put(
            "/api/v1/assignments",
            json={"scope": "model", "target": "X6", "purpose": "image", "file_name": "x6-2.5.0.z"},
        )
        r = await api.put(
            f"/api/v1/phones/{MAC}/credentials",
            json={"username": "desk-1", "password": "desk-1-secret"},
        )
        assert r.status_code == 200, r.text
    # The phone was given http://acs:7547/prov/$mac.cfg and its provisioning credentials.
    async with httpx.AsyncClient(auth=httpx.DigestAuth("desk-1", "desk-1-secret")) as phone:
        general = await phone.get(acs.cwmp_url + "/prov/F0V00X600000.cfg")
        assert general.status_code == 200
        assert configfile.parse_text(general.content).config["GLOBAL CONFIG MODULE"] == {
            "Time Zone": "32"
        }
        own = await phone.get(acs.cwmp_url + "/prov/" + MAC.replace(":", "").upper() + ".cfg")
        assert own.status_code == 200
        version, config = configfile.parse_text(own.content)
        assert version == "2.0001"
        assert config["SIP CONFIG MODULE"] == {
            "SIP1 Register User": "1001",
            "SIP1 Display Name": "Alice",
        }
        image_url = config["AUTOUPDATE CONFIG MODULE"]["Auto Image Url"]
    # the phone follows the auto-update URL with no credentials at all
    async with httpx.AsyncClient() as anonymous:
        assert (await anonymous.get(image_url)).content == firmware
        assert (await anonymous.get(acs.cwmp_url + "/prov/001565113af8.cfg")).status_code == 401
        assert (await anonymous.get(image_url + "x")).status_code == 403


async def test_tr069_config_and_firmware_downloads_complete_for_real(acs):
    async with httpx.AsyncClient(
        base_url=acs.api_url, auth=("ops", "ops-password"), timeout=30
    ) as api:
        await setup_phone(api)
        await api.put(
            "/api/v1/files/x6-2.6.0.z",
            content=FIRMWARE_MAGIC + b"2.6.0\n",
            params={"file_type": "1 Firmware Upgrade Image", "version": "2.6.0"},
        )
        await api.put(
            "/api/v1/files/x6-bad.z",
            content=FIRMWARE_MAGIC + b"2.4.9\n",
            params={"file_type": "1 Firmware Upgrade Image", "version": "2.7.0"},
        )
        agent = CpeAgent(
            datamodels.phone(MAC), acs.cwmp_url + "/acs", username="acs", password="cpe-secret"
        )
        await agent.start()
        try:
            assert (await agent.session("0 BOOTSTRAP", "1 BOOT")).ok
            r = await api.post(
                f"/api/v1/devices/{PHONE}/tasks",
                json=[
                    {"name": "Download", "config": True},
                    {"name": "Download", "file": "x6-2.6.0.z"},
                ],
            )
            config_id, firmware_id = (t["id"] for t in r.json()["data"])
            report = await agent.session("2 PERIODIC")
            assert report.requests == ["Download", "Download"]
            # the agent fetched both from the ACS for real, with the signed URLs
            [(cfg_url, cfg_status, cfg_head), (fw_url, fw_status, _)] = agent.downloads
            assert "/prov/001565113af8.cfg?t=e." in cfg_url and cfg_status == 200
            assert cfg_head.startswith(b"<<VOIP CONFIG FILE>>Version:2.0001\r\n")
            assert "/files/x6-2.6.0.z?t=e." in fw_url and fw_status == 200
            await agent.run_pending()  # reboot into 2.6.0, report both transfers
            config_task = (await api.get(f"/api/v1/tasks/{config_id}")).json()
            assert config_task["status"] == "done"
            firmware_task = (await api.get(f"/api/v1/tasks/{firmware_id}")).json()
            assert firmware_task["status"] == "done", firmware_task
            assert firmware_task["result"]["software_version"] == "2.6.0"
            device = (await api.get(f"/api/v1/devices/{PHONE}")).json()
            assert device["software_version"] == "2.6.0"
            # an image that does not install what it claims: fault, with the reason
            r = await api.post(
                f"/api/v1/devices/{PHONE}/tasks", json={"name": "Download", "file": "x6-bad.z"}
            )
            bad_id = r.json()["data"][0]["id"]
            await agent.session("2 PERIODIC")
            await agent.run_pending()
            bad = (await api.get(f"/api/v1/tasks/{bad_id}")).json()
            assert bad["status"] == "fault"
            assert bad["fault"]["string"].startswith(
                "after the upgrade the device reports software version '2.4.9', expected '2.7.0'"
            )
        finally:
            await agent.stop()


async def test_ctc_device_binds_its_loid(start_server, tmp_path):
    import os

    server = start_server(mode="ctc")
    add_operator(
        {**os.environ, "ACS_DATA_DIR": str(tmp_path / "data-a")}, "ops", "operator", "ops-password"
    )
    model = datamodels.gateway("48575443A1B2C3D4")
    model.manufacturer, model.oui, model.product_class = "Huawei", "00E0FC", "HG8245C"
    base = "InternetGatewayDevice.X_CT-COM_UserInfo."
    model.set(base + "UserName", "loid-77", writable=True)
    model.set(base + "UserId", "secret", writable=True)
    model.set(base + "Status", 99, "xsd:unsignedInt", writable=True)
    model.set(base + "Result", 99, "xsd:unsignedInt", writable=True)
    device = "00E0FC-HG8245C-48575443A1B2C3D4"
    async with httpx.AsyncClient(base_url=server.api_url, auth=("ops", "ops-password")) as api:
        r = await api.post(
            "/api/v1/work-orders",
            json={
                "loid": "loid-77",
                "password": "secret",
                "tasks": [
                    {
                        "name": "SetParameterValues",
                        "parameter_values": [
                            {
                                "name": "InternetGatewayDevice.Time.NTPServer1",
                                "value": "ntp.ctc.example",
                                "type": "xsd:string",
                            }
                        ],
                    }
                ],
            },
        )
        assert r.status_code == 201, r.text
        agent = CpeAgent(
            model,
            server.cwmp_url + "/acs",
            username="acs",
            password="cpe-secret",
            namespace="urn:dslforum-org:cwmp-1-0",
        )
        await agent.start()
        try:
            first = await agent.session("0 BOOTSTRAP", "1 BOOT")
            assert first.ok and first.requests == ["SetParameterValues"]
            # the bootstrap rotated the ACS credentials: the next session uses the new ones
            assert model.get("InternetGatewayDevice.ManagementServer.Username").startswith("acs-")
            bind = await agent.session("X CT-COM BIND")
            assert bind.ok, bind.error
            assert bind.requests == [
                "GetParameterValues",
                "SetParameterValues",
                "SetParameterValues",
            ]
            assert (model.get(base + "Status"), model.get(base + "Result")) == (0, 1)
            assert model.get("InternetGatewayDevice.Time.NTPServer1") == "ntp.ctc.example"
            orders = (await api.get("/api/v1/work-orders")).json()["data"]
            assert (orders[0]["status"], orders[0]["device_id"]) == ("bound", device)
            informs = (await api.get(f"/api/v1/devices/{device}")).json()["last_events"]
            assert informs == ["X CT-COM BIND"]
        finally:
            await agent.stop()


async def test_rollout_in_waves_stops_on_failures(start_server, tmp_path):
    import os

    server = start_server(scheduler_interval="0.5")
    add_operator(
        {**os.environ, "ACS_DATA_DIR": str(tmp_path / "data-a")}, "ops", "operator", "ops-password"
    )
    agents = [
        CpeAgent(
            datamodels.phone(f"00:15:65:00:00:{i:02x}"),
            server.cwmp_url + "/acs",
            username="acs",
            password="cpe-secret",
            fail_downloads=i >= 2,
        )
        for i in range(6)
    ]
    stop = asyncio.Event()
    serving = []
    try:
        for agent in agents:
            await agent.start()
            assert (await agent.session("0 BOOTSTRAP")).ok
            serving.append(asyncio.create_task(agent.serve(stop)))
        async with httpx.AsyncClient(
            base_url=server.api_url, auth=("ops", "ops-password"), timeout=30
        ) as api:
            await api.put(
                "/api/v1/files/x6.cfg",
                content=b"<<VOIP CONFIG FILE>>Version:2.0001\r\n<<END OF FILE>>\r\n",
                params={"file_type": "3 Vendor Configuration File"},
            )
            r = await api.post(
                "/api/v1/rollouts",
                json={
                    "name": "config push",
                    "filter": {"product_class": "X6"},
                    "task": {"name": "Download", "file": "x6.cfg"},
                    "wave_size": 2,
                    "failure_threshold": 0.5,
                    "connection_request": True,
                },
            )
            assert r.status_code == 201, r.text
            rollout_id = r.json()["id"]
            for _ in range(300):  # bounded: 30 s
                state = (await api.get(f"/api/v1/rollouts/{rollout_id}")).json()
                if state["status"] != "running":
                    break
                await asyncio.sleep(0.1)
            assert state["status"] == "stopped", state
            assert state["reason"] == "wave 2: 2 of 2 failed (100% > 50%)"
            assert [(w["wave"], w["done"], w["failed"]) for w in state["wave_progress"]] == [
                (1, 2, 0),
                (2, 0, 2),
                (3, 0, 0),
            ]
            assert state["progress"] == {"done": 2, "failed": 2, "pending": 2}
            # wave 3 was never sent: its devices got no Download request at all
            asked = [any("Download" in s.requests for s in a.sessions) for a in agents]
            assert asked == [True, True, True, True, False, False]
            assert [len(a.downloads) for a in agents] == [1, 1, 0, 0, 0, 0]
    finally:
        stop.set()
        await asyncio.gather(*serving)
        for agent in agents:
            await agent.stop()
