"""The wall time of a job over its invocations: a running one keeps its record current, later ones add to it."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest

from hetcomp_tf.bench.wall_clock import InvocationClock
from hetcomp_tf.errors import HetCompError


def recorded(path):
    return json.loads(path.read_text())["invocations"]


def test_a_running_invocation_keeps_its_seconds_current_and_the_next_one_adds_to_them(tmp_path):
    path = tmp_path / "wall.json"
    with InvocationClock(path, time.perf_counter() - 5.0, interval=0.05) as clock:  # 5 s of work before the clock
        time.sleep(0.4)
        deadline = time.perf_counter() + 4.0  # a loaded CI machine may run the clock's thread late
        while recorded(path)[0]["seconds"] <= 5.2 and time.perf_counter() < deadline:
            time.sleep(0.05)
        [running] = recorded(path)  # written by the clock while the job runs, as a stopped job leaves it
        assert 5.2 < running["seconds"] <= clock.seconds()
    [first] = recorded(path)
    assert 5.4 <= first["seconds"] < 10
    started = datetime.fromisoformat(first["started"])
    assert abs((datetime.now(UTC) - started).total_seconds() - first["seconds"]) < 2

    with InvocationClock(path, time.perf_counter() - 2.0, interval=60) as second:
        assert second.invocations()[0] == first and len(second.invocations()) == 2
    earlier, last = recorded(path)
    assert earlier == first and 2.0 <= last["seconds"] < 3


@pytest.mark.parametrize("text", ["[1, 2]", '{"invocations": [{"started": "x"}]}', "{not json"])
def test_a_malformed_record_is_a_one_line_error_naming_it(tmp_path, text):
    path = tmp_path / "wall.json"
    path.write_text(text)
    with pytest.raises(HetCompError, match=str(path)) as raised:
        InvocationClock(path, time.perf_counter())
    assert "\n" not in str(raised.value)
