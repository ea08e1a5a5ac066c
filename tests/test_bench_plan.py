"""What the bench runs for --scenarios, and in which order (bench.scenarios; no server)."""

import pytest

from bench.scenarios import BY_KEY, SCENARIOS, Need, plan, stages


def keys(scenarios):
    return [s.key for s in scenarios]


def run_order(asked):
    """(fill first?, scenario keys) per stage, as bench.run runs them per worker count."""
    return [(stage.fill, keys(stage.scenarios)) for stage in stages(plan(asked))]


def test_everything_runs_as_before_the_scenarios_were_objects():
    assert run_order({"1", "2", "3", "4", "5"}) == [(False, ["1", "2", "3"]), (True, ["4", "5"])]
    assert run_order({"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"}) == [
        (False, ["1", "2", "3", "6", "10", "7", "8"]),
        (True, ["4", "11", "5", "9"]),
    ]


def test_a_scenario_alone_brings_only_what_it_needs():
    assert run_order({"1"}) == [(False, ["1"])]
    assert run_order({"2"}) == [(False, ["2"])]
    assert run_order({"3"}) == [(False, ["3"])]
    assert run_order({"5"}) == [(True, ["5"])]
    assert run_order({"6"}) == [(False, ["6"])]
    assert run_order({"7"}) == [(False, ["7"])]
    assert run_order({"8"}) == [(False, ["8"])]
    assert run_order({"9"}) == [(True, ["9"])]
    assert run_order({"10"}) == [(False, ["10"])]
    assert run_order({"10", "6"}) == [(False, ["6", "10"])]
    assert run_order({"11"}) == [(True, ["11"])]


def test_scale_brings_the_empty_sessions_it_is_compared_with():
    assert run_order({"4"}) == [(False, ["1"]), (True, ["4"])]
    assert run_order({"4", "1"}) == run_order({"4"})


def test_the_order_is_fixed_whatever_the_order_asked():
    assert keys(plan(["5", "3", "1"])) == ["1", "3", "5"]


def test_an_unknown_scenario_is_refused():
    with pytest.raises(
        ValueError, match=r"no scenario 12, x \(there are 1, 2, 3, 6, 10, 7, 8, 4, 11, 5, 9\)"
    ):
        plan({"1", "12", "x"})


def test_needs_are_declared():
    assert BY_KEY["1"].needs == {Need.DEVICES}
    assert BY_KEY["2"].needs == {Need.DEVICES}
    assert BY_KEY["3"].needs == frozenset()
    assert BY_KEY["4"].needs == {Need.DEVICES, Need.FLEET}
    assert BY_KEY["5"].needs == {Need.FLEET}
    assert BY_KEY["6"].needs == frozenset()
    assert BY_KEY["7"].needs == {Need.DEVICES}
    assert BY_KEY["8"].needs == frozenset()
    assert BY_KEY["10"].needs == frozenset()
    assert BY_KEY["9"].needs == {Need.FLEET}
    assert BY_KEY["11"].needs == {Need.FLEET}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_each_runs_after_those_it_compares_with(scenario):
    """A row read through Context.row_of must exist by then: earlier in SCENARIOS, and not
    in a later stage (a scenario needing the fill cannot be compared with by one before)."""
    order = keys(SCENARIOS)
    for key in scenario.compares_with:
        assert order.index(key) < order.index(scenario.key)
        assert Need.FLEET not in BY_KEY[key].needs or Need.FLEET in scenario.needs


def test_scenarios_are_listed_before_the_fill_then_after():
    filled = [Need.FLEET in s.needs for s in SCENARIOS]
    assert filled == sorted(filled)
