"""`hetcomp run`: the whole TFX pipeline on this machine (LocalDagRunner), then OUT/report.json, a table and the
commands to try next (serve the pushed model, query it for a real user, open TensorBoard). One run at a time per
--out (`hetcomp_tf.locking`): a second one exits with one line naming the running one's pid, pushing nothing.

A second run with the same data and settings is served from the TFX cache: no component re-executes, and
the report says so per component (`"components": {node: {"state": "cached", ...}}`).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from hetcomp_tf.commands.options import add_pipeline_arguments, pipeline_config, prepare_data
from hetcomp_tf.config import METRIC_KS
from hetcomp_tf.locking import exclusive_dir

SERVE_PORT = 8500  # TF Serving's gRPC default, as `hetcomp serve` uses


def add_arguments(parser) -> None:
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
    # TensorBoard run names: a --logdir_spec splits each NAME:PATH at its first colon, so no colon in a name; each
    # path is the directory of the event files (a teacher's are in <model_run>/<name>/), so a run is named NAME.
    logs = {name: os.path.join(nodes[f"TeacherTrainer.{name}"].uri("model_run"), name) for name in config.teachers}
    logs[f"student-{config.method}"] = nodes["StudentTrainer"].uri("model_run")
    pushed = pushed_destination(nodes["Pusher"])
    dataset = storage.read_dataset(nodes["InteractionExampleGen"].uri("dataset"))
    report = {
        "data": config.data, "dataset": dataset.name, "profile": config.profile, "method": config.method,
        "methods": evaluation["methods"],
        "blessing": evaluation["blessing"],
        "blessed": evaluation["blessing"]["blessed"],
        "pushed_model": pushed,
        "components": {node: {"state": run.state, "seconds": seconds.get(node)} for node, run in nodes.items()},
        "all_cached": all(run.state == "cached" for run in nodes.values()),
        "tensorboard_logs": logs,
    }
    user = str(dataset.user_vocab[0])
    return {**report, "next_steps": next_steps(config.serving() if pushed else None, user, logs)}


def next_steps(serving_dir: str | None, user: str, logs: dict) -> list[str]:
    """The commands to try next, as typed from this directory: serve the pushed model and, from another shell,
    ask it for a real user's top 10 (only when a model was pushed); open TensorBoard on every run's logs."""
    hetcomp = _program("hetcomp")
    steps = []
    if serving_dir is not None:
        steps += [f"{hetcomp} serve --model {_shown(serving_dir)} --port {SERVE_PORT}",
                  f"{hetcomp} query --server 127.0.0.1:{SERVE_PORT} --user {shlex.quote(user)} --k 10"]
    return [*steps, shlex.join(tensorboard_command(logs))]


def tensorboard_command(logs: dict) -> list[str]:
    """The venv's `tensorboard` on every run's logs ({run name: event file directory}, names without colons)."""
    spec = ",".join(f"{name}:{_shown(path)}" for name, path in logs.items())
    return [_program("tensorboard"), "--logdir_spec", spec]


def _program(name: str) -> str:
    """The console script of this interpreter's environment (works without activating the venv), else `name`."""
    path = Path(sys.executable).parent / name
    return _shown(path) if path.is_file() else name


def _shown(path) -> str:
    """`path` relative to the current directory when inside it (shorter to read), else absolute."""
    path = Path(path).absolute()
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


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
    print("\nnext steps (serve the model; from another shell, query it; look at the training in TensorBoard):")
    for step in report["next_steps"]:
        print(f"  {step}")


def run(args) -> int:
    out = os.path.abspath(args.out)
    if os.path.isfile(args.data):  # executors may run elsewhere than the current directory
        args.data = os.path.abspath(args.data)
    prepare_data(args)
    with exclusive_dir(out):
        return _run_pipeline(args, out)


def _run_pipeline(args, out: str) -> int:
    from hetcomp_tf.files import write_json
    from pipeline.local_runner import run_local

    config = pipeline_config(args, out, direct_num_workers=args.direct_num_workers,
                             direct_running_mode=args.direct_running_mode, enable_cache=not args.no_cache)
    nodes, seconds = run_local(config)
    report = build_report(config, nodes, seconds)
    path = write_json(os.path.join(out, "report.json"), report)
    print_summary(report)
    print(f"report: {path}", file=sys.stderr)
    return 0
