"""`hetcomp ensemble`: the teachers' ensemble of a `hetcomp teachers` run, equal-weight and fitted on valid, fitted
again without training anything (another --set fit_users, teachers.json written before the fit existed, or the
ensemble of a subset of its teachers, --teachers: what leaving a teacher out costs).

Reads DIR/dataset.npz and DIR/trajectories/; writes --out as JSON ({"teachers", "equal": {tau, valid, test},
"fitted": {tau, weights, valid, test, fit_users, fit_seconds}}) and prints a table of both next to each of its
teachers in DIR/teachers.json (when it is there).
"""

from __future__ import annotations

from hetcomp_tf.commands.options import add_profile_argument, add_set_argument, parse_list, profile_from_args
from hetcomp_tf.config import METRIC_KS, TEACHER_NAMES

COLUMNS = [*(f"{m}@{k}" for k in METRIC_KS for m in ("recall", "ndcg"))]


def add_arguments(parser) -> None:
    parser.add_argument("--teachers-dir", required=True, metavar="DIR", help="the --out of `hetcomp teachers`")
    add_profile_argument(parser)
    add_set_argument(parser)
    parser.add_argument(
        "--teachers",
        default=None,
        metavar="T,T,...",
        help="the ensemble of these teachers of DIR only, comma-separated (default: every teacher DIR holds)",
    )
    parser.add_argument("--out", required=True, metavar="FILE.json", help="output JSON file")


def run(args) -> int:
    import dataclasses
    import time
    from pathlib import Path

    from hetcomp_tf.data.dataset import Dataset
    from hetcomp_tf.distill.ensemble import EnsembleKnowledge, evaluate_ensemble, fit_ensemble
    from hetcomp_tf.errors import HetCompError
    from hetcomp_tf.metrics import valid_user_sample
    from hetcomp_tf.teachers.trajectories import load_trajectories
    from hetcomp_tf.util.files import read_json, write_json
    from hetcomp_tf.util.tables import ENSEMBLE_LABEL, FITTED_ENSEMBLE_LABEL, format_table, teacher_label

    cfg = profile_from_args(args).distill
    names = None if args.teachers is None else parse_list(args.teachers, "--teachers", TEACHER_NAMES, "teacher")
    teachers_dir = Path(args.teachers_dir)
    if not (teachers_dir / "dataset.npz").is_file():
        raise HetCompError(f"--teachers-dir {teachers_dir}: no dataset.npz; run `hetcomp teachers --out` there first")
    data = Dataset.load(teachers_dir / "dataset.npz")
    equal = EnsembleKnowledge.from_trajectories(load_trajectories(teachers_dir, names), tau=cfg.tau)
    start = time.perf_counter()
    tau, weights, valid = fit_ensemble(equal, data, users=valid_user_sample(data, cfg.fit_users))
    fit_seconds = time.perf_counter() - start
    fitted = dataclasses.replace(equal, tau=tau)
    result = {
        "teachers_dir": str(teachers_dir),
        "teachers": list(equal.teachers),
        "equal": {
            "tau": cfg.tau,
            **{split: evaluate_ensemble(equal, data, split) for split in ("valid", "test")},
        },
        "fitted": {
            "tau": tau,
            "weights": weights,
            "valid": valid,
            "test": evaluate_ensemble(fitted, data, "test", teacher_weights=list(weights.values())),
            "fit_users": cfg.fit_users,
            "fit_seconds": fit_seconds,
        },
    }
    write_json(args.out, result)
    rows = {}
    summary = teachers_dir / "teachers.json"
    if summary.is_file():
        for name, run in read_json(summary)["teachers"].items():
            if name in equal.teachers:
                rows[teacher_label(name, run)] = run["test"]
    rows[ENSEMBLE_LABEL] = result["equal"]["test"]
    rows[FITTED_ENSEMBLE_LABEL] = result["fitted"]["test"]
    print(
        f"Test metrics on {data.name}; fitted tau {tau:g}, weights "
        + ", ".join(f"{name} {w:g}" for name, w in weights.items())
        + f" (fit over {f'{cfg.fit_users} valid users' if cfg.fit_users else 'every valid user'} in {fit_seconds:.0f}s)"
        + f", results in {args.out}:"
    )
    print(format_table(rows, COLUMNS))
    return 0
