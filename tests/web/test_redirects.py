"""Redirects (as Yealink RPS / Fanvil FDPS): the API's CRUD with roles and audit, and the
file server's 302, in process on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from acs.services import operators
from tests.web.test_provisioning import MAC, digest_get, phone_setup

NOW = datetime(2020, 1, 1, tzinfo=UTC)


@pytest.fixture
async def admin(runtime, api):
    """The API as an admin (reads the audit log) and a viewer (reads only)."""
    await operators.create_operator(runtime.db, "root", "admin", "root-password", NOW)
    await operators.create_operator(runtime.db, "eve", "viewer", "eve-password", NOW)
    return api


async def test_redirects_crud_roles_and_audit(admin):
    api = admin
    r = await api.put("/api/v1/redirects/00:15:65", json={"url": "http://other.example/prov/"})
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in ("prefix", "url", "created_by")} == {
        "prefix": "001565",
        "url": "http://other.example/prov/",
        "created_by": "ops",
    }
    r = await api.put(f"/api/v1/redirects/{MAC}", json={"url": "https://rps.example/$mac.cfg"})
    assert r.status_code == 200
    listed = (await api.get("/api/v1/redirects")).json()
    assert [(d["prefix"], d["url"]) for d in listed] == [
        ("001565", "http://other.example/prov/"),
        (MAC, "https://rps.example/$mac.cfg"),
    ]
    assert (await api.get("/api/v1/redirects/001565")).json()["url"] == "http://other.example/prov/"
    for prefix, body, status, detail in (
        ("00156g", {"url": "http://x.example/"}, 422, "a MAC or MAC prefix is 1-12 hex digits"),
        ("0015651", {"url": "tftp://x.example/"}, 422, "a redirect is an HTTP 302"),
        ("0015651", {"url": "http:///nohost"}, 422, "no server in the URL"),
    ):
        r = await api.put(f"/api/v1/redirects/{prefix}", json=body)
        assert (r.status_code, detail in r.json()["detail"]) == (status, True), r.text
    viewer = httpx.BasicAuth("eve", "eve-password")
    assert (await api.get("/api/v1/redirects", auth=viewer)).status_code == 200
    r = await api.put("/api/v1/redirects/00", json={"url": "http://x.example/"}, auth=viewer)
    assert r.status_code == 403
    assert (await api.delete("/api/v1/redirects/001565")).status_code == 204
    assert (await api.delete("/api/v1/redirects/001565")).status_code == 404
    assert (await api.get("/api/v1/redirects/001565")).status_code == 404
    audited = (await api.get("/api/v1/audit", auth=("root", "root-password"))).json()["data"]
    assert [(e["method"], e["status"], e["detail"]) for e in reversed(audited)][:3] == [
        ("PUT", 200, {"redirect": "00:15:65", "url": "http://other.example/prov/"}),
        ("PUT", 200, {"redirect": MAC, "url": "https://rps.example/$mac.cfg"}),
        ("PUT", 422, {"redirect": "00156g", "url": "http://x.example/"}),
    ]


async def test_a_redirected_phone_gets_a_302_the_longest_prefix_winning(admin, cpe):
    api = admin
    await phone_setup(api)
    r = await api.put(f"/api/v1/phones/{MAC}/credentials", json={"username": "d1", "password": "p"})
    assert r.status_code == 200
    await api.put("/api/v1/redirects/001565", json={"url": "http://other.example/prov/"})
    # no credentials here (a phone sent elsewhere has none): the 302 comes before the 401
    for path, location in (
        (f"/prov/{MAC}.cfg", f"http://other.example/prov/{MAC}.cfg"),
        (f"/prov/X6/{MAC.upper()}.xml", f"http://other.example/prov/{MAC.upper()}.xml"),
        ("/prov/0015651199ff.cfg", "http://other.example/prov/0015651199ff.cfg"),
    ):
        r = await cpe.get(path)
        assert (r.status_code, r.headers.get("location")) == (302, location), path
    assert (await cpe.get("/prov/aabbccddeeff.cfg")).status_code == 401  # not redirected
    assert (await cpe.get("/prov/F0V00X600000.cfg")).status_code == 401  # no phone named
    # the phone's own credentials on its general file: it is the phone, so it goes too
    r = await digest_get(cpe, "/prov/F0V00X600000.cfg", user=("d1", "p"))
    assert (r.status_code, r.headers["location"]) == (
        302,
        "http://other.example/prov/F0V00X600000.cfg",
    )
    await api.put(f"/api/v1/redirects/{MAC}", json={"url": "https://rps.example/$mac/boot.cfg"})
    r = await cpe.get(f"/prov/{MAC}.cfg")
    assert r.headers["location"] == f"https://rps.example/{MAC}/boot.cfg"
    await api.delete(f"/api/v1/redirects/{MAC}")
    await api.delete("/api/v1/redirects/001565")
    r = await digest_get(cpe, f"/prov/{MAC}.cfg", user=("d1", "p"))
    assert r.status_code == 200
