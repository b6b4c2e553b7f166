"""`RankingEvaluator`: Recall/NDCG@10/20/50 of the exported student next to every teacher and the ensemble,
and the blessing the Pusher obeys.

The student is evaluated through the SavedModel that would be pushed (its `score_items` signature over
every item, ranked by `hetcomp_tf.metrics.evaluate`), so what is measured is what gets served. Blessing has
the TFX Evaluator's two parts: a value threshold (test Recall@50 >= a share of the ensemble's) and, when a
`baseline_model` is wired in (the latest blessed model, from a Resolver), TFMA's change threshold on the
valid split: with diff = candidate - baseline and ratio = diff / baseline (higher is better), the candidate
passes iff diff >= `absolute` and ratio >= `relative` (unset bounds: -inf). Without a baseline the change
threshold is skipped ("rubber stamped", as TFMA says). A baseline trained on an earlier snapshot (its vocabularies
lack some of today's users or items) and the candidate are compared on the users and items it knows. The
`ModelBlessing` carries the TFX Evaluator's custom properties (`blessed`, `current_model[_id]`,
`baseline_model[_id]`), which LatestBlessedModelStrategy reads.
"""

from __future__ import annotations

import json
import math

import numpy as np
import tensorflow as tf
from tfx import types
from tfx.components.evaluator import constants as evaluator_constants
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter
from tfx.utils import path_utils

from components import storage
from components.artifacts import METRICS_FILE, InteractionDataset, RankingMetrics
from hetcomp_tf.data import Dataset
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.metrics import evaluate
from hetcomp_tf.report import ENSEMBLE, student_row

BLESSED_KEY = evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY  # what Pusher and LatestBlessedModelStrategy read
CHANGE_SPLIT = "valid"  # the candidate is compared with the baseline on this split; the value threshold on test
SCORED_STRINGS_PER_BATCH = 2_000_000  # users x items id strings handed to score_items at once


def served_scorer(saved_model_dir: str, data: Dataset):
    """score_fn(user_ids int32 [b]) -> float32 [b, n_items] from the exported model's `score_items`."""
    score_items = tf.saved_model.load(saved_model_dir).signatures["score_items"]
    user_ids = tf.constant(data.user_vocab.astype(str))
    item_ids = tf.constant(data.item_vocab.astype(str))

    def score_fn(users: tf.Tensor) -> tf.Tensor:
        items = tf.tile(item_ids[None, :], tf.stack([tf.size(users), 1]))
        return score_items(user_id=tf.gather(user_ids, users), item_id=items)["scores"]

    return score_fn


def value_threshold(student_test: dict, ensemble_test: dict, thresholds: dict) -> dict:
    """Passed when the student's `metric` reaches `min_share_of_ensemble` x the ensemble's (and is > 0)."""
    metric, share = thresholds["metric"], float(thresholds["min_share_of_ensemble"])
    if metric not in student_test or metric not in ensemble_test:
        raise HetCompError(f"blessing metric {metric!r} is not among the evaluated {sorted(student_test)}")
    required = share * ensemble_test[metric]
    passed = student_test[metric] >= required and student_test[metric] > 0.0
    return {"blessed": bool(passed), "metric": metric, "student": student_test[metric],
            "ensemble": ensemble_test[metric], "min_share_of_ensemble": share, "required": required}


def change_threshold(candidate: float, baseline: float, thresholds: dict) -> dict:
    """TFMA's GenericChangeThreshold, HIGHER_IS_BETTER: diff >= absolute and ratio >= relative (ratio NaN for a
    zero baseline, which fails a relative bound as it does in TFMA)."""
    absolute, relative = thresholds.get("change_absolute"), thresholds.get("change_relative")
    diff = candidate - baseline
    ratio = math.nan if math.isclose(baseline, 0.0) else diff / baseline
    passed = (absolute is None or diff >= absolute) and (relative is None or ratio >= relative)
    return {"passed": bool(passed), "split": CHANGE_SPLIT, "candidate": candidate, "baseline": baseline,
            "diff": diff, "ratio": None if math.isnan(ratio) else ratio, "absolute": absolute, "relative": relative}


def blessing(student: dict, ensemble_test: dict, thresholds: dict, baseline: dict | None = None) -> dict:
    """The verdict: `student`/`baseline` are {split: metrics}; blessed iff the value threshold passes and, with a
    baseline, the change threshold on CHANGE_SPLIT's `metric` too. "baseline" is None when rubber-stamped."""
    verdict = value_threshold(student["test"], ensemble_test, thresholds)
    verdict["baseline"] = None
    if baseline is not None:
        metric = verdict["metric"]
        verdict["baseline"] = change_threshold(student[CHANGE_SPLIT][metric], baseline[CHANGE_SPLIT][metric],
                                               thresholds)
        verdict["blessed"] = verdict["blessed"] and verdict["baseline"]["passed"]
    return verdict


def evaluate_served(model: types.Artifact, data: Dataset, splits) -> dict:
    """{split: metrics} of the SavedModel in `model`'s serving directory on `data`."""
    with storage.readable_dir(path_utils.serving_model_path(model.uri)) as saved_model_dir:
        score_fn = served_scorer(saved_model_dir, data)
        batch = max(1, SCORED_STRINGS_PER_BATCH // data.n_items)
        return {split: evaluate(score_fn, data, split, batch_size=batch) for split in splits}


def shared_ground(data: Dataset, vocabularies) -> Dataset:
    """`data`, or when the served model was trained on another snapshot (its vocabularies miss some of `data`'s
    ids), `data` restricted to the users and items it knows: the change threshold compares the two models there."""
    if vocabularies is None or (np.isin(data.user_vocab, vocabularies[0]).all()
                                and np.isin(data.item_vocab, vocabularies[1]).all()):
        return data
    return data.restricted(*vocabularies)


class Executor(evaluator_executor.Executor):
    """A subclass of TFX's Evaluator executor only so that the KFP v2 entrypoint rewrites the blessing's model ids
    into artifact names, which the compiled latest-blessed-model resolver matches; `Do` is entirely its own."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        data = storage.read_dataset(artifact_utils.get_single_uri(input_dict["dataset"]))
        model = artifact_utils.get_single_instance(input_dict["model"])
        student = evaluate_served(model, data, ("valid", "test"))
        baseline_model = (input_dict.get("baseline_model") or [None])[0]
        candidate, baseline, shared = student, None, None
        if baseline_model is not None and baseline_model.uri == model.uri:  # a cached Trainer: the same SavedModel
            baseline = {CHANGE_SPLIT: student[CHANGE_SPLIT]}
        elif baseline_model is not None:
            ground = shared_ground(data, storage.read_vocabulary(baseline_model.uri))
            baseline = evaluate_served(baseline_model, ground, (CHANGE_SPLIT,))
            if ground is not data:  # the candidate too, on the users and items the served model knows
                candidate = {**student, **evaluate_served(model, ground, (CHANGE_SPLIT,))}
                shared = {"users": ground.n_users, "items": ground.n_items}

        methods = storage.read_json(artifact_utils.get_single_uri(input_dict["comparison"]), METRICS_FILE)["methods"]
        methods[student_row(exec_properties["method"])] = student
        verdict = blessing(candidate, methods[ENSEMBLE]["test"], json.loads(exec_properties["thresholds"]), baseline)
        if baseline_model is not None:
            verdict["baseline"]["model"] = baseline_model.uri
            verdict["baseline"]["shared_ids"] = shared  # None: compared on every user and item
        storage.write_json(artifact_utils.get_single_uri(output_dict["evaluation"]), METRICS_FILE,
                           {"methods": methods, "blessing": verdict})

        blessing_artifact = artifact_utils.get_single_instance(output_dict["blessing"])
        blessing_artifact.set_int_custom_property(BLESSED_KEY, int(verdict["blessed"]))
        blessing_artifact.set_string_custom_property(evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY,
                                                     model.uri)
        blessing_artifact.set_int_custom_property(evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
        if baseline_model is not None:
            blessing_artifact.set_string_custom_property(
                evaluator_constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, baseline_model.uri)
            blessing_artifact.set_int_custom_property(evaluator_constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY,
                                                      baseline_model.id)
        storage.write_json(blessing_artifact.uri, "BLESSED" if verdict["blessed"] else "NOT_BLESSED", verdict)


class RankingEvaluatorSpec(ComponentSpec):
    PARAMETERS = {
        "method": ExecutionParameter(type=str),
        "thresholds": ExecutionParameter(type=str),
    }
    INPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "dataset": ChannelParameter(type=InteractionDataset),
        "comparison": ChannelParameter(type=RankingMetrics),
        "baseline_model": ChannelParameter(type=standard_artifacts.Model, optional=True),
    }
    OUTPUTS = {
        "blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
        "evaluation": ChannelParameter(type=RankingMetrics),
    }


class RankingEvaluator(base_component.BaseComponent):
    SPEC_CLASS = RankingEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)  # a Beam executor's subclass

    def __init__(self, model: types.BaseChannel, dataset: types.BaseChannel, comparison: types.BaseChannel,
                 method: str, thresholds: dict, baseline_model: types.BaseChannel | None = None):
        """`comparison`: KnowledgeBuilder's teacher and ensemble metrics; `thresholds`: {"metric": "recall@50",
        "min_share_of_ensemble": float, "change_absolute": float | None, "change_relative": float | None};
        `baseline_model`: the model to beat (a LatestBlessedModelStrategy Resolver's "model" output)."""
        super().__init__(spec=RankingEvaluatorSpec(
            method=method,
            thresholds=json.dumps(thresholds, sort_keys=True),
            model=model,
            dataset=dataset,
            comparison=comparison,
            baseline_model=baseline_model,
            blessing=types.Channel(type=standard_artifacts.ModelBlessing),
            evaluation=types.Channel(type=RankingMetrics),
        ))
