"""`hetcomp run`: the whole TFX pipeline on this machine (as LocalDagRunner; with --jobs N, independent components
such as the teachers side by side in worker processes), then OUT/report.json
(`pipeline.report.build_report`), a table (a teacher its epoch cap stopped named so) and the commands to try next
(serve the pushed model, query it for a real user, open TensorBoard). Before it, the run's estimated time
(`bench/estimate.py`). One run at a time per --out (`hetcomp_tf.util.locking`): a second one exits with one line
naming the running one's pid, pushing nothing.

A second run with the same data and settings is served from the TFX cache (only the RankingEvaluator and Pusher
re-run once, against the newly served model), and the report says so per component
(`"components": {node: {"state": "cached", ...}}`).
"""

from __future__ import annotations

import os
import sys

from hetcomp_tf.commands.options import (
    add_jobs_argument,
    add_pipeline_arguments,
    checked_jobs,
    pipeline_config,
    prepare_data,
    profile_from_args,
)
from hetcomp_tf.config import METRIC_KS
from hetcomp_tf.util.files import out_of_space_reported
from hetcomp_tf.util.locking import exclusive_dir
from pipeline.configs import METADATA_FILE


def add_arguments(parser) -> None:
    add_pipeline_arguments(parser)
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="pipeline root, ML Metadata (SQLite), serving/ and report.json go here",
    )
    add_jobs_argument(
        parser,
        "run up to N independent components (the teachers) at a time, the longest first, each in a worker process of "
        "cores/N TensorFlow threads (default 1: one after another in this process, as TFX's LocalDagRunner)",
    )
    parser.add_argument("--direct-num-workers", type=int, default=1, metavar="N", help="Beam DirectRunner workers")
    parser.add_argument(
        "--direct-running-mode", default="in_memory", choices=("in_memory", "multi_threading", "multi_processing")
    )
    parser.add_argument("--no-cache", action="store_true", help="re-execute every component")
    parser.add_argument(
        "--warm-start",
        action="store_true",
        help="retrain on newer data: extend the latest run's id vocabularies and start each teacher "
        "from its latest model and the student from the latest blessed one (cold when there is "
        "none); TFX's cache then serves no component",
    )


def print_summary(report: dict) -> None:
    from hetcomp_tf.util.tables import format_table, teacher_label, teacher_row

    columns = [f"{m}@{k}" for k in METRIC_KS for m in ("recall", "ndcg")]
    labels = {
        teacher_row(name): teacher_label(teacher_row(name), run)  # a teacher its epoch cap stopped named so
        for name, run in report.get("teachers", {}).items()
    }  # a report written before it had none
    print(format_table({labels.get(name, name): m["test"] for name, m in report["methods"].items()}, columns))
    verdict = report["blessing"]
    pushed = report["pushed_model"] or ("nothing (already the served model)" if report["blessed"] else "nothing")
    split = verdict.get("split", "test")  # a verdict cached from before valid decided every push was read on test
    test = verdict.get("splits", {}).get("test")
    beside = f"; test {test['student']:.4f} vs {test['ensemble']:.4f}, not used to decide" if test else ""
    print(
        f"\nstudent {split} {verdict['metric']} {verdict['student']:.4f} vs required {verdict['required']:.4f} "
        f"({verdict['min_share_of_ensemble']:g} x ensemble {verdict['ensemble']:.4f}{beside}): "
        f"{'blessed' if report['blessed'] else 'NOT blessed'}; pushed: {pushed}"
    )
    print(change_summary(verdict["metric"], verdict["baseline"]))
    if report["warm_start"]:
        print(
            f"warm-started: {len(report['warm_start'])} components from an earlier run's artifacts "
            "(report.json: warm_start)"
        )
    cached = [node for node, c in report["components"].items() if c["state"] == "cached"]
    print(f"components served from the cache: {len(cached)}/{len(report['components'])}")
    print("\nnext steps (serve the model; from another shell, query it; look at the training in TensorBoard):")
    for step in report["next_steps"]:
        print(f"  {step}")


def change_summary(metric: str, change: dict | None) -> str:
    """One line on the comparison with the served model (None: there was none to compare with)."""
    if change is None:
        return "no served model to compare with: the threshold above alone decides"
    bounds = " and ".join(
        f"{name} >= {change[name]:g}" for name in ("absolute", "relative") if change[name] is not None
    )
    ratio = "n/a" if change["ratio"] is None else f"{change['ratio']:+.2%}"
    return (
        f"vs the served model, {change['split']} {metric} {change['candidate']:.4f} vs {change['baseline']:.4f} "
        f"(diff {change['diff']:+.4f}, {ratio}; needs {bounds or 'nothing'}): "
        f"{'passed' if change['passed'] else 'FAILED'}"
    )


def log_run_estimate(args, teachers):
    """Logs the estimate of the pipeline's teachers and its student from the data's size (read once more for it),
    or why there is none: shards are sized only by their ingestion, and data that does not load is the ingestion's
    to report. Returns the `Estimate` (None without one), which the runner schedules for its ETA."""
    import glob

    from hetcomp_tf.bench.estimate import log_estimate
    from hetcomp_tf.bench.work import Shape
    from hetcomp_tf.data.loading import load_dataset
    from hetcomp_tf.errors import HetCompError
    from hetcomp_tf.util.progress import log

    if glob.has_magic(args.data):
        log("no estimate of the run's time: --data is a glob of shards, sized only as the pipeline ingests them")
        return None
    profile = profile_from_args(args)
    try:
        data = load_dataset(args.data, args.format, profile.data)
    except HetCompError as error:
        log(f"no estimate of the run's time: {error}")
        return None
    return log_estimate(profile, Shape.of_dataset(data), teachers, 1, jobs=args.jobs)


def run(args) -> int:
    checked_jobs(args)
    out = os.path.abspath(args.out)
    if args.data not in ("synthetic", "citeulike"):  # executors may run elsewhere than the current directory
        args.data = os.path.abspath(args.data)
    prepare_data(args, shards=True)
    # A full disk (or file-size limit) anywhere under OUT, in any component or in ML Metadata, is one line naming
    # the file; the failed component's outputs are removed (TFX) and no version is half-pushed (components/pusher.py)
    with out_of_space_reported(out, store=os.path.join(out, METADATA_FILE)), exclusive_dir(out):
        return _run_pipeline(args, out)


def _run_pipeline(args, out: str) -> int:
    from hetcomp_tf.util.files import write_json
    from pipeline.local_runner import run_local
    from pipeline.report import build_report

    config = pipeline_config(
        args,
        out,
        direct_num_workers=args.direct_num_workers,
        direct_running_mode=args.direct_running_mode,
        enable_cache=not args.no_cache,
        warm_start=args.warm_start,
    )
    estimate = log_run_estimate(args, config.teachers)
    nodes, seconds = run_local(config, args.jobs, estimate)
    report = build_report(config, nodes, seconds)
    path = write_json(os.path.join(out, "report.json"), report)
    print_summary(report)
    print(f"report: {path}", file=sys.stderr)
    return 0
