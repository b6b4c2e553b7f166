"""Teacher ranking trajectories: the ranking knowledge of a teacher at T points of its training.

While a teacher trains, every valid evaluation that sets a new best valid Recall@50 (a "record") keeps
  * the top-N unobserved items of every user (N = TrajectoryConfig.top_n; unobserved = not among the user's
    train items; valid/test items may appear), best first, int32, −1 where fewer than N items are left, and
  * every user's train items in the teacher's score order.
Evaluations that are not records are never chosen by the rule below, so their rankings are not kept. The
rankings come out of the valid evaluation's own scoring pass (`BatchRanker`), so recording costs no extra pass.

Checkpoint rule (`select_checkpoints`), with B = best valid Recall@50 and fractions f_0..f_{T−2}:
  * checkpoint T−1 is the best-valid evaluation (the first one reaching B; its weights are the teacher's);
  * for t = T−2 down to 0: checkpoint t is the first evaluation whose valid Recall@50 is >= f_t × B, if that is
    strictly earlier than checkpoint t+1; otherwise the latest record strictly earlier than checkpoint t+1
    (the best model seen before it); if there is none (checkpoint t+1 is the first evaluation), the same
    evaluation as checkpoint t+1. Epochs are therefore non-decreasing, and strictly increasing when possible.
Only the final checkpoint's observed order is exported (as a CSR: row u = u's train items, teacher order).

On disk (FORMAT_VERSION 1), `<out>/trajectories/<TEACHER>/`: rankings.npy int32 [T, n_users, N],
observed_indptr.npy int64 [n_users+1], observed_indices.npy int32 [nnz], manifest.json = {"format_version",
"teacher", "checkpoints": [{"epoch", "evaluation", "valid", "fraction"}], "top_n", "n_users", "n_items",
"files": {name: sha256}}; written atomically, verified on load.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from hetcomp_tf.config import RECORD_METRIC, TEACHER_NAMES, TrajectoryConfig
from hetcomp_tf.data.dataset import CSR, Dataset, rows_to_mask
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.metrics import evaluate, masked_topk, valid_user_sample
from hetcomp_tf.util.files import read_manifest_dir, require_field, write_manifest_dir
from hetcomp_tf.util.progress import log

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def select_checkpoints(recalls: Sequence[float], fractions: Sequence[float]) -> list[int]:
    """The checkpoints chosen by the module's rule.

    Args:
        recalls: each evaluation's valid Recall@50, in training order.
        fractions: f_0..f_{T−2}, one per checkpoint before the best.

    Returns:
        The len(fractions) + 1 chosen indices into `recalls`, non-decreasing, the last the best evaluation.

    Raises:
        HetCompError: `recalls` is empty.
    """
    if len(recalls) == 0:
        raise HetCompError("no valid evaluation to choose trajectory checkpoints from")
    records, running_max = [], -np.inf
    for index, recall in enumerate(recalls):
        if recall > running_max:
            records.append(index)
            running_max = recall
    best = records[-1]
    chosen = [best]
    for fraction in reversed(fractions):
        following = chosen[0]
        reaching = next(i for i in records if recalls[i] >= fraction * recalls[best])
        if reaching < following:
            chosen.insert(0, reaching)
        else:
            earlier = [i for i in records if i < following]
            chosen.insert(0, earlier[-1] if earlier else following)
    return chosen


def check_trajectory_config(cfg: TrajectoryConfig, n_items: int) -> None:
    """Fails early on a trajectory config the recorder cannot follow.

    Args:
        cfg: the trajectory config.
        n_items: the catalogue's size, the bound of `top_n`.

    Raises:
        HetCompError: not n_checkpoints − 1 fractions, a fraction outside (0, 1], or top_n outside [1, n_items].
    """
    if len(cfg.fractions) != cfg.n_checkpoints - 1:
        raise HetCompError(
            f"trajectory config: {len(cfg.fractions)} fractions given for n_checkpoints="
            f"{cfg.n_checkpoints}; need n_checkpoints - 1"
        )
    if any(not 0.0 < f <= 1.0 for f in cfg.fractions):
        raise HetCompError(f"trajectory config: fractions {cfg.fractions} must lie in (0, 1]")
    if not 1 <= cfg.top_n <= n_items:
        raise HetCompError(f"trajectory config: top_n={cfg.top_n} must be in [1, n_items={n_items}]")


@tf.function(reduce_retracing=True)
def _rank_batch(scores: tf.Tensor, observed_mask: tf.Tensor, observed_rows: tf.RaggedTensor, top_n: int):
    """Top-N unobserved items [b, N] (−1 past the unobserved ones) and the observed rows in score order."""
    top = masked_topk(scores, observed_mask, top_n)
    padded = observed_rows.to_tensor(default_value=0)  # [b, L], padding at the end of each row
    in_row = tf.sequence_mask(observed_rows.row_lengths(), tf.shape(padded)[1])
    row_scores = tf.where(in_row, tf.gather(scores, padded, batch_dims=1), tf.constant(-np.inf, scores.dtype))
    order = tf.argsort(row_scores, axis=1, direction="DESCENDING", stable=True)  # ties: smaller item id first
    ordered = tf.RaggedTensor.from_tensor(tf.gather(padded, order, batch_dims=1), lengths=observed_rows.row_lengths())
    return top, ordered.values


class BatchRanker:
    """A score_fn wrapper that also ranks every batch it scores (top-N unobserved + observed order), so the
    valid evaluation's scoring pass doubles as the trajectory's and no teacher scores all items twice.

    Args:
        score_fn: user_ids int32 [b] -> float32 [b, n_items], the teacher's scores.
        train: the train interactions, one row per user: the observed items.
        n_items: the catalogue's size.
        top_n: N, the unobserved items kept per user.
    """

    def __init__(self, score_fn: Callable, train: CSR, n_items: int, top_n: int):
        self.score_fn, self.train, self.n_items, self.top_n = score_fn, train, n_items, top_n
        self.rows = train.to_ragged()
        n_users = train.indptr.size - 1
        self.top = np.full((n_users, top_n), -1, np.int32)
        self.observed = np.zeros(train.indptr[-1], np.int32)
        self.ranked = np.zeros(n_users, bool)

    def __call__(self, user_ids) -> tf.Tensor:
        """Scores a batch of users and keeps their rankings.

        Args:
            user_ids: int [b] user ids.

        Returns:
            float32 [b, n_items], `score_fn`'s scores unchanged.
        """
        ids = tf.convert_to_tensor(user_ids, tf.int32)
        scores = self.score_fn(ids)
        top, ordered = _rank_batch(
            scores, rows_to_mask(self.rows, ids, self.n_items), tf.gather(self.rows, ids), self.top_n
        )
        users = ids.numpy()
        lengths = self.train.indptr[users + 1] - self.train.indptr[users]
        # position of each ordered entry in the full CSR: its row's start + its offset inside the row
        starts = np.repeat(self.train.indptr[users] - (np.cumsum(lengths) - lengths), lengths)
        self.observed[starts + np.arange(lengths.sum())] = ordered.numpy()
        self.top[users] = top.numpy()
        self.ranked[users] = True
        return scores

    def result(self, batch_size: int = 512) -> tuple[np.ndarray, CSR]:
        """Every user's ranking; users not scored yet are scored now.

        Args:
            batch_size: users scored at a time for the missing ones.

        Returns:
            (top-N unobserved int32 [n_users, N], −1 past a user's unobserved items; each user's train items in
            score order, a CSR with `train`'s indptr).
        """
        missing = np.flatnonzero(~self.ranked).astype(np.int32)
        for start in range(0, missing.size, batch_size):
            self(missing[start : start + batch_size])
        return self.top.copy(), CSR(indptr=self.train.indptr.astype(np.int64), indices=self.observed.copy())


def rank_users(
    score_fn: Callable, train: CSR, n_items: int, top_n: int, batch_size: int = 512
) -> tuple[np.ndarray, CSR]:
    """Every user's ranking by a model, outside an evaluation (`BatchRanker` over all users).

    Args:
        score_fn: user_ids int32 [b] -> float32 [b, n_items].
        train: the train interactions, one row per user.
        n_items: the catalogue's size.
        top_n: N.
        batch_size: users scored at a time.

    Returns:
        (top-N unobserved int32 [n_users, N], −1 past a user's unobserved items; each user's train items in score
        order, a CSR).
    """
    return BatchRanker(score_fn, train, n_items, top_n).result(batch_size)


@dataclass
class Trajectory:
    """A teacher's ranking knowledge at T checkpoints of its training, what the ensemble is built from.

    Attributes:
        teacher: the teacher's name.
        rankings: int32 [T, n_users, N], per checkpoint each user's top-N items not in its train set, best first,
            −1 where fewer than N are left.
        observed: the final checkpoint's order: each user's train items in the teacher's rank order.
        checkpoints: per checkpoint {"epoch", "evaluation", "valid": {metric: float}, "fraction": float | None}
            ("valid_sample" too when early stopping looked at a sample of users).
        n_items: the catalogue's size.
    """

    teacher: str
    rankings: np.ndarray  # int32 [T, n_users, N]: top-N items not in the user's train set, best first
    observed: CSR  # final checkpoint: each user's train items in the teacher's rank order
    checkpoints: list[dict]  # [{"epoch", "evaluation", "valid": {metric: float}, "fraction": float | None}]
    n_items: int

    @property
    def n_users(self) -> int:
        """The users ranked."""
        return int(self.rankings.shape[1])

    @property
    def top_n(self) -> int:
        """N, the items kept per user and checkpoint."""
        return int(self.rankings.shape[2])

    def save(self, directory: str | os.PathLike) -> None:
        """Writes the module's on-disk layout (FORMAT_VERSION) into `directory`, atomically.

        Args:
            directory: the trajectory's directory, e.g. `<out>/trajectories/<TEACHER>`.
        """
        manifest = {
            "format_version": FORMAT_VERSION,
            "teacher": self.teacher,
            "checkpoints": self.checkpoints,
            "top_n": self.top_n,
            "n_users": self.n_users,
            "n_items": int(self.n_items),
        }
        arrays = {
            "rankings": self.rankings.astype(np.int32),
            "observed_indptr": self.observed.indptr.astype(np.int64),
            "observed_indices": self.observed.indices.astype(np.int32),
        }
        write_manifest_dir(directory, MANIFEST, arrays, manifest)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Trajectory:
        """Reads a trajectory written by `save`, its files verified against the manifest.

        Args:
            directory: the trajectory's directory.

        Returns:
            The `Trajectory`.

        Raises:
            HetCompError: a missing or malformed manifest or file, a checksum or format version mismatch, or arrays
                of the wrong dtype or shape.
        """
        manifest, arrays = read_manifest_dir(directory, MANIFEST, FORMAT_VERSION)
        where = os.path.join(os.fspath(directory), MANIFEST)
        fields = {
            f: require_field(manifest, f, where) for f in ("teacher", "checkpoints", "top_n", "n_users", "n_items")
        }
        for name in ("rankings", "observed_indptr", "observed_indices"):
            if name not in arrays:
                raise HetCompError(f"{where}: file {name}.npy is not listed")
        rankings, indptr, indices = arrays["rankings"], arrays["observed_indptr"], arrays["observed_indices"]
        expected = (len(fields["checkpoints"]), fields["n_users"], fields["top_n"])
        if rankings.dtype != np.int32 or rankings.shape != expected:
            raise HetCompError(f"{where}: rankings.npy is {rankings.dtype} {rankings.shape}, expected int32 {expected}")
        if indptr.shape != (fields["n_users"] + 1,) or int(indptr[-1]) != indices.size:
            raise HetCompError(
                f"{where}: observed_indptr.npy/observed_indices.npy do not form a CSR of " f"{fields['n_users']} rows"
            )
        return cls(
            teacher=fields["teacher"],
            rankings=rankings,
            observed=CSR(indptr=indptr, indices=indices),
            checkpoints=fields["checkpoints"],
            n_items=int(fields["n_items"]),
        )


class TrajectoryRecorder:
    """Collects a teacher's rankings during training; `observe` at every valid evaluation, `finish` at the end.

    Args:
        teacher: the teacher's name.
        train: the train interactions, one row per user.
        n_items: the catalogue's size.
        cfg: which checkpoints to keep and N.
        batch_size: users scored at a time when a record's ranking is completed.

    Raises:
        HetCompError: a bad `cfg` (`check_trajectory_config`).
    """

    def __init__(self, teacher: str, train: CSR, n_items: int, cfg: TrajectoryConfig, batch_size: int = 512):
        check_trajectory_config(cfg, n_items)
        self.teacher, self.train, self.n_items, self.cfg, self.batch_size = teacher, train, n_items, cfg, batch_size
        self.evaluations: list[dict] = []  # {"epoch", "valid"} of every evaluation
        self.records: dict[int, tuple[np.ndarray, CSR]] = {}  # evaluation index -> rankings of a record
        self._written: set[int] = set()  # the records `write_records` (or `resume`) knows are on disk

    @property
    def best(self) -> dict | None:
        """The latest record's {"epoch", "valid"} (the best evaluation so far); None while no record is kept."""
        return self.evaluations[max(self.records)] if self.records else None

    def ranker(self, score_fn: Callable) -> BatchRanker:
        """Wrap the teacher's score_fn in this for one evaluation, then pass the wrapper to `observe`.

        Args:
            score_fn: user_ids int32 [b] -> float32 [b, n_items].

        Returns:
            A fresh `BatchRanker`.
        """
        return BatchRanker(score_fn, self.train, self.n_items, self.cfg.top_n)

    def _register(self, epoch: int, valid: dict) -> bool:
        """Appends the evaluation; True if it is a new best valid Recall@50 (a record)."""
        best = self.best
        self.evaluations.append({"epoch": int(epoch), "valid": {k: float(v) for k, v in valid.items()}})
        return best is None or valid[RECORD_METRIC] > best["valid"][RECORD_METRIC]

    def observe(self, epoch: int, valid: dict, ranker: BatchRanker) -> bool:
        """Registers an evaluation; if it is a new best valid Recall@50, keeps the ranking of every user
        (completing `ranker` for users the evaluation did not score).

        Args:
            epoch: the epochs trained.
            valid: the evaluation's {metric: value}.
            ranker: the `ranker` the evaluation scored through.

        Returns:
            True for a record (the caller then keeps these weights as the best).
        """
        improved = self._register(epoch, valid)
        if improved:
            self.records[len(self.evaluations) - 1] = ranker.result(self.batch_size)
        return improved

    def _chosen(self) -> tuple[list[int], list[dict]]:
        """The chosen evaluations' indices and their checkpoint entries (the module's rule)."""
        recalls = [e["valid"][RECORD_METRIC] for e in self.evaluations]
        chosen = select_checkpoints(recalls, self.cfg.fractions)
        fractions = [*map(float, self.cfg.fractions), None]
        return chosen, [{**self.evaluations[i], "evaluation": i, "fraction": f} for i, f in zip(chosen, fractions)]

    def state(self) -> dict:
        """What `resume` needs besides `write_records`' files, JSON-ready.

        Returns:
            {"evaluations": [{"epoch", "valid"}], "records": the record evaluations' indices, ascending}.
        """
        return {"evaluations": self.evaluations, "records": sorted(self.records)}

    def write_records(self, directory: str | os.PathLike) -> None:
        """Saves each record not saved yet as `directory`/<evaluation index>.npz (before the state naming it).

        Args:
            directory: the records' directory, existing.
        """
        for index, (top, observed) in self.records.items():
            if (
                index not in self._written
            ):  # a file of that name left by a crashed run is not this record's: overwritten
                _save_atomically(
                    _record_path(directory, index), top=top, indptr=observed.indptr, indices=observed.indices
                )
        self._written = set(self.records)

    def resume(self, state: dict, directory: str | os.PathLike) -> None:
        """Restores the evaluations and records of a saved state.

        Args:
            state: what `state()` returned.
            directory: where `write_records` saved the records.
        """
        self.evaluations = state["evaluations"]
        self.records, self._written = {}, set(state["records"])
        for index in state["records"]:
            with np.load(_record_path(directory, index)) as saved:
                self.records[index] = (saved["top"], CSR(indptr=saved["indptr"], indices=saved["indices"]))

    def finish(self) -> Trajectory:
        """Picks the checkpoints by the module's rule and drops the other rankings.

        Returns:
            The `Trajectory`.

        Raises:
            HetCompError: no evaluation was observed.
        """
        chosen, checkpoints = self._chosen()
        rankings = np.stack([self.records[i][0] for i in chosen])
        observed = self.records[chosen[-1]][1]
        self.records = {}
        return Trajectory(self.teacher, rankings, observed, checkpoints, self.n_items)


def prunable_records(records: Sequence[int], recalls: Sequence[float], fractions: Sequence[float]) -> list[int]:
    """Records (evaluation indices, oldest first) that `select_checkpoints` can no longer choose, however training
    goes on: a checkpoint is either the first record reaching f × B (B only grows, so a record below min(f) × B
    now never will) or the record just before the next checkpoint, at most len(fractions) steps down from the
    lowest record that can still reach; so all records below min(f) × B but the latest len(fractions) are out.

    Args:
        records: the records' evaluation indices, ascending, at least one.
        recalls: every evaluation's valid Recall@50.
        fractions: the trajectory config's fractions.

    Returns:
        The indices of `records` that can be dropped, oldest first.
    """
    best = max(recalls[i] for i in records)
    below = [i for i in records if recalls[i] < min(fractions) * best]
    return below[: max(0, len(below) - len(fractions))]


class SampledTrajectoryRecorder(TrajectoryRecorder):
    """The same rule with early stopping on a fixed sample of valid users: an evaluation scores only the sample,
    so no record has every user's ranking; a record keeps the teacher's weights instead (in a scratch directory,
    dropped as soon as the rule can no longer choose it), and `finish` ranks every user at the chosen checkpoints
    only, with their valid metrics over all valid users ("valid") beside the sample's ("valid_sample").

    Checkpoints are therefore chosen by the sample's Recall@50, which differs from the full one by the sampling
    noise (docs/RESULTS.md prices this shortcut); the ranking knowledge at a chosen checkpoint is exact.
    """

    def __init__(
        self,
        teacher: str,
        data: Dataset,
        cfg: TrajectoryConfig,
        eval_users: int,
        seed: int = 0,
        batch_size: int = 512,
        records_dir: str | os.PathLike | None = None,
    ):
        """Draws the sample of valid users.

        Args:
            teacher: the teacher's name.
            data: the dataset: its train rows, its catalogue and its valid users.
            cfg: which checkpoints to keep and N.
            eval_users: the sample's size (capped at the valid users).
            seed: seeds the sample.
            batch_size: users scored at a time when `finish` ranks them.
            records_dir: where the records' weights are kept (they outlive the process, for a resumed run, and a
                pruned record's file goes only at `remove_unlisted_records`, once a state no longer names it);
                default a temporary directory, pruned records removed at once.

        Raises:
            HetCompError: a bad `cfg` (`check_trajectory_config`).
        """
        super().__init__(teacher, data.train, data.n_items, cfg, batch_size)
        self.data = data
        sample = valid_user_sample(data, eval_users, seed)
        self.users = sample if sample is not None else np.flatnonzero(data.valid.lengths() > 0).astype(np.int32)
        self._scratch = None if records_dir else tempfile.TemporaryDirectory(prefix=f"hetcomp-{teacher}-records-")
        self.records_dir = os.fspath(records_dir) if records_dir else self._scratch.name
        os.makedirs(self.records_dir, exist_ok=True)

    def evaluate(self, score_fn: Callable) -> dict:
        """The valid metrics over the sample, what early stopping and the checkpoint rule read.

        Args:
            score_fn: user_ids int32 [b] -> float32 [b, n_items].

        Returns:
            {metric: value} (`metrics.evaluate`).
        """
        return evaluate(score_fn, self.data, "valid", users=self.users)

    def observe_weights(self, epoch: int, valid: dict, model: tf.Module) -> bool:
        """Registers an evaluation of the sample; a record's weights are saved and records the rule can no longer
        choose are pruned.

        Args:
            epoch: the epochs trained.
            valid: the sample's {metric: value} (`evaluate`).
            model: the teacher, whose `variables` a record saves.

        Returns:
            True for a record.
        """
        improved = self._register(epoch, valid)
        if improved:
            index = len(self.evaluations) - 1
            _save_atomically(_record_path(self.records_dir, index), *[v.numpy() for v in model.variables])
            self.records[index] = None
            recalls = [e["valid"][RECORD_METRIC] for e in self.evaluations]
            for gone in prunable_records(sorted(self.records), recalls, self.cfg.fractions):
                del self.records[gone]
            if self._scratch is not None:
                remove_unlisted_records(self, self.records_dir)
        return improved

    def write_records(self, directory: str | os.PathLike) -> None:
        """Nothing to do: a record's weights are written when it is observed."""

    def resume(self, state: dict, directory: str | os.PathLike) -> None:
        """Restores the evaluations and records of a saved state, copying the records' weights into `records_dir`
        when they were saved elsewhere (another worker's state).

        Args:
            state: what `state()` returned.
            directory: the saved records' directory.

        Raises:
            HetCompError: a record's weights are missing from `directory`.
        """
        self.evaluations = state["evaluations"]
        self.records = dict.fromkeys(state["records"])
        missing = [i for i in self.records if not os.path.exists(_record_path(directory, i))]
        if missing:
            raise HetCompError(f"{directory}: the weights of records {missing} are missing; remove it to start afresh")
        for index in self.records:  # another worker's state (distribute.worker_dir): its records copied here
            if os.path.abspath(_record_path(directory, index)) != os.path.abspath(
                _record_path(self.records_dir, index)
            ):
                shutil.copyfile(_record_path(directory, index), _record_path(self.records_dir, index))

    def finish(self, model: tf.Module, score_fn: Callable) -> Trajectory:
        """Ranks every user at each chosen checkpoint and leaves `model` with the last checkpoint's weights, the
        best on the sample.

        Args:
            model: the teacher, into whose `variables` each checkpoint's weights are loaded.
            score_fn: user_ids int32 [b] -> float32 [b, n_items], `model`'s scores.

        Returns:
            The `Trajectory`, each checkpoint's "valid" over all valid users and "valid_sample" over the sample.
        """
        chosen, checkpoints = self._chosen()
        rankings, started = [], time.perf_counter()
        for done, (index, checkpoint) in enumerate(zip(chosen, checkpoints)):
            log(
                f"{self.teacher}: ranking every user at checkpoint {done + 1}/{len(chosen)} (epoch "
                f"{checkpoint['epoch']}) [{time.perf_counter() - started:.0f}s in this stage]"
            )
            with np.load(_record_path(self.records_dir, index)) as saved:
                for position, variable in enumerate(model.variables):
                    variable.assign(saved[f"arr_{position}"])
            ranker = self.ranker(score_fn)
            full = evaluate(ranker, self.data, "valid")
            top, observed = ranker.result(self.batch_size)
            rankings.append(top)
            checkpoint["valid_sample"], checkpoint["valid"] = checkpoint["valid"], full
        if self._scratch is not None:
            self._scratch.cleanup()
        self.records = {}
        return Trajectory(self.teacher, np.stack(rankings), observed, checkpoints, self.n_items)


def remove_unlisted_records(recorder: TrajectoryRecorder, directory: str | os.PathLike) -> None:
    """Removes the record files in `directory` of evaluations `recorder` no longer keeps (pruned, or written after
    the state it resumed from), so the files agree with the state.

    Args:
        recorder: the recorder, whose `records` are kept.
        directory: the records' directory.
    """
    keep = {os.path.basename(_record_path(directory, index)) for index in recorder.records}
    for name in os.listdir(directory):
        if name.endswith(".npz") and name not in keep:
            with contextlib.suppress(FileNotFoundError):  # another worker removing the same file
                os.remove(os.path.join(directory, name))


def _record_path(directory: str | os.PathLike, index: int) -> str:
    return os.path.join(os.fspath(directory), f"{index}.npz")


def _save_atomically(path: str, *arrays: np.ndarray, **named: np.ndarray) -> None:
    """np.savez to `path` through a temporary file, so a crash never leaves a truncated record."""
    partial = path + ".partial.npz"
    np.savez(partial, *arrays, **named)
    os.replace(partial, path)


def trajectories_dir(out_dir: str | os.PathLike) -> Path:
    """`out_dir`/trajectories, where the teachers' trajectories live."""
    return Path(out_dir) / "trajectories"


def save_trajectories(runs_or_trajs: Iterable, out_dir: str | os.PathLike) -> Path:
    """Writes out_dir/trajectories/<TEACHER>/ for each trajectory.

    Args:
        runs_or_trajs: Trajectory objects, or TeacherRuns (their `.trajectory`).
        out_dir: the output directory.

    Returns:
        out_dir/trajectories.
    """
    root = trajectories_dir(out_dir)
    for item in runs_or_trajs:
        traj = getattr(item, "trajectory", item)
        traj.save(root / traj.teacher)
    return root


def load_trajectories(out_dir: str | os.PathLike, teachers: Sequence[str] | None = None) -> dict[str, Trajectory]:
    """The trajectories a `teachers` run wrote.

    Args:
        out_dir: the output directory holding trajectories/.
        teachers: the teachers to load, in this order; None: all present, in TEACHER_NAMES order (others after,
            by name).

    Returns:
        {teacher: Trajectory}.

    Raises:
        HetCompError: no trajectories/ directory or none in it, a teacher asked for but not there, a trajectory that
            does not load, or one whose teacher differs from its directory's name.
    """
    root = trajectories_dir(out_dir)
    if not root.is_dir():
        raise HetCompError(f"{root}: missing; run `hetcomp teachers --out {out_dir}` first")
    present = [p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    names = (
        list(teachers)
        if teachers is not None
        else sorted(present, key=lambda n: (TEACHER_NAMES.index(n) if n in TEACHER_NAMES else len(TEACHER_NAMES), n))
    )
    if not names:
        raise HetCompError(f"{root}: no teacher trajectories in it")
    absent = [name for name in names if name not in present]
    if absent:
        raise HetCompError(f"{root}: no trajectory of {', '.join(absent)} (it holds {', '.join(sorted(present))})")
    result = {}
    for name in names:
        traj = Trajectory.load(root / name)
        if traj.teacher != name:
            raise HetCompError(f"{root / name / MANIFEST}: teacher {traj.teacher!r} does not match its directory")
        result[name] = traj
    return result
