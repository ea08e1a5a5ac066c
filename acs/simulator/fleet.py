"""A fleet of simulated CPEs in one process: ``acs simulate``.

Each device is a ``CpeAgent`` with its own serial number, data model, credentials and
periodic interval, all sharing one connection-request listener on the interface toward the
ACS (127.0.0.1 for an ACS on this host); behind a NAT, each may keep a STUN binding and an
XMPP connection of its own (``acs.simulator.nat``). Devices start
spread over their first interval (``ramp``), or all at once (a boot storm: ``ramp`` 0). An
ACS that answers 503 with Retry-After is obeyed. Devices inform at the interval their data
model says (PeriodicInformInterval / PeriodicInformEnable, which the ACS may set), unless the
fleet forces one. With a state file (``acs.simulator.state``) they keep what a CPE keeps in
flash across restarts. ``FleetStats`` gathers what a load test wants to know (sessions per
second, latency percentiles, errors by kind and HTTP status) for a live line on the terminal
and a JSON summary at the end, also when the run is stopped by SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from acs.cwmp import soap, xsd
from acs.simulator import datamodels, nat
from acs.simulator.agent import ConnectionRequestListener, CpeAgent, SessionReport
from acs.simulator.model import CpeModel, Parameter
from acs.simulator.state import Flash, StateFile, StateFileError

log = logging.getLogger("acs.simulator")


@dataclass
class FleetConfig:
    acs_url: str
    devices: int = 100
    model: str = "gateway"  # "gateway", "phone", or a JSON data model file
    interval: float = 60.0  # periodic inform interval (see interval_forced)
    # True: every device informs every `interval` seconds, whatever its data model says.
    # False: `interval` is only the PeriodicInformInterval a device starts with (unless the
    # state file had it); then each follows its PeriodicInformInterval/Enable as the ACS sets.
    interval_forced: bool = True
    duration: float | None = 60.0  # stop after this many seconds...
    sessions: int | None = None  # ...or after each device had this many sessions
    username: str = "acs"
    password: str = ""
    auth: str = "digest"
    serial_prefix: str = "SIM"
    first_index: int = 0
    concurrency: int = 500  # sessions in flight at once
    ramp: float | None = None  # spread the first sessions over this (default: each
    # device's first interval)
    bootstrap: bool = True  # first session says 0 BOOTSTRAP (a new device)
    boot: bool = True  # first session says 1 BOOT (powered on); False: already running
    cwmp_version: str = "1.2"
    udp: bool = False
    timeout: float = 30.0
    seed: int = 1
    state: str | None = None  # the state file (JSON): read at start, written at stop...
    state_every: float = 10.0  # ...and every this many seconds while it changes
    boot_seconds: float = 0.0  # how long a device is silent after a reboot or reset
    stun: bool = False  # keep a NAT binding with the ACS's STUN server (acs.simulator.nat)
    xmpp: str | None = None  # sign in to XMPP as provisioned ("host:port": connect there)
    xmpp_ca: str | None = None  # CA certificates for the XMPP server's


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
        self.flashes: list[Flash] = []  # what each agent keeps across restarts
        self.state: StateFile | None = None
        self.listener = ConnectionRequestListener()
        self._limit = asyncio.Semaphore(config.concurrency)
        self._stopping = False
        # what _pause waits on, each sleep its own future, ended at once by a stop: a set, as
        # asyncio.Event keeps its waiters in a deque that each wake searches (33,334 devices
        # waiting on one Event: an eighth of the fleet's CPU)
        self._sleeping: set[asyncio.Future[None]] = set()
        self._workers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Make the devices (restoring those the state file knows) and their listener.
        Raises ``StateFileError`` for a state file that cannot be used."""
        c = self.config
        self.state = StateFile(Path(c.state)) if c.state else None
        # listen where the ACS can reach us (as a CPE's ConnectionRequestURL names its WAN
        # address): the interface toward the ACS, 127.0.0.1 for an ACS on this host
        acs = urlsplit(c.acs_url)
        self.listener.host = nat.local_address_towards(acs.hostname or "127.0.0.1", acs.port or 80)
        await self.listener.start(udp=c.udp)
        namespace = soap.CWMP_NAMESPACES[c.cwmp_version]
        for i in range(c.first_index, c.first_index + c.devices):
            model = make_model(c.model, i, c.serial_prefix)
            flash = Flash(model)
            known = self.state is not None and self.state.restore(flash)
            agent = CpeAgent(
                model,
                c.acs_url,
                username=c.username,
                password=c.password,
                auth=c.auth,
                namespace=namespace,
                listener=self.listener,
                cr_host=self.listener.host,
                timeout=c.timeout,
                boot_seconds=c.boot_seconds,
            )
            if c.stun or c.xmpp is not None:
                agent.nat = nat.NatClients(
                    agent,
                    stun_on=c.stun,
                    xmpp_on=c.xmpp is not None,
                    xmpp_server=nat.host_port(c.xmpp) if c.xmpp else None,
                    xmpp_ca=Path(c.xmpp_ca) if c.xmpp_ca else None,
                )
            await agent.start()
            if agent.nat is not None:
                await agent.nat.update()  # a device the state file restored: as it was set
            interval = f"{model.root}.ManagementServer.PeriodicInformInterval"
            if interval in model.parameters and not known:
                model.parameters[interval].value = int(c.interval)
            self.agents.append(agent)
            self.flashes.append(flash)

    @property
    def stopping(self) -> bool:
        return self._stopping

    def request_stop(self) -> None:
        """Stop gracefully: no new sessions; those in flight finish, then ``run`` returns."""
        self._stopping = True
        for sleep in self._sleeping:
            if not sleep.done():
                sleep.set_result(None)

    def abort(self) -> None:
        """Stop now: sessions in flight are cancelled (and not counted)."""
        self.request_stop()
        for worker in self._workers:
            worker.cancel()

    async def stop(self) -> None:
        """End the run and write the state file (if any) one last time (which may raise
        ``StateFileError``)."""
        self.request_stop()
        try:
            if self.state is not None and self.flashes:
                self.state.save(self.flashes)
        finally:
            for agent in self.agents:
                if agent.nat is not None:
                    await agent.nat.close()
            await self.listener.stop()

    def periodic_interval(self, agent: CpeAgent) -> float | None:
        """Seconds between the device's periodic Informs from now on; None: it has none."""
        c = self.config
        if c.interval_forced:
            return c.interval
        return agent.periodic_inform_interval(default=c.interval)

    async def _pause(
        self, seconds: float | None, deadline: float | None, agent: CpeAgent | None = None
    ) -> bool:
        """Wait ``seconds`` (None: no limit) but not past ``deadline`` or a stop; True if
        ``agent`` was woken meanwhile (a connection request, a reboot...)."""
        if deadline is not None:
            left = deadline - time.monotonic()
            seconds = left if seconds is None else min(seconds, left)
        wake = agent.wake if agent is not None else None
        if wake is not None and wake.is_set():
            return True
        if self._stopping or (seconds is not None and seconds <= 0):
            return False
        stopped: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleeping.add(stopped)
        waiters: list[asyncio.Future[Any]] = [stopped]
        if wake is not None:
            waiters.append(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._sleeping.discard(stopped)
            for waiter in waiters:
                waiter.cancel()
        return wake is not None and wake.is_set()

    async def session(self, agent: CpeAgent, events: tuple[str, ...]) -> SessionReport:
        """One session, within the concurrency limit, retrying after a 503's Retry-After."""
        while True:
            async with self._limit:
                self.stats.in_flight += 1
                try:
                    report = await agent.session(*events)
                finally:
                    self.stats.in_flight -= 1
            if report.retry_after is not None and not self._stopping:
                # obey, as a CPE that honours Retry-After does (the ACS spreads the values);
                # a second of jitter keeps devices told the same value from moving in step
                await self._pause(report.retry_after + random.uniform(0.0, 1.0), None)
                if not self._stopping:
                    self.stats.retries_after_503 += 1
                    self.stats.statuses[503] += 1
                    continue
            self.stats.record(report)  # a 503 followed by a stop counts as a failure
            return report

    async def _device(self, agent: CpeAgent, deadline: float | None, rng: random.Random) -> None:
        c = self.config
        first = self.periodic_interval(agent)
        ramp = c.ramp if c.ramp is not None else (c.interval if first is None else first)
        await self._pause(rng.uniform(0, ramp) if ramp > 0 else 0, deadline)
        events = first_events(c)
        done = 0
        while not self._stopping:
            if deadline is not None and time.monotonic() >= deadline:
                return
            started = time.monotonic()
            await self.session(agent, events)
            done += 1
            # what the ACS asked for (a download, a reboot...) runs at once, as on a CPE
            while agent.wake.is_set() and not self._stopping:
                await self.session(agent, agent.take_wake_events())
                done += 1
            if c.sessions is not None and done >= c.sessions:
                return
            # the interval as the session left it: what the ACS set applies from now on
            interval = self.periodic_interval(agent)
            wait = None if interval is None else interval - (time.monotonic() - started)
            events = ("2 PERIODIC",)
            if await self._pause(wait, deadline, agent):
                events = agent.take_wake_events() or ("6 CONNECTION REQUEST",)

    async def _save_state_every(self, seconds: float) -> None:
        assert self.state is not None
        while True:
            await asyncio.sleep(seconds)
            try:
                # in the loop, not a thread: a write still running in a thread could land
                # after the last one, at stop, and put older state back
                self.state.save(self.flashes)
            except StateFileError as exc:  # try again next time; the write at stop says it
                log.warning("%s", exc)

    async def run(self, progress: Callable[[FleetStats], None] | None = None) -> dict[str, Any]:
        """Run every device until the duration or session count is reached, or a stop."""
        c = self.config
        rng = random.Random(c.seed)
        self.stats = FleetStats()
        deadline = time.monotonic() + c.duration if c.duration is not None else None
        self._workers = [asyncio.create_task(self._device(a, deadline, rng)) for a in self.agents]
        helpers = []
        if progress is not None:

            async def report() -> None:
                while True:
                    await asyncio.sleep(1.0)
                    progress(self.stats)

            helpers.append(asyncio.create_task(report()))
        if self.state is not None:
            helpers.append(asyncio.create_task(self._save_state_every(c.state_every)))
        try:
            outcomes = await asyncio.gather(*self._workers, return_exceptions=True)
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(
                outcome, asyncio.CancelledError
            ):
                raise outcome
        return self.stats.summary()


async def simulate(config: FleetConfig, *, out: TextIO = sys.stderr) -> dict[str, Any]:
    """Run a fleet as ``acs simulate`` does: a live line on ``out``, the summary at the end.
    SIGINT or SIGTERM stops it gracefully (sessions in flight finish; a second signal
    cancels them) and it still returns the summary."""
    fleet = Fleet(config)
    live = out.isatty()
    loop = asyncio.get_running_loop()
    # SIGINT stays ignored where the shell that started us ignores it (a background job)
    signals = [signal.SIGTERM]
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signals.append(signal.SIGINT)

    def progress(stats: FleetStats) -> None:
        print(("\r" if live else "") + stats.line(), end="" if live else "\n", file=out, flush=True)

    def on_signal() -> None:
        if fleet.stopping:
            fleet.abort()
            return
        fleet.request_stop()
        print(
            ("\n" if live else "") + "stopping: sessions in flight finish (signal again: cancel)",
            file=out,
            flush=True,
        )

    for sig in signals:
        loop.add_signal_handler(sig, on_signal)
    try:
        await fleet.start()
        summary = await fleet.run(progress)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        await fleet.stop()
    if live:
        print(file=out)
    return {"config": {k: v for k, v in vars(config).items() if k != "password"}, **summary}
