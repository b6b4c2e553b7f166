"""TF Serving's REST API (its `--rest_api_port`) on the served model, over the standard library's HTTP server.

- `POST /v1/models/<name>[/versions/<v>]:predict`, the body in TF Serving's row or columnar JSON format
  (serving/json_tensors.py), checked by the same `Servable.predict` as a gRPC Predict;
- `GET /v1/models/<name>[/versions/<v>]`: GetModelStatus as JSON (`model_version_status`);
- `GET /v1/models/<name>[/versions/<v>]/metadata`: the `signature_def` map as JSON.
Protos become JSON with `google.protobuf.json_format` (proto field names, defaults printed, as TF Serving
prints them). An error is `{"error": "<message>"}` with TF Serving's HTTP status for its gRPC code (NOT_FOUND 404,
INVALID_ARGUMENT and FAILED_PRECONDITION 400, UNIMPLEMENTED 501, ...); a path under /v1/ that is no endpoint is
400 `Malformed request: <METHOD> <path>`, any other path 404. Bodies are read by their Content-Length.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2

from hetcomp_tf.errors import HetCompError
from serving import json_tensors
from serving.client import DEFAULT_SIGNATURE, error_summary
from serving.servable import RequestError, answer
from serving.versions import VersionManager

_PREDICT_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?:(classify|regress|predict)", re.IGNORECASE
)
_STATUS_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:/versions/(\d+)|/labels/([^/:]+))?(?:/(metadata))?", re.IGNORECASE
)
_API_PATH = re.compile(r"/v1/.*", re.IGNORECASE)
_INT64_MAX = 2**63 - 1

# TF Serving's http_server.cc: the HTTP status of each gRPC (TensorFlow) status code.
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


def proto_json(message) -> dict:
    """A proto as TF Serving's REST API prints it: proto field names, fields at their default printed too.

    Args:
        message: a protobuf message.

    Returns:
        The JSON-ready dict.
    """
    return json_format.MessageToDict(message, preserving_proto_field_name=True, including_default_value_fields=True)


def _version(text: str | None) -> int | None:
    if text is None:
        return None
    if int(text) > _INT64_MAX:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"Failed to convert version: {text} to numeric.")
    return int(text)


class RestApi:
    """The REST endpoints, apart from the HTTP plumbing: (method, path, body) -> (HTTP status, JSON object).

    Args:
        manager: the served model's version manager.
    """

    def __init__(self, manager: VersionManager):
        self.manager = manager

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        """Answers one request; never raises.

        Args:
            method: the HTTP method.
            path: the URL's path.
            body: the request body.

        Returns:
            (HTTP status, JSON object): the answer, or {"error": message} with TF Serving's status for it.
        """
        try:
            return 200, answer(self._route, method, path, body)
        except RequestError as error:
            return HTTP_STATUS.get(error.code, 500), {"error": error.message}
        except Exception as error:  # noqa: BLE001 -- a bug must still get an answer (gRPC would say UNKNOWN)
            return 500, {"error": f"{type(error).__name__}: {error_summary(str(error))}"}

    def _route(self, method: str, path: str, body: bytes) -> dict:
        predict = _PREDICT_PATH.fullmatch(path) if method == "POST" else None
        if predict:
            name, version, label, verb = predict.groups()
            if verb.lower() != "predict":
                raise RequestError(grpc.StatusCode.UNIMPLEMENTED, f"this server answers :predict, not :{verb}")
            return self._predict(urllib.parse.unquote(name), _version(version), urllib.parse.unquote(label or ""), body)
        status = _STATUS_PATH.fullmatch(path) if method == "GET" else None
        if status:
            name, version, label, metadata = status.groups()
            if not name:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "Missing model name in request.")
            name, label = urllib.parse.unquote(name), urllib.parse.unquote(label or "")
            if metadata:
                return self._metadata(name, _version(version), label)
            return proto_json(self.manager.status(name, _version(version), label))
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"Malformed request: {method} {path}")

    def _predict(self, name: str, version: int | None, label: str, body: bytes) -> dict:
        document = json_tensors.parse_body(body)
        signature = json_tensors.signature_name(document) or DEFAULT_SIGNATURE
        with self.manager.serving(name, version, label) as servable:
            inputs, form = json_tensors.request_inputs(document, servable, signature)
            outputs = servable.predict(signature, inputs)
        return json_tensors.response_json(outputs, form)

    def _metadata(self, name: str, version: int | None, label: str) -> dict:
        with self.manager.serving(name, version, label) as servable:
            response = servable.metadata(self.manager.model_name)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signatures)
        return {"model_spec": proto_json(response.model_spec), "metadata": {"signature_def": proto_json(signatures)}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every answer carries its Content-Length

    def _serve(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length, status, document = 0, 400, {"error": f"bad Content-Length: {self.headers['Content-Length']}"}
        else:
            body = self.rfile.read(length) if length > 0 else b""
            if _API_PATH.fullmatch(path):
                status, document = self.server.api.handle(self.command, path, body)
            else:
                status, document = 404, {"error": f"Not found: {self.command} {path}"}
        payload = json.dumps(document, indent=4).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, format, *args) -> None:  # noqa: A002 -- the base class's signature
        """No access log (TF Serving writes none either)."""


class _RestServer(ThreadingHTTPServer):
    daemon_threads = True


class _RestServer6(_RestServer):
    address_family = socket.AF_INET6


def start_rest_server(manager: VersionManager, host: str, port: int) -> tuple[ThreadingHTTPServer, int]:
    """Serves the REST API on host:port in a background thread. Stop it with shutdown() then server_close().

    Args:
        manager: the served model's version manager.
        host: the address to listen on (IPv6 when it holds a ":").
        port: the port (0: any free one).

    Returns:
        (the server, the bound port).

    Raises:
        HetCompError: the address cannot be listened on.
    """
    server_class = _RestServer6 if ":" in host else _RestServer
    try:
        server = server_class((host, port), _Handler)
    except OSError as error:
        raise HetCompError(f"serve: cannot listen on {host}:{port} for REST: {error.strerror or error}") from None
    server.api = RestApi(manager)
    threading.Thread(target=server.serve_forever, name="rest-api", daemon=True).start()
    return server, server.server_address[1]
