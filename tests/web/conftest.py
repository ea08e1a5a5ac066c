"""Fixtures of the web tests: the two listeners in process (httpx ASGI transport)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from acs.services import operators
from acs.web.api_app import create_api_app
from acs.web.cwmp_app import create_cwmp_app


@pytest.fixture
async def api(runtime):
    """The management API, as operator "ops" calls it."""
    now = datetime(2020, 1, 1, tzinfo=UTC)
    await operators.create_operator(runtime.db, "ops", "operator", "ops-password", now)
    transport = httpx.ASGITransport(app=create_api_app(runtime))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://api", auth=("ops", "ops-password")
    ) as client:
        yield client


@pytest.fixture
async def cpe(runtime):
    """The CPE-facing listener, as a phone or CPE reaches it."""
    transport = httpx.ASGITransport(app=create_cwmp_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://acs.example:7547") as c:
        yield c
