"""`hetcomp run --jobs N`: independent components side by side (pipeline/local_runner.py).

The scheduler on fake nodes (order, the bound on nodes at a time, a failure), the lock that lets processes share the
SQLite ML Metadata store, and a bad --jobs. The tiny pipeline with teachers in worker processes is in
test_pipeline.py, beside the session's tiny run it is compared with.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from pipeline.local_runner import LockedMetadata, metadata_config, run_dag
from tests.helpers import run_cli

TEACHERS_DAG = {
    "data": [],
    "MF": ["data"],
    "GNN": ["data"],
    "AE": ["data"],
    "knowledge": ["MF", "GNN", "AE"],
    "student": ["knowledge"],
}


def _run_fake(dag: dict, jobs: int, slow=None, fail=None, spans: dict | None = None, inline=(), **options):
    """run_dag (with `options`) over threads that sleep (`slow` 0.3 s, the others 0.05 s; `fail` raises at its end):
    each node's [start, end] times (into `spans`, kept if run_dag raises), whether it started alone, the most nodes
    that ran at once."""
    lock, alone, active, most = threading.Lock(), {}, [0], [0]
    spans = {} if spans is None else spans

    def work(node: str) -> None:
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
            spans[node] = [time.monotonic(), None]
        time.sleep(0.3 if node == slow else 0.05)
        with lock:
            active[0] -= 1
            spans[node][1] = time.monotonic()
        if node == fail:
            raise RuntimeError(f"{node} broke")

    def start(node: str, is_alone: bool):
        alone[node] = is_alone
        return pool.submit(work, node)

    with ThreadPoolExecutor(8) as pool:
        run_dag(dag, start, jobs, inline=inline, **options)
    return spans, alone, most[0]


def test_a_node_starts_only_after_its_upstream_nodes_and_at_most_jobs_run_at_once():
    spans, alone, most = _run_fake(TEACHERS_DAG, jobs=2, slow="GNN")  # AE starts when MF ends, beside GNN
    assert set(spans) == set(TEACHERS_DAG)
    for node, upstream in TEACHERS_DAG.items():
        for before in upstream:
            assert spans[before][1] <= spans[node][0], (before, node)
    assert most == 2  # three teachers were ready: two at a time, never three
    assert alone == {"data": True, "MF": False, "GNN": False, "AE": False, "knowledge": True, "student": True}


def test_one_job_runs_every_node_alone_one_after_another():
    spans, alone, most = _run_fake(TEACHERS_DAG, jobs=1)
    assert most == 1 and all(alone.values())
    assert sorted(spans, key=lambda node: spans[node][0]) == list(TEACHERS_DAG)  # ready ones in the given order


def test_the_longest_ready_node_starts_first_and_ticks_come_while_nodes_run():
    ticks = []
    seconds = {"AE": 600.0, "GNN": 300.0, "MF": 60.0}
    spans, _, _ = _run_fake(
        TEACHERS_DAG, jobs=1, slow="AE", seconds=seconds, tick=lambda: ticks.append(1), tick_seconds=0.1
    )
    assert [n for n in sorted(spans, key=lambda node: spans[node][0]) if n in seconds] == ["AE", "GNN", "MF"]
    assert 1 <= len(ticks) <= 3  # AE's 0.3 s hold no end: a tick every 0.1 s


def test_an_inline_node_starts_alone_at_once_without_taking_a_job():
    spans, alone, _ = _run_fake({"latest": [], **TEACHERS_DAG}, jobs=1, slow="latest", inline={"latest"})
    assert alone["latest"] and alone["data"]
    assert spans["data"][0] < spans["latest"][1]  # with one job, data did not wait for the inline node


def test_a_node_failing_in_place_starts_none_after_it():
    """As LocalDagRunner: bad data fails the ingestion, and the resolver listed after it never runs."""
    started = []

    def start(node: str, alone: bool) -> Future:
        started.append(node)
        future = Future()
        future.set_exception(ValueError("bad data")) if node == "data" else future.set_result(False)
        return future

    with pytest.raises(ValueError, match="bad data"):
        run_dag({"data": [], "latest": [], "MF": ["data"]}, start, 2, inline={"latest"})
    assert started == ["data"]


def test_after_a_failure_nothing_more_starts_the_running_nodes_finish_and_the_error_is_raised():
    spans: dict = {}
    with pytest.raises(RuntimeError, match="MF broke"):
        _run_fake(TEACHERS_DAG, jobs=2, slow="GNN", fail="MF", spans=spans)
    assert set(spans) == {"data", "MF", "GNN"}  # MF and GNN ran together; after MF failed, AE never started
    assert spans["GNN"][1] is not None and spans["GNN"][1] > spans["MF"][1]  # GNN finished after the failure


def _write_artifacts(path: str, worker: int, count: int) -> None:
    from ml_metadata.proto import metadata_store_pb2

    connection = LockedMetadata(metadata_config(path), path + ".lock")
    for k in range(count):
        with connection as handle:
            type_id = handle.store.put_artifact_type(metadata_store_pb2.ArtifactType(name="Written"))
            handle.store.put_artifacts([metadata_store_pb2.Artifact(type_id=type_id, uri=f"/{worker}/{k}")])


@pytest.mark.slow
def test_processes_writing_to_one_store_through_the_lock_all_succeed(tmp_path):
    """Without the lock, two processes writing like this abort ("Concurrent writes aborted after max number of
    retries"); with it, every write lands."""
    from ml_metadata.metadata_store import metadata_store

    path = str(tmp_path / "metadata.sqlite")
    _write_artifacts(path, -1, 1)  # creates the store and its schema before the writers race
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write_artifacts, args=(path, worker, 150)) for worker in (0, 1)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=300)
    assert [writer.exitcode for writer in writers] == [0, 0]
    uris = {a.uri for a in metadata_store.MetadataStore(metadata_config(path)).get_artifacts()}
    assert uris == {"/-1/0"} | {f"/{w}/{k}" for w in (0, 1) for k in range(150)}


@pytest.mark.parametrize("jobs", ["0", "-1"])
def test_jobs_below_one_is_one_line_error(tmp_path, jobs):
    result = run_cli(["run", "--data", "synthetic", "--profile", "tiny", "--jobs", jobs, "--out", str(tmp_path / "o")])
    assert result.code != 0
    assert f"--jobs {jobs}: must be >= 1" in result.stderr
    assert not (tmp_path / "o").exists()
