"""The Pusher's executor: TFX's own, except that a candidate which is already the served model is not pushed again.

With a latest-blessed-model baseline, an unchanged rerun (the StudentTrainer served from the cache) evaluates
the served model against itself and blesses it; TFX's Pusher would then copy the same SavedModel to a new
version directory. The RankingEvaluator's blessing names both models (`current_model`, `baseline_model` URIs,
the TFX Evaluator's properties), so the push is skipped when they are the same artifact.
"""

from __future__ import annotations

from absl import logging
from tfx.components.evaluator import constants as evaluator_constants
from tfx.components.pusher import executor as pusher_executor
from tfx.types import artifact_utils, standard_component_specs


def is_served_already(model_blessing) -> bool:
    """True when the blessing compared the candidate with itself (its baseline is the same model artifact)."""
    current = model_blessing.get_string_custom_property(evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY)
    baseline = model_blessing.get_string_custom_property(evaluator_constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY)
    return bool(current) and current == baseline


class Executor(pusher_executor.Executor):
    def CheckBlessing(self, input_dict) -> bool:
        if not super().CheckBlessing(input_dict):
            return False
        blessings = input_dict.get(standard_component_specs.MODEL_BLESSING_KEY)
        if blessings and is_served_already(artifact_utils.get_single_instance(blessings)):
            logging.info("The model is the latest blessed (served) model already; not pushed again")
            return False
        return True
