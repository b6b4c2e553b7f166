"""Serving cost of the distilled student versus the teachers' ensemble it replaces: HetComp's practical claim.

Both sides answer the same top-K requests for the same users, in one run on one machine, alternating request by
request so drifts in machine load hit both alike:
  * student: its exported SavedModel's `serving_default` (the caller exports it, e.g. with serving/export.py:
    this library sits below serving/), i.e. what TF Serving runs, original ids in and out, train items
    excluded; or any scoring callable of int user ids, such as a model's bound `score_all`;
  * ensemble: every teacher's `score_all`, each teacher's top-N unobserved items (`metrics.masked_topk`), then
    the consolidation sum of exp(-rank/tau) and its top-K (`ensemble.ensemble_topk`), as one tf.function.
Each request is timed to its materialised result; the first `warmup` requests of each side (tracing, caches)
are not recorded. Costs: `params` = weights, `variable_bytes` = their bytes (a SavedModel's weights are its float matrices, the
factors; its exclusion table, vocabularies and counts are lookups), and a SavedModel student also reports
`savedmodel_bytes` (its whole directory).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from hetcomp_tf.data import Dataset, rows_to_mask
from hetcomp_tf.ensemble import ensemble_topk
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.files import directory_bytes
from hetcomp_tf.metrics import masked_topk
from hetcomp_tf.progress import log
from hetcomp_tf.report import format_table
from hetcomp_tf.training import count_params

LATENCY_KEYS = ("p50_ms", "p99_ms", "mean_ms", "users_per_second")


def _variable_bytes(variables: Sequence[tf.Variable]) -> int:
    return int(sum(v.shape.num_elements() * v.dtype.size for v in variables))



def ensemble_recommender(teachers: Sequence, data: Dataset, k: int, top_n: int, tau: float) -> Callable:
    """user ids int32 [b] -> int32 [b, k]: the teachers' consolidated top-K of unobserved items."""
    train_rows, n_items = data.train.to_ragged(), data.n_items

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)])
    def recommend(user_ids):
        seen = rows_to_mask(train_rows, user_ids, n_items)
        rankings = tf.stack([masked_topk(teacher.score_all(user_ids), seen, top_n) for teacher in teachers])
        return ensemble_topk(rankings, n_items, k, tau)

    return recommend


def _summary(seconds: list[float], batch_size: int) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000.0
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "users_per_second": float(batch_size * len(ms) / (ms.sum() / 1000.0))}


def _timed(call: Callable, argument) -> float:
    start = time.perf_counter()
    outputs = call(argument)
    for value in tf.nest.flatten(outputs):
        value.numpy()  # the answer must exist on the host, as it would to be sent back
    return time.perf_counter() - start


def measure_latency(student, teachers: Mapping[str, object], data: Dataset, k: int = 50, top_n: int = 100,
                    tau: float = 10.0, requests: int = 200, warmup: int = 20, batch_sizes: Sequence[int] = (1,),
                    seed: int = 0) -> dict:
    """Latency (p50/p99/mean per request, users/s) of top-K for the student and the ensemble, plus their sizes.
    `student`: a SavedModel directory (timed through `serving_default`) or a bound scorer of a model, such as
    `mf.score_all` (its owner's trainable variables are its weights). `ratio` holds ensemble/student for costs
    (latencies, params, bytes) and student/ensemble for throughput, so a ratio above 1 always means the student
    is cheaper. Requests of `b` users each, for every `b` in `batch_sizes`; results under "batch_<b>"."""
    if not teachers:
        raise HetCompError("measure_latency: no teachers given")
    if requests < 1 or warmup < 0 or any(b < 1 for b in batch_sizes):
        raise HetCompError(f"measure_latency: need requests >= 1, warmup >= 0 and batch sizes >= 1, got "
                           f"requests={requests}, warmup={warmup}, batch_sizes={tuple(batch_sizes)}")
    student_call, student_costs = _student_side(student, data, k)
    ensemble = ensemble_recommender(list(teachers.values()), data, k, top_n, tau)
    teacher_variables = [v for teacher in teachers.values() for v in teacher.variables]
    rng = np.random.default_rng(seed)
    result = {
        "k": k, "top_n": top_n, "tau": tau, "requests": requests, "warmup": warmup,
        "batch_sizes": [int(b) for b in batch_sizes],
        "machine": {"cpu_count": os.cpu_count(), "gpus": len(tf.config.list_physical_devices("GPU"))},
        "student": student_costs,
        "ensemble": {"teachers": list(teachers), "params": sum(count_params(t) for t in teachers.values()),
                     "variable_bytes": _variable_bytes(teacher_variables)},
    }

    def ensemble_call(ids):
        return ensemble(tf.constant(ids, tf.int32))

    for batch_size in batch_sizes:
        log(f"latency: {warmup} + {requests} requests of {batch_size} user(s) each, student vs ensemble "
            f"of {len(teachers)} teachers")
        times = {"student": [], "ensemble": []}
        for request in range(warmup + requests):
            ids = rng.integers(0, data.n_users, size=batch_size)
            order = ("student", "ensemble") if request % 2 == 0 else ("ensemble", "student")
            for side in order:
                seconds = _timed(student_call if side == "student" else ensemble_call, ids)
                if request >= warmup:
                    times[side].append(seconds)
        for side, seconds in times.items():
            result[side].setdefault("latency", {})[f"batch_{batch_size}"] = _summary(seconds, batch_size)
    result["ratio"] = _ratios(result)
    return result


def _student_side(student, data: Dataset, k: int) -> tuple[Callable, dict]:
    """(the timed call of internal user ids, the student's costs) for a SavedModel path or a bound scorer."""
    if callable(student):
        weights = student.__self__.trainable_variables
        return (lambda ids: student(tf.constant(ids, tf.int32))), {
            "params": int(sum(v.shape.num_elements() for v in weights)), "variable_bytes": _variable_bytes(weights)}
    served = tf.saved_model.load(os.fspath(student))
    serving_default = served.signatures["serving_default"]
    weights = [v for v in serving_default.variables if v.dtype.is_floating and v.shape.rank == 2]

    def call(ids):  # what a TF Serving request carries: original ids and k
        return serving_default(user_id=tf.constant(data.user_vocab[ids]), k=tf.constant(k, tf.int32))

    return call, {"params": int(sum(v.shape.num_elements() for v in weights)),
                  "variable_bytes": _variable_bytes(weights), "savedmodel_bytes": directory_bytes(os.fspath(student))}


def _ratios(result: dict) -> dict:
    student, ensemble = result["student"], result["ensemble"]
    ratio = {key: ensemble[key] / student[key] for key in ("params", "variable_bytes")}
    for batch, s in student["latency"].items():
        e = ensemble["latency"][batch]
        ratio[batch] = {key: e[key] / s[key] for key in LATENCY_KEYS if key != "users_per_second"}
        ratio[batch]["users_per_second"] = s["users_per_second"] / e["users_per_second"]
    return ratio


def format_latency_table(result: dict) -> str:
    """Student, ensemble and ratio rows; columns p50/p99 ms and users/s per batch size, then params and bytes."""
    columns = [f"{key}@{b}" for b in result["batch_sizes"] for key in ("p50_ms", "p99_ms", "users_per_second")]
    columns += ["params", "variable_bytes"]
    rows = {}
    for name in ("student", "ensemble", "ratio"):
        side = result[name]
        latency = side.get("latency", side)  # ratio keeps its per-batch dicts at the top level
        row = {f"{key}@{b}": latency[f"batch_{b}"][key] for b in result["batch_sizes"]
               for key in ("p50_ms", "p99_ms", "users_per_second")}
        rows[name] = {**row, "params": side["params"], "variable_bytes": side["variable_bytes"]}
    return format_table(rows, columns)
