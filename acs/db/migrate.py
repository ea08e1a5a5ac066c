"""Apply the alembic migrations (``acs db upgrade``, and ``acs serve`` on SQLite)."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from acs.db.engine import Database


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("acs._migrations")))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision``; a no-op when it is there already.

    On PostgreSQL an advisory lock serialises nodes that start at the same moment.
    """

    def _upgrade(connection: Connection) -> None:
        config = alembic_config(db.url)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with db.engine.connect() as conn:
        if db.is_postgresql:
            await conn.exec_driver_sql("SELECT pg_advisory_lock(754701)")
        try:
            await conn.run_sync(_upgrade)
            await conn.commit()
        finally:
            if db.is_postgresql:
                await conn.exec_driver_sql("SELECT pg_advisory_unlock(754701)")
                await conn.commit()


async def revisions(db: Database) -> tuple[str | None, str | None]:
    """The schema revision of the database (None: never migrated) and the newest this acs
    knows (its head)."""

    def _revisions(connection: Connection) -> tuple[str | None, str | None]:
        current = MigrationContext.configure(connection).get_current_revision()
        head = ScriptDirectory.from_config(alembic_config(db.url)).get_current_head()
        return current, head

    async with db.engine.connect() as conn:
        return await conn.run_sync(_revisions)
