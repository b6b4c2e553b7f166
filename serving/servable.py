"""One loaded SavedModel version as TF Serving serves it, and the one place a request is checked against it.

gRPC (serving/server.py) and REST (serving/rest.py) both turn a request into NumPy arrays and call
`Servable.predict`, so a bad request gets the same status from either: unknown signature FAILED_PRECONDITION,
inputs that do not fit the signature (names, dtypes, shapes) or a model's own InvalidArgumentError
INVALID_ARGUMENT. A version is loaded with `load_version`, which also warms it by replaying its TF Serving
warm-up records (`assets.extra/tf_serving_warmup_requests`, written by serving/export.py) through `predict`.
"""

from __future__ import annotations

import os
import time

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import any_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, prediction_log_pb2

from serving.client import DEFAULT_SIGNATURE, error_summary
from serving.export import WARMUP_FILE

_UNKNOWN_ERROR_CODE = grpc.StatusCode.UNKNOWN.value[0]
STATUS_BY_TF_CODE = {code.value[0]: code for code in grpc.StatusCode}  # TF error codes are gRPC's


class RequestError(Exception):
    """A request the server answers with a non-OK status (REST maps it to HTTP).

    Args:
        code: the grpc.StatusCode.
        message: the status's message.
    """

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class LoadError(Exception):
    """A version that cannot be served.

    Args:
        reason: the one-line reason, its `str()`.
        error_code: TensorFlow's error code (UNKNOWN when the failure was no TensorFlow error).
    """

    def __init__(self, reason: str, error_code: int):
        super().__init__(reason)
        self.error_code = error_code


def answer(method, *args):
    """Runs `method(*args)`, turning TensorFlow's errors into RequestError with the status TF Serving sends.

    Args:
        method: the request's handler.
        *args: its arguments.

    Returns:
        What `method` returns.

    Raises:
        RequestError: for a tf.errors.OpError, with its code and one-line message.
    """
    try:
        return method(*args)
    except tf.errors.OpError as error:
        raise RequestError(
            STATUS_BY_TF_CODE.get(error.error_code, grpc.StatusCode.INTERNAL), error_summary(error.message)
        ) from None


class Servable:
    """A loaded version: its callable signatures and their SignatureDefs, as TF Serving reports them.

    Args:
        path: the version's SavedModel directory.
        version: its version number.
    """

    def __init__(self, path: str, version: int):
        self.path, self.version = path, version
        proto = saved_model_pb2.SavedModel()
        with open(os.path.join(path, "saved_model.pb"), "rb") as handle:
            proto.ParseFromString(handle.read())
        self.signature_defs = proto.meta_graphs[0].signature_def
        self.loaded = tf.saved_model.load(path)

    def input_specs(self, signature: str) -> dict[str, tf.TensorSpec]:
        """The signature's inputs by name.

        Args:
            signature: a signature key.

        Returns:
            Input name -> tf.TensorSpec.

        Raises:
            RequestError: FAILED_PRECONDITION if the model has no such signature.
        """
        if signature not in self.loaded.signatures:
            raise RequestError(grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{signature}" not found.')
        return self.loaded.signatures[signature].structured_input_signature[1]

    def check_input_names(self, signature: str, names) -> dict[str, tf.TensorSpec]:
        """Checks a request's input names against the signature's inputs (those with a default may be left out).

        Args:
            signature: a signature key.
            names: the request's input names.

        Returns:
            The signature's input specs by name.

        Raises:
            RequestError: INVALID_ARGUMENT for extra or missing inputs, FAILED_PRECONDITION for an unknown
                signature.
        """
        specs = self.input_specs(signature)
        extra = sorted(set(names) - set(specs))
        missing = sorted(set(specs) - set(names) - set(self.signature_defs[signature].defaults))
        if extra or missing:
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input does not match signature {signature!r}: sent extra {extra}, missing {missing}",
            )
        return specs

    def predict(self, signature: str, inputs: dict[str, np.ndarray], output_filter=()) -> dict[str, np.ndarray]:
        """Runs `signature` on `inputs` (checked against it; omitted inputs take the SignatureDef's defaults).

        Args:
            signature: a signature key of the model.
            inputs: input name -> array (strings as bytes objects), batch first as the signature says.
            output_filter: output names to return; empty = all.

        Returns:
            Output name -> array, for the filtered (or all) outputs.

        Raises:
            RequestError: INVALID_ARGUMENT for inputs that do not fit the signature or an unknown output name,
                FAILED_PRECONDITION for an unknown signature.
            tf.errors.OpError: the model's own error (`answer` turns it into a RequestError).
        """
        specs = self.check_input_names(signature, inputs)
        defaults = self.signature_defs[signature].defaults
        tensors = {}
        for name, spec in specs.items():
            tensor = tf.constant(inputs[name] if name in inputs else tf.make_ndarray(defaults[name]))
            if tensor.dtype != spec.dtype or not spec.shape.is_compatible_with(tensor.shape):
                raise RequestError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"input {name!r} must be {spec.dtype.name} of shape {spec.shape}, "
                    f"got {tensor.dtype.name} of shape {tensor.shape}",
                )
            tensors[name] = tensor
        outputs = self.loaded.signatures[signature](**tensors)
        names = list(output_filter) or sorted(outputs)
        unknown = [name for name in names if name not in outputs]
        if unknown:
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT, f"output tensor alias not found in signature: {unknown[0]}"
            )
        return {name: outputs[name].numpy() for name in names}

    def metadata(self, model_name: str) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """GetModelMetadata's answer: the `signature_def` metadata, packed in an Any as TF Serving packs it.

        Args:
            model_name: the served model's name.

        Returns:
            The GetModelMetadataResponse.
        """
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = model_name
        response.model_spec.version.value = self.version
        packed = any_pb2.Any()
        packed.Pack(get_model_metadata_pb2.SignatureDefMap(signature_def=self.signature_defs))
        response.metadata["signature_def"].CopyFrom(packed)
        return response

    def warm_up(self) -> int:
        """Replays the version's warm-up records through `predict` (as TF Serving replays them); returns how many.

        A version without the file is served unwarmed, as TF Serving serves it.

        Raises:
            ValueError: a warm-up record that is no predict_log.
            RequestError: a warm-up request the version rejects.
        """
        path = os.path.join(self.path, WARMUP_FILE)
        if not os.path.isfile(path):
            return 0
        count = 0
        for record in tf.data.TFRecordDataset(path):
            log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            if not log.HasField("predict_log"):
                raise ValueError(
                    f"warm-up record {count} of {path} is a {log.WhichOneof('log_type')}, not a predict_log"
                )
            request = log.predict_log.request
            self.predict(
                request.model_spec.signature_name or DEFAULT_SIGNATURE,
                {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()},
                request.output_filter,
            )
            count += 1
        return count


def load_version(path: str, version: int) -> tuple[Servable, float]:
    """Loads and warms the SavedModel at `path`.

    Args:
        path: the version's SavedModel directory.
        version: its version number.

    Returns:
        (the servable, seconds it took).

    Raises:
        LoadError: with a one-line reason, whatever failed: a truncated or missing variables file fails deep in
            TensorFlow's loader with an IndexError, OSError, ValueError or an OpError, a bad warm-up request
            with a RequestError; TF Serving logs such a version and skips it, and so does the caller.
    """
    started = time.monotonic()
    try:
        servable = Servable(path, version)
        servable.warm_up()
    except Exception as error:  # noqa: BLE001 -- any failure means "this version does not load" (see Raises)
        code = error.error_code if isinstance(error, tf.errors.OpError) else _UNKNOWN_ERROR_CODE
        raise LoadError(f"{type(error).__name__}: {error_summary(str(error))}", code) from error
    return servable, time.monotonic() - started
