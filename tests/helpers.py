"""Helpers several test modules share: the CLI run in-process with its output captured, waiting for a server's
start-up line, ExampleValidator's output as an artifact, and the scalars of TensorBoard event files."""

from __future__ import annotations

import contextlib
import io
import os
import selectors
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from tfx.types import artifact_utils, standard_artifacts

from hetcomp_tf.cli import main


def run_cli(argv: list[str]) -> SimpleNamespace:
    """`hetcomp ARGV` in this process: its exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return SimpleNamespace(code=code, stdout=out.getvalue(), stderr=err.getvalue())


def wait_for_line(process: subprocess.Popen, prefix: str, timeout: float) -> str:
    """The first stderr line of `process` starting with `prefix`, or fail after `timeout` seconds."""
    selector = selectors.DefaultSelector()
    selector.register(process.stderr, selectors.EVENT_READ)
    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        if selector.select(timeout=deadline - time.monotonic()):
            line = process.stderr.readline()
            if not line:
                break
            seen.append(line)
            if line.startswith(prefix):
                return line.strip()
    pytest.fail(f"no {prefix!r} line from the server within {timeout}s; stderr: {''.join(seen)[-2000:]}")


def anomalies_artifact(root, per_split: dict):
    """An ExampleAnomalies artifact at `root` holding ExampleValidator's SchemaDiff.pb for each split."""
    from components.data_gate import ANOMALIES_FILE

    artifact = standard_artifacts.ExampleAnomalies()
    artifact.uri = str(root)
    artifact.split_names = artifact_utils.encode_split_names(list(per_split))
    for split, anomalies in per_split.items():
        os.makedirs(os.path.join(root, f"Split-{split}"))
        with open(os.path.join(root, f"Split-{split}", ANOMALIES_FILE), "wb") as f:
            f.write(anomalies.SerializeToString())
    return artifact


def read_scalars(directory: Path) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} from every event file directly in `directory` (failing if there is none)."""
    import tensorflow as tf  # only the tests that read event files pay for the import

    scalars: dict[str, list[tuple[int, float]]] = {}
    files = sorted(Path(directory).glob("events.out.tfevents.*"))
    assert files, f"no event file in {directory}"
    for path in files:
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, float(tf.make_ndarray(value.tensor))))
    return scalars
