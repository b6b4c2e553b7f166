"""The ensemble ranked over its candidates (distill/candidates.py) against the dense full ranking of a NumPy
reference importance, on random rankings with ties, excluded items, padding and votes that underflow."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from hetcomp_tf.distill.candidates import CandidateEvaluator
from hetcomp_tf.distill.ensemble import importance
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.metrics import evaluate
from tests.test_ensemble import random_problem, reference_importance

# (τ, teacher weights): the paper's; a fit's; one teacher (its 66-item lists, minus excluded items, fill the top-50
# only with few exclusions); votes past rank ~31 underflow to 0 in float32 at τ = 0.3, alone and summed over three
CASES = [(10.0, [1.0, 1.0, 1.0]), (2.0, [0.0, 0.5, 4.0]), (10.0, [0.0, 0.0, 1.0]), (0.3, [0.0, 1.0, 0.0]),
         (0.3, [1.0, 1.0, 1.0])]  # fmt: skip


@pytest.mark.parametrize("split", ["valid", "test"])
def test_candidate_ranking_gives_the_dense_rankings_metrics(split):
    data, knowledge = random_problem(np.random.default_rng(4), 40, 120, 27, ("MF", "AE", "GNN"), length=66)
    evaluator = CandidateEvaluator(knowledge.final_rankings, knowledge.n_items, data, split, ks=(10, 50))
    dense_users, final = [], tf.constant(knowledge.final_rankings)
    for tau, weights in CASES:
        got = evaluator(tau, weights)
        dense = evaluate(
            lambda users, w=weights, t=tau: importance(tf.gather(final, users, axis=1), 120, t, w),
            data,
            split,
            (10, 50),
        )
        assert list(got) == list(dense)
        # the means sum the users in another order: equal within float32 rounding of a sum of 40 terms
        assert got == pytest.approx(dense, abs=1e-6), (tau, weights)
        if tau >= 1:  # TensorFlow flushes subnormal votes to 0 where NumPy keeps them: at τ = 0.3 they order the tail
            reference = reference_importance(knowledge.final_rankings, 120, tau, weights).astype(np.float32)
            expected = evaluate(lambda users, scores=reference: tf.gather(scores, users), data, split, (10, 50))
            assert got == pytest.approx(expected, abs=1e-6), (tau, weights)
        dense_users.append(int(evaluator._candidate_sums(tf.constant(tau), tf.constant(weights))[1].numpy().sum()))
    n_users = len(evaluator.users)
    assert dense_users[0] == dense_users[1] == 0  # every user ranked over candidates alone
    assert dense_users[3] == n_users and any(0 < n < n_users for n in dense_users)  # the fallback, alone and mixed


def test_users_and_weights_are_checked_like_the_dense_evaluation():
    data, knowledge = random_problem(np.random.default_rng(4), 40, 120, 27, ("MF", "AE"), length=66)
    sample = np.array([3, 1, 3, 17])
    evaluator = CandidateEvaluator(knowledge.final_rankings, knowledge.n_items, data, "valid", users=sample)
    reference = reference_importance(knowledge.final_rankings, knowledge.n_items, 10.0).astype(np.float32)
    expected = evaluate(lambda users: tf.gather(reference, users), data, "valid", users=sample)
    assert evaluator(10.0, [1.0, 1.0]) == pytest.approx(expected, abs=1e-6)
    np.testing.assert_array_equal(evaluator.users, [1, 3, 17])
    with pytest.raises(HetCompError, match="teacher_weights"):
        evaluator(10.0, [0.0, 0.0])
    with pytest.raises(HetCompError, match="split 'train'"):
        CandidateEvaluator(knowledge.final_rankings, knowledge.n_items, data, "train")
