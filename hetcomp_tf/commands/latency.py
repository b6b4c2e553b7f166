"""`hetcomp latency`: serving latency, parameters and memory of every model as a user would deploy it, in one run:
each teacher alone, the teachers' ensemble (--teachers, default all six) and students of every size in
--student-dims (`hetcomp_tf.bench.latency`).

`hetcomp teachers` keeps only the teachers' trajectories, not their weights; since latency, parameters and memory
do not depend on the weights' values, the teachers are built freshly initialised at the profile's sizes, and so
are the students (at --student-dims, default the profile's student_dim), except the one --student gives (a
`hetcomp distill` OUT/student/), which takes its dimension's place. Every model that serves as embedding tables
(the students; MF, CML and LightGCN) is exported with serving/export.py and timed through its SavedModel, as TF
Serving runs it; --export-dir keeps those SavedModels (one TF Serving base directory per model, version 1).
Writes --out (JSON: `latency.measure_latency`, each model's weights and, with --export-dir, its SavedModel) and
prints `latency.format_latency_table`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hetcomp_tf.commands.options import (
    add_data_arguments,
    add_teachers_argument,
    parse_list,
    prepare_data,
    profile_from_args,
)
from hetcomp_tf.config import TEACHER_NAMES
from hetcomp_tf.errors import HetCompError

INITIALISED = "initialised (latency does not depend on weight values)"
VERSION = "1"  # the version directory of each kept SavedModel


def add_arguments(parser) -> None:
    add_data_arguments(parser)
    parser.add_argument(
        "--requests", type=int, default=200, metavar="N", help="timed requests per model and batch size (default 200)"
    )
    parser.add_argument(
        "--batch-sizes", default="1", metavar="B1,B2", help="users per request, comma-separated (default 1)"
    )
    parser.add_argument(
        "--student-dims",
        default=None,
        metavar="D1,D2",
        help="student sizes to time, comma-separated (default: the --student's, else the profile's " "student_dim)",
    )
    parser.add_argument(
        "--student",
        default=None,
        metavar="DIR",
        help="a `hetcomp distill` OUT/student/, timed at its dimension (default: every student " "freshly initialised)",
    )
    parser.add_argument(
        "--export-dir",
        default=None,
        metavar="DIR",
        help="keep the timed SavedModels in DIR/<model>/1 (a new or empty directory; default: a " "temporary one)",
    )
    add_teachers_argument(parser, "timed alone and as the ensemble")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and request-user seed")
    parser.add_argument("--out", required=True, metavar="FILE.json", help="output JSON file")


def _savedmodel_path(key: str) -> str:
    """Where under --export-dir the SavedModel of a result key lies ("teacher:GNN" -> "teacher-GNN/1")."""
    return f"{key.replace(':', '-')}/{VERSION}"


def _deployed(model, key: str, data, k: int, root):
    """`model` as a user would deploy it: exported under `root` and served from its SavedModel if it serves as
    embedding tables (`serving_tables()`), else through its scoring."""
    from hetcomp_tf.bench.latency import saved_model_servable, scoring_servable
    from hetcomp_tf.util.progress import log
    from serving.export import export_model

    if model.serving_tables() is None:
        return scoring_servable(model, data, k)
    log(f"latency: exporting {key} as embedding tables")
    return saved_model_servable(export_model(model, data, str(Path(root) / _savedmodel_path(key))), data, k)


def run(args) -> int:
    profile = profile_from_args(args)
    names = parse_list(args.teachers, "--teachers", TEACHER_NAMES, "teacher")
    batch_sizes = parse_list(args.batch_sizes, "--batch-sizes", what="batch size", convert=int)
    dims = (
        None
        if args.student_dims is None
        else parse_list(args.student_dims, "--student-dims", what="dimension", convert=int)
    )
    if args.requests < 1:
        raise HetCompError(f"--requests: must be at least 1, got {args.requests}")
    if (
        args.export_dir is not None
        and Path(args.export_dir).exists()
        and (not Path(args.export_dir).is_dir() or any(Path(args.export_dir).iterdir()))
    ):
        raise HetCompError(f"--export-dir {args.export_dir}: exists and is not an empty directory")
    prepare_data(args)

    from hetcomp_tf.bench.latency import ensemble_servable, format_latency_table, measure_latency, student_key
    from hetcomp_tf.config import METRIC_KS
    from hetcomp_tf.data.loading import load_dataset
    from hetcomp_tf.distill.student import Student, load_student
    from hetcomp_tf.models import build_teacher
    from hetcomp_tf.util.files import atomic_directory, write_json
    from hetcomp_tf.util.tables import ENSEMBLE, teacher_row

    data = load_dataset(args.data, args.format, profile.data)
    trained = None if args.student is None else load_student(args.student)
    if trained is not None and (trained.n_users, trained.n_items) != (data.n_users, data.n_items):
        raise HetCompError(
            f"--student {args.student}: sized for {trained.n_users} users x {trained.n_items} "
            f"items, but --data {args.data} has {data.n_users} x {data.n_items}"
        )
    dims = dims or [trained.dim if trained is not None else profile.distill.student_dim]
    students = {dim: Student(data.n_users, data.n_items, dim, args.seed) for dim in dims}
    if trained is not None:
        students[trained.dim] = trained
    teachers = {name: build_teacher(name, data, profile.teachers[name], args.seed) for name in names}
    k = max(METRIC_KS)
    weights = {student_key(dim): INITIALISED for dim in students}
    if trained is not None:
        weights[student_key(trained.dim)] = args.student

    exports = (
        atomic_directory(args.export_dir)
        if args.export_dir is not None
        else tempfile.TemporaryDirectory(prefix="hetcomp-latency-")
    )
    with exports as root:
        servables = {
            teacher_row(name): _deployed(teacher, teacher_row(name), data, k, root)
            for name, teacher in teachers.items()
        }
        servables[ENSEMBLE] = ensemble_servable(teachers, data, k, profile.trajectory.top_n, profile.distill.tau)
        servables.update(
            {student_key(dim): _deployed(student, student_key(dim), data, k, root) for dim, student in students.items()}
        )
        result = measure_latency(servables, data, requests=args.requests, batch_sizes=batch_sizes, seed=args.seed)
    for key, model in result["models"].items():
        model["weights"] = weights.get(key, INITIALISED)
        if args.export_dir is not None and model["served_as"] == "savedmodel":
            model["savedmodel"] = _savedmodel_path(key)
    write_json(
        args.out,
        {
            "data": data.name,
            "profile": profile.name,
            "seed": args.seed,
            "k": k,
            "export_dir": args.export_dir,
            **result,
        },
    )
    print(
        f"Serving cost of top-{k} on {data.name} ({profile.name} profile, {data.n_users} users x {data.n_items} "
        f"items), results in {args.out}:"
    )
    print(format_latency_table(result))
    return 0
