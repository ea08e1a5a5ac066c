"""The acs benchmark: every scenario against the real server on 127.0.0.1, on SQLite and
PostgreSQL, with 1 and 2 workers, next to the ceiling (a bare ASGI app on the same uvicorn
set-up answering the same exchanges with canned bytes).

    python -m bench.run                        # everything (about 20-30 minutes)
    python -m bench.run --backends sqlite --workers 1 --quick

Scenarios:
  1 empty      periodic informs with nothing queued (Inform, empty POST, 204)
  2 tasks      sessions that each run one GetParameterValues and one SetParameterValues
  3 storm      a boot storm: 10,000 never-seen devices bootstrapping at once
  4 scale      scenario 1 with 1,000,000 devices in the database (vs 1,000)
  5 api        GET /api/v1/devices by a parameter value and by status, at 1,000,000 devices

Prints a table (sessions/s, p50/p99 session latency, errors, server peak RSS, ratio to the
ceiling) and writes it as JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from acs.services import task_specs, tasks
from bench.backend import INDEXED, Backend, fill
from bench.load import errors_of, fleet_run, measure_empty, register
from bench.meter import CpuMeter, peak_rss_mb
from bench.serve import Process, free_port

ROOT = Path(__file__).resolve().parent


@dataclass
class Row:
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


# What scenario 2 queues for every device: the tasks of an operator's, as JSON to the API.
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


async def storm(backend: Backend, url: str, prefix: str, devices: int) -> dict[str, Any]:
    started = time.monotonic()
    summary = await fleet_run(
        url,
        devices=devices,
        prefix=prefix,
        sessions=1,
        concurrency=devices,
        bootstrap=True,
        ramp=0.0,
    )
    drained = round(time.monotonic() - started, 1)
    registered = await backend.scalar(
        f"SELECT count(*) FROM devices WHERE serial_number LIKE '{prefix}%'"
    )
    provisioned = await backend.scalar(
        f"SELECT count(*) FROM devices WHERE serial_number LIKE '{prefix}%' "
        "AND cr_username IS NOT NULL AND cr_username <> ''"
    )
    statuses = summary["http_statuses"]
    bad_5xx = {k: v for k, v in statuses.items() if k.startswith("5") and k != "503"}
    return {
        **summary,
        "drained_s": drained,
        "registered": registered,
        "provisioned": provisioned,
        "other_5xx": bad_5xx,
    }


async def api_latency(api_url: str, queries: list[dict[str, str]], repeat: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(
        base_url=api_url, auth=("bench", "bench-password"), timeout=60
    ) as client:
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


def ceiling(
    workers: int, work: Path, seconds: float, devices: int, concurrency: int, repeat: int = 1
) -> tuple[dict[str, Any], float]:
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
                devices,
                "CEIL",
                seconds,
                concurrency,
                auth="none",
                repeat=repeat,
                meter=CpuMeter(server, postgres=False),
            )
        )
        return summary, peak_rss_mb(server)
    finally:
        server.stop()


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


async def run_backend(
    kind: str, args: argparse.Namespace, work: Path, ceilings: dict[int, float]
) -> list[Row]:
    rows: list[Row] = []
    backend = Backend(kind, work)
    await backend.create()
    small = args.devices
    try:
        for workers in args.workers:
            server, url, api = backend.serve(workers)
            try:
                prefix = "BASE"
                if workers == args.workers[0]:
                    await register(url, small, prefix)
                if "1" in args.scenarios or "4" in args.scenarios:
                    print(f"[{kind} w{workers}] 1 empty sessions", flush=True)
                    s1 = await measure_empty(
                        url,
                        small,
                        prefix,
                        args.seconds,
                        args.concurrency,
                        repeat=args.repeat,
                        meter=CpuMeter(server, postgres=kind == "postgresql"),
                    )
                    rows.append(
                        row_from(
                            "1 empty",
                            kind,
                            workers,
                            s1,
                            peak_rss_mb(server),
                            devices_in_db=await backend.scalar("SELECT count(*) FROM devices"),
                        )
                    )
                if "2" not in args.scenarios and "3" not in args.scenarios:
                    continue
                print(f"[{kind} w{workers}] 2 GPV+SPV sessions", flush=True)
                queued = await queue_tasks(backend, prefix)
                s2 = await fleet_run(
                    url, devices=small, prefix=prefix, sessions=1, concurrency=args.concurrency
                )
                left = await backend.scalar(
                    "SELECT count(*) FROM tasks WHERE created_by = 'bench' AND status <> 'done'"
                )
                rows.append(
                    row_from(
                        "2 GPV+SPV",
                        kind,
                        workers,
                        s2,
                        peak_rss_mb(server),
                        tasks=queued,
                        tasks_not_done=left,
                    )
                )
                print(f"[{kind} w{workers}] 3 boot storm of {args.storm}", flush=True)
                s3 = await storm(backend, url, f"STORM{workers}X", args.storm)
                rows.append(
                    row_from(
                        "3 boot storm",
                        kind,
                        workers,
                        s3,
                        peak_rss_mb(server),
                        drained_s=s3["drained_s"],
                        registered=s3["registered"],
                        provisioned=s3["provisioned"],
                        retries_503=s3["retries_after_503"],
                        other_5xx=s3["other_5xx"],
                    )
                )
            finally:
                server.stop()
        if "4" not in args.scenarios and "5" not in args.scenarios:
            return finish(rows, ceilings)
        print(f"[{kind}] filling to {args.fleet} devices", flush=True)
        filled = await fill(backend, args.fleet)
        for workers in args.workers:
            server, url, api = backend.serve(workers)
            try:
                print(f"[{kind} w{workers}] 4 empty sessions at {args.fleet}", flush=True)
                s4 = await measure_empty(
                    url,
                    small,
                    "BASE",
                    args.seconds,
                    args.concurrency,
                    repeat=args.repeat,
                    meter=CpuMeter(server, postgres=kind == "postgresql"),
                )
                base = next(
                    r
                    for r in rows
                    if r.scenario == "1 empty" and r.workers == workers and r.backend == kind
                )
                rows.append(
                    row_from(
                        "4 scale",
                        kind,
                        workers,
                        s4,
                        peak_rss_mb(server),
                        devices_in_db=await backend.scalar("SELECT count(*) FROM devices"),
                        fill_s=filled,
                        vs_1k=round(s4["sessions_per_s"] / base.sessions_per_s, 2)
                        if base.sessions_per_s
                        else None,
                    )
                )
                print(f"[{kind} w{workers}] 5 API searches at {args.fleet}", flush=True)
                s5 = await api_latency(
                    api,
                    [
                        {"parameter": f"{INDEXED}=site-42"},
                        {"status": "silent"},
                        {"software_version": "v7"},
                    ],
                    args.api_repeat,
                )
                worst = max(v["p99_ms"] for v in s5.values())
                rows.append(
                    Row(
                        "5 API search",
                        kind,
                        workers,
                        None,
                        max(v["p50_ms"] for v in s5.values()),
                        worst,
                        0,
                        peak_rss_mb(server),
                        extra=s5,
                    )
                )
            finally:
                server.stop()
    finally:
        await backend.drop()
    return finish(rows, ceilings)


def finish(rows: list[Row], ceilings: dict[int, float]) -> list[Row]:
    """The scenarios' ratios to the ceiling of the same worker count."""
    for row in rows:
        if row.sessions_per_s and row.scenario in ("1 empty", "4 scale"):
            ceiling_rate = ceilings.get(row.workers)
            if ceiling_rate:
                row.ratio_to_ceiling = round(row.sessions_per_s / ceiling_rate, 3)
    return rows


def print_table(rows: list[Row]) -> None:
    head = (
        f"{'scenario':14} {'backend':10} {'w':>2} {'sess/s':>9} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'errors':>7} {'RSS MB':>8} {'/ceiling':>9}  notes"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        notes = (
            ", ".join(f"{k}={v}" for k, v in r.extra.items() if not isinstance(v, dict))
            if r.scenario != "5 API search"
            else "; ".join(
                f"{k}: p50 {v['p50_ms']} p99 {v['p99_ms']} n={v['count']}"
                for k, v in r.extra.items()
            )
        )

        def fmt(v: Any, width: int) -> str:
            return f"{v:>{width}}" if v is not None else f"{'-':>{width}}"

        print(
            f"{r.scenario:14} {r.backend:10} {r.workers:>2} {fmt(r.sessions_per_s, 9)} "
            f"{fmt(r.p50_ms, 8)} {fmt(r.p99_ms, 8)} {r.errors:>7} {fmt(r.peak_rss_mb, 8)} "
            f"{fmt(r.ratio_to_ceiling, 9)}  {notes}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--devices", type=int, default=1000, help="the measured fleet")
    parser.add_argument("--fleet", type=int, default=1_000_000, help="devices for scenario 4/5")
    parser.add_argument("--storm", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=20.0, help="per measurement")
    parser.add_argument("--concurrency", type=int, default=64, help="sessions in flight")
    parser.add_argument("--api-repeat", type=int, default=200)
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of the ceiling and scenarios 1 and 4; the best counts (all are listed)",
    )
    parser.add_argument(
        "--scenarios",
        default="1,2,3,4,5",
        help="which scenarios to run (4 runs with 1, 2 with 3, 5 with 4)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: a smoke test of the benchmark itself"
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    args.workers = [int(w) for w in args.workers.split(",")]
    args.scenarios = set(args.scenarios.split(","))
    if args.quick:
        args.devices, args.fleet, args.storm = 200, 20_000, 500
        args.seconds, args.api_repeat, args.repeat = 5.0, 20, 1
    work = Path(tempfile.mkdtemp(prefix="acs-bench-"))
    started = datetime.now(UTC)
    ceilings: dict[int, float] = {}
    rows: list[Row] = []
    for workers in args.workers:
        print(f"[ceiling w{workers}]", flush=True)
        summary, rss = ceiling(
            workers, work, args.seconds, args.devices, args.concurrency, args.repeat
        )
        ceilings[workers] = summary["sessions_per_s"]
        row = row_from("ceiling", "none", workers, summary, rss)
        row.ratio_to_ceiling = 1.0
        rows.append(row)
    for kind in args.backends.split(","):
        rows += asyncio.run(run_backend(kind, args, work, ceilings))
    print()
    print_table(rows)
    out = (
        Path(args.out)
        if args.out
        else ROOT
        / "results"
        / (started.strftime("%Y%m%dT%H%M%SZ") + (".quick" if args.quick else "") + ".json")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "started": started.isoformat(),
                "args": vars(args),
                "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                "rows": [asdict(r) for r in rows],
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
