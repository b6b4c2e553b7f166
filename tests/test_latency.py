"""hetcomp_tf/bench/latency.py and `hetcomp latency`: the ensemble's and a scored teacher's answers against NumPy
references, the shape of the measurement, and the command timing every model as deployed (each teacher, the
ensemble, students of several sizes) through SavedModels that answer as the models they export.

No timing assertions (shared 2-core machines): only that every number is positive and finite, and that sizes are
the ones the models imply.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hetcomp_tf.bench.latency import (
    LATENCY_KEYS,
    ensemble_recommender,
    ensemble_servable,
    format_latency_table,
    measure_latency,
    saved_model_servable,
    scoring_servable,
    student_key,
    unobserved_topk_recommender,
)
from hetcomp_tf.config import TEACHER_NAMES, get_profile
from hetcomp_tf.distill.student import Student, save_student
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.models import build_teacher
from hetcomp_tf.teachers.training import count_params
from serving.export import export_model
from tests.helpers import assert_answers_like_score_all, run_cli

TABLE_COLUMNS = {"MF": 0, "ML": 2, "GNN": 0}  # teachers served as tables: extra columns beyond their dim


@pytest.fixture(scope="module")
def teachers(tiny_dataset):
    """The six teachers, untrained: serving cost does not depend on what the weights learned."""
    profile = get_profile("tiny")
    return {name: build_teacher(name, tiny_dataset, profile.teachers[name], seed=1) for name in TEACHER_NAMES}


def reference_ensemble_importance(teachers, data, user: int, top_n: int, tau: float) -> np.ndarray:
    """Slow and obvious: each teacher's top-N unobserved items by score, importance = sum of exp(-rank/tau)."""
    importance = np.zeros(data.n_items)
    train = set(data.train.row(user))
    for teacher in teachers.values():
        scores = teacher.score_all([user]).numpy()[0]
        ranked = [i for i in np.argsort(-scores, kind="stable") if i not in train][:top_n]
        for rank, item in enumerate(ranked, start=1):
            importance[item] += math.exp(-rank / tau)
    return importance


def test_ensemble_recommender_returns_the_top_k_of_the_consolidated_importance(teachers, tiny_dataset):
    users = [0, 13, 250]
    top = ensemble_recommender(list(teachers.values()), tiny_dataset, k=20, top_n=30, tau=10.0)(np.array(users))
    for row, user in zip(top.numpy(), users):
        importance = reference_ensemble_importance(teachers, tiny_dataset, user, top_n=30, tau=10.0)
        # Tie-robust: the returned items carry the 20 largest importances, in order, and none is a train item.
        np.testing.assert_allclose(importance[row], np.sort(importance)[::-1][:20], rtol=1e-5)
        assert not set(row) & set(tiny_dataset.train.row(user))


def test_a_scored_teacher_answers_the_top_k_of_its_unobserved_items(teachers, tiny_dataset):
    """NeuMF as deployed: its score_all, train items excluded, top-K (scores compared: ties aside)."""
    users = [3, 99, 311]
    top = unobserved_topk_recommender(teachers["DL"], tiny_dataset, k=15)(np.array(users, np.int32)).numpy()
    scores = teachers["DL"].score_all(users).numpy()
    for row, user, user_scores in zip(top, users, scores):
        user_scores[tiny_dataset.train.row(user)] = -np.inf
        np.testing.assert_array_equal(user_scores[row], np.sort(user_scores)[::-1][:15])  # same floats: exact
        assert not set(row) & set(tiny_dataset.train.row(user))


def test_measure_latency_reports_every_model_with_its_costs(teachers, tiny_dataset, tmp_path):
    student = Student(tiny_dataset.n_users, tiny_dataset.n_items, dim=8, seed=2)
    servables = {
        "teacher:AE": scoring_servable(teachers["AE"], tiny_dataset, 10),
        "ensemble": ensemble_servable(teachers, tiny_dataset, 10, top_n=20, tau=10.0),
        student_key(8): saved_model_servable(export_model(student, tiny_dataset, str(tmp_path)), tiny_dataset, 10),
    }
    result = measure_latency(servables, tiny_dataset, requests=6, warmup=2, batch_sizes=(1, 8))
    models = result["models"]
    assert list(models) == ["teacher:AE", "ensemble", "student:d8"] and result["batch_sizes"] == [1, 8]
    assert [models[key]["served_as"] for key in models] == ["scoring", "ensemble", "savedmodel"]
    assert models["student:d8"]["params"] == (tiny_dataset.n_users + tiny_dataset.n_items) * 8
    assert models["teacher:AE"]["params"] == count_params(teachers["AE"])
    expected_params = sum(w.size for t in teachers.values() for w in t.get_weights())  # no non-trainable weights
    assert models["ensemble"]["params"] == expected_params and models["ensemble"]["teachers"] == list(TEACHER_NAMES)
    for model in models.values():
        assert model["variable_bytes"] == 4 * model["params"]
        assert_sane_latency(model, (1, 8))
    assert models["student:d8"]["savedmodel_bytes"] > models["student:d8"]["variable_bytes"]
    table = format_latency_table(result).splitlines()
    assert table[0].split()[:4] == ["served_as", "p50_ms@1", "p99_ms@1", "users_per_second@1"]
    assert [line.split()[0] for line in table[2:]] == list(models)


def assert_sane_latency(model: dict, batch_sizes) -> None:
    assert set(model["latency"]) == {f"batch_{b}" for b in batch_sizes}
    for summary in model["latency"].values():
        assert set(summary) == set(LATENCY_KEYS)
        assert all(math.isfinite(v) and v > 0 for v in summary.values())
        assert summary["p50_ms"] <= summary["p99_ms"]


def test_measure_latency_rejects_empty_runs(teachers, tiny_dataset):
    servables = {"teacher:AE": scoring_servable(teachers["AE"], tiny_dataset, 10)}
    with pytest.raises(HetCompError, match="requests=0"):
        measure_latency(servables, tiny_dataset, requests=0)
    with pytest.raises(HetCompError, match="no models"):
        measure_latency({}, tiny_dataset)
    with pytest.raises(HetCompError, match="an ensemble of no teachers"):
        ensemble_servable({}, tiny_dataset, 10, top_n=20, tau=10.0)


@pytest.mark.slow
def test_latency_command_times_every_model_as_deployed(tiny_dataset, tmp_path):
    """Six teachers, the ensemble and three students (two initialised, one trained from --student), and the kept
    SavedModels are the ones that answer like the models' score_all."""
    profile = get_profile("tiny")
    trained = Student(tiny_dataset.n_users, tiny_dataset.n_items, dim=6, seed=9)
    save_student(trained, tmp_path / "student")
    out, exports = tmp_path / "l.json", tmp_path / "exports"
    result = run_cli(
        [
            "latency",
            "--data",
            "synthetic",
            "--profile",
            "tiny",
            "--requests",
            "3",
            "--batch-sizes",
            "1,4",
            "--student-dims",
            "4,12",
            "--student",
            str(tmp_path / "student"),
            "--seed",
            "5",
            "--export-dir",
            str(exports),
            "--out",
            str(out),
        ]
    )
    assert result.code == 0, result.stderr[-3000:]
    assert "latency: batch 4: 3/3 requests timed" in result.stderr
    saved = json.loads(out.read_text())
    models = saved["models"]
    students = ["student:d4", "student:d12", "student:d6"]
    assert list(models) == [f"teacher:{name}" for name in TEACHER_NAMES] + ["ensemble", *students]
    assert (saved["k"], saved["requests"], saved["batch_sizes"]) == (50, 3, [1, 4])
    users_and_items = tiny_dataset.n_users + tiny_dataset.n_items
    for name in TEACHER_NAMES:
        model, teacher = models[f"teacher:{name}"], build_teacher(name, tiny_dataset, profile.teachers[name], seed=5)
        if name in TABLE_COLUMNS:
            assert model["served_as"] == "savedmodel" and model["savedmodel"] == f"teacher-{name}/1"
            assert model["params"] == users_and_items * (profile.teachers[name].dim + TABLE_COLUMNS[name])
            assert_answers_like_score_all(exports / model["savedmodel"], teacher, tiny_dataset, [0, 77, 399], k=10)
        else:
            assert model["served_as"] == "scoring" and "savedmodel" not in model
            assert model["params"] == count_params(teacher)
    for key, dim, student in [
        ("student:d4", 4, Student(tiny_dataset.n_users, tiny_dataset.n_items, 4, seed=5)),
        ("student:d6", 6, trained),
    ]:
        assert (
            models[key]["params"] == users_and_items * dim and models[key]["savedmodel"] == f"{key.replace(':', '-')}/1"
        )
        assert_answers_like_score_all(exports / models[key]["savedmodel"], student, tiny_dataset, [1, 200], k=10)
    assert models["student:d6"]["weights"] == str(tmp_path / "student")
    assert (
        models["student:d12"]["weights"]
        == models["ensemble"]["weights"]
        == "initialised (latency does not depend on weight values)"
    )
    for model in models.values():
        assert_sane_latency(model, (1, 4))
        assert model["variable_bytes"] == 4 * model["params"]
    assert [line.split()[0] for line in result.stdout.splitlines()[3:]] == list(models)


def test_latency_command_times_the_teachers_it_is_given(tmp_path):
    """--teachers MF,AE: those two alone and their ensemble, whose parameters are theirs."""
    out = tmp_path / "l.json"
    argv = ["latency", "--data", "synthetic", "--profile", "tiny", "--requests", "2", "--student-dims", "4"]
    result = run_cli([*argv, "--teachers", "MF,AE", "--out", str(out)])
    assert result.code == 0, result.stderr[-3000:]
    models = json.loads(out.read_text())["models"]
    assert list(models) == ["teacher:MF", "teacher:AE", "ensemble", "student:d4"]
    assert models["ensemble"]["params"] == models["teacher:MF"]["params"] + models["teacher:AE"]["params"]


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--batch-sizes", "x", "--batch-sizes: 'x' is not a comma-separated list of batch sizes"),
        ("--student-dims", "8,0", "--student-dims: '8,0' must list positive dimensions"),
        ("--export-dir", "FULL", "exists and is not an empty directory"),
    ],
)
def test_latency_command_rejects_bad_options_writing_nothing(option, value, message, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    value = str(full) if value == "FULL" else value
    result = run_cli(
        ["latency", "--data", "synthetic", "--profile", "tiny", option, value, "--out", str(tmp_path / "bad.json")]
    )
    assert result.code == 2 and message in result.stderr
    assert not (tmp_path / "bad.json").exists() and [p.name for p in full.iterdir()] == ["keep.txt"]
