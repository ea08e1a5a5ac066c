"""``acs devices``: list with the API's filters, show, delete, tag, untag, credentials."""

from __future__ import annotations

import json

from acs.services import devices, operators
from tests.cli.conftest import INFORMED_AT, register

GW1, GW2, OLD = "00D09E-IGD-GW0001", "00D09E-IGD-GW0002", "00D09E-IGD-OLD0001"


def _world(seed) -> None:
    async def work(runtime):
        await register(runtime, "GW0001", host="192.0.2.1")
        await register(runtime, "GW0002", host="192.0.2.2", software_version="2.0.0")
        await register(runtime, "OLD0001", at=1_600_000_000, host="192.0.2.3")
        await devices.set_tag(runtime.db, GW2, "lab", True)

    seed(work)


def test_list_filters_as_the_api_does(acs, seed):
    _world(seed)
    code, out, err = acs("devices", "list")
    assert (code, err) == (0, "")
    assert out == (
        "ID                  SERIAL   PRODUCT CLASS  SOFTWARE  IP         STATUS  LAST INFORM"
        "           TAGS\n"
        "00D09E-IGD-GW0001   GW0001   IGD            1.0.0     192.0.2.1  online  "
        f"{INFORMED_AT}  -\n"
        "00D09E-IGD-GW0002   GW0002   IGD            2.0.0     192.0.2.2  online  "
        f"{INFORMED_AT}  lab\n"
        "00D09E-IGD-OLD0001  OLD0001  IGD            1.0.0     192.0.2.3  late    "
        "2020-09-13T12:26:40Z  -\n"
    )

    def ids(*argv: str) -> list[str]:
        lines = acs("devices", "list", *argv)[1].splitlines()[1:]
        return [line.split()[0] for line in lines]

    assert ids("--tag", "lab") == [GW2]
    assert ids("--status", "late") == [OLD]
    assert ids("--status", "silent") == [OLD]  # the name of the release before
    assert ids("--software-version", "1.0.0", "--sort=-id") == [OLD, GW1]
    assert ids("--serial-number", "GW0001") == [GW1]
    assert ids("--id", GW1, "--id", OLD) == [GW1, OLD]
    assert ids("--ip", "192.0.2.2") == [GW2]
    assert ids("--parameter", "InternetGatewayDevice.DeviceInfo.SoftwareVersion=2.0.0") == [GW2]
    assert ids("--last-inform-before", "2021-01-01T00:00:00+00:00") == [OLD]
    assert acs("devices", "list", "--tag", "nothing") == (0, "", "")


def test_a_page_says_how_to_see_the_rest(acs, seed):
    _world(seed)
    code, out, err = acs("devices", "list", "--limit", "1", "--offset", "1")
    assert code == 0
    assert out.splitlines()[1].split()[0] == GW2
    assert err == "1 of 3 shown (from 1); --limit and --offset page on\n"


def test_list_json_is_the_api_page(acs, seed):
    _world(seed)
    code, out, err = acs("devices", "list", "--status", "late", "--json")
    assert (code, err) == (0, "")
    page = json.loads(out)
    assert page["count"] == 1
    [device] = page["data"]
    assert (device["id"], device["status"], device["last_inform"]) == (
        OLD,
        "late",
        "2020-09-13T12:26:40Z",
    )


def test_bad_filters_are_refused(acs, seed, where, capsys):
    _world(seed)
    assert acs("devices", "list", "--sort", "color") == (
        1,
        "",
        "sort must be one of ['id', 'last_inform', 'first_seen', 'serial_number', "
        "'product_class', 'software_version', 'oui', 'ip', 'mac'], optionally prefixed with "
        f"'-'{where}\n",
    )
    # usage errors are argparse's: exit status 2
    for argv in (("--parameter", "no-equals"), ("--limit", "0"), ("--status", "asleep")):
        try:
            acs("devices", "list", *argv)
        except SystemExit as exc:
            assert exc.code == 2
        else:
            raise AssertionError(f"{argv} accepted")
    assert "expected PATH=VALUE, got 'no-equals'" not in capsys.readouterr().out


def test_show_with_and_without_parameters(acs, seed, where):
    _world(seed)
    code, out, err = acs("devices", "show", GW2)
    assert (code, err) == (0, "")
    lines = dict(line.split(": ", 1) for line in out.splitlines())
    assert lines["id"].strip() == GW2
    assert lines["software version"].strip() == "2.0.0"
    assert lines["tags"].strip() == "lab"
    assert lines["status"].strip() == "online"
    assert lines["connection request credentials"].strip() == "yes"
    assert "PARAMETER" not in out

    code, out, _ = acs("devices", "show", GW2, "--params", "InternetGatewayDevice.DeviceInfo.")
    assert out.split("\n\n", 1)[1] == (
        "PARAMETER                                          VALUE  TYPE        WRITABLE\n"
        "InternetGatewayDevice.DeviceInfo.HardwareVersion   HW-2   xsd:string  -\n"
        "InternetGatewayDevice.DeviceInfo.ProvisioningCode  -      xsd:string  -\n"
        "InternetGatewayDevice.DeviceInfo.SoftwareVersion   2.0.0  xsd:string  -\n"
        "InternetGatewayDevice.DeviceInfo.SpecVersion       1.0    xsd:string  -\n"
    )

    detail = json.loads(acs("devices", "show", GW1, "--json")[1])
    assert detail["id"] == GW1
    assert detail["parameters"]["InternetGatewayDevice.DeviceInfo.SoftwareVersion"] == {
        "value": "1.0.0",
        "type": "xsd:string",
        "writable": None,
        "updated": INFORMED_AT,
        "object": None,
        "notification": None,
        "access_list": None,
    }
    assert acs("devices", "show", "nope") == (1, "", f"no device 'nope'{where}\n")


def test_tag_untag_delete(acs, seed, where):
    _world(seed)
    assert acs("devices", "tag", GW1, "lab", "west") == (0, "lab west\n", "")
    assert acs("devices", "untag", GW1, "lab", "--json") == (
        0,
        '{\n  "tags": [\n    "west"\n  ]\n}\n',
        "",
    )
    assert acs("devices", "tag", GW1, "bad tag") == (
        1,
        "",
        f"tags are 1-64 of A-Z a-z 0-9 _ . : @ -{where}\n",
    )
    assert acs("devices", "tag", "nope", "x") == (1, "", f"no device 'nope'{where}\n")
    assert acs("devices", "delete", GW1) == (0, f"device {GW1} forgotten\n", "")
    assert acs("devices", "delete", GW1) == (1, "", f"no device '{GW1}'{where}\n")

    async def audit(runtime):
        return (await operators.list_audit(runtime.db))[0]

    entries = seed(audit)
    assert [(e["method"], e["path"], e["status"], e["detail"]) for e in entries[:5]] == [
        ("CLI", "acs devices delete", 404, {"device": GW1}),
        ("CLI", "acs devices delete", 200, {"device": GW1}),
        ("CLI", "acs devices tag", 404, {"device": "nope", "tags": ["x"], "present": True}),
        ("CLI", "acs devices tag", 422, {"device": GW1, "tags": ["bad tag"], "present": True}),
        ("CLI", "acs devices untag", 200, {"device": GW1, "tags": ["lab"], "present": False}),
    ]


def test_credentials_under_the_old_name_too(acs, seed, where):
    _world(seed)
    assert acs(
        "device", "credentials", GW1, "--username", "dev1", "--password-stdin", stdin="pw\n"
    ) == (0, "credentials set\n", "")
    assert acs("devices", "credentials", GW1, "--clear") == (0, "credentials cleared\n", "")
    assert acs("devices", "credentials", GW1, "--username", "dev1") == (
        2,
        "",
        f"give the password on standard input with --password-stdin{where}\n",
    )
