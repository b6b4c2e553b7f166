"""The shared teacher loop on tiny synthetic data with MF: early stopping, best weights, trajectory, logs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hetcomp_tf.config import MFConfig, TrajectoryConfig, get_profile
from hetcomp_tf.data.loading import load_dataset
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.metrics import evaluate
from hetcomp_tf.teachers.training import train_teacher
from hetcomp_tf.teachers.trajectories import rank_users, select_checkpoints
from hetcomp_tf.util.files import read_json
from tests.helpers import read_scalars

CFG = MFConfig(dim=16, epochs=60, batch_size=128, learning_rate=0.01, eval_every=2, patience=2)
TRAJ = TrajectoryConfig(n_checkpoints=4, fractions=(0.4, 0.7, 0.9), top_n=40)


class RecordingProgress:
    instances: list = []

    def __init__(self, what, total, done_before=0):
        self.what, self.total, self.updates = what, total, []
        RecordingProgress.instances.append(self)

    def update(self, done, detail=""):
        self.updates.append((done, detail))


@pytest.fixture(scope="module")
def data():
    profile = get_profile("tiny")
    return load_dataset("synthetic", None, dataclasses.replace(profile.data, synthetic_users=150, synthetic_items=120))


@pytest.fixture(scope="module")
def mf_run(data, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("logs")
    RecordingProgress.instances.clear()
    return train_teacher("MF", data, CFG, TRAJ, seed=1, log_dir=log_dir, progress=RecordingProgress), log_dir


def evaluations(run):
    return [h for h in run.history if "valid" in h]


def test_early_stopping_and_best_weights_restored(data, mf_run):
    run, _ = mf_run
    assert run.epochs < CFG.epochs, "tiny MF at lr 0.01 plateaus long before 60 epochs"
    evals = evaluations(run)
    recalls = [e["valid"]["recall@50"] for e in evals]
    best = int(np.argmax(recalls))
    assert len(evals) - 1 - best == CFG.patience  # stopped exactly `patience` evaluations after the best
    assert run.valid == evals[best]["valid"]
    assert evaluate(run.teacher.score_all, data, "valid")["recall@50"] == pytest.approx(recalls[best], abs=1e-7)
    assert run.test == evaluate(run.teacher.score_all, data, "test")
    assert run.params == (data.n_users + data.n_items) * CFG.dim


def test_trajectory_checkpoints_and_rankings(data, mf_run):
    run, _ = mf_run
    traj = run.trajectory
    epochs = [c["epoch"] for c in traj.checkpoints]
    assert len(epochs) == TRAJ.n_checkpoints and epochs == sorted(epochs)
    assert traj.checkpoints[-1]["valid"] == run.valid
    evals = evaluations(run)
    chosen = select_checkpoints([e["valid"]["recall@50"] for e in evals], TRAJ.fractions)
    assert epochs == [evals[i]["epoch"] for i in chosen]
    assert traj.rankings.shape == (TRAJ.n_checkpoints, data.n_users, TRAJ.top_n) and traj.rankings.dtype == np.int32
    for t in range(TRAJ.n_checkpoints):
        for u in range(data.n_users):
            train_items = set(data.train.row(u))
            listed = traj.rankings[t, u][traj.rankings[t, u] >= 0]
            assert len(listed) == min(TRAJ.top_n, data.n_items - len(train_items)) == len(set(listed))
            assert not train_items & set(listed)
    final, observed = rank_users(run.teacher.score_all, data.train, data.n_items, TRAJ.top_n)
    np.testing.assert_array_equal(traj.rankings[-1], final)  # the last checkpoint is the restored model
    np.testing.assert_array_equal(traj.observed.indices, observed.indices)
    for u in range(data.n_users):
        assert sorted(traj.observed.row(u)) == sorted(data.train.row(u))


def test_progress_and_tensorboard_scalars(mf_run):
    run, log_dir = mf_run
    (progress,) = RecordingProgress.instances
    assert (progress.what, progress.total) == ("MF epoch", CFG.epochs)
    assert [done for done, _ in progress.updates] == list(range(1, run.epochs + 1))
    assert "valid recall@50" in progress.updates[1][1] and "loss" in progress.updates[0][1]
    scalars = read_scalars(log_dir / "MF")
    assert [step for step, _ in scalars["train/loss"]] == list(range(1, run.epochs + 1))
    np.testing.assert_allclose([v for _, v in scalars["train/loss"]], [h["loss"] for h in run.history], rtol=1e-6)
    for k in (10, 20, 50):
        for metric in ("recall", "ndcg"):
            assert [step for step, _ in scalars[f"valid/{metric}@{k}"]] == [e["epoch"] for e in evaluations(run)]


def test_bad_loop_config_is_rejected(data):
    with pytest.raises(HetCompError, match="patience=0"):
        train_teacher("MF", data, dataclasses.replace(CFG, patience=0), TRAJ, progress=None)


def test_early_stopping_on_a_sample_of_valid_users(data):
    """eval_users: each evaluation scores the fixed sample only; checkpoints are chosen by the sample's Recall@50,
    and the kept ones are evaluated (and ranked) over every valid user, the teacher left at the sample's best."""
    cfg = dataclasses.replace(CFG, eval_users=60)
    run = train_teacher("MF", data, cfg, TRAJ, seed=1, progress=None)
    assert run.finish_seconds > 0 and run.to_dict()["finish_seconds"] == run.finish_seconds  # ranking, reported
    evals = evaluations(run)
    chosen = select_checkpoints([e["valid"]["recall@50"] for e in evals], TRAJ.fractions)
    assert [c["epoch"] for c in run.trajectory.checkpoints] == [evals[i]["epoch"] for i in chosen]
    assert [c["valid_sample"] for c in run.trajectory.checkpoints] == [evals[i]["valid"] for i in chosen]
    assert run.valid == run.trajectory.checkpoints[-1]["valid"] == evaluate(run.teacher.score_all, data, "valid")
    assert run.valid != run.trajectory.checkpoints[-1]["valid_sample"]  # 60 of 150 users: the means differ
    sample = np.sort(np.random.default_rng(1).choice(np.flatnonzero(data.valid.lengths() > 0), 60, replace=False))
    assert run.trajectory.checkpoints[-1]["valid_sample"] == evaluate(
        run.teacher.score_all, data, "valid", users=sample
    )
    final, _ = rank_users(run.teacher.score_all, data.train, data.n_items, TRAJ.top_n)
    np.testing.assert_array_equal(run.trajectory.rankings[-1], final)


class Interrupt(Exception):
    pass


def interrupting_at(epoch: int):
    """A progress whose update stops the run after `epoch` (as a machine going down would)."""

    class Interrupting(RecordingProgress):
        def update(self, done, detail=""):
            if done == epoch:
                raise Interrupt
            super().update(done, detail)

    return Interrupting


@pytest.mark.slow
@pytest.mark.parametrize("eval_users", [0, 60], ids=["every-user", "sampled"])
def test_a_resumed_teacher_trains_as_an_uninterrupted_one(data, tmp_path, eval_users):
    """Stopped after its 5th evaluation and run again, the teacher goes on from that evaluation (not from scratch) and
    ends with the same history, trajectory and weights as a run never stopped: every epoch's sampling is seeded by
    epoch, and the optimiser's slots are part of the state."""
    cfg = dataclasses.replace(CFG, eval_users=eval_users)
    whole = train_teacher("MF", data, cfg, TRAJ, seed=1, progress=None)
    assert whole.epochs > 12, "the interruption below falls inside training"
    with pytest.raises(Interrupt):
        train_teacher("MF", data, cfg, TRAJ, seed=1, progress=interrupting_at(10), resume_dir=tmp_path / "state")
    for index in range(5, 30):  # files a crash left after the state, under the names later records take
        np.savez(tmp_path / "state" / "records" / f"{index}.npz", top=np.zeros(1), arr_0=np.zeros(1))
    RecordingProgress.instances.clear()
    resumed = train_teacher("MF", data, cfg, TRAJ, seed=1, progress=RecordingProgress, resume_dir=tmp_path / "state")
    (progress,) = RecordingProgress.instances
    assert progress.updates[0][0] == 11  # the 10 epochs saved were not trained again
    assert resumed.epochs == whole.epochs and resumed.early_stopped == whole.early_stopped
    # the same float32 computations in the same order: equal up to the last bit on one machine; a tolerance of a few
    # ulps covers a thread-count-dependent reduction order in the loss's sum
    np.testing.assert_allclose([h["loss"] for h in resumed.history], [h["loss"] for h in whole.history], rtol=1e-6)
    assert evaluations(resumed) == evaluations(whole)
    assert resumed.trajectory.checkpoints == whole.trajectory.checkpoints
    np.testing.assert_array_equal(resumed.trajectory.rankings, whole.trajectory.rankings)
    for a, b in zip(resumed.teacher.variables, whole.teacher.variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-7)
    assert resumed.test == pytest.approx(whole.test, abs=1e-9)


def test_a_teacher_state_of_another_config_is_refused(data, tmp_path):
    with pytest.raises(Interrupt):
        train_teacher("MF", data, CFG, TRAJ, seed=1, progress=interrupting_at(4), resume_dir=tmp_path)
    with pytest.raises(HetCompError, match="another teacher, config or seed; remove it"):
        train_teacher("MF", data, dataclasses.replace(CFG, learning_rate=0.02), TRAJ, seed=1, resume_dir=tmp_path)


def test_a_resumed_state_keeps_only_the_records_it_names(data, tmp_path):
    """Record files are written before the state naming them and removed after the state that drops them: after an
    interruption the records directory holds exactly the state's records."""
    cfg = dataclasses.replace(CFG, eval_users=60)
    with pytest.raises(Interrupt):
        train_teacher("MF", data, cfg, TRAJ, seed=1, progress=interrupting_at(12), resume_dir=tmp_path)
    state = read_json(tmp_path / "state" / "state.json")
    assert sorted(p.name for p in (tmp_path / "records").iterdir()) == sorted(
        f"{i}.npz" for i in state["recorder"]["records"]
    )
    assert state["epochs"] == 12 and len(state["recorder"]["evaluations"]) == 6


def test_a_resumed_runs_eta_counts_only_the_epochs_it_trained(monkeypatch):
    """After resuming at epoch 40 of 100, 10 epochs in 10 s mean 50 s left, not 50 x 10/50."""
    from hetcomp_tf.util import progress as module

    clock = iter([0.0, 10.0])
    monkeypatch.setattr(module.time, "perf_counter", lambda: next(clock))
    assert module.Progress("MF epoch", 100, done_before=40).eta(50) == pytest.approx(50.0)
