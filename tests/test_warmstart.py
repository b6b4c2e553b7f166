"""Warm start (warmstart.py): every teacher and the student take an earlier snapshot's rows by id and keep fresh rows
for new ids; the teacher loop and the distiller start from them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hetcomp_tf.config import TEACHER_NAMES, get_profile
from hetcomp_tf.distill import distill
from hetcomp_tf.models import build_teacher
from hetcomp_tf.student import Student
from hetcomp_tf.training import train_teacher
from hetcomp_tf.warmstart import WarmStart, stand_in
from tests.test_models import randomize, small_cfg

TINY = get_profile("tiny")


@pytest.fixture(scope="module")
def previous(tiny_dataset):
    """An earlier snapshot's vocabularies: most of today's ids in another order, one id gone since."""
    rng = np.random.default_rng(5)
    users = np.append(rng.permutation(tiny_dataset.user_vocab)[: tiny_dataset.n_users - 30], "gone-user")
    items = np.append(rng.permutation(tiny_dataset.item_vocab)[: tiny_dataset.n_items - 20], "gone-item")
    return users, items


def rows_of(vocab, ids) -> np.ndarray:
    return np.array([int(np.flatnonzero(vocab == i)[0]) for i in ids])


def assert_warm_started(model, fresh_values, base, base_vocab, data, summary):
    """Shared ids carry the base rows, new ids the fresh model's, every other variable the base's values."""
    shared = {kind: np.intersect1d(base_vocab[kind], getattr(data, f"{kind}_vocab")) for kind in ("user", "item")}
    new = {kind: np.setdiff1d(getattr(data, f"{kind}_vocab"), base_vocab[kind]) for kind in ("user", "item")}
    axes = {variable.ref(): (axis, kind) for variable, axis, kind in model.id_axes()}
    assert len(axes) == summary["mapped"] > 0 and summary["copied"] == len(model.variables) - len(axes)
    for variable, fresh, previous in zip(model.variables, fresh_values, base.variables, strict=True):
        if variable.ref() not in axes:
            np.testing.assert_array_equal(variable.numpy(), previous.numpy())
            continue
        axis, kind = axes[variable.ref()]
        vocab = getattr(data, f"{kind}_vocab")
        np.testing.assert_array_equal(np.take(variable.numpy(), rows_of(vocab, shared[kind]), axis),
                                      np.take(previous.numpy(), rows_of(base_vocab[kind], shared[kind]), axis))
        np.testing.assert_array_equal(np.take(variable.numpy(), rows_of(vocab, new[kind]), axis),
                                      np.take(fresh, rows_of(vocab, new[kind]), axis))
    assert (summary["users"], summary["new_users"]) == (shared["user"].size, new["user"].size) == (370, 30)
    assert summary["fresh"] == [] and summary["new_items"] == new["item"].size > 0


@pytest.mark.parametrize("name", TEACHER_NAMES)
def test_every_teacher_takes_the_previous_rows_by_id_and_keeps_fresh_rows_for_new_ids(tiny_dataset, previous, name):
    users, items = previous
    cfg = small_cfg(name)
    base = build_teacher(name, stand_in(users, items), cfg, seed=1)
    randomize(base, seed=2)
    model = build_teacher(name, tiny_dataset, cfg, seed=3)
    fresh_values = [v.numpy() for v in model.variables]
    summary = WarmStart(base, users, items, source="base").apply(model, tiny_dataset)
    assert_warm_started(model, fresh_values, base, {"user": users, "item": items}, tiny_dataset, summary)


def test_the_student_warm_starts_and_a_changed_shape_stays_fresh(tiny_dataset, previous):
    users, items = previous
    base = Student(len(users), len(items), dim=8, seed=1)
    randomize(base, seed=2)
    student = Student(tiny_dataset.n_users, tiny_dataset.n_items, dim=8, seed=3)
    fresh_values = [v.numpy() for v in student.variables]
    summary = WarmStart(base, users, items).apply(student, tiny_dataset)
    assert_warm_started(student, fresh_values, base, {"user": users, "item": items}, tiny_dataset, summary)

    wider = Student(tiny_dataset.n_users, tiny_dataset.n_items, dim=16, seed=3)
    before = [v.numpy() for v in wider.variables]
    summary = WarmStart(base, users, items).apply(wider, tiny_dataset)
    assert summary["mapped"] == summary["copied"] == 0 and len(summary["fresh"]) == 2
    assert all(np.array_equal(v.numpy(), b) for v, b in zip(wider.variables, before))


def first_valid(history) -> float:
    return next(h["valid"]["recall@50"] for h in history if "valid" in h)


def test_a_warm_started_teacher_and_student_start_where_the_earlier_run_ended(tiny_dataset):
    """One epoch from the earlier run's model scores about its best and far above one cold epoch."""
    cfg = TINY.teachers["MF"]
    cold = train_teacher("MF", tiny_dataset, cfg, TINY.trajectory, seed=0, progress=None)
    vocab = (tiny_dataset.user_vocab, tiny_dataset.item_vocab)
    warm = train_teacher("MF", tiny_dataset, dataclasses.replace(cfg, epochs=1), TINY.trajectory, seed=1,
                         progress=None, warm_start=WarmStart(cold.teacher, *vocab, source="cold MF"))
    assert cold.warm_start is None and warm.to_dict()["warm_start"]["source"] == "cold MF"
    assert first_valid(warm.history) > 0.9 * cold.valid["recall@50"] > 1.2 * first_valid(cold.history)

    student_cfg = dataclasses.replace(TINY.distill, method="wo_kd", epochs=20, eval_every=1, learning_rate=3e-3)
    cold_student = distill(tiny_dataset, None, student_cfg, progress=None)
    warm_student = distill(tiny_dataset, None, dataclasses.replace(student_cfg, epochs=1), progress=None,
                           warm_start=WarmStart(cold_student.student, *vocab))
    assert cold_student.warm_start is None and warm_student.warm_start["mapped"] == 2
    assert first_valid(warm_student.history) > 0.9 * cold_student.valid["recall@50"] > \
        1.2 * first_valid(cold_student.history)
