"""`hetcomp benchmark`: the teachers once (or reused from --out), then every distillation method over seeds and
student sizes; results.json, curves.png and a printed table (see hetcomp_tf/bench/benchmark.py for the layout).
Before training, the invocation's estimated time (`bench/estimate.py`)."""

from __future__ import annotations

from hetcomp_tf.commands.options import (
    add_data_arguments,
    add_jobs_argument,
    add_set_argument,
    add_teachers_argument,
    parse_list,
    prepare_data,
    profile_from_args,
)


def add_arguments(parser) -> None:
    add_data_arguments(parser)
    parser.add_argument("--seeds", type=int, default=3, help="student seeds 0..N-1 per method (default 3)")
    parser.add_argument(
        "--extra-seeds",
        type=int,
        default=1,
        metavar="N",
        help="seeds 0..N-1 (at most --seeds) of the ablations and of the student sizes other than "
        "the profile's (default 1)",
    )
    parser.add_argument(
        "--methods",
        default=None,
        metavar="M,M,...",
        help="comma-separated distillation methods (default: all; `hetcomp distill --help` " "lists them)",
    )
    parser.add_argument(
        "--student-dims",
        default=None,
        metavar="D,D,...",
        help="student sizes swept for wo_kd, ensemble_kd and hetcomp (default: the profile's)",
    )
    parser.add_argument(
        "--only-seeds",
        default=None,
        metavar="S,S,...",
        help="train only the planned runs of these seeds (0-based, below --seeds); the results still "
        "show every finished run, so a benchmark can be split over machines or sessions",
    )
    parser.add_argument(
        "--only-runs",
        default=None,
        metavar="METHOD:DIM:SEED,...",
        help="train only these planned runs, in this order (e.g. rrd:6:1,hetcomp:16:0); like "
        "--only-seeds, to split a benchmark or to fill in the runs another session lost",
    )
    parser.add_argument(
        "--import-runs",
        action="append",
        default=[],
        metavar="FILE",
        help="add the finished runs of another benchmark's results.partial.json (same split, "
        "trajectories and distill config; repeatable)",
    )
    parser.add_argument(
        "--direct",
        default="",
        metavar="T,T",
        help="also train these teachers (MF, GNN: they serve as tables) at every student size with "
        "their teacher recipe, the rivals on the quality-vs-cost frontier (default: none)",
    )
    parser.add_argument(
        "--latency",
        default=None,
        metavar="FILE.json",
        help="`hetcomp latency` output whose p50 at batch 1 gives the frontier its cost axis " "(default: parameters)",
    )
    add_teachers_argument(parser, "whose ensemble the students distil")
    add_set_argument(parser)
    add_jobs_argument(
        parser,
        "runs trained at a time, each in its own process with cores/N threads (default 1: one run at a time with "
        "per-epoch progress)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory (teachers are reused from it)")


def run(args) -> int:
    profile = profile_from_args(args)
    dims = (
        parse_list(args.student_dims, "--student-dims", what="size", convert=int)
        if args.student_dims
        else list(profile.student_dims)
    )
    prepare_data(args)

    from hetcomp_tf.bench.benchmark import BenchmarkPlan, run_benchmark
    from hetcomp_tf.bench.frontier import DIRECT_TEACHERS
    from hetcomp_tf.bench.results import results_table, sweep_table
    from hetcomp_tf.bench.runs import RunKey
    from hetcomp_tf.config import TEACHER_NAMES
    from hetcomp_tf.distill.methods import METHODS

    methods = (
        parse_list(args.methods, "--methods", tuple(METHODS), "distillation method") if args.methods else list(METHODS)
    )
    only_seeds = (
        None if args.only_seeds is None else parse_list(args.only_seeds, "--only-seeds", what="seed", convert=_seed)
    )
    only_runs = (
        None
        if args.only_runs is None
        else [
            RunKey(*key)
            for key in parse_list(args.only_runs, "--only-runs", what="METHOD:DIM:SEED run", convert=_run_key)
        ]
    )
    direct = parse_list(args.direct, "--direct", DIRECT_TEACHERS, "teacher") if args.direct else []
    teachers = parse_list(args.teachers, "--teachers", TEACHER_NAMES, "teacher")
    plan = BenchmarkPlan.from_options(
        args.data,
        args.format,
        profile,
        args.seeds,
        methods,
        dims,
        args.out,
        args.jobs,
        only_seeds,
        args.import_runs,
        only_runs,
        direct,
        args.latency,
        args.extra_seeds,
        teachers,
    )
    log_plan_estimate(plan)
    results = run_benchmark(plan)
    print(
        f"Test metrics on {results['dataset']['name']} ({profile.name} profile, students of dim "
        f"{results['student_dim']}, mean over {results['seeds']} seeds; ensemble params "
        f"{results['ensemble_params']}), results in {args.out}:"
    )
    print(results_table(results))
    print("\nStudent size sweep (test, mean over seeds):")
    print(sweep_table(results))
    total = (
        f", {results['wall_seconds_total']:.0f}s over {len(results['invocations'])} invocations on {args.out}"
        if len(results["invocations"]) > 1
        else ""
    )
    print(f"\nwall time {results['wall_seconds']:.0f}s{total}")
    return 0


def log_plan_estimate(plan) -> None:
    """Logs the estimate of what `plan` (a BenchmarkPlan) trains: its teachers unless --out holds reusable ones,
    its runs (--only-runs', or the plan's, of --only-seeds' seeds) but those finished under its fingerprint, a direct
    model priced as its teacher; imported runs are counted too, an upper bound."""
    from pathlib import Path

    from hetcomp_tf.bench import estimate
    from hetcomp_tf.bench.benchmark import finished_run_names, teachers_reusable
    from hetcomp_tf.bench.frontier import direct_teacher, is_direct
    from hetcomp_tf.bench.work import Shape
    from hetcomp_tf.data.loading import load_dataset
    from hetcomp_tf.teachers.workflow import finished_teachers

    data = load_dataset(plan.data_spec, plan.fmt, plan.profile.data)
    keys = [
        key
        for key in (plan.keys if plan.only_runs is None else plan.only_runs)
        if plan.only_seeds is None or key.seed in plan.only_seeds
    ]
    teachers, done = [], set()
    if teachers_reusable(Path(plan.out), data, plan.profile, plan.teachers) is not None:
        finished = finished_teachers(plan.out, data, plan.profile, seed=0)
        teachers = [name for name in plan.teachers if name not in finished]
    else:
        done = finished_run_names(plan)
    keys = [key for key in keys if key.name not in done]
    teachers += [direct_teacher(key.method) for key in keys if is_direct(key.method)]
    students = sum(not is_direct(key.method) for key in keys)
    estimate.log_estimate(plan.profile, Shape.of_dataset(data), teachers, students, jobs=plan.jobs)


def _seed(text: str) -> int:
    """A seed of --only-seeds: an int >= 0 (parse_list's int conversion wants positive sizes)."""
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def _run_key(text: str) -> tuple[str, int, int]:
    """A run of --only-runs, METHOD:DIM:SEED (a positive dim, a seed >= 0)."""
    method, dim, seed = text.rsplit(":", 2)  # a direct model's method has a colon of its own: direct:GNN:16:0
    if int(dim) < 1:
        raise ValueError(text)
    return method, int(dim), _seed(seed)
