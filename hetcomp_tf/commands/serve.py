"""`hetcomp serve`: the local stand-in for TF Serving's gRPC API (serving/server.py) over a pushed base dir."""

from __future__ import annotations

import signal
import sys
import threading

from serving.client import DEFAULT_MODEL_NAME


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, metavar="BASE_DIR",
                        help="TF Serving base directory (<out>/serving); its highest numeric version is served")
    parser.add_argument("--port", type=int, default=8500, help="gRPC port (TF Serving's default 8500; 0 = any free)")
    parser.add_argument("--model-name", default=DEFAULT_MODEL_NAME, help="name clients put in their ModelSpec")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (loopback unless told otherwise)")


def run(args) -> int:
    from serving.server import start_server  # imports TensorFlow

    server, model, port = start_server(args.model, args.port, args.model_name, args.host)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print(f"serving {model.name} version {model.version} on {args.host}:{port}", file=sys.stderr, flush=True)
    stop.wait()
    server.stop(grace=2).wait()
    print(f"stopped serving {model.name}", file=sys.stderr, flush=True)
    return 0
