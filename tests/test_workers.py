"""run_in_workers: results come back as tasks finish, and one failed task neither hides nor loses the others."""

from __future__ import annotations

import pytest

from hetcomp_tf.errors import HetCompError
from hetcomp_tf.util.workers import run_in_workers


def square_unless_three(x: int) -> int:
    if x == 3:
        raise ValueError("three is not allowed")
    return x * x


@pytest.mark.slow
def test_a_failed_task_is_reported_and_the_others_still_yield(capsys):
    tasks = [(f"task{x}", square_unless_three, (x,)) for x in range(1, 6)]
    results = {}
    with pytest.raises(HetCompError, match=r"1 of 5 squares failed: task3") as raised:
        for key, value in run_in_workers(tasks, 2, "squares"):
            results[key] = value
    assert results == {"task1": 1, "task2": 4, "task4": 16, "task5": 25}
    assert "three is not allowed" in str(raised.value.__cause__)
    assert "squares: task3 failed: ValueError: three is not allowed" in capsys.readouterr().err
