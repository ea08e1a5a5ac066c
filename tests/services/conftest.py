"""Fixtures of the service tests: the service's clock, moved by hand."""

from __future__ import annotations

import pytest

from tests.services.harness import Clock


@pytest.fixture
def clock(runtime):
    c = Clock()
    runtime.cwmp.clock = c
    return c
