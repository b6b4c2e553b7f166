"""Checkpoint rule on synthetic learning curves, batched ranking vs NumPy, and the on-disk format."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from hetcomp_tf.config import TrajectoryConfig
from hetcomp_tf.data.dataset import CSR, Dataset
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.metrics import evaluate
from hetcomp_tf.teachers.trajectories import (
    SampledTrajectoryRecorder,
    Trajectory,
    TrajectoryRecorder,
    check_trajectory_config,
    load_trajectories,
    prunable_records,
    rank_users,
    save_trajectories,
    select_checkpoints,
)
from hetcomp_tf.util import files

FRACTIONS = (0.4, 0.7, 0.9)


@pytest.mark.parametrize(
    "curve, expected",
    [
        ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], [3, 6, 8, 9]),  # steady: first to reach each fraction
        ([0.01, 0.02, 0.5, 0.6], [0, 1, 2, 3]),  # one jump reaches every fraction: earlier records instead
        ([0.3, 0.1, 0.5, 0.2, 0.55], [0, 0, 2, 4]),  # evaluation 1 is no record; nothing before evaluation 0
        ([0.1, 0.5, 0.5, 0.4], [0, 0, 0, 1]),  # the best is the first evaluation reaching the maximum
        ([0.3], [0, 0, 0, 0]),
        ([0.0, 0.0, 0.0], [0, 0, 0, 0]),  # nothing learned: the first evaluation throughout
        ([0.2, 0.25, 0.3, 0.9, 0.95, 1.0, 0.7], [1, 2, 3, 5]),  # fallbacks cascade to earlier records
    ],
)
def test_select_checkpoints_on_hand_made_curves(curve, expected):
    assert select_checkpoints(curve, FRACTIONS) == expected


def test_select_checkpoints_properties_on_random_curves():
    rng = np.random.default_rng(0)
    for _ in range(200):
        noise = rng.random(rng.integers(1, 15))
        rising = np.maximum(np.maximum.accumulate(noise) - 0.3 * rng.random(noise.size), 0.0)  # noisy learning
        curve = [float(r) for r in (rising if rng.random() < 0.5 else noise)]
        chosen = select_checkpoints(curve, FRACTIONS)
        best = int(np.argmax(curve))
        assert len(chosen) == 4 and chosen[-1] == best
        assert all(a <= b for a, b in zip(chosen, chosen[1:]))
        for t, fraction in enumerate(FRACTIONS):
            first_reaching = next(i for i, r in enumerate(curve) if r >= fraction * curve[best])
            if first_reaching < chosen[t + 1]:
                assert chosen[t] == first_reaching
            else:  # fallback: the best evaluation strictly before the next checkpoint, if any
                assert chosen[t] == (int(np.argmax(curve[: chosen[t + 1]])) if chosen[t + 1] > 0 else 0)


@pytest.mark.parametrize(
    "cfg, message",
    [
        (TrajectoryConfig(n_checkpoints=3, fractions=(0.4, 0.7, 0.9)), "n_checkpoints - 1"),
        (TrajectoryConfig(fractions=(0.4, 0.0, 0.9)), r"\(0, 1\]"),
        (TrajectoryConfig(top_n=500), "top_n=500"),
    ],
)
def test_bad_trajectory_config_is_rejected(cfg, message):
    with pytest.raises(HetCompError, match=message):
        check_trajectory_config(cfg, n_items=100)


def test_rank_users_matches_numpy_reference():
    rng = np.random.default_rng(1)
    n_users, n_items, top_n = 13, 25, 8
    rows = [np.sort(rng.choice(n_items, size=rng.integers(0, 10), replace=False)) for _ in range(n_users)]
    rows[4] = np.arange(n_items - 3)  # only 3 unobserved items: −1 padding
    train = CSR.from_rows(rows)
    scores = rng.normal(size=(n_users, n_items)).astype(np.float32)
    top, observed = rank_users(lambda ids: tf.gather(scores, ids), train, n_items, top_n, batch_size=5)
    assert top.dtype == np.int32 and top.shape == (n_users, top_n)
    np.testing.assert_array_equal(observed.indptr, train.indptr)
    for u, row in enumerate(rows):
        unobserved = [i for i in np.argsort(-scores[u]) if i not in set(row)]
        np.testing.assert_array_equal(top[u], (unobserved + [-1] * top_n)[:top_n])
        np.testing.assert_array_equal(observed.row(u), sorted(row, key=lambda i: -scores[u, i]))


def test_recorder_keeps_chosen_checkpoints_only():
    rng = np.random.default_rng(2)
    n_users, n_items = 6, 30
    train = CSR.from_rows([np.sort(rng.choice(n_items, 4, replace=False)) for _ in range(n_users)])
    recorder = TrajectoryRecorder(
        "MF", train, n_items, TrajectoryConfig(n_checkpoints=3, fractions=(0.5, 0.9), top_n=10)
    )
    score_tables = {}
    for epoch, recall in enumerate([0.1, 0.6, 0.3, 0.95, 1.0, 0.8], start=1):
        score_tables[epoch] = rng.normal(size=(n_users, n_items)).astype(np.float32)
        ranker = recorder.ranker(lambda ids, s=score_tables[epoch]: tf.gather(s, ids))
        ranker(tf.constant([4, 1], tf.int32))  # as the evaluation would, for some users only
        improved = recorder.observe(epoch, {"recall@50": recall}, ranker)
        assert improved == (epoch in (1, 2, 4, 5))
    traj = recorder.finish()
    assert [c["epoch"] for c in traj.checkpoints] == [2, 4, 5]
    assert [c["fraction"] for c in traj.checkpoints] == [0.5, 0.9, None]
    for t, epoch in enumerate([2, 4, 5]):
        expected, _ = rank_users(lambda ids, s=score_tables[epoch]: tf.gather(s, ids), train, n_items, 10)
        np.testing.assert_array_equal(traj.rankings[t], expected)


def test_pruned_records_are_never_chosen_later():
    """Online pruning against the rule applied to the whole curve: across many random curves (rising, noisy,
    jumping), no record dropped on the way is one the final choice needs, and the kept records stay few on a
    steady rise."""
    rng = np.random.default_rng(5)
    for trial in range(500):
        n = int(rng.integers(1, 40))
        noise = rng.random(n)
        curve = np.maximum(np.maximum.accumulate(noise) - 0.3 * rng.random(n), 0.0) if trial % 2 else noise
        if trial % 5 == 0:
            curve = np.concatenate([rng.random(n) * 0.05, 1 + rng.random(3)])  # a late jump: fallbacks cascade
        curve = [float(c) for c in curve]
        kept, running = [], -np.inf
        for index, recall in enumerate(curve):
            if recall > running:
                running = recall
                kept.append(index)
                for gone in prunable_records(kept, curve[: index + 1], FRACTIONS):
                    kept.remove(gone)
        assert set(select_checkpoints(curve, FRACTIONS)) <= set(kept), curve
    steady = [i / 100 for i in range(1, 101)]
    kept = [i for i in range(100) if i not in prunable_records(list(range(100)), steady, FRACTIONS)]
    assert kept[0] == 39 - len(FRACTIONS)  # recalls 0.37-0.39, the 3 latest below 0.4 × 1.0, then all from 0.40


class _ScoreTable(tf.Module):
    """A 'model' whose scores are one variable: each epoch assigns a new table."""

    def __init__(self, n_users, n_items):
        self.table = tf.Variable(tf.zeros((n_users, n_items)))

    def score_all(self, ids):
        return tf.gather(self.table, ids)


def test_sampled_recorder_equals_the_full_one_when_the_sample_is_everyone(capsys):
    """With every valid user in the sample, evaluations and hence records and checkpoints are the full
    recorder's; the rankings come from reloaded weights instead of the evaluation pass, and must be identical.
    Each checkpoint's ranking of every user (minutes at real size) is a progress line."""
    rng = np.random.default_rng(6)
    n_users, n_items = 20, 40
    rows = [rng.choice(n_items, 9, replace=False) for _ in range(n_users)]
    data = Dataset(
        name="r",
        user_vocab=np.arange(n_users).astype(np.str_),
        item_vocab=np.arange(n_items).astype(np.str_),
        train=CSR.from_rows([np.sort(r[:5]) for r in rows]),
        valid=CSR.from_rows([np.sort(r[5:7]) for r in rows]),
        test=CSR.from_rows([np.sort(r[7:]) for r in rows]),
    )
    cfg = TrajectoryConfig(n_checkpoints=4, fractions=FRACTIONS, top_n=10)
    full, sampled = (
        TrajectoryRecorder("MF", data.train, n_items, cfg),
        SampledTrajectoryRecorder("MF", data, cfg, 10**6),
    )
    assert sampled.users.size == n_users
    model = _ScoreTable(n_users, n_items)
    truth = np.zeros((n_users, n_items), np.float32)
    for u in range(n_users):
        truth[u, data.valid.row(u)] = 1.0
    for epoch in range(1, 13):  # scores drift towards the valid items: a noisy rising curve
        model.table.assign(rng.normal(size=(n_users, n_items)).astype(np.float32) + 0.4 * epoch * truth)
        ranker = full.ranker(model.score_all)
        a = full.observe(epoch, evaluate(ranker, data, "valid"), ranker)
        b = sampled.observe_weights(epoch, sampled.evaluate(model.score_all), model)
        assert a == b
    expected, got = full.finish(), sampled.finish(model, model.score_all)
    assert [c["epoch"] for c in got.checkpoints] == [c["epoch"] for c in expected.checkpoints]
    assert [c["valid"] for c in got.checkpoints] == [c["valid"] for c in expected.checkpoints]
    assert all(c["valid_sample"] == c["valid"] for c in got.checkpoints)
    np.testing.assert_array_equal(got.rankings, expected.rankings)
    np.testing.assert_array_equal(got.observed.indices, expected.observed.indices)
    best = expected.checkpoints[-1]["epoch"]
    assert evaluate(model.score_all, data, "valid") == expected.checkpoints[-1]["valid"], best  # left at the best
    progress = capsys.readouterr().err
    for k, checkpoint in enumerate(got.checkpoints, 1):
        line = f"MF: ranking every user at checkpoint {k}/{len(got.checkpoints)} (epoch {checkpoint['epoch']})"
        assert line in progress


def test_sampled_recorder_evaluates_the_sample_only():
    rng = np.random.default_rng(7)
    n_users, n_items = 50, 30
    rows = [rng.choice(n_items, 6, replace=False) for _ in range(n_users)]
    data = Dataset(
        name="r",
        user_vocab=np.arange(n_users).astype(np.str_),
        item_vocab=np.arange(n_items).astype(np.str_),
        train=CSR.from_rows([np.sort(r[:4]) for r in rows]),
        valid=CSR.from_rows([r[4:5] for r in rows]),
        test=CSR.from_rows([r[5:] for r in rows]),
    )
    recorder = SampledTrajectoryRecorder("MF", data, TrajectoryConfig(top_n=5), 12, seed=3)
    assert recorder.users.size == 12 and np.unique(recorder.users).size == 12
    scored = []
    recorder.evaluate(lambda ids: scored.extend(ids.numpy()) or tf.zeros((len(ids), n_items)))
    assert sorted(scored) == recorder.users.tolist()


def small_trajectory(name="MF", seed=3):
    rng = np.random.default_rng(seed)
    rows = [rng.permutation(rng.choice(40, size=rng.integers(0, 6), replace=False)) for _ in range(7)]
    rankings = rng.integers(-1, 40, size=(4, 7, 10)).astype(np.int32)
    checkpoints = [
        {"epoch": 2 * t + 1, "evaluation": t, "valid": {"recall@50": 0.2 * t, "ndcg@10": 0.1}, "fraction": f}
        for t, f in enumerate([0.4, 0.7, 0.9, None])
    ]
    return Trajectory(name, rankings, CSR.from_rows(rows), checkpoints, n_items=40)


def assert_same_trajectory(a: Trajectory, b: Trajectory):
    assert (a.teacher, a.n_items, a.checkpoints) == (b.teacher, b.n_items, b.checkpoints)
    assert a.rankings.dtype == b.rankings.dtype == np.int32
    np.testing.assert_array_equal(a.rankings, b.rankings)
    np.testing.assert_array_equal(a.observed.indptr, b.observed.indptr)
    np.testing.assert_array_equal(a.observed.indices, b.observed.indices)


def test_trajectory_round_trip(tmp_path):
    trajs = [small_trajectory("GNN", 3), small_trajectory("MF", 4)]
    root = save_trajectories(trajs, tmp_path)
    assert sorted(p.name for p in root.iterdir()) == ["GNN", "MF"]
    manifest = json.loads((root / "MF" / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and manifest["top_n"] == 10 and manifest["n_users"] == 7
    assert set(manifest["files"]) == {"rankings.npy", "observed_indptr.npy", "observed_indices.npy"}
    loaded = load_trajectories(tmp_path)
    assert list(loaded) == ["MF", "GNN"]  # paper order, not directory order
    for traj in trajs:
        assert_same_trajectory(loaded[traj.teacher], traj)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "manifest.json").write_text("{not json"), "manifest.json: not a readable JSON"),
        (lambda d: (d / "manifest.json").unlink(), "manifest.json: missing"),
        (lambda d: (d / "observed_indices.npy").unlink(), "observed_indices.npy: missing"),
        (lambda d: np.save(d / "rankings.npy", np.zeros((4, 7, 10), np.int32)), "rankings.npy: sha256"),
        (
            lambda d: (d / "manifest.json").write_text(
                json.dumps({**json.loads((d / "manifest.json").read_text()), "format_version": 2})
            ),
            "manifest.json: format_version 2",
        ),
    ],
)
def test_damaged_trajectory_raises_naming_the_file(tmp_path, damage, message):
    small_trajectory().save(tmp_path / "MF")
    damage(tmp_path / "MF")
    with pytest.raises(HetCompError, match=message):
        Trajectory.load(tmp_path / "MF")


def test_failed_save_keeps_the_previous_version(tmp_path, monkeypatch):
    old, new = small_trajectory(seed=5), small_trajectory(seed=6)
    old.save(tmp_path / "MF")

    def broken_hash(path):
        raise OSError("disk full")

    monkeypatch.setattr(files, "sha256_of", broken_hash)
    with pytest.raises(OSError):
        new.save(tmp_path / "MF")
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["MF"]  # no temporary directory left behind
    assert_same_trajectory(Trajectory.load(tmp_path / "MF"), old)
    new.save(tmp_path / "MF")  # replacing an existing export works
    assert_same_trajectory(Trajectory.load(tmp_path / "MF"), new)
