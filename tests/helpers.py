"""Helpers several test modules share: the CLI run in-process with its output captured, waiting for a server's
start-up line, ExampleValidator's output as an artifact, the scalars of TensorBoard event files, and the check that
an exported SavedModel answers as the model it exports."""

from __future__ import annotations

import contextlib
import io
import os
import selectors
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
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


# Exported scores against `score_all`: both are float32 sums of at most d + 2 products (CML's tables add two
# columns), summed in another order by another matmul. With d <= 16 and every product below 4 in magnitude (the tiny
# models' rows have norms below 2: CML's lie in the unit ball, the others start at std <= 0.1 and barely move in one
# epoch), the two differ by at most about 18 * 4 * 2**-23 ≈ 1e-5 (float32's epsilon per rounded addition).
SCORE_TOLERANCE = 1e-5


def assert_answers_like_score_all(directory, model, data, users, k: int) -> None:
    """The SavedModel in `directory` (serving/export.py) answers as `model` scores: `score_items` of every item
    equals `model.score_all` within SCORE_TOLERANCE, and `serving_default`'s top-`k` holds no train item and is
    the NumPy top-k of `score_all` with train items masked (items whose score is within the tolerance of a
    neighbour's may swap: ties aside)."""
    import tensorflow as tf

    served = tf.saved_model.load(str(directory))
    users = np.asarray(users)
    expected = model.score_all(users).numpy()  # [b, n_items]
    all_items = np.broadcast_to(data.item_vocab.astype(str), (len(users), data.n_items))
    scores = served.signatures["score_items"](
        user_id=tf.constant(data.user_vocab[users].astype(str)), item_id=tf.constant(all_items)
    )["scores"].numpy()
    np.testing.assert_allclose(scores, expected, rtol=SCORE_TOLERANCE, atol=SCORE_TOLERANCE)
    top = served.signatures["serving_default"](
        user_id=tf.constant(data.user_vocab[users].astype(str)), k=tf.constant(k, tf.int32)
    )
    index = {item: column for column, item in enumerate(data.item_vocab.astype(str))}
    for row, user in enumerate(users):
        served_items = np.array([index[item] for item in top["item_ids"].numpy()[row].astype(str)])
        seen = data.train.row(user)
        assert served_items.shape == (k,) and not set(served_items) & set(seen), f"user {user}"
        masked = expected[row].copy()
        masked[seen] = -np.inf
        reference = np.argsort(-masked, kind="stable")[:k]  # NumPy's top-k of score_all, train items masked
        np.testing.assert_allclose(
            top["scores"].numpy()[row], masked[reference], rtol=SCORE_TOLERANCE, atol=SCORE_TOLERANCE
        )
        np.testing.assert_allclose(masked[served_items], masked[reference], rtol=SCORE_TOLERANCE, atol=SCORE_TOLERANCE)
        gaps = np.abs(np.diff(masked[np.argsort(-masked, kind="stable")[: k + 1]]))
        clear = gaps > 2 * SCORE_TOLERANCE  # no tie with the item ranked next below
        clear[1:] &= gaps[:-1] > 2 * SCORE_TOLERANCE  # nor with the one above
        np.testing.assert_array_equal(served_items[clear], reference[clear])
