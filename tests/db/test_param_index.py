"""Indexed parameter searches use their index, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from acs import server
from acs.config import Settings
from acs.db import param_index
from acs.db.engine import Database
from acs.services import devices
from acs.simulator import datamodels
from tests.conftest import make_settings
from tests.fake_cpe import FakeCpe
from tests.services.harness import ServiceCpe

PATH = "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID"


async def test_search_by_an_indexed_parameter_uses_the_index(runtime, db):
    for i in range(3):
        fake = FakeCpe(datamodels.gateway(f"IDX{i}"))
        fake.model.parameters[PATH].notification = 2
        fake.model.parameters[PATH].value = f"ssid-{i}"
        cpe = ServiceCpe(runtime, fake, host=f"192.0.2.{i}")
        assert (await cpe.inform("0 BOOTSTRAP")).status == 200
    await param_index.ensure_indexes(db, [PATH])
    await param_index.ensure_indexes(db, [PATH])  # idempotent
    found, count = await devices.search(
        db, devices.DeviceFilter(parameters=[(PATH, "ssid-1")]), now=datetime.now(UTC)
    )
    assert (count, [d["serial_number"] for d in found]) == (1, ["IDX1"])
    expression = param_index.value_expression(db.dialect, PATH)
    async with db.read() as conn:
        if db.is_postgresql:
            await conn.execute(text("SET LOCAL enable_seqscan = off"))
            plan = "\n".join(
                (
                    await conn.execute(
                        text(f"EXPLAIN SELECT id FROM devices WHERE {expression} = 'ssid-1'")
                    )
                ).scalars()
            )
        else:
            plan = "\n".join(
                str(r[-1])
                for r in (
                    await conn.execute(
                        text(
                            "EXPLAIN QUERY PLAN SELECT id FROM devices "
                            f"WHERE {expression} IN ('ssid-1')"
                        )
                    )
                )
            )
    assert param_index.index_name(PATH) in plan, plan


async def test_start_up_creates_the_indexes_the_setting_names(database_url, tmp_path):
    path = "Device.DeviceInfo.ProvisioningCode"
    settings = make_settings(database_url, tmp_path, indexed_parameters=f" {path} ,")
    assert settings.indexed_parameter_list == [path]
    await server.prepare(settings)
    name = param_index.index_name(path)
    db = Database(database_url)
    try:
        lookup = (
            "SELECT indexname FROM pg_indexes WHERE indexname = :n"
            if db.is_postgresql
            else "SELECT name FROM sqlite_master WHERE type = 'index' AND name = :n"
        )
        async with db.read() as conn:
            assert await conn.scalar(text(lookup), {"n": name}) == name
        async with db.write() as conn:  # the PostgreSQL test database outlives this test
            await conn.execute(text(f"DROP INDEX {name}"))
    finally:
        await db.dispose()


def test_paths_that_cannot_be_indexed_are_refused(tmp_path):
    with pytest.raises(ValidationError, match="not parameter paths"):
        Settings(_env_file=None, data_dir=tmp_path, indexed_parameters="A.B, x'); DROP TABLE d;--")
    with pytest.raises(ValueError, match="bad parameter path"):
        param_index.value_expression("sqlite", "A.B'")
