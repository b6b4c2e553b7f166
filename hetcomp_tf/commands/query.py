"""`hetcomp query`: ask a TF Serving PredictionService (or `hetcomp serve`) for users' top-K items.

Prints one JSON line per user, {"user": ID, "item_ids": [...], "scores": [...]}; any failure is one line on
stderr and a non-zero exit (via HetCompError).
"""

from __future__ import annotations

import argparse
import json
import os
import warnings

from serving.client import DEFAULT_MODEL_NAME, DEFAULT_SIGNATURE


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value:g}")
    return value


def add_arguments(parser) -> None:
    parser.add_argument("--server", required=True, metavar="HOST:PORT", help="TF Serving gRPC address")
    parser.add_argument("--model-name", default=DEFAULT_MODEL_NAME)
    parser.add_argument(
        "--signature",
        default=DEFAULT_SIGNATURE,
        help="serving_default (top-K) or score_items (scores of the --item ids)",
    )
    parser.add_argument(
        "--user", action="append", required=True, metavar="ID", help="original user id (repeat for several users)"
    )
    parser.add_argument("--k", type=_positive_int, default=10, help="length of each top-K list")
    parser.add_argument(
        "--item", action="append", metavar="ID", help="original item id to score (score_items; repeatable)"
    )
    parser.add_argument("--timeout", type=_positive_float, default=10.0, metavar="S", help="deadline in seconds")


def run(args) -> int:
    # A client's stderr is for its one error line: silence TensorFlow's C++ start-up logs and google.api_core's
    # Python-version notice, both triggered by importing the TensorProto definitions.
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.api_core")
    from serving.client import recommend

    answers = recommend(
        args.server,
        args.user,
        k=args.k,
        items=args.item,
        model_name=args.model_name,
        signature=args.signature,
        timeout=args.timeout,
    )
    for answer in answers:
        print(json.dumps(answer))
    return 0
