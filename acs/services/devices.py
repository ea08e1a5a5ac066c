"""Device use cases outside the CWMP hot path."""

from __future__ import annotations

from sqlalchemy import update

from acs.db.engine import Database
from acs.db.queries import devices as devices_table
from acs.services.cpe_auth import hash_credentials


class DeviceNotFound(LookupError):
    pass


async def set_cwmp_credentials(
    db: Database, device_id: str, username: str, password: str | None, realm: str
) -> None:
    """Give a device its own CWMP credentials (stored as HA1), or clear them (``None``)."""
    if password is None:
        values: dict[str, str | None] = {
            "cwmp_username": None,
            "cwmp_ha1_md5": None,
            "cwmp_ha1_sha256": None,
        }
    else:
        ha1 = hash_credentials(username, password, realm)
        values = {
            "cwmp_username": username,
            "cwmp_ha1_md5": ha1["MD5"],
            "cwmp_ha1_sha256": ha1["SHA-256"],
        }
    async with db.write() as conn:
        result = await conn.execute(
            update(devices_table).where(devices_table.c.id == device_id).values(**values)
        )
        if not result.rowcount:
            raise DeviceNotFound(device_id)
