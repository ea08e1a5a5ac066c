"""A fleet of simulated CPEs in one process: ``acs simulate``.

Each device is a ``CpeAgent`` with its own serial number, data model, credentials and
periodic interval, all sharing one connection-request listener on 127.0.0.1. Devices start
spread over their first interval (``ramp``), or all at once (a boot storm: ``ramp`` 0). An
ACS that answers 503 with Retry-After is obeyed. ``FleetStats`` gathers what a load test
wants to know (sessions per second, latency percentiles, errors by kind and HTTP status) for
a live line on the terminal and a JSON summary at the end.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from acs.cwmp import soap, xsd
from acs.simulator import datamodels
from acs.simulator.agent import ConnectionRequestListener, CpeAgent, SessionReport
from acs.simulator.model import CpeModel, Parameter


@dataclass
class FleetConfig:
    acs_url: str
    devices: int = 100
    model: str = "gateway"  # "gateway", "phone", or a JSON data model file
    interval: float = 60.0  # periodic inform interval
    duration: float | None = 60.0  # stop after this many seconds...
    sessions: int | None = None  # ...or after each device had this many sessions
    username: str = "acs"
    password: str = ""
    auth: str = "digest"
    serial_prefix: str = "SIM"
    first_index: int = 0
    concurrency: int = 500  # sessions in flight at once
    ramp: float | None = None  # spread the first sessions over this (default: interval)
    bootstrap: bool = True  # first session says 0 BOOTSTRAP (a new device)
    boot: bool = True  # first session says 1 BOOT (powered on); False: already running
    cwmp_version: str = "1.2"
    udp: bool = False
    timeout: float = 30.0
    seed: int = 1


def make_model(kind: str, index: int, serial_prefix: str) -> CpeModel:
    """The data model of device ``index``: a bundled one, or one from a JSON file."""
    serial = f"{serial_prefix}{index:08d}"
    if kind == "gateway":
        return datamodels.gateway(serial)
    if kind == "phone":
        mac = (
            f"02:00:{(index >> 24) & 0xFF:02x}:{(index >> 16) & 0xFF:02x}:"
            f"{(index >> 8) & 0xFF:02x}:{index & 0xFF:02x}"
        )
        return datamodels.phone(mac)
    return model_from_file(Path(kind), serial)


def model_from_file(path: Path, serial: str) -> CpeModel:
    """A data model from JSON: ``{"manufacturer", "oui", "product_class", "root",
    "parameters": {name: {"value", "type", "writable"}}}``; ``{serial}`` in values is the
    device's serial number."""
    data = json.loads(path.read_text())
    model = CpeModel(
        data.get("manufacturer", "Simulated"),
        data["oui"],
        data.get("product_class", ""),
        serial,
        root=data.get("root", "Device"),
    )
    for name, spec in data["parameters"].items():
        value = spec.get("value", "")
        if isinstance(value, str):
            value = value.replace("{serial}", serial)
        model.parameters[name] = Parameter(
            value, xsd.normalize_type(spec.get("type")), bool(spec.get("writable", False))
        )
    return model


def first_events(config: FleetConfig) -> tuple[str, ...]:
    """What a device's first session in this run says: a new device bootstraps, a device
    just powered on boots, one already running informs periodically."""
    if config.bootstrap:
        return ("0 BOOTSTRAP", "1 BOOT")
    return ("1 BOOT",) if config.boot else ("2 PERIODIC",)


@dataclass
class FleetStats:
    started: float = field(default_factory=time.monotonic)
    ok: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    retries_after_503: int = 0
    in_flight: int = 0
    _window: list[float] = field(default_factory=list)

    def record(self, report: SessionReport) -> None:
        now = time.monotonic()
        if report.ok:
            self.ok += 1
            self.latencies.append(report.latency)
            self._window.append(now)
        else:
            self.failed += 1
            self.errors[_error_kind(report)] += 1
        if report.status is not None:
            self.statuses[report.status] += 1
        for name in report.requests:
            self.requests[name] += 1

    def rate(self, seconds: float = 5.0) -> float:
        """Sessions per second over the last few seconds."""
        cutoff = time.monotonic() - seconds
        self._window = [t for t in self._window if t >= cutoff]
        elapsed = min(seconds, time.monotonic() - self.started)
        return len(self._window) / elapsed if elapsed > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        lat = sorted(self.latencies)
        return {
            "elapsed_s": round(elapsed, 3),
            "sessions_ok": self.ok,
            "sessions_failed": self.failed,
            "sessions_per_s": round(self.ok / elapsed, 1) if elapsed else 0.0,
            "latency_ms": {
                "p50": _pct(lat, 0.50),
                "p90": _pct(lat, 0.90),
                "p99": _pct(lat, 0.99),
                "max": round(lat[-1] * 1000, 2) if lat else None,
            },
            "http_statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": dict(self.errors.most_common()),
            "acs_requests": dict(self.requests.most_common()),
            "retries_after_503": self.retries_after_503,
        }

    def line(self) -> str:
        s = self.summary()
        lat = s["latency_ms"]
        return (
            f"{s['elapsed_s']:7.1f}s  ok {self.ok:8d}  failed {self.failed:6d}  "
            f"{self.rate():8.1f}/s  p50 {lat['p50'] or 0:7.1f} ms  "
            f"p99 {lat['p99'] or 0:7.1f} ms  in flight {self.in_flight:5d}"
        )


def _pct(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return round(sorted_values[index] * 1000, 2)


def _error_kind(report: SessionReport) -> str:
    if report.status is not None:
        return f"HTTP {report.status}"
    return (report.error or "unknown").split(":", 1)[0]


class Fleet:
    def __init__(self, config: FleetConfig):
        self.config = config
        self.stats = FleetStats()
        self.agents: list[CpeAgent] = []
        self.listener = ConnectionRequestListener()
        self._limit = asyncio.Semaphore(config.concurrency)
        self._stop = asyncio.Event()

    async def start(self) -> None:
        c = self.config
        await self.listener.start(udp=c.udp)
        namespace = soap.CWMP_NAMESPACES[c.cwmp_version]
        for i in range(c.first_index, c.first_index + c.devices):
            agent = CpeAgent(
                make_model(c.model, i, c.serial_prefix),
                c.acs_url,
                username=c.username,
                password=c.password,
                auth=c.auth,
                namespace=namespace,
                listener=self.listener,
                timeout=c.timeout,
            )
            await agent.start()
            interval = f"{agent.model.root}.ManagementServer.PeriodicInformInterval"
            if interval in agent.model.parameters:
                agent.model.parameters[interval].value = int(c.interval)
            self.agents.append(agent)

    async def stop(self) -> None:
        self._stop.set()
        await self.listener.stop()

    async def session(self, agent: CpeAgent, events: tuple[str, ...]) -> SessionReport:
        """One session, within the concurrency limit, retrying after a 503's Retry-After."""
        while True:
            async with self._limit:
                self.stats.in_flight += 1
                try:
                    report = await agent.session(*events)
                finally:
                    self.stats.in_flight -= 1
            if report.retry_after is not None and not self._stop.is_set():
                self.stats.retries_after_503 += 1
                self.stats.statuses[503] += 1
                # obey, as a CPE that honours Retry-After does (the ACS spreads the values);
                # a second of jitter keeps devices told the same value from moving in step
                await asyncio.sleep(report.retry_after + random.uniform(0.0, 1.0))
                continue
            self.stats.record(report)
            return report

    async def _device(self, agent: CpeAgent, deadline: float | None, rng: random.Random) -> None:
        c = self.config
        ramp = c.interval if c.ramp is None else c.ramp
        await asyncio.sleep(rng.uniform(0, ramp) if ramp > 0 else 0)
        events = first_events(c)
        done = 0
        while not self._stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                return
            started = time.monotonic()
            await self.session(agent, events)
            done += 1
            # what the ACS asked for (a download, a reboot...) runs at once, as on a CPE
            while agent.wake.is_set() and not self._stop.is_set():
                agent.wake.clear()
                follow = tuple(dict.fromkeys(e for e in agent.wake_events if e[0].isdigit()))
                agent.wake_events.clear()
                await self.session(agent, follow)
                done += 1
            if c.sessions is not None and done >= c.sessions:
                return
            events = ("2 PERIODIC",)
            wait = c.interval - (time.monotonic() - started)
            try:
                await asyncio.wait_for(self._wait_wake(agent), max(0.0, wait))
                events = tuple(dict.fromkeys(e for e in agent.wake_events if e[0].isdigit())) or (
                    "6 CONNECTION REQUEST",
                )
                agent.wake.clear()
                agent.wake_events.clear()
            except TimeoutError:
                pass

    async def _wait_wake(self, agent: CpeAgent) -> None:
        await agent.wake.wait()

    async def run(self, progress: Callable[[FleetStats], None] | None = None) -> dict[str, Any]:
        """Run every device until the duration or session count is reached."""
        c = self.config
        rng = random.Random(c.seed)
        self.stats = FleetStats()
        deadline = time.monotonic() + c.duration if c.duration is not None else None
        workers = [asyncio.create_task(self._device(a, deadline, rng)) for a in self.agents]
        reporter = None
        if progress is not None:

            async def report() -> None:
                while True:
                    await asyncio.sleep(1.0)
                    progress(self.stats)

            reporter = asyncio.create_task(report())
        try:
            await asyncio.gather(*workers)
        finally:
            if reporter is not None:
                reporter.cancel()
        return self.stats.summary()


async def simulate(config: FleetConfig, *, out: TextIO = sys.stderr) -> dict[str, Any]:
    fleet = Fleet(config)
    await fleet.start()
    live = out.isatty()

    def progress(stats: FleetStats) -> None:
        print(("\r" if live else "") + stats.line(), end="" if live else "\n", file=out, flush=True)

    try:
        summary = await fleet.run(progress)
    finally:
        await fleet.stop()
    if live:
        print(file=out)
    return {"config": {k: v for k, v in vars(config).items() if k != "password"}, **summary}
