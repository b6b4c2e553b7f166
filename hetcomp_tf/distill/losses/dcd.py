"""DCD's losses (Lee & Kim, CIKM 2021): RRD plus the user- and item-side corrections of the student's misrankings
(`DCDLoss`, `CorrectionLoss`); the correction state that feeds them is hetcomp_tf/distill/dcd.py.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from hetcomp_tf.distill.losses.hetcomp import RRDLoss, TargetLoss, per_user_losses, target_rest_and_list_scores
from hetcomp_tf.distill.losses.labels import ItemPairs
from hetcomp_tf.distill.losses.listwise import ABSENT_LOGIT, PlackettLuceLoss, reverse_cumulative_logsumexp
from hetcomp_tf.errors import HetCompError

# Dual correction distillation (Lee & Kim, CIKM 2021) without sampling; the method and the correction state are in
# hetcomp_tf/distill/dcd.py, the correction's math in `CorrectionLoss`. A correction compares, on one teacher list (a
# user's top-K items, or an item's users), each entry's student rank with its teacher rank, both counted within the
# list: discrepancy d = r_S − r_T.


class DCDTargets(NamedTuple):
    """Targets plus the student's misrankings on the teacher list (y_true of DCDLoss): DCDTargets(*targets, d).

    Attributes:
        unobserved: int32 [b, K], the teacher's top-K unobserved items, best first, −1 padded.
        observed: int32 [b, P], not used by DCD (kept so any `Targets` converts).
        train_items: the users' train items, as in `Targets`.
        discrepancy: int32 [b, K], r_S − r_T of each entry of `unobserved` (0 on padding).
    """

    unobserved: tf.Tensor
    observed: tf.Tensor
    train_items: tf.Tensor | ItemPairs
    discrepancy: tf.Tensor


def correction_list(list_scores: tf.Tensor, discrepancy: tf.Tensor):
    """DCD's correction on teacher lists as compact TF-Ranking lists (`PlackettLuceLoss(ordered=True)`'s).

    The entries the student underestimates (d > 0) form the permutation in list (= teacher) order, the entries
    it overestimates (d < 0) form the rest (one entry, logit log Σ e^s), exact matches and padding (d = 0) take
    no part.

    Args:
        list_scores: float [b, L] the student's scores of the list's entries.
        discrepancy: int32 [b, L] d = r_S − r_T of each entry.

    Returns:
        (labels float32 [b, L + 1], logits float [b, L + 1]).
    """
    length = tf.shape(list_scores)[1]
    grades = tf.cast(length - tf.range(length), tf.float32)
    labels = tf.where(discrepancy > 0, grades, -1.0)
    rest = tf.reduce_logsumexp(tf.where(discrepancy < 0, list_scores, ABSENT_LOGIT), axis=1, keepdims=True)
    return tf.concat([labels, tf.zeros_like(rest)], axis=1), tf.concat([list_scores, rest], axis=1)


def _draw_weights(discrepancy: tf.Tensor, epsilon: float, dtype: tf.DType) -> tf.Tensor:
    """w = tanh(ε·|d|) per entry: DCD's weight of drawing it on its side (0 where d = 0)."""
    return tf.math.tanh(epsilon * tf.cast(tf.abs(discrepancy), dtype))


def expected_correction(list_scores: tf.Tensor, discrepancy: tf.Tensor, epsilon: float) -> tf.Tensor:
    """`CorrectionLoss`'s L_ε per row, the whole sets standing for DCD's draw with weights tanh(ε·|d|).

    The others' mass C_k = log( Σ_{l∈Under, l>k} w_l e^{s_l} + Σ_{j∈Over} w_j e^{s_j} ) is a reverse cumulative
    logsumexp of the weighted logits s + log w (Over's as one rest entry) one position on, and k's term is
    w_k·softplus(C_k − s_k): no cancellation of log-denominator and s_k when the weights are small.

    Args:
        list_scores: float [b, L] the student's scores of the list's entries, L static.
        discrepancy: int32 [b, L] d = r_S − r_T of each entry.
        epsilon: ε > 0.

    Returns:
        float [b], list_scores' dtype.
    """
    weights = _draw_weights(discrepancy, epsilon, list_scores.dtype)
    weighted = tf.where(weights > 0.0, list_scores + tf.math.log(weights), ABSENT_LOGIT)
    under = discrepancy > 0
    over = tf.reduce_logsumexp(tf.where(discrepancy < 0, weighted, ABSENT_LOGIT), axis=1, keepdims=True)
    others = reverse_cumulative_logsumexp(tf.concat([tf.where(under, weighted, ABSENT_LOGIT), over], 1))[:, 1:]
    return tf.reduce_sum(tf.where(under, weights * tf.math.softplus(others - list_scores), 0.0), axis=1)


class CorrectionLoss(TargetLoss):
    """DCD's correction on one teacher list per row, UCD for a user's items or ICD for an item's users.

    Under = {k: d_k > 0} (underestimated, in list = teacher order), Over = {j: d_j < 0}; d = 0 (exact matches,
    padding) takes no part. With `epsilon` None, the whole sets, each entry weight 1:

        L = −Σ_{k∈Under} [ s_k − log( Σ_{l∈Under, l≥k} e^{s_l} + Σ_{j∈Over} e^{s_j} ) ]

    This is DCD's relaxed_ranking_loss(S1, S2) (its Utils/dcd_loss.py) with the sampled S1 ⊆ Under, S2 ⊆ Over
    replaced by the sets they are drawn from. DCD draws entry k with weight w_k = tanh(ε·|d_k|) (its
    tanh(max(±ε·d, 0)), on each side). With a float `epsilon` > 0, the whole sets stand for that draw: each entry
    is in the sample with probability w, independently, and each log's expectation is taken as the log of the
    expected denominator given that k is drawn (Jensen: an upper bound of the expected sampled loss):

        L_ε = −Σ_{k∈Under} w_k·[ s_k − log( e^{s_k} + Σ_{l∈Under, l>k} w_l e^{s_l} + Σ_{j∈Over} w_j e^{s_j} ) ]

    Large discrepancies dominate; as ε → ∞ every w → 1 and L_ε → L. DCD draws a fixed p_n entries per side
    (inclusion probabilities ≈ p_n · w / Σ w); here w is the probability itself, so ε also sets the loss's scale:
    while ε·|d| ≪ 1, the pair (k, j) adds ≈ ε²·d_k·|d_j|·e^{s_j − s_k}.

    Args:
        list_size: L, the lists' width.
        epsilon: ε > 0 for DCD's expected draw, or None for the whole sets with weight 1.
        **kwargs: `TargetLoss`'s (score_clip, reduction, name).

    Call arguments:
        y_true: int32 [b, L] the discrepancy of each entry.
        y_pred: float [b, L] the student's scores of the entries (list-aligned, so an item's users need no
            [b, n_users] matrix; `distill.dcd.mf_scores` scores them).

    Returns a float32 scalar when called, or float32 [b] with `Reduction.NONE`.

    Raises:
        HetCompError: `epsilon` not > 0; when called, lists of another width than `list_size`.

    Example:
        The teacher lists four entries; the student underestimates entry 1 (d = 2) and overestimates entries 2
        and 3, so entry 1 must outrank them:

        >>> discrepancy = tf.constant([[0, 2, -1, -1]])
        >>> list_scores = tf.constant([[1.0, 0.0, 2.0, 0.5]])
        >>> round(float(CorrectionLoss(list_size=4)(discrepancy, list_scores)), 4)
        2.3064
        >>> round(float(CorrectionLoss(list_size=4, epsilon=0.5)(discrepancy, list_scores)), 4)
        1.2522
    """

    def __init__(self, list_size: int, epsilon: float | None = None, **kwargs):
        super().__init__(**kwargs)
        if epsilon is not None and not epsilon > 0:
            raise HetCompError(f"CorrectionLoss: epsilon must be > 0 or None, got {epsilon}")
        self.list_size, self.epsilon = int(list_size), epsilon
        self._pl = PlackettLuceLoss(self.list_size, ordered=True)

    def per_user(self, targets: tf.Tensor, scores: tf.Tensor) -> tf.Tensor:
        """Each row's correction.

        Args:
            targets: int32 [b, L] the discrepancies.
            scores: float32 [b, L] the entries' scores, clipped.

        Returns:
            float32 [b].
        """
        self._check_width("CorrectionLoss", targets, self.list_size)
        self._check_width("CorrectionLoss", scores, self.list_size)
        if self.epsilon is None:
            return per_user_losses(self._pl, correction_list(scores, targets))
        return expected_correction(tf.ensure_shape(scores, [None, self.list_size]), targets, self.epsilon)  # static L


class DCDLoss(TargetLoss):
    """DCD's user side on the teacher's top-K U: RRD's loss on U plus UCD's correction.

    RRD's L(U) over R = unobserved \\ U (the ranking distillation the corrections refine) + correction_weight · UCD
    on U, the whole sets or, with `ucd_epsilon`, DCD's expected draw (`CorrectionLoss`). The item side (ICD) needs
    other users' scores, so the trainer adds it with a CorrectionLoss on the scores of each item's teacher users.

    Args:
        top_k: K, the width of the teacher lists.
        correction_weight: the weight of UCD next to RRD's loss.
        ucd_epsilon: `CorrectionLoss`'s epsilon for UCD (None: the whole sets).
        **kwargs: `TargetLoss`'s (score_clip, reduction, name).

    Call arguments:
        y_true: the batch's `DCDTargets`, unobserved and discrepancy int32 [b, K].
        y_pred: float [b, n_items] scores, or `FactoredScores`.

    Returns a float32 scalar when called, or float32 [b] with `Reduction.NONE`.

    Raises:
        HetCompError: `ucd_epsilon` not > 0; when called, lists of another width than `top_k`.

    Example:
        Six items, train items 0 and 5; the teacher ranks item 1 over item 3, the student the other way round:

        >>> targets = DCDTargets(unobserved=tf.constant([[1, 3]]), observed=tf.constant([[5]]),
        ...                      train_items=tf.constant([[0, 5]]), discrepancy=tf.constant([[1, -1]]))
        >>> scores = tf.constant([[0.5, 1.0, -1.0, 2.0, 0.0, 1.5]])
        >>> round(float(DCDLoss(top_k=2)(targets, scores)), 4)
        2.9233
    """

    def __init__(self, top_k: int, correction_weight: float = 1.0, ucd_epsilon: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.top_k, self.correction_weight = int(top_k), float(correction_weight)
        self._rrd = RRDLoss(self.top_k, score_clip=self.score_clip)
        self._ucd = CorrectionLoss(self.top_k, epsilon=ucd_epsilon)

    def per_user(self, targets: DCDTargets, scores: tf.Tensor) -> tf.Tensor:
        """Each user's RRD loss plus its weighted UCD.

        Args:
            targets: the batch's `DCDTargets`.
            scores: float32 [b, n_items] clipped scores, or `FactoredScores`.

        Returns:
            float32 [b].
        """
        self._check_width("DCDLoss", targets.unobserved, self.top_k)
        self._check_width("DCDLoss", targets.discrepancy, self.top_k)
        rest, list_scores = target_rest_and_list_scores(targets, targets.unobserved, scores, self.score_clip)
        correction = self._ucd.per_user(targets.discrepancy, list_scores)
        return self._rrd.from_lists(targets.unobserved, rest, list_scores) + self.correction_weight * correction
