"""What the services count (acs.services.metrics), on SQLite and PostgreSQL: sessions by
outcome and duration, Informs by event, refusals by reason, RPCs and task outcomes, CPE
faults; nothing of a rolled-back request. In process, so the counters are this process's
(read as differences: other tests count into them too)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from acs.db import queries
from acs.db.errors import StorageError
from acs.services import metrics
from tests.services.harness import ServiceCpe, queue, session

Labels = dict[str, str]


def value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def counted() -> Callable[[], dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """What changed in acs's metrics since the fixture was made: {(sample, labels): delta}."""

    def snapshot() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in metrics.REGISTRY.collect()
            for s in family.samples
            if not s.name.endswith("_created")
        }

    before = snapshot()

    def changes() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        after = snapshot()
        return {
            key: after[key] - before.get(key, 0.0)
            for key in after
            if after[key] != before.get(key, 0.0)
        }

    return changes


def k(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return (name, tuple(sorted(labels.items())))


async def test_a_session_with_tasks_is_counted_once_each(runtime, clock, counted):
    cpe = ServiceCpe(runtime)
    await session(cpe, "0 BOOTSTRAP", "1 BOOT")  # bootstrap provisioning: one SPV
    good, bad = await queue(
        runtime,
        clock,
        {"name": "GetParameterValues", "parameter_names": ["InternetGatewayDevice.DeviceInfo."]},
        {"name": "GetParameterValues", "parameter_names": ["Bad.Name."]},
    )
    assert (await cpe.inform("2 PERIODIC", "X 00D09E MADE-UP")).status == 200
    clock.now += 2.5
    assert (await cpe.empty()).status == 204
    got = counted()
    assert got == {
        k("acs_cwmp_informs_total", event="0 BOOTSTRAP"): 1,
        k("acs_cwmp_informs_total", event="1 BOOT"): 1,
        k("acs_cwmp_informs_total", event="2 PERIODIC"): 1,
        k("acs_cwmp_informs_total", event="other"): 1,  # a code no standard defines
        k("acs_cwmp_sessions_total", outcome="completed"): 2,
        k("acs_cwmp_session_duration_seconds_count"): 2,
        k("acs_cwmp_session_duration_seconds_sum"): 2.5,  # the first took no time
        **{
            k("acs_cwmp_session_duration_seconds_bucket", le=le): n
            for le, n in [
                ("0.05", 1),
                ("0.1", 1),
                ("0.25", 1),
                ("0.5", 1),
                ("1.0", 1),
                ("2.5", 2),
                ("5.0", 2),
                ("10.0", 2),
                ("30.0", 2),
                ("60.0", 2),
                ("120.0", 2),
                ("300.0", 2),
                ("+Inf", 2),
            ]
        },
        k("acs_cwmp_rpcs_total", rpc="SetParameterValues", outcome="response"): 1,
        k("acs_cwmp_rpcs_total", rpc="GetParameterValues", outcome="response"): 1,
        k("acs_cwmp_rpcs_total", rpc="GetParameterValues", outcome="fault"): 1,
        k("acs_task_outcomes_total", rpc="GetParameterValues", outcome="done"): 1,
        k("acs_task_outcomes_total", rpc="GetParameterValues", outcome="fault"): 1,
        k("acs_cpe_faults_total", code="9005"): 1,
    }
    assert good != bad


async def test_refusals_by_reason_and_the_challenge_is_not_one(runtime, clock, counted):
    cpe = ServiceCpe(runtime)
    await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    start = counted()
    wrong = ServiceCpe(runtime, cpe.fake, password="not-the-password")
    assert (await wrong.inform("2 PERIODIC")).status == 401  # challenged, then refused
    busy = ServiceCpe(runtime, cpe.fake, host="198.51.100.7")  # elsewhere, while open:
    assert (await cpe.inform("2 PERIODIC")).status == 200
    assert (await busy.inform("2 PERIODIC")).status == 503
    got = {key: n - start.get(key, 0) for key, n in counted().items() if n != start.get(key, 0)}
    assert {key: n for key, n in got.items() if key[0] == "acs_cwmp_sessions_refused_total"} == {
        k("acs_cwmp_sessions_refused_total", reason="authentication"): 1,
        k("acs_cwmp_sessions_refused_total", reason="busy"): 1,
    }


async def test_a_rolled_back_request_counts_nothing(runtime, clock, counted, monkeypatch):
    cpe = ServiceCpe(runtime)
    await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    await queue(runtime, clock, {"name": "GetRPCMethods"})
    assert (await cpe.inform("2 PERIODIC")).status == 200
    sent = await cpe.post(b"")
    assert sent.status == 200  # GetRPCMethods
    start = counted()

    async def disk_full(*_args: Any, **_kwargs: Any) -> bool:
        raise StorageError("disk full")

    monkeypatch.setattr(queries, "end_session", disk_full)
    assert (await cpe.post(cpe.fake.answer(sent.body))).status == 503
    assert counted() == start  # no RPC answered, no task done, no session ended
    monkeypatch.undo()
    assert (await cpe.post(cpe.fake.answer(sent.body))).status == 204  # the CPE tries again
    got = {key: n - start.get(key, 0) for key, n in counted().items() if n != start.get(key, 0)}
    assert got[k("acs_cwmp_rpcs_total", rpc="GetRPCMethods", outcome="response")] == 1
    assert got[k("acs_task_outcomes_total", rpc="GetRPCMethods", outcome="done")] == 1
    assert got[k("acs_cwmp_sessions_total", outcome="completed")] == 1


def test_labels_a_cpe_writes_come_from_bounded_sets():
    assert metrics.event_label("2 PERIODIC") == "2 PERIODIC"
    assert metrics.event_label("X CT-COM BIND") == "X CT-COM BIND"
    assert metrics.event_label("X 00D09E ANYTHING") == "other"
    assert metrics.event_label("2 PERIODIC\n") == "other"
    assert metrics.fault_label(9005) == "9005"
    assert metrics.fault_label(9899) == "9899"
    assert metrics.fault_label(12345) == "other"
    assert metrics.rpc_label("X_VENDOR_Method") == "other"
    assert metrics.rpc_label("GetParameterValues") == "GetParameterValues"


def test_the_monitor_keeps_the_worst_stall_of_its_window(runtime):
    monitor = metrics.WorkerMonitor(runtime.db, window=10.0)
    monitor.observe(100.0, 0.75)
    monitor.observe(105.0, 0.01)
    monitor.publish()
    assert value("acs_event_loop_lag_max_seconds") == 0.75
    monitor.observe(110.5, 0.02)  # the 0.75 s stall is more than 10 s old now
    monitor.publish()
    assert value("acs_event_loop_lag_max_seconds") == 0.02
    pool = runtime.db.pool_connections()
    if runtime.db.is_postgresql:
        assert pool is not None
        assert value("acs_db_pool_connections", state="in_use") == pool[0]
        assert value("acs_db_pool_connections", state="idle") == pool[1]
    else:
        assert pool is None


async def test_the_exposition_parses_in_both_formats(runtime, clock):
    cpe = ServiceCpe(runtime)
    await session(cpe, "0 BOOTSTRAP", "1 BOOT")
    fleet = await metrics.fleet(runtime.db, clock.dt)
    body, content_type = metrics.render(fleet, None)
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert {s.labels["status"]: s.value for s in families["acs_devices"].samples} == {
        "never_seen": 0,
        "online": 1,
        "late": 0,
        "offline": 0,
        "unknown": 0,
    }
    assert families["acs_cwmp_sessions_open"].samples[0].value == 0
    assert families["acs_cwmp_sessions"].type == "counter"
    body, content_type = metrics.render(fleet, "application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    assert body.endswith(b"# EOF\n")
