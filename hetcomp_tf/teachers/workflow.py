"""The teachers' workflow, one function for the `teachers` command and the benchmark: train the heterogeneous
teachers, export their trajectories, evaluate their ensemble.

Writes into `out`: dataset.npz (the split, so later steps reuse exactly it), trajectories/<TEACHER>/,
teachers.json (per-teacher and ensemble metrics) and logs/teachers/<TEACHER>/ (TensorBoard). Everything is
built in a temporary directory next to `out` and moved in only when all teachers succeeded, so a failed or
interrupted run leaves `out` as it was. With jobs > 1, that many teachers train at a time in worker processes.

Resumable: each finished teacher is kept in `out`/.teachers-resume/ (its trajectory, logs and teachers.json
entry) under a fingerprint of the split, the trajectory config and the seed, with a stamp of its own config, and a
teacher in training saves its state there after every evaluation (`teachers/resume.py`); a rerun trains only the
teachers that did not finish, each from its last evaluation, and those whose config changed (one teacher's settings
tuned with `--teacher-set` retrain that teacher alone). On data of Gowalla's size the teachers take hours, longer
than a machine may stay up. Teachers trained elsewhere (a pipeline run's) join the resume state through
`adopt_teachers` once their split, seed and configs are checked to be the ones `train_teachers` would use.

With jobs > 1 the teachers start longest first (by the cost model's estimates). Teachers trained one after another
(jobs = 1) report each epoch with the ETA of all of them: the training teacher's own ETA plus the estimate of the
teachers not started (`estimate.teacher_estimates`, from the cost model's fits at their epoch caps, so an upper
bound); with no fits for the profile, or in worker processes, only the teacher's own.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from hetcomp_tf.bench.estimate import duration, teacher_estimates
from hetcomp_tf.bench.work import Shape
from hetcomp_tf.config import METRIC_KS, TEACHER_NAMES, DistillConfig, Profile, from_dict
from hetcomp_tf.data.dataset import Dataset
from hetcomp_tf.distill.ensemble import (
    EnsembleKnowledge,
    evaluate_ensemble,
    fit_ensemble,
    target_knowledge,
)
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.metrics import valid_user_sample
from hetcomp_tf.teachers.training import train_teacher
from hetcomp_tf.teachers.trajectories import load_trajectories
from hetcomp_tf.util.files import atomic_directory, link_tree, read_json, write_json
from hetcomp_tf.util.progress import Progress, log
from hetcomp_tf.util.tables import ENSEMBLE_LABEL, FITTED_ENSEMBLE_LABEL, format_table, teacher_label
from hetcomp_tf.util.workers import run_in_workers

OUTPUTS = ("dataset.npz", "teachers.json", "trajectories", "logs/teachers")
RESUME = ".teachers-resume"
TRAINING = "training"  # under RESUME: the state of each teacher in training
CONFIGS = "configs"  # under RESUME: the config each teacher there is trained with
TABLE_COLUMNS = [*(f"{m}@{k}" for k in METRIC_KS for m in ("recall", "ndcg")), "seconds"]


def train_teachers(
    data: Dataset,
    profile: Profile,
    out: str | os.PathLike,
    names: Sequence[str] = TEACHER_NAMES,
    seed: int = 0,
    jobs: int = 1,
) -> dict:
    """Trains teachers into `out` (see the module docstring), resuming an interrupted run of the same split, profile
    and seed.

    Args:
        data: the split to train, evaluate and rank on (saved as dataset.npz).
        profile: the profile: each teacher's config, the trajectory config and the ensemble's τ.
        out: the output directory; replaced only once every teacher has finished.
        names: the teachers to train, in this order.
        seed: seeds every teacher.
        jobs: teachers trained at a time (> 1: in worker processes).

    Returns:
        teachers.json's content: {"dataset", "profile", "seed", "trajectory", "teachers": {name: `TeacherRun.to_dict`},
        "ensemble" (equal weights: {"test", "valid", "tau"}), "ensemble_weighted" (τ and weights fitted on valid:
        {"tau", "weights", "valid", "test"})}.

    Raises:
        HetCompError: a teacher's training fails (see `train_teacher`).
    """
    started = time.time()
    resume = _resume_directory(Path(out) / RESUME, data, profile, seed)
    _keep_finished_outputs(Path(out), resume, data, profile, seed, names)
    finished = {
        name: read_json(resume / "runs" / f"{name}.json")
        for name in names
        if (resume / "runs" / f"{name}.json").is_file()
    }
    if finished:
        log(f"resuming: {', '.join(finished)} already trained ({resume})")
    todo = [name for name in names if name not in finished]
    for name in todo:  # the logs of a teacher stopped before its first saved state
        if not (resume / TRAINING / name).is_dir():
            shutil.rmtree(resume / "logs" / "teachers" / name, ignore_errors=True)
    in_workers = jobs > 1 and len(todo) > 1
    estimates = teacher_estimates(profile, Shape.of_dataset(data), todo)
    if in_workers:  # the longest first, so that none is left running alone at the end (`util/schedule.py`)
        todo.sort(key=lambda name: -(estimates[name] or 0.0))
    later = {} if in_workers else seconds_after(todo, estimates)
    tasks = [(name, train_into, (name, os.fspath(resume), profile, seed, started, later.get(name))) for name in todo]
    done = (
        run_in_workers(tasks, jobs, "teachers") if in_workers else ((name, fn(*fn_args)) for name, fn, fn_args in tasks)
    )
    finished.update(done)
    with atomic_directory(out, entries=OUTPUTS) as staging:
        link_tree(resume / "dataset.npz", staging / "dataset.npz")
        for part in ("trajectories", "logs/teachers"):  # of `names` only: resume/ may hold others, finished or not
            (staging / part).mkdir(parents=True)
            for name in names:
                if (resume / part / name).exists():
                    link_tree(resume / part / name, staging / part / name)
        summaries = {name: finished[name] for name in names}
        knowledge = EnsembleKnowledge.from_trajectories(load_trajectories(staging, names), tau=profile.distill.tau)
        # beyond the paper: see its docstring
        tau, weights, weighted_valid = fit_ensemble(
            knowledge, data, users=valid_user_sample(data, profile.distill.fit_users)
        )
        fitted = dataclasses.replace(knowledge, tau=tau)
        weighted = {
            "tau": tau,
            "weights": weights,
            "valid": weighted_valid,
            "test": evaluate_ensemble(fitted, data, "test", teacher_weights=list(weights.values())),
        }
        result = {
            "dataset": {"name": data.name, **data.sizes()},
            "profile": profile.name,
            "seed": seed,
            "trajectory": dataclasses.asdict(profile.trajectory),
            "teacher_configs": {name: dataclasses.asdict(profile.teachers[name]) for name in names},
            "teachers": summaries,
            "ensemble": {**ensemble_metrics(knowledge, data), "tau": profile.distill.tau},
            "ensemble_weighted": weighted,
        }
        write_json(staging / "teachers.json", result)
    shutil.rmtree(resume, ignore_errors=True)
    return result


def _resume_directory(resume: Path, data: Dataset, profile: Profile, seed: int) -> Path:
    """`resume`, holding data's split and the fingerprint of what every teacher depends on (`teachers_fingerprint`):
    emptied first if it was written under another one. A teacher trained there with another config of its own (its
    stamp under configs/) loses its results and state, and trains afresh; the others are kept."""
    if resume.is_dir() and not _resumable(resume, data, profile, seed):
        log(f"{resume}: written for another split, trajectory config or seed; starting the teachers afresh")
        shutil.rmtree(resume)
    if not resume.is_dir():
        resume.mkdir(parents=True)
        data.save(resume / "dataset.npz")  # workers train on exactly this split
        write_json(resume / "fingerprint.json", teachers_fingerprint(profile, seed))
    _stamp_older_teachers(resume)
    configs = _stamped_configs(resume)
    for name in sorted(_teachers_with_results(resume) & set(profile.teachers)):
        if configs.get(name) != teacher_config(profile, name):  # no stamp: a config nobody knows
            log(f"{name}: trained in {resume} with another config of its own; it trains afresh")
            _forget_teacher(resume, name)
    return resume


def _forget_teacher(resume: Path, name: str) -> None:
    """Removes everything `resume` holds of teacher `name`: its result, config stamp, trajectory, state and logs."""
    for path in (resume / "runs" / f"{name}.json", resume / CONFIGS / f"{name}.json"):
        path.unlink(missing_ok=True)
    for path in (resume / "trajectories" / name, resume / TRAINING / name, resume / "logs" / "teachers" / name):
        shutil.rmtree(path, ignore_errors=True)


def _keep_finished_outputs(
    out: Path, resume: Path, data: Dataset, profile: Profile, seed: int, names: Sequence[str]
) -> None:
    """Takes into `resume` the teachers a finished run left in `out` (teachers.json, trajectories/, logs/) that
    today's split, trajectory config, seed and their own configs would train again: a rerun with one teacher's
    settings changed, or with fewer teachers, trains none of the others again."""
    reusable = _finished_output_teachers(out, data, profile, seed)
    kept = [name for name in names if name in reusable and not (resume / "runs" / f"{name}.json").is_file()]
    for name in kept:
        logs = out / "logs" / "teachers" / name
        _take_teacher(
            resume, profile, name, reusable[name], out / "trajectories" / name, logs if logs.exists() else None
        )
    if kept:
        log(f"keeping {', '.join(kept)} from {out / 'teachers.json'} (same split, seed and configs)")


def _take_teacher(resume: Path, profile: Profile, name: str, run: dict, trajectory: Path, logs: Path | None) -> None:
    """Makes teacher `name`, trained elsewhere, a finished teacher of `resume`: its trajectory and logs linked in,
    its config stamped, its teachers.json entry written last (from then on it counts as finished)."""
    _forget_teacher(resume, name)
    link_tree(trajectory, resume / "trajectories" / name)
    if logs is not None:
        link_tree(logs, resume / "logs" / "teachers" / name)
    write_json(resume / CONFIGS / f"{name}.json", teacher_config(profile, name))
    write_json(resume / "runs" / f"{name}.json", run)


@dataclasses.dataclass(frozen=True)
class FinishedTeacher:
    """A teacher trained outside `train_teachers` (by a pipeline's TeacherTrainer), with what `adopt_teachers` checks
    before taking it.

    Attributes:
        run: its teachers.json entry (`TeacherRun.to_dict`).
        trajectory: the directory of its saved `Trajectory`.
        logs: its TensorBoard log directory, or None.
        config: its teacher config, as JSON values.
        trajectory_config: the `TrajectoryConfig` its trajectory was recorded with, as JSON values.
        seed: the seed it was trained with.
        split: the dataset it was trained on.
        source: where it was trained, for messages.
    """

    run: dict
    trajectory: Path
    logs: Path | None
    config: dict
    trajectory_config: dict
    seed: int
    split: Dataset
    source: str


def adopt_teachers(
    out: str | os.PathLike, data: Dataset, profile: Profile, seed: int, teachers: dict[str, FinishedTeacher]
) -> None:
    """Makes `teachers` finished teachers of a `train_teachers` into `out`, which then trains none of them again: a
    benchmark or distillation reuses the teachers of a pipeline run instead of training them a second time.

    Example:
        adopt_teachers("runs/bench", data, profile, 0, {"GNN": finished_gnn})
        train_teachers(data, profile, "runs/bench", ["MF", "GNN"])  # trains MF only

    Args:
        out: the directory `train_teachers` will write.
        data: the split `train_teachers` will train on.
        profile: its profile (each teacher's config and the trajectory config).
        seed: its seed.
        teachers: {teacher: what was trained}.

    Raises:
        HetCompError: a teacher was trained on another split, with another seed, trajectory config or config of
            its own than `train_teachers` would use; nothing is changed then.
    """
    trajectory_config = trajectory_stamp(profile)
    for name, teacher in teachers.items():
        wanted = teacher_config(profile, name)
        if not teacher.split.same_split(data):
            raise HetCompError(f"{teacher.source}: {name} was trained on another split than {data.name}'s")
        if teacher.seed != seed:
            raise HetCompError(f"{teacher.source}: {name} was trained with seed {teacher.seed}, not {seed}")
        if teacher.trajectory_config != trajectory_config:
            raise HetCompError(
                f"{teacher.source}: {name}'s trajectory was recorded with {teacher.trajectory_config}, profile "
                f"{profile.name!r} records {trajectory_config}"
            )
        if teacher.config != wanted:
            fields = sorted(
                key for key in wanted.keys() | teacher.config.keys() if teacher.config.get(key) != wanted.get(key)
            )
            raise HetCompError(
                f"{teacher.source}: {name} was trained with "
                + ", ".join(f"{key}={teacher.config.get(key)!r}" for key in fields)
                + f"; profile {profile.name!r} (with --teacher-set) has "
                + ", ".join(f"{key}={wanted.get(key)!r}" for key in fields)
            )
    resume = _resume_directory(Path(out) / RESUME, data, profile, seed)
    for name, teacher in teachers.items():
        _take_teacher(resume, profile, name, teacher.run, teacher.trajectory, teacher.logs)


def _finished_output_teachers(out: Path, data: Dataset, profile: Profile, seed: int) -> dict[str, dict]:
    """{teacher: its teachers.json entry} of the finished run in `out` whose split, trajectory config, seed and
    own config are today's (none if `out` holds no finished run)."""
    if not (out / "teachers.json").is_file() or not (out / "dataset.npz").is_file():
        return {}
    earlier = read_json(out / "teachers.json")
    trajectory = trajectory_stamp(profile)
    same_run = earlier.get("seed") == seed and earlier.get("trajectory") == trajectory
    if not same_run or not Dataset.load(out / "dataset.npz").same_split(data):
        return {}
    configs = earlier.get("teacher_configs", {})  # missing in an older teachers.json: nothing is reused
    return {
        name: run
        for name, run in earlier.get("teachers", {}).items()
        if name in profile.teachers
        and (out / "trajectories" / name).is_dir()
        and configs.get(name) == teacher_config(profile, name)
    }


def _resumable(resume: Path, data: Dataset, profile: Profile, seed: int) -> bool:
    """Whether `resume` was written for data's split, the profile's data and trajectory configs and the seed."""
    stamp, split = resume / "fingerprint.json", resume / "dataset.npz"
    return (
        stamp.is_file()
        and split.is_file()
        and _read_fingerprint(stamp)[0] == teachers_fingerprint(profile, seed)
        and Dataset.load(split).same_split(data)
    )


def finished_teachers(out: str | os.PathLike, data: Dataset, profile: Profile, seed: int) -> list[str]:
    """The teachers a `train_teachers` into `out` would not train again (finished before, in its resume state or in
    its finished output, under the same split, trajectory config and seed, each with its config of today), read
    without changing anything: what a run's estimate leaves out."""
    resume = Path(out) / RESUME
    finished = set(_finished_output_teachers(Path(out), data, profile, seed))
    if resume.is_dir() and _resumable(resume, data, profile, seed):
        configs = _stamped_configs(resume)
        finished.update(
            path.stem
            for path in (resume / "runs").glob("*.json")
            if path.stem in profile.teachers and configs.get(path.stem) == teacher_config(profile, path.stem)
        )
    return sorted(finished)


def teachers_fingerprint(profile: Profile, seed: int) -> dict:
    """What every teacher's results depend on: the profile's data and trajectory configs and the seed (not its name,
    student or sizes: a profile that changes only its student keeps its teachers). Each teacher's own config is
    stamped beside its results (`teacher_config`), so changing one teacher's retrains that teacher alone."""
    parts = profile.to_dict()
    return json.loads(json.dumps({key: parts[key] for key in ("data", "trajectory")} | {"seed": seed}))


def trajectory_stamp(profile: Profile) -> dict:
    """The profile's trajectory config as teachers.json and a pipeline's TeacherTrainer record it (JSON values)."""
    return json.loads(json.dumps(dataclasses.asdict(profile.trajectory)))


def teacher_config(profile: Profile, name: str) -> dict:
    """Teacher `name`'s config as its resume stamp holds it (JSON values)."""
    return json.loads(json.dumps(profile.to_dict()["teachers"][name]))


def _teachers_with_results(resume: Path) -> set[str]:
    """The teachers with a result, a trajectory, a training state or logs under `resume`."""
    names = {path.stem for path in (resume / "runs").glob("*.json")}
    for part in ("trajectories", TRAINING, "logs/teachers"):
        names |= {path.name for path in (resume / part).glob("*") if path.is_dir()}
    return names


def _stamped_configs(resume: Path) -> dict[str, dict]:
    """{teacher: the config it was trained with}: its stamp under `resume`/configs/, else an older fingerprint's."""
    _, older = _read_fingerprint(resume / "fingerprint.json")
    return older | {path.stem: read_json(path) for path in sorted((resume / CONFIGS).glob("*.json"))}


def _read_fingerprint(stamp: Path) -> tuple[dict, dict]:
    """A resume directory's fingerprint in today's shape, and the teachers' configs an older stamp holds.

    Stamps before the per-teacher ones held every teacher's config ({"data", "teachers", "trajectory", "seed"}), or
    the whole profile ({"profile", "seed"}), possibly with the teachers in the shared TeacherConfig's shape (before
    the per-teacher configs, which `from_dict` reads); a profile that no longer reads (fields since removed) is left
    as written: it differs from any of today's.

    Returns:
        (the fingerprint, {teacher: config} from an older stamp, else {}).
    """
    saved = read_json(stamp)
    if "profile" in saved:
        try:
            profile = from_dict(Profile, saved["profile"])
        except (HetCompError, KeyError, TypeError):
            return saved, {}
        parts = json.loads(json.dumps(profile.to_dict()))
        saved = {"data": parts["data"], "teachers": parts["teachers"], "trajectory": parts["trajectory"],
                 "seed": saved.get("seed")}  # fmt: skip
    teachers = saved.pop("teachers", {})
    return saved, teachers


def _stamp_older_teachers(resume: Path) -> None:
    """Rewrites an older stamp holding every teacher's config as today's: the shared fingerprint, and a config stamp
    for each teacher with results or state there."""
    fingerprint, configs = _read_fingerprint(resume / "fingerprint.json")
    if not configs:
        return
    for name, config in configs.items():
        has_results = (resume / "runs" / f"{name}.json").is_file() or (resume / TRAINING / name).is_dir()
        if has_results and not (resume / CONFIGS / f"{name}.json").is_file():
            write_json(resume / CONFIGS / f"{name}.json", config)
    write_json(resume / "fingerprint.json", fingerprint)


def load_target_knowledge(
    teachers_dir: str | os.PathLike, cfg: DistillConfig, data: Dataset | None = None
) -> EnsembleKnowledge:
    """The knowledge a student distils from a `train_teachers` output: `cfg.targets`' ensemble, "fitted" with the
    valid-split fit teachers.json holds (fitted again on `data`, default its dataset.npz, if it holds none).

    Args:
        teachers_dir: a `train_teachers` output directory.
        cfg: the distillation config: its `targets` and `tau`.
        data: the dataset to fit on when teachers.json holds no fit (default: the directory's dataset.npz).

    Returns:
        The `EnsembleKnowledge` to distil.

    Raises:
        HetCompError: missing or unreadable trajectories or files.
    """
    teachers_dir = Path(teachers_dir)
    fitted = None
    if cfg.targets == "fitted":
        fitted = read_json(teachers_dir / "teachers.json").get("ensemble_weighted")
        if fitted is None and data is None:
            data = Dataset.load(teachers_dir / "dataset.npz")
    return target_knowledge(load_trajectories(teachers_dir), cfg.targets, cfg.tau, data, fitted, cfg.fit_users)


def ensemble_metrics(knowledge: EnsembleKnowledge, data: Dataset) -> dict[str, dict[str, float]]:
    """An ensemble's metrics per split, with its own τ and teacher weights: with equal weights, teachers.json's and
    the pipeline's "ensemble" row.

    Args:
        knowledge: the ensemble (its τ and teacher weights apply).
        data: the dataset it is evaluated on.

    Returns:
        {"test": {metric: value}, "valid": {metric: value}}.
    """
    return {split: evaluate_ensemble(knowledge, data, split) for split in ("test", "valid")}


def seconds_after(names: Sequence[str], estimates: dict[str, float | None]) -> dict[str, float]:
    """What remains after each teacher, for the all-teachers ETA of its epoch lines.

    Args:
        names: the teachers in training order.
        estimates: {teacher: estimated seconds, or None when unknown}.

    Returns:
        {teacher: the estimated seconds of the teachers after it in `names`}, only for the teachers after which
        every estimate is known.
    """
    after, total = {}, 0.0
    for name in reversed(names):
        if total is None:
            break
        after[name] = total
        total = None if estimates.get(name) is None else total + estimates[name]
    return after


class TeachersProgress(Progress):
    """A teacher's epoch lines with the ETA of all the run's teachers: the teacher's own linear ETA plus
    `later_seconds`, the estimate of the teachers not started yet.

    Args:
        what: the line's label.
        total: the epochs (the teacher's epoch cap).
        run_started: the run's wall-clock start (time.time()).
        later_seconds: the estimated seconds of the teachers after this one.
        done_before: epochs trained before this process started (a resumed teacher).
    """

    def __init__(self, what: str, total: int, run_started: float, later_seconds: float, done_before: int = 0):
        super().__init__(what, total, done_before)
        self.run_started, self.later_seconds = run_started, later_seconds

    def update(self, done: int, detail: str = "") -> None:
        """Logs one epoch line with both ETAs.

        Args:
            done: epochs trained.
            detail: the loop's detail (loss, valid metrics).
        """
        elapsed, eta = time.perf_counter() - self.start, self.eta(done)
        log(
            f"{self.what} {done}/{self.total} {detail} [{elapsed:.0f}s elapsed, ETA {eta:.0f}s; all teachers: "
            f"{duration(time.time() - self.run_started)} elapsed, ETA ~{duration(eta + self.later_seconds)} "
            "at the epoch caps]".replace("  ", " ")
        )


def teachers_table(result: dict) -> str:
    """The test metrics and seconds of every teacher (a teacher its epoch cap stopped named so), then the ensemble
    and the valid-fitted ensemble.

    Args:
        result: `train_teachers`' result (teachers.json's content).

    Returns:
        The table, as text.
    """
    rows = {
        teacher_label(name, r): {**r["test"], "seconds": r["train_seconds"]} for name, r in result["teachers"].items()
    }
    rows[ENSEMBLE_LABEL] = result["ensemble"]["test"]
    rows[FITTED_ENSEMBLE_LABEL] = result["ensemble_weighted"]["test"]  # teacher weights fitted on valid
    return format_table(rows, TABLE_COLUMNS, {"seconds": ".1f"})


def train_into(
    name: str,
    staging: str,
    profile: Profile,
    seed: int,
    run_started: float | None = None,
    later_seconds: float | None = None,
) -> dict:
    """Trains teacher `name` on staging/dataset.npz (from its saved state under staging/training/ if there is one),
    saves its trajectory and TensorBoard logs under `staging` and returns its teachers.json entry (module-level: it
    also runs in worker processes).

    Args:
        name: the teacher.
        staging: the resume directory holding dataset.npz; its trajectory goes to trajectories/<name>/, its logs to
            logs/teachers/<name>/, its entry to runs/<name>.json.
        profile: the profile holding its config and the trajectory config.
        seed: seeds the teacher.
        run_started: the run's wall-clock start, for `TeachersProgress`.
        later_seconds: the estimate of the teachers after it; given, its epoch lines carry the ETA of all teachers
            (`TeachersProgress`).

    Returns:
        Its teachers.json entry (`TeacherRun.to_dict`).
    """
    staging = Path(staging)
    write_json(staging / CONFIGS / f"{name}.json", teacher_config(profile, name))  # before any result of it
    progress = (
        Progress
        if later_seconds is None
        else functools.partial(TeachersProgress, run_started=run_started, later_seconds=later_seconds)
    )
    run = train_teacher(
        name,
        Dataset.load(staging / "dataset.npz"),
        profile.teachers[name],
        profile.trajectory,
        seed=seed,
        log_dir=staging / "logs" / "teachers",
        progress=progress,
        resume_dir=staging / TRAINING / name,
    )
    run.trajectory.save(staging / "trajectories" / name)
    log(f"{name}: test {_short(run.test)} after {run.epochs} epochs ({run.ended_by}, {run.train_seconds:.0f}s)")
    write_json(staging / "runs" / f"{name}.json", run.to_dict())  # the teacher counts as finished
    shutil.rmtree(staging / TRAINING / name)
    return run.to_dict()


def _short(metrics: dict) -> str:
    return ", ".join(f"{key} {value:.4f}" for key, value in metrics.items() if key.endswith("@50"))
