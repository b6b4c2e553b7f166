"""The benchmark: the teachers once, then every distillation method over seeds and student sizes.

Layout of the output directory DIR:
  * the teachers' outputs (`hetcomp teachers`: dataset.npz, trajectories/, teachers.json, logs/teachers/),
    reused when teachers.json was written for the same profile and the dataset split is identical;
  * results.partial.json: every finished (method, student dim, seed) run, written after each run, and
    resume/<run>/: the state of each unfinished run after its last evaluation, so a crash or the end of a session
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
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hetcomp_tf.config import METRIC_KS, RECORD_METRIC, TEACHER_NAMES, DistillConfig, Profile, get_profile
from hetcomp_tf.data.dataset import Dataset
from hetcomp_tf.data.loading import load_dataset
from hetcomp_tf.diagnosis import diagnosis_markdown, plot_stage_curves
from hetcomp_tf.distill.ensemble import EnsembleKnowledge
from hetcomp_tf.distill.loop import DistillRun, distill
from hetcomp_tf.distill.methods import get_method
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.frontier import (check_direct, direct_config, direct_method, direct_record, direct_teacher,
                                 frontier_markdown, frontier_rows, is_direct, latency_by_form, plot_frontier)
from hetcomp_tf.teachers.training import train_teacher
from hetcomp_tf.teachers.trajectories import load_trajectories, trajectories_dir
from hetcomp_tf.teachers.workflow import load_target_knowledge, teachers_table, train_teachers
from hetcomp_tf.util.files import atomic_file, read_json, write_json, write_text
from hetcomp_tf.util.progress import Progress, log
from hetcomp_tf.util.tables import ENSEMBLE, FITTED_ENSEMBLE, format_table, markdown_table, student_row, teacher_row
from hetcomp_tf.util.workers import run_in_workers
from hetcomp_tf.wall_clock import HEARTBEAT_SECONDS, InvocationClock

SWEEP_METHODS = ("wo_kd", "ensemble_kd", "hetcomp")  # the methods trained at every student size
ABLATIONS = ("hetcomp_no_dkc", "hetcomp_no_adt")  # diagnosis runs: `extra_seeds` seeds, not `seeds`
CURVE_METHODS = ("wo_kd", "ensemble_kd", "rrd", "dcd", "hetcomp")
PAIRED_METRICS = (RECORD_METRIC, "ndcg@50")
PARTIAL = "results.partial.json"
WALL_CLOCK = "wall.json"  # in resume/: every invocation's wall seconds (`InvocationClock`), reset with the runs
RESULTS = "results.json"
RESULTS_MD = "results.md"
STAGES = "stages.png"
CURVES = "curves.png"
FRONTIER = "frontier.png"
METRIC_COLUMNS = [f"{m}@{k}" for k in METRIC_KS for m in ("recall", "ndcg")]
STD_COLUMN = f"±{RECORD_METRIC}"


@dataclass(frozen=True)
class RunKey:
    method: str
    dim: int
    seed: int

    @property
    def name(self) -> str:
        return f"{self.method}|dim={self.dim}|seed={self.seed}"

    @property
    def label(self) -> str:
        """The run as --only-runs names it: METHOD:DIM:SEED."""
        return f"{self.method}:{self.dim}:{self.seed}"


def knowledge_sha256(out: Path) -> str:
    """A content hash of what every run learns from: the split and each teacher's trajectory arrays. Unlike a
    hash of teachers.json (which holds training seconds), it is equal for teachers retrained identically in
    another session or on another machine, so their runs can be pooled (`--import-runs`)."""
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


def code_version() -> str:
    """The git commit of the code that trained a run (`+dirty` with uncommitted changes), else the package
    version: a run's record says what produced it when records of several sessions are pooled."""
    from hetcomp_tf import __version__

    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", os.fspath(here), "describe", "--always", "--dirty=+dirty",
                                 "--abbrev=12"], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return f"hetcomp-tf {__version__}"
    return commit.stdout.strip() or f"hetcomp-tf {__version__}"


def plan_runs(methods: Sequence[str], seeds: int, default_dim: int, dims: Sequence[int],
              extra_seeds: int = 1) -> list[RunKey]:
    """The order in which a partial benchmark is most useful: every headline method at seed 0, the ablations at
    seed 0, the headline methods at the other seeds, then the sweep methods at the other dims; ablations and the
    sweep at seeds < `extra_seeds` only."""
    headline = [m for m in methods if m not in ABLATIONS]
    ablations = [m for m in methods if m in ABLATIONS]
    keys = [RunKey(m, default_dim, 0) for m in headline] + [RunKey(m, default_dim, 0) for m in ablations]
    keys += [RunKey(m, default_dim, s) for s in range(1, seeds) for m in headline]
    keys += [RunKey(m, default_dim, s) for s in range(1, min(seeds, extra_seeds)) for m in ablations]
    keys += [RunKey(m, d, s) for d in dims if d != default_dim for s in range(min(seeds, extra_seeds))
             for m in methods if m in SWEEP_METHODS]
    return keys


# ------------------------------------------------------------------------------------------------ teachers

def teachers_reusable(out: Path, data: Dataset, profile: Profile) -> str | None:
    """None when out/ holds a complete teachers run for this profile and exactly this split, else why not."""
    summary_path = out / "teachers.json"
    if not summary_path.is_file() or not trajectories_dir(out).is_dir() or not (out / "dataset.npz").is_file():
        return "no teachers run there yet"
    summary = read_json(summary_path)
    if summary.get("profile") != profile.name:
        return f"its teachers were trained with profile {summary.get('profile')!r}"
    missing = [name for name in TEACHER_NAMES if name not in summary.get("teachers", {})]
    if missing:
        return f"teachers {', '.join(missing)} are missing"
    stored = Dataset.load(out / "dataset.npz")
    same = stored.name == data.name and all(
        np.array_equal(getattr(stored, split).indptr, getattr(data, split).indptr)
        and np.array_equal(getattr(stored, split).indices, getattr(data, split).indices)
        for split in ("train", "valid", "test"))
    return None if same else "its dataset split differs from this data"


def ensure_teachers(data_spec: str, fmt: str | None, profile: Profile, out: Path, jobs: int = 1) -> bool:
    """Trains all teachers into `out` (`workflow.train_teachers`, seed 0) unless reusable; True if reused."""
    data = load_dataset(data_spec, fmt, profile.data)
    reason = teachers_reusable(out, data, profile)
    if reason is None:
        log(f"reusing the teachers in {out} (teachers.json, trajectories/)")
        return True
    log(f"training the teachers into {out}: {reason}")
    log(f"dataset {data.name}: {data.sizes()}")
    # The named profile's teachers and ensemble tau: --set tunes the students only, so teachers.json stays the
    # same (and reusable) whatever the distillation settings.
    teachers_profile = dataclasses.replace(get_profile(profile.name), data=profile.data)
    result = train_teachers(data, teachers_profile, out, jobs=jobs)
    log(f"teachers' test metrics on {data.name} ({profile.name} profile):\n{teachers_table(result)}")
    return False


# ---------------------------------------------------------------------------------------------- the runs

def run_record(key: RunKey, run: DistillRun) -> dict:
    """A run in results.json: the run without its history, which shrinks to the curves the plots need, and the
    code version that trained it."""
    summary = run.to_dict()
    history = summary.pop("history")
    return {"method": summary.pop("method"), "dim": key.dim, "seed": key.seed, **summary,
            "code": code_version(),
            "curve": [[h["epoch"], h["valid"][RECORD_METRIC]] for h in history],
            "stage_curve": [[h["epoch"], h["mean_stage"]] for h in history if h["mean_stage"]],
            "dkc_curve": [[h["epoch"], h["dkc"]] for h in history if "dkc" in h]}


def run_benchmark(data_spec: str, fmt: str | None, profile: Profile, seeds: int, methods: Sequence[str],
                  student_dims: Sequence[int], out: str | os.PathLike,
                  progress: Callable[[str, int], Progress] | None = Progress, jobs: int = 1,
                  only_seeds: Sequence[int] | None = None, import_runs: Sequence[str | os.PathLike] = (),
                  only_runs: Sequence[RunKey] | None = None, direct: Sequence[str] = (),
                  latency: str | os.PathLike | None = None, extra_seeds: int = 1) -> dict:
    """Teachers (trained or reused), then every planned run (resumed from results.partial.json when its
    fingerprint matches; `jobs` runs at a time); writes results.json, results.md and curves.png and returns the
    results.

    `only_seeds` trains only the planned runs of those seeds, `only_runs` only those runs, in their order (both
    filters apply when both are given); `import_runs` adds the finished runs of other
    benchmarks' results.partial.json (another machine's or session's), which must share this one's fingerprint
    (the same split, trajectories and distill config). Results show every finished run of the plan, so a
    benchmark can be split over machines by seed and pooled. `direct` teachers are also trained at every student
    size (frontier.py; seed 0, planned first), and the frontier table and plot are written, with the p50
    latencies of `latency` (a `hetcomp latency` JSON) when given. `extra_seeds`: the seeds (below `seeds`) of the
    ablations and of the student sizes other than the profile's (`plan_runs`)."""
    start = time.perf_counter()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise HetCompError(f"--out {out} exists and is not a directory")
    for method in methods:
        get_method(method)
    if seeds < 1 or jobs < 1 or extra_seeds < 1 or not methods or any(d < 1 for d in student_dims):
        raise HetCompError(f"benchmark: seeds ({seeds}), extra seeds ({extra_seeds}), jobs ({jobs}), methods "
                           f"({list(methods)}) and student "
                           f"dims ({list(student_dims)}) must be positive / non-empty")
    if only_seeds is not None and (not only_seeds or not all(0 <= s < seeds for s in only_seeds)):
        raise HetCompError(f"benchmark: --only-seeds {list(only_seeds)} must name seeds of 0..{seeds - 1} "
                           f"(--seeds {seeds})")
    check_direct(direct)
    latency_ms = latency_by_form(read_json(Path(latency))) if latency is not None else None
    keys = [RunKey(direct_method(t), d, 0) for d in sorted({profile.distill.student_dim, *student_dims})
            for t in direct] + plan_runs(methods, seeds, profile.distill.student_dim, student_dims, extra_seeds)
    unplanned = [key.label for key in only_runs or () if key not in keys]
    if unplanned:
        raise HetCompError(f"benchmark: --only-runs {unplanned[0]} is not a run of this plan (--methods, --seeds, "
                           f"--student-dims); planned: {','.join(key.label for key in keys)}")
    imported = [_read_partial(Path(path)) for path in import_runs]
    teachers_reused = ensure_teachers(data_spec, fmt, profile, out, jobs)
    summary = read_json(out / "teachers.json")

    fingerprint = {"profile": profile.name, "knowledge_sha256": knowledge_sha256(out),
                   "distill": {k: v for k, v in dataclasses.asdict(profile.distill).items()
                               if k not in ("method", "student_dim", "seed")}}
    done = _load_partial(out / PARTIAL, fingerprint)
    imported_names: set[str] = set()
    for path, partial in zip(import_runs, imported):
        difference = _fingerprint_difference(partial.get("fingerprint", {}), fingerprint)
        if difference:
            raise HetCompError(f"--import-runs {path}: its runs cannot be pooled with these: {difference}")
        new = {name: run for name, run in partial.get("runs", {}).items() if name not in done}
        done.update(new)
        imported_names.update(new)
        log(f"imported {len(new)} finished run(s) from {path}")
    _keep_resume_states_of(out / "resume", fingerprint)
    finished = sum(key.name in done for key in keys)
    todo = [key for key in (keys if only_runs is None else only_runs)
            if key.name not in done and (only_seeds is None or key.seed in only_seeds)]
    if finished:
        log(f"resuming: {finished} of {len(keys)} runs already finished in {out / PARTIAL}")
    if len(keys) - finished > len(todo):
        log(f"{len(keys) - finished - len(todo)} unfinished run(s) left to other invocations "
            f"(not of --only-seeds/--only-runs)")
    if imported:
        write_json(out / PARTIAL, {"fingerprint": fingerprint, "runs": done})
    bar = progress("benchmark run", len(todo)) if progress is not None and todo else None
    runner = _run_in_workers(out, profile, todo, jobs) if jobs > 1 and len(todo) > 1 else \
        _run_here(out, profile, todo, progress)
    def write_results() -> dict:
        """results.json / .md / curves.png from the runs finished so far (a partial benchmark says so)."""
        runs = [done[key.name] for key in keys if key.name in done]
        results = aggregate(runs, summary, profile, methods, student_dims)
        results["frontier"] = frontier_rows(results, latency_ms)
        invocations = clock.invocations()  # this one last
        results.update(teachers_reused=teachers_reused, jobs=jobs, runs_resumed=finished,
                       runs_imported=sum(key.name in imported_names for key in keys), runs_planned=len(keys),
                       wall_seconds=invocations[-1]["seconds"],
                       wall_seconds_total=sum(entry["seconds"] for entry in invocations), invocations=invocations)
        write_json(out / RESULTS, results)
        write_text(out / RESULTS_MD, results_markdown(results))
        title = f"{summary['dataset']['name']} ({profile.name} profile)"
        plot_curves(runs, profile.distill.student_dim, out / CURVES, title)
        plot_stage_curves(runs, out / STAGES, title)
        plot_frontier(results["frontier"], out / FRONTIER, title)
        return results

    with InvocationClock(out / "resume" / WALL_CLOCK, start) as clock:
        for index, (key, record) in enumerate(runner, 1):
            done[key.name] = record
            write_json(out / PARTIAL, {"fingerprint": fingerprint, "runs": done})
            shutil.rmtree(_resume_dir(out, key), ignore_errors=True)
            write_results()
            if bar is not None:
                bar.update(index, f"({key.name}: test {RECORD_METRIC} {record['test'][RECORD_METRIC]:.4f}, "
                                  f"{record['train_seconds']:.0f}s)")
        return write_results()


def _run_config(profile: Profile, key: RunKey):
    return dataclasses.replace(profile.distill, method=key.method, student_dim=key.dim, seed=key.seed)


def _log_dir(out: Path, key: RunKey) -> Path:
    if is_direct(key.method):
        return out / "logs" / "direct" / f"{direct_teacher(key.method)}-d{key.dim}-s{key.seed}"
    return out / "logs" / "distill" / f"{key.method}-d{key.dim}-s{key.seed}"


def _resume_dir(out: Path, key: RunKey) -> Path:
    """Where an unfinished run keeps its state (`loop.RunState`); removed once the run is in PARTIAL."""
    return out / "resume" / f"{key.method}-d{key.dim}-s{key.seed}"


def _load_inputs(out: Path, cfg: DistillConfig) -> tuple[Dataset, EnsembleKnowledge]:
    data = Dataset.load(out / "dataset.npz")
    return data, load_target_knowledge(out, cfg, data)


def _run_here(out: Path, profile: Profile, keys: Sequence[RunKey],
              progress: Callable[[str, int], Progress] | None) -> Iterator[tuple[RunKey, dict]]:
    """The runs one after another in this process, with per-epoch progress."""
    if not keys:
        return
    data, knowledge = _load_inputs(out, profile.distill)
    for key in keys:
        if is_direct(key.method):
            yield key, _train_direct(data, profile, key, _log_dir(out, key), progress)
            continue
        run = distill(data, knowledge, _run_config(profile, key), log_dir=_log_dir(out, key), progress=progress,
                      resume_dir=_resume_dir(out, key))
        yield key, run_record(key, run)


def _train_direct(data: Dataset, profile: Profile, key: RunKey, log_dir: Path,
                  progress: Callable[[str, int], Progress] | None) -> dict:
    """A direct model's record: its teacher's recipe at the run's dim, trained from scratch (not resumable: a
    stopped one starts again)."""
    teacher = direct_teacher(key.method)
    run = train_teacher(teacher, data, direct_config(profile, teacher, key.dim), profile.trajectory, seed=key.seed,
                        log_dir=log_dir, progress=progress)
    return direct_record(key.method, key.dim, key.seed, run.to_dict(), code_version())


def _run_in_workers(out: Path, profile: Profile, keys: Sequence[RunKey], jobs: int) -> Iterator[tuple[RunKey, dict]]:
    """The runs in `jobs` worker processes (each loads the inputs once), yielded as they finish."""
    tasks = [(key, _worker_direct, (profile, key, os.fspath(_log_dir(out, key)))) if is_direct(key.method) else
             (key, _worker_run, (key, _run_config(profile, key), os.fspath(_log_dir(out, key)),
                                 os.fspath(_resume_dir(out, key)))) for key in keys]
    yield from run_in_workers(tasks, jobs, "runs", setup=_worker_setup,
                              setup_args=(os.fspath(out), profile.distill))


_WORKER_INPUTS: dict = {}


def _worker_setup(out: str, cfg: DistillConfig) -> None:
    _WORKER_INPUTS["data"], _WORKER_INPUTS["knowledge"] = _load_inputs(Path(out), cfg)


def _worker_run(key: RunKey, cfg, log_dir: str, resume_dir: str) -> dict:
    run = distill(_WORKER_INPUTS["data"], _WORKER_INPUTS["knowledge"], cfg, log_dir=log_dir, progress=None,
                  resume_dir=resume_dir)
    log(f"finished {key.name}: valid {RECORD_METRIC} {run.valid[RECORD_METRIC]:.4f} after {run.epochs} epochs, "
        f"{run.train_seconds:.0f}s")
    return run_record(key, run)


def _worker_direct(profile: Profile, key: RunKey, log_dir: str) -> dict:
    record = _train_direct(_WORKER_INPUTS["data"], profile, key, Path(log_dir), None)
    log(f"finished {key.name}: valid {RECORD_METRIC} {record['valid'][RECORD_METRIC]:.4f} after "
        f"{record['epochs']} epochs ({record['ended_by']}), {record['train_seconds']:.0f}s")
    return record


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


def _load_partial(path: Path, fingerprint: dict) -> dict:
    if not path.is_file():
        return {}
    partial = read_json(path)
    if _fingerprint_difference(partial.get("fingerprint", {}), fingerprint):
        log(f"{path}: written for other teachers or another distill config; starting the runs afresh")
        return {}
    return dict(partial.get("runs", {}))


# --------------------------------------------------------------------------------------------- results

def _mean_std(values: Sequence[dict]) -> tuple[dict, dict]:
    names = list(values[0])
    stacked = np.array([[v[n] for n in names] for v in values], dtype=np.float64)
    return dict(zip(names, stacked.mean(0).tolist())), dict(zip(names, stacked.std(0).tolist()))


def aggregate(runs: list[dict], summary: dict, profile: Profile, methods: Sequence[str],
              student_dims: Sequence[int]) -> dict:
    """results.json's content: teachers and ensemble from teachers.json, students as mean/std over seeds, the
    models trained directly at students' sizes (`direct`) as they are."""
    direct = [r for r in runs if is_direct(r["method"])]
    runs = [r for r in runs if not is_direct(r["method"])]
    entries = {teacher_row(name): {"test": t["test"], "valid": t["valid"], "params": t["params"],
                                   "train_seconds": t["train_seconds"]}
               for name, t in summary["teachers"].items()}
    entries[ENSEMBLE] = {"test": summary["ensemble"]["test"], "valid": summary["ensemble"]["valid"]}
    if "ensemble_weighted" in summary:  # the valid-fitted ensemble, the students' targets with targets="fitted"
        fitted = summary["ensemble_weighted"]
        entries[FITTED_ENSEMBLE] = {"test": fitted["test"], "valid": fitted["valid"], "tau": fitted["tau"],
                                    "teacher_weights": fitted["weights"]}
    default_dim = profile.distill.student_dim
    for method in methods:
        mine = [r for r in runs if r["method"] == method and r["dim"] == default_dim]
        if not mine:
            continue
        test, test_std = _mean_std([r["test"] for r in mine])
        valid, valid_std = _mean_std([r["valid"] for r in mine])
        entries[student_row(method)] = {
            "test": test, "test_std": test_std, "valid": valid, "valid_std": valid_std, "params": mine[0]["params"],
            "train_seconds": float(np.mean([r["train_seconds"] for r in mine])),
            "epochs": float(np.mean([r["epochs"] for r in mine])), "seeds": len(mine)}
    sweep = {}
    for dim in sorted({*student_dims}):
        per_method = {}
        for method in methods:
            mine = [r for r in runs if r["method"] == method and r["dim"] == dim]
            if mine:
                test, test_std = _mean_std([r["test"] for r in mine])
                per_method[method] = {"test": test, "test_std": test_std, "params": mine[0]["params"],
                                      "seeds": len(mine)}
        sweep[str(dim)] = per_method
    return {"dataset": summary["dataset"], "profile": profile.name, "seeds": len({r["seed"] for r in runs}),
            "student_dim": default_dim, "methods": entries,
            "ensemble_params": int(sum(t["params"] for t in summary["teachers"].values())),
            "student_dims": sweep, "paired": paired_differences(runs, default_dim), "runs": runs, "direct": direct}


def paired_differences(runs: list[dict], dim: int, method: str = "hetcomp") -> dict:
    """Per baseline: HetComp − baseline on the test metrics of the seeds both ran at `dim` (each seed's pair
    shares its initialisation seed), per seed, mean, std and the paired t-test's two-sided p-value (None below 2
    seeds)."""
    from scipy import stats

    by_key = {(r["method"], r["seed"]): r for r in runs if r["dim"] == dim}
    out = {}
    for baseline in sorted({m for m, _ in by_key} - {method}):
        seeds = sorted(s for m, s in by_key if m == baseline and (method, s) in by_key)
        if not seeds:
            continue
        entry = {"seeds": seeds}
        for metric in PAIRED_METRICS:
            ours = np.array([by_key[(method, s)]["test"][metric] for s in seeds])
            theirs = np.array([by_key[(baseline, s)]["test"][metric] for s in seeds])
            p_value = float(stats.ttest_rel(ours, theirs).pvalue) if len(seeds) > 1 else None
            entry[metric] = {"per_seed": (ours - theirs).tolist(), "mean": float(np.mean(ours - theirs)),
                             "std": float(np.std(ours - theirs)),
                             "p": None if p_value is None or not np.isfinite(p_value) else p_value}
        out[baseline] = entry
    return out


def results_table(results: dict) -> str:
    rows = {}
    for name, entry in results["methods"].items():
        row = dict(entry["test"])
        if "test_std" in entry:
            row[STD_COLUMN] = entry["test_std"][RECORD_METRIC]
        row["params"] = entry.get("params")
        row["seconds"] = entry.get("train_seconds")
        rows[name] = row
    return format_table(rows, [*METRIC_COLUMNS, STD_COLUMN, "params", "seconds"],
                        {"params": "d", "seconds": ".1f"})


def sweep_table(results: dict) -> str:
    rows = {f"{method} dim {dim}": {**values["test"], STD_COLUMN: values["test_std"][RECORD_METRIC],
                                    "params": values["params"]}
            for dim, per_method in results["student_dims"].items() for method, values in per_method.items()}
    return format_table(rows, [*METRIC_COLUMNS, STD_COLUMN, "params"], {"params": "d"})


def _mean_pm_std(entry: dict, metric: str) -> str:
    if "test_std" not in entry:
        return f"{entry['test'][metric]:.4f}"
    return f"{entry['test'][metric]:.4f} ± {entry['test_std'][metric]:.4f}"


def _paired_cell(difference: dict) -> str:
    """mean ± std (each seed's difference), e.g. +0.0028 ± 0.0019 (+0.0002, +0.0046, +0.0035)."""
    per_seed = ", ".join(f"{d:+.4f}" for d in difference["per_seed"])
    return f"{difference['mean']:+.4f} ± {difference['std']:.4f} ({per_seed})"


def _p_value(p: float | None) -> str:
    return "-" if p is None else "< 0.001" if p < 0.001 else f"{p:.3f}"


def results_markdown(results: dict) -> str:
    """results.md: the test metrics of every method (students: mean ± std over seeds) with each one's share of
    the ensemble's Recall@50, parameters, epochs and seconds, then the student-size sweep."""
    ensemble_recall = results["methods"][ENSEMBLE]["test"][RECORD_METRIC]

    def share(entry: dict) -> str:
        return f"{100 * entry['test'][RECORD_METRIC] / ensemble_recall:.1f} %"

    rows = []
    for name, entry in results["methods"].items():
        params = entry.get("params", results["ensemble_params"] if name in (ENSEMBLE, FITTED_ENSEMBLE) else None)
        rows.append([name, *(_mean_pm_std(entry, m) for m in METRIC_COLUMNS), share(entry),
                     f"{params:,}" if params else "-", f"{entry['epochs']:.0f}" if "epochs" in entry else "-",
                     f"{entry['train_seconds']:.0f}" if entry.get("train_seconds") else "-"])
    main = markdown_table(rows, ["method", *METRIC_COLUMNS, "% of ensemble R@50", "params", "epochs", "train s"])
    sweep_rows = [[dim, method, *(_mean_pm_std(values, m) for m in METRIC_COLUMNS), share(values),
                   f"{values['params']:,}"]
                  for dim, per_method in results["student_dims"].items() for method, values in per_method.items()]
    sweep = markdown_table(sweep_rows, ["dim", "method", *METRIC_COLUMNS, "% of ensemble R@50", "params"])
    paired_rows = [[f"hetcomp − {baseline}", ", ".join(map(str, entry["seeds"])),
                    *(_paired_cell(entry[m]) for m in PAIRED_METRICS), *(_p_value(entry[m]["p"]) for m in PAIRED_METRICS)]
                   for baseline, entry in results["paired"].items()]
    paired = markdown_table(paired_rows, ["pair", "seeds", *(f"Δ {m} (per seed)" for m in PAIRED_METRICS),
                                          *(f"p ({m})" for m in PAIRED_METRICS)])
    run_rows = [[r["method"], str(r["dim"]), str(r["seed"]), f"{r['test'][RECORD_METRIC]:.4f}",
                 f"{r['test']['ndcg@50']:.4f}", str(r["epochs"]), str(r["best_epoch"]),
                 "-" if r["switch_epoch"] is None else str(r["switch_epoch"]), f"{r['train_seconds']:.0f}"]
                for r in results["runs"]]
    per_run = markdown_table(run_rows, ["method", "dim", "seed", "test recall@50", "test ndcg@50", "epochs",
                                        "best epoch", "ADT switch epoch", "train s"])
    return (f"# Benchmark: {results['dataset']['name']}, {results['profile']} profile, {results['seeds']} seed(s)\n\n"
            f"Test split; students of dim {results['student_dim']}, mean ± std over seeds; epochs and train s are "
            f"per run (mean).\n\n{main}\n\n## HetComp against each method, paired by seed "
            f"(dim {results['student_dim']})\n\n{paired}\n\n## Student sizes\n\n{sweep}\n\n## Runs\n\n{per_run}\n\n"
            f"## Quality against serving cost\n\n{frontier_markdown(results['frontier'])}\n\n"
            f"{len(results['runs']) + len(results['direct'])} of {results['runs_planned']} planned runs finished. "
            f"{_wall_time(results)}\n\n"
            + diagnosis_markdown(results["runs"]))


def _wall_time(results: dict) -> str:
    """This invocation's wall time, and the total over the invocations that trained the runs on this --out."""
    text = (f"Wall time {results['wall_seconds']:.0f} s with {results['jobs']} job(s); "
            f"{results['runs_resumed']} of {len(results['runs'])} runs were finished before it")
    invocations = [f"{entry['seconds']:.0f}" for entry in results["invocations"]]
    if len(invocations) > 1:
        text += (f". Over the {len(invocations)} invocations on this --out: {results['wall_seconds_total']:.0f} s "
                 f"({' + '.join(invocations)} s; a stopped one counts until its last record, at most "
                 f"{HEARTBEAT_SECONDS:.0f} s before it stopped, and the work it lost was redone)")
    if results["runs_imported"]:
        text += f"; {results['runs_imported']} imported by --import-runs (their time is in no total here)"
    return text + "."


def plot_curves(runs: list[dict], dim: int, path: Path, title: str) -> None:
    """Valid Recall@50 against epochs for wo_kd, ensemble_kd and hetcomp at `dim`: the mean over seeds, each
    seed's curve held at its last value after it stopped (as the paper plots converged runs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for method in CURVE_METHODS:
        curves = [r["curve"] for r in runs if r["method"] == method and r["dim"] == dim]
        if not curves:
            continue
        epochs = sorted({epoch for curve in curves for epoch, _ in curve})
        held = [np.interp(epochs, *zip(*curve), right=curve[-1][1]) for curve in curves]
        axes.plot(epochs, np.mean(held, axis=0), marker="o", markersize=3, label=method)
    axes.set_xlabel("epoch")
    axes.set_ylabel(f"valid {RECORD_METRIC}")
    axes.set_title(f"Training curves, {title}")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    with atomic_file(path) as temporary:
        figure.savefig(temporary, dpi=120)
    plt.close(figure)

