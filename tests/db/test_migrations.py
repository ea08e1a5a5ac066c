"""The migrations create exactly the tables, columns and indexes of ``acs.db.models``, and
downgrade back out, on both databases."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from acs.db import migrate
from acs.db.engine import Database
from acs.db.models import Base


def _differences(connection: Any) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": False})
    return [
        d for d in compare_metadata(context, Base.metadata) if not _other_dialect(d, connection)
    ]


def _other_dialect(difference: Any, connection: Any) -> bool:
    """An index the models create on another database only (``ddl_if``)."""
    if not isinstance(difference, tuple) or difference[0] != "add_index":
        return False
    elsewhere = {
        index.name
        for table in Base.metadata.tables.values()
        for index in table.indexes
        if index._ddl_if is not None
        and index._ddl_if.dialect not in (None, connection.dialect.name)
    }
    return difference[1].name in elsewhere


async def test_migrated_schema_matches_the_models(db: Database):
    async with db.engine.connect() as conn:
        differences = await conn.run_sync(_differences)
    assert differences == []


async def test_latest_migration_downgrades_and_upgrades_again(db: Database):
    def downgrade(connection: Any) -> None:
        config = migrate.alembic_config(db.url)
        config.attributes["connection"] = connection
        command.downgrade(config, "-1")

    async with db.engine.connect() as conn:
        await conn.run_sync(downgrade)
        await conn.commit()
        assert await conn.run_sync(_differences)  # the previous schema is not the models'
    await migrate.upgrade(db)
    async with db.engine.connect() as conn:
        assert await conn.run_sync(_differences) == []
