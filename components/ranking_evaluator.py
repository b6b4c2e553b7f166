"""`RankingEvaluator`: Recall/NDCG@10/20/50 of the exported student next to every teacher and the ensemble,
and the blessing the standard Pusher obeys.

The student is evaluated through the SavedModel that would be pushed (its `score_items` signature over
every item, ranked by `hetcomp_tf.metrics.evaluate`), so what is measured is what gets served. The
`ModelBlessing` carries the custom property `blessed` = 1/0 exactly like the TFX Evaluator's.
"""

from __future__ import annotations

import json

import tensorflow as tf
from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter
from tfx.utils import path_utils

from components import storage
from components.artifacts import METRICS_FILE, InteractionDataset, RankingMetrics
from hetcomp_tf.data import Dataset
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.metrics import evaluate

BLESSED_KEY = "blessed"  # the property tfx.components.util.model_utils.is_model_blessed reads
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


def blessing(student_test: dict, ensemble_test: dict, thresholds: dict) -> dict:
    """Blessed when the student's `metric` reaches `min_share_of_ensemble` x the ensemble's (and is > 0)."""
    metric, share = thresholds["metric"], float(thresholds["min_share_of_ensemble"])
    if metric not in student_test or metric not in ensemble_test:
        raise HetCompError(f"blessing metric {metric!r} is not among the evaluated {sorted(student_test)}")
    required = share * ensemble_test[metric]
    blessed = student_test[metric] >= required and student_test[metric] > 0.0
    return {"blessed": bool(blessed), "metric": metric, "student": student_test[metric],
            "ensemble": ensemble_test[metric], "min_share_of_ensemble": share, "required": required}


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        data = storage.read_dataset(artifact_utils.get_single_uri(input_dict["dataset"]))
        model = artifact_utils.get_single_instance(input_dict["model"])
        with storage.readable_dir(path_utils.serving_model_path(model.uri)) as saved_model_dir:
            score_fn = served_scorer(saved_model_dir, data)
            batch = max(1, SCORED_STRINGS_PER_BATCH // data.n_items)
            student = {split: evaluate(score_fn, data, split, batch_size=batch) for split in ("valid", "test")}

        methods = storage.read_json(artifact_utils.get_single_uri(input_dict["comparison"]), METRICS_FILE)["methods"]
        methods[f"student:{exec_properties['method']}"] = student
        verdict = blessing(student["test"], methods["ensemble"]["test"], json.loads(exec_properties["thresholds"]))
        storage.write_json(artifact_utils.get_single_uri(output_dict["evaluation"]), METRICS_FILE,
                           {"methods": methods, "blessing": verdict})

        blessing_artifact = artifact_utils.get_single_instance(output_dict["blessing"])
        blessing_artifact.set_int_custom_property(BLESSED_KEY, int(verdict["blessed"]))
        blessing_artifact.set_string_custom_property("current_model", model.uri)
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
    }
    OUTPUTS = {
        "blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
        "evaluation": ChannelParameter(type=RankingMetrics),
    }


class RankingEvaluator(base_component.BaseComponent):
    SPEC_CLASS = RankingEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, model: types.BaseChannel, dataset: types.BaseChannel, comparison: types.BaseChannel,
                 method: str, thresholds: dict):
        """`comparison`: KnowledgeBuilder's teacher and ensemble metrics; `thresholds`:
        {"metric": "recall@50", "min_share_of_ensemble": float}."""
        super().__init__(spec=RankingEvaluatorSpec(
            method=method,
            thresholds=json.dumps(thresholds, sort_keys=True),
            model=model,
            dataset=dataset,
            comparison=comparison,
            blessing=types.Channel(type=standard_artifacts.ModelBlessing),
            evaluation=types.Channel(type=RankingMetrics),
        ))
