"""The supervisor's restart rule, exactly, and the supervisor itself on real spawned
processes (workers of a few lines that die as told)."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

from acs.supervisor import Backoff, GiveUp, Respawn, RestartPolicy, Supervisor, describe_exit


def test_backoff_doubles_from_half_a_second_up_to_its_cap():
    assert [Backoff().delay(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert [Backoff(first=1, factor=3, cap=10).delay(n) for n in (1, 2, 3)] == [1, 3, 9]
    with pytest.raises(ValueError):
        Backoff().delay(0)


def test_deaths_in_a_row_back_off_then_give_up_and_staying_up_starts_over():
    policy = RestartPolicy(attempts=3, stayed_up=60)
    deaths, decisions = 0, []
    for served_for in (None, 5.0, 59.9, None):  # never served, or not long enough
        decision = policy.after_death(deaths, served_for)
        decisions.append(decision)
        deaths = decision.attempt
    assert decisions == [Respawn(1, 0.5), Respawn(2, 1.0), Respawn(3, 2.0), GiveUp(4)]
    # a worker that served a minute died by accident: its slot counts from 1 again
    assert policy.after_death(3, 60.0) == Respawn(1, 0.5)
    assert policy.after_death(0, 3600.0) == Respawn(1, 0.5)


def test_exits_are_described_by_signal_or_status():
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(-15) == "killed by SIGTERM"
    assert describe_exit(1) == "exited with status 1"
    assert describe_exit(0) == "exited with status 0"


# --- real processes ---------------------------------------------------------------------------


def _dies_at_once(ready: Connection) -> None:
    ready.close()
    os._exit(3)


def _serve_until_terminated(ready: Connection) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    ready.send(os.getpid())
    ready.close()
    stop.wait(120)


def _first_life_dies_after_serving(lives: str, ready: Connection) -> None:
    path = Path(lives)
    count = int(path.read_text() or "0") + 1 if path.exists() else 1
    path.write_text(str(count))
    if count == 1:
        ready.send(os.getpid())
        ready.close()
        os.kill(os.getpid(), signal.SIGKILL)
    _serve_until_terminated(ready)


QUICK = RestartPolicy(Backoff(first=0.05, factor=2, cap=1), attempts=2, stayed_up=60)


def test_a_worker_that_cannot_stay_up_makes_the_supervisor_give_up_loudly(caplog):
    caplog.set_level(logging.INFO, logger="acs")
    code = Supervisor(_dies_at_once, (), 1, policy=QUICK).run()
    assert code == 1
    said = [r.getMessage() for r in caplog.records if r.name == "acs"]
    assert len(said) == 3, said
    assert said[0].endswith("exited with status 3; respawning it in 0.05 s (attempt 1 of 2)")
    assert said[1].endswith("exited with status 3; respawning it in 0.1 s (attempt 2 of 2)")
    assert said[2].endswith(
        "exited with status 3: it died 3 times in a row without staying up 60 s; "
        "giving up: stopping the other workers"
    )
    assert [r.levelname for r in caplog.records if r.name == "acs"] == [
        "WARNING",
        "WARNING",
        "ERROR",
    ]


def test_giving_up_stops_the_other_workers(tmp_path):
    """Slot 2 keeps dying; slot 1 serves until the supervisor gives up and terminates it."""
    served: list[int] = []
    supervisor = Supervisor(
        _pick, (str(tmp_path),), 2, policy=QUICK, on_ready=lambda pids, _: served.extend(pids)
    )
    assert supervisor.run() == 1
    assert len(served) == 1  # slot 1's worker served, then was stopped (SIGTERM, exit 0)
    assert (tmp_path / "slot-1-stopped").exists()


def _pick(folder: str, ready: Connection) -> None:
    """The first worker to start takes slot 1 and serves; every later one dies once it
    does (so that the supervisor gives up after slot 1 served)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        os.close(os.open(os.path.join(folder, "claim"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        deadline = time.monotonic() + 60
        while not Path(folder, "serving").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        _dies_at_once(ready)
    ready.send(os.getpid())
    ready.close()
    Path(folder, "serving").touch()
    stop.wait(120)
    Path(folder, "slot-1-stopped").touch()


def test_a_worker_killed_after_serving_is_respawned_and_a_stop_ends_both(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="acs")
    lives = tmp_path / "lives"
    served: list[list[int]] = []
    supervisor = Supervisor(
        _first_life_dies_after_serving,
        (str(lives),),
        1,
        policy=QUICK,
        on_ready=lambda pids, _count: served.append(pids),
    )
    codes: list[int] = []
    runner = threading.Thread(target=lambda: codes.append(supervisor.run()))
    runner.start()
    deadline = time.monotonic() + 60
    while not any("serving again" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline and runner.is_alive(), caplog.text
        time.sleep(0.05)
    supervisor.stop(signal.SIGTERM)
    runner.join(60)
    assert codes == [0]
    assert lives.read_text() == "2"
    [first] = served
    said = [r.getMessage() for r in caplog.records if r.name == "acs"]
    assert said[0] == (
        f"worker 1 (pid {first[0]}) killed by SIGKILL; respawning it in 0.05 s (attempt 1 of 2)"
    )
    assert said[1].startswith("worker 1 serving again (pid ")


class _StoppedWhileSpawning(Supervisor):
    """A stop signal that lands while the first worker starts, before the supervisor
    holds it (``stop`` then cannot see it)."""

    def _spawn(self, slot):
        if slot.number == 1:
            self.stop(signal.SIGTERM)
        super()._spawn(slot)


def test_a_stop_while_workers_start_stops_the_one_starting_and_starts_no_more():
    supervisor = _StoppedWhileSpawning(_serve_until_terminated, (), 2, policy=QUICK)
    codes: list[int] = []
    runner = threading.Thread(target=lambda: codes.append(supervisor.run()))
    runner.start()
    runner.join(60)
    assert not runner.is_alive(), "the supervisor did not stop"
    assert codes == [0]  # SIGTERM before the worker handled it is a clean stop too
    assert [slot.proc for slot in supervisor.slots] == [None, None]
