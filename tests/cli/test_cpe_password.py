"""``acs cpe-password reset``: a new shared CPE password, printed once, kept as its HA1."""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import text

from acs.services import operators


def test_reset_prints_a_new_password_once_and_keeps_its_ha1_only(acs, seed, monkeypatch):
    monkeypatch.delenv("ACS_CWMP_PASSWORD")
    code, out, err = acs("cpe-password", "reset")
    assert (code, err) == (0, "")
    password, said = out.splitlines()
    assert len(password) == 16
    assert said == (
        "the new shared CPE password of user acs, shown this once; restart acs serve on every "
        "node to use it (only its hash is kept)"
    )

    async def stored(runtime):
        async with runtime.db.read() as conn:
            meta = {k: v for k, v in await conn.execute(text("SELECT key, value FROM meta"))}
        return meta, (await operators.list_audit(runtime.db))[0]

    meta, entries = seed(stored)
    assert password not in json.dumps(meta)
    assert json.loads(meta["cwmp_ha1"])["MD5"] == (
        hashlib.md5(f"acs:acs:{password}".encode()).hexdigest()
    )
    assert [(e["path"], e["status"], e["detail"]) for e in entries[:1]] == [
        ("acs cpe-password reset", 200, {"cpe_password_reset": True})
    ]
    code, again, _ = acs("cpe-password", "reset")
    assert code == 0 and again.splitlines()[0] != password


def test_reset_is_refused_while_the_password_is_a_setting(acs, where):
    assert acs("cpe-password", "reset") == (
        2,
        "",
        "ACS_CWMP_PASSWORD (or ACS_CWMP_PASSWORD_FILE) is set: the server uses that one; "
        f"change it there{where}\n",
    )
