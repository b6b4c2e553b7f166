"""The listwise losses with a rest, in TF-Ranking's (labels, logits) API: the Plackett-Luce likelihood of a
permutation (`PlackettLuceLoss`) and the set-wise one (`SetwiseLoss`); the losses on the ensemble's targets
(hetcomp.py, dcd.py) hand them compact lists.

Why not `tfr.keras.losses.ListMLELoss` with a rank-discount lambda weight (which does equal L(π) for a
full-length permutation, see tests/test_losses.py)? (1) A rank weight `r <= L` counts rest items as
permutation positions for a user whose list is shorter than L (a −1 padded row); (2) it gives ignored items
the logit log(1e−10) instead of dropping them, which is visible once the student's scores sink to the −40 clip;
(3) it sorts (and tie-shuffles) every list of n_items, three times per step. So the losses below subclass
TF-Ranking's listwise base and compute L(π) in log space: the permutation is a top-L by label, and the
denominators are one reverse cumulative logsumexp over L + 1 entries (`reverse_cumulative_logsumexp`).
"""

from __future__ import annotations

import tensorflow as tf
from tensorflow.python.ops import control_flow_util
from tensorflow_ranking.python import losses_impl
from tensorflow_ranking.python.keras import losses as tfr_keras_losses

from hetcomp_tf.errors import HetCompError

# Logit given to absent entries (padding, non-rest items): its mass e^{-1e4} is exactly 0 in float32 and float64
# next to any real score (student scores are clipped to ±40). Not −inf or dtype.min: a logsumexp over absent
# entries only (a row without rest) must stay finite, with finite gradients.
ABSENT_LOGIT = -1e4

REDUCTION = tf.keras.losses.Reduction


def _rest_logsumexp(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """[b, 1] log Σ_{j: label 0} e^{s_j}; ≈ ABSENT_LOGIT when a row has no rest."""
    rest = tf.equal(labels, 0.0)
    return tf.reduce_logsumexp(tf.where(rest, logits, ABSENT_LOGIT), axis=1, keepdims=True)


_SUFFIX_FLOOR = 1e-37  # float32 normals start at 1.2e-38: above this a sum of exponentials has full precision


def reverse_cumulative_logsumexp(x: tf.Tensor) -> tf.Tensor:
    """out[:, k] = log Σ_{l≥k} e^{x[:, l]}, stable for any x: every Plackett-Luce denominator of a row at once.

    Fast path: m + log(reverse cumsum of e^{x − m}), m the row's max (a constant to the gradient, which is then
    exact): a handful of element-wise ops and a cumsum, forward and backward, where log2(n) steps of a pairwise
    logsumexp take many times more ops. The cumsum is a matmul with a triangle of ones: faster than TF's Cumsum
    kernel on CPU. A suffix sum holds e^{x_k − m} for its own real entry, so it keeps full precision while every
    real entry is within 85 of its row's max, as in the losses (scores clipped to ±40, the rest entry at least
    the lowest score); a batch where one is not takes the pairwise path. Not tf.math.cumulative_logsumexp, which
    XLA on CPU lowers to a window reduction quadratic in n.

    Args:
        x: float [b, n] logits, n static; absent entries hold ABSENT_LOGIT.

    Returns:
        float [b, n], x's dtype. A suffix of absent entries only is absent (ABSENT_LOGIT, no gradient).

    Example:
        >>> out = reverse_cumulative_logsumexp(tf.constant([[0.0, 1.0, 2.0]]))
        >>> [round(float(v), 4) for v in out[0]]
        [2.4076, 2.3133, 2.0]
    """
    top = tf.stop_gradient(tf.reduce_max(x, axis=1, keepdims=True))
    width = tf.shape(x)[1]
    suffix_sums = tf.matmul(tf.exp(x - top), tf.linalg.band_part(tf.ones([width, width], x.dtype), -1, 0))
    underflow = tf.reduce_any((x > ABSENT_LOGIT / 2) & (suffix_sums < _SUFFIX_FLOOR))

    def by_max_shift():  # the floor keeps log and its gradient finite in the branch tf.where drops
        return tf.where(suffix_sums > 0.0, top + tf.math.log(tf.maximum(suffix_sums, _SUFFIX_FLOOR)), ABSENT_LOGIT)

    if _in_xla_function():  # both paths and a select: XLA's dynamic padder cannot match the cond's two branches
        return tf.where(underflow, _pairwise_reverse_cumulative_logsumexp(x), by_max_shift())
    return tf.cond(underflow, lambda: _pairwise_reverse_cumulative_logsumexp(x), by_max_shift)


def _in_xla_function() -> bool:
    """True while tracing a function XLA compiles (`tf.function(jit_compile=True)`, the trainer's dense steps)."""
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def _pairwise_reverse_cumulative_logsumexp(x: tf.Tensor) -> tf.Tensor:
    """reverse_cumulative_logsumexp by log2(n) doubling steps of a pairwise logsumexp (x's width static); an
    absent-only suffix comes out ≈ −1e4 + log(its length)."""
    width, shift = x.shape[1], 1
    while shift < width:
        tail = tf.concat([x[:, shift:], tf.fill([tf.shape(x)[0], shift], tf.constant(ABSENT_LOGIT, x.dtype))], 1)
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
                raise HetCompError(
                    f"PlackettLuceLoss(ordered=True): a list of {labels.shape[1]} entries, more than "
                    f"list_size + 1 = {self._list_size + 1} (its permutation and the rest)"
                )
            in_perm = labels > 0.0
            log_denominators = reverse_cumulative_logsumexp(
                tf.where(in_perm | tf.equal(labels, 0.0), logits, ABSENT_LOGIT)
            )
            perm_logits = logits
        else:
            top_labels, top_ids = tf.math.top_k(labels, k=self._list_size)  # the permutation, best first
            in_perm, perm_logits = top_labels > 0.0, tf.gather(logits, top_ids, batch_dims=1)
            candidates = tf.concat([tf.where(in_perm, perm_logits, ABSENT_LOGIT), _rest_logsumexp(labels, logits)], 1)
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

    Per list, a sum over the permutation's positions k (the positive labels in descending order, at most
    `list_size`; a row with fewer positive labels uses only those) of
    log( Σ_{l≥k} e^{s_{π_l}} + Σ_{j: label 0} e^{s_j} ) − s_{π_k}.

    Args:
        list_size: the most permutation positions per list, >= 1.
        ordered: promises lists as `compact_list` and `correction_list` build them: at most `list_size` entries
            and the rest, positive labels decreasing along the row, the rest (0) after them, −1 anywhere. The
            permutation is then the row's positive entries, and each denominator a suffix of the row: the same
            loss without a top-k, a gather or slices.
        reduction: how Keras combines the lists' losses (default: the mean over the batch).
        name: the loss's name.

    Call arguments:
        y_true: float [batch, n] labels (see `labels.ranking_labels`).
        y_pred: float [batch, n] scores.

    Returns a float32 scalar when called, or float32 [batch, 1] with `Reduction.NONE`.

    Raises:
        HetCompError: `list_size` < 1; when called with `ordered`, a list of more than `list_size` + 1 entries.

    Example:
        >>> labels = tf.constant([[2.0, 1.0, 0.0, 0.0, -1.0]])  # item 0, then item 1, over items 2 and 3
        >>> logits = tf.constant([[1.0, 2.0, 0.5, -1.0, 3.0]])
        >>> loss = PlackettLuceLoss(list_size=2)
        >>> round(float(loss(labels, logits)), 4)
        1.7365

        The same list compacted, its rest as one entry whose logit is log Σ e^s over the rest:

        >>> compact = tf.stack([[1.0, 2.0, tf.reduce_logsumexp([0.5, -1.0])]])
        >>> loss = PlackettLuceLoss(list_size=2, ordered=True)
        >>> round(float(loss(tf.constant([[2.0, 1.0, 0.0]]), compact)), 4)
        1.7365
    """

    def __init__(
        self, list_size: int, ordered: bool = False, reduction=REDUCTION.AUTO, name: str | None = None, **kwargs
    ):
        if int(list_size) < 1:
            raise HetCompError(f"PlackettLuceLoss: list_size must be >= 1, got {list_size}")
        super().__init__(reduction, name, **kwargs)
        self._list_size, self._ordered = int(list_size), bool(ordered)
        self._loss = _PlackettLuceImpl(name=f"{name}_impl" if name else None, list_size=list_size, ordered=ordered)

    def get_config(self) -> dict:
        """Keras' config: the base's plus `list_size` and `ordered`."""
        return {**super().get_config(), "list_size": self._list_size, "ordered": self._ordered}


@tf.keras.utils.register_keras_serializable(package="hetcomp_tf")
class SetwiseLoss(tfr_keras_losses._ListwiseLoss):
    """Every positive-labelled item must outrank the whole rest (label 0); labels < 0 ignored.

    Per list: Σ_{t: label_t > 0} softplus( log Σ_{j: label 0} e^{s_j} − s_t ), that is
    −Σ_t [ s_t − log( e^{s_t} + Σ_j e^{s_j} ) ]: each positive item in a list of its own over the rest.

    Args:
        reduction: how Keras combines the lists' losses (default: the mean over the batch).
        name: the loss's name.

    Call arguments:
        y_true: float [batch, n] labels: > 0 an item that must outrank the rest, 0 the rest, < 0 ignored.
        y_pred: float [batch, n] scores.

    Returns a float32 scalar when called, or float32 [batch, 1] with `Reduction.NONE`.

    Example:
        >>> labels = tf.constant([[1.0, 1.0, 0.0, 0.0, -1.0]])  # items 0 and 1 each over items 2 and 3
        >>> logits = tf.constant([[1.0, 2.0, 0.5, -1.0, 3.0]])
        >>> round(float(SetwiseLoss()(labels, logits)), 4)
        0.7963
    """

    def __init__(self, reduction=REDUCTION.AUTO, name: str | None = None, **kwargs):
        super().__init__(reduction, name, **kwargs)
        self._loss = _SetwiseImpl(name=f"{name}_impl" if name else None)
