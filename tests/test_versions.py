"""`hetcomp serve` following its base directory (serving/versions.py), on real SavedModels written to disk.

A broken version is what a crash or a full disk leaves: a real export whose `variables.data-*` file is cut to half
its size, or one whose `saved_model.pb` is there but not yet its variables. Versions are pushed as the Pusher
pushes them (staged, then renamed in) unless a test is about a directory still being written.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import portpicker
import pytest
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

from serving.client import recommend
from serving.export import export_model
from serving.servable import RequestError
from serving.swap_load import ServerProcess, push_version
from serving.versions import State, VersionManager
from tests.helpers import run_cli
from tests.test_serving import random_dataset, random_student

pytestmark = pytest.mark.slow  # end to end (training, processes, servers): `make test`, not `make check`

TRUNCATED_REASON = "IndexError: Read less bytes than requested"


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[int, Path]:
    """Three SavedModels of students with different weights, by seed, outside any served base directory."""
    data = random_dataset()
    root = tmp_path_factory.mktemp("exports")
    return {
        seed: Path(export_model(random_student(data, seed=seed), data, str(root / str(seed)))) for seed in (1, 2, 3)
    }


def being_written(source: Path, target: Path) -> None:
    """A version directory as a non-atomic writer leaves it midway: saved_model.pb there, no variables yet."""
    target.mkdir()
    shutil.copy(source / "saved_model.pb", target / "saved_model.pb")


def statuses(manager: VersionManager) -> dict[int, tuple[int, str]]:
    return {s.version: (s.state, s.status.error_message) for s in manager.status("hetcomp").model_version_status}


def top_items(servable, user: str) -> list[str]:
    outputs = servable.predict("serving_default", {"user_id": np.array([user.encode()], dtype=object)})
    return list(outputs["item_ids"][0])


def test_start_serves_the_newest_version_that_loads_and_names_each_broken_one(exports, tmp_path):
    push_version(exports[1], tmp_path, 1)
    push_version(exports[2], tmp_path, 2, truncate=True)
    being_written(exports[3], tmp_path / "3")
    lines: list[str] = []
    manager = VersionManager(str(tmp_path), "hetcomp", 0, lines.append)
    assert manager.start().version == 1
    assert len(lines) == 2
    assert lines[0].startswith(f"version 3 of hetcomp at {tmp_path / '3'} does not load, skipped: ")
    assert "variables" in lines[0]  # the loader's reason: it found no variables file
    assert lines[1] == f"version 2 of hetcomp at {tmp_path / '2'} does not load, skipped: {TRUNCATED_REASON}"
    states = statuses(manager)
    assert states[1] == (State.AVAILABLE, "") and states[2] == (State.END, TRUNCATED_REASON)
    assert states[3][0] == State.END and states[3][1] in lines[0]


def test_no_loadable_version_is_one_line_per_version_and_exit_2(exports, tmp_path):
    push_version(exports[1], tmp_path, 1, truncate=True)
    result = run_cli(["serve", "--model", str(tmp_path), "--port", "0"])
    assert result.code == 2
    assert result.stderr.splitlines() == [
        f"version 1 of hetcomp at {tmp_path / '1'} does not load, skipped: {TRUNCATED_REASON}",
        f"hetcomp: error: serve: no version under {tmp_path} loads (tried 1)",
    ]


def test_a_version_still_being_written_is_retried_only_when_its_directory_changes(exports, tmp_path):
    push_version(exports[1], tmp_path, 1)
    lines: list[str] = []
    manager = VersionManager(str(tmp_path), "hetcomp", 0, lines.append)
    manager.start()
    being_written(exports[2], tmp_path / "2")
    manager.poll_once()
    manager.poll_once()
    assert manager.served_version == 1 and len(lines) == 1 and "version 2 of hetcomp" in lines[0]
    shutil.copytree(exports[2] / "variables", tmp_path / "2" / "variables")  # the writer finishes
    shutil.copytree(exports[2] / "assets.extra", tmp_path / "2" / "assets.extra")
    manager.poll_once()
    assert manager.served_version == 2
    assert len(lines) == 3 and lines[1].startswith("now serving hetcomp version 2 (loaded and warmed in ")
    assert lines[2] == "unloaded hetcomp version 1"
    assert statuses(manager)[1] == (State.END, "") and statuses(manager)[2] == (State.AVAILABLE, "")


def test_a_request_in_flight_keeps_its_version_loaded_until_it_ends(exports, tmp_path):
    push_version(exports[1], tmp_path, 1)
    lines: list[str] = []
    manager = VersionManager(str(tmp_path), "hetcomp", 0, lines.append)
    manager.start()
    user = random_dataset().user_vocab[4]
    with manager.serving("hetcomp") as old:
        push_version(exports[2], tmp_path, 2)
        manager.poll_once()
        assert manager.served_version == 2 and statuses(manager)[1][0] == State.UNLOADING
        assert not any(line.startswith("unloaded") for line in lines)
        with manager.serving("hetcomp") as new:
            assert new.version == 2 and top_items(new, user) != top_items(old, user)  # other weights, still answering
        with pytest.raises(RequestError, match=r"Servable not found for request: Specific\(hetcomp, 1\)"):
            with manager.serving("hetcomp", version=1):
                pass
    assert lines[-1] == "unloaded hetcomp version 1" and statuses(manager)[1] == (State.END, "")


def test_a_served_version_whose_directory_disappears_is_served_from_memory_until_a_newer_one_loads(exports, tmp_path):
    push_version(exports[1], tmp_path, 1)
    lines: list[str] = []
    manager = VersionManager(str(tmp_path), "hetcomp", 0, lines.append)
    manager.start()
    shutil.rmtree(tmp_path / "1")
    manager.poll_once()
    manager.poll_once()
    assert lines == [
        f"version 1 of hetcomp: its directory {tmp_path / '1'} is gone; "
        "serving it from memory until a newer version loads"
    ]
    with manager.serving("hetcomp") as servable:
        assert len(top_items(servable, random_dataset().user_vocab[0])) == 15  # max_k of random_dataset
    push_version(exports[2], tmp_path, 2)
    manager.poll_once()
    assert manager.served_version == 2


def served_version(address: str) -> int:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "hetcomp"
    with grpc.insecure_channel(address) as channel:
        response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=20)
    return max(s.version for s in response.model_version_status if s.state == s.AVAILABLE)


def wait_for(condition, timeout: float) -> float:
    """Seconds until `condition()` held (polled every 20 ms), or fail after `timeout`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "condition not met in time"
        time.sleep(0.02)
    return time.monotonic() - started


def test_serve_command_follows_pushes_and_skips_a_truncated_version(exports, tmp_path):
    """The issue's scenario through `hetcomp serve` as a user runs it: good 1 + truncated 2 at start, then good 3
    pushed while serving (served within the poll period plus its load), then truncated 4 (logged once, 3 kept)."""
    poll = 0.5
    base = tmp_path / "serving"
    push_version(exports[1], base, 1)
    push_version(exports[2], base, 2, truncate=True)
    rest_port = portpicker.pick_unused_port()
    server = ServerProcess(base, poll, time.monotonic(), ("--rest-port", str(rest_port)))
    try:
        address = server.address(timeout=300)
        log = [line for _, line in server.lines]
        assert f"version 2 of hetcomp at {base / '2'} does not load, skipped: {TRUNCATED_REASON}" in log
        assert f"serving hetcomp version 1 on {address}" in log
        assert wait_for(lambda: any(line.startswith("REST API of hetcomp") for _, line in server.lines), 30) >= 0
        assert served_version(address) == 1

        push_version(exports[3], base, 3)
        waited = wait_for(lambda: served_version(address) == 3, 60)
        [swap] = [line for _, line in server.lines if line.startswith("now serving hetcomp version 3")]
        load_seconds = float(swap.split("warmed in ")[1].split(" s)")[0])
        # One poll period to notice, the load it reports, and 1 s for the status round trips on a busy machine.
        assert waited <= poll + load_seconds + 1.0
        assert recommend(address, ["u905"], k=3)[0]["item_ids"]

        push_version(exports[1], base, 4, truncate=True)
        time.sleep(4 * poll)
        assert served_version(address) == 3
        with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/v1/models/hetcomp/versions/4", timeout=20) as reply:
            [status] = json.load(reply)["model_version_status"]
        assert status == {
            "version": "4",
            "state": "END",
            "status": {"error_code": "UNKNOWN", "error_message": TRUNCATED_REASON},
        }
        assert sum("version 4 of hetcomp" in line for _, line in server.lines) == 1
    finally:
        server.stop()
    assert server.process.returncode == 0
