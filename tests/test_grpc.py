"""`hetcomp query` against `hetcomp serve` (the local TF Serving stand-in) over real gRPC on 127.0.0.1.

The answers over the wire must equal a direct call of the SavedModel; errors must be one line and a non-zero exit.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import grpc
import numpy as np
import portpicker
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from hetcomp_tf import cli
from serving.export import export_model
from serving.server import start_server
from tests.helpers import wait_for_line
from tests.test_serving import random_dataset, random_student

pytestmark = pytest.mark.slow  # end to end (training, processes, servers): `make test`, not `make check`

LATEST = 3


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    """TF Serving layout: versions 1 and 3 (different weights), an empty '9' still being written, a non-numeric dir."""
    data = random_dataset()
    base = tmp_path_factory.mktemp("serving")
    export_model(random_student(data, seed=1), data, str(base / "1"))
    export_model(random_student(data, seed=2), data, str(base / str(LATEST)))
    shutil.copytree(base / "1", base / "tmp-12")
    (base / "9").mkdir()
    return base


@pytest.fixture(scope="module")
def server(base_dir):
    port = portpicker.pick_unused_port()
    running = start_server(str(base_dir), port)
    yield {"address": f"127.0.0.1:{running.grpc_port}", "data": random_dataset()}
    running.stop()


@pytest.fixture(scope="module")
def direct(base_dir):
    return tf.saved_model.load(str(base_dir / str(LATEST)))


def query(capsys, *argv):
    """Runs `hetcomp query ...` in-process; returns (exit code, parsed stdout lines, stderr)."""
    code = cli.main(["query", *argv, "--timeout", "20"])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def test_query_answers_equal_a_direct_savedmodel_call(server, direct, capsys):
    users = list(server["data"].user_vocab[[7, 0, 22]])
    code, lines, _ = query(
        capsys, "--server", server["address"], *[a for u in users for a in ("--user", u)], "--k", "6"
    )
    assert code == 0 and [line["user"] for line in lines] == users
    expected = direct.signatures["serving_default"](user_id=tf.constant(users), k=tf.constant(6))
    np.testing.assert_array_equal([line["item_ids"] for line in lines], expected["item_ids"].numpy().astype(str))
    np.testing.assert_allclose([line["scores"] for line in lines], expected["scores"].numpy(), rtol=1e-6)
    data = server["data"]
    for line, u in zip(lines, [7, 0, 22]):
        assert not set(line["item_ids"]) & set(data.item_vocab[data.train.row(u)])
        assert line["scores"] == sorted(line["scores"], reverse=True)


def test_query_score_items_equals_a_direct_call(server, direct, capsys):
    data = server["data"]
    users, items = list(data.user_vocab[[3, 4]]), list(data.item_vocab[[5, 0, 59]])
    code, lines, _ = query(
        capsys,
        "--server",
        server["address"],
        "--signature",
        "score_items",
        *[a for u in users for a in ("--user", u)],
        *[a for i in items for a in ("--item", i)],
    )
    expected = direct.signatures["score_items"](user_id=tf.constant(users), item_id=tf.constant([items, items]))
    assert code == 0 and [line["item_ids"] for line in lines] == [items, items]
    np.testing.assert_allclose([line["scores"] for line in lines], expected["scores"].numpy(), rtol=1e-6)


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--user", "u901", "--user", "nobody-7"],
            "rejected the request (INVALID_ARGUMENT): unknown user_id: nobody-7",
        ),
        (["--user", "u901", "--model-name", "other"], "model 'other' is not served at"),
        (["--user", "u901", "--signature", "nope"], 'Serving signature key "nope" not found.'),
    ],
)
def test_query_errors_are_one_line_and_a_nonzero_exit(server, capsys, argv, message):
    code, lines, err = query(capsys, "--server", server["address"], *argv)
    assert code != 0 and not lines
    assert message in err and err.count("\n") == 1 and err.startswith("hetcomp: error: ")


def test_query_of_an_unreachable_server_says_so(capsys):
    address = f"127.0.0.1:{portpicker.pick_unused_port()}"  # nothing listens there
    code, lines, err = query(capsys, "--server", address, "--user", "u901")
    assert code != 0 and not lines
    assert f"cannot reach a model server at {address} (UNAVAILABLE)" in err and err.count("\n") == 1


def test_metadata_and_status_are_reported_like_tf_serving(server, base_dir):
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((base_dir / str(LATEST) / "saved_model.pb").read_bytes())
    with grpc.insecure_channel(server["address"]) as channel:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = "hetcomp"
        metadata = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(request, timeout=20)
        status_request = get_model_status_pb2.GetModelStatusRequest()
        status_request.model_spec.name = "hetcomp"
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status_request, timeout=20)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert metadata.metadata["signature_def"].Unpack(signatures)
    assert dict(signatures.signature_def) == dict(proto.meta_graphs[0].signature_def)
    assert set(signatures.signature_def["serving_default"].inputs) == {"user_id", "k"}
    assert metadata.model_spec.version.value == LATEST
    [version] = status.model_version_status
    assert version.version == LATEST and version.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE


def test_serve_command_prints_its_address_answers_and_stops_on_sigterm(base_dir, capsys):
    port = portpicker.pick_unused_port()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hetcomp_tf.cli",
            "serve",
            "--model",
            str(base_dir),
            "--port",
            str(port),
            "--model-name",
            "recs",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert wait_for_line(process, "serving ", 120) == f"serving recs version {LATEST} on 127.0.0.1:{port}"
        code, lines, _ = query(
            capsys, "--server", f"127.0.0.1:{port}", "--model-name", "recs", "--user", "u910", "--k", "3"
        )
        assert code == 0 and len(lines[0]["item_ids"]) == 3
        # As a user sees it: a separate `hetcomp query` process whose whole stderr is the one error line.
        failed = subprocess.run(
            [
                sys.executable,
                "-m",
                "hetcomp_tf.cli",
                "query",
                "--server",
                f"127.0.0.1:{port}",
                "--model-name",
                "recs",
                "--user",
                "nobody-3",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert failed.returncode == 2 and failed.stdout == ""
        assert (
            failed.stderr == "hetcomp: error: model 'recs' rejected the request (INVALID_ARGUMENT): "
            "unknown user_id: nobody-3\n"
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        process.stderr.close()
