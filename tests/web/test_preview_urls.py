"""A phone's file previewed through the API carries the URLs the phone would get: the CWMP
listener's (where /files/ is served), not the management listener's."""

from __future__ import annotations

from acs.provisioning import configfile
from tests.web.test_provisioning import MAC, phone_setup, upload


async def test_preview_names_the_cwmp_listener_not_the_api(api):
    await phone_setup(api)
    await upload(api, "x6.z", b"ACS-SIM-FIRMWARE 2.5.0\n", version="2.5.0")
    r = await api.put(
        "/api/v1/assignments",
        json={"scope": "model", "target": "X6", "purpose": "image", "file_name": "x6.z"},
    )
    assert r.status_code == 200, r.text
    preview = await api.get(f"/api/v1/phones/{MAC}/config")  # the API is http://api
    assert preview.status_code == 200, preview.text
    urls = configfile.parse_text(preview.content).config["AUTOUPDATE CONFIG MODULE"]
    assert urls["Auto Image Url"].startswith("http://api:7547/files/x6.z?t=c."), urls
