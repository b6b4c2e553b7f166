"""The exported SavedModel (serving/export.py) against a NumPy reference of the student's top-K.

The student has random weights: what is under test is the export logic (id mapping, exclusion, top-K, errors),
which does not depend on how the weights were learned.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml
from google.protobuf import text_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.config import model_server_config_pb2

from hetcomp_tf.config import get_profile
from hetcomp_tf.data.dataset import CSR, Dataset
from hetcomp_tf.distill.loop import distill
from hetcomp_tf.distill.student import Student
from hetcomp_tf.errors import HetCompError
from serving.client import DEFAULT_MODEL_NAME
from serving.export import DEFAULT_K, export_model

N_USERS, N_ITEMS, HEAVY_TRAIN = 40, 60, 45  # user 0 has HEAVY_TRAIN train items: max_k = 15


def random_dataset(seed: int = 0) -> Dataset:
    """Random train rows (user 0 heavy), original ids that differ from the internal indices."""
    rng = np.random.default_rng(seed)
    rows = [rng.choice(N_ITEMS, HEAVY_TRAIN if u == 0 else rng.integers(1, 12), replace=False) for u in range(N_USERS)]
    users = np.repeat(np.arange(N_USERS), [len(r) for r in rows])
    train = CSR.from_pairs(users, np.concatenate(rows), N_USERS)
    empty = CSR.from_pairs(np.zeros(0, np.int64), np.zeros(0, np.int64), N_USERS)
    return Dataset(
        "random",
        np.array([f"u{900 + u}" for u in range(N_USERS)]),
        np.array([f"item-{7 * i + 3}" for i in range(N_ITEMS)]),
        train,
        empty,
        empty,
    )


def random_student(data: Dataset, seed: int = 0) -> Student:
    return Student(data.n_users, data.n_items, dim=8, seed=seed)


def reference_top_k(student: Student, data: Dataset, users: list[int], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Slow and obvious: score every item, drop train items, sort descending (stable: lower index first)."""
    user_factors = student.user_embedding.embeddings.numpy()
    item_factors = student.item_embedding.embeddings.numpy()
    ids, scores = [], []
    for u in users:
        row = item_factors @ user_factors[u]
        candidates = [i for i in np.argsort(-row, kind="stable") if i not in set(data.train.row(u))]
        ids.append(data.item_vocab[candidates[:k]])
        scores.append(row[candidates[:k]])
    return np.array(ids), np.array(scores)


# Scores of one user computed through two paths (NumPy against TF, or TF batches of two shapes) are float32 dot
# products summed in different orders: the order follows the batch's shape and the CPU's vector width (AVX2 and
# AVX-512 differ; 3.7e-9 was seen). Here |scores| < 0.2, so rounding stays far below this.
SCORE_ATOL = 1e-6


def assert_same_top_k(item_ids, scores, expected_ids, expected_scores) -> None:
    """[b, k] ids and scores against an expectation of k + 1 per row: the scores equal up to SCORE_ATOL, and the ids
    exactly, which is sound because every gap between the expected k + 1 scores is wider than rounding can close
    (checked: a near tie would be ranked by rounding alone)."""
    k = item_ids.shape[1]
    np.testing.assert_allclose(scores, expected_scores[:, :k], rtol=0, atol=SCORE_ATOL)
    assert (-np.diff(expected_scores, axis=1) > 2 * SCORE_ATOL).all(), "near-tied scores: choose other test data"
    np.testing.assert_array_equal(item_ids, expected_ids[:, :k])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    data = random_dataset()
    student = random_student(data, seed=3)
    base = tmp_path_factory.mktemp("export")
    plain = tf.saved_model.load(export_model(student, data, str(base / "plain" / "1")))
    fallback = tf.saved_model.load(export_model(student, data, str(base / "fallback" / "1"), popularity_fallback=True))
    return {"data": data, "student": student, "plain": plain, "fallback": fallback, "dir": base / "plain" / "1"}


def recommend(model, user_ids, k):
    out = model.signatures["serving_default"](user_id=tf.constant(user_ids), k=tf.constant(k, tf.int32))
    return out["item_ids"].numpy().astype(str), out["scores"].numpy()


def test_top_k_matches_numpy_reference(exported):
    data, student = exported["data"], exported["student"]
    users = [0, 5, 17, 39, 5]
    item_ids, scores = recommend(exported["plain"], list(data.user_vocab[users]), 7)
    assert item_ids.shape == (5, 7) and scores.dtype == np.float32
    assert_same_top_k(item_ids, scores, *reference_top_k(student, data, users, 8))


def test_train_items_never_recommended_and_scores_descend(exported):
    data = exported["data"]
    item_ids, scores = recommend(exported["plain"], list(data.user_vocab), 15)
    for u in range(data.n_users):
        assert not set(item_ids[u]) & set(data.item_vocab[data.train.row(u)])
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_k_has_a_default_of_50_and_is_bounded_by_the_fewest_unobserved_items(exported):
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((exported["dir"] / "saved_model.pb").read_bytes())
    default = proto.meta_graphs[0].signature_def["serving_default"].defaults["k"]
    assert tf.make_ndarray(default) == DEFAULT_K
    data = exported["data"]
    item_ids, _ = recommend(exported["plain"], [data.user_vocab[0], data.user_vocab[1]], 10**6)
    assert item_ids.shape == (2, N_ITEMS - HEAVY_TRAIN)
    unobserved = np.setdiff1d(np.arange(N_ITEMS), data.train.row(0))
    assert set(item_ids[0]) == set(data.item_vocab[unobserved])


def test_k_below_one_is_an_invalid_argument(exported):
    with pytest.raises(tf.errors.InvalidArgumentError, match="k must be at least 1, got 0"):
        recommend(exported["plain"], [exported["data"].user_vocab[1]], 0)


def test_unknown_user_is_an_invalid_argument_naming_it(exported):
    known = exported["data"].user_vocab[2]
    with pytest.raises(tf.errors.InvalidArgumentError, match="unknown user_id: nobody-42"):
        recommend(exported["plain"], [known, "nobody-42"], 5)


def test_popularity_fallback_answers_unknown_users_with_the_most_popular_train_items(exported):
    data = exported["data"]
    known = list(data.user_vocab[[3, 8]])
    item_ids, scores = recommend(exported["fallback"], [known[0], "nobody-42", known[1]], 6)
    counts = np.bincount(data.train.indices, minlength=N_ITEMS)
    popular = np.argsort(-counts, kind="stable")[:6]
    np.testing.assert_array_equal(item_ids[1], data.item_vocab[popular])
    np.testing.assert_array_equal(scores[1], counts[popular].astype(np.float32))
    assert_same_top_k(item_ids[[0, 2]], scores[[0, 2]], *recommend(exported["plain"], known, 7))  # a batch of 2


def test_score_items_matches_the_students_score_all(exported):
    data, student = exported["data"], exported["student"]
    users = np.array([4, 0, 31])
    items = np.random.default_rng(1).integers(0, N_ITEMS, size=(3, 9))
    out = exported["plain"].signatures["score_items"](
        user_id=tf.constant(data.user_vocab[users]), item_id=tf.constant(data.item_vocab[items])
    )
    expected = np.take_along_axis(student.score_all(users).numpy(), items, axis=1)
    np.testing.assert_allclose(out["scores"].numpy(), expected, rtol=1e-5, atol=1e-6)


def test_score_items_rejects_unknown_items_and_ragged_batches(exported):
    data, score_items = exported["data"], exported["plain"].signatures["score_items"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="unknown item_id: no-such-item"):
        score_items(
            user_id=tf.constant(data.user_vocab[:1]), item_id=tf.constant([[data.item_vocab[0], "no-such-item"]])
        )
    with pytest.raises(tf.errors.InvalidArgumentError, match="item_id has 1 rows for 2 user_id values"):
        score_items(user_id=tf.constant(data.user_vocab[:2]), item_id=tf.constant([data.item_vocab[:2]]))


def test_the_input_checks_run_before_the_ops_that_would_fail_on_bad_input():
    """A bare Assert is ordered only among stateful ops: the scores' einsum (ragged batches) and top-k (k < 1)
    must wait for their checks, or they may fail first with their own message (seen once in CI)."""
    from serving.export import TableRecommender

    data = random_dataset()
    module = TableRecommender(*random_student(data).serving_tables(), data, False)
    for function, failing in ((module.score_items, "Einsum"), (module.recommend, "TopKV2")):
        graph = function.get_concrete_function().graph
        (op,) = [op for op in graph.get_operations() if op.type == failing]
        waits_for, todo = set(), [op]
        while todo:
            current = todo.pop()
            for parent in [t.op for t in current.inputs] + list(current.control_inputs):
                if parent.name not in waits_for:
                    waits_for.add(parent.name)
                    todo.append(parent)
        assert any(graph.get_operation_by_name(name).type == "Assert" for name in waits_for), failing


def test_train_exclusion_is_stored_sparse_not_as_a_dense_user_item_matrix(exported):
    shapes = [tuple(shape) for _, shape in tf.train.list_variables(str(exported["dir"] / "variables" / "variables"))]
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((exported["dir"] / "saved_model.pb").read_bytes())
    graph = proto.meta_graphs[0].graph_def
    for node in [*graph.node, *(n for f in graph.library.function for n in f.node_def)]:
        if node.op == "Const":
            shapes.append(tuple(d.size for d in node.attr["value"].tensor.tensor_shape.dim))
    assert max(int(np.prod(shape)) for shape in shapes) < N_USERS * N_ITEMS


def test_export_rejects_a_student_of_another_dataset(tmp_path):
    data = random_dataset()
    with pytest.raises(HetCompError, match="Student has 40 users x 61 items"):
        export_model(Student(N_USERS, N_ITEMS + 1, dim=4), data, str(tmp_path / "1"))


def test_a_distilled_student_exports_and_serves_its_own_ranking(tiny_dataset, tmp_path):
    """The student as distill() hands it over (best weights restored) goes through export unchanged."""
    cfg = dataclasses.replace(get_profile("tiny").distill, method="wo_kd", epochs=2, eval_every=1)
    run = distill(tiny_dataset, None, cfg, progress=None)
    model = tf.saved_model.load(export_model(run.student, tiny_dataset, str(tmp_path / "1")))
    users = [0, 1, tiny_dataset.n_users - 1]
    item_ids, scores = recommend(model, list(tiny_dataset.user_vocab[users]), 10)
    expected_ids, expected_scores = reference_top_k(run.student, tiny_dataset, users, 10)
    np.testing.assert_array_equal(item_ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-6)


def test_tf_serving_config_and_compose_file_agree():
    """models.config is a valid ModelServerConfig whose base path is where docker-compose mounts the pushed dir."""
    serving_dir = Path(__file__).resolve().parents[1] / "serving"
    config = text_format.Parse((serving_dir / "models.config").read_text(), model_server_config_pb2.ModelServerConfig())
    [model] = config.model_config_list.config
    assert (model.name, model.model_platform) == (DEFAULT_MODEL_NAME, "tensorflow")
    service = yaml.safe_load((serving_dir / "docker-compose.yml").read_text())["services"]["tf-serving"]
    mounts = {volume.rsplit(":", 2)[1]: volume for volume in service["volumes"]}
    assert model.base_path in mounts and "HETCOMP_SERVING_DIR" in mounts[model.base_path]
    assert "/models/models.config" in mounts
    assert "--model_config_file=/models/models.config" in service["command"]
    assert {"127.0.0.1:8500:8500", "127.0.0.1:8501:8501"} == set(service["ports"])
