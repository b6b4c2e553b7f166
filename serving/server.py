"""A local stand-in for TF Serving's model server, for machines without `tensorflow_model_server`.

It follows a base directory as TF Serving does (serving/versions.py: the newest version that loads is served,
new versions are loaded, warmed and swapped in without failing a request, broken ones are logged and skipped)
and answers TF Serving's gRPC API, `PredictionService` (Predict, GetModelMetadata) and
`ModelService.GetModelStatus`, and optionally its REST API on another port (serving/rest.py), with TF Serving's
status codes: unknown model/version -> NOT_FOUND, unknown signature -> FAILED_PRECONDITION, bad inputs and the
model's InvalidArgumentError -> INVALID_ARGUMENT. It is not a rival to TF Serving: one model, one version at a
time, no batching.
"""

from __future__ import annotations

import sys
from concurrent import futures

import grpc
import tensorflow as tf
from tensorflow_serving.apis import model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc

from hetcomp_tf.errors import HetCompError
from serving.client import DEFAULT_MODEL_NAME, DEFAULT_SIGNATURE
from serving.rest import start_rest_server
from serving.servable import RequestError, answer
from serving.versions import VersionManager


def _spec_fields(spec) -> tuple[str, int | None, str]:
    """(name, version or None, label) of a ModelSpec."""
    return spec.name, spec.version.value if spec.HasField("version") else None, spec.version_label


def _tensors(request: predict_pb2.PredictRequest) -> dict:
    """The request's TensorProtos as arrays; INVALID_ARGUMENT naming an input whose proto is malformed."""
    arrays = {}
    for name, proto in request.inputs.items():
        try:
            arrays[name] = tf.make_ndarray(proto)
        except (TypeError, ValueError) as error:
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT, f"input {name!r} is not a valid TensorProto: {error}"
            ) from None
    return arrays


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """TF Serving's PredictionService (Predict, GetModelMetadata) on the served version.

    Args:
        manager: the served model's version manager.
    """

    def __init__(self, manager: VersionManager):
        self.manager = manager

    def _predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        signature = request.model_spec.signature_name or DEFAULT_SIGNATURE
        with self.manager.serving(*_spec_fields(request.model_spec)) as servable:
            outputs = servable.predict(signature, _tensors(request), request.output_filter)
        response = predict_pb2.PredictResponse()
        response.model_spec.name, response.model_spec.signature_name = self.manager.model_name, signature
        response.model_spec.version.value = servable.version
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return response

    def _metadata(self, request):
        unsupported = [field for field in request.metadata_field if field != "signature_def"]
        with self.manager.serving(*_spec_fields(request.model_spec)) as servable:
            if unsupported:
                raise RequestError(
                    grpc.StatusCode.INVALID_ARGUMENT, f"Metadata field {unsupported[0]} is not supported"
                )
            return servable.metadata(self.manager.model_name)

    def Predict(self, request, context):
        """gRPC Predict on the served version.

        Args:
            request: the PredictRequest.
            context: gRPC's servicer context (aborted with the request's status on an error).

        Returns:
            The PredictResponse.
        """
        return _reply(self._predict, request, context)

    def GetModelMetadata(self, request, context):
        """gRPC GetModelMetadata, signature_def only.

        Args:
            request: the GetModelMetadataRequest.
            context: gRPC's servicer context (aborted with the request's status on an error).

        Returns:
            The GetModelMetadataResponse.
        """
        return _reply(self._metadata, request, context)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """TF Serving's ModelService, GetModelStatus only.

    Args:
        manager: the served model's version manager.
    """

    def __init__(self, manager: VersionManager):
        self.manager = manager

    def GetModelStatus(self, request, context):
        """gRPC GetModelStatus (`VersionManager.status`).

        Args:
            request: the GetModelStatusRequest.
            context: gRPC's servicer context (aborted with the request's status on an error).

        Returns:
            The GetModelStatusResponse.
        """
        return _reply(lambda request: self.manager.status(*_spec_fields(request.model_spec)), request, context)


def _reply(method, request, context):
    """`method(request)`, or the gRPC status of its RequestError."""
    try:
        return answer(method, request)
    except RequestError as error:
        context.abort(error.code, error.message)


def _stderr_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class ModelServer:
    """A running server: its version manager, gRPC server and optional REST server. Call stop().

    Args:
        manager: the served model's version manager.
        grpc_server: the started gRPC server.
        grpc_port: its bound port.
    """

    def __init__(self, manager: VersionManager, grpc_server: grpc.Server, grpc_port: int):
        self.manager, self.grpc_server, self.grpc_port = manager, grpc_server, grpc_port
        self.rest_server, self.rest_port = None, 0

    def stop(self, grace: float | None = None) -> None:
        """Stops the REST server, the gRPC server (waiting for it) and the version poller.

        Args:
            grace: seconds the gRPC server lets running requests finish (None: aborts them).
        """
        if self.rest_server is not None:
            self.rest_server.shutdown()
            self.rest_server.server_close()
        self.grpc_server.stop(grace).wait()
        self.manager.stop()


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def start_server(
    base_dir: str,
    port: int,
    model_name: str = DEFAULT_MODEL_NAME,
    host: str = "127.0.0.1",
    workers: int = 4,
    rest_port: int = 0,
    poll_seconds: float = 1.0,
    log=_stderr_line,
) -> ModelServer:
    """Serves the newest version of `base_dir` that loads over gRPC and, optionally, REST.

    Args:
        base_dir: the model's base directory of numeric versions.
        port: the gRPC port (0: any free one).
        model_name: the name requests must use.
        host: the address to listen on.
        workers: gRPC worker threads.
        rest_port: the REST port (0: no REST).
        poll_seconds: seconds between looks at `base_dir` (0: never).
        log: receives the one-line messages (broken versions, swaps, unloads).

    Returns:
        The running `ModelServer`.

    Raises:
        HetCompError: no version loads, or an address that cannot be listened on.
    """
    manager = VersionManager(base_dir, model_name, poll_seconds, log)
    manager.start()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(manager), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(manager), server)
    address = _address(host, port)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as error:
        bound, reason = 0, f": {error}"
    else:
        reason = ""
    if not bound:
        manager.stop()
        raise HetCompError(f"serve: cannot listen on {address}{reason}")
    server.start()
    running = ModelServer(manager, server, bound)
    if rest_port:
        try:
            running.rest_server, running.rest_port = start_rest_server(manager, host, rest_port)
        except HetCompError:
            running.stop()
            raise
    return running
