"""Every tunable number in one place, grouped per stage, with the profiles.

`quickstart` (the default) is a first run on CiteULike in minutes; `tiny` is for CI (seconds on the synthetic
data); `paper` follows the HetComp paper's setup on CiteULike within this project's time budget; `large` is `paper`
for a million interactions. Configs are plain frozen dataclasses so they serialise to JSON (`asdict`) for TFX
execution properties and result files, and check every field when built (`__post_init__`), without TensorFlow. Each
teacher has its own config class (`TEACHER_CONFIGS`): the common training recipe (`TeacherConfig`) and only the fields
its model reads.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import typing
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from hetcomp_tf.errors import HetCompError

TEACHER_NAMES = ("MF", "ML", "DL", "GNN", "AE", "I-AE")
METRIC_KS = (10, 20, 50)
# The one metric that picks the best evaluation (early stopping, checkpoints, records) and blesses a student.
RECORD_METRIC = "recall@50"
# The choices of the configs' choice fields, as Literal types (checked when a config is built) and as tuples for
# the command line's options. The names live here so that options parse and configs validate without TensorFlow.
SplitProtocol = Literal["authors", "iterative", "per_user"]  # hetcomp_tf/data/split.py implements them
SPLIT_PROTOCOLS = typing.get_args(SplitProtocol)
# DistillConfig fields every command sets from options of their own (--method(s), --seed(s)), never with --set
RUN_FIELDS = ("method", "seed")
# The tf.distribute strategies a training can run under (DistillConfig.distribute, TeacherConfig.distribute; made by
# hetcomp_tf/util/distribute.py)
Strategy = Literal["none", "mirrored", "multi_worker"]
STRATEGIES = typing.get_args(Strategy)
# The ensemble a student distils (hetcomp_tf/distill/ensemble.py, target_knowledge)
Targets = Literal["equal", "fitted"]
TARGETS = typing.get_args(Targets)
# The teachers' optimisers (hetcomp_tf/teachers/optimizers.py): Adam as in the paper, or LazyAdam (only a batch's
# embedding rows updated: large tables)
TeacherOptimizer = Literal["adam", "lazy_adam"]
# The distillation methods (hetcomp_tf/distill/methods.py's METHODS: what each one distils with which loss)
MethodName = Literal["wo_kd", "ensemble_kd", "rrd", "dcd", "hetcomp_no_dkc", "hetcomp_no_adt", "hetcomp"]
METHOD_NAMES = typing.get_args(MethodName)


@functools.cache
def _choice_fields(cls) -> tuple[tuple[str, tuple], ...]:
    """(field, its choices) of every Literal-typed field of the config class `cls`."""
    return tuple(
        (name, typing.get_args(hint))
        for name, hint in typing.get_type_hints(cls).items()
        if typing.get_origin(hint) is Literal
    )


def _check_choices(cfg, message) -> None:
    """HetCompError(message(field, value, "a, b")) for the first choice field of `cfg` holding another value."""
    for name, choices in _choice_fields(type(cfg)):
        if getattr(cfg, name) not in choices:
            raise HetCompError(message(name, getattr(cfg, name), ", ".join(choices)))


@dataclass(frozen=True)
class DataConfig:
    """Preprocessing as in the paper: users below `min_user_interactions` dropped, 60/20/20 split.

    `split_protocol` "authors" is the HetComp authors' code (their test set): users kept once, a seeded legacy
    NumPy shuffle per user, users without valid/test items stay in training, the full catalogue; "iterative"
    drops such users and unseen items until stable (fewer users and items, every user evaluated); "per_user" is
    the authors' rules with each user's shuffle a function of (seed, user id, its items) alone and the catalogue the
    items seen in train, so it can be computed sharded: `hetcomp run` ingests it with Beam (components/ingestion.py).
    """

    min_user_interactions: int = 5
    split_ratios: tuple[float, float, float] = (0.6, 0.2, 0.2)
    split_protocol: SplitProtocol = "iterative"
    seed: int = 0
    min_rating: float | None = None  # explicit ratings >= this count as interactions (CSV only)
    synthetic_users: int = 400
    synthetic_items: int = 300

    def __post_init__(self):
        _check_choices(self, lambda name, value, choices: f"{name} {value!r}: choose one of {choices}")


def _at_least(cfg, low, *names: str) -> list[str]:
    """ "name=value must be >= low" for each field of `names` below `low`."""
    return [f"{name}={getattr(cfg, name)} must be >= {low}" for name in names if getattr(cfg, name) < low]


def _above(cfg, low, *names: str) -> list[str]:
    """ "name=value must be > low" for each field of `names` not above `low`."""
    return [f"{name}={getattr(cfg, name)} must be > {low}" for name in names if not getattr(cfg, name) > low]


def _sizes(cfg, name: str, empty: bool) -> list[str]:
    """A problem if the field `name` is not a tuple of layer sizes >= 1 (or is empty when not `empty`)."""
    sizes = getattr(cfg, name)
    if (sizes or empty) and all(size >= 1 for size in sizes):
        return []
    return [f"{name}={sizes} must be {'a' if empty else 'a non-empty'} tuple of sizes >= 1"]


def _describe(cls) -> str:
    """How messages name a config class: with its teacher when it is a teacher's."""
    teacher = getattr(cls, "teacher", None)
    return f"{cls.__name__} of teacher {teacher}" if teacher else cls.__name__


@dataclass(frozen=True)
class TeacherConfig:
    """The training recipe every teacher follows (teachers/training.py): the base of each teacher's own config
    (`TEACHER_CONFIGS`), which adds only the fields its model reads, each meaning one thing."""

    teacher: ClassVar[str | None] = None  # the teacher (TEACHER_NAMES) a subclass configures
    dim: int = 64  # the embedding size (the autoencoders': the latent code's)
    epochs: int = 100
    batch_size: int = 1024  # triples for the pairwise teachers, rows of the train matrix for the autoencoders
    learning_rate: float = 1e-3
    optimizer: TeacherOptimizer = "adam"
    l2: float = 1e-5
    eval_every: int = 1  # epochs between valid evaluations (each one is a trajectory candidate)
    patience: int = 10  # evaluations without a better valid Recall@50 before stopping
    # > 0: evaluations (early stopping, checkpoint choice) over a fixed seeded sample of this many valid users, the
    # full evaluation and trajectory ranking only at the chosen checkpoints (trajectories.SampledTrajectoryRecorder);
    # 0: every valid user at every evaluation (the paper's protocol)
    eval_users: int = 0
    # tf.distribute strategy of the teacher's training, as DistillConfig.distribute (hetcomp_tf/util/distribute.py):
    # "none", "mirrored" or "multi_worker"; each replica computes the loss of its share of a batch (models/base.py).
    distribute: Strategy = "none"

    def __post_init__(self):
        """Every field checked when the config is built, so a bad profile or JSON fails before any training."""
        label = _describe(type(self))
        _check_choices(self, lambda name, value, choices: f"{label}: {name}={value!r}: choose one of {choices}")
        problems = self._problems()
        if problems:
            raise HetCompError(f"{label}: {'; '.join(problems)}")

    def _problems(self) -> list[str]:
        """What is wrong with the fields, one phrase each; a subclass adds its own fields' to its base's."""
        return [
            *_at_least(self, 1, "dim", "epochs", "batch_size", "eval_every", "patience"),
            *_at_least(self, 0, "eval_users", "l2"),
            *_above(self, 0, "learning_rate"),
        ]


@dataclass(frozen=True)
class PairwiseConfig(TeacherConfig):
    """The teachers trained on (user, observed item, sampled unobserved items) triples (models/base.py's
    PairwiseTeacher): MF, ML, DL, GNN."""

    n_negatives: int = 1  # unobserved items sampled per observed (user, item) pair

    def _problems(self) -> list[str]:
        return [*super()._problems(), *_at_least(self, 1, "n_negatives")]


@dataclass(frozen=True)
class MFConfig(PairwiseConfig):
    """MF (BPR): the pairwise recipe, nothing of its own."""

    teacher = "MF"


@dataclass(frozen=True)
class CMLConfig(PairwiseConfig):
    """ML (CML): the pairwise recipe and the hinge's margin."""

    teacher = "ML"
    margin: float = 1.0  # on squared distances: a negative within margin + d(user, positive) is a violation

    def _problems(self) -> list[str]:
        return [*super()._problems(), *_above(self, 0, "margin")]


@dataclass(frozen=True)
class NeuMFConfig(PairwiseConfig):
    """DL (NeuMF): the pairwise recipe and the MLP tower."""

    teacher = "DL"
    mlp_layers: tuple[int, ...] = (64, 32)  # hidden sizes of the MLP tower, input side first

    def _problems(self) -> list[str]:
        return [*super()._problems(), *_sizes(self, "mlp_layers", empty=False)]


@dataclass(frozen=True)
class LightGCNConfig(PairwiseConfig):
    """GNN (LightGCN): the pairwise recipe and the propagation depth."""

    teacher = "GNN"
    n_layers: int = 2  # propagation steps over the normalised user-item graph

    def _problems(self) -> list[str]:
        return [*super()._problems(), *_at_least(self, 1, "n_layers")]


@dataclass(frozen=True)
class AutoencoderConfig(TeacherConfig):
    """The autoencoders (AE, I-AE): a dense encoder of a train-matrix row down to `dim`, mirrored by the decoder."""

    hidden: tuple[int, ...] = ()  # the encoder's hidden sizes before the code (the decoder's in reverse); () = none
    dropout: float = 0.0  # on the input row's entries while training

    def _problems(self) -> list[str]:
        bad_dropout = [f"dropout={self.dropout} must be in [0, 1)"] if not 0 <= self.dropout < 1 else []
        return [*super()._problems(), *_sizes(self, "hidden", empty=True), *bad_dropout]


@dataclass(frozen=True)
class VAEConfig(AutoencoderConfig):
    """AE (Mult-VAE): the autoencoder and its KL weight's schedule."""

    teacher = "AE"
    kl_cap: float = 0.2  # the final KL weight β ...
    kl_anneal_epochs: int = 20  # ... reached linearly after this many epochs (0: from the start)

    def _problems(self) -> list[str]:
        return [*super()._problems(), *_at_least(self, 0, "kl_cap", "kl_anneal_epochs")]


@dataclass(frozen=True)
class ItemAEConfig(AutoencoderConfig):
    """I-AE (item-based autoencoder): the autoencoder and the weight of observed entries."""

    teacher = "I-AE"
    positive_weight: float = 1.0  # weight of the observed entries in the reconstruction loss

    def _problems(self) -> list[str]:
        return [*super()._problems(), *_above(self, 0, "positive_weight")]


# Each teacher's config class, by teacher name
TEACHER_CONFIGS: dict[str, type[TeacherConfig]] = {
    cls.teacher: cls for cls in (MFConfig, CMLConfig, NeuMFConfig, LightGCNConfig, VAEConfig, ItemAEConfig)
}
assert tuple(TEACHER_CONFIGS) == TEACHER_NAMES


def teacher_config_class(name: str) -> type[TeacherConfig]:
    """The config class of teacher `name`.

    Args:
        name: one of TEACHER_NAMES.

    Returns:
        Its class in TEACHER_CONFIGS; an unknown name is a HetCompError.
    """
    try:
        return TEACHER_CONFIGS[name]
    except KeyError:
        raise HetCompError(f"unknown teacher {name!r}: choose one of {', '.join(TEACHER_CONFIGS)}") from None


def check_teacher_config(name: str, cfg: TeacherConfig) -> None:
    """HetCompError unless `cfg` is an instance of teacher `name`'s config class (a profile's, a model's)."""
    expected = teacher_config_class(name)
    if not isinstance(cfg, expected):
        raise HetCompError(f"teacher {name} takes a {expected.__name__}, got a {type(cfg).__name__}")


@dataclass(frozen=True)
class TrajectoryConfig:
    """Which checkpoints of a teacher's training are recorded and how much of each ranking is kept.

    Checkpoint t < T-1 is the first evaluation whose valid Recall@50 reaches `fractions[t]` of the best
    (if not strictly earlier than checkpoint t+1: the best evaluation before it; see trajectories.py);
    the last checkpoint is the best-valid model.
    """

    n_checkpoints: int = 4
    fractions: tuple[float, ...] = (0.4, 0.7, 0.9)
    top_n: int = 100


@dataclass(frozen=True)
class DistillConfig:
    """HetComp's distillation (DKC + ADT) and the student; defaults are the paper's. A field added later must
    default to the behaviour before it: benchmark records written without it are then pooled with new runs
    (`benchmark._fingerprint_difference`)."""

    method: MethodName = "hetcomp"
    student_dim: int = 64
    epochs: int = 500
    # "interactions": an epoch is one pass over the train interactions in shuffled batches of `batch_size`, a step
    # distils the batch's unique users (the HetComp authors' DataLoader: active users get more steps); "users": one
    # pass over the users in batches of `batch_size` users.
    batching: Literal["interactions", "users"] = "users"
    batch_size: int = 128
    learning_rate: float = 1e-3
    init_std: float = 0.1  # the student's N(0, init_std) initialisation
    l2: float = 1e-5  # L2 in the loss on the batch's user rows and every item row
    weight_decay: float = 0.0  # Adam's coupled decay on every parameter row, every step (PyTorch Adam(weight_decay))
    adam_epsilon: float = 1e-7  # Keras' default; PyTorch's is 1e-8
    eval_every: int = 10
    patience: int = 5  # evaluations
    patience_from: Literal["start", "final"] = (
        "final"  # count stale evaluations from the "start", or once the targets are "final"
    )
    top_k: int = 100  # K: length of the unobserved target list; K/10 observed items
    tau: float = 10.0  # the equal-weight ensemble's temperature
    # The ensemble the student distils (TARGETS): "equal", the paper's equal-weight ensemble at `tau`; "fitted", τ
    # and teacher weights chosen on valid (ensemble.fit_ensemble, beyond the paper), read by every target: DKC's
    # stage ensembles, the observed order, DCD's item side.
    targets: Targets = "equal"
    # "fitted": the weights' coordinate ascent scores a fixed seeded sample of this many valid users (0: every one),
    # each of its ~250 steps a ranking of their candidates (distill/candidates.py); the fitted ensemble's reported
    # metrics are over every user. A shortcut no profile takes since the fit ranks candidates, not the catalogue.
    fit_users: int = 0
    dkc_period: int = 10  # p
    dkc_start: int = 10
    alpha: float = 1.05
    alpha_decay: float = 0.995
    dkc_ndcg_k: int = 50
    dkc_distance: Literal["paper", "authors"] = (
        "paper"  # D's NDCG: "paper" (teacher-position relevance) or "authors" (dkc.py)
    )
    overall_weight: float = 0.01
    fine_weight: float = 0.005  # also RRD's and DCD's
    # DCD (dcd.py): the student's ranks are refreshed every dcd_period epochs (DCD's code: 3); one corrected list
    # weighs like one distilled list on the user side and on the item side.
    dcd_period: int = 3
    dcd_ucd_weight: float = 1.0
    # UCD's sets (losses.CorrectionLoss): None = the whole sets, each entry weight 1 (the behaviour before this
    # field); a float ε > 0 = the whole sets as DCD's expected draw, each entry weighted by tanh(ε·|d|).
    dcd_ucd_epsilon: float | None = None
    dcd_icd_weight: float = 1.0
    # How a batch's per-user distillation losses combine: "sum" as in the HetComp authors' code, or "mean". With
    # Adam this only moves the KD gradient against the L2 term (a mean divides it by the batch size); measured on
    # CiteULike (docs/RESULTS.md), "mean" let L2 hold the distilled students back. wo_kd's BPR is always a mean
    # over its pairs: summed, L2 no longer regularises it and it overfits (measured, valid R@50 0.14 vs 0.25).
    loss_reduction: Literal["sum", "mean"] = "sum"
    score_clip: float = 40.0
    # How a KD step sums over all items (hetcomp_tf/distill/fused.py): "fused" (a C++ kernel built on first use; the
    # step is then not XLA-compiled), "dense" (the [b, n_items] score matrix, XLA-compiled with jit_compile), "auto"
    # (fused up to student dim 16 where it builds and no GPU is visible, else dense; the choice is logged).
    rest_kernel: Literal["auto", "fused", "dense"] = "auto"
    jit_compile: bool = False
    mixed_precision: bool = False
    # tf.distribute strategy of the student's training (hetcomp_tf/util/distribute.py): "none" (one device), "mirrored"
    # (this host's GPUs), "multi_worker" (the workers TF_CONFIG lists); each replica trains on its share of a batch.
    distribute: Strategy = "none"
    seed: int = 0

    def __post_init__(self):
        """Every field checked when the config is built, so a bad --set or profile fails before any training."""
        if self.method not in METHOD_NAMES:
            raise HetCompError(f"unknown distillation method {self.method!r}: choose one of {', '.join(METHOD_NAMES)}")
        _check_choices(self, lambda name, value, choices: f"distill config: {name}={value!r} must be one of {choices}")
        positive = ("student_dim", "epochs", "batch_size", "eval_every", "patience", "dkc_period", "dcd_period")
        bad = [f"{name}={getattr(self, name)}" for name in positive if getattr(self, name) < 1]
        bad += [f"{name}={getattr(self, name)}" for name in ("learning_rate", "init_std") if getattr(self, name) <= 0]
        if bad:
            raise HetCompError(f"distill config: {', '.join(bad)} must be > 0")
        if self.weight_decay < 0 or self.l2 < 0 or self.fit_users < 0:
            raise HetCompError(
                f"distill config: l2={self.l2}, weight_decay={self.weight_decay} and fit_users={self.fit_users} "
                "must be >= 0"
            )
        if self.dcd_ucd_epsilon is not None and not self.dcd_ucd_epsilon > 0:
            raise HetCompError(
                f"distill config: dcd_ucd_epsilon={self.dcd_ucd_epsilon} must be > 0, or None " "(whole sets)"
            )


@dataclass(frozen=True)
class Profile:
    name: str
    data: DataConfig
    teachers: dict[str, TeacherConfig]
    trajectory: TrajectoryConfig
    distill: DistillConfig
    student_dims: tuple[int, ...] = field(default=())  # sizes swept by the benchmark

    def __post_init__(self):
        """A teacher given another teacher's config class fails here, before any training."""
        for name, cfg in self.teachers.items():
            check_teacher_config(name, cfg)

    def to_dict(self) -> dict:
        """The profile as JSON-ready dicts (`from_dict(Profile, ...)` rebuilds it, each teacher's with its class)."""
        return dataclasses.asdict(self)


def _teacher_configs(common: dict, own: dict[str, dict]) -> dict[str, TeacherConfig]:
    """Every teacher's config (its TEACHER_CONFIGS class): the `common` values, with its `own` over them."""
    return {name: TEACHER_CONFIGS[name](**{**common, **own[name]}) for name in TEACHER_NAMES}


def _tiny() -> Profile:
    teachers = _teacher_configs(
        dict(dim=16, epochs=12, batch_size=256, learning_rate=5e-3, eval_every=1, patience=4),
        {
            "MF": {},
            "ML": dict(margin=0.5, learning_rate=2e-2),
            "DL": dict(mlp_layers=(16, 8)),
            "GNN": dict(n_layers=2),
            "AE": dict(hidden=(32,), dropout=0.2, learning_rate=1e-2, batch_size=64),
            "I-AE": dict(hidden=(32,), dropout=0.2, learning_rate=1e-2, batch_size=16, positive_weight=10.0),
        },
    )
    return Profile(
        name="tiny",
        data=DataConfig(),
        teachers=teachers,
        trajectory=TrajectoryConfig(top_n=100),
        # DKC every 2 epochs: its threshold α·0.995^⌊epoch/p⌋ drops below 1 after 10 updates (epoch 20), after
        # which every pair moves on at each update, so the stages reach T−1 and ADT switches by epoch ~26, well
        # inside 60 epochs and before patience 5 × eval_every 5 can stop a run.
        distill=DistillConfig(
            student_dim=8,
            epochs=60,
            batching="interactions",
            batch_size=512,
            eval_every=5,
            patience=5,
            top_k=50,
            dkc_period=2,
            dkc_start=2,
            learning_rate=3e-2,
        ),
        student_dims=(4, 8),
    )


def _paper() -> Profile:
    # Tuned on CiteULike valid Recall@50. Every teacher is trained to convergence: the epoch caps are far above
    # where early stopping (patience × eval_every epochs without a better valid Recall@50) ends each one
    # (teachers.json's "ended_by" says which ended how). DL's MLP is (64, 32): its full-ranking score_all costs
    # a GEMM per (user, item) pair, (128, 64) takes ~4x.
    common = dict(dim=200, epochs=300, batch_size=1024, learning_rate=5e-3, l2=1e-2, eval_every=3, patience=5)
    teachers = _teacher_configs(
        common,
        {
            "MF": {},
            "ML": dict(epochs=300, margin=0.5, n_negatives=10, l2=0.0),
            "DL": dict(dim=64, mlp_layers=(64, 32), epochs=150, eval_every=2, patience=4, n_negatives=4, l2=1e-3),
            "GNN": dict(dim=128, n_layers=2, epochs=300, l2=1e-3),
            "AE": dict(hidden=(600,), dropout=0.5, batch_size=256, learning_rate=1e-3, l2=1e-4, epochs=200),
            "I-AE": dict(
                hidden=(600,),
                dropout=0.5,
                batch_size=256,
                learning_rate=1e-3,
                l2=1e-5,
                positive_weight=10.0,
                epochs=200,
            ),
        },
    )
    return Profile(
        name="paper",
        data=DataConfig(split_protocol="authors"),
        teachers=teachers,
        trajectory=TrajectoryConfig(top_n=100),
        # The HetComp authors' student protocol (HetComp_WWW23 main.py), every row of it: an epoch is one pass over
        # the train interactions in shuffled batches of 1,024, each step distilling the batch's unique users; MF of
        # dim 6, N(0, 0.01) init, Adam lr 1e-3 with weight_decay 1e-5 on every parameter (no other L2), at most
        # 1,000 epochs, valid Recall@50 every 10 with patience 5 counted from the start, their DKC distance
        # (p = 10 from epoch 10, α = 1.05, decay 0.995), K = 100, loss weights 0.01 / 0.005 summed over the batch,
        # scores clipped to ±40. XLA is an implementation choice (same maths).
        distill=DistillConfig(
            student_dim=6,
            epochs=1000,
            batching="interactions",
            batch_size=1024,
            learning_rate=1e-3,
            init_std=0.01,
            l2=0.0,
            weight_decay=1e-5,
            eval_every=10,
            patience=5,
            patience_from="start",
            dkc_distance="authors",
            adam_epsilon=1e-8,
            jit_compile=True,
        ),
        student_dims=(6, 16),
    )


def _quickstart() -> Profile:
    # A first run on CiteULike: `make run` (the TFX pipeline, cold) within 5 minutes on 2 CPU cores, still a student
    # distilled from six trained teachers. Few epochs at higher learning rates, and teachers evaluated (trajectory
    # candidates) every few epochs: on CiteULike a full-ranking evaluation costs as much as 2-8 epochs of training.
    # Measured per teacher (docs/RESULTS.md): 13-35 s each, test Recall@50 0.09 (MF) to 0.23 (GNN).
    common = dict(dim=32, epochs=6, batch_size=1024, learning_rate=2e-2, l2=1e-3, eval_every=3, patience=2)
    teachers = _teacher_configs(
        common,
        {
            "MF": {},
            "ML": dict(margin=0.5, n_negatives=5, l2=0.0),
            "DL": dict(dim=16, mlp_layers=(8,), epochs=4, eval_every=2, learning_rate=1e-2, n_negatives=4),
            "GNN": dict(n_layers=2, batch_size=4096, l2=1e-4),
            # the autoencoders' epoch costs the same at any batch size (dense users x items): small batches, more steps
            "AE": dict(hidden=(64,), dropout=0.5, batch_size=64, learning_rate=1e-2, l2=1e-4),
            "I-AE": dict(
                hidden=(64,),
                dropout=0.5,
                batch_size=64,
                learning_rate=1e-2,
                l2=1e-5,
                positive_weight=10.0,
                epochs=4,
                eval_every=2,
            ),
        },
    )
    return Profile(
        name="quickstart",
        data=DataConfig(),
        teachers=teachers,
        trajectory=TrajectoryConfig(top_n=100),
        # DKC at every epoch: the threshold α·0.995^⌊epoch/p⌋ falls below 1 after 10 updates (epoch 10), so the
        # stages are final and ADT switches to the fine-grained loss by epoch ~14 (measured, docs/RESULTS.md). The
        # ensemble fitted on valid: its students beat the equal-weight ensemble's on valid by far (docs/RESULTS.md).
        distill=DistillConfig(
            targets="fitted",
            student_dim=32,
            epochs=16,
            batch_size=128,
            learning_rate=2e-2,
            eval_every=4,
            patience=3,
            top_k=50,
            dkc_period=1,
            dkc_start=1,
        ),
        student_dims=(8, 32),
    )


def _large() -> Profile:
    # One's own logs of about a million interactions (Gowalla: 30 k users, 41 k items, 1 M interactions) end to end
    # on two CPU cores within hours: the paper profile's teachers, with what their cost at that size needs
    # (docs/RESULTS.md measures each): evaluations for early stopping over a fixed sample of 5,000 valid users (every
    # user ranked at the kept checkpoints only), LazyAdam (a step updates its batch's embedding rows, not whole
    # tables), LightGCN at dim 64 in batches of 8,192 at twice the learning rate (a step propagates the whole graph,
    # whatever its batch); the student in batches of 128 users (each step distils its users' whole target lists, an
    # epoch one pass over the users, not over the interactions) at lr 1e-2, chosen on CiteULike valid and priced
    # there against the authors' interaction batching (docs/RESULTS.md); targets from the ensemble fitted on valid
    # (τ and teacher weights), whose students beat the equal-weight ensemble's on CiteULike valid at every size.
    paper = _paper()
    teachers = {
        name: dataclasses.replace(cfg, eval_users=5000, optimizer="lazy_adam") for name, cfg in paper.teachers.items()
    }
    teachers["GNN"] = dataclasses.replace(
        teachers["GNN"], dim=64, batch_size=8192, learning_rate=1e-2, optimizer="adam"
    )
    for name in ("AE", "I-AE"):  # no embedding tables: dense gradients, LazyAdam would be Adam
        teachers[name] = dataclasses.replace(teachers[name], optimizer="adam")
    return Profile(
        name="large",
        data=paper.data,
        teachers=teachers,
        trajectory=paper.trajectory,
        distill=dataclasses.replace(
            paper.distill, batching="users", batch_size=128, learning_rate=1e-2, targets="fitted"
        ),
        student_dims=paper.student_dims,
    )


PROFILES = {"quickstart": _quickstart, "tiny": _tiny, "paper": _paper, "large": _large}
DEFAULT_PROFILE = "quickstart"  # every command's; `make run` on CiteULike with it is the first run a user sees


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]()
    except KeyError:
        raise HetCompError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)}") from None


def data_options(data: DataConfig, min_rating: float | None, split_protocol: str | None) -> DataConfig:
    """A profile's DataConfig with the command line's data options that were given (None: the profile's)."""
    changes = {"min_rating": min_rating, "split_protocol": split_protocol}
    return dataclasses.replace(data, **{name: value for name, value in changes.items() if value is not None})


def from_dict(cls, values: dict):
    """Inverse of `dataclasses.asdict` for these configs (JSON, e.g. a TFX execution property, turns tuples
    into lists and nested configs into dicts); an unknown field is a HetCompError.

    Args:
        cls: a config class; a teacher's (TEACHER_CONFIGS) also reads the shape older runs wrote
            (`_from_shared_shape`), and a Profile's teachers are each rebuilt with their own class.
        values: the config's fields by name; a missing one takes its default.

    Returns:
        The config, checked as when built.
    """
    if issubclass(cls, TeacherConfig):
        values = _from_shared_shape(cls, values)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise HetCompError(f"{_describe(cls)}: unknown field(s) {', '.join(unknown)} (its fields: {', '.join(names)})")
    hints = typing.get_type_hints(cls)
    return cls(**{name: _coerce(hints[name], value) for name, value in values.items()})


def _coerce(hint, value):
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value)
    origin = typing.get_origin(hint)
    if origin is tuple:
        return tuple(value)
    if origin is dict:
        value_hint = typing.get_args(hint)[1]
        if value_hint is TeacherConfig:  # keyed by teacher name: each one's own class
            return {name: from_dict(teacher_config_class(name), item) for name, item in value.items()}
        return {key: _coerce(value_hint, item) for key, item in value.items()}
    return value


# The fields of the one TeacherConfig that served every teacher before the per-teacher configs, beyond the common
# ones (its JSON held all of them for every teacher); `layers` meant DL's MLP sizes, GNN's depth as (n_layers,) or
# the autoencoders' hidden sizes.
_SHARED_SHAPE_FIELDS = ("n_negatives", "layers", "dropout", "margin", "kl_cap", "kl_anneal_epochs", "positive_weight")
_LAYERS_MEANT = {"DL": "mlp_layers", "GNN": "n_layers", "AE": "hidden", "I-AE": "hidden"}


def _from_shared_shape(cls, values: dict) -> dict:
    """Teacher config `values` in the shape of `cls`: as they are, unless they have the shared TeacherConfig's
    shape (older runs' teachers.json fingerprints, teacher.json, execution properties; recognised by `layers`,
    which no per-teacher config has). Then `layers` is renamed to what it meant for this teacher and the shared
    fields this teacher's model never read are dropped (they had no effect)."""
    if "layers" not in values:
        return values
    own = {f.name for f in dataclasses.fields(cls)}
    kept = {name: value for name, value in values.items() if name in own or name not in _SHARED_SHAPE_FIELDS}
    meant, layers = _LAYERS_MEANT.get(cls.teacher), tuple(values["layers"])
    if meant == "n_layers":
        if len(layers) != 1:
            raise HetCompError(f"{_describe(cls)}: layers={layers} of the shared TeacherConfig must be (n_layers,)")
        layers = layers[0]
    return {**kept, meant: layers} if meant else kept


_SCALARS = (int, float, str, bool)


def _settable_type(hint) -> tuple[type | None, bool]:
    """(scalar type, optional) of a field --set can assign: a scalar, or a scalar | None; (None, False) else."""
    if typing.get_origin(hint) is Literal:
        return type(typing.get_args(hint)[0]), False
    if hint in _SCALARS:
        return hint, False
    scalars = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if len(typing.get_args(hint)) == 2 and len(scalars) == 1 and scalars[0] in _SCALARS:
        return scalars[0], True
    return None, False


def override(cfg, assignments, forbidden: tuple[str, ...] = (), option: str = "--set", prefix: str = ""):
    """`cfg` with FIELD=VALUE assignments applied (the commands' --set). VALUE is read as JSON when it parses
    (5e-3, 64, true), else as a string, and must fit the field's type; only scalar fields can be set, and an
    optional one (float | None) also takes null or none. Errors quote `option` and `prefix` + the assignment."""
    hints = typing.get_type_hints(type(cfg))
    types = {name: _settable_type(hint) for name, hint in hints.items() if name not in forbidden}
    settable = [name for name, (scalar, _) in types.items() if scalar is not None]
    changes = {}
    for text in assignments:
        name, sep, raw = text.partition("=")
        shown = f"{option} {prefix + text!r}"
        if not sep or name not in settable:
            raise HetCompError(
                f"{shown}: expected FIELD=VALUE, FIELD one of {', '.join(settable)} "
                f"(the settable fields of {_describe(type(cfg))})"
            )
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        hint, optional = types[name]
        if optional and (value is None or raw.lower() == "none"):
            changes[name] = None
            continue
        if hint is float and type(value) is int:
            value = float(value)
        if type(value) is not hint:
            article = "an" if hint is int else "a"
            raise HetCompError(f"{shown}: {name} takes {article} {hint.__name__}{' or none' * optional}, got {raw!r}")
        changes[name] = value
    return dataclasses.replace(cfg, **changes)


def override_teachers(teachers: dict[str, TeacherConfig], assignments) -> dict[str, TeacherConfig]:
    """`teachers` with TEACHER.FIELD=VALUE assignments applied (`hetcomp teachers --teacher-set`; TEACHER "all" sets
    the field of every teacher), each read as `override` reads --set, every changed config checked as it is rebuilt.

    Args:
        teachers: {teacher name: its config}.
        assignments: e.g. ["MF.optimizer=lazy_adam", "all.eval_users=1000"].

    Returns:
        The configs with the assignments applied, in the order given.

    Raises:
        HetCompError: a malformed assignment, an unknown teacher or field, a value of the wrong type or range.
    """
    teachers = dict(teachers)
    for text in assignments:
        target, dot, assignment = text.partition(".")
        if not dot or (target != "all" and target not in teachers):
            raise HetCompError(
                f"--teacher-set {text!r}: expected TEACHER.FIELD=VALUE, TEACHER one of {', '.join(teachers)} or all"
            )
        for name in teachers if target == "all" else [target]:
            teachers[name] = override(teachers[name], [assignment], option="--teacher-set", prefix=f"{target}.")
    return teachers
