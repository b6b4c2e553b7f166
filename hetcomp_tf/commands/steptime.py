"""`hetcomp steptime`: the step micro-benchmark (`step_timing.time_methods`): seconds per epoch of each
distillation loss at the profile's student protocol on the data's real shapes; with --teachers, each teacher's epoch
and full-ranking evaluation too (`teacher_timing`), and the data's loading time and the process's peak memory: where
a whole run's time and memory go, stage by stage. JSON to --out (rewritten after each teacher), a table on stdout."""

from __future__ import annotations

from hetcomp_tf.commands.options import (
    add_data_arguments,
    add_set_argument,
    parse_list,
    prepare_data,
    profile_from_args,
)
from hetcomp_tf.errors import HetCompError

TIMED_METHODS = ("wo_kd", "ensemble_kd", "rrd", "dcd", "hetcomp_no_adt")  # no_adt: HetComp's set-wise loss


def add_arguments(parser) -> None:
    add_data_arguments(parser)
    add_set_argument(parser)
    parser.add_argument("--methods", default=",".join(TIMED_METHODS), help="comma-separated methods to time, or 'none'")
    parser.add_argument(
        "--teachers",
        default="none",
        metavar="LIST",
        help="comma-separated teachers to time (an epoch and a full evaluation each), 'all' or " "'none' (default)",
    )
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per method (after one untimed)")
    parser.add_argument("--out", required=True, metavar="FILE.json", help="output JSON file")


def run(args) -> int:
    profile = profile_from_args(args)
    if args.epochs < 1:
        raise HetCompError(f"--epochs {args.epochs}: must be >= 1")
    prepare_data(args)

    import os
    import resource
    import time

    import tensorflow as tf

    from hetcomp_tf.bench.step_timing import time_methods
    from hetcomp_tf.bench.teacher_timing import time_teachers
    from hetcomp_tf.config import TEACHER_NAMES
    from hetcomp_tf.data.loading import load_dataset
    from hetcomp_tf.distill.fused import cpu_name
    from hetcomp_tf.distill.methods import METHODS
    from hetcomp_tf.util.files import write_json
    from hetcomp_tf.util.tables import format_table

    methods = _none_or_list(args.methods, "--methods", tuple(METHODS), "method")
    teachers = (
        list(TEACHER_NAMES)
        if args.teachers.strip() == "all"
        else _none_or_list(args.teachers, "--teachers", TEACHER_NAMES, "teacher")
    )
    cfg = profile.distill
    start = time.perf_counter()
    data = load_dataset(args.data, args.format, profile.data)
    results = {
        "profile": profile.name,
        "data": data.name,
        "sizes": data.sizes(),
        "load_seconds": time.perf_counter() - start,
        "cpu": cpu_name(),
        "threads": tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count(),
        "teachers": {},
    }

    def save(name=None, result=None):
        if name is not None:
            results["teachers"][name] = {**result, "dim": profile.teachers[name].dim}
        results["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        write_json(args.out, results)

    save()
    time_teachers(data, profile.teachers, profile.trajectory, teachers, on_result=save)
    if methods:
        results.update(time_methods(data, cfg, profile.trajectory, methods, args.epochs))
        results.update(
            student_dim=cfg.student_dim, batching=cfg.batching, batch_size=cfg.batch_size, jit_compile=cfg.jit_compile
        )
    save()
    print(
        f"{data.name}, {profile.name} profile: loaded and split in {results['load_seconds']:.1f} s; peak memory "
        f"{results['peak_rss_bytes'] / 2**30:.2f} GiB"
    )
    if teachers:
        columns = ["s/epoch", "s/evaluation", "s/sampled evaluation", "first epoch s", "params"]
        print(
            format_table(
                {
                    t: {
                        "s/epoch": r["epoch_seconds"],
                        "s/evaluation": r["evaluate_seconds"],
                        "s/sampled evaluation": r.get("sampled_evaluate_seconds"),
                        "first epoch s": r["first_epoch_seconds"],
                        "params": r["params"],
                    }
                    for t, r in results["teachers"].items()
                },
                columns,
                {**{c: ".2f" for c in columns[:-1]}, "params": ",d"},
            )
        )
    if methods:
        fit = results.get("ensemble_fit_seconds")
        print(
            f"student: {results['steps_per_epoch']} steps/epoch of {results['users_per_step']:.0f} users, "
            f"dim {cfg.student_dim}" + ("" if fit is None else f"; the ensemble's fit on valid {fit:.1f} s")
        )
        print(
            format_table(
                {m: {"s/epoch": results[m]["epoch_seconds"]} for m in methods}, ["s/epoch"], {"s/epoch": ".2f"}
            )
        )
    return 0


def _none_or_list(text: str, option: str, choices, what: str) -> list:
    return [] if text.strip() == "none" else parse_list(text, option, choices=choices, what=what)
