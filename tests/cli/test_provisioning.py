"""``acs phones`` and ``acs profiles``: CSV import with its report, listing, the file a
phone gets (plain, XML, encrypted, decrypted)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from acs.provisioning import configfile
from tests.cli.conftest import NOW

MAC = "001565113af8"
KEY = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
MAC_FILE = (
    "<<VOIP CONFIG FILE>>Version:2.0001\r\n"
    "\r\n"
    "<GLOBAL CONFIG MODULE>\r\n"
    "Time Zone :32\r\n"
    "Host Name :X6\r\n"
    "\r\n"
    "<SIP CONFIG MODULE>\r\n"
    "SIP1 Register Addr :sip.example.com\r\n"
    "SIP1 Display Name :Alice\r\n"
    "SIP1 Register User :1001\r\n"
    "\r\n"
    "<<END OF FILE>>\r\n"
)


@pytest.fixture
def phones(seed) -> None:
    """A model's profile, a named profile (its common key encrypts phone files if given)
    and a phone, as tests/web/test_provisioning.py sets them up through the API."""

    async def work(runtime):
        p = runtime.provisioning
        await p.put_profile(
            "general",
            "X6",
            modules={"GLOBAL CONFIG MODULE": {"Time Zone": "32", "Host Name": "{{model}}"}},
            config_key=None,
            common_key=None,
            mode=None,
            now=NOW,
        )
        await p.put_profile(
            "named",
            "sales",
            modules={
                "SIP CONFIG MODULE": {
                    "SIP1 Register Addr": "sip.example.com",
                    "SIP1 Display Name": "{{display}}",
                }
            },
            config_key=None,
            common_key=None,
            mode=None,
            now=NOW,
        )
        await p.put_phone(
            MAC.upper(),
            model="X6",
            profile="sales",
            input_id="desk42",
            variables={"display": "Alice", "user": "1001"},
            modules={"SIP CONFIG MODULE": {"SIP1 Register User": "{{user}}"}},
            mode=None,
            now=NOW,
        )

    seed(work)


def test_import_reports_what_it_took(acs, tmp_path, phones):
    (tmp_path / "phones.csv").write_text(
        "mac,model,profile,display,user\n"
        "00:15:65:11:3A:F8,X6,sales,Carol,1003\n"
        "0015651199ff,X6,sales,Dave,1004\n"
    )
    assert acs("phones", "import", "phones.csv") == (
        0,
        "MAC           TAKEN\n"
        "0015651199ff  created\n"
        "001565113af8  updated\n"
        "2 phone(s) imported: 1 created, 1 updated\n",
        "",
    )
    shown = json.loads(acs("phones", "show", "0015651199FF", "--json")[1])
    assert (shown["profile"], shown["variables"]) == ("sales", {"display": "Dave", "user": "1004"})
    kept = json.loads(acs("phones", "show", MAC, "--json")[1])
    assert (kept["input_id"], kept["variables"]) == ("desk42", {"display": "Carol", "user": "1003"})


def test_import_refuses_all_rows_naming_each_bad_line(acs, tmp_path, phones, where):
    (tmp_path / "phones.csv").write_text(
        "mac,model,user\nnot-a-mac,X6,1\n0015651199ff,X6,2\n0015651199fe,X99,3\n"
    )
    assert acs("phones", "import", "phones.csv") == (
        1,
        "",
        "nothing imported: line 2: not a MAC address: 'not-a-mac'; line 4: unknown phone "
        f"model 'X99'{where}\n",
    )
    assert acs("phones", "import", "-", stdin="model\nX6\n") == (
        1,
        "",
        f"CSV needs a header line with a 'mac' column{where}\n",
    )
    assert acs("phones", "import", "none.csv") == (
        1,
        "",
        f"cannot read none.csv: No such file or directory{where}\n",
    )
    _, out, _ = acs("phones", "list")
    assert [line.split()[0] for line in out.splitlines()] == ["MAC", MAC]


def test_list_and_show(acs, phones, where):
    assert acs("phones", "list") == (
        0,
        "MAC           MODEL  PROFILE  INPUT ID  VARIABLES     MODE  UPDATED\n"
        "001565113af8  X6     sales    desk42    display,user  -     2020-01-01T00:00:00Z\n",
        "",
    )
    assert acs("phones", "list", "--model", "X4") == (0, "", "")
    assert acs("phones", "show", MAC) == (
        0,
        "mac:      001565113af8\n"
        "model:    X6\n"
        "profile:  sales\n"
        "input id: desk42\n"
        "mode:     -\n"
        "updated:  2020-01-01T00:00:00Z\n"
        "{{display}} = Alice\n"
        "{{user}} = 1001\n"
        "[SIP CONFIG MODULE]\n"
        "  SIP1 Register User = {{user}}\n",
        "",
    )
    assert acs("phones", "show", "001565000000") == (1, "", f"no phone 001565000000{where}\n")
    assert acs("profiles", "list") == (
        0,
        "KIND     NAME   MODULES  CONFIG KEY  COMMON KEY  MODE  UPDATED\n"
        "general  X6     1        no          no          -     2020-01-01T00:00:00Z\n"
        "named    sales  1        no          no          -     2020-01-01T00:00:00Z\n",
        "",
    )
    assert acs("profiles", "show", "general", "x6") == (
        0,
        "kind:       general\n"
        "name:       X6\n"
        "config key: no\n"
        "common key: no\n"
        "mode:       -\n"
        "updated:    2020-01-01T00:00:00Z\n"
        "[GLOBAL CONFIG MODULE]\n"
        "  Time Zone = 32\n"
        "  Host Name = {{model}}\n",
        "",
    )
    profile = json.loads(acs("profiles", "show", "named", "sales", "--json")[1])
    assert profile["modules"] == {
        "SIP CONFIG MODULE": {
            "SIP1 Register Addr": "sip.example.com",
            "SIP1 Display Name": "{{display}}",
        }
    }
    assert acs("profiles", "show", "named", "nope") == (
        1,
        "",
        f"no named profile 'nope'{where}\n",
    )


def test_render_the_file_a_phone_gets(acs, phones, where):
    assert acs("phones", "render", MAC.upper()) == (0, MAC_FILE, "")
    code, out, err = acs("phones", "render", MAC, "--format", "xml")
    assert (code, err) == (0, "")
    assert configfile.parse_xml(out.encode()) == (
        "2.0001",
        configfile.parse_text(MAC_FILE.encode()).config,
    )
    assert acs("phones", "render", "001565000000") == (1, "", f"no phone 001565000000{where}\n")
    assert acs("phones", "render", "zz") == (1, "", f"not a MAC address: 'zz'{where}\n")


def test_render_encrypted_and_decrypted(acs, seed, phones, tmp_path, database_url):
    async def key(runtime):
        await runtime.provisioning.put_profile(
            "named",
            "sales",
            modules={
                "SIP CONFIG MODULE": {
                    "SIP1 Register Addr": "sip.example.com",
                    "SIP1 Display Name": "{{display}}",
                }
            },
            config_key=None,
            common_key=KEY,
            mode=None,
            now=NOW,
        )

    seed(key)
    assert acs("phones", "render", MAC, "-o", "phone.cfg") == (0, "", "")
    encrypted = (tmp_path / "phone.cfg").read_bytes()
    assert not encrypted.startswith(b"<<VOIP")
    # what the phone decrypts with the key, by hand and with --decrypt
    by_hand = subprocess.run(
        [sys.executable, "-m", "acs.cli", "config", "decrypt", "--key", KEY, "phone.cfg", "-"],
        cwd=tmp_path,
        capture_output=True,
        check=True,
    )
    assert by_hand.stdout == MAC_FILE.encode()
    assert acs("phones", "render", MAC, "--decrypt") == (0, MAC_FILE, "")
