"""File store, file server and phone configuration files, in process, on both databases."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from acs.provisioning import configfile, crypto
from acs.services import operators
from acs.web.api_app import create_api_app
from acs.web.cwmp_app import create_cwmp_app
from tests.conftest import make_settings
from tests.cpe_auth_client import digest_header

NOW = datetime(2020, 1, 1, tzinfo=UTC)
MAC = "001565113af8"
KEY = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"


@pytest.fixture
def settings(database_url, tmp_path):
    """These tests fetch phones' MAC files with the shared pair (who may fetch what:
    test_provisioning_auth.py)."""
    return make_settings(database_url, tmp_path, provisioning_shared_reads_all=True)


async def digest_get(
    client: httpx.AsyncClient, path: str, user: tuple[str, str] = ("acs", "cpe-secret"), **kwargs
) -> httpx.Response:
    """GET answering the file server's Digest challenge (the shared CPE credentials unless
    ``user`` says otherwise)."""
    first = await client.get(path, **kwargs)
    assert first.status_code == 401
    challenge = first.headers["www-authenticate"]
    auth = digest_header(challenge, *user, method="GET", uri=path.split("?")[0])
    headers = {**kwargs.pop("headers", {}), "authorization": auth}
    return await client.get(path, headers=headers, **kwargs)


async def upload(api, name: str, content: bytes, **params) -> httpx.Response:
    params.setdefault("file_type", "1 Firmware Upgrade Image")
    return await api.put(f"/api/v1/files/{name}", content=content, params=params)


async def test_upload_list_replace_delete(api, runtime):
    firmware = b"ACS-SIM-FIRMWARE 2.5.0\n" + bytes(range(256)) * 100
    r = await upload(api, "x6-2.5.0.z", firmware, version="2.5.0", product_class="X6")
    assert r.status_code == 201, r.text
    meta = r.json()
    assert (meta["sha256"], meta["size"], meta["version"]) == (
        hashlib.sha256(firmware).hexdigest(),
        len(firmware),
        "2.5.0",
    )
    blob = runtime.files.blob_path(meta["sha256"])
    assert blob.read_bytes() == firmware
    # the same bytes under another name are stored once
    assert (await upload(api, "copy.z", firmware)).json()["sha256"] == meta["sha256"]
    listing = (await api.get("/api/v1/files", params={"product_class": "X6"})).json()
    assert [f["name"] for f in listing["data"]] == ["x6-2.5.0.z"]
    # replacing the content of one name keeps the blob while the other name uses it
    await upload(api, "copy.z", b"other")
    assert blob.exists()
    await api.delete("/api/v1/files/x6-2.5.0.z")
    assert not blob.exists()
    assert (await api.get("/api/v1/files/x6-2.5.0.z")).status_code == 404
    content = await api.get("/api/v1/files/copy.z/content")
    assert content.content == b"other"


@pytest.mark.parametrize(
    ("name", "params", "status", "message"),
    [
        ("../etc/passwd", {}, 404, ""),
        (".hidden", {}, 422, "file names are"),
        ("book.txt", {"file_type": "phonebook"}, 422, "phonebook file ends with"),
        ("x.bin", {"file_type": "7 Unknown"}, 422, "file_type must be one of"),
    ],
)
async def test_bad_uploads(api, runtime, name, params, status, message):
    r = await upload(api, name, b"data", **params)
    assert r.status_code == status
    assert message in r.text
    assert (await api.get("/api/v1/files")).json()["count"] == 0


async def test_oversize_upload_is_refused_and_leaves_nothing(make_runtime, tmp_path):
    rt = await make_runtime(max_file_bytes=1024)
    await operators.create_operator(rt.db, "ops", "operator", "ops-password", NOW)
    transport = httpx.ASGITransport(app=create_api_app(rt))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://api", auth=("ops", "ops-password")
    ) as api:
        r = await upload(api, "big.bin", b"x" * 5000)
        assert (r.status_code, r.json()["detail"]) == (413, "file exceeds 1024 bytes")
        assert (await api.get("/api/v1/files")).json()["count"] == 0
    leftovers = [p for p in (tmp_path / "data" / "files").rglob("*") if p.is_file()]
    assert leftovers == []


async def test_file_server_auth_range_etag_and_tokens(api, cpe, runtime):
    body = bytes(range(256)) * 40
    sha = (await upload(api, "fw.bin", body)).json()["sha256"]
    r = await cpe.get("/files/fw.bin")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith('Digest realm="acs"')
    r = await digest_get(cpe, "/files/fw.bin")
    assert (r.status_code, r.content, r.headers["etag"]) == (200, body, f'"{sha}"')
    r = await digest_get(cpe, "/files/fw.bin", headers={"range": "bytes=10-19"})
    assert (r.status_code, r.content) == (206, body[10:20])
    assert r.headers["content-range"] == f"bytes 10-19/{len(body)}"
    r = await digest_get(cpe, "/files/fw.bin", headers={"if-none-match": f'"{sha}"'})
    assert (r.status_code, r.content) == (304, b"")
    head = await cpe.head(
        "/files/fw.bin?t=" + runtime.files.expiring_token("/files/fw.bin", int(time.time()) + 60)
    )
    assert (head.status_code, head.content, head.headers["content-length"]) == (
        200,
        b"",
        str(len(body)),
    )
    # tokens: expired, forged, for another file -> 403, and no hint whether it exists
    expired = runtime.files.expiring_token("/files/fw.bin", int(time.time()) - 1)
    other = runtime.files.expiring_token("/files/other.bin", int(time.time()) + 60)
    for token in (expired, "e.9999999999.forged", other, "garbage"):
        r = await cpe.get("/files/fw.bin", params={"t": token})
        assert (r.status_code, r.text) == (403, "forbidden\n")
    r = await cpe.get("/files/missing.bin", params={"t": other})
    assert (r.status_code, r.text) == (403, "forbidden\n")
    good = runtime.files.content_token("/files/fw.bin", sha)
    assert (await cpe.get("/files/fw.bin", params={"t": good})).content == body
    # with credentials, a missing file is simply missing
    assert (await digest_get(cpe, "/files/missing.bin")).status_code == 404


async def phone_setup(api, *, model: str = "X6", keys: dict | None = None) -> None:
    r = await api.put(
        f"/api/v1/profiles/general/{model}",
        json={
            "modules": {"GLOBAL CONFIG MODULE": {"Time Zone": "32", "Host Name": "{{model}}"}},
            **(keys or {}),
        },
    )
    assert r.status_code == 200, r.text
    r = await api.put(
        "/api/v1/profiles/named/sales",
        json={
            "modules": {
                "SIP CONFIG MODULE": {
                    "SIP1 Register Addr": "sip.example.com",
                    "SIP1 Display Name": "{{display}}",
                }
            },
        },
    )
    assert r.status_code == 200, r.text
    r = await api.put(
        f"/api/v1/phones/{MAC.upper()}",
        json={
            "model": model,
            "profile": "sales",
            "input_id": "desk42",
            "variables": {"display": "Alice", "user": "1001"},
            "modules": {"SIP CONFIG MODULE": {"SIP1 Register User": "{{user}}"}},
        },
    )
    assert r.status_code == 200, r.text


EXPECTED_MAC_FILE = (
    b"<<VOIP CONFIG FILE>>Version:2.0001\r\n"
    b"\r\n"
    b"<GLOBAL CONFIG MODULE>\r\n"
    b"Time Zone :32\r\n"
    b"Host Name :X6\r\n"
    b"\r\n"
    b"<SIP CONFIG MODULE>\r\n"
    b"SIP1 Register Addr :sip.example.com\r\n"
    b"SIP1 Display Name :Alice\r\n"
    b"SIP1 Register User :1001\r\n"
    b"\r\n"
    b"<<END OF FILE>>\r\n"
)


async def test_strict_digest_refuses_a_replayed_fetch(make_runtime):
    """ACS_CWMP_DIGEST_STRICT holds on the file server too: a request whose nonce count was
    seen before is challenged again, a higher count is served."""
    rt = await make_runtime(provisioning_shared_reads_all=True, cwmp_digest_strict=True)

    async def chunks() -> AsyncIterator[bytes]:
        yield b"firmware"

    await rt.files.store(
        "fw.bin",
        chunks(),
        file_type="1 Firmware Upgrade Image",
        oui=None,
        product_class=None,
        version=None,
        created_by="test",
        now=NOW,
    )
    transport = httpx.ASGITransport(app=create_cwmp_app(rt))
    async with httpx.AsyncClient(transport=transport, base_url="http://acs.example:7547") as c:
        challenge = (await c.get("/files/fw.bin")).headers["www-authenticate"]

        def auth(nc: int) -> dict[str, str]:
            header = digest_header(
                challenge, "acs", "cpe-secret", method="GET", uri="/files/fw.bin", nc=nc
            )
            return {"authorization": header}

        assert (await c.get("/files/fw.bin", headers=auth(1))).content == b"firmware"
        replayed = await c.get("/files/fw.bin", headers=auth(1))
        assert (replayed.status_code, replayed.text) == (401, "authentication required\n")
        assert (await c.get("/files/fw.bin", headers=auth(2))).content == b"firmware"


async def test_static_provisioning_names_layers_and_versions(api, cpe):
    await phone_setup(api)
    for path in (
        f"/prov/{MAC}.cfg",
        f"/prov/X6/{MAC.upper()}.cfg",
        f"/prov/mac.cfg?mac={MAC}.cfg",
        "/prov/desk42.cfg",
    ):
        r = await digest_get(cpe, path)
        assert r.status_code == 200, (path, r.text)
        assert r.content == EXPECTED_MAC_FILE, path
    xml = await digest_get(cpe, f"/prov/{MAC}.xml")
    assert configfile.parse_xml(xml.content) == (
        "2.0001",
        configfile.parse_text(EXPECTED_MAC_FILE).config,
    )
    general = await digest_get(cpe, "/prov/F0V00X600000.cfg")
    assert general.content == (
        b"<<VOIP CONFIG FILE>>Version:2.0001\r\n\r\n<GLOBAL CONFIG MODULE>\r\n"
        b"Time Zone :32\r\nHost Name :X6\r\n\r\n<<END OF FILE>>\r\n"
    )
    # the version stays while the content does, and moves when it changes
    assert (await digest_get(cpe, f"/prov/{MAC}.cfg")).content == EXPECTED_MAC_FILE
    await api.put(
        f"/api/v1/phones/{MAC}",
        json={
            "model": "X6",
            "profile": "sales",
            "input_id": "desk42",
            "variables": {"display": "Bob", "user": "1001"},
            "modules": {"SIP CONFIG MODULE": {"SIP1 Register User": "{{user}}"}},
        },
    )
    changed = await digest_get(cpe, f"/prov/{MAC}.cfg")
    assert changed.content.startswith(b"<<VOIP CONFIG FILE>>Version:2.0002\r\n")
    assert b"SIP1 Display Name :Bob\r\n" in changed.content
    assert changed.headers["x-config-version"] == "2.0002"
    assert (await digest_get(cpe, "/prov/f0X4hw1.100.cfg")).status_code == 404  # no X4 profile
    assert (await digest_get(cpe, "/prov/0015651199ff.cfg")).status_code == 404
    # one namespace with the stored files: any extension may name one, none does here
    missing = await digest_get(cpe, "/prov/x.exe")
    assert (missing.status_code, missing.text) == (404, "no file 'x.exe'\n")


async def test_missing_variables_are_a_clear_error(api, cpe):
    await phone_setup(api)
    await api.put(f"/api/v1/phones/{MAC}", json={"model": "X6", "profile": "sales"})
    r = await digest_get(cpe, f"/prov/{MAC}.cfg")
    assert (r.status_code, r.text) == (422, "missing variables: display\n")


async def test_a_named_profile_with_placeholders_asked_by_its_name_says_why(api, cpe, caplog):
    await phone_setup(api)  # the named profile "sales" has {{display}}
    with caplog.at_level("INFO", logger="acs.files"):
        r = await digest_get(cpe, "/prov/sales.cfg")
    message = (
        "the named profile 'sales' has placeholders ({{display}}) that only a phone fills: a "
        "phone fetches it through its MAC file or its $input id, not by the profile's name"
    )
    assert (r.status_code, r.text) == (422, message + "\n")
    assert f"provisioning /prov/sales.cfg: {message}" in caplog.messages
    line = next(r for r in caplog.records if r.getMessage() == "file transfer")
    assert (line.fields["status"], line.fields["reason"]) == (422, message)


async def test_assignments_the_phones_would_ignore_are_refused_naming_the_rule(api):
    await phone_setup(api)
    for name, kind in (
        ("background.bmp", "background"),
        ("logo.bmp", "background"),
        ("accessList.csv", "accesslist"),
        ("dialPeer.csv", "dialpeer"),
        ("rules.csv", "dialpeer"),
        ("mmiset6.z", "mmiset"),
    ):
        assert (await upload(api, name, b"x", file_type=kind)).status_code == 201
    refused = [
        ("model", "X6", "alist", "accessList.csv", "access table only on access-control models"),
        ("phone", MAC, "alist", "accessList.csv", "access table only on access-control models"),
        ("model", "F600", "logo", "background.bmp", "no logo and no mmiset on Android models"),
        ("model", "C600", "mmiset", "mmiset6.z", "no logo and no mmiset on Android models"),
        ("model", "X6", "logo", "logo.bmp", "fixed name of the logo file"),
        ("model", "X6", "dpeer", "rules.csv", "fixed name of the dpeer file"),
    ]
    for scope, target, purpose, file_name, rule in refused:
        body = {"scope": scope, "target": target, "purpose": purpose, "file_name": file_name}
        r = await api.put("/api/v1/assignments", json=body)
        assert (r.status_code, r.json()["detail"].startswith(rule + ": ")) == (422, True), r.text
    r = await api.put(
        "/api/v1/assignments",
        json={"scope": "phone", "target": MAC, "purpose": "alist", "file_name": "accessList.csv"},
    )
    assert r.json()["detail"] == (
        "access table only on access-control models: 001565113af8 (model X6) is not one of "
        "i20S, i30, i23S, i31S, I32V, I33V (section 4.4 item 7)"
    )
    for scope, target, purpose, file_name in (
        ("model", "i30", "alist", "accessList.csv"),
        ("model", "X6", "logo", "background.bmp"),
        ("model", "F600", "dpeer", "dialPeer.csv"),
    ):
        body = {"scope": scope, "target": target, "purpose": purpose, "file_name": file_name}
        assert (await api.put("/api/v1/assignments", json=body)).status_code in (200, 204)
    assert len((await api.get("/api/v1/assignments")).json()) == 3


async def test_encrypted_files_use_the_right_key(api, cpe, runtime):
    other = "ff" * 32
    await phone_setup(api, model="X4", keys={"config_key": KEY, "common_key": other})
    general = await digest_get(cpe, "/prov/f0X4hw1.100.cfg")
    plain = crypto.decrypt(general.content, KEY, "ecb")
    assert plain.startswith(b"<<VOIP CONFIG FILE>>Version:2.0001\r\n")
    mac_file = await digest_get(cpe, f"/prov/{MAC}.cfg")
    assert crypto.decrypt(mac_file.content, other, "ecb").endswith(b"<<END OF FILE>>\r\n")
    with pytest.raises(crypto.ProvisioningError):
        crypto.decrypt(mac_file.content, KEY, "ecb")
    r = await api.put("/api/v1/profiles/general/X4", json={"config_key": "not-hex"})
    assert r.status_code == 422


async def test_autoupdate_urls_point_at_the_file_server(api, cpe, runtime):
    await phone_setup(api)
    firmware = b"ACS-SIM-FIRMWARE 2.5.0\n"
    await upload(api, "x6.z", firmware, version="2.5.0")
    await upload(api, "book.xml", b"<PhoneBook/>", file_type="phonebook")
    assert (
        await api.put(
            "/api/v1/assignments",
            json={"scope": "model", "target": "X6", "purpose": "image", "file_name": "x6.z"},
        )
    ).status_code == 200
    assert (
        await api.put(
            "/api/v1/assignments",
            json={"scope": "phone", "target": MAC, "purpose": "pbook", "file_name": "book.xml"},
        )
    ).status_code == 200
    r = await api.put(
        "/api/v1/assignments",
        json={"scope": "phone", "target": MAC, "purpose": "pbook", "file_name": "x6.z"},
    )
    assert r.status_code == 422 and "pbook takes a phonebook file" in r.text
    config = configfile.parse_text((await digest_get(cpe, f"/prov/{MAC}.cfg")).content).config
    urls = config["AUTOUPDATE CONFIG MODULE"]
    assert list(urls) == ["Auto Image Url", "Auto Pbook Url"]
    assert urls["Auto Image Url"].startswith("http://acs.example:7547/files/x6.z?t=c.")
    # phones fetch them with no credentials: the URL is signed
    image = await cpe.get(urls["Auto Image Url"].removeprefix("http://acs.example:7547"))
    assert image.content == firmware
    version = (await digest_get(cpe, f"/prov/{MAC}.cfg")).headers["x-config-version"]
    assert version == "2.0001"
    # new firmware content: the signed URL changes, so does the configuration's version
    await upload(api, "x6.z", b"ACS-SIM-FIRMWARE 2.6.0\n", version="2.6.0")
    assert (await digest_get(cpe, f"/prov/{MAC}.cfg")).headers["x-config-version"] == "2.0002"
    assert (
        await cpe.get(urls["Auto Image Url"].removeprefix("http://acs.example:7547"))
    ).status_code == 403


async def test_phone_credentials_through_the_api_and_the_csv_import(api, runtime):
    await phone_setup(api)
    path = f"/api/v1/phones/{MAC.upper()}/credentials"
    r = await api.put(path, json={"username": "desk-1", "password": "s3cret"})
    assert (r.status_code, r.json()["prov_username"]) == (200, "desk-1")
    assert "s3cret" not in r.text
    assert await runtime.provisioning_files.login("desk-1", "s3cret") is not None
    for body, message in (
        ({"username": "acs", "password": "x"}, "the shared pair's"),
        ({"username": "a b", "password": "x"}, "no ':' and no space"),
        ({"username": "desk-2", "password": ""}, "prov_password: 1-128 characters"),
    ):
        r = await api.put(path, json=body)
        assert (r.status_code, message in r.text) == (422, True), r.text
    r = await api.put(
        "/api/v1/phones/aabbccddeeff/credentials", json={"username": "x", "password": "y"}
    )
    assert r.status_code == 404
    assert (await api.delete(path)).status_code == 204
    assert (await api.get(f"/api/v1/phones/{MAC}")).json()["prov_username"] is None
    assert await runtime.provisioning_files.login("desk-1", "s3cret") is None
    csv = (
        "mac,model,prov_username,prov_password,user\r\n"
        f"{MAC},X6,desk-1,pw-1,1003\r\n"
        "0015651199ff,X6,desk-2,pw-2,1004\r\n"
    )
    r = await api.post("/api/v1/phones/import", content=csv, headers={"content-type": "text/csv"})
    assert r.json() == {"imported": 2}
    phone = (await api.get("/api/v1/phones/0015651199ff")).json()
    assert (phone["prov_username"], phone["variables"]) == ("desk-2", {"user": "1004"})
    assert await runtime.provisioning_files.login("desk-2", "pw-2") is not None
    for line, message in (
        ("0015651199aa,X6,desk-1,pw,1\r\n", "belongs to another phone"),
        ("0015651199aa,X6,desk-3,,1\r\n", "line 2: prov_password: 1-128 characters"),
    ):
        r = await api.post(
            "/api/v1/phones/import",
            content="mac,model,prov_username,prov_password,user\r\n" + line,
            headers={"content-type": "text/csv"},
        )
        assert (r.status_code, message in r.text) == (422, True), r.text


async def test_csv_import_of_variables(api, cpe):
    await phone_setup(api)
    csv = (
        "mac,model,profile,display,user\r\n"
        "00:15:65:11:3A:F8,X6,sales,Carol,1003\r\n"
        "0015651199ff,X6,sales,Dave,1004\r\n"
    )
    r = await api.post("/api/v1/phones/import", content=csv, headers={"content-type": "text/csv"})
    assert r.json() == {"imported": 2}
    phone = (await api.get("/api/v1/phones/0015651199FF")).json()
    assert phone["variables"] == {"display": "Dave", "user": "1004"}
    kept = (await api.get(f"/api/v1/phones/{MAC}")).json()
    assert kept["input_id"] == "desk42"  # columns not in the CSV are kept
    assert kept["variables"] == {"display": "Carol", "user": "1003"}
    r = await api.post(
        "/api/v1/phones/import",
        content="mac,user\r\nnot-a-mac,1\r\n",
        headers={"content-type": "text/csv"},
    )
    assert r.status_code == 422 and "line 2" in r.text
    assert (await api.get("/api/v1/phones")).json()["count"] == 2


async def test_profile_and_phone_validation(api):
    assert (await api.put("/api/v1/profiles/general/X99", json={"modules": {}})).status_code == 422
    r = await api.put(
        "/api/v1/profiles/named/x", json={"modules": {"GLOBAL CONFIG MODULE": {"Bad:Key": "1"}}}
    )
    assert r.status_code == 422
    r = await api.put(
        "/api/v1/profiles/named/x",
        json={"modules": {"GLOBAL CONFIG MODULE": {"Key": "line\nbreak"}}},
    )
    assert r.status_code == 422
    assert (await api.put("/api/v1/phones/zz", json={})).status_code == 422
    await api.put("/api/v1/phones/001565113af8", json={"input_id": "same"})
    r = await api.put("/api/v1/phones/0015651199ff", json={"input_id": "same"})
    assert (r.status_code, r.json()["detail"]) == (422, "input_id 'same' belongs to another phone")


def acs_cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "acs.cli", *args], capture_output=True, timeout=60, check=False
    )


async def test_encrypted_file_round_trips_through_the_cli(api, cpe, tmp_path):
    await phone_setup(api, keys={"common_key": KEY})
    encrypted = (await digest_get(cpe, f"/prov/{MAC}.cfg")).content
    assert not encrypted.startswith(b"<<VOIP")
    source, target = tmp_path / "enc.cfg", tmp_path / "plain.cfg"
    source.write_bytes(encrypted)
    run = acs_cli("config", "decrypt", "--key", KEY, str(source), str(target))
    assert run.returncode == 0, run.stderr
    assert target.read_bytes() == EXPECTED_MAC_FILE
    wrong = acs_cli("config", "decrypt", "--key", "ab" * 32, str(source), "-")
    assert wrong.returncode == 1
    assert wrong.stderr.startswith(b"cannot decrypt:")
    again = acs_cli("config", "encrypt", "--key", KEY, str(target), "-")
    assert again.stdout == encrypted  # ECB is deterministic: the same bytes as served
