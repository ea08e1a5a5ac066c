"""acs.services.single_flight: calls of one key in flight share one run of the work."""

from __future__ import annotations

import asyncio

import pytest

from acs.services.single_flight import SingleFlight


class Work:
    """Work that waits for ``release`` and counts its runs."""

    def __init__(self, result: object = "done", error: Exception | None = None):
        self.runs = 0
        self.release = asyncio.Event()
        self.result = result
        self.error = error

    async def __call__(self) -> object:
        self.runs += 1
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return self.result


async def test_calls_in_flight_share_one_run_and_the_next_runs_again():
    flight: SingleFlight[str, object] = SingleFlight()
    work = Work()
    calls = [asyncio.create_task(flight.run("a", work)) for _ in range(10)]
    other = asyncio.create_task(flight.run("b", work))  # another key: its own run
    await asyncio.sleep(0)
    assert (work.runs, len(flight)) == (2, 2)
    work.release.set()
    assert await asyncio.gather(*calls, other) == ["done"] * 11
    assert len(flight) == 0
    assert await flight.run("a", work) == "done"  # no cache: after the work, work again
    assert work.runs == 3


async def test_an_error_reaches_every_caller_once():
    flight: SingleFlight[str, object] = SingleFlight()
    work = Work(error=LookupError("no such file"))
    calls = [asyncio.create_task(flight.run("a", work)) for _ in range(5)]
    await asyncio.sleep(0)
    work.release.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert [str(r) for r in results] == ["no such file"] * 5
    assert work.runs == 1 and len(flight) == 0


async def test_a_cancelled_worker_hands_the_work_on_and_a_cancelled_waiter_leaves_alone():
    flight: SingleFlight[str, object] = SingleFlight()
    work = Work()
    first = asyncio.create_task(flight.run("a", work))
    await asyncio.sleep(0)
    waiters = [asyncio.create_task(flight.run("a", work)) for _ in range(3)]
    await asyncio.sleep(0)
    waiters[2].cancel()  # a waiter gives up: the work goes on for the others
    first.cancel()  # the caller running the work gives up: a waiter runs it again
    for _ in range(100):  # a few turns of the loop
        if work.runs == 2:
            break
        await asyncio.sleep(0)
    assert work.runs == 2
    work.release.set()
    assert await asyncio.gather(*waiters[:2]) == ["done", "done"]
    for task in (first, waiters[2]):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert work.runs == 2 and len(flight) == 0
