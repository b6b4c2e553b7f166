"""TensorBoard logs of a tiny teachers run and a tiny distillation: the event files hold the expected tags, one
value per logged step, all finite — what a user opening TensorBoard on `<out>/logs` relies on."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import tensorflow as tf

from hetcomp_tf.config import TEACHER_NAMES, get_profile
from hetcomp_tf.distill import LOSSES, distill
from hetcomp_tf.ensemble import EnsembleKnowledge
from hetcomp_tf.training import train_teacher

TEACHER_EPOCHS = 2


def read_scalars(directory: Path) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} from every event file directly in `directory`."""
    scalars: dict[str, list[tuple[int, float]]] = {}
    files = sorted(directory.glob("events.out.tfevents.*"))
    assert files, f"no event file in {directory}"
    for path in files:
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, float(tf.make_ndarray(value.tensor))))
    return scalars


def assert_finite_series(scalars: dict, tag: str, steps: list[int]) -> None:
    assert tag in scalars, f"tag {tag!r} missing; have {sorted(scalars)}"
    assert [step for step, _ in scalars[tag]] == steps, tag
    assert all(math.isfinite(value) for _, value in scalars[tag]), tag


@pytest.fixture(scope="module")
def teacher_runs(tiny_dataset, tmp_path_factory):
    """All six teachers for TEACHER_EPOCHS epochs each, logging under one directory as `hetcomp teachers` does."""
    profile = get_profile("tiny")
    log_dir = tmp_path_factory.mktemp("logs") / "teachers"
    runs = {name: train_teacher(name, tiny_dataset,
                                dataclasses.replace(profile.teachers[name], epochs=TEACHER_EPOCHS, eval_every=1),
                                profile.trajectory, seed=0, log_dir=log_dir, progress=None)
            for name in TEACHER_NAMES}
    return runs, log_dir


def test_every_teacher_logs_its_loss_and_valid_metrics(teacher_runs):
    runs, log_dir = teacher_runs
    for name, run in runs.items():
        scalars = read_scalars(log_dir / name)
        steps = list(range(1, run.epochs + 1))
        assert_finite_series(scalars, "train/loss", steps)
        assert_finite_series(scalars, "valid/recall@50", steps)
        assert [v for _, v in scalars["train/loss"]] == pytest.approx([h["loss"] for h in run.history], rel=1e-6)


@pytest.fixture(scope="module")
def distill_run(tiny_dataset, teacher_runs, tmp_path_factory):
    """HetComp on the teachers' trajectories for 11 epochs: three evaluations and two DKC updates."""
    runs, _ = teacher_runs
    knowledge = EnsembleKnowledge.from_trajectories({name: run.trajectory for name, run in runs.items()})
    cfg = dataclasses.replace(get_profile("tiny").distill, method="hetcomp", epochs=11, eval_every=5, patience=5)
    log_dir = tmp_path_factory.mktemp("logs") / "distill"
    return distill(tiny_dataset, knowledge, cfg, log_dir=log_dir, progress=None), log_dir, knowledge


def test_distillation_logs_loss_valid_recall_dkc_stages_and_objective(distill_run):
    run, log_dir, knowledge = distill_run
    scalars = read_scalars(log_dir)
    epochs = list(range(1, run.epochs + 1))  # steps count the epochs trained
    assert_finite_series(scalars, "loss/total", epochs)
    evaluated = [entry["epoch"] for entry in run.history]
    assert_finite_series(scalars, "valid/recall@50", evaluated)
    assert [v for _, v in scalars["valid/recall@50"]] == pytest.approx(
        [entry["valid"]["recall@50"] for entry in run.history], rel=1e-6)
    assert_finite_series(scalars, "objective", epochs)
    objectives = [int(v) for _, v in scalars["objective"]]
    assert set(objectives) <= {LOSSES.index("overall"), LOSSES.index("fine")}
    assert objectives == sorted(objectives), "ADT switches from the overall to the fine-grained loss, never back"
    per_loss = {name: [step for step, _ in scalars.get(f"loss/{name}", [])] for name in ("overall", "fine")}
    assert sorted(per_loss["overall"] + per_loss["fine"]) == epochs  # each epoch logs the loss it trained with
    for teacher in knowledge.teachers:
        tag = f"dkc/mean_stage/{teacher}"
        assert_finite_series(scalars, tag, epochs)
        stages = [v for _, v in scalars[tag]]
        assert all(0.0 <= s <= knowledge.n_checkpoints - 1 for s in stages)
        assert stages == sorted(stages), f"{teacher}: DKC stages only move forward"
        logged = dict(scalars[tag])
        assert [logged[e] for e in evaluated] == pytest.approx(
            [entry["mean_stage"][teacher] for entry in run.history], rel=1e-6)
