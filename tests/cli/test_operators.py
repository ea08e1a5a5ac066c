"""``acs operator`` (add, list, disable, enable, delete, password) and ``acs token`` (create,
list, revoke), audited as the API audits them."""

from __future__ import annotations

import json
import re

from acs.services import operators

TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def _add(acs, name: str, role: str, password: str = "a long password") -> None:
    assert (
        acs("operator", "add", name, "--role", role, "--password-stdin", stdin=password + "\n")[0]
        == 0
    )


def _signs_in(seed, name: str, password: str) -> bool:
    async def work(runtime):
        return await operators.authenticate_password(runtime.db, name, password) is not None

    return bool(seed(work))


def test_disable_enable_password_delete(acs, seed, where):
    _add(acs, "alice", "admin")
    _add(acs, "bob", "viewer")
    assert acs("operator", "disable", "bob") == (0, "operator bob disabled\n", "")
    assert not _signs_in(seed, "bob", "a long password")
    code, out, err = acs("operator", "list")
    assert (code, err) == (0, "")
    assert [line.split()[:3] for line in out.splitlines()] == [
        ["NAME", "ROLE", "DISABLED"],
        ["alice", "admin", "no"],
        ["bob", "viewer", "yes"],
    ]
    assert acs("operator", "enable", "bob") == (0, "operator bob enabled\n", "")
    assert acs("operator", "password", "bob", "--password-stdin", stdin="another password\n") == (
        0,
        "password of operator bob changed\n",
        "",
    )
    assert _signs_in(seed, "bob", "another password")
    assert not _signs_in(seed, "bob", "a long password")
    assert acs("operator", "password", "bob", "--password-stdin", stdin="short\n") == (
        1,
        "",
        f"passwords have at least 8 characters{where}\n",
    )
    assert acs("operator", "password", "bob") == (
        2,
        "",
        f"give the password on standard input with --password-stdin{where}\n",
    )
    assert acs("operator", "delete", "bob") == (0, "operator bob deleted\n", "")
    assert acs("operator", "delete", "bob") == (1, "", f"no operator 'bob'{where}\n")
    assert acs("operator", "disable", "nobody") == (1, "", f"no operator 'nobody'{where}\n")

    async def audit(runtime):
        return (await operators.list_audit(runtime.db))[0]

    entries = [(e["path"], e["status"], e["detail"]) for e in seed(audit)][::-1]
    assert entries[2:] == [
        ("acs operator disable", 200, {"operator": "bob", "disabled": True}),
        ("acs operator enable", 200, {"operator": "bob", "disabled": False}),
        ("acs operator password", 200, {"operator": "bob", "password_changed": True}),
        ("acs operator password", 422, {"operator": "bob", "password_changed": True}),
        ("acs operator password", 400, None),
        ("acs operator delete", 200, {"operator": "bob"}),
        ("acs operator delete", 404, {"operator": "bob"}),
        ("acs operator disable", 404, {"operator": "nobody", "disabled": True}),
    ]
    assert all(re.fullmatch(r"cli:\w+", e["operator"]) for e in seed(audit))


def test_the_last_admin_stays(acs, where):
    _add(acs, "alice", "admin")
    assert acs("operator", "disable", "alice") == (
        1,
        "",
        f"that would leave no enabled admin{where}\n",
    )
    assert acs("operator", "delete", "alice") == (
        1,
        "",
        f"that would leave no enabled admin{where}\n",
    )


def test_tokens_list_and_revoke(acs, where):
    _add(acs, "alice", "admin")
    _add(acs, "bob", "operator")
    code, token, err = acs("token", "create", "alice", "--name", "ci", "--ttl", "3600")
    assert (code, err) == (0, "")
    assert re.fullmatch(r"acs_[A-Za-z0-9_-]{43}\n", token)
    assert acs("token", "create", "bob")[0] == 0
    code, out, err = acs("token", "list")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "ID  OPERATOR  NAME  CREATED               LAST USED  EXPIRES"
    assert re.fullmatch(rf"1   alice     ci    {TIME}  -          {TIME}", lines[1])
    assert re.fullmatch(rf"2   bob       cli   {TIME}  -          -", lines[2])
    mine = json.loads(acs("token", "list", "--operator", "bob", "--json")[1])
    assert [(t["id"], t["operator"], t["name"], t["expires"]) for t in mine] == [
        (2, "bob", "cli", None)
    ]
    assert acs("token", "revoke", "2") == (0, "token 2 revoked\n", "")
    assert acs("token", "revoke", "2") == (1, "", f"no token 2{where}\n")
    assert acs("token", "list", "--operator", "bob") == (0, "", "")
    assert acs("token", "create", "nobody") == (1, "", f"no operator 'nobody'{where}\n")
