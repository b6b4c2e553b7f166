"""Interactions as tf.Examples in TFX's `Split-<name>/` layout (gzipped TFRecord shards), the id vocabularies as
text files, and the library `Dataset` assembled back from both: one format, written by either ingestion path
(in memory, or the Beam pipeline of `interaction_beam.py`), read back with TensorFlow's own readers.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from hetcomp_tf.data.dataset import CSR, Dataset
from hetcomp_tf.errors import HetCompError

SPLITS = ("train", "valid", "test")
EXAMPLES_FILE = "data_tfrecord-00000-of-00001.gz"  # ExampleGen's shard naming, gzip like its default output
SHARD_PREFIX = "data_tfrecord"  # sharded: data_tfrecord-SSSSS-of-NNNNN.gz
VOCABULARY_DIR = "vocabulary"  # in the InteractionDataset: one id a line, line i = index i
VOCABULARY_FILES = {"user": "user_ids.txt", "item": "item_ids.txt"}
INDEX_FEATURES = {"user": tf.io.FixedLenFeature([], tf.int64), "item": tf.io.FixedLenFeature([], tf.int64)}
READ_BATCH = 1 << 16


def interaction_example(user: int, item: int, user_id: str, item_id: str) -> bytes:
    """One serialized tf.Example: internal indices and original ids."""
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                "user": tf.train.Feature(int64_list=tf.train.Int64List(value=[user])),
                "item": tf.train.Feature(int64_list=tf.train.Int64List(value=[item])),
                "user_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[user_id.encode()])),
                "item_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[item_id.encode()])),
            }
        )
    ).SerializeToString()


def write_split(data: Dataset, split: str, split_dir: str) -> None:
    """`split` of an in-memory `data` as one shard in `split_dir`."""
    csr = data.split(split)
    user_ids, item_ids = data.user_vocab.tolist(), data.item_vocab.tolist()
    tf.io.gfile.makedirs(split_dir)
    with tf.io.TFRecordWriter(os.path.join(split_dir, EXAMPLES_FILE), options="GZIP") as writer:
        for user, item in zip(csr.row_ids().tolist(), csr.indices.tolist()):
            writer.write(interaction_example(user, item, user_ids[user], item_ids[item]))


def vocabulary_text(ids) -> str:
    """A vocabulary file's content (without its last newline, which Beam's text sink adds)."""
    return "\n".join(ids)


def read_vocabulary(vocabulary_dir: str, kind: str) -> np.ndarray:
    path = os.path.join(vocabulary_dir, VOCABULARY_FILES[kind])
    if not tf.io.gfile.exists(path):
        raise HetCompError(f"{kind} vocabulary {path} does not exist")
    with tf.io.gfile.GFile(path, "r") as f:
        text = f.read()
    ids = text[:-1].split("\n") if text.endswith("\n") else []
    if len(set(ids)) != len(ids) or not ids:
        raise HetCompError(f"{kind} vocabulary {path} is empty, cut short or holds an id twice")
    return np.asarray(ids, dtype=np.str_)


def read_split_indices(split_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """int64 (users, items) of every example in every shard of `split_dir`, in no particular order."""
    shards = sorted(tf.io.gfile.glob(os.path.join(split_dir, "*.gz")))
    if not shards:
        raise HetCompError(f"{split_dir} holds no TFRecord shard")
    records = tf.data.TFRecordDataset(shards, compression_type="GZIP").batch(READ_BATCH)
    parsed = [tf.io.parse_example(batch, INDEX_FEATURES) for batch in records]
    if not parsed:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return tuple(np.concatenate([p[key].numpy() for p in parsed]) for key in ("user", "item"))


def read_dataset(examples_dir: str, vocabulary_dir: str, name: str) -> Dataset:
    """The Dataset the examples under `examples_dir` (`Split-<name>/` shards) and the vocabularies hold."""
    user_vocab, item_vocab = read_vocabulary(vocabulary_dir, "user"), read_vocabulary(vocabulary_dir, "item")
    splits = {}
    for split in SPLITS:
        users, items = read_split_indices(os.path.join(examples_dir, f"Split-{split}"))
        if len(users) and (users.max() >= len(user_vocab) or items.max() >= len(item_vocab)):
            raise HetCompError(f"{examples_dir} Split-{split}: an index beyond the vocabularies in {vocabulary_dir}")
        splits[split] = CSR.from_pairs(users, items, len(user_vocab))
    return Dataset(name=name, user_vocab=user_vocab, item_vocab=item_vocab, **splits)
