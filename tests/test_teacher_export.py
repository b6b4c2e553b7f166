"""Teachers served as embedding tables (`Teacher.serving_tables`, serving/export.py::export_model): the SavedModel of
MF, CML and LightGCN answers as the teacher's own `score_all` does, with the student's signatures, and the teachers
whose score is not a dot product of tables refuse to be exported that way."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from hetcomp_tf.config import get_profile
from hetcomp_tf.distill.student import Student
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.models import build_teacher
from serving.export import export_model
from tests.helpers import SCORE_TOLERANCE, assert_answers_like_score_all

TABLE_TEACHERS = ("MF", "ML", "GNN")
SCORING_TEACHERS = {"DL": "NeuMF", "AE": "MultVAE", "I-AE": "ItemAE"}


def trained_teacher(name: str, data):
    """The tiny profile's teacher after one epoch of training: the export must read the weights as they are after
    optimiser updates (and CML's projection into the unit ball), not as initialised."""
    cfg = get_profile("tiny").teachers[name]
    teacher = build_teacher(name, data, cfg, seed=4)
    before = [w.copy() for w in teacher.get_weights()]
    optimizer = tf.keras.optimizers.Adam(cfg.learning_rate)
    optimizer.build(teacher.trainable_variables)
    teacher.train_epoch(optimizer, epoch=0)
    assert all(not np.array_equal(a, b) for a, b in zip(before, teacher.get_weights())), name
    return teacher


@pytest.fixture(scope="module", params=TABLE_TEACHERS)
def exported(request, tiny_dataset, tmp_path_factory):
    teacher = trained_teacher(request.param, tiny_dataset)
    return teacher, export_model(teacher, tiny_dataset, str(tmp_path_factory.mktemp(request.param) / "1"))


def test_the_exported_teacher_answers_like_its_score_all(exported, tiny_dataset):
    teacher, directory = exported
    users = [0, 7, 123, 250, tiny_dataset.n_users - 1]
    assert_answers_like_score_all(directory, teacher, tiny_dataset, users, k=20)


def test_a_teacher_export_has_the_students_signatures(exported, tiny_dataset, tmp_path):
    _, directory = exported
    student = tf.saved_model.load(
        export_model(Student(tiny_dataset.n_users, tiny_dataset.n_items, dim=4), tiny_dataset, str(tmp_path / "1"))
    )
    teacher = tf.saved_model.load(directory)
    assert set(teacher.signatures) == set(student.signatures) == {"serving_default", "score_items"}
    for name, signature in student.signatures.items():
        assert teacher.signatures[name].structured_input_signature == signature.structured_input_signature
        assert teacher.signatures[name].structured_outputs.keys() == signature.structured_outputs.keys()


def test_cml_tables_give_the_exact_negative_squared_distance(tiny_dataset):
    """Not only the ranking: u' . i' is -||u - i||^2 itself, against NumPy in float64 from the embeddings."""
    cml = trained_teacher("ML", tiny_dataset)
    users, items = cml.serving_tables()
    assert users.shape == (tiny_dataset.n_users, cml.cfg.dim + 2) and items.shape == (
        tiny_dataset.n_items,
        cml.cfg.dim + 2,
    )
    u = cml.user_embedding.embeddings.numpy().astype(np.float64)
    v = cml.item_embedding.embeddings.numpy().astype(np.float64)
    exact = -np.sum(np.square(u[:, None, :] - v[None, :, :]), axis=-1)
    np.testing.assert_allclose(users @ items.T, exact, rtol=SCORE_TOLERANCE, atol=SCORE_TOLERANCE)


def test_lightgcn_tables_are_its_propagated_embeddings_not_its_ego_embeddings(tiny_dataset):
    gnn = trained_teacher("GNN", tiny_dataset)
    users, items = gnn.serving_tables()
    propagated_users, propagated_items = gnn.propagate()
    np.testing.assert_array_equal(users, propagated_users.numpy())
    np.testing.assert_array_equal(items, propagated_items.numpy())
    assert not np.allclose(users, gnn.user_embedding.embeddings.numpy(), atol=1e-3)


@pytest.mark.parametrize("name", SCORING_TEACHERS)
def test_teachers_that_are_not_dot_products_refuse_a_table_export(name, tiny_dataset, tmp_path):
    teacher = build_teacher(name, tiny_dataset, get_profile("tiny").teachers[name])
    assert teacher.serving_tables() is None
    with pytest.raises(HetCompError, match=f"export: {SCORING_TEACHERS[name]} does not serve as embedding tables"):
        export_model(teacher, tiny_dataset, str(tmp_path / "1"))
    assert not (tmp_path / "1").exists()
