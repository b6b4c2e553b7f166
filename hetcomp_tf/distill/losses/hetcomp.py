"""The losses on the ensemble's targets (`Targets`): HetComp's set-wise overall loss and fine-grained losses, and
RRD's, as Keras losses of (targets, scores).

HetComp's losses hand these TF-Ranking losses compact lists of L + 1 entries: the target items' scores, then
one "rest" entry (label 0) whose logit is log Σ_{j∈R} e^{s_j}. Every formula above only sees the rest through
that sum, so the value and the gradient (through the logsumexp, to every item of R) are those of the full
[b, n_items] list, while the per-step work over all items is one masked logsumexp per rest set: the rest of
U[:K/10] is the rest of U[:K/2] plus U[K/10:K/2], combined exactly in log space.

Reduction: each user's loss is a sum over positions (or targets); the Keras `reduction` then combines users
(default: mean over the users of the batch; `Reduction.SUM` gives the HetComp authors' per-batch sum).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import tensorflow as tf
from tensorflow_ranking.python.keras import losses as tfr_keras_losses

from hetcomp_tf.distill.fused import FactoredScores, rest_logsumexp
from hetcomp_tf.distill.losses.labels import ItemPairs, concat_pairs, item_pairs, scatter_pairs, scatter_rows
from hetcomp_tf.distill.losses.listwise import ABSENT_LOGIT, REDUCTION, PlackettLuceLoss, SetwiseLoss
from hetcomp_tf.errors import HetCompError


class Targets(NamedTuple):
    """What a batch of users is distilled towards (y_true of the losses below).

    Attributes:
        unobserved: int32 [b, K], the ensemble's top-K unobserved items, best first, −1 padded.
        observed: int32 [b, P], the user's train items in the ensemble's order (P = K/10), −1 padded.
        train_items: the users' train items, int32 [b, T] −1 padded, or `ItemPairs` (the trainer's: no row padded
            to the longest); none of them is in `unobserved`.
    """

    unobserved: tf.Tensor
    observed: tf.Tensor
    train_items: tf.Tensor | ItemPairs


class TargetLoss(tf.keras.losses.Loss):
    """A loss of (Targets, scores [b, n_items]) -> per-user [b], reduced by Keras; scores are clipped first.

    Subclasses implement `per_user`.

    Args:
        score_clip: scores are clipped to ±score_clip before the loss (None: not clipped); the fused kernel
            needs a clip.
        reduction: how Keras combines the users' losses (default: the mean over the batch).
        name: the loss's name.
    """

    def __init__(self, score_clip: float | None = 40.0, reduction=REDUCTION.AUTO, name: str | None = None):
        super().__init__(reduction=reduction, name=name)
        self.score_clip = score_clip

    def call(self, y_true: Targets, y_pred):
        """Per-user losses of the clipped scores (Keras reduces them).

        Args:
            y_true: the batch's `Targets` (or the subclass's target tuple).
            y_pred: float [b, n_items] scores, or `FactoredScores` (clipped where the losses form them).

        Returns:
            float32 [b].
        """
        if isinstance(y_pred, FactoredScores):  # clipped where its scores are formed (rest_and_list_scores)
            return self.per_user(y_true, y_pred)
        scores = tf.cast(y_pred, tf.float32)
        if self.score_clip is not None:
            scores = tf.clip_by_value(scores, -self.score_clip, self.score_clip)
        return self.per_user(y_true, scores)

    def per_user(self, targets: Targets, scores: tf.Tensor) -> tf.Tensor:
        """Each user's loss, unreduced.

        Args:
            targets: the batch's `Targets`.
            scores: float32 [b, n_items] scores, already clipped, or `FactoredScores`.

        Returns:
            float32 [b].
        """
        raise NotImplementedError

    @staticmethod
    def _check_width(name: str, ids: tf.Tensor, width: int) -> None:
        if ids.shape[1] is not None and ids.shape[1] != width:
            raise HetCompError(f"{name}: target list has {ids.shape[1]} items per user, the loss was built for {width}")


def _lower_to(values: tf.Tensor, pairs: ItemPairs, fill: float) -> tf.Tensor:
    """values [b, n] with `fill` at the pairs, for a `fill` no larger than any value there (a min-scatter, whose
    padding is neutral)."""
    return scatter_pairs(pairs, tf.fill(tf.shape(pairs.items), fill), values, scatter=tf.tensor_scatter_nd_min)


def rest_and_list_scores(
    scores: tf.Tensor, excluded, ids: tf.Tensor, bound: float | None = None
) -> tuple[tf.Tensor, tf.Tensor]:
    """The rest's log-sum-exp over every item but `excluded`, and the scores of the lists' `ids`.

    This is every loss's whole contact with the [b, n_items] scores, in one op so that its gradient is one dense
    buffer (e^{s_j} / Σ on the rest, plus the lists' upstream scattered at their ids) instead of one per gather.
    No [b, n_items] mask is built (a min-scatter of 0 at the excluded pairs), the exponentials are taken once and
    reused by the gradient, and with `bound` (|s| ≤ bound, the losses' clip) the shift is e^{−bound}: no max
    pass, no overflow, and e^{−2·bound} > 0 in float32 for bound ≤ 43.

    Args:
        scores: float [b, n_items] scores, or `FactoredScores` (computed by the fused kernel, which needs `bound`).
        excluded: the ids outside the rest, int32 [b, E] −1 padded, or `ItemPairs`.
        ids: int32 [b, L] the lists' item ids, −1 padded.
        bound: |scores| ≤ bound (the losses' clip), or None.

    Returns:
        (rest float [b, 1], list_scores float [b, L]): log Σ_{j ∉ excluded} e^{s_j}, exact (ABSENT_LOGIT for a row
        with no rest), and the scores of `ids` (−1 padding gets a score the losses mask).

    Raises:
        HetCompError: `FactoredScores` without a `bound`.
    """
    excluded, ids = item_pairs(excluded), tf.convert_to_tensor(ids, tf.int32)
    if isinstance(scores, FactoredScores):
        return _factored_rest_and_list_scores(scores, excluded, ids, bound)

    @tf.custom_gradient
    def dense_terms(scores):
        if bound is None:
            shift = tf.reduce_max(_lower_to(scores, excluded, -np.inf), axis=1, keepdims=True)
            shift = tf.where(tf.math.is_finite(shift), shift, 0.0)
        else:
            shift = tf.constant(bound, scores.dtype)
        masses = _lower_to(tf.exp(scores - shift), excluded, 0.0)
        total = tf.reduce_sum(masses, axis=1, keepdims=True)
        some = total > 0.0
        rest = tf.where(some, tf.math.log(tf.where(some, total, 1.0)) + shift, ABSENT_LOGIT)
        list_scores = tf.gather(scores, tf.maximum(ids, 0), batch_dims=1)

        def gradient(rest_upstream, list_upstream):
            dense = rest_upstream * masses / tf.where(some, total, 1.0)
            return scatter_rows(ids, list_upstream, dense, scatter=tf.tensor_scatter_nd_add)

        return (rest, list_scores), gradient

    return dense_terms(scores)


def _factored_rest_and_list_scores(scores: FactoredScores, excluded: ItemPairs, ids: tf.Tensor, bound: float | None):
    """rest_and_list_scores from the factors: the rest by the fused kernel (no [b, n_items] tensor), the lists'
    scores by a gather and a dot product per entry, both clipped to ±bound; −1 padding passes no gradient."""
    if bound is None:
        raise HetCompError("factored scores need a score clip (the fused kernel shifts its exponentials by it)")
    rest = rest_logsumexp(scores.users, scores.items, excluded.rows, excluded.items, bound)
    vectors = tf.gather(scores.items, tf.maximum(ids, 0))
    list_scores = tf.clip_by_value(tf.einsum("bd,bld->bl", scores.users, vectors), -bound, bound)
    return rest, tf.where(ids >= 0, list_scores, tf.stop_gradient(list_scores))  # padding: as the dense op's


def target_rest_and_list_scores(targets: Targets, ids: tf.Tensor, scores: tf.Tensor, bound: float | None):
    """`rest_and_list_scores` with R = unobserved items minus the unobserved targets.

    Train items never enter R, so a relevant observed item is never pushed down by the unobserved lists, nor vice
    versa.

    Args:
        targets: the batch's `Targets` (their train items and unobserved targets are excluded from R).
        ids: int32 [b, L] every list's ids (observed and unobserved): the scores of all of them in one gather.
        scores: as in `rest_and_list_scores`.
        bound: as in `rest_and_list_scores`.

    Returns:
        (rest float [b, 1], list_scores float [b, L]), as `rest_and_list_scores`.
    """
    return rest_and_list_scores(scores, concat_pairs(targets.train_items, targets.unobserved), ids, bound)


def _add_unobserved(rest_lse: tf.Tensor, ids: tf.Tensor, list_scores: tf.Tensor) -> tf.Tensor:
    """[b, 1] log(e^{rest_lse} + Σ e^s over the items of `ids`, unobserved target items with their scores
    `list_scores`): the rest grown by the items of a target list that a shorter list leaves out (−1 padding adds
    nothing)."""
    extra = tf.where(ids >= 0, list_scores, ABSENT_LOGIT)
    return tf.reduce_logsumexp(tf.concat([rest_lse, extra], axis=1), axis=1, keepdims=True)


def compact_list(ids: tf.Tensor, list_scores: tf.Tensor, rest_lse: tf.Tensor, graded: bool = True):
    """A target list and its rest as one compact TF-Ranking list of L + 1 entries.

    Args:
        ids: int32 [b, L] the list's items, best first, −1 padded.
        list_scores: float [b, L] their scores.
        rest_lse: float [b, 1] log Σ e^s over the rest.
        graded: labels L − k by position k (a permutation), else 1 (a set).

    Returns:
        (labels float32 [b, L + 1], logits float [b, L + 1]): the list's entries (−1 padding labelled −1,
        ignored), then the rest entry with label 0 and logit `rest_lse`.
    """
    ids = tf.convert_to_tensor(ids, tf.int32)
    length = tf.shape(ids)[1]
    grades = tf.cast(length - tf.range(length), tf.float32) if graded else tf.ones([length])
    labels = tf.where(ids >= 0, grades, -1.0)
    rest_label = tf.zeros_like(rest_lse)
    return tf.concat([labels, rest_label], axis=1), tf.concat([list_scores, rest_lse], axis=1)


def per_user_losses(loss: tfr_keras_losses._ListwiseLoss, labels_logits) -> tf.Tensor:
    """A TF-Ranking loss's unreduced value per list.

    Args:
        loss: a listwise loss here (`PlackettLuceLoss`, `SetwiseLoss`).
        labels_logits: (labels, logits), each float [b, n], e.g. `compact_list`'s.

    Returns:
        float32 [b].
    """
    return loss.call(*labels_logits)[:, 0]


class OverallLoss(TargetLoss):
    """HetComp's set-wise loss: every item of P ∪ U outranks R = unobserved \\ U.

    Args:
        **kwargs: `TargetLoss`'s (score_clip, reduction, name).

    Call arguments:
        y_true: the batch's `Targets`.
        y_pred: float [b, n_items] scores, or `FactoredScores`.

    Returns a float32 scalar when called, or float32 [b] with `Reduction.NONE`.

    Example:
        Six items; the user's train items are 0 and 5 (P = [5]), the ensemble's top-2 unobserved U = [1, 3],
        so R = {2, 4}:

        >>> targets = Targets(unobserved=tf.constant([[1, 3]]), observed=tf.constant([[5]]),
        ...                   train_items=tf.constant([[0, 5]]))
        >>> scores = tf.constant([[0.5, 1.0, -1.0, 2.0, 0.0, 1.5]])
        >>> round(float(OverallLoss()(targets, scores)), 4)
        0.8438
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._setwise = SetwiseLoss()

    def per_user(self, targets, scores):
        """Each user's set-wise loss.

        Args:
            targets: the batch's `Targets`.
            scores: float32 [b, n_items] clipped scores, or `FactoredScores`.

        Returns:
            float32 [b].
        """
        positives = tf.concat([targets.observed, targets.unobserved], axis=1)
        rest, positive_scores = target_rest_and_list_scores(targets, positives, scores, self.score_clip)
        return per_user_losses(self._setwise, compact_list(positives, positive_scores, rest, graded=False))


class FineGrainedLoss(TargetLoss):
    """HetComp's fine-grained loss: L(P) + (L(U[:K/2]) + L(U[:K/10])) / 2, each a Plackett-Luce likelihood
    with the rest R = unobserved \\ U[:K/2] (for P and U[:K/2]) or unobserved \\ U[:K/10].

    Args:
        top_k: K, the width of `Targets.unobserved`, >= 10.
        observed_size: P's width, `Targets.observed` (default K/10).
        **kwargs: `TargetLoss`'s (score_clip, reduction, name).

    Call arguments:
        y_true: the batch's `Targets`, unobserved int32 [b, K] and observed int32 [b, P].
        y_pred: float [b, n_items] scores, or `FactoredScores`.

    Returns a float32 scalar when called, or float32 [b] with `Reduction.NONE`.

    Raises:
        HetCompError: `top_k` < 10; when called, target lists of another width.

    Example:
        Twelve items; the user's train items are 10 and 11 (P = [10]), U = items 9, 8, ..., 0:

        >>> targets = Targets(unobserved=tf.constant([[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]]),
        ...                   observed=tf.constant([[10]]), train_items=tf.constant([[10, 11]]))
        >>> scores = tf.reshape(tf.range(12, dtype=tf.float32), [1, 12]) / 4.0
        >>> round(float(FineGrainedLoss(top_k=10)(targets, scores)), 4)
        4.6325
    """

    def __init__(self, top_k: int, observed_size: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.top_k, self.observed_size = int(top_k), int(observed_size or top_k // 10)
        self.half, self.tenth = self.top_k // 2, self.top_k // 10
        if self.tenth < 1:
            raise HetCompError(f"FineGrainedLoss: top_k must be >= 10, got {top_k}")
        self._observed_pl = PlackettLuceLoss(self.observed_size, ordered=True)
        self._half_pl = PlackettLuceLoss(self.half, ordered=True)
        self._tenth_pl = PlackettLuceLoss(self.tenth, ordered=True)

    def per_user(self, targets, scores):
        """Each user's fine-grained loss.

        Args:
            targets: the batch's `Targets`.
            scores: float32 [b, n_items] clipped scores, or `FactoredScores`.

        Returns:
            float32 [b].
        """
        self._check_width("FineGrainedLoss", targets.unobserved, self.top_k)
        self._check_width("FineGrainedLoss", targets.observed, self.observed_size)
        p, half, tenth, unobserved = self.observed_size, self.half, self.tenth, targets.unobserved
        rest_all, list_scores = target_rest_and_list_scores(
            targets, tf.concat([targets.observed, unobserved], 1), scores, self.score_clip
        )  # the one dense pass
        observed_scores, unobserved_scores = list_scores[:, :p], list_scores[:, p:]
        rest_half = _add_unobserved(rest_all, unobserved[:, half:], unobserved_scores[:, half:])
        rest_tenth = _add_unobserved(rest_half, unobserved[:, tenth:half], unobserved_scores[:, tenth:half])
        observed = per_user_losses(self._observed_pl, compact_list(targets.observed, observed_scores, rest_half))
        top_half = per_user_losses(
            self._half_pl, compact_list(unobserved[:, :half], unobserved_scores[:, :half], rest_half)
        )
        top_tenth = per_user_losses(
            self._tenth_pl, compact_list(unobserved[:, :tenth], unobserved_scores[:, :tenth], rest_tenth)
        )
        return observed + (top_half + top_tenth) / 2.0


class RRDLoss(TargetLoss):
    """Relaxed ranking distillation (Kang et al., CIKM 2020) without sampling: the ensemble's top-K unobserved
    items in order ("interesting") outrank every other unobserved item ("uninteresting"); P is not used.

    Args:
        top_k: K, the width of `Targets.unobserved`.
        **kwargs: `TargetLoss`'s (score_clip, reduction, name).

    Call arguments:
        y_true: the batch's `Targets`, unobserved int32 [b, K].
        y_pred: float [b, n_items] scores, or `FactoredScores`.

    Returns a float32 scalar when called, or float32 [b] with `Reduction.NONE`.

    Raises:
        HetCompError: when called, target lists of another width than `top_k`.

    Example:
        Six items; the user's train items are 0 and 5, U = [1, 3] in that order, over R = {2, 4}:

        >>> targets = Targets(unobserved=tf.constant([[1, 3]]), observed=tf.constant([[5]]),
        ...                   train_items=tf.constant([[0, 5]]))
        >>> scores = tf.constant([[0.5, 1.0, -1.0, 2.0, 0.0, 1.5]])
        >>> round(float(RRDLoss(top_k=2)(targets, scores)), 4)
        1.61
    """

    def __init__(self, top_k: int, **kwargs):
        super().__init__(**kwargs)
        self.top_k = int(top_k)
        self._pl = PlackettLuceLoss(self.top_k, ordered=True)

    def per_user(self, targets, scores):
        """Each user's RRD loss.

        Args:
            targets: the batch's `Targets`.
            scores: float32 [b, n_items] clipped scores, or `FactoredScores`.

        Returns:
            float32 [b].
        """
        self._check_width("RRDLoss", targets.unobserved, self.top_k)
        return self.from_lists(
            targets.unobserved, *target_rest_and_list_scores(targets, targets.unobserved, scores, self.score_clip)
        )

    def from_lists(self, unobserved: tf.Tensor, rest: tf.Tensor, list_scores: tf.Tensor) -> tf.Tensor:
        """The loss from the rest and the list's scores (for losses built on RRD, which share the dense pass).

        Args:
            unobserved: int32 [b, K] the target list, −1 padded.
            rest: float [b, 1] log Σ e^s over the rest (`target_rest_and_list_scores`).
            list_scores: float [b, K] the scores of `unobserved`.

        Returns:
            float32 [b].
        """
        return per_user_losses(self._pl, compact_list(unobserved, list_scores, rest))
