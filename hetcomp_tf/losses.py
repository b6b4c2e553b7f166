"""HetComp's distillation losses as Keras losses in TF-Ranking's (labels, logits) API.

Every loss here is a Plackett-Luce likelihood "with a rest": items with a positive label form a permutation
(descending label order), items labelled 0 form the rest R whose whole mass sits in every denominator, and
items labelled < 0 are ignored (TF-Ranking's mask). For a permutation π of length L:

    L(π) = −Σ_k [ s_{π_k} − log( Σ_{l≥k} e^{s_{π_l}} + Σ_{j∈R} e^{s_j} ) ]

The set-wise ("overall") loss is the same with every positive item in a list of its own:
−Σ_t [ s_t − log( e^{s_t} + Σ_{j∈R} e^{s_j} ) ].

Why not `tfr.keras.losses.ListMLELoss` with a rank-discount lambda weight (which does equal L(π) for a
full-length permutation, see tests/test_losses.py)? (1) A rank weight `r <= L` counts rest items as
permutation positions for a user whose list is shorter than L (a −1 padded row); (2) it gives ignored items
the logit log(1e−10) instead of dropping them, which is visible once the student's scores sink to the −40 clip;
(3) it sorts (and tie-shuffles) every list of n_items, three times per step. So the losses below subclass
TF-Ranking's listwise base and compute L(π) in log space: the permutation is a top-L by label, and the
denominators are one reverse cumulative logsumexp over L + 1 entries (`reverse_cumulative_logsumexp`).

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
from tensorflow_ranking.python import losses_impl
from tensorflow_ranking.python.keras import losses as tfr_keras_losses

from hetcomp_tf.distill.fused import FactoredScores, rest_logsumexp
from hetcomp_tf.errors import HetCompError

# Logit given to absent entries (padding, non-rest items): its mass e^{-1e4} is exactly 0 in float32 and float64
# next to any real score (student scores are clipped to ±40). Not −inf or dtype.min: a logsumexp over absent
# entries only (a row without rest) must stay finite, with finite gradients.
_ABSENT_LOGIT = -1e4

_REDUCTION = tf.keras.losses.Reduction


# ------------------------------------------------------------------------------------------- label matrices


class ItemPairs(NamedTuple):
    """Item ids of a batch's rows as flat (row, item) pairs; item −1 is padding. A batch's train items this way
    need no row padded to the longest user's (CiteULike at the authors' protocol: ~33k pairs per step instead of
    750 rows × 1,197)."""

    rows: tf.Tensor  # int32 [N]: the row of each pair
    items: tf.Tensor  # int32 [N]: its item id, or −1


def item_pairs(ids) -> ItemPairs:
    """The pairs of a −1 padded id matrix int32 [b, L]; ItemPairs pass through."""
    if isinstance(ids, ItemPairs):
        return ids
    ids = tf.convert_to_tensor(ids, tf.int32)
    rows = tf.broadcast_to(tf.range(tf.shape(ids)[0])[:, None], tf.shape(ids))
    return ItemPairs(tf.reshape(rows, [-1]), tf.reshape(ids, [-1]))


def concat_pairs(*parts) -> ItemPairs:
    pairs = [item_pairs(part) for part in parts]
    return ItemPairs(tf.concat([p.rows for p in pairs], 0), tf.concat([p.items for p in pairs], 0))


def _neutral(scatter, dtype: tf.DType):
    """The value a padding pair scatters: one that leaves any entry unchanged under `scatter` (add, max or min;
    an update has no such value)."""
    if scatter is tf.tensor_scatter_nd_add:
        return tf.zeros([], dtype)
    high = np.inf if dtype.is_floating else dtype.max
    return tf.constant(-high if scatter is tf.tensor_scatter_nd_max else high, dtype)


def _scatter_pairs(pairs: ItemPairs, values: tf.Tensor, base: tf.Tensor, scatter=tf.tensor_scatter_nd_max):
    """base [b, n_items] with base[r, i] = scatter(base[r, i], value) for every pair (r, i) (default: the max).
    Padding pairs scatter the op's neutral value into column 0 of their row: no shape depends on how many pairs
    are real (XLA compiles once) and no spare column is padded on and cut off (two copies of [b, n_items])."""
    real = pairs.items >= 0
    index = tf.stack([pairs.rows, tf.where(real, pairs.items, 0)], axis=-1)
    return scatter(base, index, tf.where(real, tf.cast(values, base.dtype), _neutral(scatter, base.dtype)))


def _scatter_rows(ids, values: tf.Tensor, base: tf.Tensor, scatter=tf.tensor_scatter_nd_max) -> tf.Tensor:
    """_scatter_pairs for an id matrix ids int32 [b, L] (−1 skipped) and values [b, L]."""
    return _scatter_pairs(item_pairs(ids), tf.reshape(values, [-1]), base, scatter)


def ids_to_mask(ids, n_items) -> tf.Tensor:
    """bool [b, n_items]: True at the item ids of each row of `ids` int32 [b, L] (−1 = padding)."""
    ids = tf.convert_to_tensor(ids, tf.int32)
    zeros = tf.zeros(tf.stack([tf.shape(ids)[0], n_items]), tf.int32)
    return _scatter_rows(ids, tf.ones_like(ids), zeros) > 0


def ranking_labels(perm, n_items, rest_mask) -> tf.Tensor:
    """float32 [b, n_items] TF-Ranking labels for "perm outranks the rest": L, L−1, …, 1 on the items of
    perm int32 [b, L] (position k gets L − k, so a −1 padded tail just leaves its labels unused), 0 where
    rest_mask bool [b, n_items] holds, −1 (ignored) elsewhere. A permutation item wins over the rest mask."""
    perm = tf.convert_to_tensor(perm, tf.int32)
    length = tf.shape(perm)[1]
    base = tf.where(rest_mask, 0.0, -1.0)
    position_labels = tf.cast(length - tf.range(length), tf.float32)
    return _scatter_rows(perm, tf.broadcast_to(position_labels, tf.shape(perm)), base)


# ------------------------------------------------------------------------------------------ core losses


def _rest_logsumexp(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """[b, 1] log Σ_{j: label 0} e^{s_j}; ≈ _ABSENT_LOGIT when a row has no rest."""
    rest = tf.equal(labels, 0.0)
    return tf.reduce_logsumexp(tf.where(rest, logits, _ABSENT_LOGIT), axis=1, keepdims=True)


_SUFFIX_FLOOR = 1e-37  # float32 normals start at 1.2e-38: above this a sum of exponentials has full precision


def reverse_cumulative_logsumexp(x: tf.Tensor) -> tf.Tensor:
    """out[:, k] = log Σ_{l≥k} e^{x[:, l]} for x [b, n] with a static n, stable for any x; a suffix of absent
    (−1e4) entries only is absent (_ABSENT_LOGIT, no gradient).

    Fast path: m + log(reverse cumsum of e^{x − m}), m the row's max (a constant to the gradient, which is then
    exact): a handful of element-wise ops and a cumsum, forward and backward, where log2(n) steps of a pairwise
    logsumexp take ~150 (measured: 0.3 s of a 3.4 s fine-grained epoch at the authors' protocol). The cumsum is a
    matmul with a triangle of ones: TF's Cumsum kernel took 1.2 ms for [750, 101] on one thread. A suffix sum
    holds e^{x_k − m} for its own real entry, so it keeps full precision while every real entry is within 85 of
    its row's max, as in the losses (scores clipped to ±40, the rest entry at least the lowest score); a batch
    where one is not takes the pairwise path. Not tf.math.cumulative_logsumexp, which XLA on CPU lowers to a
    quadratic window reduction (37 ms against 0.5 ms for a [64, 101] forward and backward)."""
    top = tf.stop_gradient(tf.reduce_max(x, axis=1, keepdims=True))
    width = tf.shape(x)[1]
    suffix_sums = tf.matmul(tf.exp(x - top), tf.linalg.band_part(tf.ones([width, width], x.dtype), -1, 0))
    underflow = tf.reduce_any((x > _ABSENT_LOGIT / 2) & (suffix_sums < _SUFFIX_FLOOR))

    def by_max_shift():  # the floor keeps log and its gradient finite in the branch tf.where drops
        return tf.where(suffix_sums > 0.0, top + tf.math.log(tf.maximum(suffix_sums, _SUFFIX_FLOOR)), _ABSENT_LOGIT)

    return tf.cond(underflow, lambda: _pairwise_reverse_cumulative_logsumexp(x), by_max_shift)


def _pairwise_reverse_cumulative_logsumexp(x: tf.Tensor) -> tf.Tensor:
    """reverse_cumulative_logsumexp by log2(n) doubling steps of a pairwise logsumexp (x's width static); an
    absent-only suffix comes out ≈ −1e4 + log(its length)."""
    width, shift = x.shape[1], 1
    while shift < width:
        tail = tf.concat([x[:, shift:], tf.fill([tf.shape(x)[0], shift], tf.constant(_ABSENT_LOGIT, x.dtype))], 1)
        x = tf.reduce_logsumexp(tf.stack([x, tail]), axis=0)
        shift *= 2
    return x


class _PlackettLuceImpl(losses_impl._ListwiseLoss):
    """TF-Ranking loss implementation of L(π) above, truncated at `list_size` positions; `ordered`: the labels are
    already in permutation order (see PlackettLuceLoss), so no top-k is taken."""

    def __init__(self, name, list_size: int, ordered: bool = False):
        super().__init__(name)
        self._list_size, self._ordered = int(list_size), bool(ordered)

    def _compute_unreduced_loss_impl(self, labels, logits, mask=None):
        if self._ordered:  # the denominators straight off the list: no top-k, gather, slice or concat
            if labels.shape[1] is not None and labels.shape[1] > self._list_size + 1:
                raise HetCompError(f"PlackettLuceLoss(ordered=True): a list of {labels.shape[1]} entries, more than "
                                   f"list_size + 1 = {self._list_size + 1} (its permutation and the rest)")
            in_perm = labels > 0.0
            log_denominators = reverse_cumulative_logsumexp(tf.where(in_perm | tf.equal(labels, 0.0), logits,
                                                                     _ABSENT_LOGIT))
            perm_logits = logits
        else:
            top_labels, top_ids = tf.math.top_k(labels, k=self._list_size)  # the permutation, best first
            in_perm, perm_logits = top_labels > 0.0, tf.gather(logits, top_ids, batch_dims=1)
            candidates = tf.concat([tf.where(in_perm, perm_logits, _ABSENT_LOGIT), _rest_logsumexp(labels, logits)],
                                   1)
            log_denominators = reverse_cumulative_logsumexp(candidates)[:, :-1]
        terms = tf.where(in_perm, log_denominators - perm_logits, 0.0)
        nll = tf.reduce_sum(terms, axis=1, keepdims=True)
        return nll, tf.ones_like(nll)


class _SetwiseImpl(losses_impl._ListwiseLoss):
    """TF-Ranking loss implementation of the set-wise loss: Σ_{t: label>0} softplus(log Σ_R e^{s} − s_t)."""

    def _compute_unreduced_loss_impl(self, labels, logits, mask=None):
        terms = tf.math.softplus(_rest_logsumexp(labels, logits) - logits)
        nll = tf.reduce_sum(tf.where(labels > 0.0, terms, 0.0), axis=1, keepdims=True)
        return nll, tf.ones_like(nll)


@tf.keras.utils.register_keras_serializable(package="hetcomp_tf")
class PlackettLuceLoss(tfr_keras_losses._ListwiseLoss):
    """ListMLE truncated at `list_size` whose denominators also hold the rest (label 0); labels < 0 ignored.

    y_true: float [b, n] labels (see `ranking_labels`), y_pred: float [b, n] scores. Per list: a sum over the
    permutation's positions; rows with fewer than `list_size` positive labels use only those.
    `ordered=True` promises lists as `compact_list` and `correction_list` build them: at most `list_size` entries
    and the rest, positive labels decreasing along the row, the rest (0) after them, −1 anywhere. The permutation
    is then the row's positive entries, and each denominator a suffix of the row (the same loss without a top-k, a
    gather or slices: 0.4 s of a 6.5 s DCD epoch at the authors' protocol).
    """

    def __init__(self, list_size: int, ordered: bool = False, reduction=_REDUCTION.AUTO, name: str | None = None,
                 **kwargs):
        if int(list_size) < 1:
            raise HetCompError(f"PlackettLuceLoss: list_size must be >= 1, got {list_size}")
        super().__init__(reduction, name, **kwargs)
        self._list_size, self._ordered = int(list_size), bool(ordered)
        self._loss = _PlackettLuceImpl(name=f"{name}_impl" if name else None, list_size=list_size, ordered=ordered)

    def get_config(self) -> dict:
        return {**super().get_config(), "list_size": self._list_size, "ordered": self._ordered}


@tf.keras.utils.register_keras_serializable(package="hetcomp_tf")
class SetwiseLoss(tfr_keras_losses._ListwiseLoss):
    """Every positive-labelled item must outrank the whole rest (label 0); labels < 0 ignored."""

    def __init__(self, reduction=_REDUCTION.AUTO, name: str | None = None, **kwargs):
        super().__init__(reduction, name, **kwargs)
        self._loss = _SetwiseImpl(name=f"{name}_impl" if name else None)


# ----------------------------------------------------------------------------------- HetComp's losses


class Targets(NamedTuple):
    """What a batch of users is distilled towards (y_true of the losses below)."""

    unobserved: tf.Tensor  # int32 [b, K]: the ensemble's top-K unobserved items, best first, −1 padded
    observed: tf.Tensor  # int32 [b, P]: the user's train items in the ensemble's order (P = K/10), −1 padded
    train_items: tf.Tensor | ItemPairs  # the users' train items: int32 [b, T] −1 padded, or ItemPairs (the
    # trainer's: no row padded to the longest); none of them is in `unobserved`


class _TargetLoss(tf.keras.losses.Loss):
    """A loss of (Targets, scores [b, n_items]) -> per-user [b], reduced by Keras; scores are clipped first."""

    def __init__(self, score_clip: float | None = 40.0, reduction=_REDUCTION.AUTO, name: str | None = None):
        super().__init__(reduction=reduction, name=name)
        self.score_clip = score_clip

    def call(self, y_true: Targets, y_pred):
        if isinstance(y_pred, FactoredScores):  # clipped where its scores are formed (rest_and_list_scores)
            return self.per_user(y_true, y_pred)
        scores = tf.cast(y_pred, tf.float32)
        if self.score_clip is not None:
            scores = tf.clip_by_value(scores, -self.score_clip, self.score_clip)
        return self.per_user(y_true, scores)

    def per_user(self, targets: Targets, scores: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    @staticmethod
    def _check_width(name: str, ids: tf.Tensor, width: int) -> None:
        if ids.shape[1] is not None and ids.shape[1] != width:
            raise HetCompError(f"{name}: target list has {ids.shape[1]} items per user, the loss was built for {width}")


def _lower_to(values: tf.Tensor, pairs: ItemPairs, fill: float) -> tf.Tensor:
    """values [b, n] with `fill` at the pairs, for a `fill` no larger than any value there (a min-scatter, whose
    padding is neutral)."""
    return _scatter_pairs(pairs, tf.fill(tf.shape(pairs.items), fill), values, scatter=tf.tensor_scatter_nd_min)


def rest_and_list_scores(scores: tf.Tensor, excluded, ids: tf.Tensor,
                         bound: float | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """(rest [b, 1], list_scores [b, L]): log Σ_{j ∉ excluded} e^{s_j} exactly, over every item but the ids
    `excluded` (int32 [b, E], −1 padded, or ItemPairs), and the scores of the ids int32 [b, L] (−1 padding gets a
    score the losses mask). This is every loss's whole contact with the [b, n_items] scores, in one op so that its
    gradient is one dense buffer (e^{s_j} / Σ on the rest, plus the lists' upstream scattered at their ids) instead
    of one per gather. No [b, n_items] mask is built (a min-scatter of 0 at the excluded pairs), the exponentials are
    taken once and reused by the gradient, and with `bound` (|s| ≤ bound, the losses' clip) the shift is
    e^{−bound}: no max pass, no overflow, and e^{−2·bound} > 0 in float32 for bound ≤ 43. A row with no rest gives
    _ABSENT_LOGIT."""
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
        rest = tf.where(some, tf.math.log(tf.where(some, total, 1.0)) + shift, _ABSENT_LOGIT)
        list_scores = tf.gather(scores, tf.maximum(ids, 0), batch_dims=1)

        def gradient(rest_upstream, list_upstream):
            dense = rest_upstream * masses / tf.where(some, total, 1.0)
            return _scatter_rows(ids, list_upstream, dense, scatter=tf.tensor_scatter_nd_add)

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


def _rest_and_list_scores(targets: Targets, ids: tf.Tensor, scores: tf.Tensor, bound: float | None):
    """rest_and_list_scores with R = unobserved items minus the unobserved targets: train items never enter R, so
    a relevant observed item is never pushed down by the unobserved lists, nor vice versa. `ids`: every list's ids
    (observed and unobserved), the scores of all of them in one gather."""
    return rest_and_list_scores(scores, concat_pairs(targets.train_items, targets.unobserved), ids, bound)


def _add_unobserved(rest_lse: tf.Tensor, ids: tf.Tensor, list_scores: tf.Tensor) -> tf.Tensor:
    """[b, 1] log(e^{rest_lse} + Σ e^s over the items of `ids`, unobserved target items with their scores
    `list_scores`): the rest grown by the items of a target list that a shorter list leaves out (−1 padding adds
    nothing)."""
    extra = tf.where(ids >= 0, list_scores, _ABSENT_LOGIT)
    return tf.reduce_logsumexp(tf.concat([rest_lse, extra], axis=1), axis=1, keepdims=True)


def compact_list(ids: tf.Tensor, list_scores: tf.Tensor, rest_lse: tf.Tensor, graded: bool = True):
    """(labels, logits) [b, L + 1] for the TF-Ranking losses here: the items of `ids` int32 [b, L] with their
    scores `list_scores` [b, L] (labels L − k by position k when `graded`, else 1; −1 padding is labelled −1,
    ignored) and one rest entry with label 0 and logit `rest_lse` [b, 1]."""
    ids = tf.convert_to_tensor(ids, tf.int32)
    length = tf.shape(ids)[1]
    grades = tf.cast(length - tf.range(length), tf.float32) if graded else tf.ones([length])
    labels = tf.where(ids >= 0, grades, -1.0)
    rest_label = tf.zeros_like(rest_lse)
    return tf.concat([labels, rest_label], axis=1), tf.concat([list_scores, rest_lse], axis=1)


def _per_user(loss: tfr_keras_losses._ListwiseLoss, labels_logits) -> tf.Tensor:
    return loss.call(*labels_logits)[:, 0]


class OverallLoss(_TargetLoss):
    """HetComp's set-wise loss: every item of P ∪ U outranks R = unobserved \\ U."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._setwise = SetwiseLoss()

    def per_user(self, targets, scores):
        positives = tf.concat([targets.observed, targets.unobserved], axis=1)
        rest, positive_scores = _rest_and_list_scores(targets, positives, scores, self.score_clip)
        return _per_user(self._setwise, compact_list(positives, positive_scores, rest, graded=False))


class FineGrainedLoss(_TargetLoss):
    """HetComp's fine-grained loss: L(P) + (L(U[:K/2]) + L(U[:K/10])) / 2, each a Plackett-Luce likelihood
    with the rest R = unobserved \\ U[:K/2] (for P and U[:K/2]) or unobserved \\ U[:K/10]."""

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
        self._check_width("FineGrainedLoss", targets.unobserved, self.top_k)
        self._check_width("FineGrainedLoss", targets.observed, self.observed_size)
        p, half, tenth, unobserved = self.observed_size, self.half, self.tenth, targets.unobserved
        rest_all, list_scores = _rest_and_list_scores(targets, tf.concat([targets.observed, unobserved], 1), scores,
                                                      self.score_clip)  # the one dense pass
        observed_scores, unobserved_scores = list_scores[:, :p], list_scores[:, p:]
        rest_half = _add_unobserved(rest_all, unobserved[:, half:], unobserved_scores[:, half:])
        rest_tenth = _add_unobserved(rest_half, unobserved[:, tenth:half], unobserved_scores[:, tenth:half])
        observed = _per_user(self._observed_pl, compact_list(targets.observed, observed_scores, rest_half))
        top_half = _per_user(self._half_pl, compact_list(unobserved[:, :half], unobserved_scores[:, :half], rest_half))
        top_tenth = _per_user(self._tenth_pl, compact_list(unobserved[:, :tenth], unobserved_scores[:, :tenth],
                                                           rest_tenth))
        return observed + (top_half + top_tenth) / 2.0


class RRDLoss(_TargetLoss):
    """Relaxed ranking distillation (Kang et al., CIKM 2020) without sampling: the ensemble's top-K unobserved
    items in order ("interesting") outrank every other unobserved item ("uninteresting"); P is not used."""

    def __init__(self, top_k: int, **kwargs):
        super().__init__(**kwargs)
        self.top_k = int(top_k)
        self._pl = PlackettLuceLoss(self.top_k, ordered=True)

    def per_user(self, targets, scores):
        self._check_width("RRDLoss", targets.unobserved, self.top_k)
        return self.from_lists(targets.unobserved, *_rest_and_list_scores(targets, targets.unobserved, scores,
                                                                           self.score_clip))

    def from_lists(self, unobserved: tf.Tensor, rest: tf.Tensor, list_scores: tf.Tensor) -> tf.Tensor:
        """The loss from the rest and the list's scores (for losses built on RRD, which share the dense pass)."""
        return _per_user(self._pl, compact_list(unobserved, list_scores, rest))


# --------------------------------------------------------------------------------------------- DCD's losses
# Dual correction distillation (Lee & Kim, CIKM 2021) without sampling; the method and the correction state are in
# hetcomp_tf/distill/dcd.py, the correction's math in `CorrectionLoss`. A correction compares, on one teacher list (a
# user's top-K items, or an item's users), each entry's student rank with its teacher rank, both counted within the
# list: discrepancy d = r_S − r_T.


class DCDTargets(NamedTuple):
    """Targets plus the student's misrankings on the teacher list (y_true of DCDLoss): DCDTargets(*targets, d)."""

    unobserved: tf.Tensor  # int32 [b, K]: the teacher's top-K unobserved items, best first, −1 padded
    observed: tf.Tensor  # int32 [b, P]: not used by DCD (kept so any Targets converts)
    train_items: tf.Tensor | ItemPairs  # the users' train items (as in Targets)
    discrepancy: tf.Tensor  # int32 [b, K]: r_S − r_T of each entry of `unobserved` (0 on padding)


def correction_list(list_scores: tf.Tensor, discrepancy: tf.Tensor):
    """(labels, logits) [b, L + 1] of DCD's correction on teacher lists: the entries the student underestimates
    (d > 0) form the permutation in list (= teacher) order, the entries it overestimates (d < 0) form the rest
    (one entry, logit log Σ e^s), exact matches and padding (d = 0) take no part. list_scores [b, L] are the
    student's scores of the list's entries."""
    length = tf.shape(list_scores)[1]
    grades = tf.cast(length - tf.range(length), tf.float32)
    labels = tf.where(discrepancy > 0, grades, -1.0)
    rest = tf.reduce_logsumexp(tf.where(discrepancy < 0, list_scores, _ABSENT_LOGIT), axis=1, keepdims=True)
    return tf.concat([labels, tf.zeros_like(rest)], axis=1), tf.concat([list_scores, rest], axis=1)


def _draw_weights(discrepancy: tf.Tensor, epsilon: float, dtype: tf.DType) -> tf.Tensor:
    """w = tanh(ε·|d|) per entry: DCD's weight of drawing it on its side (0 where d = 0)."""
    return tf.math.tanh(epsilon * tf.cast(tf.abs(discrepancy), dtype))


def expected_correction(list_scores: tf.Tensor, discrepancy: tf.Tensor, epsilon: float) -> tf.Tensor:
    """[b]: `CorrectionLoss`'s L_ε per row (list_scores float [b, L], discrepancy int32 [b, L]). The others' mass
    C_k = log( Σ_{l∈Under, l>k} w_l e^{s_l} + Σ_{j∈Over} w_j e^{s_j} ) is a reverse cumulative logsumexp of the
    weighted logits s + log w (Over's as one rest entry) one position on, and k's term is w_k·softplus(C_k − s_k):
    no cancellation of log-denominator and s_k when the weights are small."""
    weights = _draw_weights(discrepancy, epsilon, list_scores.dtype)
    weighted = tf.where(weights > 0.0, list_scores + tf.math.log(weights), _ABSENT_LOGIT)
    under = discrepancy > 0
    over = tf.reduce_logsumexp(tf.where(discrepancy < 0, weighted, _ABSENT_LOGIT), axis=1, keepdims=True)
    others = reverse_cumulative_logsumexp(tf.concat([tf.where(under, weighted, _ABSENT_LOGIT), over], 1))[:, 1:]
    return tf.reduce_sum(tf.where(under, weights * tf.math.softplus(others - list_scores), 0.0), axis=1)


class CorrectionLoss(_TargetLoss):
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

    y_true int32 [b, L]: the discrepancy of each entry; y_pred float [b, L]: the student's scores of the entries
    (list-aligned, so an item's users need no [b, n_users] matrix, see `dcd.list_scores`).
    """

    def __init__(self, list_size: int, epsilon: float | None = None, **kwargs):
        super().__init__(**kwargs)
        if epsilon is not None and not epsilon > 0:
            raise HetCompError(f"CorrectionLoss: epsilon must be > 0 or None, got {epsilon}")
        self.list_size, self.epsilon = int(list_size), epsilon
        self._pl = PlackettLuceLoss(self.list_size, ordered=True)

    def per_user(self, targets: tf.Tensor, scores: tf.Tensor) -> tf.Tensor:
        self._check_width("CorrectionLoss", targets, self.list_size)
        self._check_width("CorrectionLoss", scores, self.list_size)
        if self.epsilon is None:
            return _per_user(self._pl, correction_list(scores, targets))
        return expected_correction(tf.ensure_shape(scores, [None, self.list_size]), targets, self.epsilon)  # static L


class DCDLoss(_TargetLoss):
    """DCD's user side on the teacher's top-K U: RRD's L(U) over R = unobserved \\ U (the ranking distillation
    the corrections refine) + correction_weight · UCD on U, the whole sets or, with `ucd_epsilon`, DCD's expected
    draw (`CorrectionLoss`). The item side (ICD) needs other users' scores, so the trainer adds it with a
    CorrectionLoss on `dcd.list_scores`."""

    def __init__(self, top_k: int, correction_weight: float = 1.0, ucd_epsilon: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.top_k, self.correction_weight = int(top_k), float(correction_weight)
        self._rrd = RRDLoss(self.top_k, score_clip=self.score_clip)
        self._ucd = CorrectionLoss(self.top_k, epsilon=ucd_epsilon)

    def per_user(self, targets: DCDTargets, scores: tf.Tensor) -> tf.Tensor:
        self._check_width("DCDLoss", targets.unobserved, self.top_k)
        self._check_width("DCDLoss", targets.discrepancy, self.top_k)
        rest, list_scores = _rest_and_list_scores(targets, targets.unobserved, scores, self.score_clip)
        correction = self._ucd.per_user(targets.discrepancy, list_scores)
        return self._rrd.from_lists(targets.unobserved, rest, list_scores) + self.correction_weight * correction
