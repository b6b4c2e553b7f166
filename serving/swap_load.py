"""Version swaps under load, measured: does `hetcomp serve` follow pushed versions without failing a request?

`python -m serving.swap_load --out swap.json` exports small students (random weights on the `tiny` profile's
synthetic data: serving is measured, not quality), starts `hetcomp serve` on 127.0.0.1 in a subprocess (polling
every --poll-seconds), sends a steady load from --threads client threads (each with its own channel, --rate
requests/s in all, a Predict of `serving_default` for a random user; bounded by --max-requests and by the
schedule) and, during it, pushes a good version, then one whose variables file is truncated, then a good one,
each staged and renamed in as the Pusher does. It records every request (when sent, its latency, its status, the
version that answered), the served version (GetModelStatus every 50 ms) and the server's log lines, writes them
with p50/p99 latency overall and in each swap window to --out, and prints a table. Exit status 1 if a request
failed, a good version was not served in time or the truncated one ever answered.

A swap window runs from a push until SETTLE_SECONDS after GetModelStatus shows the pushed version (a good
push: the load, the warm-up, the swap and the old version's unload fall in it) or until two poll periods plus
SETTLE_SECONDS after the push (the truncated one: tried once, logged, skipped).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from hetcomp_tf.config import get_profile
from hetcomp_tf.data.readers import make_synthetic
from hetcomp_tf.data.split import split_dataset
from hetcomp_tf.distill.student import Student
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.util.files import atomic_directory, write_json
from hetcomp_tf.util.tables import format_table
from serving.client import DEFAULT_MODEL_NAME, DEFAULT_SIGNATURE
from serving.export import export_model

REPO_ROOT = Path(__file__).resolve().parents[1]
SETTLE_SECONDS = 1.0
STATUS_EVERY_SECONDS = 0.05
LOAD_BUDGET_SECONDS = 60.0  # a good version must be served within one poll period plus this (load and warm-up)
SCHEDULE = (("good", 2), ("truncated", 3), ("good", 4))  # version 1 is served from the start


def truncate_variables(version_dir: str | os.PathLike) -> None:
    """Cuts every `variables/variables.data-*` file of a SavedModel to half its size (a crash or a full disk).

    Args:
        version_dir: the SavedModel directory.

    Raises:
        HetCompError: no such file there.
    """
    files = sorted(Path(version_dir, "variables").glob("variables.data-*"))
    if not files:
        raise HetCompError(f"{version_dir}: no variables/variables.data-* file to truncate")
    for data_file in files:
        os.truncate(data_file, data_file.stat().st_size // 2)


def push_version(source: str | os.PathLike, base_dir: str | os.PathLike, version: int, truncate: bool = False) -> Path:
    """Copies the SavedModel at `source` to `base_dir/<version>` as the Pusher does: staged next to it, then
    renamed, so a server never lists it half-copied.

    Args:
        source: the SavedModel to push.
        base_dir: the served base directory.
        version: the version number.
        truncate: truncate the staged copy's variables first (`truncate_variables`).

    Returns:
        The version directory.
    """
    target = Path(base_dir) / str(version)
    with atomic_directory(target) as staging:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        if truncate:
            truncate_variables(staging)
    return target


def export_versions(directory: Path, versions: list[int]) -> tuple[dict[int, Path], np.ndarray]:
    """One SavedModel per version, each a student with its own random weights on the `tiny` profile's data.

    Args:
        directory: where the versions are exported, one sub-directory each.
        versions: the version numbers (each also seeds its student).

    Returns:
        ({version: its SavedModel directory}, str [n_users] the original user ids).
    """
    cfg = get_profile("tiny")
    data = split_dataset(
        make_synthetic(cfg.data.synthetic_users, cfg.data.synthetic_items, cfg.data.seed), cfg.data, "synthetic"
    )
    exported = {}
    for version in versions:
        student = Student(data.n_users, data.n_items, dim=cfg.distill.student_dim, seed=version)
        exported[version] = Path(export_model(student, data, str(directory / str(version))))
    return exported, data.user_vocab.astype(str)


class ServerProcess:
    """`hetcomp serve` in a subprocess on a free port of 127.0.0.1, its stderr lines kept with their times.

    Args:
        base_dir: the served base directory.
        poll_seconds: the server's --poll-seconds.
        origin: time.monotonic() of the measurement's start (the lines' times count from it).
        extra_args: more `hetcomp serve` arguments.
    """

    def __init__(self, base_dir: Path, poll_seconds: float, origin: float, extra_args: tuple[str, ...] = ()):
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hetcomp_tf.cli",
                "serve",
                "--model",
                str(base_dir),
                "--port",
                "0",
                "--poll-seconds",
                str(poll_seconds),
                *extra_args,
            ],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.lines: list[tuple[float, str]] = []
        self._origin = origin
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append((time.monotonic() - self._origin, line.rstrip("\n")))

    def address(self, timeout: float) -> str:
        """The server's address, from its `serving NAME version V on HOST:PORT` line.

        Args:
            timeout: seconds to wait for the line.

        Returns:
            HOST:PORT.

        Raises:
            HetCompError: no such line in time, or the server exited.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for _, line in list(self.lines):
                if line.startswith("serving "):
                    return line.rsplit(" on ", 1)[1]
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        tail = " | ".join(line for _, line in self.lines[-5:])
        raise HetCompError(f"swap_load: the server did not start within {timeout:g} s: {tail}")

    def stop(self) -> None:
        """Ends the server with SIGTERM (SIGKILL after 30 s) and stops reading its stderr."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=10)
        self.process.stderr.close()


@dataclass
class Load:
    """The client side of the measurement.

    Attributes:
        address: the server's HOST:PORT.
        users: str, the original user ids requests draw from.
        origin: time.monotonic() of the measurement's start.
        records: (sent at, seconds, status name, answering version or 0) of each request.
        served: [seconds, version] at each change of the AVAILABLE version.
        stop: set to end the clients and the monitor.
    """

    address: str
    users: np.ndarray
    origin: float
    records: list[tuple[float, float, str, int]] = field(default_factory=list)
    served: list[list[float]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def current_version(self) -> int:
        """The last AVAILABLE version seen, 0 before any."""
        return int(self.served[-1][1]) if self.served else 0

    def client(self, seed: int, interval: float, quota: int) -> None:
        """Sends up to `quota` Predicts, one every `interval` seconds (later when the previous one is slower),
        until `stop` is set; records each in `records`.

        Args:
            seed: seeds the requests' users.
            interval: seconds between sends.
            quota: the most requests.
        """
        rng = np.random.default_rng(seed)
        with grpc.insecure_channel(self.address) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            next_send = time.monotonic()
            for _ in range(quota):
                if self.stop.wait(max(0.0, next_send - time.monotonic())):
                    return
                request = predict_pb2.PredictRequest()
                request.model_spec.name, request.model_spec.signature_name = DEFAULT_MODEL_NAME, DEFAULT_SIGNATURE
                request.inputs["user_id"].CopyFrom(tf.make_tensor_proto(rng.choice(self.users, 1)))
                request.inputs["k"].CopyFrom(tf.make_tensor_proto(np.int32(10)))
                started = time.monotonic()
                try:
                    response = stub.Predict(request, timeout=30)
                    outcome, version = "OK", response.model_spec.version.value
                except grpc.RpcError as error:
                    outcome, version = error.code().name, 0
                self.records.append((started - self.origin, time.monotonic() - started, outcome, version))
                next_send += interval

    def monitor(self) -> None:
        """Records the AVAILABLE version every STATUS_EVERY_SECONDS (0 when GetModelStatus fails)."""
        with grpc.insecure_channel(self.address) as channel:
            stub = model_service_pb2_grpc.ModelServiceStub(channel)
            request = get_model_status_pb2.GetModelStatusRequest()
            request.model_spec.name = DEFAULT_MODEL_NAME
            while not self.stop.wait(STATUS_EVERY_SECONDS):
                try:
                    statuses = stub.GetModelStatus(request, timeout=10).model_version_status
                    version = max((s.version for s in statuses if s.state == s.AVAILABLE), default=0)
                except grpc.RpcError:
                    version = 0
                if version != self.current_version():
                    self.served.append([round(time.monotonic() - self.origin, 3), version])


def _latency_summary(records: list[tuple[float, float, str, int]]) -> dict:
    latencies = np.array([seconds for _, seconds, _, _ in records]) * 1000
    failed = [outcome for _, _, outcome, _ in records if outcome != "OK"]
    return {
        "sent": len(records),
        "failed": len(failed),
        "failed_by_code": {code: failed.count(code) for code in sorted(set(failed))},
        "p50_ms": round(float(np.percentile(latencies, 50)), 2) if len(latencies) else None,
        "p99_ms": round(float(np.percentile(latencies, 99)), 2) if len(latencies) else None,
    }


def _wait_for_version(load: Load, version: int, timeout: float) -> float | None:
    """Seconds since the load's origin when GetModelStatus first showed `version`, or None after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for at, served in load.served:
            if served == version:
                return at
        time.sleep(STATUS_EVERY_SECONDS / 2)
    return None


def measure(
    work_dir: Path,
    threads: int = 8,
    rate: float = 160.0,
    poll_seconds: float = 1.0,
    phase_seconds: float = 4.0,
    max_requests: int = 20000,
    log=print,
) -> dict:
    """Runs the measurement described in the module docstring in `work_dir`; returns its record.

    Args:
        work_dir: an empty directory for the exports and the served base directory.
        threads: client threads.
        rate: requests per second over all threads.
        poll_seconds: the server's --poll-seconds.
        phase_seconds: steady load before, between and after pushes.
        max_requests: the most requests sent in all.
        log: receives the progress lines.

    Returns:
        The JSON record: config, requests (overall), pushes (each with its window's latencies), the served
        version over time, the server's log and `ok`.

    Raises:
        HetCompError: bad settings, or a server that does not start.
    """
    if threads < 1 or rate <= 0 or poll_seconds <= 0 or phase_seconds <= 0 or max_requests < threads:
        raise HetCompError(
            "swap_load: need threads >= 1, rate > 0, poll and phase seconds > 0, " "max-requests >= threads"
        )
    log("swap_load: exporting the versions")
    exported, users = export_versions(work_dir / "exports", [1, *(version for _, version in SCHEDULE)])
    base = work_dir / "serving"
    push_version(exported[1], base, 1)
    origin = time.monotonic()
    server = ServerProcess(base, poll_seconds, origin)
    pushes = []
    try:
        load = Load(server.address(timeout=300), users, origin)
        log(f"swap_load: server on {load.address}; {threads} threads, {rate:g} requests/s")
        workers = [
            threading.Thread(target=load.client, args=(seed, threads / rate, max_requests // threads))
            for seed in range(threads)
        ]
        workers.append(threading.Thread(target=load.monitor))
        for worker in workers:
            worker.start()
        try:
            for label, version in SCHEDULE:
                time.sleep(phase_seconds)
                pushed = time.monotonic() - origin
                push_version(exported[version], base, version, truncate=label == "truncated")
                log(f"swap_load: pushed {label} version {version} at {pushed:.2f} s")
                if label == "good":
                    served = _wait_for_version(load, version, poll_seconds + LOAD_BUDGET_SECONDS)
                    end = (served if served is not None else time.monotonic() - origin) + SETTLE_SECONDS
                else:
                    served, end = None, pushed + 2 * poll_seconds + SETTLE_SECONDS
                time.sleep(max(0.0, end - (time.monotonic() - origin)))
                pushes.append(
                    {
                        "label": label,
                        "version": version,
                        "pushed_at_s": round(pushed, 3),
                        "served_at_s": served,
                        "followed_s": None if served is None else round(served - pushed, 3),
                        "window_s": [round(pushed, 3), round(end, 3)],
                        "served_after": load.current_version(),
                    }
                )
            time.sleep(phase_seconds)
        finally:
            load.stop.set()
            for worker in workers:
                worker.join()
    finally:
        server.stop()
    return _record(
        load,
        pushes,
        server.lines,
        dict(
            threads=threads,
            rate=rate,
            poll_seconds=poll_seconds,
            phase_seconds=phase_seconds,
            max_requests=max_requests,
        ),
    )


def _record(load: Load, pushes: list[dict], server_log: list, config: dict) -> dict:
    records = sorted(load.records)
    for push in pushes:
        start, end = push["window_s"]
        push.update(_latency_summary([r for r in records if start <= r[0] <= end]))
    answered = {str(v): sum(1 for r in records if r[3] == v) for v in sorted({r[3] for r in records if r[2] == "OK"})}
    broken = [version for label, version in SCHEDULE if label == "truncated"]
    overall = _latency_summary(records)
    ok = (
        overall["failed"] == 0
        and all(p["served_at_s"] is not None for p in pushes if p["label"] == "good")
        and not any(str(version) in answered for version in broken)
        and load.current_version() == SCHEDULE[-1][1]
    )
    return {
        "config": config,
        "requests": {**overall, "answered_by_version": answered},
        "pushes": pushes,
        "served_version_over_time": load.served,
        "server_log": [[round(at, 3), line] for at, line in server_log],
        "ok": ok,
    }


def format_record(record: dict) -> str:
    """The readable table of a record: overall and per push, then the served version over time.

    Args:
        record: `measure`'s record.

    Returns:
        The text.
    """
    rows = {"all requests": record["requests"]}
    for push in record["pushes"]:
        rows[f"push {push['label']} v{push['version']} ({push['window_s'][0]:.1f}-{push['window_s'][1]:.1f} s)"] = push
    columns = ["sent", "failed", "p50_ms", "p99_ms", "followed_s", "served_after"]
    table = format_table(rows, columns, {"p50_ms": ".2f", "p99_ms": ".2f", "followed_s": ".2f"})
    timeline = ", ".join(f"v{version} from {at:.2f} s" for at, version in record["served_version_over_time"])
    return f"{table}\nserved (GetModelStatus): {timeline}\nok: {record['ok']}"


def main(argv: list[str] | None = None) -> int:
    """`python -m serving.swap_load`: measures, writes --out and prints the table.

    Args:
        argv: the command line's arguments (default: sys.argv[1:]).

    Returns:
        The exit status: 0 when the record is ok, 1 when not, 2 on an error.
    """
    parser = argparse.ArgumentParser(prog="python -m serving.swap_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, metavar="FILE.json")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rate", type=float, default=160.0, help="requests per second over all threads")
    parser.add_argument("--poll-seconds", type=float, default=1.0, help="the server's --poll-seconds")
    parser.add_argument("--phase-seconds", type=float, default=4.0, help="steady load around each push")
    parser.add_argument("--max-requests", type=int, default=20000)
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="swap_load-") as work:
            record = measure(
                Path(work),
                args.threads,
                args.rate,
                args.poll_seconds,
                args.phase_seconds,
                args.max_requests,
                log=lambda line: print(line, file=sys.stderr, flush=True),
            )
    except HetCompError as error:
        print(f"swap_load: error: {error}", file=sys.stderr)
        return 2
    write_json(args.out, record)
    print(format_record(record))
    return 0 if record["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
