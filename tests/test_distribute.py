"""Distributed training (hetcomp_tf/util/distribute.py; `trainer.Trainer` and the teachers' `train_teacher` under a
strategy): a replica's share of a batch against a NumPy partition (the student) and against the whole batch's loss
and gradients (every teacher), two MultiWorkerMirroredStrategy workers on 127.0.0.1 and two MirroredStrategy
replicas against one process, the chief-only files, and the errors for a bad strategy or TF_CONFIG.

Tolerance: two replicas compute the same gradient as one device, but float32 sums it in another order (each
replica sums its users, then the all-reduce sums the replicas), so the weights agree to rounding, not bit for bit:
measured 4e-6 at most after 8 tiny epochs; the tests allow ATOL = 1e-4 on weights of scale 0.1-1, well below what
training moves them (asserted). The DKC state must be bit-identical between the workers, which read the same
synchronised weights; against one process its stages and targets must be equal, while D (1 − NDCG@50 of the
student's top 50) may differ for at most 1 % of the (user, teacher) pairs, by < 1e-2: two items whose scores are
within rounding of each other can swap places in a top-50 list (measured: 4 of 2,400 pairs, by 7e-5).

The teachers (`Teacher.train_epoch` under a strategy) are held to the same ATOL on their weights after
TEACHER_EPOCHS tiny epochs (measured: at most 2e-7 for MF, ML, DL and GNN, 1.5e-6 for AE, 4e-5 for I-AE, whose 57
Adam steps of lr 1e-2 on batches of 16 items amplify rounding in near-zero gradients), to identical checkpoint
epochs, to METRIC_ATOL on their metrics (measured: 3e-5 at most, I-AE) and to RANKINGS_DIFFER of their rankings'
entries differing (measured: 0.06 % at most, I-AE; 0 for MF, DL, GNN)."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from components.artifacts import METRICS_FILE, TRAJECTORY_DIR
from components.teacher_trainer.executor import WEIGHTS_DIR
from hetcomp_tf.cli import main
from hetcomp_tf.config import TEACHER_NAMES, get_profile
from hetcomp_tf.data.dataset import Dataset
from hetcomp_tf.distill.batches import PAD_USERS_TO, epoch_batches, replica_share, step_items_cap, train_pairs_cap
from hetcomp_tf.distill.loop import distill
from hetcomp_tf.distill.student import Student
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.models import build_teacher
from hetcomp_tf.teachers.trajectories import Trajectory
from hetcomp_tf.util.distribute import check_tf_config, make_strategy
from tests.distributed_worker import main as run_worker
from tests.helpers import run_cli
from tests.test_distill import shared_teachers

pytestmark = pytest.mark.slow  # end to end (training, processes, servers): `make test`, not `make check`

REPO = Path(__file__).resolve().parents[1]
TINY = get_profile("tiny")
ATOL = 1e-4
# hetcomp with every term whose share a replica must scale: a mean's global denominator, the item L2 and the decay
HETCOMP = {
    "method": "hetcomp",
    "epochs": 8,
    "eval_every": 3,
    "loss_reduction": "mean",
    "l2": 1e-3,
    "weight_decay": 1e-3,
}
WO_KD = {"method": "wo_kd", "epochs": 4, "eval_every": 2}  # BPR: negatives drawn for the global batch
METRIC_ATOL = 1e-3  # the teachers' valid and test metrics against one process (module docstring) ...
RANKINGS_DIFFER = 0.005  # ... and the share of their trajectories' ranking entries that may differ


@pytest.fixture(scope="module")
def teachers_dir(tmp_path_factory) -> Path:
    return shared_teachers(tmp_path_factory)


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def spawn(teachers_dir, out: Path, dump: Path, strategy: str, settings: dict, tf_config: dict | None = None):
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.distributed_worker",
            str(teachers_dir),
            str(out),
            str(dump),
            strategy,
            json.dumps(settings),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_all(processes, timeout: float = 400) -> None:
    try:
        for process in processes:
            _, err = process.communicate(timeout=timeout)
            assert process.returncode == 0, err[-3000:]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()


def one_process(teachers_dir, tmp_path: Path, settings: dict) -> dict:
    run_worker(
        str(teachers_dir),
        str(tmp_path / "one"),
        str(tmp_path / "one.npz"),
        "none",
        json.dumps({**settings, "distribute": "none"}),
    )
    return dict(np.load(tmp_path / "one.npz"))


def assert_matches_one_process(distributed: dict, one: dict, dkc: bool) -> None:
    assert int(one["replicas"]) == 1 and int(distributed["replicas"]) == 2
    for table in ("users", "items"):
        np.testing.assert_allclose(distributed[table], one[table], atol=ATOL, rtol=0)
    runs = [json.loads(str(r["run"])) for r in (distributed, one)]
    assert runs[0]["valid"] == pytest.approx(runs[1]["valid"], abs=1e-3)
    assert [h["epoch"] for h in runs[0]["history"]] == [h["epoch"] for h in runs[1]["history"]]
    for mine, theirs in zip(*(r["history"] for r in runs)):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-4)
        assert mine["mean_stage"] == theirs["mean_stage"]
    if dkc:
        for name in ("stages", "targets"):
            np.testing.assert_array_equal(distributed[name], one[name])
        differ = distributed["d_prev"] != one["d_prev"]
        assert differ.mean() <= 0.01
        np.testing.assert_allclose(distributed["d_prev"], one["d_prev"], atol=1e-2, rtol=0)


# ------------------------------------------------------------------------------------------ a replica's share


@pytest.mark.parametrize("batching, pad_to", [("interactions", 1), ("users", PAD_USERS_TO)])
def test_replica_shares_partition_the_batch(tiny_dataset, batching, pad_to):
    train = tiny_dataset.train
    cfg = dataclasses.replace(TINY.distill, batching=batching, batch_size=200)
    cap = train_pairs_cap(train, cfg.batch_size) if pad_to > 1 else None
    items_cap = step_items_cap(train, cfg) if pad_to > 1 else None
    for pairs in (False, True):
        batch = next(
            epoch_batches(train, cfg, 1, pairs=pairs, pad_to=pad_to, train_pairs_to=cap, step_items_to=items_cap)
        )
        users, rows, items = (x.numpy() for x in (batch.users, batch.train_rows, batch.train_items))
        expected_pairs = {(users[r], i) for r, i in zip(rows, items) if i >= 0}  # (user, train item)
        shares = [replica_share(batch, r, 3) for r in range(3)]
        sizes = [int(tf.size(s.users)) for s in shares]
        assert max(sizes) - min(sizes) <= 1  # contiguous, balanced slices ...
        np.testing.assert_array_equal(np.concatenate([s.users.numpy() for s in shares]), users)  # ... of every user
        np.testing.assert_array_equal(np.concatenate([s.weights.numpy() for s in shares]), batch.weights.numpy())
        found = set()
        for share in shares:
            share_rows, share_items = share.train_rows.numpy(), share.train_items.numpy()
            assert share_rows.size == rows.size  # one length for every share (XLA: one shape)
            real = share_items >= 0
            assert (share_rows[~real] == 0).all() and (share_rows[real] < share.users.shape[0]).all()
            pairs_here = {(share.users.numpy()[r], i) for r, i in zip(share_rows[real], share_items[real])}
            assert not pairs_here & found
            found |= pairs_here
        assert found == expected_pairs and (len(expected_pairs) > 0) != pairs  # BPR batches carry no train pairs
        for field in ("pair_users", "pair_items"):
            np.testing.assert_array_equal(
                np.concatenate([getattr(s, field).numpy() for s in shares]), getattr(batch, field).numpy()
            )
        step_items = batch.step_items.numpy()  # the step's distinct train-interaction items, split across shares
        expected_items = set() if pairs else {i for _, i in expected_pairs} if batching == "users" else None
        if expected_items is not None:
            assert set(step_items[step_items >= 0]) == expected_items
        assert step_items.size == (0 if pairs else items_cap or (step_items >= 0).sum())
        assert np.unique(step_items[step_items >= 0]).size == (step_items >= 0).sum()
        mine = np.stack([s.step_items.numpy() for s in shares])
        assert ((mine >= 0).sum(axis=0) <= 1).all()  # each item in one share at most ...
        np.testing.assert_array_equal(mine.max(axis=0), step_items)  # ... and in one of them
        assert (tf.size(batch.pair_users) > 0) == pairs
    whole = replica_share(batch, 0, 1)
    for mine, theirs in zip(whole, batch):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


# --------------------------------------------------------------------------------- two workers, two replicas


def test_two_workers_distil_as_one_process_and_keep_one_dkc_state(teachers_dir, tmp_path):
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    settings = {**HETCOMP, "distribute": "multi_worker"}
    workers = [
        spawn(
            teachers_dir,
            tmp_path / f"w{i}",
            tmp_path / f"w{i}.npz",
            "multi_worker",
            settings,
            {"cluster": cluster, "task": {"type": "worker", "index": i}},
        )
        for i in range(2)
    ]
    one = one_process(teachers_dir, tmp_path, HETCOMP)  # meanwhile, in this process
    wait_all(workers)
    chief, other = (dict(np.load(tmp_path / f"w{i}.npz")) for i in range(2))
    for name in ("users", "items", "stages", "d_prev", "targets"):  # every worker ends with the same state
        np.testing.assert_array_equal(chief[name], other[name])
    assert_matches_one_process(chief, one, dkc=True)
    assert (one["stages"] > 0).any(), "DKC moved stages: the comparison covers its decisions"
    data = Dataset.load(teachers_dir / "dataset.npz")
    initial = Student(
        data.n_users, data.n_items, TINY.distill.student_dim, seed=TINY.distill.seed, init_std=TINY.distill.init_std
    ).item_embedding.embeddings.numpy()
    assert np.abs(chief["items"] - initial).max() > 100 * ATOL, "training moves the weights far beyond the tolerance"
    # only the chief writes the logs and the run state; the other worker's went to a removed temporary directory
    assert list((tmp_path / "w0" / "logs").glob("events.out.tfevents.*"))
    assert (tmp_path / "w0" / "state" / "state.json").is_file()
    assert not (tmp_path / "w1").exists()


def test_two_mirrored_replicas_distil_wo_kd_as_one_process(teachers_dir, tmp_path):
    """Two replicas on one host (two logical CPUs; on GPUs `distribute=mirrored` takes every GPU): wo_kd's BPR
    draws its negatives for the global batch, so the replicas' pairs meet the same negatives as one device's."""
    process = spawn(teachers_dir, tmp_path / "m", tmp_path / "m.npz", "two_cpus", WO_KD)
    one = one_process(teachers_dir, tmp_path, WO_KD)
    wait_all([process])
    assert_matches_one_process(dict(np.load(tmp_path / "m.npz")), one, dkc=False)


# ------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "tf_config, message",
    [
        ("{not json", "TF_CONFIG is not a TensorFlow cluster config"),
        ('{"cluster": {"worker": "127.0.0.1:1"}, "task": {"type": "worker", "index": 0}}', "TF_CONFIG is not"),
        ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}', "task worker:3 is not in"),
        ('{"cluster": {"ps": ["127.0.0.1:1"]}, "task": {"type": "ps", "index": 0}}', "task ps:0 is not in"),
    ],
)
def test_a_malformed_tf_config_is_one_clear_error(monkeypatch, tmp_path, tf_config, message):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(HetCompError, match=message):
        check_tf_config()
    for command in (["distill", "--teachers-dir", str(tmp_path)], ["teachers", "--data", "synthetic"]):
        result = run_cli(
            [*command, "--profile", "tiny", "--distribute", "multi_worker", "--out", str(tmp_path / "out")]
        )
        lines = result.stderr.strip().splitlines()
        assert result.code == 2 and len(lines) == 1 and lines[0].startswith("hetcomp: error: ") and message in lines[0]


def test_an_unknown_strategy_is_one_clear_error(tiny_dataset, tmp_path, capsys):
    with pytest.raises(HetCompError, match="distribute='gpus': choose one of none, mirrored, multi_worker"):
        make_strategy("gpus")
    with pytest.raises(HetCompError, match="distribute='gpus' must be one of none, mirrored, multi_worker"):
        distill(tiny_dataset, None, dataclasses.replace(TINY.distill, method="wo_kd", distribute="gpus"))
    argv = ["distill", "--teachers-dir", str(tmp_path), "--profile", "tiny", "--out", str(tmp_path / "out")]
    result = run_cli([*argv, "--set", "distribute=gpus"])
    lines = result.stderr.strip().splitlines()
    assert result.code == 2 and len(lines) == 1 and "distribute='gpus' must be one of" in lines[0], lines
    with pytest.raises(SystemExit) as exited:  # argparse's choices, one line (cli.Parser)
        main([*argv, "--distribute", "gpus"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2 and len(lines) == 1 and "invalid choice: 'gpus'" in lines[0], lines


def test_teachers_reject_an_unknown_strategy_and_parallel_jobs(tiny_dataset, tmp_path):
    with pytest.raises(HetCompError, match="distribute='gpus': choose one of none, mirrored, multi_worker"):
        dataclasses.replace(TINY.teachers["MF"], distribute="gpus")  # checked when the config is built
    result = run_cli(
        [
            "teachers",
            "--data",
            "synthetic",
            "--profile",
            "tiny",
            "--jobs",
            "2",
            "--distribute",
            "mirrored",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    lines = result.stderr.strip().splitlines()
    assert result.code == 2 and len(lines) == 1 and "--jobs 2 with --distribute mirrored" in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_the_student_trainer_runs_on_as_many_workers_as_it_was_compiled_for():
    from components.student_trainer.distill_run import run_fn

    fn_args = SimpleNamespace(custom_config={"distill_config": dataclasses.asdict(TINY.distill), "workers": 2})
    with pytest.raises(
        HetCompError,
        match=r"compiled for 2 worker\(s\), its cluster \(TF_CONFIG\) has 1; run the " r"task as a 2-worker job",
    ):
        run_fn(fn_args)


# ------------------------------------------------------------------------------------------------ the teachers


def teacher_batch(teacher, rows: int) -> dict:
    """The first `rows` rows of the teacher's first training batch."""
    batch = next(iter(teacher.train_batches(0)))
    return {key: value if value.shape.rank == 0 or key == "seed" else value[:rows] for key, value in batch.items()}


def loss_and_gradients(teacher, batch, share=None):
    with tf.GradientTape() as tape:
        loss = teacher.compute_loss(batch, training=True, share=share)
    return loss, [tf.convert_to_tensor(g) for g in tape.gradient(loss, teacher.trainable_variables)]


@pytest.mark.parametrize("name", TEACHER_NAMES)
def test_replica_shares_of_a_teacher_batch_sum_to_its_loss_and_gradients(tiny_dataset, name):
    """Three replicas' losses and gradients sum to the whole batch's (dropout and noise included); with more
    replicas than rows, the empty shares add 0."""
    cfg = dataclasses.replace(TINY.teachers[name], l2=1e-2)
    teacher = build_teacher(name, tiny_dataset, cfg, seed=1)
    for rows in (11, 2):
        batch = teacher_batch(teacher, rows)
        loss, gradients = loss_and_gradients(teacher, batch)
        shares = [loss_and_gradients(teacher, batch, teacher.share(batch, r, 3)) for r in range(3)]
        assert float(sum(s[0] for s in shares)) == pytest.approx(float(loss), rel=1e-5)
        for k, gradient in enumerate(gradients):
            np.testing.assert_allclose(sum(s[1][k] for s in shares), gradient, rtol=1e-4, atol=1e-6)


TEACHER_EPOCHS = {"epochs": 3, "patience": 3}


@pytest.fixture(scope="module")
def dataset_dir(tiny_dataset, tmp_path_factory) -> Path:
    """A directory holding the tiny split as dataset.npz, what the worker processes train teachers on."""
    directory = tmp_path_factory.mktemp("teachers-data")
    tiny_dataset.save(directory / "dataset.npz")
    return directory


def teachers_in_one_process(dataset_dir, tmp_path: Path, names: list[str]) -> dict:
    run_worker(
        str(dataset_dir),
        str(tmp_path / "one"),
        str(tmp_path / "one.npz"),
        "none",
        json.dumps({**TEACHER_EPOCHS, "teachers": names, "distribute": "none"}),
    )
    return dict(np.load(tmp_path / "one.npz"))


def assert_teachers_match_one_process(distributed: dict, one: dict, names: list[str]) -> None:
    assert int(one["replicas"]) == 1 and int(distributed["replicas"]) == 2
    for name in names:
        variables = [key for key in one if key.startswith(f"{name}.") and key.rpartition(".")[2].isdigit()]
        assert variables
        for key in variables:
            np.testing.assert_allclose(distributed[key], one[key], atol=ATOL, rtol=0, err_msg=key)
        runs = [json.loads(str(r[f"{name}.run"])) for r in (distributed, one)]
        assert runs[0]["checkpoint_epochs"] == runs[1]["checkpoint_epochs"] and runs[0]["epochs"] == runs[1]["epochs"]
        assert runs[0]["valid"] == pytest.approx(runs[1]["valid"], abs=METRIC_ATOL)
        assert runs[0]["test"] == pytest.approx(runs[1]["test"], abs=METRIC_ATOL)
        for mine, theirs in zip(*(r["history"] for r in runs)):
            assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-4)
        differ = distributed[f"{name}.rankings"] != one[f"{name}.rankings"]
        assert differ.mean() <= RANKINGS_DIFFER, f"{name}: {differ.mean():.2%} of the ranking entries differ"


def test_two_workers_train_teachers_as_one_process(dataset_dir, tmp_path):
    """MF, and the two teachers whose loss is not a plain per-triple sum: LightGCN (every replica propagates the
    whole graph) and Mult-VAE (dropout and noise drawn for the global batch, KL annealed, L2 on shared kernels)."""
    names = ["MF", "GNN", "AE"]
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    settings = {**TEACHER_EPOCHS, "teachers": names, "distribute": "multi_worker"}
    workers = [
        spawn(
            dataset_dir,
            tmp_path / f"w{i}",
            tmp_path / f"w{i}.npz",
            "multi_worker",
            settings,
            {"cluster": cluster, "task": {"type": "worker", "index": i}},
        )
        for i in range(2)
    ]
    one = teachers_in_one_process(dataset_dir, tmp_path, names)  # meanwhile, in this process
    wait_all(workers)
    chief, other = (dict(np.load(tmp_path / f"w{i}.npz")) for i in range(2))
    for key in chief:  # every worker ends with the same weights, trajectories and runs (but their seconds)
        if key.endswith(".run"):
            runs = [{**json.loads(str(r[key])), "train_seconds": 0, "finish_seconds": 0} for r in (chief, other)]
            assert runs[0] == runs[1], key
        else:
            np.testing.assert_array_equal(chief[key], other[key], err_msg=key)
    assert_teachers_match_one_process(chief, one, names)
    initial = build_teacher("MF", Dataset.load(dataset_dir / "dataset.npz"), TINY.teachers["MF"])
    moved = np.abs(chief["MF.1"] - initial.item_embedding.embeddings.numpy()).max()
    assert moved > 100 * ATOL, "training moves the weights far beyond the tolerance"
    # only the chief writes the TensorBoard logs; the other worker's went to a removed temporary directory
    for name in names:
        assert list((tmp_path / "w0" / "logs" / name).glob("events.out.tfevents.*"))
    assert not (tmp_path / "w1").exists()


def test_the_teacher_trainer_on_two_workers_writes_its_artifacts_once(dataset_dir, tmp_path):
    """The TFX TeacherTrainer's executor compiled for two workers, run by two worker processes as a multi-worker job
    runs its task: both train, only the chief writes the model, trajectory and logs (here each worker was handed its
    own output URIs, to see who wrote what)."""
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    settings = {**TEACHER_EPOCHS, "teacher": "MF", "workers": 2, "distribute": "multi_worker"}
    workers = [
        spawn(
            dataset_dir,
            tmp_path / f"w{i}",
            tmp_path / f"w{i}.npz",
            "teacher_executor",
            settings,
            {"cluster": cluster, "task": {"type": "worker", "index": i}},
        )
        for i in range(2)
    ]
    wait_all(workers, timeout=900)  # each imports TFX: minutes on a loaded machine
    assert [int(np.load(tmp_path / f"w{i}.npz")["replicas"]) for i in range(2)] == [2, 2]
    chief = tmp_path / "w0"
    trajectory = Trajectory.load(chief / "trajectory" / TRAJECTORY_DIR)
    assert (
        trajectory.teacher == "MF" and trajectory.rankings.shape[1] == Dataset.load(dataset_dir / "dataset.npz").n_users
    )
    assert json.loads((chief / "trajectory" / METRICS_FILE).read_text())["epochs"] == TEACHER_EPOCHS["epochs"]
    assert tf.train.latest_checkpoint(str(chief / "model" / WEIGHTS_DIR)) is not None
    assert list((chief / "model_run" / "MF").glob("events.out.tfevents.*"))
    assert not (tmp_path / "w1").exists()


def test_a_teacher_trainer_compiled_for_two_workers_refuses_one(dataset_dir, tmp_path):
    settings = {**TEACHER_EPOCHS, "teacher": "MF", "workers": 2, "distribute": "multi_worker"}
    process = spawn(dataset_dir, tmp_path / "w", tmp_path / "w.npz", "teacher_executor", settings)
    _, err = process.communicate(timeout=900)
    assert process.returncode != 0
    assert (
        "TeacherTrainer.MF: compiled for 2 worker(s), its cluster (TF_CONFIG) has 1; run the task as a " "2-worker job"
    ) in err
    assert not (tmp_path / "w").exists()


def test_two_mirrored_replicas_train_every_teacher_as_one_process(dataset_dir, tmp_path):
    """Two replicas on one host (two logical CPUs) for all six teachers: CML's unit-ball projection runs once per
    step on the synchronised weights, NeuMF's and the autoencoders' towers sum their replicas' gradients."""
    names = list(TEACHER_NAMES)
    process = spawn(dataset_dir, tmp_path / "m", tmp_path / "m.npz", "two_cpus", {**TEACHER_EPOCHS, "teachers": names})
    one = teachers_in_one_process(dataset_dir, tmp_path, names)
    wait_all([process])
    assert_teachers_match_one_process(dict(np.load(tmp_path / "m.npz")), one, names)
