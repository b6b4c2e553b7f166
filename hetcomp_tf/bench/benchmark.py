"""The benchmark: the teachers once, then every distillation method over seeds and student sizes.

Layout of the output directory DIR:
  * the teachers' outputs (`hetcomp teachers`: dataset.npz, trajectories/, teachers.json, logs/teachers/),
    reused when teachers.json was written for the same profile and the dataset split is identical;
  * results.partial.json: every finished (method, student dim, seed) run, written after each run, and
    resume/<run>/: the state of each unfinished run after its last evaluation, so a crash or a stopped invocation
    loses at most `eval_every` epochs per run in progress, and a rerun with the same teachers and DistillConfig
    resumes both; resume/wall.json: each invocation's wall seconds, so results give the total over them;
  * results.json: mean/std over seeds per method at the profile's student dim, the dim sweep, teachers,
    ensemble, wall time; results.md: the same as Markdown tables, plus the curriculum read back (`diagnosis`);
    curves.png: valid Recall@50 per evaluation (the paper's training-curve figure); stages.png: each DKC run's
    mean stage per teacher.

With `jobs` > 1 the teachers and then the runs go to that many worker processes (`util/workers.py`), each with
cores/jobs TensorFlow threads; only the parent writes the result files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hetcomp_tf.bench.diagnosis import plot_stage_curves
from hetcomp_tf.bench.frontier import check_direct, direct_method, frontier_rows, latency_by_form, plot_frontier
from hetcomp_tf.bench.results import aggregate, plot_curves, results_markdown
from hetcomp_tf.bench.runs import RunKey, plan_runs, run_resume_dir, train_here, train_in_workers
from hetcomp_tf.bench.wall_clock import InvocationClock
from hetcomp_tf.config import RECORD_METRIC, TEACHER_NAMES, DistillConfig, Profile, get_profile
from hetcomp_tf.data.dataset import Dataset
from hetcomp_tf.data.loading import load_dataset
from hetcomp_tf.distill.methods import get_method
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.teachers.trajectories import load_trajectories, trajectories_dir
from hetcomp_tf.teachers.workflow import teachers_table, train_teachers
from hetcomp_tf.util.files import read_json, write_json, write_text
from hetcomp_tf.util.progress import Progress, log

PARTIAL = "results.partial.json"
WALL_CLOCK = "wall.json"  # in resume/: every invocation's wall seconds (`InvocationClock`), reset with the runs
RESULTS = "results.json"
RESULTS_MD = "results.md"
STAGES = "stages.png"
CURVES = "curves.png"
FRONTIER = "frontier.png"


def knowledge_sha256(out: Path) -> str:
    """A content hash of what every run learns from: the split and each teacher's trajectory arrays.

    Unlike a hash of teachers.json (which holds training seconds), it is equal for teachers retrained identically by
    another invocation or on another machine, so their runs can be pooled (`--import-runs`).

    Args:
        out: the benchmark's directory (dataset.npz, trajectories/).

    Returns:
        The hex sha256.
    """
    digest = hashlib.sha256()
    data = Dataset.load(out / "dataset.npz")
    for split in ("train", "valid", "test"):
        for array in (getattr(data, split).indptr, getattr(data, split).indices):
            digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    for name, trajectory in load_trajectories(out).items():
        digest.update(name.encode())
        for array in (trajectory.rankings, trajectory.observed.indptr, trajectory.observed.indices):
            digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    return digest.hexdigest()


def teachers_reusable(out: Path, data: Dataset, profile: Profile, names: Sequence[str] = TEACHER_NAMES) -> str | None:
    """Whether out/ holds a complete teachers run of exactly these teachers, for this profile and this split.

    Args:
        out: the benchmark's directory.
        data: the split the teachers must have been trained on.
        profile: the profile they must have been trained with.
        names: the teachers the ensemble is made of (`--teachers`).

    Returns:
        None when reusable, else why not, in words.
    """
    summary_path = out / "teachers.json"
    if not summary_path.is_file() or not trajectories_dir(out).is_dir() or not (out / "dataset.npz").is_file():
        return "no teachers run there yet"
    summary = read_json(summary_path)
    if summary.get("profile") != profile.name:
        return f"its teachers were trained with profile {summary.get('profile')!r}"
    missing = [name for name in names if name not in summary.get("teachers", {})]
    if missing:
        return f"teachers {', '.join(missing)} are missing"
    others = [name for name in summary.get("teachers", {}) if name not in names]
    if others:
        return f"it also holds teachers {', '.join(others)}, which --teachers leaves out"
    configs = json.loads(json.dumps({name: dataclasses.asdict(cfg) for name, cfg in profile.teachers.items()}))
    other = sorted(name for name, cfg in summary.get("teacher_configs", configs).items() if cfg != configs.get(name))
    if other:
        return f"teachers {', '.join(other)} were trained with other settings than profile {profile.name!r}'s"
    stored = Dataset.load(out / "dataset.npz")
    same = stored.name == data.name and all(
        np.array_equal(getattr(stored, split).indptr, getattr(data, split).indptr)
        and np.array_equal(getattr(stored, split).indices, getattr(data, split).indices)
        for split in ("train", "valid", "test")
    )
    return None if same else "its dataset split differs from this data"


def ensure_teachers(
    data_spec: str, fmt: str | None, profile: Profile, out: Path, jobs: int = 1, names: Sequence[str] = TEACHER_NAMES
) -> bool:
    """Trains the teachers into `out` (`workflow.train_teachers`, seed 0) unless reusable (`teachers_reusable`); a
    teacher finished there before is kept, not trained again.

    Args:
        data_spec: `--data` ("synthetic", "citeulike" or a path).
        fmt: the data's format, or None.
        profile: the profile (its data config splits the data; the named profile's teachers are trained).
        out: the benchmark's directory.
        jobs: teachers trained at a time in worker processes.
        names: the teachers the ensemble is made of.

    Returns:
        True if the teachers were reused.
    """
    data = load_dataset(data_spec, fmt, profile.data)
    reason = teachers_reusable(out, data, profile, names)
    if reason is None:
        log(f"reusing the teachers in {out} (teachers.json, trajectories/)")
        return True
    log(f"training the teachers into {out}: {reason}")
    log(f"dataset {data.name}: {data.sizes()}")
    # The named profile's teachers and ensemble tau: --set tunes the students only, so teachers.json stays the
    # same (and reusable) whatever the distillation settings.
    teachers_profile = dataclasses.replace(get_profile(profile.name), data=profile.data)
    result = train_teachers(data, teachers_profile, out, names, jobs=jobs)
    log(f"teachers' test metrics on {data.name} ({profile.name} profile):\n{teachers_table(result)}")
    return False


@dataclass(frozen=True)
class BenchmarkPlan:
    """One benchmark invocation as its options decide it, checked before anything is trained.

    Where it writes, every run of the plan and which of them this invocation trains, the finished runs it imports and
    the latencies its frontier shows (see `from_options` for the options).

    Attributes:
        data_spec, fmt, profile, out, methods, student_dims, jobs, only_seeds, only_runs, teachers: `from_options`'
            arguments (`out` a Path).
        keys: every run of the plan, in order: the direct models, then `plan_runs`.
        imports: (--import-runs path, its results.partial.json) for each import.
        latency_ms: the p50 latencies of the frontier (`frontier.latency_by_form`), or None.
    """

    data_spec: str
    fmt: str | None
    profile: Profile
    out: Path
    methods: Sequence[str]
    student_dims: Sequence[int]
    jobs: int
    keys: list[RunKey]
    only_seeds: Sequence[int] | None
    only_runs: Sequence[RunKey] | None
    imports: list[tuple[str | os.PathLike, dict]]
    latency_ms: dict | None
    teachers: Sequence[str] = TEACHER_NAMES

    @classmethod
    def from_options(
        cls,
        data_spec: str,
        fmt: str | None,
        profile: Profile,
        seeds: int,
        methods: Sequence[str],
        student_dims: Sequence[int],
        out: str | os.PathLike,
        jobs: int = 1,
        only_seeds: Sequence[int] | None = None,
        import_runs: Sequence[str | os.PathLike] = (),
        only_runs: Sequence[RunKey] | None = None,
        direct: Sequence[str] = (),
        latency: str | os.PathLike | None = None,
        extra_seeds: int = 1,
        teachers: Sequence[str] = TEACHER_NAMES,
    ) -> BenchmarkPlan:
        """The plan of the benchmark command's options.

        Args:
            data_spec: `--data` ("synthetic", "citeulike" or a path).
            fmt: the data's format, or None.
            profile: the profile (data, teachers, distill config).
            seeds: seeds of the headline methods at the profile's student dim.
            methods: the distillation methods.
            student_dims: student sizes besides the profile's.
            out: the benchmark's directory.
            jobs: runs trained at a time in worker processes.
            only_seeds: train only the planned runs of those seeds.
            import_runs: other benchmarks' results.partial.json (another machine's or invocation's) whose finished
                runs are added; they must share this one's fingerprint (the same split, trajectories and distill
                config).
            only_runs: train only those runs, in their order (with `only_seeds`, both filters apply).
            direct: teachers also trained at every student size (frontier.py; seed 0, planned first).
            latency: a `hetcomp latency` JSON whose p50 latencies the frontier shows.
            extra_seeds: the seeds (below `seeds`) of the ablations and of the student sizes other than the
                profile's (`plan_runs`).
            teachers: the teachers whose ensemble the students distil (trained into `out` unless there).

        Returns:
            The `BenchmarkPlan`.

        Raises:
            HetCompError: a bad option, a --only-runs run outside the plan, or an unreadable --latency or
                --import-runs file.
        """
        out = Path(out)
        _check_options(out, seeds, methods, student_dims, jobs, only_seeds, direct, extra_seeds)
        latency_ms = latency_by_form(read_json(Path(latency))) if latency is not None else None
        keys = [
            RunKey(direct_method(t), d, 0) for d in sorted({profile.distill.student_dim, *student_dims}) for t in direct
        ] + plan_runs(methods, seeds, profile.distill.student_dim, student_dims, extra_seeds)
        unplanned = [key.label for key in only_runs or () if key not in keys]
        if unplanned:
            raise HetCompError(
                f"benchmark: --only-runs {unplanned[0]} is not a run of this plan (--methods, --seeds, "
                f"--student-dims); planned: {','.join(key.label for key in keys)}"
            )
        imports = [(path, _read_partial(Path(path))) for path in import_runs]
        return cls(
            data_spec,
            fmt,
            profile,
            out,
            methods,
            student_dims,
            jobs,
            keys,
            only_seeds,
            only_runs,
            imports,
            latency_ms,
            tuple(teachers),
        )


@dataclass
class FinishedRuns:
    """The finished runs a benchmark shows, by run name (`RunKey.name`): its own results.partial.json's, written
    under `fingerprint`, and the ones imported from other benchmarks.

    Attributes:
        fingerprint: what the runs were trained from (profile, knowledge hash, distill config).
        done: run name -> its record (`run_record`).
        imported: the names of the runs this invocation imported.
        resumed: the runs of the plan finished before this invocation trained any.
    """

    fingerprint: dict
    done: dict[str, dict]
    imported: set[str] = field(default_factory=set)
    resumed: int = 0

    def save(self, out: Path) -> None:
        """Writes out/results.partial.json: the fingerprint and every finished run.

        Args:
            out: the benchmark's directory.
        """
        write_json(out / PARTIAL, {"fingerprint": self.fingerprint, "runs": self.done})


def run_benchmark(plan: BenchmarkPlan, progress: Callable[[str, int], Progress] | None = Progress) -> dict:
    """Trains the teachers (or reuses them), then every planned run, and writes the results.

    Runs are resumed from results.partial.json when its fingerprint matches, `plan.jobs` at a time; results.json,
    results.md and curves.png show every finished run of the plan, so a benchmark can be split over machines by seed
    and pooled.

    Args:
        plan: the invocation, checked (`BenchmarkPlan.from_options`, whose arguments are the command's options).
        progress: progress(what, total) per run, or None.

    Returns:
        The results, as written to results.json (`write_results`).

    Raises:
        HetCompError: imports of another fingerprint, or runs that failed.
    """
    start = time.perf_counter()
    teachers_reused = ensure_teachers(plan.data_spec, plan.fmt, plan.profile, plan.out, plan.jobs, plan.teachers)
    finished = pool_finished_runs(plan)
    todo = runs_to_train(plan, finished)
    if plan.imports:
        finished.save(plan.out)
    return train_and_record(plan, finished, todo, teachers_reused, progress, start)


def _check_options(
    out: Path,
    seeds: int,
    methods: Sequence[str],
    student_dims: Sequence[int],
    jobs: int,
    only_seeds: Sequence[int] | None,
    direct: Sequence[str],
    extra_seeds: int,
) -> None:
    if out.exists() and not out.is_dir():
        raise HetCompError(f"--out {out} exists and is not a directory")
    for method in methods:
        get_method(method)
    if seeds < 1 or jobs < 1 or extra_seeds < 1 or not methods or any(d < 1 for d in student_dims):
        raise HetCompError(
            f"benchmark: seeds ({seeds}), extra seeds ({extra_seeds}), jobs ({jobs}), methods "
            f"({list(methods)}) and student "
            f"dims ({list(student_dims)}) must be positive / non-empty"
        )
    if only_seeds is not None and (not only_seeds or not all(0 <= s < seeds for s in only_seeds)):
        raise HetCompError(
            f"benchmark: --only-seeds {list(only_seeds)} must name seeds of 0..{seeds - 1} " f"(--seeds {seeds})"
        )
    check_direct(direct)


def benchmark_fingerprint(plan: BenchmarkPlan) -> dict:
    """What a run's result depends on besides its method, size and seed: the profile, the teachers' knowledge (by
    hash; the teachers must be in out/) and the distillation config."""
    return {
        "profile": plan.profile.name,
        "knowledge_sha256": knowledge_sha256(plan.out),
        "distill": {
            k: v
            for k, v in dataclasses.asdict(plan.profile.distill).items()
            if k not in ("method", "student_dim", "seed")
        },
    }


def finished_run_names(plan: BenchmarkPlan) -> set[str]:
    """The runs results.partial.json holds under this plan's fingerprint, read without changing anything (what a
    rerun's estimate leaves out); the teachers must be in out/."""
    return set(_load_partial(plan.out / PARTIAL, benchmark_fingerprint(plan), quiet=True))


def pool_finished_runs(plan: BenchmarkPlan) -> FinishedRuns:
    """The runs already finished under the fingerprint of the teachers in out/.

    They are results.partial.json's (if written under it) and the imported ones (which must match it); unfinished runs'
    states written under another fingerprint are removed.

    Args:
        plan: the benchmark's plan.

    Returns:
        The `FinishedRuns`.

    Raises:
        HetCompError: an import written under another fingerprint.
    """
    fingerprint = benchmark_fingerprint(plan)
    finished = FinishedRuns(fingerprint, _load_partial(plan.out / PARTIAL, fingerprint))
    for path, partial in plan.imports:
        difference = _fingerprint_difference(partial.get("fingerprint", {}), fingerprint)
        if difference:
            raise HetCompError(f"--import-runs {path}: its runs cannot be pooled with these: {difference}")
        new = {name: run for name, run in partial.get("runs", {}).items() if name not in finished.done}
        finished.done.update(new)
        finished.imported.update(new)
        log(f"imported {len(new)} finished run(s) from {path}")
    _keep_resume_states_of(plan.out / "resume", fingerprint)
    finished.resumed = sum(key.name in finished.done for key in plan.keys)
    return finished


def runs_to_train(plan: BenchmarkPlan, finished: FinishedRuns) -> list[RunKey]:
    """The unfinished runs this invocation trains, in order (all of the plan's, or those of --only-runs, of
    --only-seeds' seeds); says how many are finished and how many are left to other invocations.

    Args:
        plan: the benchmark's plan.
        finished: its finished runs.

    Returns:
        The `RunKey`s to train.
    """
    todo = [
        key
        for key in (plan.keys if plan.only_runs is None else plan.only_runs)
        if key.name not in finished.done and (plan.only_seeds is None or key.seed in plan.only_seeds)
    ]
    if finished.resumed:
        log(f"resuming: {finished.resumed} of {len(plan.keys)} runs already finished in {plan.out / PARTIAL}")
    if len(plan.keys) - finished.resumed > len(todo):
        log(
            f"{len(plan.keys) - finished.resumed - len(todo)} unfinished run(s) left to other invocations "
            f"(not of --only-seeds/--only-runs)"
        )
    return todo


def train_and_record(
    plan: BenchmarkPlan,
    finished: FinishedRuns,
    todo: Sequence[RunKey],
    teachers_reused: bool,
    progress: Callable[[str, int], Progress] | None,
    start: float,
) -> dict:
    """Trains `todo` (`jobs` runs at a time in worker processes, else here); after each run, records it in
    results.partial.json, drops its resume state and rewrites the results.

    Args:
        plan: the benchmark's plan.
        finished: its finished runs, updated in place.
        todo: the runs to train.
        teachers_reused: whether the teachers were reused (for the results).
        progress: progress(what, total) per run, or None.
        start: the invocation's start on time.perf_counter()'s clock.

    Returns:
        The last results written.
    """
    bar = progress("benchmark run", len(todo)) if progress is not None and todo else None
    runner = (
        train_in_workers(plan.out, plan.profile, todo, plan.jobs)
        if plan.jobs > 1 and len(todo) > 1
        else train_here(plan.out, plan.profile, todo, progress)
    )
    summary = read_json(plan.out / "teachers.json")
    with InvocationClock(plan.out / "resume" / WALL_CLOCK, start) as clock:
        for index, (key, record) in enumerate(runner, 1):
            finished.done[key.name] = record
            finished.save(plan.out)
            shutil.rmtree(run_resume_dir(plan.out, key), ignore_errors=True)
            write_results(plan, finished, summary, teachers_reused, clock)
            if bar is not None:
                bar.update(
                    index,
                    f"({key.name}: test {RECORD_METRIC} {record['test'][RECORD_METRIC]:.4f}, "
                    f"{record['train_seconds']:.0f}s)",
                )
        return write_results(plan, finished, summary, teachers_reused, clock)


def write_results(
    plan: BenchmarkPlan, finished: FinishedRuns, summary: dict, teachers_reused: bool, clock: InvocationClock
) -> dict:
    """Writes results.json, results.md and the plots from the runs finished so far (a partial benchmark says so).

    Args:
        plan: the benchmark's plan.
        finished: its finished runs.
        summary: teachers.json.
        teachers_reused: whether the teachers were reused.
        clock: this invocation's clock (wall times).

    Returns:
        The results (`results.aggregate` plus the frontier, wall times and run counts).
    """
    runs = [finished.done[key.name] for key in plan.keys if key.name in finished.done]
    results = aggregate(runs, summary, plan.profile, plan.methods, plan.student_dims)
    results["frontier"] = frontier_rows(results, plan.latency_ms)
    invocations = clock.invocations()  # this one last
    results.update(
        teachers_reused=teachers_reused,
        jobs=plan.jobs,
        runs_resumed=finished.resumed,
        runs_imported=sum(key.name in finished.imported for key in plan.keys),
        runs_planned=len(plan.keys),
        wall_seconds=invocations[-1]["seconds"],
        wall_seconds_total=sum(entry["seconds"] for entry in invocations),
        invocations=invocations,
    )
    write_json(plan.out / RESULTS, results)
    write_text(plan.out / RESULTS_MD, results_markdown(results))
    title = f"{summary['dataset']['name']} ({plan.profile.name} profile)"
    plot_curves(runs, plan.profile.distill.student_dim, plan.out / CURVES, title)
    plot_stage_curves(runs, plan.out / STAGES, title)
    plot_frontier(results["frontier"], plan.out / FRONTIER, title)
    return results


def _keep_resume_states_of(directory: Path, fingerprint: dict) -> None:
    """Unfinished runs' states are resumed only under the fingerprint they were written with; others go."""
    stamp = directory / "fingerprint.json"
    if directory.is_dir() and (not stamp.is_file() or _fingerprint_difference(read_json(stamp), fingerprint)):
        log(f"{directory}: unfinished runs of other teachers or another distill config; starting them afresh")
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_json(stamp, fingerprint)


def _read_partial(path: Path) -> dict:
    """A results.partial.json to import; a missing or malformed one is a one-line error."""
    if not path.is_file():
        raise HetCompError(f"--import-runs {path}: no such file")
    partial = read_json(path)
    if not isinstance(partial, dict) or not isinstance(partial.get("runs"), dict) or "fingerprint" not in partial:
        raise HetCompError(f"--import-runs {path}: not a benchmark's {PARTIAL} (no fingerprint and runs)")
    return partial


def _fingerprint_difference(theirs: dict, ours: dict) -> str | None:
    """None when runs under fingerprint `theirs` can be pooled with runs under `ours`, else the first difference
    in words. A DistillConfig field missing from `theirs` (added after its runs) matches when `ours` has the
    field's default, which by DistillConfig's rule is the behaviour before the field existed."""
    for key in sorted({*theirs, *ours} - {"distill"}):
        if theirs.get(key) != ours.get(key):
            return f"{key} {theirs.get(key)!r} there, {ours.get(key)!r} here"
    defaults = {f.name: f.default for f in dataclasses.fields(DistillConfig)}
    theirs_cfg, ours_cfg = theirs.get("distill", {}), ours.get("distill", {})
    for key in sorted({*theirs_cfg, *ours_cfg}):
        mine = ours_cfg.get(key, "(absent)")
        other = theirs_cfg.get(key, defaults.get(key, "(absent)"))
        if other != mine:
            return f"distill config {key}={theirs_cfg.get(key, '(absent)')!r} there, {mine!r} here"
    return None


def _load_partial(path: Path, fingerprint: dict, quiet: bool = False) -> dict:
    """The finished runs `path` holds under `fingerprint` (none when absent or of another fingerprint, which is
    logged unless `quiet`)."""
    if not path.is_file():
        return {}
    partial = read_json(path)
    if _fingerprint_difference(partial.get("fingerprint", {}), fingerprint):
        if not quiet:
            log(f"{path}: written for other teachers or another distill config; starting the runs afresh")
        return {}
    return dict(partial.get("runs", {}))
