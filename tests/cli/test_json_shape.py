"""``--json`` is what the REST API answers for the same resource, so a script can move
between ``acs ... --json`` and the API: every listing and show, compared with the API's
answer on the same data."""

from __future__ import annotations

import json

import pytest

from acs.services import operators, tasks
from tests.cli.conftest import NOW, api_get, register
from tests.services.harness import spec

GW = "00D09E-IGD-GW0001"


@pytest.fixture
def world(seed) -> None:
    async def work(runtime):
        await register(runtime, "GW0001")
        await operators.create_operator(runtime.db, "api", "admin", "api-password", NOW)
        await operators.create_token(runtime.db, "api", "scripts", NOW, 3600)
        await tasks.queue(
            runtime.db,
            GW,
            [spec({"name": "GetParameterValues", "parameter_names": ["A."]})],
            created_by="api",
            now=NOW,
            default_ttl=3600,
        )

        async def body():
            yield b"firmware"

        await runtime.files.store(
            "fw.bin",
            body(),
            file_type="1 Firmware Upgrade Image",
            oui=None,
            product_class="IGD",
            version="2.0",
            created_by="api",
            now=NOW,
        )
        await runtime.provisioning.put_profile(
            "general",
            "X6",
            modules={"GLOBAL CONFIG MODULE": {"Time Zone": "32"}},
            config_key=None,
            common_key="ab" * 32,
            mode="ctc",
            now=NOW,
        )
        await runtime.provisioning.put_phone(
            "001565113af8",
            model="X6",
            profile=None,
            input_id=None,
            variables={"user": "1001"},
            modules={},
            mode=None,
            now=NOW,
        )

    seed(work)


@pytest.mark.parametrize(
    ("argv", "path"),
    [
        (("devices", "list"), "/api/v1/devices"),
        (("devices", "show", GW), f"/api/v1/devices/{GW}"),
        (("tasks", "list"), "/api/v1/tasks"),
        (("tasks", "show", "1"), "/api/v1/tasks/1"),
        (("files", "list"), "/api/v1/files"),
        (("files", "show", "fw.bin"), "/api/v1/files/fw.bin"),
        (("phones", "list"), "/api/v1/phones"),
        (("phones", "show", "001565113af8"), "/api/v1/phones/001565113af8"),
        (("profiles", "list"), "/api/v1/profiles"),
        (("profiles", "show", "general", "X6"), "/api/v1/profiles/general/X6"),
        (("rollouts", "list"), "/api/v1/rollouts"),
        (("rollouts", "show", "1"), "/api/v1/rollouts/1"),
        (("operator", "list"), "/api/v1/operators"),
        (("token", "list"), "/api/v1/tokens"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else None,
)
def test_json_is_the_api_answer(acs, seed, world, argv, path):
    assert acs("rollouts", "create", "all", "Reboot", "--wave-size", "5")[0] == 0
    code, out, err = acs(*argv, "--json")
    assert (code, err) == (0, "")
    assert json.loads(out) == seed(lambda runtime: api_get(runtime, path))
