"""Everything one pipeline run is parameterised by: data, profile (hetcomp_tf.config), distillation method,
blessing threshold, and where things live (pipeline root, ML Metadata, serving directory, Beam)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from hetcomp_tf.config import (
    DEFAULT_PROFILE,
    RECORD_METRIC,
    RUN_FIELDS,
    TEACHER_NAMES,
    DataConfig,
    DistillConfig,
    Profile,
    TeacherConfig,
    data_options,
    get_profile,
    override,
)
from hetcomp_tf.errors import HetCompError

# The student must reach this share of the ensemble's valid Recall@50 to be blessed (and pushed), valid being the
# one split every push is decided on: lenient on `tiny` (a dim-8 student after seconds of training) but still
# failing a student that learnt nothing; quickstart's student is about level with the ensemble on CiteULike.
DEFAULT_MIN_SHARE = {"tiny": 0.5, "quickstart": 0.8, "paper": 0.8}
# Against the served model (TFMA's change threshold on valid Recall@50, higher is better): a candidate at most 5 %
# below it is still blessed, since a retrain on a new snapshot moves that metric by a few percent by chance.
DEFAULT_CHANGE_RELATIVE = -0.05
METADATA_FILE = "metadata.sqlite"  # local runs' ML Metadata store, under out_dir


@dataclass(frozen=True)
class PipelineConfig:
    """One pipeline run's settings (each field's comment says what it sets); checked on construction.

    Raises:
        HetCompError: unknown or no teachers, fewer than one worker, or a bad profile, method or setting.
    """

    out_dir: str  # local runs: pipeline root, metadata and serving directory live under it
    data: str = "citeulike"  # "synthetic" | "citeulike" | path to users.dat or a CSV/TSV file
    data_format: str | None = None  # None: inferred from the file name
    min_rating: float | None = None  # None: the profile's DataConfig.min_rating
    split_protocol: str | None = None  # None: the profile's; "per_user" ingests with Beam (components/ingestion/)
    profile: str = DEFAULT_PROFILE
    method: str = "hetcomp"
    distill_set: tuple[str, ...] = ()  # --set FIELD=VALUE assignments to the profile's DistillConfig
    teachers: tuple[str, ...] = TEACHER_NAMES
    seed: int = 0
    min_share_of_ensemble: float | None = None  # None: DEFAULT_MIN_SHARE[profile]
    change_absolute: float | None = None  # TFMA change thresholds vs the served model; None = no bound
    change_relative: float | None = DEFAULT_CHANGE_RELATIVE
    pipeline_name: str = "hetcomp"
    pipeline_root: str | None = None  # None: <out_dir>/pipeline_root (a gs:// URI on Kubeflow)
    serving_dir: str | None = None  # None: <out_dir>/serving; the Pusher writes <serving_dir>/<version>/
    direct_num_workers: int = 1
    direct_running_mode: str = "in_memory"
    beam_pipeline_args: tuple[str, ...] = ()  # after the DirectRunner defaults, so e.g. --runner=... overrides them
    enable_cache: bool = True
    warm_start: bool = False  # start from the latest dataset's vocabularies and models (pipeline.py); local runs only
    # The StudentTrainer's workers: > 1 distils with distribute=multi_worker, the task run as a job of that many
    # workers whose platform sets TF_CONFIG (KFP v2 itself runs one pod per task; see README, distributed training).
    student_workers: int = 1
    teacher_workers: int = 1  # each TeacherTrainer's, likewise (TeacherConfig.distribute)
    beam_knowledge: bool = False  # the KnowledgeBuilder as a Beam pipeline writing sharded knowledge

    def __post_init__(self):
        unknown = sorted(set(self.teachers) - set(TEACHER_NAMES))
        if unknown or not self.teachers:
            raise HetCompError(f"teachers must be a non-empty subset of {', '.join(TEACHER_NAMES)}; got {unknown}")
        for role, workers in (("student", self.student_workers), ("teacher", self.teacher_workers)):
            if workers < 1:
                raise HetCompError(f"{role} workers must be >= 1, got {workers}")
        self.distill_config()  # built, hence checked: fails early on an unknown profile, method or setting

    def profile_config(self) -> Profile:
        """The named profile."""
        return get_profile(self.profile)

    def data_config(self) -> DataConfig:
        """The profile's DataConfig with this run's `min_rating` and `split_protocol` where set."""
        return data_options(self.profile_config().data, self.min_rating, self.split_protocol)

    def distill_config(self) -> DistillConfig:
        """The profile's DistillConfig with `distill_set`, the method and the seed, multi-worker when the
        StudentTrainer gets several workers."""
        base = override(self.profile_config().distill, self.distill_set, forbidden=RUN_FIELDS)
        # several workers: multi-worker unless --set chose a strategy (the StudentTrainer rejects any other)
        workers = {"distribute": "multi_worker"} if self.student_workers > 1 and base.distribute == "none" else {}
        return dataclasses.replace(base, method=self.method, seed=self.seed, **workers)

    def teacher_config(self, name: str) -> TeacherConfig:
        """The profile's config of teacher `name`, multi-worker when the TeacherTrainers get several workers."""
        base = self.profile_config().teachers[name]
        several = self.teacher_workers > 1 and base.distribute == "none"
        return dataclasses.replace(base, distribute="multi_worker") if several else base

    def blessing_thresholds(self) -> dict:
        """The RankingEvaluator's `thresholds`: {"metric", "min_share_of_ensemble", "change_absolute",
        "change_relative"}."""
        share = self.min_share_of_ensemble
        return {
            "metric": RECORD_METRIC,
            "min_share_of_ensemble": DEFAULT_MIN_SHARE.get(self.profile, 0.5) if share is None else share,
            "change_absolute": self.change_absolute,
            "change_relative": self.change_relative,
        }

    def root(self) -> str:
        """The pipeline root: `pipeline_root`, default <out_dir>/pipeline_root."""
        return self.pipeline_root or os.path.join(self.out_dir, "pipeline_root")

    def serving(self) -> str:
        """The Pusher's base directory: `serving_dir`, default <out_dir>/serving."""
        return self.serving_dir or os.path.join(self.out_dir, "serving")

    def metadata_path(self) -> str:
        """The local runs' ML Metadata store, <out_dir>/metadata.sqlite."""
        return os.path.join(self.out_dir, METADATA_FILE)

    def beam_args(self) -> list[str]:
        """TFX's `beam_pipeline_args` (every Beam step's: StatisticsGen, the per_user ingestion): the DirectRunner
        defaults, then `beam_pipeline_args` (Beam reads options in order, the last of a name wins)."""
        return [
            "--runner=DirectRunner",
            f"--direct_num_workers={self.direct_num_workers}",
            f"--direct_running_mode={self.direct_running_mode}",
            *self.beam_pipeline_args,
        ]
