"""Operators drive real CPEs through `acs serve`: REST API in, CWMP out, all on sockets.

The CPE is the simulator's agent: it listens for connection requests on 127.0.0.1 with
Digest auth (credentials the ACS itself provisioned), runs sessions over HTTP, fetches
files for real.
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator

import httpx
import pytest

from acs.simulator import datamodels
from acs.simulator.agent import CpeAgent
from tests.e2e.conftest import add_operator

DEVICE = "00D09E-IGD-SN0001"


@pytest.fixture
def file_server(tmp_path) -> Iterator[str]:
    """A plain HTTP file server on 127.0.0.1 (the ACS's own arrives with provisioning)."""
    root = tmp_path / "files"
    root.mkdir()
    (root / "config.cfg").write_bytes(b"<<VOIP CONFIG FILE>>Version:2.0001\r\n<<END OF FILE>>\r\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


async def bootstrapped_agent(acs) -> CpeAgent:
    agent = CpeAgent(
        datamodels.gateway("SN0001"), acs.cwmp_url + "/acs", username="acs", password="cpe-secret"
    )
    await agent.start()
    report = await agent.session("0 BOOTSTRAP", "1 BOOT")
    assert report.ok, report.error
    # the ACS provisioned CR credentials, then the device's own CWMP credentials
    assert report.requests == ["SetParameterValues", "SetParameterValues"]
    return agent


async def test_task_with_connection_request_and_wait_comes_back_done(acs):
    agent = await bootstrapped_agent(acs)
    stop = asyncio.Event()
    serving = asyncio.create_task(agent.serve(stop))
    try:
        async with httpx.AsyncClient(
            base_url=acs.api_url, auth=("ops", "ops-password"), timeout=30
        ) as api:
            r = await api.post(
                f"/api/v1/devices/{DEVICE}/tasks",
                params={"connection_request": "true", "wait": "10"},
                json={
                    "name": "GetParameterValues",
                    "parameter_names": ["InternetGatewayDevice.DeviceInfo.SoftwareVersion"],
                },
            )
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["connection_request"]["ok"] is True
            assert body["connection_request"]["status_code"] == 200
            [task] = body["data"]
            assert task["status"] == "done"
            assert task["result"]["parameter_list"] == [
                {
                    "name": "InternetGatewayDevice.DeviceInfo.SoftwareVersion",
                    "value": "1.0.0",
                    "type": "xsd:string",
                }
            ]
            device = (await api.get(f"/api/v1/devices/{DEVICE}")).json()
            assert device["connection_request"]["ok"] is True
            assert agent.connection_requests == 1
    finally:
        stop.set()
        await serving
        await agent.stop()


async def test_readme_set_parameter_values_without_a_type_is_done(acs):
    # the README's example: the device never reported PeriodicInformInterval's type
    agent = await bootstrapped_agent(acs)
    name = "InternetGatewayDevice.ManagementServer.PeriodicInformInterval"
    stop = asyncio.Event()
    serving = asyncio.create_task(agent.serve(stop))
    try:
        async with httpx.AsyncClient(
            base_url=acs.api_url, auth=("ops", "ops-password"), timeout=30
        ) as api:
            r = await api.post(
                f"/api/v1/devices/{DEVICE}/tasks",
                params={"connection_request": "true", "wait": "10"},
                json=[
                    {
                        "name": "SetParameterValues",
                        "parameter_values": [{"name": name, "value": 600}],
                    }
                ],
            )
            assert r.status_code == 200, r.text
            [task] = r.json()["data"]
            assert task["arguments"]["parameter_values"] == [
                {"name": name, "value": 600, "type": "xsd:unsignedInt"}
            ]
            assert (task["status"], task["fault"]) == ("done", None)
            assert agent.model.get(name) == 600
    finally:
        stop.set()
        await serving
        await agent.stop()


async def test_download_completes_only_after_transfer_complete_in_a_later_session(acs, file_server):
    agent = await bootstrapped_agent(acs)
    try:
        async with httpx.AsyncClient(
            base_url=acs.api_url, auth=("ops", "ops-password"), timeout=30
        ) as api:
            r = await api.post(
                f"/api/v1/devices/{DEVICE}/tasks",
                json={
                    "name": "Download",
                    "file_type": "3 Vendor Configuration File",
                    "url": file_server + "/config.cfg",
                    "target_file_name": "config.cfg",
                },
            )
            task_id = r.json()["data"][0]["id"]
            report = await agent.session("2 PERIODIC")
            assert report.requests == ["Download"]
            task = (await api.get(f"/api/v1/tasks/{task_id}")).json()
            assert task["status"] == "awaiting_transfer"
            # the agent fetched the file for real after the session
            [(url, status, head)] = agent.downloads
            assert (url, status) == (file_server + "/config.cfg", 200)
            assert head.startswith(b"<<VOIP CONFIG FILE>>")
            reports = await agent.run_pending()
            assert [r.ok for r in reports] == [True]
            task = (await api.get(f"/api/v1/tasks/{task_id}")).json()
            assert task["status"] == "done"
            assert task["result"]["transfer"]["complete_time"] is not None
    finally:
        await agent.stop()


async def test_failed_download_and_cpe_fault_land_in_faults(acs):
    agent = await bootstrapped_agent(acs)
    agent.fail_downloads = True
    try:
        async with httpx.AsyncClient(
            base_url=acs.api_url, auth=("ops", "ops-password"), timeout=30
        ) as api:
            r = await api.post(
                f"/api/v1/devices/{DEVICE}/tasks",
                json=[
                    {
                        "name": "GetParameterValues",
                        "parameter_names": ["InternetGatewayDevice.Nope"],
                    },
                    {
                        "name": "Download",
                        "file_type": "1 Firmware Upgrade Image",
                        "url": "http://127.0.0.1:9/fw.bin",
                    },
                ],
            )
            gpv_id, download_id = (t["id"] for t in r.json()["data"])
            await agent.session("2 PERIODIC")
            await agent.run_pending()
            gpv = (await api.get(f"/api/v1/tasks/{gpv_id}")).json()
            assert (gpv["status"], gpv["fault"]["code"]) == ("fault", 9005)
            download = (await api.get(f"/api/v1/tasks/{download_id}")).json()
            assert download["status"] == "fault"
            assert download["fault"] == {"code": 9010, "string": "simulated download failure"}
            faults = (await api.get("/api/v1/faults", params={"device_id": DEVICE})).json()
            assert sorted(f["code"] for f in faults["data"]) == [9005, 9010]
    finally:
        await agent.stop()


async def test_auth_roles_and_malformed_bodies_over_http(acs):
    async with httpx.AsyncClient(base_url=acs.api_url, timeout=30) as api:
        url = f"/api/v1/devices/{DEVICE}/tasks"
        assert (await api.post(url, json={"name": "Reboot"})).status_code == 401
        r = await api.post(url, json={"name": "Reboot"}, auth=("eve", "eve-password"))
        assert r.status_code == 403
        r = await api.post(url, json={"name": "Reboot"}, auth=("ops", "wrong-password"))
        assert r.status_code == 401
        r = await api.post(url, json={"name": "GetParameterValues"}, auth=("ops", "ops-password"))
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"][-1] == "parameter_names"
        token = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "acs.cli", "token", "create", "eve"],
            env=acs.cli_env,
            capture_output=True,
            timeout=60,
        )
        assert token.returncode == 0, token.stderr
        bearer = {"authorization": "Bearer " + token.stdout.decode().strip()}
        assert (await api.get("/api/v1/devices", headers=bearer)).status_code == 200
        assert (await api.get("/metrics", headers=bearer)).status_code == 200


async def test_task_queued_on_one_node_runs_in_a_session_on_the_other(start_server, pg_url):
    import os

    a = start_server("a", database_url=pg_url)
    b = start_server("b", database_url=pg_url)
    env = {**os.environ, "ACS_DATABASE_URL": pg_url}
    add_operator(env, "ops", "operator", "ops-password")
    agent = CpeAgent(
        datamodels.gateway("SN0001"), b.cwmp_url + "/acs", username="acs", password="cpe-secret"
    )
    await agent.start()
    try:
        assert (await agent.session("0 BOOTSTRAP")).ok
        async with httpx.AsyncClient(
            base_url=a.api_url, auth=("ops", "ops-password"), timeout=30
        ) as api:
            r = await api.post(f"/api/v1/devices/{DEVICE}/tasks", json={"name": "GetRPCMethods"})
            task_id = r.json()["data"][0]["id"]
            report = await agent.session("2 PERIODIC")  # against node B
            assert report.requests == ["GetRPCMethods"]
            task = (await api.get(f"/api/v1/tasks/{task_id}")).json()  # seen from node A
            assert task["status"] == "done"
            assert "Download" in task["result"]["method_list"]
    finally:
        await agent.stop()
