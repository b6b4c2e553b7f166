"""`hetcomp teachers`: train the heterogeneous teachers, export their trajectories, evaluate their ensemble
(`hetcomp_tf.teachers.train_teachers`, which documents what --out receives), and print the table, a teacher its
epoch cap stopped named so. Before training, the run's estimated time (`bench/estimate.py`). --from-run takes the
teachers a `hetcomp run` trained (`pipeline/teachers_of_run.py`) instead of training them again. With --jobs N,
N teachers train at a time in worker processes. With `--distribute multi_worker` every worker of the cluster in
TF_CONFIG runs the same command; only the chief writes --out.
"""

from __future__ import annotations

from hetcomp_tf.commands.options import (
    add_data_arguments,
    add_jobs_argument,
    add_teachers_argument,
    checked_jobs,
    parse_list,
    prepare_data,
    profile_from_args,
)
from hetcomp_tf.config import STRATEGIES, TEACHER_NAMES, override_teachers
from hetcomp_tf.errors import HetCompError


def add_arguments(parser) -> None:
    add_data_arguments(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    add_teachers_argument(parser)
    parser.add_argument(
        "--teacher-set",
        action="append",
        default=[],
        metavar="TEACHER.FIELD=VALUE",
        help="override a teacher's config field of the profile (repeatable; TEACHER 'all' for every teacher; typed, "
        "e.g. --teacher-set MF.optimizer=lazy_adam --teacher-set all.eval_users=1000); teachers.json records "
        "every teacher's config, and a benchmark reuses teachers only under its profile's",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--from-run",
        metavar="DIR",
        help="take the teachers the latest `hetcomp run --out DIR` trained instead of training them (each must "
        "match this command's data, seed and configs, or the command stops naming what differs); the teachers "
        "it lacks are trained",
    )
    add_jobs_argument(
        parser,
        "train N teachers at a time, the longest first, in worker processes of cores/N TensorFlow threads each "
        "(default 1: one after another in this process)",
    )
    parser.add_argument(
        "--distribute",
        choices=STRATEGIES,
        default="none",
        help="tf.distribute strategy of every teacher's training: none (one device, the default), "
        "mirrored (this host's GPUs), multi_worker (the cluster in TF_CONFIG; run it on every "
        "worker); needs --jobs 1",
    )


def run(args) -> int:
    import dataclasses
    from pathlib import Path

    profile = profile_from_args(args)
    profile = dataclasses.replace(profile, teachers=override_teachers(profile.teachers, args.teacher_set))
    names = parse_list(args.teachers, "--teachers", TEACHER_NAMES, "teacher")
    checked_jobs(args)
    if args.from_run and args.distribute == "multi_worker":
        raise HetCompError("--from-run with --distribute multi_worker: taking a run's teachers needs no cluster")
    if args.jobs > 1 and args.distribute != "none":
        raise HetCompError(
            f"--jobs {args.jobs} with --distribute {args.distribute}: a distributed run trains one "
            "teacher at a time, over all the strategy's replicas; use --jobs 1"
        )
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise HetCompError(f"--out {out} exists and is not a directory")
    prepare_data(args)
    profile = dataclasses.replace(
        profile,
        teachers={name: dataclasses.replace(cfg, distribute=args.distribute) for name, cfg in profile.teachers.items()},
    )

    from hetcomp_tf.util.distribute import is_chief, make_strategy, worker_dir

    strategy = make_strategy(args.distribute)  # before TensorFlow runs anything (multi-worker collectives)

    from hetcomp_tf.bench.estimate import log_estimate
    from hetcomp_tf.bench.work import Shape
    from hetcomp_tf.data.loading import load_dataset
    from hetcomp_tf.teachers.workflow import adopt_teachers, finished_teachers, teachers_table, train_teachers
    from hetcomp_tf.util.progress import log

    data = load_dataset(args.data, args.format, profile.data)
    log(f"dataset {data.name}: {data.sizes()}")
    if args.from_run:
        from pipeline.teachers_of_run import teachers_of_run

        found = teachers_of_run(args.from_run)
        taken = {name: found[name] for name in names if name in found}
        adopt_teachers(out, data, profile, args.seed, taken)
        untrained = ", ".join(name for name in names if name not in found) or "none"
        log(f"taken from {args.from_run}: {', '.join(taken) or 'no teacher'}; to train: {untrained}")
    finished = finished_teachers(out, data, profile, args.seed)
    log_estimate(profile, Shape.of_dataset(data), [name for name in names if name not in finished], jobs=args.jobs)
    with worker_dir(out, strategy) as written:  # the chief's --out; a scratch directory on the other workers
        result = train_teachers(data, profile, written, names, seed=args.seed, jobs=args.jobs)
    if not is_chief(strategy):
        return 0
    print(f"Test metrics on {data.name} ({profile.name} profile), results in {out}:")
    print(teachers_table(result))
    return 0
