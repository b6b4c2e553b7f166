"""The teachers' workflow, one function for the `teachers` command and the benchmark: train the heterogeneous
teachers, export their trajectories, evaluate their ensemble.

Writes into `out`: dataset.npz (the split, so later steps reuse exactly it), trajectories/<TEACHER>/,
teachers.json (per-teacher and ensemble metrics) and logs/teachers/<TEACHER>/ (TensorBoard). Everything is
built in a temporary directory next to `out` and moved in only when all teachers succeeded, so a failed or
interrupted run leaves `out` as it was. With jobs > 1, that many teachers train at a time in worker processes.

Resumable by teacher: each finished teacher is kept in `out`/.teachers-resume/ (its trajectory, logs and
teachers.json entry) under a fingerprint of the split, the profile and the seed; a rerun with the same fingerprint
trains only the teachers that did not finish (a teacher stopped mid-training starts again). On data of Gowalla's
size the teachers take hours, longer than a machine may stay up.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from hetcomp_tf.config import METRIC_KS, TEACHER_NAMES, DistillConfig, Profile, from_dict
from hetcomp_tf.data.dataset import Dataset
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.distill.ensemble import EnsembleKnowledge, evaluate_ensemble, fit_ensemble, target_knowledge
from hetcomp_tf.teachers.training import train_teacher
from hetcomp_tf.teachers.trajectories import load_trajectories
from hetcomp_tf.util.files import atomic_directory, link_tree, read_json, write_json
from hetcomp_tf.util.progress import log
from hetcomp_tf.util.tables import ENSEMBLE_LABEL, FITTED_ENSEMBLE_LABEL, format_table
from hetcomp_tf.util.workers import run_in_workers

OUTPUTS = ("dataset.npz", "teachers.json", "trajectories", "logs/teachers")
RESUME = ".teachers-resume"
TABLE_COLUMNS = [*(f"{m}@{k}" for k in METRIC_KS for m in ("recall", "ndcg")), "seconds"]


def train_teachers(data: Dataset, profile: Profile, out: str | os.PathLike, names: Sequence[str] = TEACHER_NAMES,
                   seed: int = 0, jobs: int = 1) -> dict:
    """Trains `names` on `data` into `out` (see the module docstring); returns teachers.json's content."""
    resume = _resume_directory(Path(out) / RESUME, data, profile, seed)
    finished = {name: read_json(resume / "runs" / f"{name}.json") for name in names
                if (resume / "runs" / f"{name}.json").is_file()}
    if finished:
        log(f"resuming: {', '.join(finished)} already trained ({resume})")
    todo = [name for name in names if name not in finished]
    for name in todo:  # what a stopped teacher left
        shutil.rmtree(resume / "logs" / "teachers" / name, ignore_errors=True)
    tasks = [(name, train_into, (name, os.fspath(resume), profile, seed)) for name in todo]
    done = (run_in_workers(tasks, jobs, "teachers") if jobs > 1 and len(todo) > 1
            else ((name, fn(*fn_args)) for name, fn, fn_args in tasks))
    finished.update(done)
    with atomic_directory(out, entries=OUTPUTS) as staging:
        for entry in ("dataset.npz", "trajectories", "logs"):
            link_tree(resume / entry, staging / entry)
        summaries = {name: finished[name] for name in names}
        knowledge = EnsembleKnowledge.from_trajectories(load_trajectories(staging, names), tau=profile.distill.tau)
        tau, weights, weighted_valid = fit_ensemble(knowledge, data)  # beyond the paper: see its docstring
        fitted = dataclasses.replace(knowledge, tau=tau)
        weighted = {"tau": tau, "weights": weights, "valid": weighted_valid,
                    "test": evaluate_ensemble(fitted, data, "test", teacher_weights=list(weights.values()))}
        result = {
            "dataset": {"name": data.name, **data.sizes()},
            "profile": profile.name,
            "seed": seed,
            "trajectory": dataclasses.asdict(profile.trajectory),
            "teachers": summaries,
            "ensemble": {**ensemble_metrics(knowledge, data), "tau": profile.distill.tau},
            "ensemble_weighted": weighted,
        }
        write_json(staging / "teachers.json", result)
    shutil.rmtree(resume, ignore_errors=True)
    return result


def _resume_directory(resume: Path, data: Dataset, profile: Profile, seed: int) -> Path:
    """`resume`, holding data's split and the fingerprint of (split, profile, seed); emptied first if it was
    written under another fingerprint."""
    split = resume / "dataset.npz"
    fingerprint = {"profile": profile.to_dict(), "seed": seed}
    if resume.is_dir():
        stamp = resume / "fingerprint.json"
        same = (stamp.is_file() and split.is_file() and _read_fingerprint(stamp) == json.loads(json.dumps(fingerprint))
                and Dataset.load(split).same_split(data))
        if not same:
            log(f"{resume}: written for another split, profile or seed; starting the teachers afresh")
            shutil.rmtree(resume)
    if not resume.is_dir():
        resume.mkdir(parents=True)
        data.save(split)  # workers train on exactly this split
        write_json(resume / "fingerprint.json", fingerprint)
    return resume


def _read_fingerprint(stamp: Path) -> dict:
    """A resume directory's fingerprint with its profile in today's JSON shape: one written before the per-teacher
    configs holds each teacher's in the shared TeacherConfig's shape, which `from_dict` reads. A profile that no
    longer reads (fields since removed) is left as written: it differs from any of today's."""
    saved = read_json(stamp)
    try:
        profile = from_dict(Profile, saved["profile"])
    except (HetCompError, KeyError, TypeError):
        return saved
    return {**saved, "profile": json.loads(json.dumps(profile.to_dict()))}


def load_target_knowledge(teachers_dir: str | os.PathLike, cfg: DistillConfig,
                          data: Dataset | None = None) -> EnsembleKnowledge:
    """The knowledge a student distils from a `train_teachers` output: `cfg.targets`' ensemble, "fitted" with the
    valid-split fit teachers.json holds (fitted again on `data`, default its dataset.npz, if it holds none)."""
    teachers_dir = Path(teachers_dir)
    fitted = None
    if cfg.targets == "fitted":
        fitted = read_json(teachers_dir / "teachers.json").get("ensemble_weighted")
        if fitted is None and data is None:
            data = Dataset.load(teachers_dir / "dataset.npz")
    return target_knowledge(load_trajectories(teachers_dir), cfg.targets, cfg.tau, data, fitted)


def ensemble_metrics(knowledge: EnsembleKnowledge, data: Dataset) -> dict[str, dict[str, float]]:
    """The equal-weight ensemble's metrics per split: teachers.json's and the pipeline's "ensemble" row."""
    return {split: evaluate_ensemble(knowledge, data, split) for split in ("test", "valid")}


def teachers_table(result: dict) -> str:
    """The test metrics and seconds of every teacher, then the ensemble and the valid-fitted ensemble."""
    rows = {name: {**r["test"], "seconds": r["train_seconds"]} for name, r in result["teachers"].items()}
    rows[ENSEMBLE_LABEL] = result["ensemble"]["test"]
    rows[FITTED_ENSEMBLE_LABEL] = result["ensemble_weighted"]["test"]  # teacher weights fitted on valid
    return format_table(rows, TABLE_COLUMNS, {"seconds": ".1f"})


def train_into(name: str, staging: str, profile: Profile, seed: int) -> dict:
    """Trains teacher `name` on staging/dataset.npz, saves its trajectory and TensorBoard logs under `staging`
    and returns its teachers.json entry (module-level: it also runs in worker processes)."""
    staging = Path(staging)
    run = train_teacher(name, Dataset.load(staging / "dataset.npz"), profile.teachers[name], profile.trajectory,
                        seed=seed, log_dir=staging / "logs" / "teachers")
    run.trajectory.save(staging / "trajectories" / name)
    log(f"{name}: test {_short(run.test)} after {run.epochs} epochs ({run.ended_by}, {run.train_seconds:.0f}s)")
    write_json(staging / "runs" / f"{name}.json", run.to_dict())  # last: the teacher counts as finished
    return run.to_dict()


def _short(metrics: dict) -> str:
    return ", ".join(f"{key} {value:.4f}" for key, value in metrics.items() if key.endswith("@50"))
