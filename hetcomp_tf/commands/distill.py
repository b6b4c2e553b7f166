"""`hetcomp distill`: distil the teachers of a `hetcomp teachers` run into an MF student (HetComp or a baseline).

Reads DIR/dataset.npz and DIR/trajectories/; writes OUT/student/ (config.json + TF checkpoint, see
`student.load_student`), OUT/distill.json (valid/test metrics, params, seconds, history) and TensorBoard logs
under OUT/logs/<method>/, and prints the student's test metrics next to the teachers' ensemble. With
`--distribute multi_worker` every worker of the cluster in TF_CONFIG runs the same command; only the chief writes OUT.
"""

from __future__ import annotations

from hetcomp_tf.commands.options import add_profile_argument, add_set_argument, profile_from_args
from hetcomp_tf.config import METRIC_KS, DistillConfig
from hetcomp_tf.distill.methods import METHODS
from hetcomp_tf.util.distribute import STRATEGIES

COLUMNS = [*(f"{m}@{k}" for k in METRIC_KS for m in ("recall", "ndcg")), "params", "seconds"]


def add_arguments(parser) -> None:
    parser.add_argument("--teachers-dir", required=True, metavar="DIR", help="the --out of `hetcomp teachers`")
    parser.add_argument("--method", default="hetcomp", help=f"one of {', '.join(METHODS)} (default hetcomp)")
    add_profile_argument(parser)
    parser.add_argument(
        "--student-dim", type=int, default=None, metavar="D", help="student embedding size (default: the profile's)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--jit",
        action="store_true",
        default=None,
        help="XLA-compile the training step (default: the profile's jit_compile)",
    )
    parser.add_argument(
        "--mixed-precision",
        action="store_true",
        default=None,
        help="float16 scores with loss scaling, worth it on a GPU (default: the profile's)",
    )
    parser.add_argument(
        "--distribute",
        choices=STRATEGIES,
        default=None,
        help="tf.distribute strategy: none (one device), mirrored (this host's GPUs), multi_worker "
        f"(the cluster in TF_CONFIG; run it on every worker) (default: {DistillConfig.distribute})",
    )
    add_set_argument(parser)
    parser.add_argument("--out", required=True, metavar="OUT", help="output directory (the chief's)")


def run(args) -> int:
    import dataclasses
    from pathlib import Path

    from hetcomp_tf.data.dataset import Dataset
    from hetcomp_tf.distill.loop import distill
    from hetcomp_tf.distill.methods import get_method
    from hetcomp_tf.distill.student import save_student
    from hetcomp_tf.errors import HetCompError
    from hetcomp_tf.teachers.workflow import load_target_knowledge
    from hetcomp_tf.util.distribute import is_chief, make_strategy, worker_dir
    from hetcomp_tf.util.files import read_json, write_json
    from hetcomp_tf.util.tables import ENSEMBLE, format_table, student_row

    profile = profile_from_args(args)
    get_method(args.method)
    teachers_dir, out = Path(args.teachers_dir), Path(args.out)
    if not teachers_dir.is_dir():
        raise HetCompError(
            f"--teachers-dir {teachers_dir}: no such directory; " f"run `hetcomp teachers --out {teachers_dir}` first"
        )
    if out.exists() and not out.is_dir():
        raise HetCompError(f"--out {out} exists and is not a directory")
    flags = {
        "student_dim": args.student_dim,
        "jit_compile": args.jit,
        "mixed_precision": args.mixed_precision,
        "distribute": args.distribute,
    }
    cfg = dataclasses.replace(
        profile.distill,
        method=args.method,
        seed=args.seed,
        **{name: value for name, value in flags.items() if value is not None},
    )
    strategy = make_strategy(cfg.distribute)  # before TensorFlow runs anything (multi-worker collectives)
    data = Dataset.load(teachers_dir / "dataset.npz")
    knowledge = load_target_knowledge(teachers_dir, cfg, data)

    with worker_dir(out, strategy) as written:  # the chief's OUT; a scratch directory on the other workers
        written = Path(written)
        run = distill(data, knowledge, cfg, log_dir=written / "logs" / cfg.method)
        save_student(run.student, written / "student")
        summary = run.to_dict()
        write_json(
            written / "distill.json",
            {
                "method": summary.pop("method"),
                "profile": profile.name,
                "teachers_dir": str(teachers_dir),
                "config": dataclasses.asdict(cfg),
                **summary,
            },
        )
    if not is_chief(strategy):
        return 0

    rows = {}
    summary_path = teachers_dir / "teachers.json"
    if summary_path.is_file():
        rows[ENSEMBLE] = read_json(summary_path)["ensemble"]["test"]
    rows[student_row(cfg.method)] = {**run.test, "params": run.params, "seconds": run.train_seconds}
    print(f"Test metrics on {data.name} ({profile.name} profile, student dim {cfg.student_dim}), results in {out}:")
    print(format_table(rows, COLUMNS, {"params": "d", "seconds": ".1f"}))
    return 0
