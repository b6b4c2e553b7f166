"""The report of one pipeline run (OUT/report.json): the comparison table and blessing read back from the
artifacts, how each teacher's training ended (early stopping, or its epoch cap: it may not have converged), each
component's state, the TensorBoard runs and the commands to try next. It reads TFX artifacts, so
it lives with the pipeline, not in the library.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

SERVE_PORT = 8500  # TF Serving's gRPC default, as `hetcomp serve` uses


def pushed_destination(pusher) -> str | None:
    """Where the Pusher copied the model, read from its PushedModel's custom properties.

    Args:
        pusher: the Pusher's `NodeRun` (local_runner.latest_run).

    Returns:
        The pushed version's directory, None if it did not push.
    """
    from components.keys import PUSHED_MODEL_KEY

    props = pusher.outputs[PUSHED_MODEL_KEY][0].custom_properties
    return props["pushed_destination"].string_value if props["pushed"].int_value else None


def served_version(serving_dir: str) -> str | None:
    """The newest version directory under `serving_dir`: the one TF Serving's default (latest) policy serves.

    Args:
        serving_dir: the Pusher's base directory (local or remote).

    Returns:
        Its path, None when the directory or any version is missing.
    """
    from tfx.dsl.io import fileio

    if not fileio.exists(serving_dir):
        return None
    versions = [v.rstrip("/") for v in fileio.listdir(serving_dir) if v.rstrip("/").isdigit()]
    return os.path.join(serving_dir, max(versions, key=int)) if versions else None


def build_report(config, nodes: dict, seconds: dict) -> dict:
    """The run's report (report.json's content, see the module docstring), read from the artifacts.

    Args:
        config: the run's `PipelineConfig`.
        nodes: {node id: NodeRun}, `local_runner.latest_run`'s.
        seconds: {node id: wall time in seconds}, `local_runner.run_local`'s.

    Returns:
        {"data", "dataset", "profile", "method", "methods", "blessing", "blessed", "teachers", "curves",
        "pushed_model", "served_model", "components", "all_cached", "warm_start", "tensorboard_logs", "next_steps"}.
    """
    from components import keys, storage
    from components.artifacts import METRICS_FILE
    from pipeline.pipeline import STUDENT_NODE_ID, resolver_ids, teacher_node_id

    evaluation = storage.read_json(nodes["RankingEvaluator"].uri(keys.EVALUATION_KEY), METRICS_FILE)
    # TensorBoard run names: a --logdir_spec splits each NAME:PATH at its first colon, so no colon in a name; each
    # path is the directory of the event files (a teacher's are in <model_run>/<name>/), so a run is named NAME.
    logs = {name: os.path.join(nodes[teacher_node_id(name)].uri(keys.MODEL_RUN_KEY), name) for name in config.teachers}
    logs[f"student-{config.method}"] = nodes[STUDENT_NODE_ID].uri(keys.MODEL_RUN_KEY)
    pushed = pushed_destination(nodes["Pusher"])
    dataset = storage.read_dataset(nodes["InteractionExampleGen"].uri(keys.DATASET_KEY))
    report = {
        "data": config.data,
        "dataset": dataset.name,
        "profile": config.profile,
        "method": config.method,
        "methods": evaluation["methods"],
        "blessing": evaluation["blessing"],
        "blessed": evaluation["blessing"]["blessed"],
        "teachers": {name: teacher_ending(nodes[teacher_node_id(name)]) for name in config.teachers},
        "curves": valid_curves(config, nodes),
        "pushed_model": pushed,
        "served_model": served_version(config.serving()),
        "components": {node: {"state": run.state, "seconds": seconds.get(node)} for node, run in nodes.items()},
        # the Resolvers query ML Metadata afresh in every run: they are never "cached"
        "all_cached": all(run.state == "cached" for node, run in nodes.items() if node not in resolver_ids(config)),
        # what a warm-started run started from: per node, the URI of the model or dataset its Resolver handed over
        "warm_start": {
            node: run.inputs[key][0].uri
            for node, run in sorted(nodes.items())
            for key in ("base_model", "previous_dataset")
            if run.inputs.get(key)
        },
        "tensorboard_logs": logs,
    }
    user = str(dataset.user_vocab[0])
    serving = config.serving() if report["served_model"] else None
    return {**report, "next_steps": next_steps(serving, user, logs)}


def teacher_ending(trainer) -> dict:
    """How a TeacherTrainer node's training ended: {"epochs", "ended_by" ("early stop" | "epoch cap"), "converged"
    (ended by early stopping)}, from the metrics beside its trajectory.

    Args:
        trainer: the TeacherTrainer's `NodeRun`.

    Returns:
        {"epochs", "ended_by", "converged"}.
    """
    from components import keys, storage
    from components.artifacts import METRICS_FILE

    run = storage.read_json(trainer.uri(keys.TRAJECTORY_KEY), METRICS_FILE)
    return {"epochs": run["epochs"], "ended_by": run["ended_by"], "converged": run["ended_by"] == "early stop"}


def valid_curves(config, nodes: dict) -> dict:
    """Every model's valid curve, as its trainer evaluated it: what a warm start saves is read from these
    (`warm_start_table`).

    Args:
        config: the run's `PipelineConfig`.
        nodes: {node id: NodeRun}, `local_runner.latest_run`'s.

    Returns:
        {"teacher:<name>" | "student:<method>": [[epochs trained, valid RECORD_METRIC], ...] in training order}.
    """
    from components import keys, storage
    from components.artifacts import METRICS_FILE
    from hetcomp_tf.config import RECORD_METRIC
    from pipeline.pipeline import STUDENT_NODE_ID, teacher_node_id

    runs = {f"teacher:{name}": (teacher_node_id(name), keys.TRAJECTORY_KEY) for name in config.teachers}
    runs[f"student:{config.method}"] = (STUDENT_NODE_ID, keys.MODEL_RUN_KEY)
    curves = {}
    for model, (node, key) in runs.items():
        run = storage.read_json(nodes[node].uri(key), METRICS_FILE)
        evaluations = run.get("evaluations", run.get("history", []))  # a teacher's, a student's
        curves[model] = [[e["epoch"], e["valid"][RECORD_METRIC]] for e in evaluations if "valid" in e]
    return curves


def warm_start_table(cold: dict, warm: dict) -> str:
    """What a warm start saves, model by model, from two runs' reports on the same data: the cold run's first
    evaluation and its best, the warm run's first evaluation, and the epochs each run took to reach the cold best.

    Args:
        cold: report.json of a run without --warm-start.
        warm: report.json of a --warm-start run on the same data, after an earlier snapshot's run.

    Returns:
        A Markdown table, one row per model both runs trained.
    """
    rows = [
        "| model | cold: first evaluation → best (epoch) | warm: first evaluation (epoch) "
        "| epochs to reach the cold best: cold, warm | warm: best (epoch) |",
        "|---|---|---|---|---|",
    ]
    for model in (m for m in cold["curves"] if m in warm["curves"]):
        cold_curve, warm_curve = cold["curves"][model], warm["curves"][model]
        best_epoch, best = max(cold_curve, key=lambda point: point[1])  # the first of equal bests
        reached = next((str(epoch) for epoch, value in warm_curve if value >= best), "not reached")
        warm_best_epoch, warm_best = max(warm_curve, key=lambda point: point[1])
        rows.append(
            f"| {model} | {cold_curve[0][1]:.4f} → {best:.4f} ({best_epoch}) | {warm_curve[0][1]:.4f} "
            f"({warm_curve[0][0]}) | {best_epoch}, {reached} | {warm_best:.4f} ({warm_best_epoch}) |"
        )
    return "\n".join(rows)


def next_steps(serving_dir: str | None, user: str, logs: dict) -> list[str]:
    """The commands to try next, as typed from this directory: serve the pushed model and, from another shell,
    ask it for a real user's top 10 (only when a model was pushed); open TensorBoard on every run's logs.

    Args:
        serving_dir: the serving base directory, None when no model is served.
        user: an original user id to query.
        logs: {run name: event file directory}.

    Returns:
        The commands, one per item.
    """
    hetcomp = _program("hetcomp")
    steps = []
    if serving_dir is not None:
        steps += [
            f"{hetcomp} serve --model {_shown(serving_dir)} --port {SERVE_PORT}",
            f"{hetcomp} query --server 127.0.0.1:{SERVE_PORT} --user {shlex.quote(user)} --k 10",
        ]
    return [*steps, shlex.join(tensorboard_command(logs))]


def tensorboard_command(logs: dict) -> list[str]:
    """The venv's `tensorboard` on every run's logs.

    Args:
        logs: {run name: event file directory}, names without colons.

    Returns:
        The command's argv.
    """
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
