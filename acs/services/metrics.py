"""Prometheus text exposition: fleet gauges from the database, counters per process."""

from __future__ import annotations

import os
from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import case, func, select

from acs.db import tables
from acs.db.engine import Database


class Counters:
    """Counters of this worker process (each worker reports its own, labelled by pid)."""

    def __init__(self) -> None:
        self.cwmp_responses: Counter[int] = Counter()

    def cwmp_response(self, status: int) -> None:
        self.cwmp_responses[status] += 1


def _line(name: str, value: float, **labels: str) -> str:
    if labels:
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        return f"{name}{{{inner}}} {value}"
    return f"{name} {value}"


async def render(db: Database, now: datetime, counters: Counters) -> str:
    d, t, s, f = tables.devices, tables.tasks, tables.sessions, tables.fault_records
    async with db.read() as conn:
        total, silent, unknown = (
            await conn.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(case((d.c.inform_deadline <= now, 1), else_=0)), 0),
                    func.coalesce(func.sum(case((d.c.inform_deadline.is_(None), 1), else_=0)), 0),
                ).select_from(d)
            )
        ).one()
        task_counts = (
            await conn.execute(select(t.c.status, func.count()).group_by(t.c.status))
        ).all()
        sessions = await conn.scalar(select(func.count()).select_from(s).where(s.c.expires > now))
        recent_faults = await conn.scalar(
            select(func.count()).select_from(f).where(f.c.time > now - timedelta(hours=1))
        )
    out = [
        "# HELP acs_devices Devices known to the ACS, by monitoring status.",
        "# TYPE acs_devices gauge",
        _line("acs_devices", int(total) - int(silent) - int(unknown), status="online"),
        _line("acs_devices", int(silent), status="silent"),
        _line("acs_devices", int(unknown), status="unknown"),
        "# HELP acs_tasks Tasks by status.",
        "# TYPE acs_tasks gauge",
        *(_line("acs_tasks", n, status=status) for status, n in sorted(task_counts)),
        "# HELP acs_cwmp_sessions_open CWMP sessions open now.",
        "# TYPE acs_cwmp_sessions_open gauge",
        _line("acs_cwmp_sessions_open", int(sessions or 0)),
        "# HELP acs_faults_last_hour Faults recorded in the last hour.",
        "# TYPE acs_faults_last_hour gauge",
        _line("acs_faults_last_hour", int(recent_faults or 0)),
        "# HELP acs_cwmp_responses_total CWMP responses sent by this worker, by HTTP status.",
        "# TYPE acs_cwmp_responses_total counter",
        *(
            _line("acs_cwmp_responses_total", n, status=str(code), worker=str(os.getpid()))
            for code, n in sorted(counters.cwmp_responses.items())
        ),
    ]
    return "\n".join(out) + "\n"
