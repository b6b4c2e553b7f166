"""hetcomp_tf/latency.py: the ensemble path against a NumPy reference, and the shape of the measurement.

No timing assertions (shared 2-core machines): only that every number is positive and finite, and that sizes
and ratios are the ones the models imply.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hetcomp_tf.config import TEACHER_NAMES, get_profile
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.latency import LATENCY_KEYS, ensemble_recommender, format_latency_table, measure_latency
from hetcomp_tf.models import build_teacher
from hetcomp_tf.student import Student
from serving.export import export_student


@pytest.fixture(scope="module")
def models(tiny_dataset):
    """The six teachers and a student, untrained: serving cost does not depend on what the weights learned."""
    profile = get_profile("tiny")
    teachers = {name: build_teacher(name, tiny_dataset, profile.teachers[name], seed=1) for name in TEACHER_NAMES}
    return teachers, Student(tiny_dataset.n_users, tiny_dataset.n_items, dim=8, seed=2)


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


def test_ensemble_recommender_returns_the_top_k_of_the_consolidated_importance(models, tiny_dataset):
    teachers, _ = models
    users = [0, 13, 250]
    top = ensemble_recommender(list(teachers.values()), tiny_dataset, k=20, top_n=30, tau=10.0)(np.array(users))
    for row, user in zip(top.numpy(), users):
        importance = reference_ensemble_importance(teachers, tiny_dataset, user, top_n=30, tau=10.0)
        # Tie-robust: the returned items carry the 20 largest importances, in order, and none is a train item.
        np.testing.assert_allclose(importance[row], np.sort(importance)[::-1][:20], rtol=1e-5)
        assert not set(row) & set(tiny_dataset.train.row(user))


def test_measure_latency_reports_positive_finite_numbers_and_consistent_ratios(models, tiny_dataset, tmp_path):
    teachers, student = models
    result = measure_latency(export_student(student, tiny_dataset, str(tmp_path)), teachers, tiny_dataset, k=10,
                             top_n=20, requests=6, warmup=2, batch_sizes=(1, 8))
    assert result["ensemble"]["teachers"] == list(TEACHER_NAMES)
    assert result["student"]["params"] == (tiny_dataset.n_users + tiny_dataset.n_items) * 8
    assert result["student"]["variable_bytes"] == 4 * result["student"]["params"]
    expected_params = sum(w.size for t in teachers.values() for w in t.get_weights())  # no non-trainable weights
    assert result["ensemble"]["params"] == expected_params
    assert result["ensemble"]["variable_bytes"] == 4 * expected_params
    assert result["student"]["savedmodel_bytes"] > result["student"]["variable_bytes"]
    for side in ("student", "ensemble"):
        assert set(result[side]["latency"]) == {"batch_1", "batch_8"}
        for summary in result[side]["latency"].values():
            assert set(summary) == set(LATENCY_KEYS)
            assert all(math.isfinite(v) and v > 0 for v in summary.values())
            assert summary["p50_ms"] <= summary["p99_ms"]
    for batch in ("batch_1", "batch_8"):
        s, e = result["student"]["latency"][batch], result["ensemble"]["latency"][batch]
        assert result["ratio"][batch]["p50_ms"] == pytest.approx(e["p50_ms"] / s["p50_ms"])
        assert result["ratio"][batch]["users_per_second"] == pytest.approx(s["users_per_second"] / e["users_per_second"])
    assert result["ratio"]["params"] == pytest.approx(expected_params / result["student"]["params"])
    table = format_latency_table(result)
    assert table.splitlines()[0].split()[:3] == ["p50_ms@1", "p99_ms@1", "users_per_second@1"]
    assert [line.split()[0] for line in table.splitlines()[2:]] == ["student", "ensemble", "ratio"]


def test_measure_latency_rejects_empty_runs(models, tiny_dataset):
    teachers, student = models
    with pytest.raises(HetCompError, match="requests=0"):
        measure_latency(student.score_all, teachers, tiny_dataset, requests=0)
    with pytest.raises(HetCompError, match="no teachers"):
        measure_latency(student.score_all, {}, tiny_dataset)


def test_latency_command_writes_student_ensemble_and_ratio_and_rejects_bad_batch_sizes(tiny_dataset, tmp_path, capsys):
    from hetcomp_tf.cli import main

    out = tmp_path / "l.json"
    assert main(["latency", "--data", "synthetic", "--profile", "tiny", "--requests", "5", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["teacher_weights"] == result["student_weights"] == \
        "initialised (latency does not depend on weight values)"
    assert result["ensemble"]["teachers"] == list(TEACHER_NAMES) and result["requests"] == 5
    student_dim = get_profile("tiny").distill.student_dim
    assert result["student"]["params"] == (tiny_dataset.n_users + tiny_dataset.n_items) * student_dim
    for side in ("student", "ensemble"):
        numbers = [result[side]["params"], result[side]["variable_bytes"], *result[side]["latency"]["batch_1"].values()]
        assert all(math.isfinite(v) and v > 0 for v in numbers)
    ratios = [result["ratio"]["params"], result["ratio"]["variable_bytes"], *result["ratio"]["batch_1"].values()]
    assert all(math.isfinite(v) and v > 0 for v in ratios)
    assert "ratio" in capsys.readouterr().out
    assert main(["latency", "--data", "synthetic", "--profile", "tiny", "--batch-sizes", "x",
                 "--out", str(tmp_path / "bad.json")]) == 2
    assert not (tmp_path / "bad.json").exists()
