"""The one namespace of provisioning files: what a name means, on both databases."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, select

from acs.db import tables
from acs.provisioning.errors import MissingVariablesError, ProvisioningError
from acs.services import renderings
from acs.services.provisioning import NotFound
from acs.services.provisioning_files import (
    OPEN,
    SHARED,
    SIGNED,
    BadName,
    ContentUnavailable,
    NoSuchFile,
    NotYours,
    Requester,
    may_read,
    split_path,
)
from tests.services.harness import counted, rows

NOW = datetime(2026, 12, 1, tzinfo=UTC)
MAC = "001565113af8"
OTHER = "0015651199ff"
BASE = "http://acs.example:7547"


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def store(runtime, name: str, content: bytes, file_type: str) -> None:
    await runtime.files.store(
        name,
        _chunks(content),
        file_type=file_type,
        oui=None,
        product_class=None,
        version=None,
        created_by=None,
        now=NOW,
    )


@pytest.fixture
async def phones(runtime):
    prov = runtime.provisioning
    await prov.put_profile(
        "general",
        "X6",
        modules={"GLOBAL CONFIG MODULE": {"Time Zone": "32"}},
        config_key=None,
        common_key=None,
        mode=None,
        now=NOW,
    )
    for mac, input_id, user in ((MAC, "desk42", "1001"), (OTHER, "desk43", "1002")):
        await prov.put_phone(
            mac,
            model="X6",
            profile=None,
            input_id=input_id,
            variables={"user": user},
            modules={"SIP CONFIG MODULE": {"SIP1 Register User": "{{user}}"}},
            mode=None,
            now=NOW,
        )
    await store(runtime, "x6-2.5.0.z", b"firmware", "1 Firmware Upgrade Image")
    await store(runtime, "500.csv", b"name,number\r\n", "phonebook")
    return runtime.provisioning_files


async def test_every_kind_of_name_resolves(phones):
    opened = await phones.open("F0V00X600000.cfg", base_url=BASE, now=NOW, requester=OPEN)
    assert (opened.name, opened.version, opened.mac, opened.stored) == (
        "F0V00X600000.cfg",
        "2.0001",
        None,
        False,
    )
    assert opened.content is not None and b"Time Zone :32\r\n" in opened.content
    for path in (f"{MAC}.cfg", f"/X6/{MAC.upper()}.CFG", f"{MAC}.txt", "desk42.cfg"):
        opened = await phones.open(path, base_url=BASE, now=NOW, requester=OPEN)
        assert (opened.name, opened.mac, opened.content_type) == (
            f"{MAC}.cfg",
            MAC,
            "text/plain; charset=utf-8",
        ), path
        assert opened.content is not None and b"SIP1 Register User :1001\r\n" in opened.content
        assert opened.size == len(opened.content)
    xml = await phones.open(f"{MAC}.xml", base_url=BASE, now=NOW, requester=OPEN)
    assert (xml.name, xml.content_type) == (f"{MAC}.xml", "application/xml")
    by_query = await phones.open(
        "mac.cfg", query=f"mac={OTHER}.cfg", base_url=BASE, now=NOW, requester=OPEN
    )
    assert (by_query.name, by_query.mac) == (f"{OTHER}.cfg", OTHER)
    firmware = await phones.open("/any/dir/x6-2.5.0.z", base_url=BASE, now=NOW, requester=OPEN)
    assert (firmware.name, firmware.size, firmware.stored, firmware.content) == (
        "x6-2.5.0.z",
        8,
        True,
        None,
    )
    assert firmware.path is not None and firmware.path.read_bytes() == b"firmware"
    assert firmware.etag == firmware.sha256 == hashlib.sha256(b"firmware").hexdigest()


async def test_a_stored_file_wins_over_the_rendering_of_its_name(runtime, phones):
    uploaded = b"<<VOIP CONFIG FILE>>uploaded\r\n"
    await store(runtime, f"{MAC}.cfg", uploaded, "3 Vendor Configuration File")
    opened = await phones.open(f"{MAC}.cfg", base_url=BASE, now=NOW, requester=OPEN)
    assert (opened.stored, opened.mac, opened.size) == (True, MAC, 30)
    # stored names are exact: another case of the MAC, or another extension, still renders
    rendered = await phones.open(f"{MAC.upper()}.cfg", base_url=BASE, now=NOW, requester=OPEN)
    assert (rendered.stored, rendered.name) == (False, f"{MAC}.cfg")
    # the query form names a configuration, never a stored file
    by_query = await phones.open(
        "mac.cfg", query=f"mac={MAC}.cfg", base_url=BASE, now=NOW, requester=OPEN
    )
    assert by_query.stored is False


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("x6-2.5.1.z", "no file 'x6-2.5.1.z'"),
        ("f0X4hw1.100.cfg", "no general profile for X4"),
        ("aabbccddeeff.cfg", "no phone aabbccddeeff"),
        ("nobody.cfg", "no phone or profile named 'nobody'"),
        ("/etc/passwd", "no file 'passwd'"),  # directories mean nothing: one flat namespace
    ],
)
async def test_names_of_nothing(phones, path, message):
    with pytest.raises(NoSuchFile) as caught:
        await phones.open(path, base_url=BASE, now=NOW, requester=OPEN)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("path", "query", "message"),
    [
        ("../acs.db", "", "unsafe path segment '..'"),
        ("files/../../acs.db", "", "unsafe path segment '..'"),
        ("x/..", "", "unsafe file name '..'"),
        ("a..b.cfg", "", "unsafe file name 'a..b.cfg'"),
        (".hidden", "", "unsafe file name '.hidden'"),
        ("%2e%2e%2facs.db", "", "unsafe file name '%2e%2e%2facs.db'"),
        ("..%2Facs.db", "", "unsafe file name '..%2Facs.db'"),
        ("a\x00.cfg", "", "unsafe file name 'a\\x00.cfg'"),
        ("..\\acs.db", "", "unsafe file name '..\\\\acs.db'"),
        ("C:\\acs.db", "", "unsafe file name 'C:\\\\acs.db'"),
        ("dir/", "", "empty file name"),
        ("", "", "empty file name"),
        ("a" * 201, "", "file name longer than 200 characters"),
        ("/" * 1025, "", "path longer than 1024 characters"),
        ("mac.cfg", "mac=../x.cfg", "unsafe file name '../x.cfg'"),
        ("mac.cfg", "mac=x.cfg&input=y.cfg", "ambiguous query: mac and input both name a file"),
    ],
)
async def test_no_path_escapes_the_namespace(phones, path, query, message):
    with pytest.raises(BadName) as caught:
        await phones.open(path, query=query, base_url=BASE, now=NOW, requester=OPEN)
    assert str(caught.value).startswith(message)


def test_split_path_gives_the_last_segment():
    assert split_path("/X6//001565113af8.cfg") == "001565113af8.cfg"
    assert split_path("fw.z") == "fw.z"


async def test_a_phone_gets_its_own_mac_file_and_the_shared_ones_only(runtime, phones):
    own = Requester("phone", MAC)
    assert (await phones.open(f"{MAC}.cfg", base_url=BASE, now=NOW, requester=own)).mac == MAC
    assert (await phones.open("desk42.cfg", base_url=BASE, now=NOW, requester=own)).mac == MAC
    general = await phones.open("F0V00X600000.cfg", base_url=BASE, now=NOW, requester=own)
    assert general.mac is None
    assert (await phones.open("500.csv", base_url=BASE, now=NOW, requester=own)).stored
    await store(runtime, f"{OTHER}.xml", b"<x/>", "3 Vendor Configuration File")
    for path in (f"{OTHER}.cfg", f"{OTHER.upper()}.txt", "desk43.cfg", f"{OTHER}.xml"):
        with pytest.raises(NotYours) as caught:
            await phones.open(path, base_url=BASE, now=NOW, requester=own)
        assert str(caught.value) == f"no file {path!r}"  # as if it did not exist


async def test_the_shared_pair_reads_mac_files_only_when_the_operator_says_so(
    make_runtime, runtime, phones
):
    assert await phones.open("F0V00X600000.cfg", base_url=BASE, now=NOW, requester=SHARED)
    assert (await phones.open("500.csv", base_url=BASE, now=NOW, requester=SHARED)).stored
    for path in (f"{MAC}.cfg", "desk42.cfg"):
        with pytest.raises(NotYours):
            await phones.open(path, base_url=BASE, now=NOW, requester=SHARED)
    for requester in (OPEN, SIGNED):
        assert (await phones.open(f"{MAC}.cfg", base_url=BASE, now=NOW, requester=requester)).mac
    reads_all = (await make_runtime(provisioning_shared_reads_all=True)).provisioning_files
    opened = await reads_all.open("desk42.cfg", base_url=BASE, now=NOW, requester=SHARED)
    assert opened.mac == MAC


@pytest.mark.parametrize(
    ("requester", "mac", "reads_all", "allowed"),
    [
        (OPEN, MAC, False, True),
        (SIGNED, MAC, False, True),
        (SHARED, None, False, True),
        (SHARED, MAC, False, False),
        (SHARED, MAC, True, True),
        (Requester("phone", MAC), MAC, False, True),
        (Requester("phone", MAC), OTHER, True, False),
        (Requester("phone", MAC), None, False, True),
    ],
)
def test_may_read(requester, mac, reads_all, allowed):
    assert may_read(requester, mac, shared_reads_all=reads_all) is allowed


async def test_logins_and_credentials_of_the_shared_pair_and_of_a_phone(runtime, phones):
    prov = runtime.provisioning
    view = await prov.set_credentials(MAC.upper(), "desk-1", "phone-secret")
    assert view["prov_username"] == "desk-1"
    async with runtime.db.read() as conn:
        row = (await conn.execute(select(tables.phones).where(tables.phones.c.mac == MAC))).one()
    # only what Basic and Digest verification need: HA1s in the CWMP realm
    assert row.prov_ha1_md5 == hashlib.md5(b"desk-1:acs:phone-secret").hexdigest()
    assert row.prov_ha1_sha256 == hashlib.sha256(b"desk-1:acs:phone-secret").hexdigest()
    assert "phone-secret" not in repr(tuple(row))
    assert await phones.login("desk-1", "phone-secret") == Requester("phone", MAC)
    assert await phones.login("desk-1", "wrong") is None
    assert await phones.login("nobody", "phone-secret") is None
    assert await phones.login("acs", "cpe-secret") == SHARED
    with pytest.raises(ProvisioningError, match="belongs to another phone"):
        await prov.set_credentials(OTHER, "desk-1", "x")
    with pytest.raises(ProvisioningError, match="the shared pair's"):
        await prov.set_credentials(OTHER, "acs", "x")
    with pytest.raises(ProvisioningError, match="no ':'"):
        await prov.set_credentials(OTHER, "a:b", "x")
    with pytest.raises(NotFound):
        await prov.set_credentials("aabbccddeeff", "desk-9", "x")
    await prov.clear_credentials(MAC)
    assert await phones.login("desk-1", "phone-secret") is None
    assert (await prov.get_phone(MAC))["prov_username"] is None


async def test_a_configuration_that_cannot_render_says_why(runtime, phones):
    await runtime.provisioning.put_phone(
        MAC,
        model="X6",
        profile=None,
        input_id=None,
        variables={},
        modules={"SIP CONFIG MODULE": {"SIP1 Register User": "{{user}}"}},
        mode=None,
        now=NOW,
    )
    with pytest.raises(MissingVariablesError) as caught:
        await phones.open(f"{MAC}.cfg", base_url=BASE, now=NOW, requester=OPEN)
    assert str(caught.value) == "missing variables: user"


async def test_stored_bytes_missing_from_the_store_are_a_storage_failure(runtime, phones):
    meta = await runtime.files.get("500.csv")
    runtime.files.blob_path(meta.sha256).unlink()
    with pytest.raises(ContentUnavailable) as caught:
        await phones.open("500.csv", base_url=BASE, now=NOW, requester=OPEN)
    assert str(caught.value) == "the content of '500.csv' is missing"


# --- fast fetches: renderings kept until an input changes -------------------------------------


@contextmanager
def statements(runtime) -> Iterator[list[str]]:
    """The statements run on the database meanwhile, by their first word (but the BEGIN of
    SQLite's transactions: a read is one too)."""
    seen: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany) -> None:
        word = statement.split(None, 1)[0].upper()
        if word != "BEGIN":
            seen.append(word)

    engine = runtime.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        with counted() as hot_path:  # and those of hot transactions (a render is one)
            yield seen
        seen.extend(sql.split(None, 1)[0].upper() for sql in hot_path)
    finally:
        event.remove(engine, "before_cursor_execute", note)


async def fetch(phones, path: str) -> bytes:
    opened = await phones.open(path, base_url=BASE, now=NOW, requester=OPEN)
    if opened.content is not None:
        return opened.content
    assert opened.path is not None
    return opened.path.read_bytes()


async def test_a_fetch_of_an_unchanged_rendering_is_one_select(runtime, phones):
    for path in (f"{MAC}.cfg", "F0V00X600000.cfg", "desk42.cfg", f"{MAC}.xml"):
        with statements(runtime) as first:
            made = await fetch(phones, path)
        assert "INSERT" in first, path  # rendered and kept
        for _ in range(3):
            with statements(runtime) as seen:
                assert await fetch(phones, path) == made
            assert seen == ["SELECT"], path
    with statements(runtime) as seen:
        assert await fetch(phones, "x6-2.5.0.z") == b"firmware"
    assert seen == ["SELECT"]
    # another address the phone reached: its URLs differ, so it is another rendering
    other = await phones.open(f"{MAC}.cfg", base_url=BASE + "0", now=NOW, requester=OPEN)
    assert other.content is not None


async def test_a_file_is_kept_for_a_few_addresses_and_made_up_hosts_are_rendered_only(
    runtime, phones
):
    """The base URL (the Host a phone sent) is part of a kept rendering's key: a client sending
    made-up Hosts gets its file rendered each time, and the table no more rows for it."""
    bases = [f"http://acs{n}.example:7547" for n in range(renderings.BASES_PER_KEY + 4)]
    for base in bases:
        opened = await phones.open(f"{MAC}.cfg", base_url=base, now=NOW, requester=OPEN)
        assert opened.content is not None
    kept = await rows(
        runtime.db, "SELECT base_url FROM provisioning_renderings WHERE key LIKE 'mac:%'"
    )
    assert sorted(r.base_url for r in kept) == sorted(bases[: renderings.BASES_PER_KEY])
    with statements(runtime) as seen:  # one of those kept: still a read
        await phones.open(f"{MAC}.cfg", base_url=bases[0], now=NOW, requester=OPEN)
    assert seen == ["SELECT"]


async def test_identical_requests_in_flight_share_one_lookup(runtime, phones):
    """A thousand phones booting ask for the same general file and firmware at once: the
    requests that arrive while a lookup runs take its answer (one read between them)."""
    general = await fetch(phones, "F0V00X600000.cfg")  # rendered and kept
    for path, content in (("F0V00X600000.cfg", general), ("x6-2.5.0.z", b"firmware")):
        with statements(runtime) as seen:
            got = await asyncio.gather(*(fetch(phones, path) for _ in range(50)))
        assert got == [content] * 50
        assert seen == ["SELECT"], path
    # other requesters or addresses are other requests
    with statements(runtime) as seen:
        await asyncio.gather(
            fetch(phones, "x6-2.5.0.z"),
            phones.open("x6-2.5.0.z", base_url=BASE + "0", now=NOW, requester=OPEN),
        )
    assert seen == ["SELECT", "SELECT"]


async def test_every_input_change_is_seen_by_the_next_fetch(runtime, phones):
    prov = runtime.provisioning
    await prov.put_profile(
        "named", "sales", modules={"DSS CONFIG MODULE": {"Key1": "a"}},
        config_key=None, common_key=None, mode=None, now=NOW,
    )  # fmt: skip

    async def phone(mac: str, **changes) -> None:
        values = {"model": "X6", "profile": None, "input_id": None, "variables": {"user": "1"},
                  "modules": {"SIP CONFIG MODULE": {"SIP1 Register User": "{{user}}"}}}  # fmt: skip
        await prov.put_phone(mac, mode=None, now=NOW, **{**values, **changes})

    await phone(MAC, profile="sales", input_id="desk42")
    assert b"Key1 :a\r\n" in await fetch(phones, f"{MAC}.cfg")
    other = await fetch(phones, f"{OTHER}.cfg")
    # the phone: its variables, its $input id
    await phone(MAC, profile="sales", input_id="desk44", variables={"user": "2001"})
    assert b"SIP1 Register User :2001\r\n" in await fetch(phones, f"{MAC}.cfg")
    assert b"SIP1 Register User :2001\r\n" in await fetch(phones, "desk44.cfg")
    with pytest.raises(NoSuchFile):
        await fetch(phones, "desk42.cfg")
    with statements(runtime) as seen:  # another phone's change leaves this one's kept
        assert await fetch(phones, f"{OTHER}.cfg") == other
    assert seen == ["SELECT"]
    # its named profile
    await prov.put_profile(
        "named", "sales", modules={"DSS CONFIG MODULE": {"Key1": "b"}},
        config_key=None, common_key=None, mode=None, now=NOW,
    )  # fmt: skip
    assert b"Key1 :b\r\n" in await fetch(phones, f"{MAC}.cfg")
    # its model's general profile, for its MAC file and the general file
    await prov.put_profile(
        "general", "X6", modules={"GLOBAL CONFIG MODULE": {"Time Zone": "9"}},
        config_key=None, common_key=None, mode=None, now=NOW,
    )  # fmt: skip
    assert b"Time Zone :9\r\n" in await fetch(phones, f"{MAC}.cfg")
    assert b"Time Zone :9\r\n" in await fetch(phones, "F0V00X600000.cfg")
    # a stored file assigned to it: the URL carries the file's digest
    await prov.assign("model", "X6", "image", "x6-2.5.0.z")
    first_url = await fetch(phones, f"{MAC}.cfg")
    assert b"Auto Image Url :" in first_url
    await store(runtime, "x6-2.5.0.z", b"firmware 2", "1 Firmware Upgrade Image")
    second_url = await fetch(phones, f"{MAC}.cfg")
    assert b"Auto Image Url :" in second_url and second_url != first_url
    await prov.unassign("model", "X6", "image")
    assert b"Auto Image Url" not in await fetch(phones, f"{MAC}.cfg")
    await runtime.files.delete("500.csv")
    with pytest.raises(NoSuchFile):
        await fetch(phones, "500.csv")
    # the phone gone, or imported anew
    await runtime.provisioning.import_phones(f"mac,user\n{OTHER},3003\n", NOW)
    assert b"SIP1 Register User :3003\r\n" in await fetch(phones, f"{OTHER}.cfg")
    await prov.delete_phone(MAC)
    with pytest.raises(NoSuchFile):
        await fetch(phones, f"{MAC}.cfg")
