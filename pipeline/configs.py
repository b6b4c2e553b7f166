"""Everything one pipeline run is parameterised by: data, profile (hetcomp_tf.config), distillation method,
blessing threshold, and where things live (pipeline root, ML Metadata, serving directory, Beam)."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field

from hetcomp_tf.config import TEACHER_NAMES, DistillConfig, Profile, get_profile
from hetcomp_tf.distill import METHODS, check_config
from hetcomp_tf.errors import HetCompError

# The student must reach this share of the ensemble's test Recall@50 to be blessed (and pushed): lenient
# on `tiny` (a dim-8 student after seconds of training) but still failing a student that learnt nothing.
DEFAULT_MIN_SHARE = {"tiny": 0.5, "paper": 0.8}
BLESSING_METRIC = "recall@50"


@dataclass(frozen=True)
class PipelineConfig:
    out_dir: str  # local runs: pipeline root, metadata and serving directory live under it
    data: str = "synthetic"  # "synthetic" | "citeulike" | path to users.dat or a CSV/TSV file
    data_format: str | None = None  # None: inferred from the file name
    profile: str = "tiny"
    method: str = "hetcomp"
    distill_overrides: dict = field(default_factory=dict)  # DistillConfig fields replacing the profile's
    teachers: tuple[str, ...] = TEACHER_NAMES
    seed: int = 0
    min_share_of_ensemble: float | None = None  # None: DEFAULT_MIN_SHARE[profile]
    pipeline_name: str = "hetcomp"
    pipeline_root: str | None = None  # None: <out_dir>/pipeline_root (a gs:// URI on Kubeflow)
    serving_dir: str | None = None  # None: <out_dir>/serving; the Pusher writes <serving_dir>/<version>/
    direct_num_workers: int = 1
    direct_running_mode: str = "in_memory"
    enable_cache: bool = True

    def __post_init__(self):
        unknown = sorted(set(self.teachers) - set(TEACHER_NAMES))
        if unknown or not self.teachers:
            raise HetCompError(f"teachers must be a non-empty subset of {', '.join(TEACHER_NAMES)}; got {unknown}")
        check_config(self.distill_config())  # fails early on an unknown profile, method or setting

    def profile_config(self) -> Profile:
        return get_profile(self.profile)

    def distill_config(self) -> DistillConfig:
        base = self.profile_config().distill
        names = {f.name for f in dataclasses.fields(DistillConfig)}
        unknown = sorted(set(self.distill_overrides) - names)
        if unknown:
            raise HetCompError(f"unknown distillation setting(s): {', '.join(unknown)}")
        return dataclasses.replace(base, method=self.method, seed=self.seed, **self.distill_overrides)

    def blessing_thresholds(self) -> dict:
        share = self.min_share_of_ensemble
        return {"metric": BLESSING_METRIC,
                "min_share_of_ensemble": DEFAULT_MIN_SHARE.get(self.profile, 0.5) if share is None else share}

    def root(self) -> str:
        return self.pipeline_root or os.path.join(self.out_dir, "pipeline_root")

    def serving(self) -> str:
        return self.serving_dir or os.path.join(self.out_dir, "serving")

    def metadata_path(self) -> str:
        return os.path.join(self.out_dir, "metadata.sqlite")

    def beam_args(self) -> list[str]:
        return ["--runner=DirectRunner", f"--direct_num_workers={self.direct_num_workers}",
                f"--direct_running_mode={self.direct_running_mode}"]


def add_pipeline_arguments(parser) -> None:
    """The options `hetcomp run` and `hetcomp kubeflow` share (what is trained, on which data)."""
    from hetcomp_tf.config import PROFILES
    from hetcomp_tf.data import FORMATS

    parser.add_argument("--data", default="synthetic", help="synthetic | citeulike | path to users.dat or a CSV/TSV")
    parser.add_argument("--format", choices=FORMATS, help="data format when the file suffix does not tell")
    parser.add_argument("--profile", default="tiny", choices=sorted(PROFILES))
    parser.add_argument("--method", default="hetcomp", choices=tuple(METHODS),
                        help="distillation method: hetcomp, its ablations or a baseline")
    parser.add_argument("--teachers", default=",".join(TEACHER_NAMES), help="comma-separated subset of teachers")
    parser.add_argument("--min-share", type=float, metavar="X",
                        help="bless the student when its test Recall@50 >= X * the ensemble's "
                             f"(default per profile: {DEFAULT_MIN_SHARE})")
    parser.add_argument("--distill-set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override one DistillConfig field of the profile (JSON value), e.g. epochs=100")
    parser.add_argument("--seed", type=int, default=0)


def parse_overrides(assignments: list[str]) -> dict:
    """["epochs=100", "tau=5.0"] -> {"epochs": 100, "tau": 5.0}; a value that is not JSON stays a string."""
    overrides = {}
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        if not sep or not name:
            raise HetCompError(f"--distill-set {assignment!r}: expected FIELD=VALUE")
        try:
            overrides[name] = json.loads(value)
        except json.JSONDecodeError:
            overrides[name] = value
    return overrides


def config_from_args(args, out_dir: str, **locations) -> PipelineConfig:
    return PipelineConfig(out_dir=out_dir, data=args.data, data_format=args.format, profile=args.profile,
                          method=args.method, teachers=tuple(t.strip() for t in args.teachers.split(",") if t.strip()),
                          distill_overrides=parse_overrides(args.distill_set), min_share_of_ensemble=args.min_share,
                          seed=args.seed, **locations)
