"""The `InteractionExampleGen` executor: interaction data -> standard TFX `Examples` (train/valid/test) + the `Dataset`.

Two paths to the same artifacts: gzipped tf.Example TFRecords in TFX's `Split-<name>/` layout (so
StatisticsGen/SchemaGen/ExampleValidator see the real data) and the library's `.npz` (`InteractionDataset`), which
the trainers read directly.

- The "per_user" split protocol runs as a Beam pipeline (`interaction_beam.py`) on the runner the pipeline's
  `beam_pipeline_args` name: `data` may then be a glob of sharded CSV/TSV files; the examples are sharded, the
  dataset artifact also holds the id vocabularies (`vocabulary/`), and dataset.npz is assembled from the written
  shards. Everything is written into `.incomplete/` inside each output first and moved in once all of it is there.
- The other protocols (the authors' sequential RNG, the iterative global drops) cannot be split over workers: the
  library reads and splits in memory (`hetcomp_tf.data.loading.load_dataset`) and one shard per split is written.

Bad input (missing, empty or malformed data) is a one-line `HetCompError` naming file and line. With a
`previous_dataset` (the latest one, on a warm-started run) its ids keep their indices and new ids are appended
(`Dataset.extend_vocabularies`, after the split, which is therefore the one a cold run makes).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tfx import types
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils

from components import interaction_beam, interaction_examples, keys, storage
from components.artifacts import DATASET_FILE, set_custom_properties
from components.interaction_examples import SPLITS, VOCABULARY_DIR
from hetcomp_tf.config import DataConfig, from_dict
from hetcomp_tf.data.datafiles import citeulike_path, file_format, verify_citeulike_sha256
from hetcomp_tf.data.dataset import Dataset
from hetcomp_tf.data.loading import dataset_name, load_dataset
from hetcomp_tf.data.readers import make_synthetic
from hetcomp_tf.data.split import check_split_config
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.util.progress import log


def describe_examples(examples: types.Artifact) -> None:
    """Sets the Examples' split names and formats, as TFX's ExampleGen records them, so TFX's components read them.

    Args:
        examples: the output Examples artifact.
    """
    examples.split_names = artifact_utils.encode_split_names(list(SPLITS))
    examples_utils.set_payload_format(examples, example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE)
    examples_utils.set_file_format(examples, "tfrecords_gzip")


def beam_source(data: str, data_format: str | None, cfg: DataConfig) -> tuple[interaction_beam.Source, str] | None:
    """Which path ingests `data`: the Beam pipeline for the per_user protocol, else the in-memory one.

    Args:
        data: the component's `data` ("synthetic", "citeulike", a path or a glob).
        data_format: the files' format, None: from the name.
        cfg: the data config: its split protocol, and the synthetic data's sizes and seed.

    Returns:
        (what the Beam path reads, the dataset's name), or None when the in-memory path ingests `data`: another
        split protocol, or a saved split (npz, used as is).

    Raises:
        HetCompError: no file matches `data`, or CiteULike's checksum does not match.
    """
    if cfg.split_protocol != "per_user":
        return None
    if data == "synthetic":
        inter = make_synthetic(cfg.synthetic_users, cfg.synthetic_items, cfg.seed)
        pairs = tuple(zip(inter.user_vocab[inter.users].tolist(), inter.item_vocab[inter.items].tolist()))
        return interaction_beam.Source(fmt="pairs", pairs=pairs, where="synthetic"), "synthetic"
    if data == "citeulike":
        path = citeulike_path()
        verify_citeulike_sha256(path)
        return interaction_beam.Source(fmt="citeulike", files=(str(path),), where=str(path)), "citeulike"
    files = tuple(sorted(fileio.glob(data)))
    if not files:
        raise HetCompError(f"data {data!r}: no file matches")
    fmt = file_format(Path(data), data_format)
    if fmt == "npz":
        return None
    name = dataset_name(Path(files[0]), fmt) if len(files) == 1 else Path(data).parent.name or "data"
    return interaction_beam.Source(fmt=fmt, files=files, where=data), name


class Executor(base_beam_executor.BaseBeamExecutor):
    """`InteractionExampleGen`'s executor (see the module docstring)."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        """Ingests the data into both outputs and sets the dataset's custom properties (name, sizes, growth).

        Args:
            input_dict: {input key: [Artifact]}: previous_dataset (optional).
            output_dict: {output key: [Artifact]}: examples, dataset.
            exec_properties: {parameter key: value}: data, data_format, data_config (JSON).

        Raises:
            HetCompError: missing, empty or malformed data, or a bad split config.
        """
        cfg = from_dict(DataConfig, json.loads(exec_properties[keys.DATA_CONFIG_KEY]))
        check_split_config(cfg)
        data, data_format = exec_properties[keys.DATA_KEY], exec_properties.get(keys.DATA_FORMAT_KEY) or None
        previous = (
            storage.read_dataset(artifact_utils.get_single_uri(input_dict[keys.PREVIOUS_DATASET_KEY]))
            if input_dict.get(keys.PREVIOUS_DATASET_KEY)
            else None
        )
        examples = artifact_utils.get_single_instance(output_dict[keys.EXAMPLES_KEY])
        dataset = artifact_utils.get_single_instance(output_dict[keys.DATASET_KEY])
        source = beam_source(data, data_format, cfg)
        if source is None:
            result = load_dataset(data, data_format, cfg)
            if previous is not None:
                result = result.extend_vocabularies(previous.user_vocab, previous.item_vocab)
            self._write_in_memory(result, examples, dataset)
        else:
            result = self._ingest_with_beam(*source, cfg, examples, dataset, previous)
        describe_examples(examples)
        grown = {}
        if previous is not None:
            grown = {"new_users": result.n_users - previous.n_users, "new_items": result.n_items - previous.n_items}
            log(
                f"vocabularies grown from the previous dataset's {previous.n_users:,} users and {previous.n_items:,} "
                f"items by {grown['new_users']:,} and {grown['new_items']:,}"
            )
        set_custom_properties(dataset, name=result.name, **result.sizes(), **grown)

    @staticmethod
    def _write_in_memory(data: Dataset, examples: types.Artifact, dataset: types.Artifact) -> None:
        for split in SPLITS:
            interaction_examples.write_split(data, split, os.path.join(examples.uri, f"Split-{split}"))
        with storage.writable_dir(dataset.uri) as directory:
            data.save(os.path.join(directory, DATASET_FILE))

    def _ingest_with_beam(
        self,
        source: interaction_beam.Source,
        name: str,
        cfg: DataConfig,
        examples: types.Artifact,
        dataset: types.Artifact,
        previous: Dataset | None,
    ) -> Dataset:
        """The Beam pipeline into each output's staging directory, dataset.npz from what it wrote, then both moved
        in; on any failure the staging directories are removed, so the outputs hold nothing (`storage.staged`)."""
        vocabularies = ((), ()) if previous is None else (previous.user_vocab.tolist(), previous.item_vocab.tolist())
        with storage.staged(examples.uri, dataset.uri) as (examples_stage, dataset_stage):
            vocabulary_stage = os.path.join(dataset_stage, VOCABULARY_DIR)
            interaction_beam.run(
                self._make_beam_pipeline(),
                source,
                cfg,
                examples_stage,
                vocabulary_stage,
                previous_vocabularies=vocabularies,
            )
            data = interaction_examples.read_dataset(examples_stage, vocabulary_stage, name)
            with storage.writable_dir(dataset_stage) as directory:
                data.save(os.path.join(directory, DATASET_FILE))
        return data
