"""`hetcomp teachers`: train the heterogeneous teachers, export their trajectories, evaluate their ensemble.

Writes into --out: dataset.npz (the split, so later steps reuse exactly it), trajectories/<TEACHER>/,
teachers.json (per-teacher and ensemble metrics) and logs/teachers/<TEACHER>/ (TensorBoard). Everything is
built in a temporary directory next to --out and moved in only when all teachers succeeded, so a failed or
interrupted run leaves --out as it was. With --jobs N, N teachers train at a time in worker processes.
"""

from __future__ import annotations

import dataclasses

from hetcomp_tf.commands.options import add_data_arguments, parse_list, prepare_data, profile_from_args
from hetcomp_tf.config import METRIC_KS, TEACHER_NAMES
from hetcomp_tf.errors import HetCompError

OUTPUTS = ("dataset.npz", "teachers.json", "trajectories", "logs/teachers")
TABLE_COLUMNS = [*(f"{m}@{k}" for k in METRIC_KS for m in ("recall", "ndcg")), "seconds"]


def add_arguments(parser) -> None:
    add_data_arguments(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--teachers", default=",".join(TEACHER_NAMES), metavar="T,T,...",
                        help=f"comma-separated subset of {','.join(TEACHER_NAMES)} (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="train N teachers at a time in worker processes of cores/N TensorFlow threads each "
                             "(default 1: one after another in this process)")


def run(args) -> int:
    import os
    from pathlib import Path

    profile = profile_from_args(args)
    names = parse_list(args.teachers, "--teachers", TEACHER_NAMES, "teacher")
    if args.jobs < 1:
        raise HetCompError(f"--jobs {args.jobs}: must be >= 1")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise HetCompError(f"--out {out} exists and is not a directory")
    prepare_data(args)

    from hetcomp_tf.data import load_dataset
    from hetcomp_tf.ensemble import EnsembleKnowledge, evaluate_ensemble, fit_teacher_weights
    from hetcomp_tf.files import atomic_directory, write_json
    from hetcomp_tf.progress import log
    from hetcomp_tf.report import format_table
    from hetcomp_tf.trajectories import load_trajectories
    from hetcomp_tf.workers import run_in_workers

    data = load_dataset(args.data, args.format, profile.data)
    log(f"dataset {data.name}: {data.sizes()}")

    with atomic_directory(out, entries=OUTPUTS) as staging:
        data.save(staging / "dataset.npz")  # workers train on exactly this split
        tasks = [(name, train_into, (name, os.fspath(staging), profile, args.seed)) for name in names]
        done = (run_in_workers(tasks, args.jobs, "teachers") if args.jobs > 1 and len(names) > 1
                else ((name, fn(*fn_args)) for name, fn, fn_args in tasks))
        finished = dict(done)
        summaries = {name: finished[name] for name in names}
        knowledge = EnsembleKnowledge.from_trajectories(load_trajectories(staging, names), tau=profile.distill.tau)
        ensemble = {split: evaluate_ensemble(knowledge, data, split) for split in ("test", "valid")}
        weights, weighted_valid = fit_teacher_weights(knowledge, data)  # beyond the paper: see its docstring
        weighted = {"weights": weights, "valid": weighted_valid,
                    "test": evaluate_ensemble(knowledge, data, "test", teacher_weights=list(weights.values()))}
        result = {
            "dataset": {"name": data.name, **data.sizes()},
            "profile": profile.name,
            "seed": args.seed,
            "trajectory": dataclasses.asdict(profile.trajectory),
            "teachers": summaries,
            "ensemble": {**ensemble, "tau": profile.distill.tau},
            "ensemble_weighted": weighted,
        }
        write_json(staging / "teachers.json", result)

    rows = {name: {**r["test"], "seconds": r["train_seconds"]} for name, r in summaries.items()}
    rows["Ensemble"] = ensemble["test"]
    rows["Ensemble-fitted"] = weighted["test"]  # teacher weights fitted on valid (beyond the paper)
    print(f"Test metrics on {data.name} ({profile.name} profile), results in {out}:")
    print(format_table(rows, TABLE_COLUMNS, {"seconds": ".1f"}))
    return 0


def train_into(name: str, staging: str, profile, seed: int) -> dict:
    """Trains teacher `name` on staging/dataset.npz, saves its trajectory and TensorBoard logs under `staging`
    and returns its teachers.json entry (module-level: it also runs in worker processes)."""
    from pathlib import Path

    from hetcomp_tf.data import Dataset
    from hetcomp_tf.progress import log
    from hetcomp_tf.training import train_teacher

    staging = Path(staging)
    run = train_teacher(name, Dataset.load(staging / "dataset.npz"), profile.teachers[name], profile.trajectory,
                        seed=seed, log_dir=staging / "logs" / "teachers")
    run.trajectory.save(staging / "trajectories" / name)
    ended = "early stop" if run.early_stopped else "epoch cap"
    log(f"{name}: test {_short(run.test)} after {run.epochs} epochs ({ended}, {run.train_seconds:.0f}s)")
    return {"test": run.test, "valid": run.valid, "train_seconds": run.train_seconds, "epochs": run.epochs,
            "ended_by": ended, "params": run.params,
            "checkpoint_epochs": [c["epoch"] for c in run.trajectory.checkpoints]}


def _short(metrics: dict) -> str:
    return ", ".join(f"{key} {value:.4f}" for key, value in metrics.items() if key.endswith("@50"))
