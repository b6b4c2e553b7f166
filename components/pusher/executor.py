"""The Pusher's executor: TFX's own, except that a version appears whole or not at all, and a candidate which is
already the served model is not pushed again.

TFX's Pusher copies the SavedModel straight into `<base>/<version>/` (saved_model.pb last): a kill or a full disk
mid-copy leaves a numeric directory that TF Serving tries to load, half-written. Here a local push is staged in a
sibling directory of the base directory (same filesystem, a name that is never all digits, so TF Serving and
`hetcomp serve` never consider it), every file and directory is fsynced, and the stage is renamed onto the version
in one step. Pushes to one base directory take turns (an flock on it), so a stage found by the next push is a
leftover of a killed one and is removed. A remote base directory (gs://), which has no atomic rename, is pushed by
TFX's own copy.

With a latest-blessed-model baseline, an unchanged rerun (the StudentTrainer served from the cache) evaluates
the served model against itself and blesses it; TFX's Pusher would then copy the same SavedModel to a new
version directory. The RankingEvaluator's blessing names both models (`current_model`, `baseline_model` URIs,
the TFX Evaluator's properties), so the push is skipped when they are the same artifact and the newest version
holds it byte for byte; when it does not (the push after its blessing failed: a full disk, a kill), it is pushed.
A remote base directory keeps TFX's rule (a blessed model is pushed): a rerun may add a copy of the served model as
a new version, but a push that failed is never skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import filecmp
import os
import shutil
import tempfile
import time
from collections.abc import Iterator

from absl import logging
from tfx.components.evaluator import constants as evaluator_constants
from tfx.components.pusher import executor as pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils
from tfx.utils import io_utils, proto_utils

from components import keys, storage

STAGING_PREFIX = ".staging-"  # a push in progress (or killed): never all digits, so never a version to a server
COPY_BLOCK = 1 << 20


def is_served_already(model_blessing) -> bool:
    """Whether the blessing compared the candidate with itself (its baseline is the same model artifact).

    Args:
        model_blessing: the ModelBlessing artifact (its current and baseline model URI properties).

    Returns:
        True when both URIs are set and equal.
    """
    current = model_blessing.get_string_custom_property(evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY)
    baseline = model_blessing.get_string_custom_property(evaluator_constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY)
    return bool(current) and current == baseline


def copy_file(source: str, target: str) -> None:
    """Copies `source` to the new file `target` and fsyncs it, so its bytes are on disk before it is published.

    Args:
        source: the file to copy.
        target: the new file's path.

    Raises:
        FileExistsError: `target` exists.
    """
    with open(source, "rb") as reader, open(target, "xb") as writer:
        while block := reader.read(COPY_BLOCK):
            writer.write(block)
        writer.flush()
        os.fsync(writer.fileno())


def fsync_dir(path: str) -> None:
    """Makes `path`'s entries (names created or renamed in it) durable.

    Args:
        path: a directory.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_tree(source: str, target: str) -> None:
    """Copies `source`'s files and directories into the existing directory `target`, every file and directory
    fsynced, so the copy is durable before it is renamed into place.

    Args:
        source: the directory to copy.
        target: the existing directory to copy into (a fresh stage).
    """
    for root, dirs, names in os.walk(source):
        destination = os.path.join(target, os.path.relpath(root, source))
        for name in dirs:
            os.mkdir(os.path.join(destination, name))
        for name in names:
            copy_file(os.path.join(root, name), os.path.join(destination, name))
        fsync_dir(destination)


@contextlib.contextmanager
def exclusive_push(base_dir: str) -> Iterator[None]:
    """Holds an flock on `base_dir` itself (no lock file, so the directory holds versions only) while the block
    runs: concurrent pushes to one base directory take turns.

    Args:
        base_dir: the serving base directory, existing.

    Yields:
        None, holding the lock.
    """
    fd = os.open(base_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def versions(base_dir: str) -> list[int]:
    """The numeric version directories of `base_dir` (what TF Serving loads).

    Args:
        base_dir: the serving base directory, existing.

    Returns:
        The versions as ints, ascending.
    """
    return sorted(
        int(name)
        for name in os.listdir(base_dir)
        if name.isascii() and name.isdigit() and os.path.isdir(os.path.join(base_dir, name))
    )


def remove_stale_stages(base_dir: str) -> None:
    """Removes the stages of killed pushes (called holding `exclusive_push`, so no stage belongs to a live one).

    Args:
        base_dir: the serving base directory.
    """
    for name in os.listdir(base_dir):
        if name.startswith(STAGING_PREFIX):
            logging.warning("Removing %s, left by a push that did not finish", os.path.join(base_dir, name))
            shutil.rmtree(os.path.join(base_dir, name), ignore_errors=True)


def publish_version(model_dir: str, base_dir: str) -> str:
    """Copies the SavedModel directory `model_dir` to a new version `base_dir/<version>`, whole or not at all.

    Args:
        model_dir: the SavedModel to push (a local directory).
        base_dir: TF Serving's base directory (local), created if need be.

    Returns:
        The version: the current Unix time as TFX's UNIX_TIMESTAMP versioning names it, or one above the newest
        version already there (so the new one is always what TF Serving's latest policy serves).
    """
    os.makedirs(base_dir, exist_ok=True)
    with exclusive_push(base_dir):
        remove_stale_stages(base_dir)
        stage = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=base_dir)
        try:
            copy_tree(model_dir, stage)
            version = str(max([int(time.time()), *(v + 1 for v in versions(base_dir))]))
            os.rename(stage, os.path.join(base_dir, version))
            fsync_dir(base_dir)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
    return version


def same_tree(left: str, right: str) -> bool:
    """Whether two directories hold the same model: the same relative paths with byte-equal files.

    Args:
        left: a directory.
        right: another directory.

    Returns:
        True when they are equal.
    """

    def listing(root):
        return sorted(
            os.path.relpath(os.path.join(d, n), root) for d, dirs, names in os.walk(root) for n in [*dirs, *names]
        )

    if listing(left) != listing(right):
        return False
    files = [p for p in listing(left) if os.path.isfile(os.path.join(left, p))]
    _, mismatch, errors = filecmp.cmpfiles(left, right, files, shallow=False)
    return not mismatch and not errors


def newest_version_holds(base_dir: str, model_dir: str) -> bool:
    """Whether the served model already is `model_dir`, so pushing it again would only add a copy.

    Args:
        base_dir: the serving base directory (may not exist).
        model_dir: the SavedModel to push.

    Returns:
        True when `base_dir`'s newest version is a byte-equal copy of `model_dir`.
    """
    found = versions(base_dir) if os.path.isdir(base_dir) else []
    return bool(found) and same_tree(model_dir, os.path.join(base_dir, str(found[-1])))


class Executor(pusher_executor.Executor):
    """TFX's Pusher executor with an atomic local push and no re-push of the served model to a local base directory
    (see the module docstring)."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        """Pushes a blessed model to a new version directory whole (a local base directory with AUTO or
        UNIX_TIMESTAMP versioning), or by TFX's own copy (any other destination).

        Args:
            input_dict: {input key: [Artifact]}: model, model_blessing.
            output_dict: {output key: [Artifact]}: pushed_model.
            exec_properties: {parameter key: value}: push_destination (JSON).
        """
        destination = proto_utils.json_to_proto(
            exec_properties[keys.PUSH_DESTINATION_KEY], pusher_pb2.PushDestination()
        )
        base_dir = destination.filesystem.base_directory
        versioning = destination.filesystem.versioning
        if (
            destination.WhichOneof("destination") != "filesystem"
            or not storage.is_local(base_dir)
            or versioning not in (pusher_pb2.Versioning.AUTO, pusher_pb2.Versioning.UNIX_TIMESTAMP)
        ):
            super().Do(input_dict, output_dict, exec_properties)  # TFX's copy, saved_model.pb last
            return
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[keys.PUSHED_MODEL_KEY])
        blessings = input_dict.get(keys.MODEL_BLESSING_KEY)
        with storage.readable_dir(self.GetModelPath(input_dict)) as model_dir:
            served = (
                blessings
                and is_served_already(artifact_utils.get_single_instance(blessings))
                and newest_version_holds(base_dir, model_dir)
            )
            if served:
                logging.info("The model is the served one already (%s holds it); not pushed again", base_dir)
            if served or not self.CheckBlessing(input_dict):
                self._MarkNotPushed(model_push)
                return
            io_utils.copy_dir(model_dir, model_push.uri)  # the PushedModel's archive copy, as TFX's Pusher makes
            version = publish_version(model_dir, base_dir)
        logging.info("Model written to serving path %s.", os.path.join(base_dir, version))
        self._MarkPushed(model_push, pushed_destination=os.path.join(base_dir, version), pushed_version=version)
