"""Metrics, exposed in Prometheus's formats through ``prometheus_client``.

Two kinds:

* What happened (counters, histograms): counted in the worker where it happened. With
  several workers, ``acs serve`` runs them in ``prometheus_client``'s multiprocess mode:
  each worker writes its values to files of its own in a directory the supervisor made
  (``PROMETHEUS_MULTIPROC_DIR``, set before the workers start), and a scrape answered by any
  worker reads them all, so counters are the sum over the node's workers (a worker that died
  keeps its counts; its live gauges are dropped by ``worker_exited``).
* What is (devices by status, tasks by status, open sessions): read from the database at
  scrape time (``fleet``), the same whichever worker or node answers.

Labels take values from bounded sets only (a CPE must not be able to make a label value
up): event codes and fault codes outside the standard's are counted as ``other``.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from acs.db import tables
from acs.db.engine import Database
from acs.services import tasks
from acs.services.devices import count_by_status

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

# The registry of acs's own metrics (not prometheus_client's global one, which other
# libraries may share). In a single process its values are in memory; in multiprocess mode
# they are in the files, and ``MultiProcessCollector`` reads them instead.
REGISTRY: Final = CollectorRegistry(auto_describe=True)

CWMP_RESPONSES: Final = Counter(
    "acs_cwmp_responses",
    "HTTP responses of the CWMP endpoint, by status.",
    ["status"],
    registry=REGISTRY,
)
INFORMS: Final = Counter(
    "acs_cwmp_informs",
    "Informs that opened a session, by event code (one per code an Inform carries).",
    ["event"],
    registry=REGISTRY,
)
SESSIONS: Final = Counter(
    "acs_cwmp_sessions",
    "CWMP sessions that ended, by outcome: completed (the CPE's empty POST answered 204), "
    "replaced (a new Inform of the same CPE), expired, protocol_error, unreadable.",
    ["outcome"],
    registry=REGISTRY,
)
SESSIONS_REFUSED: Final = Counter(
    "acs_cwmp_sessions_refused",
    "Informs that opened no session, by reason: authentication (wrong credentials), busy "
    "(the device is in a session elsewhere), invalid (fault 8003), admission (too many open "
    "sessions), inflight (too many requests held).",
    ["reason"],
    registry=REGISTRY,
)
SESSION_SECONDS: Final = Histogram(
    "acs_cwmp_session_duration_seconds",
    "Duration of CWMP sessions that ended, from the Inform to the end.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    registry=REGISTRY,
)
RPCS: Final = Counter(
    "acs_cwmp_rpcs",
    "ACS requests to CPEs, by method and outcome: response, fault, unanswered.",
    ["rpc", "outcome"],
    registry=REGISTRY,
)
CPE_FAULTS: Final = Counter(
    "acs_cpe_faults",
    "Faults CPEs reported, by fault code (9000-9899, else other).",
    ["code"],
    registry=REGISTRY,
)
TASK_OUTCOMES: Final = Counter(
    "acs_task_outcomes",
    "Task outcomes, by RPC and outcome: done, fault, timed_out, expired, cancelled, requeued.",
    ["rpc", "outcome"],
    registry=REGISTRY,
)
CONNECTION_REQUESTS: Final = Counter(
    "acs_connection_requests",
    "Connection requests, by the path that settled them (http, udp, xmpp, none) and outcome "
    "(ok, failed).",
    ["via", "outcome"],
    registry=REGISTRY,
)
STUN_REQUESTS: Final = Counter(
    "acs_stun_requests",
    "Datagrams at the STUN server, by outcome: changed (a device's NAT binding recorded "
    "anew), kept (its binding again), answered (nothing to record), unknown_user, "
    "unauthorized (401: a new binding must be authenticated), integrity_failed, refused, "
    "malformed, dropped (too many at once), unavailable (storage).",
    ["outcome"],
    registry=REGISTRY,
)
XMPP_SESSIONS: Final = Counter(
    "acs_xmpp_sessions",
    "The ACS's XMPP session, by event: connected, lost (it was up), failed (a connection or "
    "sign-in attempt that did not succeed).",
    ["event"],
    registry=REGISTRY,
)
FILE_TRANSFERS: Final = Counter(
    "acs_file_transfers",
    "Transfers of provisioning files (stored files and phone configurations) over HTTP(S), "
    "TFTP and FTP, by protocol and outcome (ok: sent, or HTTP 304; refused: not authorised, "
    "not allowed, a write; missing: no such file; redirected: HTTP 302 to another server; "
    "aborted: the client ended it or went away, or the server stopped; failed: anything else).",
    ["protocol", "outcome"],
    registry=REGISTRY,
)
FILE_BYTES: Final = Counter(
    "acs_file_transfer_bytes",
    "Bytes of files sent, by protocol.",
    ["protocol"],
    registry=REGISTRY,
)
SIP_PNP_NOTIFIES: Final = Counter(
    "acs_sip_pnp_notifies",
    "NOTIFYs sent to phones that asked for their provisioning URL (SIP PnP), by outcome: "
    "done (the phone answered 2xx), rejected (3xx-6xx), timeout (no answer), aborted "
    "(the server stopped).",
    ["outcome"],
    registry=REGISTRY,
)
SIP_PNP_DROPPED: Final = Counter(
    "acs_sip_pnp_dropped",
    "Datagrams and phones the SIP PnP responder did not answer, by reason: malformed, "
    "too_large, method, event, no_mac, mac_prefix, model, unknown_phone, unavailable, busy, "
    "stray.",
    ["reason"],
    registry=REGISTRY,
)
WEBHOOK_DELIVERIES: Final = Counter(
    "acs_webhook_deliveries",
    "Webhook delivery attempts, by outcome: delivered, failed (retried later or given up).",
    ["outcome"],
    registry=REGISTRY,
)
HTTP_CONNECTIONS_CLOSED: Final = Counter(
    "acs_http_connections_closed",
    "Connections a listener (cwmp, api) closed before the client did, by reason: per_source "
    "(past ACS_HTTP_MAX_CONNECTIONS_PER_SOURCE, closed unread), headers and body (past their "
    "read deadline), idle (the longest idle, past ACS_HTTP_IDLE_CONNECTIONS).",
    ["listener", "reason"],
    registry=REGISTRY,
)
DB_POOL: Final = Gauge(
    "acs_db_pool_connections",
    "Database connections of the workers' pools, by state (in_use, idle); PostgreSQL.",
    ["state"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
LOOP_LAG_MAX: Final = Gauge(
    "acs_event_loop_lag_max_seconds",
    "The longest a worker's event loop was late to run a ready task in the last 10 s "
    "(the largest of the workers').",
    multiprocess_mode="livemax",
    registry=REGISTRY,
)
LOOP_LAG: Final = Histogram(
    "acs_event_loop_lag_seconds",
    "How late the event loop ran a timer due every 0.1 s: stalls of a worker.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)

# TR-069 3.7.1.5 (Table 7) event codes, and the CTC ones acs acts on.
STANDARD_EVENTS: Final = frozenset(
    {
        "0 BOOTSTRAP",
        "1 BOOT",
        "2 PERIODIC",
        "3 SCHEDULED",
        "4 VALUE CHANGE",
        "5 KICKED",
        "6 CONNECTION REQUEST",
        "7 TRANSFER COMPLETE",
        "8 DIAGNOSTICS COMPLETE",
        "9 REQUEST DOWNLOAD",
        "10 AUTONOMOUS TRANSFER COMPLETE",
        "11 DU STATE CHANGE COMPLETE",
        "12 AUTONOMOUS DU STATE CHANGE COMPLETE",
        "13 WAKEUP",
        "14 HEARTBEAT",
        "M Reboot",
        "M ScheduleInform",
        "M Download",
        "M ScheduleDownload",
        "M Upload",
        "M ChangeDUState",
        "X CT-COM BIND",
        "X CT-COM ACCOUNTCHANGE",
        "X CT-COM ALARM",
        "X CT-COM MONITOR",
    }
)
_METHOD: Final = re.compile(r"^[A-Za-z]{1,64}$")


def file_transfer(protocol: str, outcome: str, sent: int) -> None:
    """One transfer of a provisioning file, on any protocol, and the bytes it sent."""
    FILE_TRANSFERS.labels(protocol, outcome).inc()
    if sent:
        FILE_BYTES.labels(protocol).inc(sent)


def sip_pnp_notify(outcome: str) -> None:
    """One NOTIFY's transaction ended (``acs.sip.pnp.Outcome``)."""
    SIP_PNP_NOTIFIES.labels(outcome).inc()


def sip_pnp_dropped(reason: str) -> None:
    """A datagram or a phone the SIP PnP responder did not answer (``acs.sip.pnp.Drop``)."""
    SIP_PNP_DROPPED.labels(reason).inc()


def event_label(code: str) -> str:
    return code if code in STANDARD_EVENTS else "other"


def fault_label(code: int) -> str:
    return str(code) if 8000 <= code <= 9899 else "other"


def rpc_label(name: str) -> str:
    return name if _METHOD.match(name) else "other"


# --- what the supervisor does -------------------------------------------------------------


def multiprocess_dir() -> str | None:
    """The directory of the workers' metric files, if this process counts into one."""
    return os.environ.get(MULTIPROC_ENV) or None


def worker_exited(pid: int) -> None:
    """A worker is gone: its live gauges (pool, loop lag) stop counting; its counters stay."""
    path = multiprocess_dir()
    if path is not None:
        multiprocess.mark_process_dead(pid, path)


# --- what a worker measures of itself -------------------------------------------------------


class WorkerMonitor:
    """Runs in each worker: how late its event loop runs a timer due every ``period``
    (``LOOP_LAG``; the largest of the last ``window`` seconds in ``LOOP_LAG_MAX``), and its
    database pool's connections (``DB_POOL``), published once a second."""

    def __init__(self, db: Database, period: float = 0.1, window: float = 10.0):
        self.db = db
        self.period = period
        self.window = window
        self.recent: deque[tuple[float, float]] = deque()  # (when, lag) within the window

    def observe(self, now: float, lag: float) -> None:
        LOOP_LAG.observe(lag)
        self.recent.append((now, lag))
        while self.recent and self.recent[0][0] < now - self.window:
            self.recent.popleft()

    def publish(self) -> None:
        LOOP_LAG_MAX.set(max((lag for _, lag in self.recent), default=0.0))
        pool = self.db.pool_connections()
        if pool is not None:
            in_use, idle = pool
            DB_POOL.labels("in_use").set(in_use)
            DB_POOL.labels("idle").set(idle)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        published = loop.time()
        while True:
            due = loop.time() + self.period
            await asyncio.sleep(self.period)
            now = loop.time()
            self.observe(now, max(0.0, now - due))
            if now - published >= 1.0:
                self.publish()
                published = now


# --- the fleet, from the database -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fleet:
    """The gauges read from the database at scrape time."""

    devices: dict[str, int]
    tasks: dict[str, int]
    sessions_open: int
    faults_last_hour: int

    def families(self) -> Iterator[Metric]:
        devices = GaugeMetricFamily(
            "acs_devices", "Devices known to the ACS, by monitoring status.", labels=["status"]
        )
        for status, n in self.devices.items():
            devices.add_metric([status], n)
        tasks = GaugeMetricFamily("acs_tasks", "Tasks by status.", labels=["status"])
        for status, n in sorted(self.tasks.items()):
            tasks.add_metric([status], n)
        yield devices
        yield tasks
        yield GaugeMetricFamily(
            "acs_cwmp_sessions_open", "CWMP sessions open now.", value=self.sessions_open
        )
        yield GaugeMetricFamily(
            "acs_faults_last_hour", "Faults recorded in the last hour.", value=self.faults_last_hour
        )


async def fleet(db: Database, now: datetime) -> Fleet:
    s, f = tables.sessions, tables.fault_records
    devices = await count_by_status(db, now)
    task_counts = await tasks.count_by_status(db)
    async with db.read() as conn:
        sessions = await conn.scalar(select(func.count()).select_from(s).where(s.c.expires > now))
        recent_faults = await conn.scalar(
            select(func.count()).select_from(f).where(f.c.time > now - timedelta(hours=1))
        )
    return Fleet(
        devices=devices,
        tasks=task_counts,
        sessions_open=int(sessions or 0),
        faults_last_hour=int(recent_faults or 0),
    )


class _Scrape(Collector):
    """One scrape's collector: the workers' metrics and the fleet's."""

    def __init__(self, fleet: Fleet):
        self.fleet = fleet

    def collect(self) -> Iterable[Metric]:
        path = multiprocess_dir()
        source: Collector = (
            REGISTRY if path is None else multiprocess.MultiProcessCollector(None, path)
        )
        yield from source.collect()
        yield from self.fleet.families()


def render(fleet: Fleet, accept: str | None) -> tuple[bytes, str]:
    """The exposition for a scrape with this Accept header (Prometheus text or OpenMetrics):
    (body, content type)."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(_Scrape(fleet)), content_type
