"""``acs simulate``: a fleet of simulated CPEs against an ACS."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

# PeriodicInformInterval of a device `acs simulate` starts, unless --interval or --state.
DEFAULT_SIM_INTERVAL = 60.0


def cmd_simulate(args: argparse.Namespace) -> int:
    import json

    from acs.server import run_loop
    from acs.simulator import nat
    from acs.simulator.fleet import FleetConfig, simulate
    from acs.simulator.state import StateFileError

    if args.running and not args.state:
        print(
            "note: --running without --state: the devices know no connection-request "
            "credentials until they bootstrap again",
            file=sys.stderr,
        )
    config = FleetConfig(
        acs_url=args.acs_url,
        devices=args.devices,
        model=args.model,
        interval=DEFAULT_SIM_INTERVAL if args.interval is None else args.interval,
        interval_forced=args.interval is not None,
        duration=args.duration if args.sessions is None else None,
        sessions=args.sessions,
        username=args.username,
        password=args.password,
        auth=args.auth,
        serial_prefix=args.serial_prefix,
        first_index=args.first_index,
        concurrency=args.concurrency,
        ramp=args.ramp,
        bootstrap=not (args.no_bootstrap or args.running),
        boot=not args.running,
        cwmp_version=args.cwmp_version,
        udp=args.udp,
        boot_seconds=args.boot_seconds,
        state=args.state,
        **nat.config_of(args),
    )
    try:
        # uvloop where installed, as `acs serve`: one process drives thousands of CPEs
        summary = run_loop(simulate(config))
    except StateFileError as exc:
        print(f"state file: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(summary, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    else:
        print(text)
    return 0 if summary["sessions_failed"] == 0 else 1


def register(sub: Any) -> None:
    sim = sub.add_parser(
        "simulate",
        help="a fleet of simulated CPEs against an ACS",
        description="A fleet of simulated CPEs against an ACS. Runs until --duration or "
        "--sessions, or until SIGINT/SIGTERM (sessions in flight finish; a second signal "
        "cancels them); then prints the summary. Exit status 0 if no session failed, else 1.",
    )
    sim.add_argument(
        "--acs-url", default="http://127.0.0.1:7547/acs", help="the ACS URL (default: %(default)s)"
    )
    sim.add_argument(
        "--devices", type=int, default=100, help="how many devices (default: %(default)s)"
    )
    sim.add_argument(
        "--model",
        default="gateway",
        help="gateway (TR-098), phone (TR-181/TR-104), or a JSON data model file "
        "(default: %(default)s)",
    )
    sim.add_argument(
        "--interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="every device informs every SECONDS, whatever PeriodicInformInterval and "
        "PeriodicInformEnable the ACS sets: --interval wins (default: not forced; each device "
        "follows its own PeriodicInformInterval and PeriodicInformEnable, which start at "
        f"{DEFAULT_SIM_INTERVAL:g} s and enabled, or as --state kept them, and change when "
        "the ACS sets them, from the device's next Inform on)",
    )
    sim.add_argument(
        "--duration", type=float, default=60.0, help="seconds to run (default: %(default)s)"
    )
    sim.add_argument(
        "--sessions",
        type=int,
        default=None,
        help="stop after this many sessions per device instead of after --duration "
        "(default: stop after --duration)",
    )
    sim.add_argument(
        "--username", default="acs", help="the ACS's CPE username (default: %(default)s)"
    )
    sim.add_argument("--password", default="", help="the ACS's CPE password (default: empty)")
    sim.add_argument(
        "--auth",
        choices=["digest", "basic", "none"],
        default="digest",
        help="how devices authenticate to the ACS (default: %(default)s)",
    )
    sim.add_argument(
        "--serial-prefix",
        default="SIM",
        help="serial numbers are this and the device's index in 8 digits: SIM00000000, ... "
        "(default: %(default)s)",
    )
    sim.add_argument(
        "--first-index",
        type=int,
        default=0,
        help="index of the first device (default: %(default)s)",
    )
    sim.add_argument(
        "--concurrency",
        type=int,
        default=500,
        help="sessions in flight at once (default: %(default)s)",
    )
    sim.add_argument(
        "--ramp",
        type=float,
        default=None,
        help="spread first sessions over this many seconds, 0: all at once "
        "(default: each device's first periodic interval)",
    )
    sim.add_argument(
        "--no-bootstrap",
        action="store_true",
        help="first session says 1 BOOT, not 0 BOOTSTRAP (default: 0 BOOTSTRAP and 1 BOOT, "
        "devices new to the ACS)",
    )
    sim.add_argument(
        "--running",
        action="store_true",
        help="devices are already up and known to the ACS: first session says 2 PERIODIC; "
        "give the --state of their earlier run so they still know the connection-request "
        "credentials the ACS set (default: off)",
    )
    sim.add_argument(
        "--state",
        metavar="FILE",
        default=None,
        help="keep what a CPE keeps in flash (ACS and connection-request credentials, "
        "periodic inform settings, every parameter the ACS set) in this JSON file: read at "
        "start, written at stop and every 10 s; devices of other runs in it are kept "
        "(default: none, devices start from their factory data model)",
    )
    sim.add_argument(
        "--cwmp-version",
        choices=["1.0", "1.1", "1.2", "1.3", "1.4"],
        default="1.2",
        help="CWMP version the devices speak (default: %(default)s)",
    )
    sim.add_argument(
        "--udp",
        action="store_true",
        help="also listen for UDP connection requests (default: off, HTTP only)",
    )
    sim.add_argument(
        "--boot-seconds",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="a device that reboots or resets informs again after this long, as real CPEs "
        "take a while to boot (default: %(default)s)",
    )
    sim.add_argument(
        "--json",
        metavar="FILE",
        help="write the summary here (default: standard output)",
    )
    from acs.simulator import nat as simulator_nat

    simulator_nat.add_arguments(sim)  # --stun, --xmpp, --xmpp-ca
    sim.set_defaults(func=cmd_simulate)
