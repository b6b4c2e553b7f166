"""A local stand-in for TF Serving's gRPC API, for machines without `tensorflow_model_server`.

It implements the parts of `tensorflow.serving.PredictionService` (Predict, GetModelMetadata) and
`ModelService.GetModelStatus` that `hetcomp query` and TF Serving clients use, for the latest numeric version
under a base directory (TF Serving's layout), with TF Serving's status codes: unknown model/version ->
NOT_FOUND, unknown signature -> FAILED_PRECONDITION, bad inputs and the model's InvalidArgumentError ->
INVALID_ARGUMENT. It is not a rival to TF Serving: one model, one version, no batching or hot reload.
"""

from __future__ import annotations

import os
from concurrent import futures

import grpc
import tensorflow as tf
from google.protobuf import any_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from hetcomp_tf.errors import HetCompError
from serving.client import DEFAULT_MODEL_NAME, DEFAULT_SIGNATURE, error_summary

_STATUS_BY_TF_CODE = {code.value[0]: code for code in grpc.StatusCode}  # TF error codes are gRPC's


class RequestError(Exception):
    """A request the server answers with a non-OK gRPC status."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def latest_version(base_dir: str) -> int:
    """The highest numeric sub-directory of `base_dir` holding a SavedModel (TF Serving's version policy)."""
    if not os.path.isdir(base_dir):
        raise HetCompError(f"serve: model base directory {base_dir} does not exist")
    versions = [int(name) for name in os.listdir(base_dir) if name.isdigit()
                and os.path.isfile(os.path.join(base_dir, name, "saved_model.pb"))]
    if not versions:
        raise HetCompError(f"serve: no numeric version directory with a saved_model.pb under {base_dir}")
    return max(versions)


class ServedModel:
    """One loaded SavedModel version: its callable signatures and their SignatureDefs, as TF Serving reports them."""

    def __init__(self, base_dir: str, name: str = DEFAULT_MODEL_NAME):
        self.name, self.version = name, latest_version(base_dir)
        path = os.path.join(base_dir, str(self.version))
        proto = saved_model_pb2.SavedModel()
        with open(os.path.join(path, "saved_model.pb"), "rb") as handle:
            proto.ParseFromString(handle.read())
        self.signature_defs = proto.meta_graphs[0].signature_def
        self.loaded = tf.saved_model.load(path)

    def check_spec(self, spec) -> None:
        """NOT_FOUND unless the request's ModelSpec names this model (and this version, if it names one)."""
        if spec.name != self.name:
            raise RequestError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({spec.name})")
        if spec.HasField("version") and spec.version.value != self.version:
            raise RequestError(grpc.StatusCode.NOT_FOUND,
                               f"Servable not found for request: Specific({spec.name}, {spec.version.value})")
        if spec.version_label:
            raise RequestError(grpc.StatusCode.NOT_FOUND, f"no version labelled {spec.version_label!r}")

    def predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        self.check_spec(request.model_spec)
        signature = request.model_spec.signature_name or DEFAULT_SIGNATURE
        if signature not in self.loaded.signatures:
            raise RequestError(grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{signature}" not found.')
        function = self.loaded.signatures[signature]
        outputs = function(**self._inputs(signature, function, request))
        names = list(request.output_filter) or sorted(outputs)
        unknown = [name for name in names if name not in outputs]
        if unknown:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"output tensor alias not found in signature: {unknown[0]}")
        response = predict_pb2.PredictResponse()
        response.model_spec.name, response.model_spec.signature_name = self.name, signature
        response.model_spec.version.value = self.version
        for name in names:
            response.outputs[name].CopyFrom(tf.make_tensor_proto(outputs[name].numpy()))
        return response

    def _inputs(self, signature: str, function, request) -> dict[str, tf.Tensor]:
        """Request tensors checked against the signature (names, dtypes, shapes), missing ones from its defaults."""
        specs = function.structured_input_signature[1]
        defaults = self.signature_defs[signature].defaults
        extra = sorted(set(request.inputs) - set(specs))
        missing = sorted(set(specs) - set(request.inputs) - set(defaults))
        if extra or missing:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"input does not match signature {signature!r}: sent extra {extra}, missing {missing}")
        tensors = {}
        for name, spec in specs.items():
            proto = request.inputs[name] if name in request.inputs else defaults[name]
            tensor = tf.constant(tf.make_ndarray(proto))
            if tensor.dtype != spec.dtype or not spec.shape.is_compatible_with(tensor.shape):
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input {name!r} must be {spec.dtype.name} of shape {spec.shape}, "
                                   f"got {tensor.dtype.name} of shape {tensor.shape}")
            tensors[name] = tensor
        return tensors

    def metadata(self, request) -> get_model_metadata_pb2.GetModelMetadataResponse:
        self.check_spec(request.model_spec)
        unsupported = [field for field in request.metadata_field if field != "signature_def"]
        if unsupported:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"Metadata field {unsupported[0]} is not supported")
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = self.name
        response.model_spec.version.value = self.version
        packed = any_pb2.Any()
        packed.Pack(get_model_metadata_pb2.SignatureDefMap(signature_def=self.signature_defs))
        response.metadata["signature_def"].CopyFrom(packed)
        return response

    def status(self, request) -> get_model_status_pb2.GetModelStatusResponse:
        self.check_spec(request.model_spec)
        response = get_model_status_pb2.GetModelStatusResponse()
        status = response.model_version_status.add()
        status.version = self.version
        status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        return response


def _answer(method, request, context):
    """Runs `method`, turning RequestError and TensorFlow errors into the gRPC status TF Serving would send."""
    try:
        return method(request)
    except RequestError as error:
        context.abort(error.code, error.message)
    except tf.errors.OpError as error:
        context.abort(_STATUS_BY_TF_CODE.get(error.error_code, grpc.StatusCode.INTERNAL), error_summary(error.message))


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, model: ServedModel):
        self.model = model

    def Predict(self, request, context):
        return _answer(self.model.predict, request, context)

    def GetModelMetadata(self, request, context):
        return _answer(self.model.metadata, request, context)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, model: ServedModel):
        self.model = model

    def GetModelStatus(self, request, context):
        return _answer(self.model.status, request, context)


def start_server(base_dir: str, port: int, model_name: str = DEFAULT_MODEL_NAME, host: str = "127.0.0.1",
                 workers: int = 4) -> tuple[grpc.Server, ServedModel, int]:
    """Loads the latest version and starts serving it; returns (server, model, bound port). Call server.stop()."""
    model = ServedModel(base_dir, model_name)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(model), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(model), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as error:
        raise HetCompError(f"serve: cannot listen on {address}: {error}") from None
    if not bound:
        raise HetCompError(f"serve: cannot listen on {address}")
    server.start()
    return server, model, bound
