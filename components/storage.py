"""Reading and writing artifact directories that may live on remote storage (gs://, s3:// on Kubeflow).

The library saves to and loads from local paths; these helpers stage a local directory and copy it
to/from the artifact URI with TFX's filesystem layer, so the same executor runs locally and on Kubeflow.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from collections.abc import Iterator

import numpy as np
from tfx.dsl.io import fileio
from tfx.utils import io_utils

from components.artifacts import DATASET_FILE, VOCABULARY_FILE
from hetcomp_tf.data.dataset import Dataset
from hetcomp_tf.util import files


def is_local(uri: str) -> bool:
    return "://" not in uri


@contextlib.contextmanager
def writable_dir(uri: str) -> Iterator[str]:
    """A local directory whose content ends up at `uri` when the block exits without error."""
    if is_local(uri):
        os.makedirs(uri, exist_ok=True)
        yield uri
        return
    with tempfile.TemporaryDirectory() as tmp:
        yield tmp
        io_utils.copy_dir(tmp, uri)


@contextlib.contextmanager
def readable_dir(uri: str) -> Iterator[str]:
    """A local directory holding the content of `uri` for the duration of the block."""
    if is_local(uri):
        yield uri
        return
    with tempfile.TemporaryDirectory() as tmp:
        io_utils.copy_dir(uri, tmp)
        yield tmp


STAGING = ".incomplete"  # inside an output artifact's directory while a Beam step writes it


@contextlib.contextmanager
def staged(*uris: str) -> Iterator[list[str]]:
    """A staging directory inside each of `uris` (a Beam step's outputs): their entries move into the uris when
    the block exits without error, and the stages are removed either way, so a failed step's outputs hold
    nothing."""
    stages = [os.path.join(uri, STAGING) for uri in uris]
    try:
        yield stages
        for stage, uri in zip(stages, uris):
            for entry in fileio.listdir(stage):
                entry = entry.rstrip("/")
                fileio.rename(os.path.join(stage, entry), os.path.join(uri, entry))
    finally:
        for stage in stages:
            if fileio.exists(stage):
                fileio.rmtree(stage)


def write_json(uri: str, name: str, value) -> None:
    """uri/name as the library writes JSON: atomically on local disk; remote stores replace an object whole."""
    if is_local(uri):
        files.write_json(os.path.join(uri, name), value)
        return
    fileio.makedirs(uri)
    with fileio.open(os.path.join(uri, name), "w") as f:
        f.write(files.json_text(value))


def read_json(uri: str, name: str):
    with fileio.open(os.path.join(uri, name), "r") as f:
        return json.loads(f.read())


def read_dataset(uri: str) -> Dataset:
    """The library `Dataset` held by the `InteractionDataset` artifact at `uri`."""
    with readable_dir(uri) as directory:
        return Dataset.load(os.path.join(directory, DATASET_FILE))


def write_vocabulary(uri: str, data: Dataset) -> None:
    """The ids a model's rows stand for, beside the model at `uri` (one object, written whole)."""
    raw = io.BytesIO()
    np.savez(raw, user_vocab=np.asarray(data.user_vocab, np.str_), item_vocab=np.asarray(data.item_vocab, np.str_))
    fileio.makedirs(uri)
    with fileio.open(os.path.join(uri, VOCABULARY_FILE), "wb") as f:
        f.write(raw.getvalue())


def read_vocabulary(uri: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(user ids, item ids) of the Model at `uri`; None for a model written before models carried them."""
    if not fileio.exists(os.path.join(uri, VOCABULARY_FILE)):
        return None
    with fileio.open(os.path.join(uri, VOCABULARY_FILE), "rb") as f:
        raw = io.BytesIO(f.read())
    with np.load(raw, allow_pickle=False) as arrays:
        return arrays["user_vocab"], arrays["item_vocab"]
