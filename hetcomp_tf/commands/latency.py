"""`hetcomp latency`: serving latency, parameters and memory of the student versus the six-teacher ensemble.

`hetcomp teachers` keeps only the teachers' trajectories, not their weights; since latency, parameters and memory
do not depend on the weights' values, the six teachers are built freshly initialised at the profile's sizes. The
student is loaded from --student (a `hetcomp distill` OUT/student/) or, without it, freshly initialised at the
profile's student_dim. Writes --out (JSON, `latency.measure_latency` plus how the models were obtained) and prints
`latency.format_latency_table`.
"""

from __future__ import annotations

from hetcomp_tf.commands.options import add_data_arguments, parse_list, prepare_data, profile_from_args
from hetcomp_tf.errors import HetCompError

INITIALISED = "initialised (latency does not depend on weight values)"


def add_arguments(parser) -> None:
    add_data_arguments(parser)
    parser.add_argument("--requests", type=int, default=200, metavar="N",
                        help="timed requests per side and batch size (default 200)")
    parser.add_argument("--batch-sizes", default="1", metavar="B1,B2",
                        help="users per request, comma-separated (default 1)")
    parser.add_argument("--student", default=None, metavar="DIR",
                        help="a `hetcomp distill` OUT/student/ (default: a freshly initialised student)")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and request-user seed")
    parser.add_argument("--out", required=True, metavar="FILE.json", help="output JSON file")


def run(args) -> int:
    profile = profile_from_args(args)
    batch_sizes = parse_list(args.batch_sizes, "--batch-sizes", what="batch size", convert=int)
    if args.requests < 1:
        raise HetCompError(f"--requests: must be at least 1, got {args.requests}")
    prepare_data(args)

    import tempfile

    from hetcomp_tf.config import METRIC_KS, TEACHER_NAMES
    from hetcomp_tf.data import load_dataset
    from hetcomp_tf.latency import format_latency_table, measure_latency
    from hetcomp_tf.models import build_teacher
    from hetcomp_tf.student import Student, load_student
    from hetcomp_tf.files import write_json
    from serving.export import export_student

    data = load_dataset(args.data, args.format, profile.data)
    if args.student is None:
        student = Student(data.n_users, data.n_items, profile.distill.student_dim, args.seed)
    else:
        student = load_student(args.student)
        if (student.n_users, student.n_items) != (data.n_users, data.n_items):
            raise HetCompError(f"--student {args.student}: sized for {student.n_users} users x {student.n_items} "
                               f"items, but --data {args.data} has {data.n_users} x {data.n_items}")
    teachers = {name: build_teacher(name, data, profile.teachers[name], args.seed) for name in TEACHER_NAMES}

    with tempfile.TemporaryDirectory(prefix="hetcomp-latency-") as export_dir:  # timed as TF Serving runs it
        result = measure_latency(export_student(student, data, export_dir), teachers, data, k=max(METRIC_KS),
                                 top_n=profile.trajectory.top_n, tau=profile.distill.tau, requests=args.requests,
                                 batch_sizes=batch_sizes, seed=args.seed)
    write_json(args.out, {
        "data": data.name, "profile": profile.name, "seed": args.seed,
        "student_weights": args.student or INITIALISED,
        "teacher_weights": INITIALISED, **result})
    print(f"Serving cost on {data.name} ({profile.name} profile, {data.n_users} users x {data.n_items} items, "
          f"student dim {student.dim}), results in {args.out}:")
    print(format_latency_table(result))
    return 0
