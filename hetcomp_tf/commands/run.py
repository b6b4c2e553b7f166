"""`hetcomp run`: the whole TFX pipeline on this machine (LocalDagRunner), then OUT/report.json and a table.

A second run with the same data and settings is served from the TFX cache: no component re-executes, and
the report says so per component (`"components": {node: {"state": "cached", ...}}`).
"""

from __future__ import annotations

import os
import sys

from hetcomp_tf.config import METRIC_KS


def add_arguments(parser) -> None:
    from pipeline.configs import add_pipeline_arguments

    add_pipeline_arguments(parser)
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="pipeline root, ML Metadata (SQLite), serving/ and report.json go here")
    parser.add_argument("--direct-num-workers", type=int, default=1, metavar="N", help="Beam DirectRunner workers")
    parser.add_argument("--direct-running-mode", default="in_memory",
                        choices=("in_memory", "multi_threading", "multi_processing"))
    parser.add_argument("--no-cache", action="store_true", help="re-execute every component")


def pushed_destination(pusher) -> str | None:
    """Where the Pusher copied the model (its PushedModel custom properties), None if it did not push."""
    props = pusher.outputs["pushed_model"][0].custom_properties
    return props["pushed_destination"].string_value if props["pushed"].int_value else None


def build_report(config, nodes: dict, seconds: dict) -> dict:
    from components import storage
    from components.artifacts import METRICS_FILE

    evaluation = storage.read_json(nodes["RankingEvaluator"].uri("evaluation"), METRICS_FILE)
    logs = {name: nodes[f"TeacherTrainer.{name}"].uri("model_run") for name in config.teachers}
    logs[f"student:{config.method}"] = nodes["StudentTrainer"].uri("model_run")
    return {
        "data": config.data, "profile": config.profile, "method": config.method,
        "methods": evaluation["methods"],
        "blessing": evaluation["blessing"],
        "blessed": evaluation["blessing"]["blessed"],
        "pushed_model": pushed_destination(nodes["Pusher"]),
        "components": {node: {"state": run.state, "seconds": seconds.get(node)} for node, run in nodes.items()},
        "all_cached": all(run.state == "cached" for run in nodes.values()),
        "tensorboard_logs": logs,
    }


def print_summary(report: dict) -> None:
    from hetcomp_tf.report import format_table

    columns = [f"{m}@{k}" for k in METRIC_KS for m in ("recall", "ndcg")]
    print(format_table({name: m["test"] for name, m in report["methods"].items()}, columns))
    verdict = report["blessing"]
    print(f"\nstudent {verdict['metric']} {verdict['student']:.4f} vs required {verdict['required']:.4f} "
          f"({verdict['min_share_of_ensemble']:g} x ensemble {verdict['ensemble']:.4f}): "
          f"{'blessed' if report['blessed'] else 'NOT blessed'}; pushed: {report['pushed_model'] or 'nothing'}")
    cached = [node for node, c in report["components"].items() if c["state"] == "cached"]
    print(f"components served from the cache: {len(cached)}/{len(report['components'])}")
    spec = ",".join(f"{name}:{path}" for name, path in report["tensorboard_logs"].items())
    print(f"tensorboard --logdir_spec {spec}")


def run(args) -> int:
    from hetcomp_tf.report import write_json
    from pipeline.configs import config_from_args
    from pipeline.local_runner import run_local

    out = os.path.abspath(args.out)
    if os.path.isfile(args.data):  # executors may run elsewhere than the current directory
        args.data = os.path.abspath(args.data)
    config = config_from_args(args, out, direct_num_workers=args.direct_num_workers,
                              direct_running_mode=args.direct_running_mode, enable_cache=not args.no_cache)
    nodes, seconds = run_local(config)
    report = build_report(config, nodes, seconds)
    path = write_json(os.path.join(out, "report.json"), report)
    print_summary(report)
    print(f"report: {path}", file=sys.stderr)
    return 0
