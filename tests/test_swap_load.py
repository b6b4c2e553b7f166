"""The measured version swap under load (serving/swap_load.py), run small: a real `hetcomp serve` subprocess on
127.0.0.1, real gRPC clients, real pushes of a good, a truncated and a good version."""

from __future__ import annotations

import json

import pytest

from serving import swap_load

pytestmark = pytest.mark.slow  # end to end (training, processes, servers): `make test`, not `make check`

POLL = 0.3


def test_a_small_swap_load_fails_no_request_and_follows_the_good_versions(tmp_path, capsys):
    out = tmp_path / "swap.json"
    code = swap_load.main(
        [
            "--out",
            str(out),
            "--threads",
            "4",
            "--rate",
            "40",
            "--poll-seconds",
            str(POLL),
            "--phase-seconds",
            "1",
            "--max-requests",
            "2000",
        ]
    )
    record = json.loads(out.read_text())
    table = capsys.readouterr().out
    assert code == 0 and record["ok"] and table.rstrip().endswith("ok: True")
    requests = record["requests"]
    assert requests["failed"] == 0 and requests["sent"] >= 100  # ~40/s over at least 5 s of schedule
    assert set(requests["answered_by_version"]) == {"1", "2", "4"}  # the truncated version 3 never answered
    good_2, truncated_3, good_4 = record["pushes"]
    assert [p["served_after"] for p in record["pushes"]] == [2, 2, 4]
    assert all(p["sent"] > 0 and p["failed"] == 0 for p in record["pushes"])  # load ran through every swap
    assert [version for _, version in record["served_version_over_time"]] == [1, 2, 4]
    log = [line for _, line in record["server_log"]]
    assert sum("version 3 of hetcomp" in line and "does not load" in line for line in log) == 1
    for push in (good_2, truncated_3, good_4):
        assert f"push {push['label']} v{push['version']}" in table
    for push in (good_2, good_4):
        [swap] = [line for line in log if line.startswith(f"now serving hetcomp version {push['version']} ")]
        load_seconds = float(swap.split("warmed in ")[1].split(" s)")[0])
        # One poll period to notice, its load, and 1 s for status sampling and scheduling on a busy machine.
        assert push["followed_s"] <= POLL + load_seconds + 1.0
