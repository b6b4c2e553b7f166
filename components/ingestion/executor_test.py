"""The InteractionExampleGen executor on synthetic data and on CSV shards (the per_user Beam path)."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.types import artifact_utils, standard_artifacts

from components import interaction_examples, keys, storage
from components.artifacts import InteractionDataset
from components.ingestion import executor as ingestion
from components.testing import DATA_CONFIG, make
from hetcomp_tf.config import DataConfig
from hetcomp_tf.data.readers import make_synthetic
from hetcomp_tf.data.split import split_dataset
from hetcomp_tf.errors import HetCompError


class TestInteractionExampleGen:
    def test_the_dataset_is_the_librarys_split_and_the_examples_hold_every_pair(self, ingested):
        expected = split_dataset(make_synthetic(150, 100, DATA_CONFIG.seed), DATA_CONFIG, "synthetic")
        data = ingested.data
        assert data.sizes() == expected.sizes()
        for split in interaction_examples.SPLITS:
            np.testing.assert_array_equal(data.split(split).indices, expected.split(split).indices)
            split_dir = artifact_utils.get_split_uri([ingested.examples], split)
            path = os.path.join(split_dir, interaction_examples.EXAMPLES_FILE)
            assert sum(1 for _ in tf.data.TFRecordDataset(path, "GZIP")) == expected.split(split).nnz, split
        properties = ingested.dataset.mlmd_artifact.custom_properties
        assert properties["n_users"].int_value == data.n_users and properties["name"].string_value == "synthetic"

    def test_a_missing_file_is_one_line_naming_it(self, tmp_path):
        missing = str(tmp_path / "nowhere.csv")
        outputs = {
            keys.EXAMPLES_KEY: [make(standard_artifacts.Examples, tmp_path, "e")],
            keys.DATASET_KEY: [make(InteractionDataset, tmp_path, "d")],
        }
        with pytest.raises(HetCompError, match="nowhere.csv"):
            ingestion.Executor().Do(
                {},
                outputs,
                {
                    keys.DATA_KEY: missing,
                    keys.DATA_FORMAT_KEY: "",
                    keys.DATA_CONFIG_KEY: json.dumps(dataclasses.asdict(DATA_CONFIG)),
                    keys.DATA_FINGERPRINT_KEY: "",
                },
            )
        assert not os.path.exists(outputs[keys.DATASET_KEY][0].uri)


def ingest(root, data: str, cfg: DataConfig):
    """InteractionExampleGen's executor on `data` (outputs under `root`): (examples, dataset) artifacts."""
    examples, dataset = make(standard_artifacts.Examples, root, "examples"), make(InteractionDataset, root, "dataset")
    ingestion.Executor().Do(
        {},
        {keys.EXAMPLES_KEY: [examples], keys.DATASET_KEY: [dataset]},
        {
            keys.DATA_KEY: data,
            keys.DATA_FORMAT_KEY: "",
            keys.DATA_CONFIG_KEY: json.dumps(dataclasses.asdict(cfg)),
            keys.DATA_FINGERPRINT_KEY: "",
        },
    )
    return examples, dataset


class TestPerUserIngestionWithBeam:
    CONFIG = dataclasses.replace(DATA_CONFIG, split_protocol="per_user")

    def test_csv_shards_give_the_in_memory_split_as_sharded_examples(self, tmp_path):
        inter = make_synthetic(150, 100, self.CONFIG.seed)
        rows = [f"{u},{i}\n" for u, i in zip(inter.user_vocab[inter.users], inter.item_vocab[inter.items])]
        (tmp_path / "logs").mkdir()
        for k in range(3):
            (tmp_path / "logs" / f"part-{k}.csv").write_text("".join(rows[k::3]))
        examples, dataset = ingest(tmp_path, str(tmp_path / "logs" / "part-*.csv"), self.CONFIG)
        expected = split_dataset(inter, self.CONFIG, "logs")
        data = storage.read_dataset(dataset.uri)
        assert data.name == "logs" and data.sizes() == expected.sizes()
        np.testing.assert_array_equal(data.user_vocab, expected.user_vocab)
        np.testing.assert_array_equal(data.item_vocab, expected.item_vocab)
        for split in interaction_examples.SPLITS:
            np.testing.assert_array_equal(data.split(split).indptr, expected.split(split).indptr)
            np.testing.assert_array_equal(data.split(split).indices, expected.split(split).indices)
        shards = tf.io.gfile.glob(os.path.join(artifact_utils.get_split_uri([examples], "valid"), "*.gz"))
        parsed = tf.io.parse_example(
            list(tf.data.TFRecordDataset(shards, "GZIP")),
            {"user": tf.io.FixedLenFeature([], tf.int64), "user_id": tf.io.FixedLenFeature([], tf.string)},
        )
        np.testing.assert_array_equal(parsed["user_id"].numpy().astype(str), data.user_vocab[parsed["user"].numpy()])
        assert artifact_utils.decode_split_names(examples.split_names) == list(interaction_examples.SPLITS)
        assert sorted(os.listdir(dataset.uri)) == ["dataset.npz", interaction_examples.VOCABULARY_DIR]
        assert not os.path.exists(os.path.join(examples.uri, storage.STAGING))

    def test_bad_input_is_one_line_and_leaves_the_outputs_empty(self, tmp_path):
        (tmp_path / "logs").mkdir()
        (tmp_path / "logs" / "a.csv").write_text("".join(f"u{k % 9},i{k}\n" for k in range(60)))
        (tmp_path / "logs" / "b.csv").write_text("u1,i1\nu2,i2,extra\n")
        with pytest.raises(HetCompError) as err:
            ingest(tmp_path, str(tmp_path / "logs" / "*.csv"), self.CONFIG)
        assert str(err.value) == f"{tmp_path / 'logs' / 'b.csv'} line 2: 3 fields, expected 2 like line 1"
        assert os.listdir(tmp_path / "examples") == [] and os.listdir(tmp_path / "dataset") == []
        with pytest.raises(HetCompError, match=r"data '.*/nothing-\*\.csv': no file matches"):
            ingest(tmp_path, str(tmp_path / "nothing-*.csv"), self.CONFIG)
