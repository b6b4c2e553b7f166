"""The `StudentTrainer` executor: TFX's Trainer `GenericExecutor` (the `run_fn` given by module path, called with
`FnArgs`, failing when it exports no serving model) with `FnArgs` built from what the StudentTrainer declares.

TFX's own `_GetFnArgs` (`fn_args_utils.get_common_fn_args`) requires `examples`, `train_args` and `eval_args`, which
the student never reads; this one fills in the fields the run_fn does read: `serving_model_dir` and `model_run_dir`
(as TFX's Trainer lays them out), `base_model` (the serving directory of the optional `base_model`, as TFX's) and
`custom_config` (the component's, plus the dataset and knowledge URIs). The default `run_fn` is
`components.student_trainer.distill_run.run_fn`.
"""

from __future__ import annotations

from tfx.components.trainer import executor as trainer_executor
from tfx.components.trainer import fn_args_utils
from tfx.types import artifact_utils
from tfx.utils import json_utils, path_utils

from components import keys


class Executor(trainer_executor.GenericExecutor):
    """TFX's GenericExecutor, its `FnArgs` built from the StudentTrainer's inputs (see the module docstring)."""

    def _GetFnArgs(self, input_dict, output_dict, exec_properties) -> fn_args_utils.FnArgs:
        """The `FnArgs` the run_fn reads.

        Args:
            input_dict: {input key: [Artifact]}: dataset, knowledge, base_model (optional).
            output_dict: {output key: [Artifact]}: model, model_run.
            exec_properties: {parameter key: value}: run_fn, custom_config (JSON).

        Returns:
            FnArgs with serving_model_dir, model_run_dir, base_model (its serving directory, or None) and
            custom_config (the component's, plus the dataset and knowledge URIs).
        """
        base_model = None
        if input_dict.get(keys.BASE_MODEL_KEY):
            base = artifact_utils.get_single_instance(input_dict[keys.BASE_MODEL_KEY])
            base_model = path_utils.serving_model_path(base.uri, path_utils.is_old_model_artifact(base))
        custom_config = json_utils.loads(exec_properties.get(keys.CUSTOM_CONFIG_KEY, "null")) or {}
        return fn_args_utils.FnArgs(
            serving_model_dir=path_utils.serving_model_dir(artifact_utils.get_single_uri(output_dict[keys.MODEL_KEY])),
            model_run_dir=artifact_utils.get_single_uri(output_dict[keys.MODEL_RUN_KEY]),
            base_model=base_model,
            custom_config={
                **custom_config,
                keys.DATASET_URI_FIELD: artifact_utils.get_single_uri(input_dict[keys.DATASET_KEY]),
                keys.KNOWLEDGE_URI_FIELD: artifact_utils.get_single_uri(input_dict[keys.KNOWLEDGE_KEY]),
            },
        )
