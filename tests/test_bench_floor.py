"""bench.run's floor of an empty session and the multiples of it its rows print (issue 16's
targets are read off them)."""

from __future__ import annotations

from bench import floor
from bench.run import against_floor, floor_rows
from bench.scenarios import Row


def test_the_floor_is_the_ceilings_http_cpu_plus_the_protocols_and_rows_divide_by_it():
    ceilings = [
        Row("ceiling", "none", 1, extra={"server_cpu_ms": 0.16}),
        Row("ceiling", "none", 2, extra={"server_cpu_ms": 0.2}),
    ]
    [one, two] = floor_rows(ceilings)
    protocol = one.extra["protocol_ms"]
    assert 0 < protocol < 50  # an Inform and an empty POST in ms, measured here
    assert (one.workers, one.extra["floor_ms"]) == (1, round(0.16 + protocol, 3))
    assert (two.workers, two.extra["http_ms"]) == (2, 0.2)
    row = Row("1 empty", "postgresql", 1, extra={"server_cpu_ms": 0.9, "postgres_cpu_ms": 0.45})
    against_floor(row, 0.3)
    assert (row.extra["server_x_floor"], row.extra["postgres_x_floor"]) == (3.0, 1.5)
    sqlite = Row("1 empty", "sqlite", 1, extra={"server_cpu_ms": 0.6})
    against_floor(sqlite, 0.3)
    assert sqlite.extra == {"server_cpu_ms": 0.6, "server_x_floor": 2.0}


def test_the_protocol_floor_is_the_inform_and_the_empty_post():
    steps = floor.steps()
    assert {"Inform (all of it)", "empty POST"} <= set(steps)
    assert floor.protocol_ms(number=20, repeat=1) > 0
