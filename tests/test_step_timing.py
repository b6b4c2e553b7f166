"""The step micro-benchmark (`hetcomp steptime`) on tiny synthetic data: what it times and writes."""

from __future__ import annotations

import json

import numpy as np

from hetcomp_tf.bench.step_timing import random_knowledge
from hetcomp_tf.cli import main
from hetcomp_tf.config import get_profile

TINY = get_profile("tiny")


def test_random_knowledge_holds_distinct_unobserved_items(tiny_dataset):
    knowledge = random_knowledge(tiny_dataset, TINY.trajectory)
    rankings = knowledge.rankings
    assert rankings.shape == (6, TINY.trajectory.n_checkpoints, tiny_dataset.n_users, TINY.trajectory.top_n)
    train = tiny_dataset.train
    for user in range(0, tiny_dataset.n_users, 37):
        listed = rankings[0, 0, user][rankings[0, 0, user] >= 0]
        assert len(set(listed)) == len(listed) and not set(listed) & set(train.row(user))


def test_steptime_command_times_each_loss_and_the_dense_pass(tmp_path, capsys, tiny_dataset):
    out = tmp_path / "steptime.json"
    assert (
        main(
            [
                "steptime",
                "--data",
                "synthetic",
                "--profile",
                "tiny",
                "--methods",
                "ensemble_kd,wo_kd",
                "--epochs",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert result["steps_per_epoch"] == -(-tiny_dataset.train.nnz // TINY.distill.batch_size)  # interaction batches
    assert 1 <= result["users_per_step"] <= tiny_dataset.n_users
    assert {result[m]["loss"] for m in ("ensemble_kd", "wo_kd")} == {"fine", "bpr"}
    assert all(result[m]["epoch_seconds"] > 0 for m in ("ensemble_kd", "wo_kd"))
    assert result["dense_pass"]["xla_ms"] > 0 and result["dense_pass"]["graph_ms"] > 0
    assert "evaluate_seconds" not in result  # only timed with hetcomp_no_adt's DKC
    assert "ensemble_fit_seconds" not in result  # only timed for fitted targets, tiny's are equal
    table = capsys.readouterr().out
    assert "ensemble_kd" in table and np.isfinite(float(table.split("ensemble_kd")[1].split()[0]))


def test_steptime_times_the_ensembles_fit_for_fitted_targets(tmp_path, capsys):
    out = tmp_path / "steptime.json"
    argv = ["steptime", "--data", "synthetic", "--profile", "tiny", "--methods", "wo_kd", "--epochs", "1"]
    assert main([*argv, "--set", "targets=fitted", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["ensemble_fit_seconds"] > 0
    assert "the ensemble's fit on valid" in capsys.readouterr().out
