"""Every tunable number in one place, grouped per stage, with the two profiles.

`tiny` is for CI (seconds on the synthetic data); `paper` follows the HetComp paper's setup on CiteULike
within this project's time budget. Configs are plain frozen dataclasses so they serialise to JSON
(`asdict`) for TFX execution properties and result files.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from hetcomp_tf.errors import HetCompError

TEACHER_NAMES = ("MF", "ML", "DL", "GNN", "AE", "I-AE")
METRIC_KS = (10, 20, 50)


@dataclass(frozen=True)
class DataConfig:
    """Preprocessing as in the paper: users below `min_user_interactions` dropped, 60/20/20 split."""

    min_user_interactions: int = 5
    split_ratios: tuple[float, float, float] = (0.6, 0.2, 0.2)
    seed: int = 0
    min_rating: float | None = None  # explicit ratings >= this count as interactions (CSV only)
    synthetic_users: int = 400
    synthetic_items: int = 300


@dataclass(frozen=True)
class TeacherConfig:
    """Hyper-parameters of one teacher; fields a model does not use are ignored by it."""

    dim: int = 64
    epochs: int = 100
    batch_size: int = 1024
    learning_rate: float = 1e-3
    l2: float = 1e-5
    eval_every: int = 1  # epochs between valid evaluations (each one is a trajectory candidate)
    patience: int = 10  # evaluations without a better valid Recall@50 before stopping
    n_negatives: int = 1
    layers: tuple[int, ...] = ()  # hidden sizes (DL's MLP tower, AE/I-AE encoders) or GNN depth as (n_layers,)
    dropout: float = 0.0
    margin: float = 1.0  # ML (CML) hinge margin


@dataclass(frozen=True)
class TrajectoryConfig:
    """Which checkpoints of a teacher's training are recorded and how much of each ranking is kept.

    Checkpoint t < T-1 is the first evaluation whose valid Recall@50 reaches `fractions[t]` of the best;
    the last checkpoint is the best-valid model.
    """

    n_checkpoints: int = 4
    fractions: tuple[float, ...] = (0.4, 0.7, 0.9)
    top_n: int = 100


@dataclass(frozen=True)
class DistillConfig:
    """HetComp's distillation (DKC + ADT) and the student; defaults are the paper's."""

    method: str = "hetcomp"
    student_dim: int = 64
    epochs: int = 500
    batch_size: int = 128
    learning_rate: float = 1e-3
    l2: float = 1e-5
    eval_every: int = 10
    patience: int = 5  # evaluations
    top_k: int = 100  # K: length of the unobserved target list; K/10 observed items
    tau: float = 10.0  # ensemble temperature
    dkc_period: int = 10  # p
    dkc_start: int = 10
    alpha: float = 1.05
    alpha_decay: float = 0.995
    dkc_ndcg_k: int = 50
    overall_weight: float = 0.01
    fine_weight: float = 0.005
    score_clip: float = 40.0
    jit_compile: bool = False
    mixed_precision: bool = False
    seed: int = 0


@dataclass(frozen=True)
class Profile:
    name: str
    data: DataConfig
    teachers: dict[str, TeacherConfig]
    trajectory: TrajectoryConfig
    distill: DistillConfig
    student_dims: tuple[int, ...] = field(default=())  # sizes swept by the benchmark

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _tiny() -> Profile:
    base = TeacherConfig(dim=16, epochs=12, batch_size=256, learning_rate=5e-3, eval_every=1, patience=4)
    teachers = {
        "MF": base,
        "ML": dataclasses.replace(base, margin=0.5),
        "DL": dataclasses.replace(base, layers=(16, 8)),
        "GNN": dataclasses.replace(base, layers=(2,)),
        "AE": dataclasses.replace(base, layers=(32,), dropout=0.2, learning_rate=1e-2, batch_size=64),
        "I-AE": dataclasses.replace(base, layers=(32,), dropout=0.2, learning_rate=1e-2, batch_size=64),
    }
    return Profile(
        name="tiny",
        data=DataConfig(),
        teachers=teachers,
        trajectory=TrajectoryConfig(top_n=100),
        distill=DistillConfig(student_dim=8, epochs=40, batch_size=64, eval_every=5, patience=3,
                              top_k=50, dkc_period=5, dkc_start=5, learning_rate=1e-2),
        student_dims=(4, 8),
    )


def _paper() -> Profile:
    base = TeacherConfig(dim=200, epochs=200, batch_size=2048, learning_rate=1e-3, eval_every=2, patience=8)
    teachers = {
        "MF": base,
        "ML": dataclasses.replace(base, margin=0.5),
        "DL": dataclasses.replace(base, dim=128, layers=(128, 64)),
        "GNN": dataclasses.replace(base, dim=128, layers=(2,)),
        "AE": dataclasses.replace(base, layers=(600,), dropout=0.5, batch_size=256),
        "I-AE": dataclasses.replace(base, layers=(600,), dropout=0.5, batch_size=256),
    }
    return Profile(
        name="paper",
        data=DataConfig(),
        teachers=teachers,
        trajectory=TrajectoryConfig(top_n=100),
        distill=DistillConfig(student_dim=64),
        student_dims=(32, 64, 128),
    )


PROFILES = {"tiny": _tiny, "paper": _paper}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]()
    except KeyError:
        raise HetCompError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)}") from None
