"""`hetcomp costmodel`: the measured cost model: the student's epoch time, step memory, knowledge storage, DKC update
and serving latency (`cost_model.cost_model`), then each teacher's epoch and full-ranking evaluation
(`teacher_costs.teacher_cost_model`), at synthetic sizes, each fitted affine in what it grows with and extrapolated
to a target size; JSON to --out (written after every measurement), tables on stdout. --write-fits keeps the fitted
constants as the profile's entry of the fit file the run estimates read (`estimate.py`)."""

from __future__ import annotations

from hetcomp_tf.commands.options import add_profile_argument, add_set_argument, parse_list, profile_from_args
from hetcomp_tf.config import TEACHER_NAMES
from hetcomp_tf.errors import HetCompError

DEFAULT_SIZES = "2000x5000,20000x25000,200000x100000"
DEFAULT_TEACHER_SIZES = "1000x2000,2000x5000,4000x10000"
DEFAULT_TARGET = "10000000x1000000"


def add_arguments(parser) -> None:
    add_profile_argument(parser)
    add_set_argument(parser)
    parser.add_argument(
        "--sizes",
        default=DEFAULT_SIZES,
        metavar="UxI,UxI",
        help=f"users x items of each size the student is measured at, comma-separated (default " f"{DEFAULT_SIZES})",
    )
    parser.add_argument(
        "--teachers",
        default="all",
        metavar="T,T",
        help=f"teachers to measure: a comma-separated subset of {','.join(TEACHER_NAMES)}, 'all' "
        "(default) or 'none'",
    )
    parser.add_argument(
        "--teacher-sizes",
        default=DEFAULT_TEACHER_SIZES,
        metavar="UxI,UxI",
        help="users x items of each size the teachers are measured at (default "
        f"{DEFAULT_TEACHER_SIZES}: a few minutes on two cores)",
    )
    parser.add_argument(
        "--target", default=DEFAULT_TARGET, metavar="UxI", help=f"the size to extrapolate to (default {DEFAULT_TARGET})"
    )
    parser.add_argument(
        "--per-user",
        type=int,
        default=26,
        metavar="N",
        help="interactions per user before the 60/20/20 split (default 26, CiteULike's mean)",
    )
    parser.add_argument("--steps", type=int, default=8, help="timed training steps per size (default 8)")
    parser.add_argument("--out", required=True, metavar="FILE.json", help="output JSON file")
    parser.add_argument(
        "--write-fits",
        nargs="?",
        const="",
        default=None,
        metavar="FILE.json",
        help="also write the fitted constants as this profile's entry of the fit file the run "
        "estimates of `hetcomp teachers`, `benchmark` and `run` read (default FILE: the "
        "package's hetcomp_tf/bench/cost_fits.json); needs every teacher measured",
    )


def _users_items(text: str) -> tuple[int, int]:
    users, sep, items = text.lower().partition("x")
    if not sep:
        raise ValueError(text)
    return int(users), int(items)


def run(args) -> int:
    profile = profile_from_args(args)
    pairs = parse_list(args.sizes, "--sizes", what="UxI size", convert=_users_items)
    teachers = (
        []
        if args.teachers.strip() == "none"
        else list(TEACHER_NAMES)
        if args.teachers.strip() == "all"
        else parse_list(args.teachers, "--teachers", TEACHER_NAMES, "teacher")
    )
    teacher_pairs = parse_list(args.teacher_sizes, "--teacher-sizes", what="UxI size", convert=_users_items)
    try:
        target_pair = _users_items(args.target)
    except ValueError:
        raise HetCompError(f"--target: {args.target!r} is not a size like 10000000x1000000") from None
    if args.steps < 1:
        raise HetCompError(f"--steps {args.steps}: must be >= 1")
    if args.write_fits is not None and len(teachers) < len(TEACHER_NAMES):
        raise HetCompError(
            f"--write-fits with --teachers {args.teachers}: a run's estimate needs every teacher's "
            "fits; measure all six"
        )

    from hetcomp_tf.bench.cost_model import Size

    sizes = [Size(users, items, args.per_user) for users, items in pairs]
    teacher_sizes = [Size(users, items, args.per_user) for users, items in teacher_pairs]
    target = Size(*target_pair, args.per_user)
    if teachers and len(teacher_sizes) < 2:
        raise HetCompError(f"--teacher-sizes {args.teacher_sizes}: the teachers' fits need at least two sizes")

    import os

    import tensorflow as tf

    from hetcomp_tf.bench.cost_model import cost_model
    from hetcomp_tf.bench.estimate import fits_entry, write_fits
    from hetcomp_tf.bench.teacher_costs import teacher_cost_model
    from hetcomp_tf.distill.fused import cpu_name
    from hetcomp_tf.util.files import write_json
    from hetcomp_tf.util.progress import log

    result = cost_model(sizes, target, profile.distill, profile.trajectory, args.out, args.steps)
    result.update(cpu=cpu_name(), threads=tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count())
    if teachers:
        result["teachers"] = teacher_cost_model(
            teachers,
            teacher_sizes,
            target,
            profile.teachers,
            profile.trajectory,
            lambda section: write_json(args.out, {**result, "teachers": section}),
        )
    write_json(args.out, result)
    print(student_table(result, target))
    if teachers:
        print()
        print(teachers_table(result["teachers"], target, profile))
    if args.write_fits is not None:
        path = write_fits(fits_entry(result, result["cpu"], result["threads"]), profile.name, args.write_fits or None)
        log(f"fits of profile {profile.name} written to {path}")
    return 0


def student_table(result: dict, target) -> str:
    """The student's costs per measured size, and extrapolated to `target`."""
    from hetcomp_tf.bench.cost_model import COSTS
    from hetcomp_tf.util.tables import format_table

    columns = ["knowledge_build_seconds", *COSTS, "epoch_seconds"]
    rows = {f"{m['size']['users']} x {m['size']['items']}": m for m in result["measured"]}
    rows[f"{target.users} x {target.items} (fitted)"] = {c: f["at_target"] for c, f in result["fits"].items()}
    return format_table(rows, columns, {c: ".3g" for c in columns})


def teachers_table(section: dict, target, profile) -> str:
    """Each teacher's epoch and evaluation seconds per measured size and extrapolated to `target`, there also a
    whole run at the profile's epoch caps (`estimate.teacher_seconds`)."""
    from hetcomp_tf.bench.estimate import teacher_seconds
    from hetcomp_tf.bench.work import Shape
    from hetcomp_tf.util.tables import format_table

    columns = ["epoch_seconds", "evaluate_seconds", "run_seconds_at_caps"]
    rows = {}
    for name, measured in section["measured"].items():
        for m in measured:
            rows[f"{name} {m['size']['users']} x {m['size']['items']}"] = m
        fits = section["fits"].get(name)
        if fits is not None:
            rows[f"{name} {target.users} x {target.items} (fitted)"] = {
                "epoch_seconds": fits["epoch"]["at_target"],
                "evaluate_seconds": fits["evaluate"]["at_target"],
                "run_seconds_at_caps": teacher_seconds(
                    {"teachers": section["fits"]},
                    name,
                    profile.teachers[name],
                    profile.trajectory,
                    Shape.of_size(target),
                ),
            }
    return format_table(rows, columns, {c: ".3g" for c in columns})
