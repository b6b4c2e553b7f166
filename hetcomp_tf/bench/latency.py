"""Serving cost of every model as a user would deploy it: each teacher alone, the teachers' ensemble, and students of
every size, so the student's cost can be read against what a user would serve instead of it.

Every model answers the same top-K requests for the same users over the same catalogue, in one run on one machine,
model after model within each request, the order rotated from one request to the next so that drifts in machine
load hit all alike. A model is one of (`Servable.costs["served_as"]`):
  * "savedmodel": an exported SavedModel's `serving_default` (the caller exports it, e.g. with serving/export.py:
    this library sits below serving/), i.e. what TF Serving runs, original ids in and out, train items excluded:
    the students, and the teachers that serve as embedding tables (`Teacher.serving_tables`: MF, CML, LightGCN
    with its propagation folded in);
  * "scoring": a model's `score_all`, its train items excluded and its top-K, as one tf.function of internal ids
    (NeuMF and the autoencoders, whose scores are not a dot product of precomputed tables);
  * "ensemble": every teacher's `score_all`, each teacher's top-N unobserved items (`metrics.masked_topk`), then
    the consolidation sum of exp(-rank/tau) and its top-K (`ensemble.ensemble_topk`), as one tf.function.
Each request is timed to its materialised result; the first `warmup` requests (tracing, caches) are not recorded.
Costs: `params` = weights, `variable_bytes` = their bytes (a SavedModel's weights are its float matrices, the
tables; its exclusion table, vocabularies and counts are lookups), and `savedmodel_bytes` for an exported model
(its whole directory). Results are keyed by `teacher_row(name)`, `tables.ENSEMBLE` and `student_key(dim)`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from hetcomp_tf.data.dataset import Dataset, rows_to_mask
from hetcomp_tf.distill.ensemble import ensemble_topk
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.metrics import masked_topk
from hetcomp_tf.teachers.training import count_params
from hetcomp_tf.util.files import directory_bytes
from hetcomp_tf.util.progress import log
from hetcomp_tf.util.tables import format_table

LATENCY_KEYS = ("p50_ms", "p99_ms", "mean_ms", "users_per_second")
PROGRESS_EVERY = 50  # requests between progress lines


def student_key(dim: int) -> str:
    """The result key of a student of dimension `dim`, beside `tables.teacher_row(name)` and `tables.ENSEMBLE`.

    Args:
        dim: the student's embedding size.

    Returns:
        "student:d<dim>".
    """
    return f"student:d{dim}"


class Servable(NamedTuple):
    """One model as deployed: `call` answers a top-K request for internal user ids (int [b]) with tensors;
    `costs` says how it is served and what it holds (`served_as`, `params`, `variable_bytes`, ...).

    Attributes:
        call: internal user ids int [b] -> the answer's tensors (materialised by the timer).
        costs: {"served_as", "params", "variable_bytes", ...}, JSON-ready.
    """

    call: Callable[[np.ndarray], object]
    costs: dict


def _variable_bytes(variables: Sequence[tf.Variable]) -> int:
    return int(sum(v.shape.num_elements() * v.dtype.size for v in variables))


def unobserved_topk_recommender(model, data: Dataset, k: int) -> Callable:
    """A compiled top-K of each user's unobserved items by `model.score_all`.

    Args:
        model: anything with score_all(user_ids int32 [b]) -> float [b, n_items].
        data: the dataset (its train items are excluded).
        k: the list length.

    Returns:
        recommend(user_ids int32 [b]) -> int32 [b, k].
    """
    train_rows = data.train.to_ragged()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)])
    def recommend(user_ids):
        return masked_topk(model.score_all(user_ids), rows_to_mask(train_rows, user_ids, data.n_items), k)

    return recommend


def ensemble_recommender(teachers: Sequence, data: Dataset, k: int, top_n: int, tau: float) -> Callable:
    """A compiled top-K of the teachers' consolidated ranking of unobserved items.

    Args:
        teachers: models with score_all(user_ids int32 [b]) -> float [b, n_items].
        data: the dataset (its train items are excluded).
        k: the list length.
        top_n: each teacher's list length before the consolidation.
        tau: the ensemble's temperature.

    Returns:
        recommend(user_ids int32 [b]) -> int32 [b, k].
    """
    train_rows, n_items = data.train.to_ragged(), data.n_items

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)])
    def recommend(user_ids):
        seen = rows_to_mask(train_rows, user_ids, n_items)
        rankings = tf.stack([masked_topk(teacher.score_all(user_ids), seen, top_n) for teacher in teachers])
        return ensemble_topk(rankings, n_items, k, tau)

    return recommend


def saved_model_servable(directory: str | os.PathLike, data: Dataset, k: int) -> Servable:
    """An exported SavedModel (serving/export.py), timed through `serving_default` with original ids and `k`.

    Args:
        directory: the SavedModel.
        data: the dataset whose vocabulary maps internal ids to original ones.
        k: the list length.

    Returns:
        The `Servable`, served_as "savedmodel".
    """
    loaded = tf.saved_model.load(os.fspath(directory))  # owns the variables: kept alive by `call`
    weights = [v for v in loaded.signatures["serving_default"].variables if v.dtype.is_floating and v.shape.rank == 2]

    def call(ids):  # what a TF Serving request carries: original ids and k
        return loaded.signatures["serving_default"](
            user_id=tf.constant(data.user_vocab[ids]), k=tf.constant(k, tf.int32)
        )

    return Servable(
        call,
        {
            "served_as": "savedmodel",
            "params": int(sum(v.shape.num_elements() for v in weights)),
            "variable_bytes": _variable_bytes(weights),
            "savedmodel_bytes": directory_bytes(os.fspath(directory)),
        },
    )


def scoring_servable(model, data: Dataset, k: int) -> Servable:
    """A model served through its `score_all` (`unobserved_topk_recommender`); its weights are its variables.

    Args:
        model: the model.
        data: the dataset.
        k: the list length.

    Returns:
        The `Servable`, served_as "scoring".
    """
    recommend = unobserved_topk_recommender(model, data, k)
    return Servable(
        lambda ids: recommend(tf.constant(ids, tf.int32)),
        {"served_as": "scoring", "params": count_params(model), "variable_bytes": _variable_bytes(model.variables)},
    )


def ensemble_servable(teachers: Mapping[str, object], data: Dataset, k: int, top_n: int, tau: float) -> Servable:
    """The teachers' ensemble (`ensemble_recommender`); its weights are all the teachers'.

    Args:
        teachers: {name: model}.
        data: the dataset.
        k: the list length.
        top_n: each teacher's list length before the consolidation.
        tau: the ensemble's temperature.

    Returns:
        The `Servable`, served_as "ensemble".

    Raises:
        HetCompError: no teachers.
    """
    if not teachers:
        raise HetCompError("latency: an ensemble of no teachers")
    recommend = ensemble_recommender(list(teachers.values()), data, k, top_n, tau)
    return Servable(
        lambda ids: recommend(tf.constant(ids, tf.int32)),
        {
            "served_as": "ensemble",
            "teachers": list(teachers),
            "top_n": top_n,
            "tau": tau,
            "params": sum(count_params(t) for t in teachers.values()),
            "variable_bytes": _variable_bytes([v for t in teachers.values() for v in t.variables]),
        },
    )


def _summary(seconds: list[float], batch_size: int) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000.0
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "users_per_second": float(batch_size * len(ms) / (ms.sum() / 1000.0)),
    }


def _timed(call: Callable, argument) -> float:
    start = time.perf_counter()
    outputs = call(argument)
    for value in tf.nest.flatten(outputs):
        value.numpy()  # the answer must exist on the host, as it would to be sent back
    return time.perf_counter() - start


def measure_latency(
    servables: Mapping[str, Servable],
    data: Dataset,
    requests: int = 200,
    warmup: int = 20,
    batch_sizes: Sequence[int] = (1,),
    seed: int = 0,
) -> dict:
    """Latency of top-K requests for every model, plus its costs.

    Args:
        servables: the models by result key (e.g. "teacher:GNN", "ensemble", "student:d16"), each built to answer
            the same top-K.
        data: the Dataset whose users the requests draw (uniformly, seeded by `seed`).
        requests: timed requests per model and batch size, after `warmup` untimed ones.
        warmup: untimed requests first (tracing, caches).
        batch_sizes: users per request; each size is one pass over all models.
        seed: seeds the requests' users.

    Returns:
        {"requests", "warmup", "batch_sizes", "machine", "models": {key: {**costs, "latency": {"batch_<b>":
        {"p50_ms", "p99_ms", "mean_ms", "users_per_second"}}}}}, the models in the order given.

    Raises:
        HetCompError: no models, requests < 1, warmup < 0 or a batch size < 1.
    """
    if not servables:
        raise HetCompError("measure_latency: no models given")
    if requests < 1 or warmup < 0 or any(b < 1 for b in batch_sizes):
        raise HetCompError(
            f"measure_latency: need requests >= 1, warmup >= 0 and batch sizes >= 1, got "
            f"requests={requests}, warmup={warmup}, batch_sizes={tuple(batch_sizes)}"
        )
    names = list(servables)
    rng = np.random.default_rng(seed)
    models = {name: {**servables[name].costs, "latency": {}} for name in names}
    for batch_size in batch_sizes:
        log(f"latency: {warmup} + {requests} requests of {batch_size} user(s) each to each of {len(names)} models")
        times: dict[str, list[float]] = {name: [] for name in names}
        for request in range(warmup + requests):
            ids = rng.integers(0, data.n_users, size=batch_size)
            shift = request % len(names)
            for name in names[shift:] + names[:shift]:
                seconds = _timed(servables[name].call, ids)
                if request >= warmup:
                    times[name].append(seconds)
            done = request + 1 - warmup
            if done > 0 and (done % PROGRESS_EVERY == 0 or done == requests):
                log(f"latency: batch {batch_size}: {done}/{requests} requests timed")
        for name, seconds in times.items():
            models[name]["latency"][f"batch_{batch_size}"] = _summary(seconds, batch_size)
    return {
        "requests": requests,
        "warmup": warmup,
        "batch_sizes": [int(b) for b in batch_sizes],
        "machine": {"cpu_count": os.cpu_count(), "gpus": len(tf.config.list_physical_devices("GPU"))},
        "models": models,
    }


def format_latency_table(result: dict) -> str:
    """The printed table of a `measure_latency` result: one row per model, how it is served, p50/p99 ms and
    users/s per batch size, params and MB.

    Args:
        result: `measure_latency`'s result.

    Returns:
        The table's text (`tables.format_table`).
    """
    latency_columns = [f"{key}@{b}" for b in result["batch_sizes"] for key in ("p50_ms", "p99_ms", "users_per_second")]
    columns = ["served_as", *latency_columns, "params", "variable_MB", "savedmodel_MB"]
    formats = {column: ".0f" if column.startswith("users") else ".2f" for column in [*latency_columns, *columns[-2:]]}
    rows = {}
    for name, model in result["models"].items():
        row = {
            f"{key}@{b}": model["latency"][f"batch_{b}"][key]
            for b in result["batch_sizes"]
            for key in ("p50_ms", "p99_ms", "users_per_second")
        }
        row.update(served_as=model["served_as"], params=model["params"], variable_MB=model["variable_bytes"] / 1e6)
        if "savedmodel_bytes" in model:
            row["savedmodel_MB"] = model["savedmodel_bytes"] / 1e6
        rows[name] = row
    return format_table(rows, columns, formats)
