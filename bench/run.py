"""The acs benchmark: every scenario against the real server on 127.0.0.1, on SQLite and
PostgreSQL, with 1 and 2 workers, next to the ceiling (a bare ASGI app on the same uvicorn
set-up answering the same exchanges with canned bytes).

    python -m bench.run                        # everything (about 20-30 minutes)
    python -m bench.run --backends sqlite --workers 1 --quick

Scenarios (bench/scenarios.py; each brings what it needs):
  1 empty      periodic informs with nothing queued (Inform, empty POST, 204)
  2 tasks      sessions that each run one GetParameterValues and one SetParameterValues
  3 storm      a boot storm: 10,000 never-seen devices bootstrapping at once
  4 scale      scenario 1 with 1,000,000 devices in the database (vs 1,000; brings 1)
  5 api        GET /api/v1/devices by a parameter value and by status, at 1,000,000 devices
  6 tftp       phones fetching their general and MAC files over TFTP at once
  7 large      one CPE answering a GetParameterValues of 80,000 parameters, the fleet meanwhile
  8 soak       2,000 devices on a 10 s interval for 10 minutes: RSS, descriptors, loop stalls
  9 console    the console's device list (first page, filtered) and overview, at 1,000,000
  10 prov      phones fetching their general and MAC files over HTTP at once (own Digest
               credentials); CPU per fetch of a kept rendering next to a stored file's
  11 headline  1,000,000 devices in the database informing every 15 minutes: 1,111 sessions/s
               held for 2 minutes (33,334 of them every 30 s, 512 in flight at most); the rate held

Prints a table (sessions/s, p50/p99 session latency, errors, server peak RSS, ratio to the
ceiling) and writes it as JSON under bench/results/. With scenario 1, 4 or 11 it measures the
floor of an empty session too (the ceiling's server CPU per session, HTTP alone, plus
bench.floor's storage-free protocol work) and gives their rows server_x_floor and
postgres_x_floor: CPU per empty session as a multiple of it, in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from acs.server import run_loop
from bench import floor
from bench.backend import Backend, fill
from bench.load import register
from bench.scenarios import (
    BASE,
    ApiSearch,
    Context,
    Need,
    Row,
    Scenario,
    Sizes,
    ceiling,
    plan,
    stages,
)

ROOT = Path(__file__).resolve().parent


async def run_backend(
    kind: str,
    scenarios: list[Scenario],
    sizes: Sizes,
    workers_list: list[int],
    work: Path,
    ceilings: dict[int, float],
    floors: dict[int, float],
) -> list[Row]:
    """``scenarios`` on a fresh database of ``kind``, stage by stage, on one `acs serve` per
    worker count and stage; what they need is made once, when first needed."""
    rows: list[Row] = []
    backend = Backend(kind, work)
    await backend.create()
    registered, fill_s = False, None
    try:
        for stage in stages(scenarios):
            if stage.fill:
                print(f"[{kind}] filling to {sizes.fleet} devices", flush=True)
                fill_s = await fill(backend, sizes.fleet)
            for workers in workers_list:
                server, cwmp_url, api_url = backend.serve(workers)
                try:
                    ctx = Context(backend, server, cwmp_url, api_url, workers, sizes, rows, fill_s)
                    for scenario in stage.scenarios:
                        if Need.DEVICES in scenario.needs and not registered:
                            await register(cwmp_url, sizes.devices, BASE)
                            registered = True
                        title = scenario.title.format(**asdict(sizes))
                        print(f"[{kind} w{workers}] {title}", flush=True)
                        for row in await scenario.run(ctx):
                            ceiling_rate = ceilings.get(workers)
                            if scenario.against_ceiling and row.sessions_per_s and ceiling_rate:
                                row.ratio_to_ceiling = round(row.sessions_per_s / ceiling_rate, 3)
                            if scenario.against_floor and workers in floors:
                                against_floor(row, floors[workers])
                            rows.append(row)
                finally:
                    server.stop()
    finally:
        await backend.drop()
    return rows


def floor_rows(ceilings: list[Row]) -> list[Row]:
    """The floor of an empty session's CPU, per worker count, measured in this run: the
    ceiling's server CPU per session (HTTP alone) plus ``bench.floor``'s storage-free protocol
    work."""
    print("[floor] the protocol's storage-free work (bench.floor)", flush=True)
    protocol = floor.protocol_ms()
    out = []
    for ceiling_row in ceilings:
        http = ceiling_row.extra.get("server_cpu_ms")
        if ceiling_row.scenario == "ceiling" and http is not None:
            extra = {"floor_ms": round(http + protocol, 3), "http_ms": http}
            extra["protocol_ms"] = round(protocol, 3)
            out.append(Row("floor", "none", ceiling_row.workers, extra=extra))
    return out


def against_floor(row: Row, floor_ms: float) -> None:
    """CPU per empty session as a multiple of the floor: the server's, and PostgreSQL's
    (issue 16's targets: 2x and 1.5x)."""
    for name, key in (("server_cpu_ms", "server_x_floor"), ("postgres_cpu_ms", "postgres_x_floor")):
        value = row.extra.get(name)
        if value is not None:
            row.extra[key] = round(value / floor_ms, 2)


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
            if r.scenario != ApiSearch.name
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


@contextlib.contextmanager
def contention(processes: int) -> Iterator[None]:
    """``processes`` busy loops competing for the CPU while the block runs (they share the
    cores with the server, the database and the load generator alike)."""
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)
    ]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--devices", type=int, default=1000, help="the measured fleet")
    parser.add_argument("--fleet", type=int, default=1_000_000, help="devices for scenario 4/5")
    parser.add_argument("--storm", type=int, default=10_000)
    parser.add_argument(
        "--tftp-phones",
        type=int,
        default=1000,
        help="phones fetching at once over TFTP (6) and HTTP (10)",
    )
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
        "--large-answer",
        type=int,
        default=None,
        help="parameters in scenario 7's GetParameterValues answer (80,000; --quick: 8,000)",
    )
    parser.add_argument("--soak-devices", type=int, default=2_000, help="scenario 8's fleet")
    parser.add_argument(
        "--soak-seconds", type=float, default=600.0, help="how long scenario 8 runs"
    )
    parser.add_argument(
        "--soak-interval", type=float, default=10.0, help="scenario 8's inform interval"
    )
    parser.add_argument(
        "--headline-rate",
        type=float,
        default=1_000_000 / 900,
        help="scenario 11's sessions per second (a million devices every 15 minutes)",
    )
    parser.add_argument(
        "--headline-devices",
        type=int,
        default=33_334,
        help="scenario 11's informing devices (of the filled ones): the interval is theirs/rate",
    )
    parser.add_argument(
        "--headline-seconds", type=float, default=120.0, help="how long scenario 11 holds it"
    )
    parser.add_argument(
        "--contention",
        type=int,
        default=0,
        metavar="N",
        help="N processes spinning on the CPU for the whole run: a machine N+1 times busier "
        "(on N+1 cores or fewer), to see how admission holds on a slow machine",
    )
    parser.add_argument(
        "--scenarios",
        default="1,2,3,4,5,6,7,9,11",
        help="which scenarios to run; each brings those it is compared with (4 brings 1)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: a smoke test of the benchmark itself"
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    args.workers = [int(w) for w in args.workers.split(",")]
    args.scenarios = set(args.scenarios.split(","))
    try:
        scenarios = plan(args.scenarios)
    except ValueError as exc:
        parser.error(str(exc))
    if args.quick:
        args.devices, args.fleet, args.storm, args.tftp_phones = 200, 20_000, 500, 100
        args.seconds, args.api_repeat, args.repeat = 5.0, 20, 1
        args.large_answer = args.large_answer or 8_000
        args.soak_devices, args.soak_seconds = 200, 30.0
        args.headline_rate, args.headline_devices, args.headline_seconds = 100.0, 1_000, 15.0
    sizes = Sizes(
        devices=args.devices,
        fleet=args.fleet,
        storm=args.storm,
        seconds=args.seconds,
        concurrency=args.concurrency,
        repeat=args.repeat,
        api_repeat=args.api_repeat,
        tftp_phones=args.tftp_phones,
        large_answer=args.large_answer or 80_000,
        soak_devices=args.soak_devices,
        soak_seconds=args.soak_seconds,
        soak_interval=args.soak_interval,
        headline_rate=args.headline_rate,
        headline_devices=args.headline_devices,
        headline_seconds=args.headline_seconds,
    )
    work = Path(tempfile.mkdtemp(prefix="acs-bench-"))
    started = datetime.now(UTC)
    rows: list[Row] = []
    with contention(args.contention):
        for workers in args.workers:
            print(f"[ceiling w{workers}]", flush=True)
            rows.append(ceiling(workers, work, sizes))
        ceilings = {r.workers: r.sessions_per_s for r in rows if r.sessions_per_s}
        floors: dict[int, float] = {}
        if any(s.against_floor for s in scenarios):
            rows += floor_rows(rows)
            floors = {r.workers: r.extra["floor_ms"] for r in rows if r.scenario == "floor"}
        for kind in args.backends.split(","):
            # on uvloop, as the server: the load generator shares the cores it measures
            rows += run_loop(
                run_backend(kind, scenarios, sizes, args.workers, work, ceilings, floors)
            )
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
