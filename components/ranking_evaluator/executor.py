"""The `RankingEvaluator` executor: Recall/NDCG@10/20/50 of the exported student next to every teacher and the ensemble,
and the blessing the Pusher obeys.

The student is evaluated through the SavedModel that would be pushed (its `score_items` signature over
every item, ranked by `hetcomp_tf.metrics.evaluate`), so what is measured is what gets served. One split decides
a push, valid (the split the student's checkpoint was picked on; test stays untouched by every decision and is
reported beside it). Blessing has the TFX Evaluator's two parts: a value threshold (the student's valid Recall@50
>= a share of the valid Recall@50 of the ensemble it distilled: the fitted one for `targets="fitted"`) and, when a
`baseline_model` is wired in (the latest blessed model, from a Resolver), TFMA's change threshold on the same split:
with diff = candidate - baseline and ratio = diff / baseline (higher is better), the candidate passes iff
diff >= `absolute` and ratio >= `relative` (unset bounds: -inf; the default relative -0.05 blesses a candidate up to
5 % below the served model). Without a baseline the change threshold is skipped ("rubber stamped", as TFMA says).
A baseline trained on an earlier snapshot (its vocabularies lack some of today's users or items) and the candidate
are compared on the users and items it knows. The `ModelBlessing` carries the TFX Evaluator's custom properties
(`blessed`, `current_model[_id]`, `baseline_model[_id]`), which LatestBlessedModelStrategy reads.
"""

from __future__ import annotations

import json
import math

import numpy as np
import tensorflow as tf
from tfx import types
from tfx.components.evaluator import constants as evaluator_constants
from tfx.components.evaluator import executor as evaluator_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components import keys, storage
from components.artifacts import METRICS_FILE
from hetcomp_tf.data.dataset import Dataset
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.metrics import evaluate
from hetcomp_tf.util.tables import ENSEMBLE, FITTED_ENSEMBLE, student_row

BLESSED_KEY = evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY  # what Pusher and LatestBlessedModelStrategy read
BLESSING_SPLIT = "valid"  # both thresholds read this split; test is reported beside it, never decides
SCORED_STRINGS_PER_BATCH = 2_000_000  # users x items id strings handed to score_items at once


def served_scorer(saved_model_dir: str, data: Dataset):
    """A score_fn over the exported model's `score_items` signature, so evaluation measures what is served.

    Args:
        saved_model_dir: the SavedModel's local directory.
        data: the dataset whose vocabularies map indices to the ids the model takes.

    Returns:
        score_fn(user_ids int32 [b]) -> float32 [b, n_items], items in `data`'s order.
    """
    score_items = tf.saved_model.load(saved_model_dir).signatures["score_items"]
    user_ids = tf.constant(data.user_vocab.astype(str))
    item_ids = tf.constant(data.item_vocab.astype(str))

    def score_fn(users: tf.Tensor) -> tf.Tensor:
        items = tf.tile(item_ids[None, :], tf.stack([tf.size(users), 1]))
        return score_items(user_id=tf.gather(user_ids, users), item_id=items)["scores"]

    return score_fn


def value_threshold(student: dict, ensemble: dict, thresholds: dict) -> dict:
    """Passed when the student's `metric` on BLESSING_SPLIT reaches `min_share_of_ensemble` x the ensemble's on the
    same split (and is > 0).

    Args:
        student: the student's {split: {metric: value}}.
        ensemble: the ensemble's {split: {metric: value}}.
        thresholds: {"metric", "min_share_of_ensemble", ...}.

    Returns:
        {"blessed", "metric", "split", "student", "ensemble", "min_share_of_ensemble", "required", "splits" (both
        splits' values)}.

    Raises:
        HetCompError: the ensemble's BLESSING_SPLIT metrics are missing, or `metric` is not among the evaluated.
    """
    metric, share = thresholds["metric"], float(thresholds["min_share_of_ensemble"])
    if BLESSING_SPLIT not in ensemble:
        raise HetCompError(
            f"the ensemble's {BLESSING_SPLIT} metrics are missing from the comparison; the blessing "
            f"reads {BLESSING_SPLIT}"
        )
    if metric not in student[BLESSING_SPLIT] or metric not in ensemble[BLESSING_SPLIT]:
        raise HetCompError(f"blessing metric {metric!r} is not among the evaluated {sorted(student[BLESSING_SPLIT])}")
    value, reference = student[BLESSING_SPLIT][metric], ensemble[BLESSING_SPLIT][metric]
    required = share * reference
    passed = value >= required and value > 0.0
    reported = {
        split: {"student": student[split][metric], "ensemble": ensemble[split][metric]}
        for split in ("valid", "test")
        if split in student and split in ensemble
    }
    return {
        "blessed": bool(passed),
        "metric": metric,
        "split": BLESSING_SPLIT,
        "student": value,
        "ensemble": reference,
        "min_share_of_ensemble": share,
        "required": required,
        "splits": reported,
    }


def change_threshold(candidate: float, baseline: float, thresholds: dict) -> dict:
    """TFMA's GenericChangeThreshold, HIGHER_IS_BETTER: diff >= absolute and ratio >= relative (ratio NaN for a
    zero baseline, which fails a relative bound as it does in TFMA).

    Args:
        candidate: the candidate's value of the metric.
        baseline: the baseline's value.
        thresholds: {"change_absolute": float | None, "change_relative": float | None, ...}; None: no bound.

    Returns:
        {"passed", "split", "candidate", "baseline", "diff", "ratio" (None for a zero baseline), "absolute",
        "relative"}.
    """
    absolute, relative = thresholds.get("change_absolute"), thresholds.get("change_relative")
    diff = candidate - baseline
    ratio = math.nan if math.isclose(baseline, 0.0) else diff / baseline
    passed = (absolute is None or diff >= absolute) and (relative is None or ratio >= relative)
    return {
        "passed": bool(passed),
        "split": BLESSING_SPLIT,
        "candidate": candidate,
        "baseline": baseline,
        "diff": diff,
        "ratio": None if math.isnan(ratio) else ratio,
        "absolute": absolute,
        "relative": relative,
    }


def blessing(
    student: dict, ensemble: dict, thresholds: dict, baseline: dict | None = None, candidate: dict | None = None
) -> dict:
    """The verdict, blessed iff the value threshold passes and, with a baseline, the change threshold on
    BLESSING_SPLIT's `metric` too ("baseline" None when rubber-stamped).

    Args:
        student, ensemble: {split: {metric: value}} on the whole evaluation data.
        thresholds: {"metric", "min_share_of_ensemble", "change_absolute", "change_relative"}.
        baseline: the served model's {BLESSING_SPLIT: metrics}, or None.
        candidate: the student's {BLESSING_SPLIT: metrics} on the ids the baseline knows (default `student`).

    Returns:
        `value_threshold`'s verdict, "baseline" `change_threshold`'s (or None) and "blessed" the conjunction.

    Raises:
        HetCompError: as `value_threshold`.
    """
    verdict = value_threshold(student, ensemble, thresholds)
    verdict["baseline"] = None
    if baseline is not None:
        metric, candidate = verdict["metric"], candidate or student
        verdict["baseline"] = change_threshold(
            candidate[BLESSING_SPLIT][metric], baseline[BLESSING_SPLIT][metric], thresholds
        )
        verdict["blessed"] = verdict["blessed"] and verdict["baseline"]["passed"]
    return verdict


def evaluate_served(model: types.Artifact, data: Dataset, splits) -> dict:
    """Evaluates the SavedModel in `model`'s serving directory on `data`, through `served_scorer`.

    Args:
        model: a Model artifact.
        data: the dataset.
        splits: the splits to evaluate, e.g. ("valid", "test").

    Returns:
        {split: {metric: value}}.
    """
    with storage.readable_dir(path_utils.serving_model_path(model.uri)) as saved_model_dir:
        score_fn = served_scorer(saved_model_dir, data)
        batch = max(1, SCORED_STRINGS_PER_BATCH // data.n_items)
        return {split: evaluate(score_fn, data, split, batch_size=batch) for split in splits}


def shared_ground(data: Dataset, vocabularies) -> Dataset:
    """`data`, or when the served model was trained on another snapshot (its vocabularies miss some of `data`'s
    ids), `data` restricted to the users and items it knows: the change threshold compares the two models there.

    Args:
        data: the evaluation dataset.
        vocabularies: the served model's (user ids, item ids), or None (a model written before models carried
            them: `data` is used as is).

    Returns:
        `data` itself, or a restricted Dataset.
    """
    if vocabularies is None or (
        np.isin(data.user_vocab, vocabularies[0]).all() and np.isin(data.item_vocab, vocabularies[1]).all()
    ):
        return data
    return data.restricted(*vocabularies)


class Executor(evaluator_executor.Executor):
    """A subclass of TFX's Evaluator executor only so that the KFP v2 entrypoint rewrites the blessing's model ids
    into artifact names, which the compiled latest-blessed-model resolver matches; `Do` is entirely its own."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        """Evaluates the candidate (and the baseline), writes the comparison table and the verdict.

        Args:
            input_dict: {input key: [Artifact]}: model, dataset, comparison, baseline_model (optional).
            output_dict: {output key: [Artifact]}: blessing, evaluation.
            exec_properties: {parameter key: value}: method, thresholds (JSON).

        Raises:
            HetCompError: the comparison lacks the ensemble's valid metrics, or the blessing metric is unknown.
        """
        data = storage.read_dataset(artifact_utils.get_single_uri(input_dict[keys.DATASET_KEY]))
        model = artifact_utils.get_single_instance(input_dict[keys.MODEL_KEY])
        student = evaluate_served(model, data, ("valid", "test"))
        baseline_model = (input_dict.get(keys.BASELINE_MODEL_KEY) or [None])[0]
        candidate, baseline, shared = None, None, None
        if baseline_model is not None and baseline_model.uri == model.uri:  # a cached Trainer: the same SavedModel
            baseline = {BLESSING_SPLIT: student[BLESSING_SPLIT]}
        elif baseline_model is not None:
            ground = shared_ground(data, storage.read_vocabulary(baseline_model.uri))
            baseline = evaluate_served(baseline_model, ground, (BLESSING_SPLIT,))
            if ground is not data:  # the candidate too, on the users and items the served model knows
                candidate = evaluate_served(model, ground, (BLESSING_SPLIT,))
                shared = {"users": ground.n_users, "items": ground.n_items}

        comparison = artifact_utils.get_single_uri(input_dict[keys.COMPARISON_KEY])
        methods = storage.read_json(comparison, METRICS_FILE)["methods"]
        methods[student_row(exec_properties[keys.METHOD_KEY])] = student
        thresholds = json.loads(exec_properties[keys.THRESHOLDS_KEY])
        distilled = methods.get(FITTED_ENSEMBLE, methods[ENSEMBLE])  # the KnowledgeBuilder lists the one it fitted
        verdict = blessing(student, distilled, thresholds, baseline, candidate)
        if baseline_model is not None:
            verdict["baseline"]["model"] = baseline_model.uri
            verdict["baseline"]["shared_ids"] = shared  # None: compared on every user and item
        storage.write_json(
            artifact_utils.get_single_uri(output_dict[keys.EVALUATION_KEY]),
            METRICS_FILE,
            {"methods": methods, "blessing": verdict},
        )

        blessing_artifact = artifact_utils.get_single_instance(output_dict[keys.BLESSING_KEY])
        blessing_artifact.set_int_custom_property(BLESSED_KEY, int(verdict["blessed"]))
        blessing_artifact.set_string_custom_property(
            evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri
        )
        blessing_artifact.set_int_custom_property(evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
        if baseline_model is not None:
            blessing_artifact.set_string_custom_property(
                evaluator_constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, baseline_model.uri
            )
            blessing_artifact.set_int_custom_property(
                evaluator_constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY, baseline_model.id
            )
        storage.write_json(blessing_artifact.uri, "BLESSED" if verdict["blessed"] else "NOT_BLESSED", verdict)
