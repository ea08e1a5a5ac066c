"""The bench's scenarios: each says what it needs and returns its rows.

A scenario runs once per worker count against an `acs serve` of one backend. What it needs
is prepared once per backend by the runner (``bench.run``):

- ``Need.DEVICES``: the base fleet (--devices, serials ``BASE...``), registered through
  bootstrap sessions on the first server, before the first scenario that needs it;
- ``Need.FLEET``: the database filled to --fleet devices (``bench.backend.fill``). The fill
  changes the database under every server, so the scenarios that need it form a second
  stage: they run after all the others, on servers started after the fill.

A scenario may read the rows of others (``compares_with``: 4 gives its rate against 1's);
asking for it brings those. ``plan`` resolves what to run, in the order of ``SCENARIOS``.
The ceiling is not a scenario: it runs first, on every worker count, with no backend.
"""

from __future__ import annotations

import asyncio
import enum
import os
import statistics
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import httpx
from sqlalchemy import text

from acs.services import task_specs, tasks
from bench.backend import INDEXED, OPERATOR, Backend
from bench.load import errors_of, fleet_run, measure_empty
from bench.meter import CpuMeter, peak_rss_mb
from bench.serve import Process, free_port

BASE = "BASE"  # serial prefix of the base fleet (Need.DEVICES)


@dataclass
class Row:
    """One line of the table and of the JSON output."""

    scenario: str
    backend: str
    workers: int
    sessions_per_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int = 0
    peak_rss_mb: float | None = None
    ratio_to_ceiling: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Sizes:
    """How big and how long, from the command line (--quick makes them small)."""

    devices: int  # the base fleet, whose sessions scenarios 1, 2 and 4 measure
    fleet: int  # devices in the database for the scenarios that need Need.FLEET
    storm: int
    seconds: float  # per measured run
    concurrency: int  # sessions in flight
    repeat: int  # measured runs of the ceiling and scenarios 1 and 4; the best counts
    api_repeat: int


class Need(enum.Enum):
    DEVICES = "the base fleet, registered"
    FLEET = "the database filled to --fleet devices"


@dataclass
class Context:
    """What a scenario runs against: one backend, one `acs serve` on it, the sizes."""

    backend: Backend
    server: Process
    cwmp_url: str
    api_url: str
    workers: int
    sizes: Sizes
    rows: list[Row]  # the rows of this backend so far
    fill_s: float | None = None  # how long the fill took, once it was done

    async def empty_sessions(self) -> dict[str, Any]:
        """The base fleet's periodic Informs, measured (scenarios 1 and 4)."""
        s = self.sizes
        return await measure_empty(
            self.cwmp_url,
            s.devices,
            BASE,
            s.seconds,
            s.concurrency,
            repeat=s.repeat,
            meter=CpuMeter(self.server, postgres=self.backend.kind == "postgresql"),
        )

    def row(self, scenario: Scenario, summary: dict[str, Any], **extra: Any) -> Row:
        """A fleet summary as the scenario's row for this backend and worker count."""
        return row_from(
            scenario.name,
            self.backend.kind,
            self.workers,
            summary,
            peak_rss_mb(self.server),
            **extra,
        )

    def row_of(self, key: str) -> Row:
        """The row of scenario ``key`` at this worker count (one in ``compares_with``)."""
        name = BY_KEY[key].name
        return next(r for r in self.rows if r.scenario == name and r.workers == self.workers)


class Scenario:
    """A measurement on one backend at one worker count; subclasses fill in the fields."""

    key: ClassVar[str]  # its name on --scenarios
    name: ClassVar[str]  # its rows' scenario column
    title: ClassVar[str]  # its progress line; formatted with the fields of Sizes
    needs: ClassVar[frozenset[Need]] = frozenset()
    compares_with: ClassVar[tuple[str, ...]] = ()  # keys of scenarios whose rows run() reads
    against_ceiling: ClassVar[bool] = False  # its rows get ratio_to_ceiling

    async def run(self, ctx: Context) -> list[Row]:
        raise NotImplementedError


class Empty(Scenario):
    """Periodic Informs of the base fleet with nothing queued (Inform, empty POST, 204)."""

    key = "1"
    name = "1 empty"
    title = "1 empty sessions"
    needs = frozenset({Need.DEVICES})
    against_ceiling = True

    async def run(self, ctx: Context) -> list[Row]:
        summary = await ctx.empty_sessions()
        devices = await ctx.backend.scalar("SELECT count(*) FROM devices")
        return [ctx.row(self, summary, devices_in_db=devices)]


# What scenario 2 queues for every device: an operator's tasks, as JSON to the API.
TASKS = (
    {"name": "GetParameterValues", "parameter_names": ["InternetGatewayDevice.DeviceInfo.UpTime"]},
    {
        "name": "SetParameterValues",
        "parameter_values": [
            {
                "name": "InternetGatewayDevice.Time.NTPServer1",
                "value": "ntp.bench",
                "type": "xsd:string",
            }
        ],
        "parameter_key": "bench",
    },
)
TASK_TTL = 365 * 24 * 3600  # they must not expire while the bench runs


class Tasks(Scenario):
    """One session of each base device that runs a GetParameterValues and a
    SetParameterValues, queued beforehand (not measured) through the task service."""

    key = "2"
    name = "2 GPV+SPV"
    title = "2 GPV+SPV sessions"
    needs = frozenset({Need.DEVICES})

    async def run(self, ctx: Context) -> list[Row]:
        queued = await queue_tasks(ctx.backend, BASE)
        summary = await fleet_run(
            ctx.cwmp_url,
            devices=ctx.sizes.devices,
            prefix=BASE,
            sessions=1,
            concurrency=ctx.sizes.concurrency,
        )
        left = await ctx.backend.scalar(
            "SELECT count(*) FROM tasks WHERE created_by = 'bench' AND status <> 'done'"
        )
        return [ctx.row(self, summary, tasks=queued, tasks_not_done=left)]


async def queue_tasks(backend: Backend, prefix: str) -> int:
    """The tasks of ``TASKS`` for every device of a prefix, validated and queued by the task
    service as the API queues an operator's (one transaction per device)."""
    specs = [task_specs.TASK_ADAPTER.validate_python(task) for task in TASKS]
    now = datetime.now(UTC)
    count = 0
    async with backend.database() as db:
        async with db.read() as conn:
            devices = await conn.scalars(
                text("SELECT id FROM devices WHERE serial_number LIKE :p ORDER BY id"),
                {"p": f"{prefix}%"},
            )
            device_ids = list(devices)
        for device_id in device_ids:
            queued = await tasks.queue(
                db, device_id, specs, created_by="bench", now=now, default_ttl=TASK_TTL
            )
            count += len(queued)
    return count


class Storm(Scenario):
    """A boot storm: --storm never-seen devices bootstrapping at once, all in flight."""

    key = "3"
    name = "3 boot storm"
    title = "3 boot storm of {storm}"

    async def run(self, ctx: Context) -> list[Row]:
        prefix = f"STORM{ctx.workers}X"
        started = time.monotonic()
        summary = await fleet_run(
            ctx.cwmp_url,
            devices=ctx.sizes.storm,
            prefix=prefix,
            sessions=1,
            concurrency=ctx.sizes.storm,
            bootstrap=True,
            ramp=0.0,
        )
        drained = round(time.monotonic() - started, 1)
        registered = await ctx.backend.scalar(
            f"SELECT count(*) FROM devices WHERE serial_number LIKE '{prefix}%'"
        )
        provisioned = await ctx.backend.scalar(
            f"SELECT count(*) FROM devices WHERE serial_number LIKE '{prefix}%' "
            "AND cr_username IS NOT NULL AND cr_username <> ''"
        )
        statuses = summary["http_statuses"]
        other_5xx = {k: v for k, v in statuses.items() if k.startswith("5") and k != "503"}
        row = ctx.row(
            self,
            summary,
            drained_s=drained,
            registered=registered,
            provisioned=provisioned,
            retries_503=summary["retries_after_503"],
            other_5xx=other_5xx,
        )
        return [row]


class Scale(Scenario):
    """Scenario 1 again with --fleet devices in the database; ``vs_1k`` is its rate over 1's."""

    key = "4"
    name = "4 scale"
    title = "4 empty sessions at {fleet}"
    needs = frozenset({Need.DEVICES, Need.FLEET})
    compares_with = ("1",)
    against_ceiling = True

    async def run(self, ctx: Context) -> list[Row]:
        summary = await ctx.empty_sessions()
        base = ctx.row_of("1").sessions_per_s
        devices = await ctx.backend.scalar("SELECT count(*) FROM devices")
        row = ctx.row(
            self,
            summary,
            devices_in_db=devices,
            fill_s=ctx.fill_s,
            vs_1k=round(summary["sessions_per_s"] / base, 2) if base else None,
        )
        return [row]


class ApiSearch(Scenario):
    """GET /api/v1/devices by an indexed parameter's value, by status and by software
    version, with --fleet devices in the database; p50/p99 of each, the worst in the row."""

    key = "5"
    name = "5 API search"
    title = "5 API searches at {fleet}"
    needs = frozenset({Need.FLEET})
    queries: ClassVar[tuple[dict[str, str], ...]] = (
        {"parameter": f"{INDEXED}=site-42"},
        {"status": "late"},
        {"software_version": "v7"},
    )

    async def run(self, ctx: Context) -> list[Row]:
        found = await api_latency(ctx.api_url, self.queries, ctx.sizes.api_repeat)
        row = Row(
            self.name,
            ctx.backend.kind,
            ctx.workers,
            None,
            max(v["p50_ms"] for v in found.values()),
            max(v["p99_ms"] for v in found.values()),
            0,
            peak_rss_mb(ctx.server),
            extra=found,
        )
        return [row]


async def api_latency(
    api_url: str, queries: Iterable[dict[str, str]], repeat: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=api_url, auth=OPERATOR, timeout=60) as client:
        await client.get("/api/v1/me")  # the password check is cached after this
        for params in queries:
            times, counts = [], set()
            for _ in range(repeat):
                started = time.perf_counter()
                r = await client.get("/api/v1/devices", params={**params, "limit": "100"})
                times.append(time.perf_counter() - started)
                r.raise_for_status()
                counts.add(r.json()["count"])
            times.sort()
            key = "&".join(f"{k}={v}" for k, v in params.items())
            out[key] = {
                "p50_ms": round(statistics.median(times) * 1000, 1),
                "p99_ms": round(times[int(0.99 * (len(times) - 1))] * 1000, 1),
                "count": sorted(counts),
            }
    return out


class ConsolePages(Scenario):
    """The console's pages with --fleet devices in the database, signed in as a browser is:
    the device list's first page, filtered pages, and the overview; p50/p99 of each (wall
    time on loopback), the worst in the row. The overview's first view on a worker computes
    its group-bys (later views are served from a few seconds' cache while it is computed
    again in the background): that first view is reported on its own, ``overview_cold_ms``."""

    key = "6"
    name = "6 console"
    title = "6 console pages at {fleet}"
    needs = frozenset({Need.FLEET})
    pages: ClassVar[tuple[str, ...]] = (
        "/devices",
        "/devices?software_version=v7",
        "/devices?status=late&sort=-last_inform",
        "/",
    )

    async def run(self, ctx: Context) -> list[Row]:
        found = await console_latency(ctx.api_url, self.pages, ctx.sizes.api_repeat)
        pages = {k: v for k, v in found.items() if k != "overview_cold_ms"}
        return [
            Row(
                self.name,
                ctx.backend.kind,
                ctx.workers,
                None,
                max(v["p50_ms"] for v in pages.values()),
                max(v["p99_ms"] for v in pages.values()),
                0,
                peak_rss_mb(ctx.server),
                extra=found,
            )
        ]


async def console_latency(api_url: str, pages: Iterable[str], repeat: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=api_url, timeout=60) as client:
        r = await client.post("/login", data={"name": OPERATOR[0], "password": OPERATOR[1]})
        if r.status_code != 303:
            raise RuntimeError(f"console sign-in answered {r.status_code}")
        started = time.perf_counter()
        (await client.get("/")).raise_for_status()
        out["overview_cold_ms"] = round((time.perf_counter() - started) * 1000, 1)
        for path in pages:
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                r = await client.get(path)
                times.append(time.perf_counter() - started)
                r.raise_for_status()
            times.sort()
            out[path] = {
                "p50_ms": round(statistics.median(times) * 1000, 1),
                "p99_ms": round(times[int(0.99 * (len(times) - 1))] * 1000, 1),
            }
    return out


# The fixed order: every scenario after those it compares with, and (Need.FLEET) after
# every one that runs before the fill.
SCENARIOS: tuple[Scenario, ...] = (
    Empty(),
    Tasks(),
    Storm(),
    Scale(),
    ApiSearch(),
    ConsolePages(),
)
BY_KEY = {s.key: s for s in SCENARIOS}


def plan(asked: Iterable[str]) -> list[Scenario]:
    """The scenarios to run for the keys asked for, with those they compare with, in the
    order of ``SCENARIOS``; ValueError for a key that names none."""
    todo = list(asked)
    unknown = sorted(set(todo) - BY_KEY.keys())
    if unknown:
        raise ValueError(f"no scenario {', '.join(unknown)} (there are {', '.join(BY_KEY)})")
    chosen: set[str] = set()
    while todo:
        key = todo.pop()
        if key not in chosen:
            chosen.add(key)
            todo.extend(BY_KEY[key].compares_with)
    return [s for s in SCENARIOS if s.key in chosen]


@dataclass(frozen=True)
class Stage:
    """Scenarios that run, in order, on one `acs serve` per worker count."""

    fill: bool  # the database is filled to --fleet before this stage
    scenarios: tuple[Scenario, ...]


def stages(scenarios: Iterable[Scenario]) -> list[Stage]:
    """``scenarios`` as they run: those on the base database, then (after the fill) those
    that need Need.FLEET; a stage with none is left out."""
    scenarios = list(scenarios)
    out = [
        Stage(fill, tuple(s for s in scenarios if (Need.FLEET in s.needs) == fill))
        for fill in (False, True)
    ]
    return [stage for stage in out if stage.scenarios]


def ceiling(workers: int, work: Path, sizes: Sizes) -> Row:
    """Scenario 1's measurement against the ceiling (bench.ceiling) with ``workers``."""
    port = free_port()
    server = Process.start(
        [sys.executable, "-m", "bench.ceiling", "--port", str(port), "--workers", str(workers)],
        dict(os.environ),
        work / f"ceiling-{workers}.log",
    )
    try:
        server.wait_serving(f"http://127.0.0.1:{port}/acs", 30)  # 204 to a request with no body
        summary = asyncio.run(
            measure_empty(
                f"http://127.0.0.1:{port}/acs",
                sizes.devices,
                "CEIL",
                sizes.seconds,
                sizes.concurrency,
                auth="none",
                repeat=sizes.repeat,
                meter=CpuMeter(server, postgres=False),
            )
        )
        row = row_from("ceiling", "none", workers, summary, peak_rss_mb(server))
    finally:
        server.stop()
    row.ratio_to_ceiling = 1.0
    return row


def row_from(
    scenario: str,
    backend: str,
    workers: int,
    summary: dict[str, Any],
    rss: float | None,
    **extra: Any,
) -> Row:
    if "runs_per_s" in summary and len(summary["runs_per_s"]) > 1:
        extra = {"runs": "/".join(f"{r:.0f}" for r in summary["runs_per_s"]), **extra}
    if "cpu" in summary:  # ms of CPU per session: server, PostgreSQL, load generator
        cpu = {k: v for k, v in summary["cpu"].items() if v is not None}
        extra = {**cpu, **extra}
    return Row(
        scenario,
        backend,
        workers,
        summary["sessions_per_s"],
        summary["latency_ms"]["p50"],
        summary["latency_ms"]["p99"],
        errors_of(summary),
        rss,
        extra=extra,
    )
