"""The teachers' ensemble ranking: HetComp's consolidation of heterogeneous rankings into one target.

Importance of item i for user u is Σ_x exp(−rank_x(u, i)/τ) over each teacher x's top-N list (rank 1-based,
items outside a list add nothing), so the ensemble needs only rankings, never the teachers' incomparable scores.
Train items are not in the unobserved lists, hence never in the unobserved ensemble; the observed (train) items
get their own ensemble order from each teacher's order of them (`ensemble_observed`). Every hot path is a
batched TF scatter over [b, n_items]; which checkpoint each teacher contributes per user is free
(`select_stages`), as DKC needs. With float32, a rank r contributes exp(−r/τ) > 0 only while r/τ < ~100.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from hetcomp_tf.config import METRIC_KS, RECORD_METRIC, TARGETS
from hetcomp_tf.data.dataset import CSR, Dataset
from hetcomp_tf.distill.candidates import CandidateEvaluator, checked_weights
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.metrics import valid_user_sample
from hetcomp_tf.util.files import read_manifest_dir, require_field, write_manifest_dir

KNOWLEDGE_FORMAT_VERSION = 1
MANIFEST = "manifest.json"


@tf.function(reduce_retracing=True)
def _importance(rankings: tf.Tensor, n_items: tf.Tensor, tau: tf.Tensor, teacher_weights: tf.Tensor) -> tf.Tensor:
    shape = tf.shape(rankings)
    n_users, length = shape[1], shape[2]
    weights = tf.exp(-tf.range(1, length + 1, dtype=tf.float32) / tau)  # [N], by 1-based rank
    weights = teacher_weights[:, None, None] * weights  # [X, 1, N]
    listed = rankings >= 0
    users = tf.broadcast_to(tf.range(n_users)[None, :, None], shape)
    indices = tf.stack([tf.boolean_mask(users, listed), tf.boolean_mask(rankings, listed)], axis=1)
    updates = tf.boolean_mask(tf.broadcast_to(weights, shape), listed)
    return tf.tensor_scatter_nd_add(tf.zeros(tf.stack([n_users, n_items]), tf.float32), indices, updates)


def importance(rankings, n_items: int, tau: float = 10.0, teacher_weights=None) -> tf.Tensor:
    """The ensemble importance Σ_x w_x exp(−rank_x(u, i)/τ) of every item for a batch of users.

    Args:
        rankings: int32 [X, b, N] each teacher's top-N items per user, best first, −1 padded.
        n_items: the catalogue's size.
        tau: the temperature τ.
        teacher_weights: float [X] w_x, non-negative, not all 0 (default: all 1, the paper's equal-weight
            ensemble).

    Returns:
        float32 [b, n_items]; 0 for items no teacher lists.

    Raises:
        HetCompError: rankings not 3-D, or bad teacher weights.
    """
    rankings = tf.convert_to_tensor(rankings, tf.int32)
    if rankings.shape.rank != 3:
        raise HetCompError(f"ensemble rankings must be [teachers, users, N], got shape {rankings.shape}")
    weights = checked_weights(teacher_weights, int(rankings.shape[0]))
    return _importance(
        rankings, tf.constant(n_items, tf.int32), tf.constant(tau, tf.float32), tf.constant(weights, tf.float32)
    )


def ensemble_topk(rankings, n_items: int, k: int, tau: float = 10.0, teacher_weights=None) -> tf.Tensor:
    """The ensemble's top-k per user.

    Args:
        rankings, n_items, tau, teacher_weights: as in `importance`.
        k: how many items per user.

    Returns:
        int32 [b, k]: the k most important items per user, best first; −1 where fewer than k items are listed.
    """
    values, items = tf.math.top_k(importance(rankings, n_items, tau, teacher_weights), k=k)
    return tf.where(values > 0.0, items, -1)


def select_stages(stacked, stages, user_ids=None) -> tf.Tensor:
    """Each (user, teacher)'s ranking at its own checkpoint.

    Args:
        stacked: int32 [X, T, n_users, N] every teacher's top-N at every checkpoint; pass a tf.Tensor when calling
            repeatedly, so the big array is not converted each time.
        stages: int32 [b, X] the checkpoint of each (user, teacher).
        user_ids: int32 [b] the users (default: all users, b = n_users).

    Returns:
        int32 [X, b, N].
    """
    stacked = tf.convert_to_tensor(stacked, tf.int32)
    stages = tf.convert_to_tensor(stages, tf.int32)
    n_teachers = tf.shape(stacked)[0]
    if user_ids is None:
        user_ids = tf.range(tf.shape(stacked)[2])
    user_ids = tf.convert_to_tensor(user_ids, tf.int32)
    teachers = tf.broadcast_to(tf.range(n_teachers)[:, None], tf.shape(tf.transpose(stages)))  # [X, b]
    users = tf.broadcast_to(user_ids[None, :], tf.shape(teachers))
    indices = tf.stack([teachers, tf.transpose(stages), users], axis=-1)  # [X, b, 3] = (x, stage, user)
    return tf.gather_nd(stacked, indices)


def ensemble_observed(
    observed: Sequence[CSR], width: int | None = None, tau: float = 10.0, teacher_weights=None
) -> np.ndarray:
    """Each user's train items in the ensemble's order: by Σ_x w_x exp(−rank_x/τ), rank_x the 1-based position
    in teacher x's observed order (ties: smaller item id first).

    Args:
        observed: one CSR per teacher, each user's train items in that teacher's order.
        width: the output's width (default: the longest row).
        tau: the temperature τ.
        teacher_weights: float [X] w_x (default all 1).

    Returns:
        int32 [n_users, width], −1 padded.

    Raises:
        HetCompError: no teachers, teachers whose observed rows differ, or bad teacher weights.
    """
    if not observed:
        raise HetCompError("ensemble_observed: no teacher observed orders given")
    weights = checked_weights(teacher_weights, len(observed))
    first = observed[0]
    lengths = first.lengths()
    user_of = np.repeat(np.arange(lengths.size), lengths)
    position = np.arange(user_of.size) - first.indptr[user_of]  # 0-based position inside the user's row
    items = importance_sum = None
    for x, csr in enumerate(observed):
        if not np.array_equal(csr.indptr, first.indptr):
            raise HetCompError(f"ensemble_observed: teacher {x}'s observed rows differ in length from teacher 0's")
        by_item = np.lexsort((csr.indices, user_of))  # entries grouped by user, items ascending
        if items is None:
            items, importance_sum = csr.indices[by_item], np.zeros(user_of.size)
        elif not np.array_equal(csr.indices[by_item], items):
            raise HetCompError(f"ensemble_observed: teacher {x}'s observed items differ from teacher 0's")
        importance_sum += weights[x] * np.exp(-(position[by_item] + 1) / tau)
    order = np.lexsort((items, -importance_sum, user_of))  # per user: importance descending, then item id
    return CSR(indptr=first.indptr, indices=items[order]).padded(width)


@dataclass(frozen=True)
class EnsembleKnowledge:
    """What distillation consumes: every teacher's trajectory and the ensemble order of observed items.

    Every consumer (DKC's stage ensembles, DCD's item side, the observed order, evaluation) reads `tau` and
    `teacher_weights`.

    Attributes:
        teachers: the teachers' names, X of them.
        rankings: int32 [X, T, n_users, N], teacher x's top-N unobserved items at checkpoint t, −1 padded.
        observed: int32 [n_users, P], train items in ensemble order, −1 padded.
        n_items: the catalogue's size.
        tau: the ensemble's temperature τ.
        teacher_weights: per-teacher weights of the ensemble's importance, in `teachers` order; None = all 1 (the
            paper's ensemble).

    Raises:
        HetCompError: (on construction) shapes that do not fit together, bad weights, or an item id >= n_items.
    """

    teachers: tuple[str, ...]
    rankings: np.ndarray
    observed: np.ndarray
    n_items: int
    tau: float = 10.0
    teacher_weights: tuple[float, ...] | None = None

    def __post_init__(self):
        x, _, n_users, _ = self.rankings.shape
        if x != len(self.teachers) or self.observed.shape[0] != n_users:
            raise HetCompError(
                f"EnsembleKnowledge: rankings {self.rankings.shape}, observed {self.observed.shape} "
                f"and {len(self.teachers)} teachers do not fit together"
            )
        if self.teacher_weights is not None:
            checked_weights(self.teacher_weights, x)
        if self.rankings.size and int(self.rankings.max()) >= self.n_items:
            raise HetCompError(f"EnsembleKnowledge: an item id {int(self.rankings.max())} >= n_items {self.n_items}")

    @property
    def n_users(self) -> int:
        """The users the rankings cover."""
        return int(self.rankings.shape[2])

    @property
    def n_checkpoints(self) -> int:
        """T, the checkpoints of each trajectory."""
        return int(self.rankings.shape[1])

    @property
    def top_n(self) -> int:
        """N, the length of each ranking."""
        return int(self.rankings.shape[3])

    @property
    def final_rankings(self) -> np.ndarray:
        """int32 [X, n_users, N]: every teacher's best-valid (last) checkpoint."""
        return self.rankings[:, -1]

    @classmethod
    def from_trajectories(
        cls,
        trajectories: Mapping | Sequence,
        tau: float = 10.0,
        observed_width: int | None = None,
        teacher_weights=None,
    ) -> EnsembleKnowledge:
        """Stacks the teachers' trajectories into one knowledge.

        Args:
            trajectories: `Trajectory`s (a dict by teacher name or a list) that share T, n_users, N and n_items.
            tau: the ensemble's temperature.
            observed_width: the width of `observed` (default: the longest row).
            teacher_weights: float [X] in the trajectories' order (None: equal weights).

        Returns:
            The `EnsembleKnowledge`, its observed order the weighted ensemble's (`ensemble_observed`).

        Raises:
            HetCompError: no trajectories, or trajectories of different shapes or catalogues.
        """
        trajs = list(trajectories.values()) if isinstance(trajectories, Mapping) else list(trajectories)
        if not trajs:
            raise HetCompError("EnsembleKnowledge: no trajectories given")
        for traj in trajs[1:]:
            if traj.rankings.shape != trajs[0].rankings.shape or traj.n_items != trajs[0].n_items:
                raise HetCompError(
                    f"trajectories of {traj.teacher} {traj.rankings.shape} and {trajs[0].teacher} "
                    f"{trajs[0].rankings.shape} differ in shape or n_items; export them with one config"
                )
        return cls(
            teachers=tuple(t.teacher for t in trajs),
            rankings=np.stack([t.rankings for t in trajs]).astype(np.int32),
            observed=ensemble_observed([t.observed for t in trajs], observed_width, tau, teacher_weights),
            n_items=int(trajs[0].n_items),
            tau=float(tau),
            teacher_weights=None if teacher_weights is None else tuple(float(w) for w in teacher_weights),
        )

    def describe(self) -> dict:
        """The ensemble a student distils, JSON-ready for run records: {"tau": τ, "teacher_weights": {teacher:
        weight}}."""
        weights = self.teacher_weights or (1.0,) * len(self.teachers)
        return {"tau": self.tau, "teacher_weights": dict(zip(self.teachers, weights))}

    def save(self, directory: str | os.PathLike) -> None:
        """Writes directory/{rankings,observed}.npy and manifest.json, atomically (`files.write_manifest_dir`).

        Args:
            directory: the knowledge's directory, replaced whole.
        """
        manifest = {
            "format_version": KNOWLEDGE_FORMAT_VERSION,
            "kind": "ensemble_knowledge",
            "teachers": list(self.teachers),
            "n_items": self.n_items,
            "tau": self.tau,
            "n_users": self.n_users,
            "n_checkpoints": self.n_checkpoints,
            "top_n": self.top_n,
            "teacher_weights": None if self.teacher_weights is None else list(self.teacher_weights),
        }
        write_manifest_dir(directory, MANIFEST, {"rankings": self.rankings, "observed": self.observed}, manifest)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> EnsembleKnowledge:
        """Reads a knowledge written by `save`.

        Args:
            directory: the knowledge's directory.

        Returns:
            The `EnsembleKnowledge`.

        Raises:
            HetCompError: a missing, corrupted or other-version file, or a manifest missing a field.
        """
        manifest, arrays = read_manifest_dir(directory, MANIFEST, KNOWLEDGE_FORMAT_VERSION)
        where = os.path.join(os.fspath(directory), MANIFEST)
        for name in ("rankings", "observed"):
            if name not in arrays:
                raise HetCompError(f"{where}: file {name}.npy is not listed")
        return cls(
            teachers=tuple(require_field(manifest, "teachers", where)),
            rankings=arrays["rankings"],
            observed=arrays["observed"],
            n_items=int(require_field(manifest, "n_items", where)),
            tau=float(require_field(manifest, "tau", where)),
            teacher_weights=optional_weights(manifest.get("teacher_weights")),
        )

    def scorer(self, teacher_weights=None):
        """The ensemble as a scorer for `metrics.evaluate`: the final checkpoints' importance.

        Args:
            teacher_weights: float [X] (default: the knowledge's own).

        Returns:
            score_fn(user_ids int32 [b]) -> float32 [b, n_items].
        """
        weights = self.teacher_weights if teacher_weights is None else teacher_weights
        return rankings_scorer(self.final_rankings, self.n_items, self.tau, weights)


def rankings_scorer(final_rankings, n_items: int, tau: float, teacher_weights=None):
    """The ensemble of final rankings as a scorer for `metrics.evaluate` (`EnsembleKnowledge.scorer`'s).

    Args:
        final_rankings: int32 [X, n_users, N], every teacher's top-N items per user, −1 padded.
        n_items, tau, teacher_weights: as in `importance`.

    Returns:
        score_fn(user_ids int32 [b]) -> float32 [b, n_items].
    """
    final = tf.constant(final_rankings)
    return lambda user_ids: importance(tf.gather(final, user_ids, axis=1), n_items, tau, teacher_weights)


def optional_weights(weights) -> tuple[float, ...] | None:
    """A manifest's teacher weights as a tuple.

    Args:
        weights: the manifest's "teacher_weights" (a list of numbers), or None.

    Returns:
        The weights, or None (equal weights) when the manifest has none.
    """
    return None if weights is None else tuple(float(w) for w in weights)


def evaluate_ensemble(
    knowledge: EnsembleKnowledge,
    data: Dataset,
    split: str = "test",
    ks=METRIC_KS,
    teacher_weights=None,
    users: np.ndarray | None = None,
) -> dict[str, float]:
    """The ensemble as a recommender (items outside every list score 0). Its top-50 is fair only when the lists
    are much longer than 50 (N >= 100), since valid/test items compete inside them with the excluded split.

    Args:
        knowledge: the teachers' knowledge.
        data: the dataset to evaluate on.
        split: "valid" or "test".
        ks: the metric cut-offs.
        teacher_weights: float [X] (default: the knowledge's own).
        users: int [n], evaluate only these users (`metrics.evaluate`); None: every user.

    Returns:
        {"recall@k", "ndcg@k" for each k}, as `metrics.evaluate`.
    """
    weights = knowledge.teacher_weights if teacher_weights is None else teacher_weights
    evaluator = CandidateEvaluator(knowledge.final_rankings, knowledge.n_items, data, split, users, ks)
    return evaluator(knowledge.tau, checked_weights(weights, len(knowledge.teachers)))


WEIGHT_GRID = (0.0, 0.5, 1.0, 2.0, 4.0)


def fit_teacher_weights(
    knowledge: EnsembleKnowledge,
    data: Dataset,
    grid=WEIGHT_GRID,
    sweeps: int = 2,
    metric: str = RECORD_METRIC,
    users: np.ndarray | None = None,
    evaluator: CandidateEvaluator | None = None,
) -> tuple[dict[str, float], dict[str, float]]:
    """Per-teacher weights for the ensemble fitted on the valid split, beyond the paper.

    The paper weighs teachers equally. Coordinate ascent from all-1 over `grid`, one teacher at a time, on the valid
    split's `metric` (a weight is only changed for a strictly better value).

    Args:
        knowledge: the teachers' knowledge (its τ is used).
        data: the dataset whose valid split decides.
        grid: the candidate weights.
        sweeps: the most passes over the teachers (fewer when a pass changes nothing).
        metric: the valid metric to maximise.
        users: int [n], the valid users scored (`metrics.valid_user_sample`); None: every one.
        evaluator: the valid split's `CandidateEvaluator` of this knowledge over `users`, when the caller has one.

    Returns:
        ({teacher: weight}, the weighted ensemble's valid metrics over `users`).
    """
    if evaluator is None:
        evaluator = CandidateEvaluator(knowledge.final_rankings, knowledge.n_items, data, "valid", users)
    weights = np.ones(len(knowledge.teachers))
    best = evaluator(knowledge.tau, weights)
    for _ in range(sweeps):
        changed = False
        for x in range(len(weights)):
            for value in grid:
                trial = weights.copy()
                trial[x] = value
                if value == weights[x] or not trial.any():
                    continue
                valid = evaluator(knowledge.tau, trial)
                if valid[metric] > best[metric]:
                    weights, best, changed = trial, valid, True
        if not changed:
            break
    return dict(zip(knowledge.teachers, weights.tolist())), best


TAU_GRID = (5.0, 10.0, 20.0, 50.0)


def fit_ensemble(
    knowledge: EnsembleKnowledge,
    data: Dataset,
    taus=TAU_GRID,
    grid=WEIGHT_GRID,
    metric: str = RECORD_METRIC,
    users: np.ndarray | None = None,
) -> tuple[float, dict[str, float], dict[str, float]]:
    """The ensemble's τ and per-teacher weights fitted on the valid split, beyond the paper.

    `fit_teacher_weights` at each τ of `taus` (and the knowledge's own), the τ whose fitted ensemble is best on valid
    `metric`. A larger τ spreads each teacher's vote deeper into its list, which Recall@50 rewards where one teacher's
    tail is better than the others'.

    Args:
        knowledge: the teachers' knowledge.
        data: the dataset whose valid split decides.
        taus: the candidate temperatures.
        grid: the candidate weights.
        metric: the valid metric to maximise.
        users: int [n], the valid users every step scores (`metrics.valid_user_sample`); None: every one.

    Returns:
        (τ, {teacher: weight}, the fitted ensemble's valid metrics over every valid user).
    """
    best, evaluator = None, CandidateEvaluator(knowledge.final_rankings, knowledge.n_items, data, "valid", users)
    for tau in sorted({*map(float, taus), knowledge.tau}):
        weights, valid = fit_teacher_weights(
            dataclasses.replace(knowledge, tau=tau), data, grid, metric=metric, users=users, evaluator=evaluator
        )
        if best is None or valid[metric] > best[2][metric]:
            best = (tau, weights, valid)
    tau, weights, valid = best
    if users is not None:
        fitted = dataclasses.replace(knowledge, tau=tau)
        valid = evaluate_ensemble(fitted, data, "valid", teacher_weights=list(weights.values()))
    return tau, weights, valid


def target_knowledge(
    trajectories: Mapping | Sequence,
    targets: str,
    tau: float,
    data: Dataset | None = None,
    fitted: Mapping | None = None,
    fit_users: int = 0,
) -> EnsembleKnowledge:
    """The ensemble a student distils (`DistillConfig.targets`).

    Args:
        trajectories: the teachers' `Trajectory`s, as `EnsembleKnowledge.from_trajectories` takes them.
        targets: "equal", the paper's equal-weight ensemble at `tau`; "fitted", the τ and teacher weights chosen on
            the valid split (`fit_ensemble`, beyond the paper).
        tau: the equal-weight ensemble's temperature.
        data: the split to fit on, when "fitted" and no `fitted` is given.
        fitted: an earlier fit, {"tau": τ, "weights": {teacher: w}} (teachers.json's "ensemble_weighted").
        fit_users: a fit here scores a sample of this many valid users (`DistillConfig.fit_users`; 0: every one).

    Returns:
        The `EnsembleKnowledge` whose τ, teacher weights and observed order are the chosen ensemble's.

    Raises:
        HetCompError: unknown `targets`; "fitted" with neither `data` nor `fitted`, or a fit without a weight for
            every teacher.

    Example:
        With the trajectories of a `hetcomp teachers` output directory (not run here: it needs trained teachers)::

            knowledge = target_knowledge(load_trajectories(teachers_dir), "fitted", 10.0, data)
            knowledge.describe()  # {"tau": ..., "teacher_weights": {"MF": ..., ...}}
    """
    if targets not in TARGETS:
        raise HetCompError(f"targets {targets!r}: choose one of {', '.join(TARGETS)}")
    equal = EnsembleKnowledge.from_trajectories(trajectories, tau=tau)
    if targets == "equal":
        return equal
    if fitted is None:
        if data is None:
            raise HetCompError("targets 'fitted': give the split to fit the ensemble on, or an earlier fit")
        fitted_tau, weights, _ = fit_ensemble(equal, data, users=valid_user_sample(data, fit_users))
    else:
        fitted_tau, weights = float(fitted["tau"]), fitted["weights"]
    missing = [name for name in equal.teachers if name not in weights]
    if missing:
        raise HetCompError(f"targets 'fitted': the fit has no weight for teacher(s) {', '.join(missing)}")
    return EnsembleKnowledge.from_trajectories(
        trajectories, tau=fitted_tau, teacher_weights=[weights[name] for name in equal.teachers]
    )
