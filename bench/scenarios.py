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
import contextlib
import enum
import os
import statistics
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
from sqlalchemy import text

from acs.server import run_loop
from acs.services import task_specs, tasks
from acs.simulator import datamodels
from acs.simulator.agent import CpeAgent
from bench import tftp_client
from bench.backend import INDEXED, OPERATOR, PASSWORD, Backend
from bench.load import errors_of, fleet_run, measure_empty, register
from bench.meter import CpuMeter, open_fds, peak_rss_mb, rss_mb
from bench.serve import Process, free_port

BASE = "BASE"  # serial prefix of the base fleet (Need.DEVICES)
# The simulator's serial prefix that names the filled devices (bench.backend.fill: serials
# FILL000000001...; the simulator pads its index to 8 digits)
FILLED = "FILL0"
HEADLINE_IN_FLIGHT = 512  # scenario 11's sessions in flight at most


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
    tftp_phones: int = 1000  # phones fetching over TFTP at once (scenario 6)
    large_answer: int = 80_000  # parameters in scenario 7's answer
    soak_devices: int = 2_000  # scenario 8
    soak_seconds: float = 600.0
    soak_interval: float = 10.0  # their periodic inform interval
    headline_rate: float = 1_000_000 / 900  # scenario 11: a million devices every 15 minutes
    headline_devices: int = 33_334  # the filled devices that inform at that rate
    headline_seconds: float = 120.0


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
    against_floor: ClassVar[bool] = False  # empty sessions: CPU per session / the floor

    async def run(self, ctx: Context) -> list[Row]:
        raise NotImplementedError


class Empty(Scenario):
    """Periodic Informs of the base fleet with nothing queued (Inform, empty POST, 204)."""

    key = "1"
    against_floor = True
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
            failures=summary["errors"],  # by kind: an HTTP status, or the client's error
        )
        return [row]


class Scale(Scenario):
    """Scenario 1 again with --fleet devices in the database; ``vs_1k`` is its rate over 1's."""

    key = "4"
    against_floor = True
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


class TftpFetches(Scenario):
    """--tftp-phones phones booting at once, each fetching its model's general file and then
    its MAC file over TFTP with tsize, as the Fanvil document's capture shows (its case of
    1,000 phones provisioned together), then a 1 MB firmware with blksize 1428. Rows:
    fetches/s, latency of a fetch, failed fetches, and the server's CPU per fetch
    (``server_cpu_ms``), rendering included; ``tftp_failed`` and ``firmware_failed``
    (target: 0)."""

    key = "6"
    name = "6 TFTP fetches"
    title = "6 TFTP: {tftp_phones} phones fetching their two files and a firmware at once"

    async def run(self, ctx: Context) -> list[Row]:
        phones = ctx.sizes.tftp_phones
        macs = [f"0015{i:08x}" for i in range(phones)]
        await provision_phones(ctx.api_url, macs)
        await upload(ctx.api_url, FIRMWARE, os.urandom(FIRMWARE_BYTES), FIRMWARE_TYPE)
        port = ctx.backend.tftp_port
        assert port is not None

        async def boot(mac: str) -> list[tftp_client.Fetched]:
            got = []
            for name in ("F0V00X600000.cfg", f"{mac}.cfg"):
                got.append(await tftp_client.fetch("127.0.0.1", port, name, options=TSIZE))
            # then its firmware, in blocks of 1428 bytes (what fits a 1500-byte MTU)
            got.append(await tftp_client.fetch("127.0.0.1", port, FIRMWARE, options=BIG_BLOCKS))
            return got

        meter = CpuMeter(ctx.server, postgres=ctx.backend.kind == "postgresql")
        before = meter.sample()
        started = time.perf_counter()
        booted = await asyncio.gather(*(boot(mac) for mac in macs))
        elapsed = time.perf_counter() - started
        fetches = [f for files in booted for f in files]
        done = sorted(f.seconds for f in fetches if f.complete)
        failed = len(fetches) - len(done)
        firmware_failed = sum(
            1
            for files in booted
            if not (files[2].complete and len(files[2].content) == FIRMWARE_BYTES)
        )
        summary = {
            "sessions_per_s": round(len(done) / elapsed, 1),
            "latency_ms": {
                "p50": round(statistics.median(done) * 1000, 1) if done else None,
                "p99": round(done[int(0.99 * (len(done) - 1))] * 1000, 1) if done else None,
            },
            "sessions_failed": failed,
            "cpu": meter.per_session(before, len(done)),
        }
        retransmitted = sum(f.timeouts for f in fetches)
        by_kind = {}  # the general file, the MAC file, the firmware: failures, p99 of the rest
        for i, kind in enumerate(("general", "mac", "firmware")):
            times = sorted(files[i].seconds for files in booted if files[i].complete)
            p99 = round(times[int(0.99 * (len(times) - 1))] * 1000) if times else None
            by_kind[kind] = f"{phones - len(times)}/{p99}"
        return [
            ctx.row(
                self,
                summary,
                fetches=len(fetches),
                tftp_failed=failed,
                firmware_failed=firmware_failed,
                client_timeouts=retransmitted,
                failed_p99_ms=by_kind,
            )
        ]


TSIZE = {"tsize": "0"}
BIG_BLOCKS = {"tsize": "0", "blksize": "1428"}
FIRMWARE, FIRMWARE_TYPE, FIRMWARE_BYTES = "x6-bench.z", "1 Firmware Upgrade Image", 1 << 20


async def upload(api_url: str, name: str, content: bytes, file_type: str) -> None:
    async with httpx.AsyncClient(base_url=api_url, auth=OPERATOR, timeout=120) as api:
        r = await api.put(f"/api/v1/files/{name}", content=content, params={"file_type": file_type})
        r.raise_for_status()


class ProvisioningFetches(Scenario):
    """--tftp-phones phones booting at once over HTTP, each with its own credentials
    (Digest): its model's general file, then its MAC file, rendered and kept on the first
    fetch. Then, in the same run, every phone fetches its MAC file again (kept: a read) and
    a stored file of the same size: the server's CPU per fetch of each
    (``rendered_cpu_ms``, ``stored_cpu_ms``) and their ratio (target: at most 1.5)."""

    key = "10"
    name = "10 provisioning"
    title = "10 provisioning: {tftp_phones} phones fetching over HTTP at once"

    async def run(self, ctx: Context) -> list[Row]:
        phones = ctx.sizes.tftp_phones
        macs = [f"0016{i:08x}" for i in range(phones)]
        await provision_phones(ctx.api_url, macs)
        auth = {mac: httpx.DigestAuth(*phone_credentials(mac)) for mac in macs}
        meter = CpuMeter(ctx.server, postgres=ctx.backend.kind == "postgresql")
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(ctx.cwmp_url))  # not its /acs
        async with httpx.AsyncClient(base_url=origin, limits=limits, timeout=120) as http:

            async def get(mac: str, name: str) -> tuple[bool, float, int]:
                started = time.perf_counter()
                try:
                    r = await http.get(f"/prov/{name}", auth=auth[mac])
                except httpx.HTTPError:
                    return False, time.perf_counter() - started, 0
                return r.status_code == 200, time.perf_counter() - started, len(r.content)

            async def boot(mac: str) -> list[tuple[bool, float, int]]:
                return [await get(mac, "F0V00X600000.cfg"), await get(mac, f"{mac}.cfg")]

            async def phase(
                name_of: Any,
            ) -> tuple[list[tuple[bool, float, int]], dict[str, float | None]]:
                before = meter.sample()
                got = await asyncio.gather(*(get(mac, name_of(mac)) for mac in macs))
                return got, meter.per_session(before, sum(1 for ok, _, _ in got if ok))

            before = meter.sample()
            started = time.perf_counter()
            booted = [f for pair in await asyncio.gather(*map(boot, macs)) for f in pair]
            elapsed = time.perf_counter() - started
            ok = sorted(seconds for good, seconds, _ in booted if good)
            boot_cpu = meter.per_session(before, len(ok))
            size = max(n for good, _, n in booted[1::2] if good)  # a MAC file's
            await upload(ctx.api_url, "same-size.z", os.urandom(size), FIRMWARE_TYPE)
            # a stored file's upload forgets every rendering (assigned files' URLs carry
            # their digest): render them again, unmeasured, then measure fetches of kept ones
            await phase(lambda mac: f"{mac}.cfg")
            rendered, rendered_cpu = await phase(lambda mac: f"{mac}.cfg")
            stored, stored_cpu = await phase(lambda mac: "same-size.z")
        summary = {
            "sessions_per_s": round(len(ok) / elapsed, 1),
            "latency_ms": {
                "p50": round(statistics.median(ok) * 1000, 1) if ok else None,
                "p99": round(ok[int(0.99 * (len(ok) - 1))] * 1000, 1) if ok else None,
            },
            "sessions_failed": len(booted) - len(ok),
            "cpu": boot_cpu,
        }
        r_ms, s_ms = rendered_cpu["server_cpu_ms"], stored_cpu["server_cpu_ms"]
        return [
            ctx.row(
                self,
                summary,
                fetches=len(booted),
                file_bytes=size,
                rendered_cpu_ms=r_ms,
                stored_cpu_ms=s_ms,
                rendered_to_stored=round(r_ms / s_ms, 2) if r_ms is not None and s_ms else None,
                refetch_failed=sum(1 for good, _, _ in rendered + stored if not good),
            )
        ]


def phone_credentials(mac: str) -> tuple[str, str]:
    """The bench phone's own provisioning credentials (set by provision_phones)."""
    return f"bench-{mac}", f"pw-{mac}"


async def provision_phones(api_url: str, macs: list[str]) -> None:
    """The X6 general profile, a named profile with a SIP account's placeholders, and the
    phones (imported as CSV), as an operator sets them up; not measured."""
    async with httpx.AsyncClient(base_url=api_url, auth=OPERATOR, timeout=120) as api:
        r = await api.put(
            "/api/v1/profiles/general/X6",
            json={"modules": {"GLOBAL CONFIG MODULE": {"Time Zone": "32", "NTP Server": "ntp"}}},
        )
        r.raise_for_status()
        r = await api.put(
            "/api/v1/profiles/named/bench",
            json={
                "modules": {
                    "SIP CONFIG MODULE": {
                        "SIP1 Register User": "{{user}}",
                        "SIP1 Register Pswd": "{{password}}",
                    }
                }
            },
        )
        r.raise_for_status()
        rows = [
            f"{mac},X6,bench,{1000 + i},pw-{mac},{','.join(phone_credentials(mac))}"
            for i, mac in enumerate(macs)
        ]
        header = "mac,model,profile,user,password,prov_username,prov_password\n"
        r = await api.post(
            "/api/v1/phones/import",
            content=header + "\n".join(rows) + "\n",
            headers={"content-type": "text/csv"},
        )
        r.raise_for_status()


class LargeAnswer(Scenario):
    """One CPE answers a GetParameterValues of its whole tree with --large-answer parameters
    (a TR-181 gateway asked for "Device."), and N/10 for the slope, while the base fleet's
    periodic sessions go on: how long the ACS takes to apply the answer, the other sessions'
    p99 meanwhile, and the longest stall of the server's event loop (from /metrics). 80,000
    parameters are about 10 MB of XML here: the bench's server takes bodies up to 32 MiB."""

    key = "7"
    name = "7 large answer"
    title = "7 a GetParameterValues answer of {large_answer} parameters"
    needs = frozenset({Need.DEVICES})

    async def run(self, ctx: Context) -> list[Row]:
        size = ctx.sizes.large_answer
        small = await big_answer(ctx, size // 10, f"BIGS{ctx.workers}", load=False)
        big = await big_answer(ctx, size, f"BIGL{ctx.workers}", load=True)
        assert big.fleet is not None
        row = ctx.row(
            self,
            big.fleet,
            parameters=size,
            apply_s=round(big.apply_s, 2),
            apply_s_tenth=round(small.apply_s, 2),
            per_1k_ms=round(big.apply_s / size * 1e6, 1),
            per_1k_ms_tenth=round(small.apply_s / (size // 10) * 1e6, 1),
            loop_stall_max_s=None if big.loop_stall_s is None else round(big.loop_stall_s, 3),
        )
        return [row]


@dataclass
class BigAnswer:
    apply_s: float
    loop_stall_s: float | None
    fleet: dict[str, Any] | None


async def big_answer(ctx: Context, size: int, serial: str, *, load: bool) -> BigAnswer:
    """A CPE with ``size`` extra parameters answers GetParameterValues of its whole tree;
    with ``load``, the base fleet's periodic sessions run meanwhile."""
    model = datamodels.gateway(serial)
    for n in range(size):
        model.set(f"InternetGatewayDevice.X.{n}", str(n), "xsd:string")
    agent = CpeAgent(model, ctx.cwmp_url, username="acs", password=PASSWORD, timeout=600)
    await agent.start()
    try:
        registered = await agent.session("0 BOOTSTRAP", "1 BOOT")
        if not registered.ok:
            raise RuntimeError(f"{serial}: bootstrap failed: {registered.error}")
        spec = task_specs.TASK_ADAPTER.validate_python(
            {"name": "GetParameterValues", "parameter_names": ["InternetGatewayDevice."]}
        )
        async with ctx.backend.database() as db:
            await tasks.queue(
                db,
                model.device_id.device_id,
                [spec],
                created_by="bench",
                now=datetime.now(UTC),
                default_ttl=TASK_TTL,
            )
        stop = asyncio.Event()
        stalls: list[float] = []
        sampler = asyncio.create_task(sample_loop_stall(ctx.api_url, stop, stalls))
        fleet = None
        if load:
            fleet_task = asyncio.create_task(
                fleet_run(
                    ctx.cwmp_url,
                    devices=ctx.sizes.devices,
                    prefix=BASE,
                    duration=None,
                    sessions=None,
                    concurrency=ctx.sizes.concurrency,
                    stop=stop,
                )
            )
            await asyncio.sleep(2.0)  # the fleet's sessions are under way
        report = await agent.session("6 CONNECTION REQUEST")
        if load:
            await asyncio.sleep(2.0)  # and go on a little after
        stop.set()
        if load:
            fleet = await fleet_task
        await sampler
        if not report.ok or report.requests != ["GetParameterValues"]:
            raise RuntimeError(f"{serial}: the large answer failed: {report.error}")
        return BigAnswer(max(report.answer_latencies), max(stalls, default=None), fleet)
    finally:
        await agent.stop()


async def sample_loop_stall(api_url: str, stop: asyncio.Event, into: list[float]) -> None:
    """acs_event_loop_lag_max_seconds (the longest stall of the last 10 s, of any worker)
    every half second until ``stop``, and once more after it."""
    async with httpx.AsyncClient(base_url=api_url, auth=OPERATOR, timeout=30) as client:
        while True:
            r = await client.get("/metrics")
            for line in r.text.splitlines():
                if line.startswith("acs_event_loop_lag_max_seconds "):
                    into.append(float(line.split()[1]))
            if stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)


class Headline(Scenario):
    """The fleet the product is sized for: --fleet devices in the database informing every 15
    minutes, 1,111 sessions a second (--headline-rate), held for --headline-seconds: each
    device informs on its interval whether or not the ACS keeps up, up to 512 sessions in
    flight; a server that falls behind shows it in the rate it held and in its latency.

    The load generator cannot run a million simulated CPEs: --headline-devices of the filled
    devices inform at the interval that makes the rate (33,334 every 30 s). They are brought
    to their steady state first (the first sessions of a filled device provision it), so the
    measured sessions are periodic Informs of converged devices, as a fleet's are."""

    key = "11"
    against_floor = True
    # (a run with every device in flight at once collapsed into client timeouts: 7% held,
    # 9-13 ms of load-generator CPU per completed session)
    name = "11 headline"
    title = "11 {headline_rate:.0f} sessions/s for {headline_seconds:.0f} s at {fleet} devices"
    needs = frozenset({Need.FLEET})

    async def run(self, ctx: Context) -> list[Row]:
        s = ctx.sizes
        devices = min(s.headline_devices, s.fleet)
        interval = devices / s.headline_rate
        # the devices as their first sessions left them (their own CWMP credentials...), in
        # every run of this backend
        filled = partial(
            fleet_run,
            ctx.cwmp_url,
            devices=devices,
            prefix=FILLED,
            first_index=1,
            state=str(ctx.backend.work / "headline.json"),
        )
        warm = await filled(sessions=2, concurrency=max(s.concurrency, 200))
        if errors_of(warm):
            raise RuntimeError(f"bringing the filled devices up failed: {warm['errors']}")
        summary = await filled(
            duration=s.headline_seconds,
            interval=interval,
            ramp=interval,
            # as a fleet's CPEs would, but at most this many in flight: past what the server
            # holds, sessions wait their turn here (and start late) instead of piling up into
            # timeouts that measure the load generator; the rate held is what it sustains
            concurrency=HEADLINE_IN_FLIGHT,
            meter=CpuMeter(ctx.server, postgres=ctx.backend.kind == "postgresql"),
        )
        held = summary["sessions_per_s"]
        cpu = summary["cpu"]
        row = ctx.row(
            self,
            summary,
            target_per_s=round(s.headline_rate, 1),
            held=round(held / s.headline_rate, 3),
            # what a session cost in all (server, PostgreSQL, load generator) next to what the
            # machine's cores give each session at the target rate: past it, no design of the
            # server holds the target on this machine
            cpu_all_ms=round(sum(v for v in cpu.values() if v is not None), 3),
            cpu_budget_ms=round(1000 * (os.cpu_count() or 1) / s.headline_rate, 3),
            informing=devices,
            interval_s=round(interval, 1),
            devices_in_db=await ctx.backend.scalar("SELECT count(*) FROM devices"),
            acs_requests=sum(summary["acs_requests"].values()),
        )
        return [row]


class Soak(Scenario):
    """--soak-devices devices on a short periodic interval for --soak-seconds: the server's
    RSS, open descriptors and longest event loop stall sampled every 10 s (the first and last
    of each series in the row: flat means no leak), every HTTP status counted."""

    key = "8"
    name = "8 soak"
    title = "8 soak: {soak_devices} devices for {soak_seconds} s"

    async def run(self, ctx: Context) -> list[Row]:
        s = ctx.sizes
        prefix = f"SOAK{ctx.workers}X"
        await register(ctx.cwmp_url, s.soak_devices, prefix)
        stop = asyncio.Event()
        series: dict[str, list[float]] = {"rss_mb": [], "fds": [], "loop_stall_s": []}
        stalls: list[float] = []

        async def sample() -> None:
            stall_task = asyncio.create_task(sample_loop_stall(ctx.api_url, stop, stalls))
            while not stop.is_set():
                series["rss_mb"].append(rss_mb(ctx.server))
                series["fds"].append(open_fds(ctx.server))
                series["loop_stall_s"].append(max(stalls, default=0.0))
                stalls.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 10.0)
            await stall_task

        sampler = asyncio.create_task(sample())
        summary = await fleet_run(
            ctx.cwmp_url,
            devices=s.soak_devices,
            prefix=prefix,
            duration=s.soak_seconds,
            concurrency=s.soak_devices,
            interval=s.soak_interval,
            ramp=s.soak_interval,
        )
        stop.set()
        await sampler
        statuses = summary["http_statuses"]
        row = ctx.row(
            self,
            summary,
            http=" ".join(f"{code}x{n}" for code, n in sorted(statuses.items())),
            **{f"{k}_first_last": (v[0], v[-1]) if v else None for k, v in series.items()},
            stall_max_s=max(series["loop_stall_s"], default=None),
            samples=series,
        )
        return [row]


class ConsolePages(Scenario):
    """The console's pages with --fleet devices in the database, signed in as a browser is:
    the device list's first page, filtered pages, and the overview; p50/p99 of each (wall
    time on loopback), the worst in the row. The overview's first view on a worker computes
    its group-bys (later views are served from a few seconds' cache while it is computed
    again in the background): that first view is reported on its own, ``overview_cold_ms``."""

    key = "9"
    name = "9 console"
    title = "9 console pages at {fleet}"
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
    TftpFetches(),
    ProvisioningFetches(),
    LargeAnswer(),
    Soak(),
    Scale(),
    Headline(),
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
        summary = run_loop(
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
