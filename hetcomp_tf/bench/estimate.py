"""A run's time before it starts, so a user can plan it: the cost model's fits priced at the data's shape and the
profile's epoch caps.

The fits come from cost_fits.json beside this module, one entry per profile (the teachers' and the student's
settings differ per profile), each naming the CPU and threads it was measured with; `hetcomp costmodel --profile P
--write-fits` measures and writes P's entry. Every teacher and student is priced as trained to its epoch cap, so the
estimate is an upper bound: early stopping usually ends a run sooner. It is only as good as the extrapolation from
the fitted sizes and the CPU's likeness to this one's, and says so.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hetcomp_tf.bench.work import TEACHER_WORK, Shape, drivers, steps_per_epoch
from hetcomp_tf.util.files import read_json, write_json
from hetcomp_tf.util.progress import log
from hetcomp_tf.util.schedule import remaining_seconds
from hetcomp_tf.util.workers import threads_per_worker

FITS_FILE = Path(__file__).with_name("cost_fits.json")
# A teacher's epoch against its TensorFlow threads: Mult-VAE on Gowalla, 55 s an epoch on 2 threads, 74 s on 1
# beside another teacher (docs/RESULTS.md, "Real size"): time ~ threads ** -0.43 on a small CPU.
THREAD_EXPONENT = math.log(74 / 55) / math.log(2)
STUDENT_COSTS = ("step_seconds", "dkc_update_seconds")  # the student's fits a run's estimate reads


def duration(seconds: float) -> str:
    """`seconds` as a person plans with them: "40s", "12 min", "3.2 h", "4.5 days"."""
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def fits_entry(result: dict, cpu: str, threads: int) -> dict:
    """The fit file's entry for a `hetcomp costmodel` result (its student "fits" and its "teachers" section), the
    fitted constants only, with where they were measured."""
    teachers = result.get("teachers", {})

    def constants(fit: dict) -> dict:
        return {key: fit[key] for key in ("driver", "c0", "c1")}

    return {
        "cpu": cpu,
        "threads": threads,
        "student_sizes": [m["size"] for m in result["measured"]],
        "teacher_sizes": teachers.get("sizes", []),
        "student": {cost: constants(result["fits"][cost]) for cost in STUDENT_COSTS},
        "teachers": {
            name: {cost: constants(fit) for cost, fit in fits.items()}
            for name, fits in teachers.get("fits", {}).items()
        },
    }


def write_fits(entry: dict, profile: str, path: str | os.PathLike | None = None) -> Path:
    """Puts `entry` into the fit file at `path` (default `FITS_FILE`) as profile `profile`'s, replacing any earlier
    one and keeping the other profiles'. Returns the path."""
    path = Path(path or FITS_FILE)
    fits = read_json(path) if path.is_file() else {"profiles": {}}
    fits["profiles"][profile] = entry
    return write_json(path, fits)


def profile_fits(profile: str, path: str | os.PathLike | None = None) -> dict | None:
    """Profile `profile`'s entry of the fit file at `path` (default `FITS_FILE`), None if it has none (or there is
    no file)."""
    path = Path(path or FITS_FILE)
    return read_json(path).get("profiles", {}).get(profile) if path.is_file() else None


def thread_slowdown(fitted_threads: int, threads: int) -> float:
    """How many times longer a run takes on `threads` TensorFlow threads than on the `fitted_threads` its fits were
    measured with (`THREAD_EXPONENT`): what a teacher in one of `--jobs N` workers is priced at.

    Example:
        >>> round(thread_slowdown(2, 1), 2)  # one thread of two
        1.35
    """
    return (fitted_threads / threads) ** THREAD_EXPONENT


def _at(fit: dict, driver: float) -> float:
    """A fit's seconds at `driver`; a negative fitted constant cannot make a cost negative."""
    return max(fit["c0"] + fit["c1"] * driver, 0.0)


def teacher_seconds(fits: dict, name: str, cfg, traj, shape: Shape) -> float | None:
    """One teacher trained to its epoch cap as `train_teacher` trains it, or None without its fits.

    Args:
        fits: a profile's entry of the fit file.
        name: the teacher.
        cfg: its TeacherConfig: epochs, eval_every, eval_users and the drivers' factors.
        traj: the TrajectoryConfig (a sampled run ranks every user at its checkpoints).
        shape: the data's.

    Returns:
        Seconds of every epoch, an evaluation every `eval_every` epochs and after the last (of every user, or of
        the `eval_users` sample), every user ranked at each checkpoint when sampled, and the test evaluation.
    """
    fit = fits.get("teachers", {}).get(name)
    if fit is None:
        return None
    work = TEACHER_WORK[name]
    full = _at(fit["evaluate"], work.evaluate(cfg, shape, shape.users))
    sampled = 0 < cfg.eval_users < shape.valid_users
    evaluation = _at(fit["evaluate"], work.evaluate(cfg, shape, cfg.eval_users)) if sampled else full
    final = (traj.n_checkpoints if sampled else 0) + 1
    return (
        cfg.epochs * _at(fit["epoch"], work.epoch(cfg, shape))
        + math.ceil(cfg.epochs / cfg.eval_every) * evaluation
        + final * full
    )


def student_seconds(fits: dict, cfg, shape: Shape) -> float:
    """One distillation (DistillConfig `cfg`) trained to its epoch cap: its epochs of fitted steps, and each valid
    evaluation (after epoch 0, every `eval_every` and the last) and DKC update (every `dkc_period` from
    `dkc_start`) priced as one DKC update: both score every user against every item."""
    student, at = fits["student"], drivers(shape)
    step = _at(student["step_seconds"], at[student["step_seconds"]["driver"]])
    scoring = _at(student["dkc_update_seconds"], at[student["dkc_update_seconds"]["driver"]])
    evaluations = math.ceil(cfg.epochs / cfg.eval_every) + 1
    updates = len(range(-(-cfg.dkc_start // cfg.dkc_period) * cfg.dkc_period, cfg.epochs, cfg.dkc_period))
    return cfg.epochs * steps_per_epoch(shape, cfg) * step + (evaluations + updates) * scoring


def _runs(count: int, what: str) -> str:
    return f"{count} {what} run{'s' if count != 1 else ''}"


@dataclass(frozen=True)
class Estimate:
    """A run's priced parts and where their fits were measured."""

    teachers: tuple[tuple[str, float], ...]  # (teacher, seconds) per teacher run
    student: float  # seconds of one student run
    student_runs: int
    cpu: str
    threads: int

    @property
    def seconds(self) -> float:
        return sum(seconds for _, seconds in self.teachers) + self.student_runs * self.student

    def wall_seconds(self, jobs: int) -> float:
        """The run's wall time with `jobs` runs at a time, each on its share of the cores (`thread_slowdown`), the
        teachers longest first and the students after them (`schedule.remaining_seconds`)."""
        if jobs <= 1:
            return self.seconds
        teachers = [f"teacher {i}" for i in range(len(self.teachers))]
        students = [f"student {i}" for i in range(self.student_runs)]
        upstream = {node: [] for node in teachers} | {node: teachers for node in students}
        seconds = dict(zip(teachers, (s for _, s in self.teachers))) | dict.fromkeys(students, self.student)
        slowdown = thread_slowdown(self.threads, threads_per_worker(jobs))
        return remaining_seconds(upstream, seconds, jobs, slowdown)

    def describe(self, jobs: int = 1) -> str:
        """The one line the commands print before training, for `jobs` runs at a time."""
        parts = []
        if self.teachers:
            parts.append(f"{_runs(len(self.teachers), 'teacher')} {duration(sum(s for _, s in self.teachers))}")
        if self.student_runs:
            parts.append(f"{_runs(self.student_runs, 'student')} {duration(self.student_runs * self.student)}")
        wall = f"~{duration(self.wall_seconds(jobs))}" + (f" with {jobs} at a time" if jobs > 1 else "")
        return (
            f"estimate: {wall} ({', '.join(parts)}{' of work' if jobs > 1 else ''}; upper bound at the epoch "
            f"caps; early stopping usually ends sooner; fitted on CPU {self.cpu} with {self.threads} threads)"
        )


def estimate_run(
    profile, shape: Shape, teachers: Sequence[str], student_runs: int = 0, path: str | os.PathLike | None = None
) -> Estimate | str:
    """Prices a run from the fit file at `path`.

    Args:
        profile: the run's Profile (its name picks the fits; its configs give the caps and schedules).
        shape: the data's.
        teachers: the teacher runs, by teacher name (a name may repeat).
        student_runs: how many distillations follow.
        path: the fit file (default `FITS_FILE`).

    Returns:
        The Estimate, or why there is none (one line).
    """
    fits, file = profile_fits(profile.name, path), Path(path or FITS_FILE).name
    if fits is None:
        return (
            f"{file} holds no fits for profile {profile.name!r} (`hetcomp costmodel --profile {profile.name} "
            "--write-fits` measures them)"
        )
    priced = [
        (name, teacher_seconds(fits, name, profile.teachers[name], profile.trajectory, shape)) for name in teachers
    ]
    missing = sorted({name for name, seconds in priced if seconds is None})
    if missing:
        return f"{file} holds no fits for teacher(s) {', '.join(missing)} in profile {profile.name!r}"
    return Estimate(
        tuple(priced),
        student_seconds(fits, profile.distill, shape) if student_runs else 0.0,
        student_runs,
        fits["cpu"],
        fits["threads"],
    )


def log_estimate(
    profile,
    shape: Shape,
    teachers: Sequence[str],
    student_runs: int = 0,
    path: str | os.PathLike | None = None,
    jobs: int = 1,
) -> Estimate | None:
    """Logs `estimate_run`'s line for `jobs` runs at a time, or why there is no estimate; returns the Estimate (None
    without one, or with nothing to train)."""
    if not teachers and not student_runs:
        log("nothing to train: every teacher and run is finished")
        return None
    estimate = estimate_run(profile, shape, teachers, student_runs, path)
    if isinstance(estimate, str):
        log(f"no estimate of the run's time: {estimate}")
        return None
    log(estimate.describe(jobs))
    return estimate


def teacher_estimates(
    profile, shape: Shape, names: Sequence[str], path: str | os.PathLike | None = None
) -> dict[str, float | None]:
    """{teacher: its seconds at its epoch cap, None without fits} for the teachers' progress lines."""
    fits = profile_fits(profile.name, path) or {}
    return {name: teacher_seconds(fits, name, profile.teachers[name], profile.trajectory, shape) for name in names}
