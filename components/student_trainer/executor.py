"""The `StudentTrainer` executor: TFX's Trainer `GenericExecutor` (the `run_fn` given by module path, called with
`FnArgs`), which only adds the dataset and knowledge URIs to `fn_args.custom_config`. The default `run_fn` is
`components.student_trainer.distill_run.run_fn`. An optional `base_model` (the Trainer's own input of that name; the
pipeline wires the latest blessed student on a warm-started run) is the model the run_fn starts from.
"""

from __future__ import annotations

from tfx.components.trainer import executor as trainer_executor
from tfx.types import artifact_utils

from components import keys


class Executor(trainer_executor.GenericExecutor):
    def _GetFnArgs(self, input_dict, output_dict, exec_properties):
        fn_args = super()._GetFnArgs(input_dict, output_dict, exec_properties)
        fn_args.custom_config = {
            **(fn_args.custom_config or {}),
            keys.DATASET_URI_FIELD: artifact_utils.get_single_uri(input_dict[keys.DATASET_KEY]),
            keys.KNOWLEDGE_URI_FIELD: artifact_utils.get_single_uri(input_dict[keys.KNOWLEDGE_KEY]),
        }
        return fn_args
