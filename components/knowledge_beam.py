"""The knowledge build as a Beam pipeline, on whatever runner `beam_pipeline_args` name (DirectRunner by default):
the teachers' trajectories -> per range of users, each teacher's rows of its trajectory (read by seeking into its
.npy files through Beam's filesystems, so a worker reads only its users, locally or from GCS/S3/HDFS) -> the
range's stacked rankings and ensemble order of observed items (`ensemble.ensemble_observed`, per user) -> one
tf.Example per user in sharded, gzipped TFRecords, plus a manifest. `read_knowledge` assembles the
`EnsembleKnowledge` the student holds on its device, equal to `EnsembleKnowledge.from_trajectories` of the same
trajectories (tests/test_knowledge_beam.py).

The trajectories' manifests are checked for one shape (T, N, users, items) on the launching machine, and each .npy
header against it where it is read; their files' sha256 are not (that would read every byte on one machine, which
is what this path avoids).
"""

from __future__ import annotations

import json
import os

import apache_beam as beam
import numpy as np
import tensorflow as tf
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from components.interaction_beam import run_reporting_errors
from hetcomp_tf.data.dataset import CSR
from hetcomp_tf.distill.ensemble import EnsembleKnowledge, ensemble_observed, optional_weights
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.teachers.trajectories import MANIFEST as TRAJECTORY_MANIFEST

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
KIND = "sharded_ensemble_knowledge"
SHARD_PREFIX = "knowledge"  # knowledge-SSSSS-of-NNNNN.gz
USERS_PER_RANGE = 2048  # a range's rows of all teachers: 2048 users x 6 teachers x 4 checkpoints x 100 items x 4 B
READ_BATCH = 1 << 12
FEATURES = {
    "user": tf.io.FixedLenFeature([], tf.int64),
    "rankings": tf.io.VarLenFeature(tf.int64),
    "observed": tf.io.VarLenFeature(tf.int64),
}


def trajectory_manifest(directory: str) -> dict:
    """A trajectory's manifest (`Trajectory.save` layout), read through Beam's filesystems."""
    path = os.path.join(directory, TRAJECTORY_MANIFEST)
    try:
        with FileSystems.open(path) as f:
            return json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError) as err:
        raise HetCompError(f"{path}: not a readable trajectory manifest ({err})") from None


def _npy_rows(f, path: str, shape: tuple[int, ...], leading: int, first: int, count: int) -> np.ndarray:
    """Rows [first, first + count) of the C-order .npy open as `f`, whose shape must be `shape`, seen as rows over
    its first `leading` axes (a [T, U, N] array: rows t·U + u of N items); only those bytes are read."""
    version = np.lib.format.read_magic(f)
    header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    stored, fortran, dtype = header(f)
    if fortran or tuple(stored) != tuple(shape):
        raise HetCompError(f"{path}: an array of shape {tuple(stored)}, its manifest says {tuple(shape)}")
    row_bytes = int(np.prod(shape[leading:], dtype=np.int64)) * dtype.itemsize
    f.seek(f.tell() + first * row_bytes)
    data = f.read(count * row_bytes)
    if len(data) != count * row_bytes:
        raise HetCompError(f"{path}: cut short")
    return np.frombuffer(data, dtype).reshape((count, *shape[leading:]))


def read_trajectory_rows(directory: str, shape: dict, start: int, stop: int) -> tuple[np.ndarray, CSR]:
    """One teacher's rankings int32 [T, stop − start, N] and observed orders (a CSR) of users [start, stop)."""
    t, n_users, top_n = shape["n_checkpoints"], shape["n_users"], shape["top_n"]

    def rows(name: str, array_shape: tuple, leading: int, first: int, count: int) -> np.ndarray:
        path = os.path.join(directory, f"{name}.npy")
        try:
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
                return _npy_rows(f, path, array_shape, leading, first, count)
        except (OSError, ValueError) as err:
            raise HetCompError(f"{path}: not a readable .npy array ({err})") from None

    blocks = [rows("rankings", (t, n_users, top_n), 2, k * n_users + start, stop - start) for k in range(t)]
    indptr = rows("observed_indptr", (n_users + 1,), 1, start, stop - start + 1).astype(np.int64)
    nnz = int(rows("observed_indptr", (n_users + 1,), 1, n_users, 1)[0])
    indices = rows("observed_indices", (nnz,), 1, int(indptr[0]), int(indptr[-1] - indptr[0]))
    return np.stack(blocks).astype(np.int32), CSR(indptr=indptr - indptr[0], indices=indices.astype(np.int32))


def knowledge_example(user: int, rankings: np.ndarray, observed: np.ndarray) -> bytes:
    """One user's knowledge: rankings [X, T, N] flattened, the train items in ensemble order (no padding)."""
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                "user": tf.train.Feature(int64_list=tf.train.Int64List(value=[user])),
                "rankings": tf.train.Feature(int64_list=tf.train.Int64List(value=rankings.ravel().tolist())),
                "observed": tf.train.Feature(int64_list=tf.train.Int64List(value=observed[observed >= 0].tolist())),
            }
        )
    ).SerializeToString()


def build_range(
    bounds: tuple[int, int],
    trajectory_dirs: tuple[str, ...],
    shape: dict,
    tau: float,
    teacher_weights: tuple[float, ...] | None = None,
):
    """The knowledge examples of users [start, stop)."""
    start, stop = bounds
    parts = [read_trajectory_rows(d, shape, start, stop) for d in trajectory_dirs]
    rankings = np.stack([r for r, _ in parts])  # [X, T, r, N]
    observed = ensemble_observed([csr for _, csr in parts], None, tau, teacher_weights)  # [r, longest row]
    for row in range(stop - start):
        yield knowledge_example(start + row, rankings[:, :, row], observed[row])


def check_trajectories(trajectory_dirs: dict[str, str]) -> dict:
    """The shape every trajectory shares ({"n_checkpoints", "n_users", "top_n", "n_items"}), else HetCompError."""
    if not trajectory_dirs:
        raise HetCompError("knowledge build: no teacher trajectory given")
    shapes = {}
    for teacher, directory in trajectory_dirs.items():
        manifest = trajectory_manifest(directory)
        try:
            shapes[teacher] = {
                "n_checkpoints": len(manifest["checkpoints"]),
                "n_users": int(manifest["n_users"]),
                "top_n": int(manifest["top_n"]),
                "n_items": int(manifest["n_items"]),
            }
        except (KeyError, TypeError, ValueError):
            raise HetCompError(f"{directory}/{TRAJECTORY_MANIFEST}: not a trajectory manifest") from None
    first, shape = next(iter(shapes.items()))
    for teacher, other in shapes.items():
        if other != shape:
            raise HetCompError(
                f"trajectories of {teacher} {other} and {first} {shape} differ; export them with " "one config"
            )
    return shape


def build(
    pipeline: beam.Pipeline,
    trajectory_dirs: dict[str, str],
    tau: float,
    out_dir: str,
    users_per_range: int = USERS_PER_RANGE,
    num_shards: int = 0,
    teacher_weights: tuple[float, ...] | None = None,
) -> dict:
    """Adds the knowledge build to `pipeline`: `out_dir`/knowledge-*.gz (`num_shards` shards, 0: as the runner
    likes) of the ensemble at `tau` with `teacher_weights` (None: equal); returns the manifest that describes
    them, for `run` to write once they are."""
    shape = check_trajectories(trajectory_dirs)
    n_users = shape["n_users"]
    ranges = [(start, min(start + users_per_range, n_users)) for start in range(0, n_users, users_per_range)]
    _ = (
        pipeline
        | "UserRanges" >> beam.Create(ranges)
        | "SpreadRanges" >> beam.Reshuffle()
        | "BuildRanges"
        >> beam.FlatMap(build_range, tuple(trajectory_dirs.values()), shape, float(tau), teacher_weights)
        | "Write"
        >> beam.io.WriteToTFRecord(
            os.path.join(out_dir, SHARD_PREFIX),
            file_name_suffix=".gz",
            compression_type=CompressionTypes.GZIP,
            num_shards=num_shards,
        )
    )
    return {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "teachers": list(trajectory_dirs),
        "tau": float(tau),
        "teacher_weights": None if teacher_weights is None else list(teacher_weights),
        **shape,
    }


def run(pipeline: beam.Pipeline, trajectory_dirs: dict[str, str], tau: float, out_dir: str, **kwargs) -> None:
    """`build`, run to completion (errors as one line: `interaction_beam.run_reporting_errors`), then the manifest."""
    manifest = run_reporting_errors(pipeline, build, trajectory_dirs, tau, out_dir, **kwargs)
    with tf.io.gfile.GFile(os.path.join(out_dir, MANIFEST), "w") as f:
        f.write(json.dumps(manifest, indent=1))


def _manifest(directory: str) -> dict | None:
    """`directory`'s manifest.json, None if there is none."""
    path = os.path.join(directory, MANIFEST)
    if not tf.io.gfile.exists(path):
        return None
    try:
        with tf.io.gfile.GFile(path) as f:
            manifest = json.loads(f.read())
    except ValueError as err:
        raise HetCompError(f"{path}: not a readable JSON manifest ({err})") from None
    if not isinstance(manifest, dict):
        raise HetCompError(f"{path}: not a JSON object")
    return manifest


def is_sharded(directory: str) -> bool:
    """Whether `directory` holds this module's layout (else `EnsembleKnowledge.save`'s)."""
    manifest = _manifest(directory)
    return manifest is not None and manifest.get("kind") == KIND


def load_knowledge(directory: str) -> EnsembleKnowledge:
    """The knowledge in `directory`, in either layout (this module's, or `EnsembleKnowledge.save`'s)."""
    manifest = _manifest(directory)
    if manifest is not None and manifest.get("kind") == KIND:
        return read_knowledge(directory, manifest)
    return EnsembleKnowledge.load(directory)


def read_knowledge(directory: str, manifest: dict | None = None) -> EnsembleKnowledge:
    """The EnsembleKnowledge the shards of `directory` hold (`manifest`: its manifest, if already read); missing
    or extra users raise HetCompError."""
    manifest = manifest or _manifest(directory)
    if manifest is None:
        raise HetCompError(f"{os.path.join(directory, MANIFEST)}: missing")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise HetCompError(
            f"{directory}/{MANIFEST}: format_version {manifest.get('format_version')!r} is not the "
            f"supported {FORMAT_VERSION}"
        )
    x, t, n_users, top_n = len(manifest["teachers"]), manifest["n_checkpoints"], manifest["n_users"], manifest["top_n"]
    shards = sorted(tf.io.gfile.glob(os.path.join(directory, f"{SHARD_PREFIX}-*.gz")))
    if not shards:
        raise HetCompError(f"{directory} holds no knowledge shard")
    rankings = np.full((n_users, x * t * top_n), -2, np.int32)  # −2: no example seen for the user
    observed_rows = [None] * n_users
    for batch in tf.data.TFRecordDataset(shards, compression_type="GZIP").batch(READ_BATCH):
        parsed = tf.io.parse_example(batch, FEATURES)
        users = parsed["user"].numpy()
        lists = tf.sparse.to_dense(parsed["rankings"], default_value=-2).numpy()
        if users.min() < 0 or users.max() >= n_users or lists.shape[1] != rankings.shape[1]:
            raise HetCompError(
                f"{directory}: an example with a user outside [0, {n_users}) or rankings of other "
                f"than {x} x {t} x {top_n} items"
            )
        rankings[users] = lists
        for user, row in zip(users, tf.RaggedTensor.from_sparse(parsed["observed"]).numpy()):
            observed_rows[user] = row
    missing = [u for u, row in enumerate(observed_rows) if row is None]
    if missing or (rankings == -2).any():
        raise HetCompError(
            f"{directory}: {len(missing)} of {n_users} users have no complete knowledge example "
            f"(first: {missing[:3]})"
        )
    observed = CSR(
        indptr=np.concatenate([[0], np.cumsum([len(r) for r in observed_rows])]).astype(np.int64),
        indices=np.concatenate([*observed_rows, np.zeros(0, np.int64)]).astype(np.int32),
    ).padded()
    by_teacher = np.ascontiguousarray(rankings.reshape(n_users, x, t, top_n).transpose(1, 2, 0, 3))  # [X, T, U, N]
    return EnsembleKnowledge(
        teachers=tuple(manifest["teachers"]),
        rankings=by_teacher,
        observed=observed,
        n_items=int(manifest["n_items"]),
        tau=float(manifest["tau"]),
        teacher_weights=optional_weights(manifest.get("teacher_weights")),
    )
