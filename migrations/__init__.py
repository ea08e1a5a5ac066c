"""Alembic migrations, shipped inside the package as ``acs._migrations``."""
