"""`InteractionExampleGen`: the component spec and class; the executor is `executor.py` beside it."""

from __future__ import annotations

import dataclasses
import json

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter
from tfx.utils import io_utils

from components import keys
from components.artifacts import InteractionDataset
from components.ingestion.executor import Executor
from hetcomp_tf.config import DataConfig
from hetcomp_tf.data.datafiles import CITEULIKE_SHA256


def data_fingerprint(data: str) -> str:
    """Size and mtime of the data files (a glob's every match), so changed data is re-ingested rather than served
    from the cache (what ExampleGen's driver does with its input spans); synthetic data is fixed by its DataConfig,
    CiteULike by its sha256 (checked on reading), so building the pipeline needs no local copy (on Kubeflow a task
    fetches it). An execution property, so the component's cache key changes with the data.

    Args:
        data: the component's `data` argument.

    Returns:
        "synthetic", "citeulike sha256:<digest>", or TFX's fingerprint of the files `data` matches.
    """
    if data == "synthetic":
        return data
    if data == "citeulike":
        return f"citeulike sha256:{CITEULIKE_SHA256}"
    return io_utils.generate_fingerprint("input", data)


class InteractionExampleGenSpec(ComponentSpec):
    """`InteractionExampleGen`'s parameters, optional input and outputs (see the component's docstring)."""

    PARAMETERS = {
        keys.DATA_KEY: ExecutionParameter(type=str),
        keys.DATA_FORMAT_KEY: ExecutionParameter(type=str, optional=True),
        keys.DATA_CONFIG_KEY: ExecutionParameter(type=str),
        keys.DATA_FINGERPRINT_KEY: ExecutionParameter(type=str),
    }
    INPUTS = {keys.PREVIOUS_DATASET_KEY: ChannelParameter(type=InteractionDataset, optional=True)}
    OUTPUTS = {
        keys.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        keys.DATASET_KEY: ChannelParameter(type=InteractionDataset),
    }


class InteractionExampleGen(base_component.BaseComponent):
    """Ingests interaction data into standard TFX `Examples` and HetComp's `InteractionDataset` (the same split).

    Args:
        data: "synthetic", "citeulike", a users.dat/CSV path or, with the per_user split protocol, a glob of CSV/TSV
            shards (ingested by a Beam pipeline on the runner of the pipeline's `beam_pipeline_args`).
        data_format: the files' format when their names do not say it (None: from the name).
        data_config: the profile's `DataConfig` (`min_rating` as the command line set it): filtering and the split.
        previous_dataset: optional InteractionDataset channel (the latest one, on a warm-started run) whose ids keep
            their indices; new ids are appended.

    Outputs:
        examples: Examples; gzipped tf.Example TFRecords of the (user, item) pairs in `Split-train/`,
            `Split-valid/`, `Split-test/` (what StatisticsGen, SchemaGen and ExampleValidator read).
        dataset: InteractionDataset; the library's `Dataset` (dataset.npz: the split and the id vocabularies, plus
            `vocabulary/` on the Beam path), what the trainers and the evaluator read. Custom properties: name and
            sizes (and, warm-started, new_users and new_items).
    """

    SPEC_CLASS = InteractionExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(
        self,
        data: str,
        data_format: str | None,
        data_config: DataConfig,
        previous_dataset: types.BaseChannel | None = None,
    ):
        super().__init__(
            spec=InteractionExampleGenSpec(
                data=data,
                data_format=data_format,
                data_config=json.dumps(dataclasses.asdict(data_config)),
                data_fingerprint=data_fingerprint(data),
                previous_dataset=previous_dataset,
                examples=types.Channel(type=standard_artifacts.Examples),
                dataset=types.Channel(type=InteractionDataset),
            )
        )
