"""The runner's scheduling policy and the schedule's remaining time (`hetcomp_tf.util.schedule`), and the pipeline's
ETA lines (`pipeline/eta.py`) on a fake clock."""

from __future__ import annotations

import numpy as np
import pytest

from hetcomp_tf.util.schedule import next_starts, remaining_seconds


def test_ready_nodes_start_longest_first_as_jobs_free_up():
    seconds = {"AE": 60.0, "ML": 30.0, "GNN": 30.0}
    assert next_starts(["MF", "ML", "GNN", "AE"], busy=0, jobs=2, seconds=seconds) == [("AE", False), ("ML", False)]
    assert next_starts(["MF", "GNN"], busy=1, jobs=2, seconds=seconds) == [("GNN", False)]  # beside the one running
    assert next_starts(["MF"], busy=0, jobs=2) == [("MF", True)]  # the only one: alone, on every core
    assert next_starts(["MF", "GNN"], busy=2, jobs=2, inline={"r"}) == []
    assert next_starts(["r", "MF"], busy=2, jobs=2, inline={"r"}) == [("r", True)]  # inline takes no job
    assert next_starts(["a", "b", "c"], busy=0, jobs=3) == [("a", False), ("b", False), ("c", False)]  # ties: order


def reference_remaining(upstream, seconds, jobs, slowdown, inline=()) -> int:
    """One time unit at a time: every running node's work left drops by one a unit. Integer seconds and slowdown."""
    finished, left, now = set(), {}, 0
    while True:
        while True:  # nodes that take no time end at once and may free others at the same instant
            ready = [n for n in upstream if n not in finished and n not in left and set(upstream[n]) <= finished]
            busy = sum(n not in inline for n in left)
            for node, alone in next_starts(ready, busy, jobs, inline, seconds):
                left[node] = seconds.get(node, 0) * (1 if alone else slowdown)
            zero = [n for n, work in left.items() if work == 0]
            if not zero:
                break
            for node in zero:
                finished.add(node)
                del left[node]
        if not left:
            return now
        now += 1
        for node in list(left):
            left[node] -= 1


@pytest.mark.parametrize("seed", range(30))
def test_remaining_time_is_the_unit_by_unit_schedules(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 9))
    names = [f"n{i}" for i in range(n)]
    upstream = {name: [u for u in names[:i] if rng.random() < 0.3] for i, name in enumerate(names)}
    seconds = {name: int(rng.integers(0, 7)) for name in names if rng.random() < 0.9}
    jobs, slowdown = int(rng.integers(1, 4)), int(rng.integers(1, 3))
    inline = {name for name in names if name not in seconds}
    expected = reference_remaining(upstream, seconds, jobs, slowdown, inline)
    assert remaining_seconds(upstream, seconds, jobs, slowdown, inline) == expected


def test_remaining_time_counts_what_the_running_nodes_have_left():
    dag = {"data": [], "MF": ["data"], "AE": ["data"], "student": ["MF", "AE"]}
    seconds = {"data": 1.0, "MF": 4.0, "AE": 10.0, "student": 3.0}
    assert remaining_seconds(dag, seconds, jobs=1) == sum(seconds.values())
    # AE has run 5 s of its 15 beside MF, MF is done: 10 s of AE, then the student alone.
    left = remaining_seconds(dag, seconds, 2, 1.5, done={"data", "MF"}, running={"AE": (5.0, False)})
    assert left == pytest.approx(10.0 + 3.0)
    # A node past its estimate has nothing left, not a negative time.
    assert remaining_seconds(dag, seconds, 2, 1.5, done={"data", "MF", "AE"}, running={"student": (9.0, True)}) == 0.0


def test_eta_lines_price_the_estimates_then_follow_the_pace(monkeypatch):
    from pipeline import eta as eta_module

    clock = [0.0]
    monkeypatch.setattr(eta_module.time, "perf_counter", lambda: clock[0])
    dag = {"data": [], "MF": ["data"], "AE": ["data"], "student": ["MF", "AE"]}
    eta = eta_module.PipelineEta(dag, {"MF": 600.0, "AE": 1200.0, "student": 300.0}, jobs=2, slowdown=1.5)
    eta.started("data", True)
    clock[0] = 60.0
    eta.ended("data", cached=False)  # no estimate: no pace yet
    eta.started("AE", False)
    eta.started("MF", False)
    assert eta.line() == (
        "pipeline: 1 of 4 components done, 60s elapsed; ETA ~35 min at the estimates (epoch caps; early stopping "
        "usually ends sooner)"
    )
    clock[0] = 510.0  # MF ends after 450 s of its 900 beside AE: half its estimate
    eta.ended("MF", cached=False)
    # At that pace AE (900 s beside MF) has 450 s left, then the student 150 s; at the estimates 1,350 s and 300 s.
    assert eta.line() == (
        "pipeline: 2 of 4 components done, 8 min elapsed; ETA ~10 min at the pace so far (0.50 of the estimates), "
        "~28 min at the estimates (epoch caps)"
    )
