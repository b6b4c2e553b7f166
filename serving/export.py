"""Export a model that serves as embedding tables as a self-contained SavedModel for TF Serving (`export_model`,
`TableRecommender`): the distilled MF student, and the teachers whose score is a dot product of precomputed tables.

Teachers that serve as tables (`serving_tables()`): MF; CML, its distance written as a dot product; LightGCN, its
propagation folded in. One code path for all of them, so a user can push a teacher instead of the student and
clients see the same signatures.

The SavedModel speaks the dataset's original ids, so a client never needs the training vocabularies: a
`StaticHashTable` maps user ids to rows and a string tensor maps item rows back. Each user's train items are
baked in as a ragged table (row splits + item indices: nnz-sized, never a dense users x items matrix) and
excluded before an on-device `tf.math.top_k`, so a served list never repeats what the user already has.

Signatures (documented with `saved_model_cli` output in serving/README.md):
- `serving_default(user_id string [b], k int32 scalar = 50) -> item_ids string [b, k'], scores float32 [b, k']`
  with k' = min(k, max_k); max_k is the fewest unobserved items any user has, so every row holds k' real
  unobserved items. Ties are broken towards the lower item index (`tf.math.top_k`).
- `score_items(user_id string [b], item_id string [b, m]) -> scores float32 [b, m]`: the model's score of
  each given item (no exclusion), its `score_all` up to float rounding; an unknown item id fails with
  INVALID_ARGUMENT naming it.
An unknown user id fails with INVALID_ARGUMENT naming it, unless exported with `popularity_fallback=True`:
then that user gets the most popular train items, scored by their train interaction counts.

The export also writes TF Serving's warm-up file (`assets.extra/tf_serving_warmup_requests`): one Predict of
each signature for the first user (and item), which TF Serving and `hetcomp serve` replay before serving the
version, so its first real request does not pay for tracing and a version that cannot answer is never served.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from hetcomp_tf.data.dataset import Dataset, rows_to_mask
from hetcomp_tf.errors import HetCompError

DEFAULT_K = 50
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")  # TF Serving's SavedModel warm-up


def _fail_unless(condition: tf.Tensor, message: tf.Tensor, *then: tf.Tensor) -> tuple[tf.Tensor, ...]:
    """InvalidArgumentError carrying `message` (built in-graph, so it can name the offending ids or values).
    Returns `then` gated on the check: in a graph an op that reads them cannot run first and fail with a
    message of its own (a bare Assert is only ordered among stateful ops)."""
    with tf.control_dependencies([tf.debugging.Assert(condition, [message])]):
        return tuple(tf.identity(tensor) for tensor in then)


def _known_or_fail(ids: tf.Tensor, rows: tf.Tensor, what: str) -> tf.Tensor:
    """Fails unless every lookup hit, listing the unknown ids; returns the (all-True) known mask."""
    known = rows >= 0
    unknown = tf.strings.reduce_join(tf.boolean_mask(ids, ~known), separator=", ")
    _fail_unless(tf.reduce_all(known), tf.strings.join([f"unknown {what}: ", unknown]))
    return known


class TableRecommender(tf.Module):
    """Top-K recommender over a user and an item table (score = user row . item row); everything it needs lives in
    its variables and lookup tables.

    Args:
        user_factors: float32 [n_users, d] the user table.
        item_factors: float32 [n_items, d] the item table.
        data: the dataset (vocabularies, train items to exclude, popularity).
        popularity_fallback: answer unknown users with the most popular train items instead of failing.

    Raises:
        HetCompError: a user with every item in train (nothing to recommend).
    """

    def __init__(self, user_factors: np.ndarray, item_factors: np.ndarray, data: Dataset, popularity_fallback: bool):
        super().__init__(name="hetcomp_recommender")
        train = data.train
        unobserved = data.n_items - train.lengths()
        self.max_k = int(unobserved.min())
        if self.max_k < 1:
            user = int(np.argmin(unobserved))
            raise HetCompError(f"export: user {data.user_vocab[user]!r} has every item in train; nothing to recommend")
        self.popularity_fallback = bool(popularity_fallback)
        self.n_items = data.n_items
        self.user_factors = tf.Variable(user_factors, trainable=False, name="user_factors")
        self.item_factors = tf.Variable(item_factors, trainable=False, name="item_factors")
        self.item_vocab = tf.Variable(data.item_vocab.astype(str), trainable=False, name="item_vocab")
        self.train_row_splits = tf.Variable(train.indptr.astype(np.int64), trainable=False, name="train_row_splits")
        self.train_items = tf.Variable(train.indices.astype(np.int32), trainable=False, name="train_items")
        counts = np.bincount(train.indices, minlength=data.n_items).astype(np.float32)
        self.popularity = tf.Variable(counts, trainable=False, name="popularity")
        self.user_index = self._string_table(data.user_vocab)
        self.item_index = self._string_table(data.item_vocab)

    @staticmethod
    def _string_table(vocab: np.ndarray) -> tf.lookup.StaticHashTable:
        keys = tf.constant(vocab.astype(str))
        values = tf.range(len(vocab), dtype=tf.int64)
        return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, values), default_value=-1)

    def _user_rows(self, user_id: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(row of each user, clamped to 0 when unknown; bool known). Unknown users fail unless falling back."""
        rows = self.user_index.lookup(user_id)
        known = rows >= 0 if self.popularity_fallback else _known_or_fail(user_id, rows, "user_id")
        return tf.cast(tf.maximum(rows, 0), tf.int32), known

    @tf.function(
        input_signature=[tf.TensorSpec([None], tf.string, name="user_id"), tf.TensorSpec([], tf.int32, name="k")]
    )
    def recommend(self, user_id, k=tf.constant(DEFAULT_K, tf.int32)):  # noqa: B008 (the signature's default k)
        """`serving_default`: each user's top-k unobserved items.

        Args:
            user_id: string [b] original user ids.
            k: int32 scalar >= 1, capped at `max_k`.

        Returns:
            {"item_ids": string [b, k'], "scores": float32 [b, k']}, k' = min(k, max_k); InvalidArgumentError for
            k < 1 or an unknown user (without the popularity fallback).
        """
        (k,) = _fail_unless(k >= 1, tf.strings.format("k must be at least 1, got {}", k), k)
        rows, known = self._user_rows(user_id)
        scores = tf.matmul(tf.gather(self.user_factors, rows), self.item_factors, transpose_b=True)
        train = tf.RaggedTensor.from_row_splits(self.train_items, self.train_row_splits, validate=False)
        seen = rows_to_mask(train, rows, self.n_items) & known[:, None]
        if self.popularity_fallback:
            scores = tf.where(known[:, None], scores, self.popularity[None, :])
        scores = tf.where(seen, tf.constant(-np.inf, tf.float32), scores)
        top = tf.math.top_k(scores, k=tf.minimum(k, self.max_k))
        return {"item_ids": tf.gather(self.item_vocab, top.indices), "scores": top.values}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="user_id"),
            tf.TensorSpec([None, None], tf.string, name="item_id"),
        ]
    )
    def score_items(self, user_id, item_id):
        """`score_items`: the model's score of each given item (no exclusion).

        Args:
            user_id: string [b] original user ids.
            item_id: string [b, m] original item ids, a row per user.

        Returns:
            {"scores": float32 [b, m]}; InvalidArgumentError for a row count that differs from the users', an
            unknown item, or an unknown user (without the popularity fallback).
        """
        rows_given, users_given = tf.shape(item_id)[0], tf.shape(user_id)[0]
        user_id, item_id = _fail_unless(
            tf.equal(rows_given, users_given),
            tf.strings.format("item_id has {} rows for {} user_id values", (rows_given, users_given)),
            user_id,
            item_id,
        )
        rows, known = self._user_rows(user_id)
        columns = self.item_index.lookup(item_id)
        _known_or_fail(item_id, columns, "item_id")
        columns = tf.cast(tf.maximum(columns, 0), tf.int32)
        scores = tf.einsum("bd,bmd->bm", tf.gather(self.user_factors, rows), tf.gather(self.item_factors, columns))
        if self.popularity_fallback:
            scores = tf.where(known[:, None], scores, tf.gather(self.popularity, columns))
        return {"scores": scores}


def export_model(model, data: Dataset, export_dir: str, popularity_fallback: bool = False) -> str:
    """Writes the SavedModel of `model` into `export_dir` (TF Serving's `<base>/<version>` directory) and returns
    that path.

    Args:
        model: anything with `serving_tables() -> (user table [n_users, d], item table [n_items, d])` whose row
            dot products are its scores: the `Student`, or a teacher whose `Teacher.serving_tables` is not None.
        data: the Dataset the model was trained on (its vocabularies and train items).
        export_dir: where to write; created if missing.
        popularity_fallback: answer unknown users with the most popular train items instead of failing.

    Returns:
        `export_dir`.

    Raises:
        HetCompError: a model that does not serve as tables, tables of other sizes than the dataset's, or a user
            with every item in train.
    """
    what = type(model).__name__
    tables = model.serving_tables()
    if tables is None:
        raise HetCompError(
            f"export: {what} does not serve as embedding tables (its score is not a dot product of "
            f"a user and an item row); serve it through its score_all"
        )
    user_factors, item_factors = (np.asarray(table, np.float32) for table in tables)
    if user_factors.shape[0] != data.n_users or item_factors.shape[0] != data.n_items:
        raise HetCompError(
            f"export: {what} has {user_factors.shape[0]} users x {item_factors.shape[0]} items but dataset "
            f"{data.name!r} has {data.n_users} x {data.n_items}"
        )
    module = TableRecommender(user_factors, item_factors, data, popularity_fallback)
    os.makedirs(export_dir, exist_ok=True)
    tf.saved_model.save(
        module, export_dir, signatures={"serving_default": module.recommend, "score_items": module.score_items}
    )
    _write_warmup_requests(export_dir, data)
    return export_dir


def _write_warmup_requests(export_dir: str, data: Dataset) -> None:
    """TF Serving's warm-up records (PredictionLogs): one request per signature for the first user and item."""
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    user = data.user_vocab[:1].astype(str)
    requests = {
        "serving_default": {"user_id": user, "k": np.int32(DEFAULT_K)},
        "score_items": {"user_id": user, "item_id": data.item_vocab[None, :1].astype(str)},
    }
    path = os.path.join(export_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for signature, inputs in requests.items():
            request = predict_pb2.PredictRequest()
            request.model_spec.signature_name = signature
            for name, value in inputs.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
