"""TF Serving's REST API of `hetcomp serve` (serving/rest.py) with a real HTTP client on 127.0.0.1.

Predictions must equal the gRPC server's, in both JSON formats; status and metadata must be the JSON TF Serving
prints; a bad request must get TF Serving's error body and the HTTP status of the gRPC code the same request
gets over gRPC (one validation for both).
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import grpc
import numpy as np
import portpicker
import pytest
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.client import predict
from serving.export import export_model
from serving.rest import HTTP_STATUS
from serving.server import start_server
from tests.test_serving import random_dataset, random_student

VERSION = 3


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    data = random_dataset()
    base = tmp_path_factory.mktemp("rest")
    export_model(random_student(data, seed=5), data, str(base / str(VERSION)))
    running = start_server(str(base), 0, rest_port=portpicker.pick_unused_port(), poll_seconds=0)
    yield {
        "grpc": f"127.0.0.1:{running.grpc_port}",
        "rest": f"http://127.0.0.1:{running.rest_port}",
        "users": list(data.user_vocab[[2, 0, 17]]),
        "items": list(data.item_vocab[[4, 9]]),
        "base": base,
    }
    running.stop()


def http(served, method: str, path: str, body=None) -> tuple[int, dict]:
    """(HTTP status, decoded JSON body) of one request; `body` is JSON-encoded unless it is bytes already."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(served["rest"] + path, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            assert reply.headers["Content-Type"] == "application/json"
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def test_row_format_predict_equals_grpc_predict(served):
    users = served["users"]
    status, answer = http(
        served,
        "POST",
        "/v1/models/hetcomp:predict",
        {"signature_name": "serving_default", "instances": [{"user_id": u} for u in users]},
    )
    expected = predict(served["grpc"], {"user_id": np.array(users, dtype=object)})  # k from its default, as here
    assert status == 200 and list(answer) == ["predictions"] and len(answer["predictions"]) == len(users)
    for row, prediction in enumerate(answer["predictions"]):
        assert set(prediction) == {"item_ids", "scores"}
        assert prediction["item_ids"] == expected["item_ids"][row].astype(str).tolist()
        # Written with 6 or 9 significant digits, whichever reads back as the same float32: exact once cast back.
        np.testing.assert_array_equal(np.float32(prediction["scores"]), expected["scores"][row])


def test_columnar_format_predict_equals_grpc_predict(served):
    users = served["users"]
    status, answer = http(
        served, "POST", "/v1/models/hetcomp/versions/3:predict", {"inputs": {"user_id": users, "k": 6}}
    )
    expected = predict(served["grpc"], {"user_id": np.array(users, dtype=object), "k": np.int32(6)})
    assert status == 200 and list(answer) == ["outputs"]
    assert answer["outputs"]["item_ids"] == expected["item_ids"].astype(str).tolist()
    np.testing.assert_array_equal(np.float32(answer["outputs"]["scores"]), expected["scores"])  # exact: as above


def test_one_output_is_answered_as_plain_values_in_both_formats(served):
    user, items = served["users"][0], served["items"]
    expected = predict(
        served["grpc"],
        {"user_id": np.array([user], dtype=object), "item_id": np.array([items], dtype=object)},
        signature="score_items",
    )
    encoded = {"b64": base64.b64encode(user.encode()).decode()}  # a string input may come base64-encoded
    _, rows = http(
        served,
        "POST",
        "/v1/models/hetcomp:predict",
        {"signature_name": "score_items", "instances": [{"user_id": encoded, "item_id": items}]},
    )
    _, columns = http(
        served,
        "POST",
        "/v1/models/hetcomp:predict",
        {"signature_name": "score_items", "inputs": {"user_id": [user], "item_id": [items]}},
    )
    np.testing.assert_array_equal(np.float32(rows["predictions"]), expected["scores"])  # exact: see above
    np.testing.assert_array_equal(np.float32(columns["outputs"]), expected["scores"])


def test_model_status_is_tf_servings_json(served):
    expected = {
        "model_version_status": [
            {"version": "3", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }
    assert http(served, "GET", "/v1/models/hetcomp") == (200, expected)
    assert http(served, "GET", "/v1/models/hetcomp/versions/3") == (200, expected)


def test_metadata_is_the_signature_def_map_as_json(served):
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((served["base"] / str(VERSION) / "saved_model.pb").read_bytes())
    status, answer = http(served, "GET", "/v1/models/hetcomp/metadata")
    assert status == 200
    assert answer["model_spec"] == {"name": "hetcomp", "signature_name": "", "version": "3"}
    signatures = answer["metadata"]["signature_def"]["signature_def"]
    for name, signature in proto.meta_graphs[0].signature_def.items():
        assert signatures[name] == json_format.MessageToDict(
            signature, preserving_proto_field_name=True, including_default_value_fields=True
        )
    assert signatures["serving_default"]["inputs"]["user_id"]["dtype"] == "DT_STRING"
    assert signatures["serving_default"]["method_name"] == "tensorflow/serving/predict"


def grpc_error(served, model: str, version: int | None, signature: str, inputs: dict) -> tuple[int, str]:
    """(HTTP status of the gRPC code, message) of the same Predict over gRPC."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = model, signature
    if version is not None:
        request.model_spec.version.value = version
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    with grpc.insecure_channel(served["grpc"]) as channel, pytest.raises(grpc.RpcError) as raised:
        prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    return HTTP_STATUS[raised.value.code()], raised.value.details()


USER = "u901"


@pytest.mark.parametrize(
    "path, body, grpc_inputs, status, message",
    [
        (
            "/v1/models/other:predict",
            {"inputs": {"user_id": [USER]}},
            {"user_id": [USER]},
            404,
            "Servable not found for request: Latest(other)",
        ),
        (
            "/v1/models/hetcomp/versions/1:predict",
            {"inputs": {"user_id": [USER]}},
            {"user_id": [USER]},
            404,
            "Servable not found for request: Specific(hetcomp, 1)",
        ),
        (
            "/v1/models/hetcomp:predict",
            {"signature_name": "nope", "inputs": {"user_id": [USER]}},
            {"user_id": [USER]},
            400,
            'Serving signature key "nope" not found.',
        ),
        (
            "/v1/models/hetcomp:predict",
            {"inputs": {"user_id": [USER, "nobody-9"]}},
            {"user_id": [USER, "nobody-9"]},
            400,
            "unknown user_id: nobody-9",
        ),
        (
            "/v1/models/hetcomp:predict",
            {"inputs": {"user_id": [USER], "k": 0}},
            {"user_id": [USER], "k": np.int32(0)},
            400,
            "k must be at least 1, got 0",
        ),
        (
            "/v1/models/hetcomp:predict",
            {"inputs": {"user_id": [USER], "extra": 1}},
            {"user_id": [USER], "extra": np.int32(1)},
            400,
            "input does not match signature 'serving_default': sent extra",
        ),
        (
            "/v1/models/hetcomp:predict",
            {"inputs": {"k": 5}},
            {"k": np.int32(5)},
            400,
            "input does not match signature 'serving_default': sent extra [], missing ['user_id']",
        ),
        (
            "/v1/models/hetcomp:predict",
            {"instances": [{"user_id": USER, "k": 5}]},
            {"user_id": [USER], "k": [5]},
            400,
            "input 'k' must be int32 of shape ()",
        ),
        (
            "/v1/models/hetcomp:predict",
            {"inputs": {"user_id": [[USER]]}},
            {"user_id": [[USER]]},
            400,
            "input 'user_id' must be string of shape (None,)",
        ),
    ],
)
def test_a_bad_request_gets_the_status_and_message_of_the_same_grpc_request(
    served, path, body, grpc_inputs, status, message
):
    model, _, rest = path.removeprefix("/v1/models/").partition("/versions/")
    version = int(rest.split(":")[0]) if rest else None
    signature = body.get("signature_name", "serving_default")
    rest_status, answer = http(served, "POST", path, body)
    assert (rest_status, list(answer)) == (status, ["error"]) and message in answer["error"]
    assert grpc_error(served, model.split(":")[0], version, signature, grpc_inputs) == (rest_status, answer["error"])


@pytest.mark.parametrize(
    "method, path, body, status, message",
    [
        ("POST", "/v1/models/hetcomp:predict", b"{not json", 400, "JSON Parse error"),
        ("POST", "/v1/models/hetcomp:predict", b"", 400, "JSON Parse error: The document is empty"),
        ("POST", "/v1/models/hetcomp:predict", [1, 2], 400, "Is not object"),
        (
            "POST",
            "/v1/models/hetcomp:predict",
            {"signature_name": 3, "inputs": {}},
            400,
            "'signature_name' key must be a string value",
        ),
        (
            "POST",
            "/v1/models/hetcomp:predict",
            {"instances": [{"user_id": USER}], "inputs": {"user_id": [USER]}},
            400,
            "expecting only one of 'inputs' or 'instances' keys to exist",
        ),
        (
            "POST",
            "/v1/models/hetcomp:predict",
            {"signature_name": "serving_default"},
            400,
            "Missing 'inputs' or 'instances' key",
        ),
        ("POST", "/v1/models/hetcomp:predict", {"instances": []}, 400, "No values in 'instances' array"),
        (
            "POST",
            "/v1/models/hetcomp:predict",
            {"instances": [USER]},
            400,
            "instances is a plain list, but expecting list of objects",
        ),
        (
            "POST",
            "/v1/models/hetcomp:predict",
            {"instances": [{"user_id": USER}, {"user_id": USER, "k": 3}]},
            400,
            "Failed to process element: 1 of 'instances' list",
        ),
        (
            "POST",
            "/v1/models/hetcomp:predict",
            {"inputs": {"user_id": [USER], "k": "5"}},
            400,
            'JSON Value: "5" Type: String is not of expected type: int32',
        ),
        (
            "POST",
            "/v1/models/hetcomp:predict",
            {"inputs": {"user_id": [USER], "k": 2.5}},
            400,
            "JSON Value: 2.5 Type: Number is not of expected type: int32",
        ),
        (
            "POST",
            "/v1/models/hetcomp:predict",
            {"inputs": {"user_id": [[USER], [USER, USER]]}},
            400,
            "Encountered list at unexpected size: 2 at level: 1 expected size: 1",
        ),
        ("POST", "/v1/models/hetcomp:predict", {"inputs": {"user_id": {"b64": "%%%"}}}, 400, "Unable to base64 decode"),
        ("POST", "/v1/models/hetcomp:classify", {"examples": []}, 501, "this server answers :predict, not :classify"),
        ("POST", "/v1/models/hetcomp", {}, 400, "Malformed request: POST /v1/models/hetcomp"),
        ("GET", "/v1/models/hetcomp:predict", None, 400, "Malformed request: GET /v1/models/hetcomp:predict"),
        ("GET", "/v1/models", None, 400, "Missing model name in request."),
        ("GET", "/v1/models/other", None, 404, "Could not find any versions of model other"),
        ("GET", "/v1/models/hetcomp/versions/7", None, 404, "Could not find version 7 of model hetcomp"),
        (
            "GET",
            "/v1/models/hetcomp/versions/7/metadata",
            None,
            404,
            "Servable not found for request: Specific(hetcomp, 7)",
        ),
        ("GET", "/v1/models/hetcomp/labels/stable", None, 404, "no version labelled 'stable'"),
        (
            "GET",
            "/v1/models/hetcomp/versions/99999999999999999999",
            None,
            400,
            "Failed to convert version: 99999999999999999999 to numeric.",
        ),
        ("GET", "/v2/models/hetcomp", None, 404, "Not found: GET /v2/models/hetcomp"),
    ],
)
def test_rest_only_errors_are_tf_servings_json_bodies_and_codes(served, method, path, body, status, message):
    rest_status, answer = http(served, method, path, body)
    assert (rest_status, list(answer)) == (status, ["error"]) and message in answer["error"]
