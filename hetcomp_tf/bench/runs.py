"""The benchmark's runs: the (method, student dim, seed) runs it plans (`RunKey`, `plan_runs`), each trained here
or in worker processes (`train_here`, `train_in_workers`; a direct model with its teacher's recipe), and the
record a finished run leaves in results.partial.json and results.json (`run_record`).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from hetcomp_tf.bench.frontier import direct_config, direct_record, direct_teacher, is_direct
from hetcomp_tf.config import RECORD_METRIC, DistillConfig, Profile
from hetcomp_tf.data.dataset import Dataset
from hetcomp_tf.distill.ensemble import EnsembleKnowledge
from hetcomp_tf.distill.loop import DistillRun, distill
from hetcomp_tf.teachers.training import train_teacher
from hetcomp_tf.teachers.workflow import load_target_knowledge
from hetcomp_tf.util.progress import Progress, log
from hetcomp_tf.util.workers import run_in_workers

SWEEP_METHODS = ("wo_kd", "ensemble_kd", "hetcomp")  # the methods trained at every student size
ABLATIONS = ("hetcomp_no_dkc", "hetcomp_no_adt")  # diagnosis runs: `extra_seeds` seeds, not `seeds`


@dataclass(frozen=True)
class RunKey:
    """One run of a benchmark.

    Attributes:
        method: the distillation method, or a direct model's run name (`frontier.direct_method`).
        dim: the student's (or direct model's) embedding size.
        seed: the run's seed.
    """

    method: str
    dim: int
    seed: int

    @property
    def name(self) -> str:
        """The run's key in results.partial.json: "METHOD|dim=DIM|seed=SEED"."""
        return f"{self.method}|dim={self.dim}|seed={self.seed}"

    @property
    def label(self) -> str:
        """The run as --only-runs names it: METHOD:DIM:SEED."""
        return f"{self.method}:{self.dim}:{self.seed}"


def code_version() -> str:
    """The git commit of the code that trained a run (`+dirty` with uncommitted changes), else the package
    version: a run's record says what produced it when records of several invocations or machines are pooled."""
    from hetcomp_tf import __version__

    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", os.fspath(here), "describe", "--always", "--dirty=+dirty", "--abbrev=12"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return f"hetcomp-tf {__version__}"
    return commit.stdout.strip() or f"hetcomp-tf {__version__}"


def plan_runs(
    methods: Sequence[str], seeds: int, default_dim: int, dims: Sequence[int], extra_seeds: int = 1
) -> list[RunKey]:
    """The benchmark's runs, in the order in which a partial benchmark is most useful.

    Every headline method at seed 0, the ablations at seed 0, the headline methods at the other seeds, then the sweep
    methods at the other dims; ablations and the sweep at seeds < `extra_seeds` only.

    Args:
        methods: the methods (ABLATIONS among them are planned as ablations).
        seeds: seeds of the headline methods at `default_dim`.
        default_dim: the profile's student dim.
        dims: the swept student dims (SWEEP_METHODS are trained there).
        extra_seeds: seeds of the ablations and the sweep.

    Returns:
        The `RunKey`s in that order.
    """
    headline = [m for m in methods if m not in ABLATIONS]
    ablations = [m for m in methods if m in ABLATIONS]
    keys = [RunKey(m, default_dim, 0) for m in headline] + [RunKey(m, default_dim, 0) for m in ablations]
    keys += [RunKey(m, default_dim, s) for s in range(1, seeds) for m in headline]
    keys += [RunKey(m, default_dim, s) for s in range(1, min(seeds, extra_seeds)) for m in ablations]
    keys += [
        RunKey(m, d, s)
        for d in dims
        if d != default_dim
        for s in range(min(seeds, extra_seeds))
        for m in methods
        if m in SWEEP_METHODS
    ]
    return keys


def run_record(key: RunKey, run: DistillRun) -> dict:
    """A run in results.json: the run without its history, which shrinks to the curves the plots need, and the
    code version that trained it.

    Args:
        key: the run.
        run: its `DistillRun`.

    Returns:
        {"method", "dim", "seed", the run's fields (`DistillRun.to_dict`) but its history, "code", "curve"
        [[epoch, valid R@50]], "stage_curve" [[epoch, {teacher: mean stage}]], "dkc_curve" [[epoch, DKC
        statistics]]}.
    """
    summary = run.to_dict()
    history = summary.pop("history")
    return {
        "method": summary.pop("method"),
        "dim": key.dim,
        "seed": key.seed,
        **summary,
        "code": code_version(),
        "curve": [[h["epoch"], h["valid"][RECORD_METRIC]] for h in history],
        "stage_curve": [[h["epoch"], h["mean_stage"]] for h in history if h["mean_stage"]],
        "dkc_curve": [[h["epoch"], h["dkc"]] for h in history if "dkc" in h],
    }


def _run_config(profile: Profile, key: RunKey):
    return dataclasses.replace(profile.distill, method=key.method, student_dim=key.dim, seed=key.seed)


def _log_dir(out: Path, key: RunKey) -> Path:
    if is_direct(key.method):
        return out / "logs" / "direct" / f"{direct_teacher(key.method)}-d{key.dim}-s{key.seed}"
    return out / "logs" / "distill" / f"{key.method}-d{key.dim}-s{key.seed}"


def run_resume_dir(out: Path, key: RunKey) -> Path:
    """Where an unfinished run keeps its state (`loop.RunState`); removed once the run is in results.partial.json.

    Args:
        out: the benchmark's directory.
        key: the run.

    Returns:
        out/resume/METHOD-dDIM-sSEED.
    """
    return out / "resume" / f"{key.method}-d{key.dim}-s{key.seed}"


def _load_inputs(out: Path, cfg: DistillConfig) -> tuple[Dataset, EnsembleKnowledge]:
    data = Dataset.load(out / "dataset.npz")
    return data, load_target_knowledge(out, cfg, data)


def train_here(
    out: Path, profile: Profile, keys: Sequence[RunKey], progress: Callable[[str, int], Progress] | None
) -> Iterator[tuple[RunKey, dict]]:
    """The runs one after another in this process, with per-epoch progress.

    Args:
        out: the benchmark's directory (dataset.npz, the teachers' outputs).
        profile: the profile.
        keys: the runs.
        progress: progress(what, total), or None.

    Yields:
        (key, its record: `run_record`, or `frontier.direct_record` for a direct model), in order.
    """
    if not keys:
        return
    data, knowledge = _load_inputs(out, profile.distill)
    for key in keys:
        if is_direct(key.method):
            yield key, _train_direct(data, profile, key, _log_dir(out, key), progress)
            continue
        run = distill(
            data,
            knowledge,
            _run_config(profile, key),
            log_dir=_log_dir(out, key),
            progress=progress,
            resume_dir=run_resume_dir(out, key),
        )
        yield key, run_record(key, run)


def _train_direct(
    data: Dataset, profile: Profile, key: RunKey, log_dir: Path, progress: Callable[[str, int], Progress] | None
) -> dict:
    """A direct model's record: its teacher's recipe at the run's dim, trained from scratch (not resumable: a
    stopped one starts again)."""
    teacher = direct_teacher(key.method)
    run = train_teacher(
        teacher,
        data,
        direct_config(profile, teacher, key.dim),
        profile.trajectory,
        seed=key.seed,
        log_dir=log_dir,
        progress=progress,
    )
    return direct_record(key.method, key.dim, key.seed, run.to_dict(), code_version())


def train_in_workers(out: Path, profile: Profile, keys: Sequence[RunKey], jobs: int) -> Iterator[tuple[RunKey, dict]]:
    """The runs in `jobs` worker processes (each loads the inputs once).

    Args:
        out: the benchmark's directory.
        profile: the profile.
        keys: the runs.
        jobs: worker processes.

    Yields:
        (key, its record), as the runs finish.

    Raises:
        HetCompError: naming the failed runs, once all ended (`workers.run_in_workers`).
    """
    tasks = [
        (key, _worker_direct, (profile, key, os.fspath(_log_dir(out, key))))
        if is_direct(key.method)
        else (
            key,
            _worker_run,
            (key, _run_config(profile, key), os.fspath(_log_dir(out, key)), os.fspath(run_resume_dir(out, key))),
        )
        for key in keys
    ]
    yield from run_in_workers(tasks, jobs, "runs", setup=_worker_setup, setup_args=(os.fspath(out), profile.distill))


_WORKER_INPUTS: dict = {}


def _worker_setup(out: str, cfg: DistillConfig) -> None:
    _WORKER_INPUTS["data"], _WORKER_INPUTS["knowledge"] = _load_inputs(Path(out), cfg)


def _worker_run(key: RunKey, cfg, log_dir: str, resume_dir: str) -> dict:
    run = distill(
        _WORKER_INPUTS["data"], _WORKER_INPUTS["knowledge"], cfg, log_dir=log_dir, progress=None, resume_dir=resume_dir
    )
    log(
        f"finished {key.name}: valid {RECORD_METRIC} {run.valid[RECORD_METRIC]:.4f} after {run.epochs} epochs, "
        f"{run.train_seconds:.0f}s"
    )
    return run_record(key, run)


def _worker_direct(profile: Profile, key: RunKey, log_dir: str) -> dict:
    record = _train_direct(_WORKER_INPUTS["data"], profile, key, Path(log_dir), None)
    log(
        f"finished {key.name}: valid {RECORD_METRIC} {record['valid'][RECORD_METRIC]:.4f} after "
        f"{record['epochs']} epochs ({record['ended_by']}), {record['train_seconds']:.0f}s"
    )
    return record
