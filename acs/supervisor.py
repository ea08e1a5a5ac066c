"""The supervisor of ``acs serve --workers N``: N spawned worker processes that inherit the
bound sockets, SIGINT/SIGTERM forwarded to them, and a worker that dies (``kill -9``, a crash,
the kernel's OOM killer) respawned in its slot, after a backoff if it keeps dying.

A slot whose worker dies ``RestartPolicy.attempts`` times in a row without staying up (serving
``RestartPolicy.stayed_up`` seconds) is a node that cannot run: the supervisor says so, stops
the other workers and exits non-zero, for the service manager (systemd, Docker, Kubernetes)
to see, instead of running short of a worker silently.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import connection
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from acs.services import metrics

log = logging.getLogger("acs")


@dataclass(frozen=True)
class Backoff:
    """How long to wait before respawn number ``attempt`` (1, 2, ...) of a slot: ``first``,
    then ``factor`` times longer each time, never more than ``cap``."""

    first: float = 0.5
    factor: float = 2.0
    cap: float = 30.0

    def delay(self, attempt: int) -> float:
        if attempt < 1:
            raise ValueError("attempts count from 1")
        return float(min(self.cap, self.first * self.factor ** (attempt - 1)))


@dataclass(frozen=True)
class Respawn:
    attempt: int  # the slot's deaths in a row, this one included
    delay: float  # seconds before the new worker starts


@dataclass(frozen=True)
class GiveUp:
    attempt: int


@dataclass(frozen=True)
class RestartPolicy:
    """What a worker's death leads to. A worker that served ``stayed_up`` seconds or more
    died by accident: its slot starts counting again (attempt 1). One that died sooner, or
    before it served at all, adds to its slot's run; past ``attempts`` the node gives up."""

    backoff: Backoff = Backoff()
    attempts: int = 5
    stayed_up: float = 60.0

    def after_death(self, previous: int, served_for: float | None) -> Respawn | GiveUp:
        """``previous``: the slot's deaths in a row before this one; ``served_for``: how long
        the dead worker served (``None``: it never did)."""
        stayed = served_for is not None and served_for >= self.stayed_up
        attempt = 1 if stayed else previous + 1
        if attempt > self.attempts:
            return GiveUp(attempt)
        return Respawn(attempt, self.backoff.delay(attempt))


def describe_exit(exitcode: int | None) -> str:
    """``killed by SIGKILL``, ``exited with status 1``."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with status {exitcode}"


@dataclass
class _Slot:
    number: int  # 1..N, what the logs call the worker
    proc: BaseProcess | None = None
    ready: Connection | None = None  # where it says it serves (its pid)
    serving_since: float | None = None
    deaths: int = 0  # in a row, without staying up
    respawn_at: float | None = None
    served_once: bool = False


class Supervisor:
    """``target(*args, ready)`` in ``count`` spawned processes; ``ready`` is a connection on
    which a worker sends its pid once it serves. ``run()`` returns the exit status: 0 after a
    stop, the first non-zero status a worker exited with while stopping, 1 after giving up.

    ``on_ready(pids, count)`` is called as each slot's first worker serves (pids: those
    serving so far), for the start-up lines; a respawned worker is logged here."""

    def __init__(
        self,
        target: Callable[..., None],
        args: tuple[Any, ...],
        count: int,
        *,
        policy: RestartPolicy | None = None,
        on_ready: Callable[[list[int], int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target, self.args, self.count = target, args, count
        self.policy = policy or RestartPolicy()
        self.on_ready = on_ready
        self.clock = clock
        self.slots = [_Slot(n + 1) for n in range(count)]
        self.stopping = False
        self.stop_signal: int = signal.SIGTERM
        self.code = 0
        self._ctx = multiprocessing.get_context("spawn")
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._first_pids: list[int] = []

    # --- from a signal handler or another thread -----------------------------------------

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Forward ``sig`` to every worker and respawn none from now on."""
        self.stopping = True
        self.stop_signal = sig
        for slot in self.slots:
            slot.respawn_at = None
            proc = slot.proc
            if proc is not None and proc.pid and proc.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, sig)
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    # --- the loop ----------------------------------------------------------------------------

    def run(self) -> int:
        try:
            for slot in self.slots:
                self._spawn(slot)
            while True:
                live = [slot for slot in self.slots if slot.proc is not None]
                if not live and (self.stopping or not self._pending()):
                    return self.code
                self._wait(live)
                if not self.stopping:
                    now = self.clock()
                    for slot in self.slots:
                        if slot.respawn_at is not None and slot.respawn_at <= now:
                            self._spawn(slot)
        finally:
            self._wake_r.close()
            self._wake_w.close()

    def _pending(self) -> bool:
        return any(slot.respawn_at is not None for slot in self.slots)

    def _wait(self, live: list[_Slot]) -> None:
        exits: dict[Any, _Slot] = {}
        readies: dict[Any, _Slot] = {}
        for slot in live:
            assert slot.proc is not None
            exits[slot.proc.sentinel] = slot
            if slot.ready is not None:
                readies[slot.ready] = slot
        dues = [slot.respawn_at for slot in self.slots if slot.respawn_at is not None]
        timeout = max(0.0, min(dues) - self.clock()) if dues else None
        for fired in connection.wait([self._wake_r, *readies, *exits], timeout):
            if fired is self._wake_r:
                with contextlib.suppress(BlockingIOError):
                    self._wake_r.recv(512)
            elif fired in readies:
                self._serving(readies[fired])
        # exits last: a worker that said it serves and then died is known to have served
        for fired in connection.wait(list(exits), 0):
            self._exited(exits[fired])

    def _spawn(self, slot: _Slot) -> None:
        if self.stopping:  # told to stop while starting the others
            return
        receiver, sender = self._ctx.Pipe(duplex=False)
        proc = self._ctx.Process(target=self.target, args=(*self.args, sender), daemon=False)
        proc.start()
        sender.close()  # the worker's copy remains: a worker that dies closes its own
        slot.proc, slot.ready, slot.serving_since, slot.respawn_at = proc, receiver, None, None
        if self._stopped() and proc.pid:  # the signal came while it started: stop() missed it
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, self.stop_signal)

    def _stopped(self) -> bool:
        """``stopping`` as a signal handler may have set it since it was last read."""
        return self.stopping

    def _serving(self, slot: _Slot) -> None:
        assert slot.ready is not None
        try:
            pid = int(slot.ready.recv())
        except EOFError:  # it died before it served; its exit says how
            pid = 0
        slot.ready.close()
        slot.ready = None
        if not pid:
            return
        slot.serving_since = self.clock()
        if not slot.served_once:
            slot.served_once = True
            self._first_pids.append(pid)
            if self.on_ready is not None:
                self.on_ready(list(self._first_pids), self.count)
        else:
            log.info("worker %d serving again (pid %d)", slot.number, pid)

    def _exited(self, slot: _Slot) -> None:
        proc = slot.proc
        assert proc is not None
        proc.join()
        if slot.ready is not None:
            slot.ready.close()
            slot.ready = None
        slot.proc = None
        if proc.pid is not None:
            metrics.worker_exited(proc.pid)
        if self.stopping:
            # the signal forwarded may end a worker before it handles it: still a clean stop
            stopped = proc.exitcode in (-signal.SIGTERM, -signal.SIGINT)
            self.code = self.code or (0 if stopped else proc.exitcode or 0)
            return
        served_for = None if slot.serving_since is None else self.clock() - slot.serving_since
        decision = self.policy.after_death(slot.deaths, served_for)
        slot.deaths = decision.attempt
        how = describe_exit(proc.exitcode)
        if isinstance(decision, GiveUp):
            log.error(
                "worker %d (pid %s) %s: it died %d times in a row without staying up "
                "%g s; giving up: stopping the other workers",
                slot.number,
                proc.pid,
                how,
                decision.attempt,
                self.policy.stayed_up,
            )
            self.code = 1
            self.stop(signal.SIGTERM)
            return
        log.warning(
            "worker %d (pid %s) %s; respawning it in %g s (attempt %d of %d)",
            slot.number,
            proc.pid,
            how,
            decision.delay,
            decision.attempt,
            self.policy.attempts,
        )
        slot.respawn_at = self.clock() + decision.delay
