"""A PredictionService client for TF Serving (or `hetcomp serve`): users in, top-K lists out.

gRPC failures become one-line `HetCompError`s that say what went wrong in the user's terms (server down, model
not served, id unknown) instead of a gRPC status dump. TensorFlow is only needed for the TensorProto
conversions, which `tensorflow_serving.apis` already pulls in.
"""

from __future__ import annotations

import re

import grpc
import numpy as np

from hetcomp_tf.errors import HetCompError

DEFAULT_MODEL_NAME = "hetcomp"
DEFAULT_SIGNATURE = "serving_default"

_ASSERTION = re.compile(r"assertion failed: \[(.*)\]$", re.MULTILINE)
_NOISE = ("Graph execution error", "Detected at node", "File ", "[[", "\t")


def error_summary(message: str) -> str:
    """The one informative line of a TensorFlow error message.

    Args:
        message: the error's message.

    Returns:
        An Assert's data, else the first line that is not TensorFlow's boilerplate.
    """
    found = _ASSERTION.search(message)
    if found:
        return found.group(1)
    lines = [line.strip() for line in message.splitlines()]
    useful = [line for line in lines if line and not line.startswith(_NOISE)]
    return useful[0] if useful else message.strip()


def _describe(error: grpc.RpcError, address: str, model_name: str, signature: str, timeout: float) -> str:
    code, details = error.code(), error_summary(error.details() or "")
    what = {
        grpc.StatusCode.UNAVAILABLE: f"cannot reach a model server at {address}",
        grpc.StatusCode.DEADLINE_EXCEEDED: f"no answer from {address} within {timeout:g} s",
        grpc.StatusCode.NOT_FOUND: f"model {model_name!r} is not served at {address}",
        grpc.StatusCode.INVALID_ARGUMENT: f"model {model_name!r} rejected the request",
        grpc.StatusCode.FAILED_PRECONDITION: f"model {model_name!r} cannot run signature {signature!r}",
        grpc.StatusCode.UNIMPLEMENTED: f"{address} does not implement tensorflow.serving.PredictionService",
    }.get(code, f"request to {address} failed")
    return f"{what} ({code.name}): {details}" if details else f"{what} ({code.name})"


def predict(
    address: str,
    inputs: dict[str, np.ndarray],
    model_name: str = DEFAULT_MODEL_NAME,
    signature: str = DEFAULT_SIGNATURE,
    timeout: float = 10.0,
) -> dict[str, np.ndarray]:
    """One `PredictionService.Predict` call.

    Args:
        address: the server's HOST:PORT.
        inputs: input name -> array.
        model_name: the served model's name.
        signature: the signature key.
        timeout: seconds to wait for the answer.

    Returns:
        Output name -> NumPy array (strings as bytes).

    Raises:
        HetCompError: the call failed, in the user's terms (server down, model not served, id unknown, ...).
    """
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    with grpc.insecure_channel(address) as channel:
        try:
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=timeout)
        except grpc.RpcError as error:
            raise HetCompError(_describe(error, address, model_name, signature, timeout)) from None
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


def recommend(
    address: str,
    users: list[str],
    k: int | None = None,
    items: list[str] | None = None,
    model_name: str = DEFAULT_MODEL_NAME,
    signature: str = DEFAULT_SIGNATURE,
    timeout: float = 10.0,
) -> list[dict]:
    """One batched request for `users`.

    Args:
        address: the server's HOST:PORT.
        users: original user ids.
        k: bounds the top-K list of `serving_default` (default: the model's).
        items: original item ids to score (for `score_items`): every user's `item_id` row is `items`, and the
            answer scores them; `k` is then not sent.
        model_name: the served model's name.
        signature: the signature key.
        timeout: seconds to wait for the answer.

    Returns:
        [{"user", "item_ids", "scores"}] in the users' order.

    Raises:
        HetCompError: the call failed, or the signature returned no "scores".
    """
    inputs = {"user_id": np.array(users, dtype=object)}
    if items:
        inputs["item_id"] = np.array([items] * len(users), dtype=object)
    elif k is not None:
        inputs["k"] = np.array(k, dtype=np.int32)
    outputs = predict(address, inputs, model_name, signature, timeout)
    if "scores" not in outputs:
        raise HetCompError(f"signature {signature!r} of model {model_name!r} returned no 'scores' output")
    item_ids = outputs["item_ids"] if "item_ids" in outputs else inputs["item_id"]
    return [
        {
            "user": user,
            "item_ids": [i.decode() if isinstance(i, bytes) else str(i) for i in ids],
            "scores": [float(s) for s in scores],
        }
        for user, ids, scores in zip(users, item_ids, outputs["scores"])
    ]
