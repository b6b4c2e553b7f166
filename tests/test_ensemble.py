"""The ensemble against slow, loop-by-loop NumPy references on random rankings."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import tensorflow as tf

from hetcomp_tf.data.dataset import CSR, Dataset
from hetcomp_tf.distill.ensemble import (
    EnsembleKnowledge,
    ensemble_observed,
    ensemble_topk,
    evaluate_ensemble,
    fit_ensemble,
    fit_teacher_weights,
    importance,
    select_stages,
    target_knowledge,
)
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.metrics import evaluate, valid_user_sample
from hetcomp_tf.teachers.trajectories import Trajectory
from tests.test_metrics import reference_evaluate


def random_rankings(rng, shape, n_items, max_pad):
    """int32 rankings of distinct items per list, each list with a random −1 padded tail."""
    *lead, length = shape
    out = np.full(shape, -1, np.int32)
    for index in np.ndindex(*lead):
        filled = length - rng.integers(0, max_pad + 1)
        out[index][:filled] = rng.choice(n_items, size=filled, replace=False)
    return out


def reference_importance(rankings, n_items, tau, teacher_weights=None):
    n_teachers, n_users, length = rankings.shape
    teacher_weights = [1.0] * n_teachers if teacher_weights is None else teacher_weights
    result = np.zeros((n_users, n_items))
    for x in range(n_teachers):
        for u in range(n_users):
            for position in range(length):
                item = rankings[x, u, position]
                if item >= 0:
                    result[u, item] += teacher_weights[x] * math.exp(-(position + 1) / tau)
    return result


@pytest.mark.parametrize("tau", [10.0, 2.5])
def test_importance_matches_loop_reference(tau):
    rng = np.random.default_rng(0)
    rankings = random_rankings(rng, (3, 9, 12), n_items=40, max_pad=5)
    got = importance(rankings, 40, tau).numpy()
    np.testing.assert_allclose(got, reference_importance(rankings, 40, tau), rtol=1e-6, atol=1e-6)


def test_teacher_weights_scale_each_teachers_terms():
    rng = np.random.default_rng(5)
    rankings = random_rankings(rng, (3, 6, 10), n_items=35, max_pad=3)
    weights = [0.0, 2.0, 0.5]
    np.testing.assert_allclose(
        importance(rankings, 35, 10.0, weights).numpy(),
        reference_importance(rankings, 35, 10.0, weights),
        rtol=1e-6,
        atol=1e-6,
    )
    for bad in ([1.0, 2.0], [0.0, 0.0, 0.0], [1.0, -1.0, 1.0]):
        with pytest.raises(HetCompError, match="teacher_weights"):
            importance(rankings, 35, 10.0, bad)


def test_ensemble_topk_orders_by_reference_importance():
    rng = np.random.default_rng(1)
    rankings = random_rankings(rng, (2, 7, 6), n_items=30, max_pad=4)
    reference = reference_importance(rankings, 30, 10.0)
    top = ensemble_topk(rankings, 30, k=10).numpy()
    for u in range(7):
        listed = np.count_nonzero(reference[u])
        expected = np.sort(reference[u][reference[u] > 0])[::-1][:10]
        items = top[u][top[u] >= 0]
        assert len(items) == min(10, listed) and len(set(items)) == len(items)
        assert (top[u][len(items) :] == -1).all()
        np.testing.assert_allclose(reference[u][items], expected, rtol=1e-6)


def test_select_stages_picks_each_users_checkpoint_per_teacher():
    rng = np.random.default_rng(2)
    n_teachers, n_checkpoints, n_users, length, n_items = 3, 4, 11, 8, 50
    stacked = random_rankings(rng, (n_teachers, n_checkpoints, n_users, length), n_items, max_pad=3)
    stages = rng.integers(0, n_checkpoints, size=(n_users, n_teachers)).astype(np.int32)
    selected = select_stages(stacked, stages).numpy()
    expected = np.zeros((n_teachers, n_users, length), np.int32)
    for x in range(n_teachers):
        for u in range(n_users):
            expected[x, u] = stacked[x, stages[u, x], u]
    np.testing.assert_array_equal(selected, expected)
    np.testing.assert_allclose(
        importance(selected, n_items).numpy(), reference_importance(expected, n_items, 10.0), rtol=1e-6, atol=1e-6
    )
    users = np.array([7, 2, 7], np.int32)
    np.testing.assert_array_equal(select_stages(stacked, stages[users], users).numpy(), expected[:, users])


def random_observed(rng, n_users, n_items, n_teachers):
    """The same random train rows, in an independent random order per teacher."""
    rows = [np.sort(rng.choice(n_items, size=rng.integers(0, 9), replace=False)) for _ in range(n_users)]
    return rows, [CSR.from_rows([rng.permutation(row) for row in rows]) for _ in range(n_teachers)]


@pytest.mark.parametrize("width", [None, 3])
def test_ensemble_observed_matches_reference(width):
    rng = np.random.default_rng(3)
    rows, observed = random_observed(rng, n_users=25, n_items=20, n_teachers=4)
    got = ensemble_observed(observed, width=width, tau=3.0)
    expected_width = max(len(r) for r in rows) if width is None else width
    assert got.shape == (25, expected_width) and got.dtype == np.int32
    for u, row in enumerate(rows):
        score = {item: sum(math.exp(-(list(csr.row(u)).index(item) + 1) / 3.0) for csr in observed) for item in row}
        expected = sorted(row, key=lambda item: (-score[item], item))[:expected_width]
        items = got[u][got[u] >= 0]
        assert (got[u][len(items) :] == -1).all()
        assert len(items) == len(expected) and len(set(items)) == len(items) and set(items) <= set(row)
        np.testing.assert_allclose([score[i] for i in items], [score[i] for i in expected], rtol=1e-12)


def test_ensemble_observed_rejects_teachers_with_different_train_items():
    rows = [[3, 1, 4], [5, 9]]
    good = CSR.from_rows(rows)
    other_items = CSR.from_rows([[3, 1, 4], [5, 2]])
    other_lengths = CSR.from_rows([[3, 1], [5, 9, 4]])
    with pytest.raises(HetCompError, match="teacher 1's observed items"):
        ensemble_observed([good, other_items])
    with pytest.raises(HetCompError, match="teacher 2's observed rows"):
        ensemble_observed([good, good, other_lengths])


def make_trajectory(rng, name, n_checkpoints, n_users, length, n_items, rows):
    rankings = random_rankings(rng, (n_checkpoints, n_users, length), n_items, max_pad=2)
    checkpoints = [
        {"epoch": t + 1, "evaluation": t, "valid": {"recall@50": 0.1 * t}, "fraction": None}
        for t in range(n_checkpoints)
    ]
    return Trajectory(name, rankings, CSR.from_rows([rng.permutation(r) for r in rows]), checkpoints, n_items)


def test_knowledge_stacks_trajectories_and_round_trips(tmp_path):
    rng = np.random.default_rng(5)
    rows = [rng.choice(30, size=4, replace=False) for _ in range(6)]
    trajs = {name: make_trajectory(rng, name, 3, 6, 7, 30, rows) for name in ("MF", "GNN")}
    knowledge = EnsembleKnowledge.from_trajectories(trajs, tau=4.0)
    assert knowledge.teachers == ("MF", "GNN") and knowledge.rankings.shape == (2, 3, 6, 7)
    np.testing.assert_array_equal(knowledge.final_rankings, np.stack([t.rankings[-1] for t in trajs.values()]))
    np.testing.assert_array_equal(knowledge.observed, ensemble_observed([t.observed for t in trajs.values()], tau=4.0))

    knowledge.save(tmp_path / "knowledge")
    loaded = EnsembleKnowledge.load(tmp_path / "knowledge")
    assert (loaded.teachers, loaded.n_items, loaded.tau) == (knowledge.teachers, 30, 4.0)
    np.testing.assert_array_equal(loaded.rankings, knowledge.rankings)
    np.testing.assert_array_equal(loaded.observed, knowledge.observed)
    assert [p.name for p in tmp_path.iterdir()] == ["knowledge"]  # no temporary directory left

    np.save(tmp_path / "knowledge" / "observed.npy", knowledge.observed[::-1])
    with pytest.raises(HetCompError, match="observed.npy"):
        EnsembleKnowledge.load(tmp_path / "knowledge")
    manifest = tmp_path / "knowledge" / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "format_version": 99}))
    with pytest.raises(HetCompError, match="manifest.json.*format_version"):
        EnsembleKnowledge.load(tmp_path / "knowledge")


def test_knowledge_rejects_mismatched_trajectories():
    rng = np.random.default_rng(6)
    rows = [rng.choice(30, size=4, replace=False) for _ in range(6)]
    with pytest.raises(HetCompError, match="differ in shape"):
        EnsembleKnowledge.from_trajectories(
            [make_trajectory(rng, "MF", 3, 6, 7, 30, rows), make_trajectory(rng, "ML", 2, 6, 7, 30, rows)]
        )


def random_problem(
    rng, n_users: int, n_items: int, per_user: int, teachers, length: int = 20
) -> tuple[Dataset, EnsembleKnowledge]:
    """A dataset whose users each hold `per_user` items (split 5/2/2 of 9, in proportion otherwise) and random
    two-checkpoint trajectories of `teachers`, lists of `length` items."""
    splits = [rng.permutation(n_items)[:per_user] for _ in range(n_users)]
    n_held = 2 * per_user // 9
    bounds = ((0, per_user - 2 * n_held), (per_user - 2 * n_held, per_user - n_held), (per_user - n_held, per_user))
    train, valid, test = (CSR.from_rows([np.sort(items[lo:hi]) for items in splits]) for lo, hi in bounds)
    data = Dataset(
        "tiny",
        np.array([f"u{u}" for u in range(n_users)]),
        np.array([f"i{i}" for i in range(n_items)]),
        train,
        valid,
        test,
    )
    rows = [train.row(u) for u in range(n_users)]
    trajs = [make_trajectory(rng, name, 2, n_users, length, n_items, rows) for name in teachers]
    return data, EnsembleKnowledge.from_trajectories(trajs)


def test_ensemble_evaluation_scores_with_final_checkpoint_importance():
    rng = np.random.default_rng(7)
    n_items = 60
    data, knowledge = random_problem(rng, 12, n_items, 9, ("MF", "AE"))
    reference = reference_importance(knowledge.final_rankings, n_items, 10.0).astype(np.float32)
    expected = evaluate(lambda users: tf.gather(reference, users), data, "test")
    got = evaluate_ensemble(knowledge, data, "test")
    assert got.keys() == expected.keys()
    for key in got:
        assert got[key] == pytest.approx(expected[key], abs=1e-6)


def reference_weight_fit(knowledge: EnsembleKnowledge, data: Dataset, tau: float, grid, sweeps: int = 2):
    """Coordinate ascent as `fit_teacher_weights` documents it, on the loop references: weights from all 1, one
    teacher at a time through `grid` (not all 0), a change kept only for a strictly higher valid Recall@50, up to
    `sweeps` passes (stopping after one without a change). Returns (weights, their valid Recall@50)."""

    def valid_recall(weights) -> float:
        scores = reference_importance(knowledge.final_rankings, knowledge.n_items, tau, weights)
        return reference_evaluate(scores, data, "valid", (50,))["recall@50"]

    weights = [1.0] * len(knowledge.teachers)
    best = valid_recall(weights)
    for _ in range(sweeps):
        changed = False
        for x in range(len(weights)):
            for value in grid:
                trial = [*weights[:x], value, *weights[x + 1 :]]
                if value == weights[x] or not any(trial):
                    continue
                recall = valid_recall(trial)
                if recall > best:
                    weights, best, changed = trial, recall, True
        if not changed:
            break
    return weights, best


FIT_GRID = (0.0, 1.0, 3.0)


def test_fitted_teacher_weights_equal_a_numpy_coordinate_ascent():
    """fit_teacher_weights against `reference_weight_fit` (NumPy importance and Recall@50). Two valid items per
    user make every Recall@50 a multiple of 1/60, exact in float32 and float64, so both take the same steps; lists
    of 60 of 200 items from four teachers make the top-50 a real choice among ~180 listed items."""
    teachers = ("MF", "AE", "GNN", "ML")
    data, knowledge = random_problem(np.random.default_rng(9), 30, 200, 12, teachers, length=60)
    weights, fitted_valid = fit_teacher_weights(knowledge, data, grid=FIT_GRID)
    expected_weights, expected_recall = reference_weight_fit(knowledge, data, knowledge.tau, FIT_GRID)
    assert weights == dict(zip(teachers, expected_weights))
    assert fitted_valid["recall@50"] == pytest.approx(expected_recall, abs=1e-6)
    one_sweep = reference_weight_fit(knowledge, data, knowledge.tau, FIT_GRID, sweeps=1)[0]
    assert [1.0] * 4 != one_sweep != expected_weights  # the ascent moves, and its second sweep too
    again = evaluate_ensemble(knowledge, data, "valid", teacher_weights=list(weights.values()))
    assert again == pytest.approx(fitted_valid)  # the returned metrics are the fitted ensemble's own


def test_the_fitted_tau_equals_a_numpy_search_over_its_grid():
    """fit_ensemble is the weight fit at each τ of the grid and the knowledge's own (10), keeping the first τ of
    the highest valid Recall@50 in ascending order; the reference runs `reference_weight_fit` at each."""
    data, knowledge = random_problem(np.random.default_rng(9), 30, 200, 12, ("MF", "AE", "GNN"), length=60)
    tau, weights, valid = fit_ensemble(knowledge, data, taus=(40.0, 2.0), grid=FIT_GRID)
    per_tau = {t: reference_weight_fit(knowledge, data, t, FIT_GRID) for t in (2.0, 10.0, 40.0)}
    best_tau = max(per_tau, key=lambda t: (per_tau[t][1], -t))
    assert per_tau[2.0][1] < per_tau[10.0][1] == per_tau[40.0][1]  # τ matters here, and a tie keeps the lower τ
    assert (tau, list(weights.values())) == (best_tau, per_tau[best_tau][0])
    assert valid["recall@50"] == pytest.approx(per_tau[best_tau][1], abs=1e-6)
    again = evaluate_ensemble(
        dataclasses.replace(knowledge, tau=tau), data, "valid", teacher_weights=list(weights.values())
    )
    assert again == pytest.approx(valid)


def test_a_fit_on_a_sample_of_valid_users_is_the_fit_on_those_users_alone():
    """fit_users: the coordinate ascent scores only the sample, so it is the reference fit on a split whose other
    users have no valid items; the fitted ensemble's returned metrics are over every valid user."""
    data, knowledge = random_problem(np.random.default_rng(9), 30, 200, 12, ("MF", "AE", "GNN", "ML"), length=60)
    sample = valid_user_sample(data, 12, seed=3)
    assert sample.size == 12 and np.all(np.diff(sample) > 0) and (data.valid.lengths()[sample] > 0).all()
    np.testing.assert_array_equal(sample, valid_user_sample(data, 12, seed=3))
    assert (
        valid_user_sample(data, 0) is None and valid_user_sample(data, 30) is None
    )  # 0, or not below the valid users: all
    keep = np.isin(np.arange(data.n_users), sample)
    rows = [data.valid.row(u) if keep[u] else [] for u in range(data.n_users)]
    restricted = dataclasses.replace(data, valid=CSR.from_rows(rows))
    weights, sampled_valid = fit_teacher_weights(knowledge, data, grid=FIT_GRID, users=sample)
    expected_weights, expected_recall = reference_weight_fit(knowledge, restricted, knowledge.tau, FIT_GRID)
    assert weights == dict(zip(knowledge.teachers, expected_weights))
    assert sampled_valid["recall@50"] == pytest.approx(expected_recall, abs=1e-6)
    tau, fitted_weights, valid = fit_ensemble(knowledge, data, taus=(), grid=FIT_GRID, users=sample)
    assert fitted_weights == weights
    assert valid == pytest.approx(evaluate_ensemble(knowledge, data, "valid", teacher_weights=list(weights.values())))


# ------------------------------------------------------------------------- the students' fitted targets


def test_weighted_observed_order_matches_reference():
    rng = np.random.default_rng(11)
    rows, observed = random_observed(rng, n_users=20, n_items=15, n_teachers=3)
    weights = [0.5, 0.0, 4.0]
    got = ensemble_observed(observed, tau=2.0, teacher_weights=weights)
    for u, row in enumerate(rows):
        score = {
            item: sum(w * math.exp(-(list(csr.row(u)).index(item) + 1) / 2.0) for w, csr in zip(weights, observed))
            for item in row
        }
        expected = sorted(row, key=lambda item: (-score[item], item))
        assert got[u][: len(row)].tolist() == expected and (got[u][len(row) :] == -1).all()


def test_fitted_targets_carry_the_fit_into_every_part_of_the_knowledge(tmp_path):
    rng = np.random.default_rng(12)
    n_items = 60
    data, _ = random_problem(rng, 15, n_items, 9, ("MF", "GNN", "AE"))
    trajs = [
        make_trajectory(rng, name, 2, 15, 20, n_items, [data.train.row(u) for u in range(15)])
        for name in ("MF", "GNN", "AE")
    ]
    fit = {"tau": 5.0, "weights": {"MF": 0.0, "GNN": 2.0, "AE": 0.5}}
    knowledge = target_knowledge(trajs, "fitted", 10.0, fitted=fit)
    assert knowledge.tau == 5.0 and knowledge.teacher_weights == (0.0, 2.0, 0.5)
    assert knowledge.describe() == {"tau": 5.0, "teacher_weights": fit["weights"]}
    # Scoring and the observed order are the weighted ensemble's, not the equal one's.
    reference = reference_importance(knowledge.final_rankings, n_items, 5.0, [0.0, 2.0, 0.5])
    np.testing.assert_allclose(knowledge.scorer()(tf.range(15)).numpy(), reference, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(
        knowledge.observed, ensemble_observed([t.observed for t in trajs], tau=5.0, teacher_weights=[0.0, 2.0, 0.5])
    )
    knowledge.save(tmp_path / "k")
    loaded = EnsembleKnowledge.load(tmp_path / "k")
    assert loaded.teacher_weights == knowledge.teacher_weights and loaded.tau == 5.0
    # "equal" is the paper's ensemble; knowledge saved before weights existed loads as equal.
    equal = target_knowledge(trajs, "equal", 10.0, fitted=fit)
    assert equal.teacher_weights is None and equal.tau == 10.0
    manifest = json.loads((tmp_path / "k" / "manifest.json").read_text())
    del manifest["teacher_weights"]
    (tmp_path / "k" / "manifest.json").write_text(json.dumps(manifest))
    assert EnsembleKnowledge.load(tmp_path / "k").teacher_weights is None
    with pytest.raises(HetCompError, match="no weight for teacher.*AE"):
        target_knowledge(trajs, "fitted", 10.0, fitted={"tau": 5.0, "weights": {"MF": 1.0, "GNN": 1.0}})
    with pytest.raises(HetCompError, match="targets 'best'"):
        target_knowledge(trajs, "best", 10.0)


def test_fitted_targets_without_an_earlier_fit_fit_on_valid():
    rng = np.random.default_rng(13)
    data, knowledge = random_problem(rng, 20, 60, 9, ("MF", "GNN"))
    trajs = [
        make_trajectory(rng, name, 2, 20, 20, 60, [data.train.row(u) for u in range(20)]) for name in ("MF", "GNN")
    ]
    equal = EnsembleKnowledge.from_trajectories(trajs)
    tau, weights, _ = fit_ensemble(equal, data)
    fitted = target_knowledge(trajs, "fitted", 10.0, data)
    assert fitted.tau == tau and fitted.teacher_weights == tuple(weights[name] for name in ("MF", "GNN"))
