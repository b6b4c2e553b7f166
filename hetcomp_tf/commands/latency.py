"""`hetcomp latency`: serving latency, parameters and memory of the student versus the six-teacher ensemble.

`hetcomp teachers` keeps only the teachers' trajectories, not their weights; since latency, parameters and memory
do not depend on the weights' values, the six teachers are built freshly initialised at the profile's sizes. The
student is loaded from --student (a `hetcomp distill` OUT/student/) or, without it, freshly initialised at the
profile's student_dim. Writes --out (JSON, `latency.measure_latency` plus how the models were obtained) and prints
`latency.format_latency_table`.
"""

from __future__ import annotations

from hetcomp_tf.errors import HetCompError

INITIALISED = "initialised (latency does not depend on weight values)"


def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True,
                        help="'synthetic', 'citeulike' ($HETCOMP_DATA_DIR/citeulike/users.dat) or a data file path")
    parser.add_argument("--format", default=None, help="format of a --data path: citeulike, csv or npz "
                                                       "(default: from its suffix)")
    parser.add_argument("--profile", default="paper", help="tiny (CI, seconds) or paper (default)")
    parser.add_argument("--requests", type=int, default=200, metavar="N",
                        help="timed requests per side and batch size (default 200)")
    parser.add_argument("--batch-sizes", default="1", metavar="B1,B2",
                        help="users per request, comma-separated (default 1)")
    parser.add_argument("--student", default=None, metavar="DIR",
                        help="a `hetcomp distill` OUT/student/ (default: a freshly initialised student)")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and request-user seed")
    parser.add_argument("--out", required=True, metavar="FILE.json", help="output JSON file")


def parse_batch_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise HetCompError(f"--batch-sizes: {text!r} is not a comma-separated list of integers") from None
    if not sizes or min(sizes) < 1 or len(set(sizes)) != len(sizes):
        raise HetCompError(f"--batch-sizes: {text!r} must list distinct positive sizes")
    return sizes


def run(args) -> int:
    from hetcomp_tf.config import METRIC_KS, TEACHER_NAMES, get_profile
    from hetcomp_tf.data import load_dataset
    from hetcomp_tf.distill import load_student
    from hetcomp_tf.latency import format_latency_table, measure_latency
    from hetcomp_tf.models import MF, build_teacher
    from hetcomp_tf.report import write_json

    profile = get_profile(args.profile)
    batch_sizes = parse_batch_sizes(args.batch_sizes)
    if args.requests < 1:
        raise HetCompError(f"--requests: must be at least 1, got {args.requests}")
    data = load_dataset(args.data, args.format, profile.data)
    if args.student is None:
        student = MF.student(data.n_users, data.n_items, profile.distill.student_dim, args.seed)
    else:
        student = load_student(args.student)
        if (student.n_users, student.n_items) != (data.n_users, data.n_items):
            raise HetCompError(f"--student {args.student}: sized for {student.n_users} users x {student.n_items} "
                               f"items, but --data {args.data} has {data.n_users} x {data.n_items}")
    teachers = {name: build_teacher(name, data, profile.teachers[name], args.seed) for name in TEACHER_NAMES}

    result = measure_latency(student, teachers, data, k=max(METRIC_KS), top_n=profile.trajectory.top_n,
                             tau=profile.distill.tau, requests=args.requests, batch_sizes=batch_sizes,
                             seed=args.seed)
    write_json(args.out, {
        "data": data.name, "profile": profile.name, "seed": args.seed,
        "student_weights": args.student or INITIALISED,
        "teacher_weights": INITIALISED, **result})
    print(f"Serving cost on {data.name} ({profile.name} profile, {data.n_users} users x {data.n_items} items, "
          f"student dim {student.cfg.dim}), results in {args.out}:")
    print(format_latency_table(result))
    return 0
