"""`hetcomp serve`: the local stand-in for TF Serving (serving/server.py) over a pushed base dir, gRPC and REST."""

from __future__ import annotations

import signal
import sys
import threading

from serving.client import DEFAULT_MODEL_NAME


def add_arguments(parser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        metavar="BASE_DIR",
        help="TF Serving base directory (<out>/serving); its newest numeric version that loads is "
        "served, and newer ones are picked up as they are pushed",
    )
    parser.add_argument("--port", type=int, default=8500, help="gRPC port (TF Serving's default 8500; 0 = any free)")
    parser.add_argument(
        "--rest-port",
        type=int,
        default=0,
        help="REST API port (TF Serving's --rest_api_port: 0 = no REST, the default; its Docker " "image uses 8501)",
    )
    parser.add_argument(
        "--poll-seconds",
        type=float,
        default=1.0,
        help="seconds between looks for new versions (TF Serving's --file_system_poll_wait_seconds, "
        "default 1; 0 = serve the start-up version only)",
    )
    parser.add_argument("--model-name", default=DEFAULT_MODEL_NAME, help="name clients put in their ModelSpec")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (loopback unless told otherwise)")


def run(args) -> int:
    from serving.server import start_server  # imports TensorFlow

    server = start_server(
        args.model, args.port, args.model_name, args.host, rest_port=args.rest_port, poll_seconds=args.poll_seconds
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    name = args.model_name
    print(
        f"serving {name} version {server.manager.served_version} on {args.host}:{server.grpc_port}",
        file=sys.stderr,
        flush=True,
    )
    if server.rest_port:
        print(
            f"REST API of {name} on http://{args.host}:{server.rest_port}/v1/models/{name}", file=sys.stderr, flush=True
        )
    stop.wait()
    server.stop(grace=2)
    print(f"stopped serving {name}", file=sys.stderr, flush=True)
    return 0
