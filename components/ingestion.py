"""`InteractionExampleGen`: interaction data -> standard TFX `Examples` (train/valid/test) + the `Dataset`.

The library reads, filters, re-indexes and splits the data (`hetcomp_tf.data.load_dataset`, which raises
`HetCompError` on a missing, empty or malformed file); this component only writes that one split twice:
as gzipped tf.Example TFRecords in TFX's `Split-<name>/` layout, so StatisticsGen/SchemaGen/ExampleValidator
see the real data, and as the library's `.npz` (`InteractionDataset`), which the trainers read directly.
With a `previous_dataset` (the latest one, on a warm-started run) its ids keep their indices and new ids are
appended (`Dataset.extend_vocabularies`, after the split, which is therefore the one a cold run makes).
"""

from __future__ import annotations

import dataclasses
import json
import os

import tensorflow as tf
from tfx import types
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter
from tfx.utils import io_utils

from components import storage
from components.artifacts import DATASET_FILE, InteractionDataset, set_custom_properties
from hetcomp_tf import data as hdata
from hetcomp_tf.config import DataConfig, from_dict
from hetcomp_tf.datafiles import CITEULIKE_SHA256
from hetcomp_tf.progress import log

SPLITS = ("train", "valid", "test")
EXAMPLES_FILE = "data_tfrecord-00000-of-00001.gz"  # ExampleGen's shard naming, gzip like its default output


def interaction_examples(data: hdata.Dataset, split: str):
    """Yields one serialized tf.Example per (user, item) of `split`: internal ids and original ids."""
    csr = data.split(split)
    user_ids = [str(u).encode() for u in data.user_vocab]
    item_ids = [str(i).encode() for i in data.item_vocab]
    for user, item in zip(csr.row_ids().tolist(), csr.indices.tolist()):
        yield tf.train.Example(features=tf.train.Features(feature={
            "user": tf.train.Feature(int64_list=tf.train.Int64List(value=[user])),
            "item": tf.train.Feature(int64_list=tf.train.Int64List(value=[item])),
            "user_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[user_ids[user]])),
            "item_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[item_ids[item]])),
        })).SerializeToString()


def write_examples(data: hdata.Dataset, examples: types.Artifact) -> None:
    examples.split_names = artifact_utils.encode_split_names(list(SPLITS))
    examples_utils.set_payload_format(examples, example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE)
    examples_utils.set_file_format(examples, "tfrecords_gzip")
    for split in SPLITS:
        split_dir = artifact_utils.get_split_uri([examples], split)
        tf.io.gfile.makedirs(split_dir)
        with tf.io.TFRecordWriter(os.path.join(split_dir, EXAMPLES_FILE), options="GZIP") as writer:
            for record in interaction_examples(data, split):
                writer.write(record)


def data_fingerprint(data: str) -> str:
    """Size and mtime of the data file, so a changed file is re-ingested rather than served from the cache
    (what ExampleGen's driver does with its input spans); synthetic data is fixed by its DataConfig, CiteULike by
    its sha256 (checked on reading), so building the pipeline needs no local copy (on Kubeflow a task fetches it)."""
    if data == "synthetic":
        return data
    if data == "citeulike":
        return f"citeulike sha256:{CITEULIKE_SHA256}"
    return io_utils.generate_fingerprint("input", data)


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        cfg = from_dict(DataConfig, json.loads(exec_properties["data_config"]))
        data = hdata.load_dataset(exec_properties["data"], exec_properties.get("data_format") or None, cfg)
        grown = {}
        if input_dict.get("previous_dataset"):
            previous = storage.read_dataset(artifact_utils.get_single_uri(input_dict["previous_dataset"]))
            data = data.extend_vocabularies(previous.user_vocab, previous.item_vocab)
            grown = {"new_users": data.n_users - previous.n_users, "new_items": data.n_items - previous.n_items}
            log(f"vocabularies grown from the previous dataset's {previous.n_users:,} users and {previous.n_items:,} "
                f"items by {grown['new_users']:,} and {grown['new_items']:,}")
        write_examples(data, artifact_utils.get_single_instance(output_dict["examples"]))
        dataset = artifact_utils.get_single_instance(output_dict["dataset"])
        with storage.writable_dir(dataset.uri) as directory:
            data.save(os.path.join(directory, DATASET_FILE))
        set_custom_properties(dataset, name=data.name, **data.sizes(), **grown)


class InteractionExampleGenSpec(ComponentSpec):
    PARAMETERS = {
        "data": ExecutionParameter(type=str),
        "data_format": ExecutionParameter(type=str, optional=True),
        "data_config": ExecutionParameter(type=str),
        "data_fingerprint": ExecutionParameter(type=str),
    }
    INPUTS = {"previous_dataset": ChannelParameter(type=InteractionDataset, optional=True)}
    OUTPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "dataset": ChannelParameter(type=InteractionDataset),
    }


class InteractionExampleGen(base_component.BaseComponent):
    """Ingests `data` ("synthetic", "citeulike" or a users.dat/CSV path) with the profile's `DataConfig`
    (`min_rating` as the command line set it), extending `previous_dataset`'s vocabularies when one is wired in."""

    SPEC_CLASS = InteractionExampleGenSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, data: str, data_format: str | None, data_config: DataConfig,
                 previous_dataset: types.BaseChannel | None = None):
        super().__init__(spec=InteractionExampleGenSpec(
            data=data,
            data_format=data_format,
            data_config=json.dumps(dataclasses.asdict(data_config)),
            data_fingerprint=data_fingerprint(data),
            previous_dataset=previous_dataset,
            examples=types.Channel(type=standard_artifacts.Examples),
            dataset=types.Channel(type=InteractionDataset),
        ))
