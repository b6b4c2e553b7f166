"""TensorBoard logs of a tiny teachers run and a tiny distillation: the event files hold the expected tags, one
value per logged step, all finite — what a user opening TensorBoard on `<out>/logs` relies on; and the real
`tensorboard`, started with the line `hetcomp run` prints, showing every teacher and the student."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import portpicker
import pytest

from hetcomp_tf.config import TEACHER_NAMES, get_profile
from hetcomp_tf.distill.ensemble import EnsembleKnowledge
from hetcomp_tf.distill.loop import distill
from hetcomp_tf.distill.methods import LOSSES
from hetcomp_tf.teachers.training import train_teacher
from tests.helpers import read_scalars

pytestmark = pytest.mark.slow  # end to end (training, processes, servers): `make test`, not `make check`

TEACHER_EPOCHS = 2


def assert_finite_series(scalars: dict, tag: str, steps: list[int]) -> None:
    assert tag in scalars, f"tag {tag!r} missing; have {sorted(scalars)}"
    assert [step for step, _ in scalars[tag]] == steps, tag
    assert all(math.isfinite(value) for _, value in scalars[tag]), tag


@pytest.fixture(scope="module")
def teacher_runs(tiny_dataset, tmp_path_factory):
    """All six teachers for TEACHER_EPOCHS epochs each, logging under one directory as `hetcomp teachers` does."""
    profile = get_profile("tiny")
    log_dir = tmp_path_factory.mktemp("logs") / "teachers"
    runs = {
        name: train_teacher(
            name,
            tiny_dataset,
            dataclasses.replace(profile.teachers[name], epochs=TEACHER_EPOCHS, eval_every=1),
            profile.trajectory,
            seed=0,
            log_dir=log_dir,
            progress=None,
        )
        for name in TEACHER_NAMES
    }
    return runs, log_dir


def test_every_teacher_logs_its_loss_and_valid_metrics(teacher_runs):
    runs, log_dir = teacher_runs
    for name, run in runs.items():
        scalars = read_scalars(log_dir / name)
        steps = list(range(1, run.epochs + 1))
        assert_finite_series(scalars, "train/loss", steps)
        assert_finite_series(scalars, "valid/recall@50", steps)
        assert [v for _, v in scalars["train/loss"]] == pytest.approx([h["loss"] for h in run.history], rel=1e-6)


@pytest.fixture(scope="module")
def distill_run(tiny_dataset, teacher_runs, tmp_path_factory):
    """HetComp on the teachers' trajectories for 11 epochs: three evaluations and two DKC updates."""
    runs, _ = teacher_runs
    knowledge = EnsembleKnowledge.from_trajectories({name: run.trajectory for name, run in runs.items()})
    cfg = dataclasses.replace(get_profile("tiny").distill, method="hetcomp", epochs=11, eval_every=5, patience=5)
    log_dir = tmp_path_factory.mktemp("logs") / "distill"
    return distill(tiny_dataset, knowledge, cfg, log_dir=log_dir, progress=None), log_dir, knowledge


def test_distillation_logs_loss_valid_recall_dkc_stages_and_objective(distill_run):
    run, log_dir, knowledge = distill_run
    scalars = read_scalars(log_dir)
    epochs = list(range(1, run.epochs + 1))  # steps count the epochs trained
    assert_finite_series(scalars, "loss/total", epochs)
    evaluated = [entry["epoch"] for entry in run.history]
    assert_finite_series(scalars, "valid/recall@50", evaluated)
    assert [v for _, v in scalars["valid/recall@50"]] == pytest.approx(
        [entry["valid"]["recall@50"] for entry in run.history], rel=1e-6
    )
    assert_finite_series(scalars, "objective", epochs)
    objectives = [int(v) for _, v in scalars["objective"]]
    assert set(objectives) <= {LOSSES.index("overall"), LOSSES.index("fine")}
    assert objectives == sorted(objectives), "ADT switches from the overall to the fine-grained loss, never back"
    per_loss = {name: [step for step, _ in scalars.get(f"loss/{name}", [])] for name in ("overall", "fine")}
    assert sorted(per_loss["overall"] + per_loss["fine"]) == epochs  # each epoch logs the loss it trained with
    for teacher in knowledge.teachers:
        tag = f"dkc/mean_stage/{teacher}"
        assert_finite_series(scalars, tag, epochs)
        stages = [v for _, v in scalars[tag]]
        assert all(0.0 <= s <= knowledge.n_checkpoints - 1 for s in stages)
        assert stages == sorted(stages), f"{teacher}: DKC stages only move forward"
        logged = dict(scalars[tag])
        assert [logged[e] for e in evaluated] == pytest.approx(
            [entry["mean_stage"][teacher] for entry in run.history], rel=1e-6
        )


@pytest.mark.slow
def test_tensorboard_started_as_printed_lists_the_student_and_every_teacher(tiny_pipeline, tmp_path):
    """The venv's `tensorboard` with the exact line `hetcomp run` printed, on a loopback port: over its HTTP API
    every teacher and the student are runs, with their tags (student: losses, valid metrics, DKC stages, objective)."""
    line = tiny_pipeline.report["next_steps"][-1]
    assert f"  {line}" in tiny_pipeline.stdout.splitlines()
    port = portpicker.pick_unused_port()
    with open(tmp_path / "tensorboard.log", "w") as log:
        server = subprocess.Popen(
            [*shlex.split(line), "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        expected = {*TEACHER_NAMES, "student-hetcomp"}
        runs = wait_for_runs(f"http://127.0.0.1:{port}", expected, server, tmp_path / "tensorboard.log")
        tags = get_json(f"http://127.0.0.1:{port}/data/plugin/scalars/tags")
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert sorted(runs) == sorted(f"{name}/." for name in expected)  # NAME/<path below the spec's directory>
    for teacher in TEACHER_NAMES:
        assert {"train/loss", "valid/recall@50", "valid/ndcg@50"} <= set(tags[f"{teacher}/."]), teacher
    student = set(tags["student-hetcomp/."])
    assert {"loss/total", "loss/overall", "loss/fine", "valid/recall@50", "objective"} <= student, student
    assert {f"dkc/mean_stage/{teacher}" for teacher in TEACHER_NAMES} <= student, student


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def wait_for_runs(base: str, expected: set, server: subprocess.Popen, log: Path, timeout: float = 120) -> list:
    """/data/runs once a run of every name in `expected` is there (TensorBoard loads the event files in the
    background; a spec entry NAME:PATH makes runs NAME/<subdirectory of PATH>)."""
    deadline, runs = time.monotonic() + timeout, []
    while time.monotonic() < deadline and server.poll() is None:
        with contextlib.suppress(OSError):
            runs = get_json(f"{base}/data/runs")
            if expected <= {run.split("/")[0] for run in runs}:
                return runs
        time.sleep(1)
    pytest.fail(f"TensorBoard listed {runs}, not {sorted(expected)}; its log: {log.read_text()[-2000:]}")


@pytest.mark.slow
def test_hetcomp_tensorboard_serves_every_run_of_an_output_directory(tiny_pipeline, tmp_path):
    """`hetcomp tensorboard --out DIR` becomes the venv's TensorBoard on the report's runs, on a loopback port."""
    port = portpicker.pick_unused_port()
    with open(tmp_path / "tensorboard.log", "w") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hetcomp_tf.cli",
                "tensorboard",
                "--out",
                str(tiny_pipeline.out),
                "--port",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        runs = wait_for_runs(
            f"http://127.0.0.1:{port}", {*TEACHER_NAMES, "student-hetcomp"}, server, tmp_path / "tensorboard.log"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert sorted(runs) == sorted(f"{name}/." for name in (*TEACHER_NAMES, "student-hetcomp"))
    assert f"http://127.0.0.1:{port}" in (tmp_path / "tensorboard.log").read_text()


def test_hetcomp_tensorboard_without_a_finished_run_is_one_line(tmp_path, capsys):
    from hetcomp_tf.cli import main

    assert main(["tensorboard", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no readable report of a finished `hetcomp run" in err[0]
