"""`hetcomp teachers` end to end on tiny synthetic data, and its bad-input exits."""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest

from hetcomp_tf.cli import main
from hetcomp_tf.config import METRIC_KS, TEACHER_NAMES
from hetcomp_tf.data.dataset import Dataset
from hetcomp_tf.distill.ensemble import EnsembleKnowledge, evaluate_ensemble
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.teachers.trajectories import load_trajectories
from hetcomp_tf.teachers.workflow import teachers_table
from hetcomp_tf.util.tables import teacher_label

METRIC_KEYS = {f"{m}@{k}" for k in METRIC_KS for m in ("recall", "ndcg")}


@pytest.fixture(scope="module")
def teachers_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["teachers", "--data", "synthetic", "--profile", "tiny", "--out", str(out), "--seed", "3"])
    return code, out, stdout.getvalue()


@pytest.mark.slow
def test_teachers_writes_results_trajectories_split_and_logs(teachers_out):
    code, out, _ = teachers_out
    assert code == 0
    result = json.loads((out / "teachers.json").read_text())
    assert result["profile"] == "tiny" and list(result["teachers"]) == list(TEACHER_NAMES)
    data = Dataset.load(out / "dataset.npz")
    assert {k: result["dataset"][k] for k in data.sizes()} == data.sizes()
    for name, entry in result["teachers"].items():
        assert set(entry["test"]) == set(entry["valid"]) == METRIC_KEYS
        assert all(0.0 <= v <= 1.0 for v in entry["test"].values())
        assert entry["train_seconds"] > 0 and entry["epochs"] >= 1 and entry["params"] > 0
        assert list((out / "logs" / "teachers" / name).glob("events.out.tfevents.*"))
    assert set(result["ensemble"]["test"]) == set(result["ensemble"]["valid"]) == METRIC_KEYS
    assert math.isfinite(result["ensemble"]["test"]["recall@50"]) and result["ensemble"]["test"]["recall@50"] > 0

    trajs = load_trajectories(out)
    assert list(trajs) == list(TEACHER_NAMES)
    for name, traj in trajs.items():
        assert traj.rankings.shape[:2] == (4, data.n_users)
        assert [c["valid"] for c in traj.checkpoints][-1] == result["teachers"][name]["valid"]
    knowledge = EnsembleKnowledge.from_trajectories(trajs, tau=result["ensemble"]["tau"])
    recomputed = evaluate_ensemble(knowledge, data, "test")
    assert recomputed == pytest.approx(result["ensemble"]["test"], abs=1e-7)
    weighted = result["ensemble_weighted"]  # tau and weights fitted on valid: never below equal weights there
    assert list(weighted["weights"]) == list(TEACHER_NAMES)
    assert weighted["valid"]["recall@50"] >= result["ensemble"]["valid"]["recall@50"]
    fitted = EnsembleKnowledge.from_trajectories(trajs, tau=weighted["tau"])
    assert evaluate_ensemble(fitted, data, "test", teacher_weights=list(weighted["weights"].values())) == pytest.approx(
        weighted["test"], abs=1e-7
    )
    assert not [p.name for p in out.parent.iterdir() if p.name != "out"]  # no staging directory left


@pytest.mark.slow
def test_teachers_in_worker_processes_write_the_same_outputs(teachers_out, tmp_path, capsys):
    """--jobs 2: two teachers at a time in one-thread workers; same files and, up to the float noise of a
    different thread count, the same teachers as the in-process run with the same seed."""
    _, serial_out, _ = teachers_out
    out = tmp_path / "out"
    assert (
        main(["teachers", "--data", "synthetic", "--profile", "tiny", "--out", str(out), "--seed", "3", "--jobs", "2"])
        == 0
    )
    assert "running 6 teachers in 2 worker processes" in capsys.readouterr().err
    serial, parallel = (json.loads((d / "teachers.json").read_text()) for d in (serial_out, out))
    assert list(parallel["teachers"]) == list(TEACHER_NAMES)
    for name in TEACHER_NAMES:
        assert list((out / "logs" / "teachers" / name).glob("events.out.tfevents.*"))
        assert parallel["teachers"][name]["test"] == pytest.approx(serial["teachers"][name]["test"], abs=0.02), name
    assert list(load_trajectories(out)) == list(TEACHER_NAMES)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.slow
def test_teachers_prints_the_test_metrics_table(teachers_out):
    _, out, stdout = teachers_out
    result = json.loads((out / "teachers.json").read_text())
    lines = stdout.strip().splitlines()
    header = lines[1].split()
    assert header == [f"{m}@{k}" for k in METRIC_KS for m in ("recall", "ndcg")] + ["seconds"]
    rows = {" ".join(line.split()[: -len(header)]): line.split()[-len(header) :] for line in lines[3:]}
    labels = [teacher_label(name, result["teachers"][name]) for name in TEACHER_NAMES]
    assert list(rows) == [*labels, "Ensemble", "Ensemble-fitted"]
    for name, label in zip(TEACHER_NAMES, labels):
        assert float(rows[label][header.index("recall@50")]) == pytest.approx(
            result["teachers"][name]["test"]["recall@50"], abs=5e-5
        )
    assert rows["Ensemble"][-1] == "-"


def test_teacher_set_trains_with_the_changed_config_and_records_it(tmp_path):
    out = tmp_path / "out"
    with contextlib.redirect_stdout(io.StringIO()):
        argv = ["teachers", "--data", "synthetic", "--profile", "tiny", "--teachers", "MF", "--out", str(out)]
        assert main([*argv, "--teacher-set", "MF.dim=8", "--teacher-set", "all.epochs=2"]) == 0
    result = json.loads((out / "teachers.json").read_text())
    data = Dataset.load(out / "dataset.npz")
    assert result["teacher_configs"]["MF"]["dim"] == 8 and result["teacher_configs"]["MF"]["epochs"] == 2
    assert result["teachers"]["MF"]["params"] == (data.n_users + data.n_items) * 8
    assert result["teachers"]["MF"]["epochs"] == 2


def test_a_teacher_its_epoch_cap_stopped_is_named_so_in_the_table():
    metrics = {key: 0.1 for key in METRIC_KEYS}
    result = {
        "teachers": {
            "MF": {"test": metrics, "train_seconds": 3.0, "epochs": 6, "ended_by": "epoch cap"},
            "GNN": {"test": metrics, "train_seconds": 2.0, "epochs": 4, "ended_by": "early stop"},
        },
        "ensemble": {"test": metrics},
        "ensemble_weighted": {"test": metrics},
    }
    names = [line.split("  ")[0].strip() for line in teachers_table(result).splitlines()[2:]]
    assert names == ["MF (capped at 6 epochs)", "GNN", "Ensemble", "Ensemble-fitted"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--data", "synthetic", "--teachers", "MF,XX"], "unknown teacher 'XX'"),
        (["--data", "synthetic", "--teachers", "MF,MF"], "at most once"),
        (["--data", "/nonexistent/users.csv"], "/nonexistent/users.csv"),
        (["--data", "synthetic", "--jobs", "0"], "--jobs 0"),
        (["--data", "synthetic", "--teacher-set", "XX.dim=3"], "--teacher-set 'XX.dim=3': expected TEACHER.FIELD"),
        (["--data", "synthetic", "--teacher-set", "MF.dim=0"], "dim=0"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    assert main(["teachers", "--profile", "tiny", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hetcomp: error:") and message in err[0]
    assert list(tmp_path.iterdir()) == []


def fail_in_training(monkeypatch, failing: str):
    """Teacher `failing` fails as a loss that became nan would; the others train."""
    import hetcomp_tf.teachers.workflow as workflow

    real = workflow.train_teacher

    def train(name, *args, **kwargs):
        if name == failing:
            raise HetCompError(f"{name}: training loss became nan at epoch 1")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(workflow, "train_teacher", train)


def test_failure_midway_writes_no_output_and_keeps_the_finished_teachers_for_a_rerun(tmp_path, capsys, monkeypatch):
    """A teacher that fails ends the run with exit 2: none of the outputs is written, only the resume state of the
    teachers that finished (here MF) stays, in the hidden resume folder a rerun picks up."""
    import hetcomp_tf.teachers.workflow as workflow

    fail_in_training(monkeypatch, "ML")
    out = tmp_path / "out"
    assert main(["teachers", "--data", "synthetic", "--profile", "tiny", "--teachers", "MF,ML", "--out", str(out)]) == 2
    assert "ML: training loss became nan" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [out]
    assert [entry.name for entry in out.iterdir()] == [workflow.RESUME]
    assert sorted(entry.name for entry in (out / workflow.RESUME / "runs").iterdir()) == ["MF.json"]


def test_a_rerun_with_fewer_teachers_outputs_only_those(tmp_path, capsys, monkeypatch):
    """A stopped run finished MF and ML; rerun with `--teachers MF`, its output holds MF alone: ML's finished
    trajectory and logs in the resume state are not the ensemble's."""
    import hetcomp_tf.teachers.workflow as workflow

    fail_in_training(monkeypatch, "GNN")
    out = tmp_path / "out"
    argv = ["teachers", "--data", "synthetic", "--profile", "tiny", "--out", str(out), "--teachers"]
    assert main([*argv, "MF,ML,GNN"]) == 2
    assert (out / workflow.RESUME / "trajectories" / "ML").is_dir()
    assert main([*argv, "MF"]) == 0
    assert "resuming: MF already trained" in capsys.readouterr().err
    assert list(json.loads((out / "teachers.json").read_text())["teachers"]) == ["MF"]
    assert [p.name for p in (out / "trajectories").iterdir()] == ["MF"]
    assert [p.name for p in (out / "logs" / "teachers").iterdir()] == ["MF"]


@pytest.mark.slow
def test_a_stopped_teachers_run_resumes_with_the_teachers_it_finished(tmp_path, monkeypatch, capsys):
    """A run that stops in its third teacher's 5th epoch keeps the two it finished and the third's state after its
    5th evaluation; the rerun trains only the third, from its 6th epoch, gives the teachers.json an uninterrupted run
    gives, and leaves no resume state. Another seed starts afresh."""
    import numpy as np

    from hetcomp_tf.config import get_profile
    from hetcomp_tf.data.loading import load_dataset
    from hetcomp_tf.teachers import workflow as teachers

    profile, names = get_profile("tiny"), ("MF", "GNN", "AE")
    data = load_dataset("synthetic", None, profile.data)
    trained, real = [], teachers.train_teacher

    class Stopping:  # the machine going down as a teacher's 5th epoch is reported
        def __init__(self, what, total, done_before=0):
            pass

        def update(self, done, detail=""):
            if done == 5:
                raise KeyboardInterrupt

    def training(stop_at=None):
        def train(name, *args, **kwargs):
            trained.append(name)
            return real(name, *args, **{**kwargs, "progress": Stopping if name == stop_at else None})

        monkeypatch.setattr(teachers, "train_teacher", train)

    training(stop_at="AE")
    with pytest.raises(KeyboardInterrupt):
        teachers.train_teachers(data, profile, tmp_path / "out", names, seed=3)
    assert trained == ["MF", "GNN", "AE"] and not (tmp_path / "out" / "teachers.json").exists()
    training()
    resumed = teachers.train_teachers(data, profile, tmp_path / "out", names, seed=3)
    assert trained == ["MF", "GNN", "AE", "AE"]
    err = capsys.readouterr().err
    assert "resuming: MF, GNN already trained" in err and "AE: resuming after epoch 5" in err
    assert not (tmp_path / "out" / teachers.RESUME).exists()
    fresh = teachers.train_teachers(data, profile, tmp_path / "fresh", names, seed=3)
    seconds = ("train_seconds", "finish_seconds")
    assert resumed["teachers"] == {
        name: {**entry, **{key: resumed["teachers"][name][key] for key in seconds}}
        for name, entry in fresh["teachers"].items()
    }
    assert resumed["ensemble"] == fresh["ensemble"]
    np.testing.assert_array_equal(
        load_trajectories(tmp_path / "out")["MF"].rankings, load_trajectories(tmp_path / "fresh")["MF"].rankings
    )

    training(stop_at="GNN")
    with pytest.raises(KeyboardInterrupt):
        teachers.train_teachers(data, profile, tmp_path / "other", names, seed=3)
    trained.clear()
    training()
    teachers.train_teachers(data, profile, tmp_path / "other", names, seed=4)
    assert trained == list(names)
    assert "starting the teachers afresh" in capsys.readouterr().err


@pytest.mark.slow
def test_a_rerun_with_one_teachers_config_changed_retrains_that_teacher_alone(tmp_path, monkeypatch, capsys):
    """After a finished run, `--teacher-set MF.dim=8` on the same --out trains MF only: GNN's trajectory, entry and
    config are the first run's, MF's the new ones."""
    import dataclasses

    from hetcomp_tf.config import get_profile
    from hetcomp_tf.data.loading import load_dataset
    from hetcomp_tf.teachers import workflow as teachers

    profile, names, out = get_profile("tiny"), ("MF", "GNN"), tmp_path / "out"
    data = load_dataset("synthetic", None, profile.data)
    first = teachers.train_teachers(data, profile, out, names, seed=3)
    gnn_rankings = load_trajectories(out)["GNN"].rankings
    trained, real = [], teachers.train_teacher
    monkeypatch.setattr(teachers, "train_teacher", lambda name, *a, **k: trained.append(name) or real(name, *a, **k))
    changed = dataclasses.replace(
        profile, teachers={**profile.teachers, "MF": dataclasses.replace(profile.teachers["MF"], dim=8)}
    )
    second = teachers.train_teachers(data, changed, out, names, seed=3)
    assert trained == ["MF"] and "keeping GNN from" in capsys.readouterr().err
    assert second["teachers"]["GNN"] == first["teachers"]["GNN"] and second["teacher_configs"]["MF"]["dim"] == 8
    assert second["teachers"]["MF"]["params"] != first["teachers"]["MF"]["params"]
    np.testing.assert_array_equal(load_trajectories(out)["GNN"].rankings, gnn_rankings)
    trained.clear()
    teachers.train_teachers(data, changed, out, names, seed=4)  # another seed: every teacher again
    assert trained == list(names)


def test_a_resume_state_written_with_the_shared_teacher_config_is_resumed(tmp_path):
    """Resume states of older runs hold the whole profile, with every teacher's config in the shared TeacherConfig's
    JSON shape: read in today's shape, the same profile and seed still resume; another seed does not."""
    from hetcomp_tf.config import get_profile
    from hetcomp_tf.data.loading import load_dataset
    from hetcomp_tf.teachers import workflow
    from hetcomp_tf.util.files import write_json
    from tests.test_config import SHARED_SHAPE_TINY

    profile = get_profile("tiny")
    data = load_dataset("synthetic", None, profile.data)
    resume = workflow._resume_directory(tmp_path / workflow.RESUME, data, profile, 3)
    old_stamp = {"profile": {**profile.to_dict(), "teachers": SHARED_SHAPE_TINY}, "seed": 3}
    write_json(resume / "fingerprint.json", old_stamp)
    write_json(resume / "runs" / "MF.json", {})
    workflow._resume_directory(resume, data, profile, 3)
    assert (resume / "runs" / "MF.json").is_file()
    workflow._resume_directory(resume, data, profile, 4)
    assert not (resume / "runs").exists()


def test_the_teachers_resume_only_under_the_configs_they_depend_on(tmp_path):
    """A profile whose student or name changes keeps its trained teachers; one teacher's config changed retrains that
    teacher alone (its result, trajectory, state and logs go, the others stay); another trajectory config retrains
    them all."""
    import dataclasses

    from hetcomp_tf.config import get_profile
    from hetcomp_tf.data.loading import load_dataset
    from hetcomp_tf.teachers import workflow
    from hetcomp_tf.util.files import write_json

    profile = get_profile("tiny")
    data = load_dataset("synthetic", None, profile.data)
    resume = workflow._resume_directory(tmp_path / workflow.RESUME, data, profile, 3)
    for name in ("MF", "GNN"):
        write_json(resume / "runs" / f"{name}.json", {})
        write_json(resume / workflow.CONFIGS / f"{name}.json", workflow.teacher_config(profile, name))
        for part in ("trajectories", workflow.TRAINING, "logs/teachers"):
            (resume / part / name).mkdir(parents=True)
    student_changed = dataclasses.replace(
        profile, name="mine", distill=dataclasses.replace(profile.distill, learning_rate=0.5), student_dims=(3,)
    )
    workflow._resume_directory(resume, data, student_changed, 3)
    assert workflow.finished_teachers(tmp_path, data, student_changed, 3) == ["GNN", "MF"]
    teacher_changed = dataclasses.replace(
        profile, teachers={**profile.teachers, "MF": dataclasses.replace(profile.teachers["MF"], dim=8)}
    )
    assert workflow.finished_teachers(tmp_path, data, teacher_changed, 3) == ["GNN"]  # read-only: MF still there
    assert (resume / "runs" / "MF.json").is_file()
    workflow._resume_directory(resume, data, teacher_changed, 3)
    remaining = {part: sorted(p.name for p in (resume / part).iterdir()) for part in ("trajectories", "logs/teachers")}
    assert remaining == {"trajectories": ["GNN"], "logs/teachers": ["GNN"]}
    assert sorted(p.name for p in (resume / "runs").iterdir()) == ["GNN.json"]
    assert sorted(p.name for p in (resume / workflow.TRAINING).iterdir()) == ["GNN"]
    assert sorted(p.name for p in (resume / workflow.CONFIGS).iterdir()) == ["GNN.json"]
    trajectory_changed = dataclasses.replace(profile, trajectory=dataclasses.replace(profile.trajectory, top_n=7))
    workflow._resume_directory(resume, data, trajectory_changed, 3)
    assert not (resume / "runs").exists()


def test_a_stamp_holding_every_teachers_config_is_read_as_per_teacher_stamps(tmp_path):
    """A resume directory stamped with every teacher's config in one fingerprint (before per-teacher stamps) keeps
    its teachers under today's profile, gets a stamp per teacher with results, and retrains only a changed one."""
    import dataclasses
    import json

    from hetcomp_tf.config import get_profile
    from hetcomp_tf.data.loading import load_dataset
    from hetcomp_tf.teachers import workflow
    from hetcomp_tf.util.files import read_json, write_json

    profile = get_profile("tiny")
    data = load_dataset("synthetic", None, profile.data)
    resume = workflow._resume_directory(tmp_path / workflow.RESUME, data, profile, 3)
    parts = json.loads(json.dumps(profile.to_dict()))
    older = {"data": parts["data"], "teachers": parts["teachers"], "trajectory": parts["trajectory"], "seed": 3}
    write_json(resume / "fingerprint.json", older)
    write_json(resume / "runs" / "MF.json", {})
    (resume / workflow.TRAINING / "GNN").mkdir(parents=True)
    changed = dataclasses.replace(
        profile, teachers={**profile.teachers, "GNN": dataclasses.replace(profile.teachers["GNN"], dim=8)}
    )
    assert workflow.finished_teachers(tmp_path, data, changed, 3) == ["MF"]
    workflow._resume_directory(resume, data, changed, 3)
    assert read_json(resume / "fingerprint.json") == workflow.teachers_fingerprint(profile, 3)
    assert sorted(p.name for p in (resume / workflow.CONFIGS).iterdir()) == ["MF.json"]  # GNN's went with its state
    assert (resume / "runs" / "MF.json").is_file() and not (resume / workflow.TRAINING / "GNN").exists()


def test_the_finished_teachers_are_read_without_changing_anything(tmp_path):
    """What a run's estimate leaves out: the teachers finished under the same fingerprint; none under another, and the
    resume directory is left as it was either way."""
    from hetcomp_tf.config import get_profile
    from hetcomp_tf.data.loading import load_dataset
    from hetcomp_tf.teachers import workflow
    from hetcomp_tf.util.files import write_json

    profile = get_profile("tiny")
    data = load_dataset("synthetic", None, profile.data)
    assert workflow.finished_teachers(tmp_path, data, profile, 3) == []
    resume = workflow._resume_directory(tmp_path / workflow.RESUME, data, profile, 3)
    for name in ("MF", "GNN"):
        write_json(resume / "runs" / f"{name}.json", {})
    write_json(resume / workflow.CONFIGS / "MF.json", workflow.teacher_config(profile, "MF"))
    assert workflow.finished_teachers(tmp_path, data, profile, 3) == ["MF"]  # GNN's config is not stamped: unknown
    write_json(resume / workflow.CONFIGS / "GNN.json", workflow.teacher_config(profile, "GNN"))
    assert workflow.finished_teachers(tmp_path, data, profile, 3) == ["GNN", "MF"]
    assert workflow.finished_teachers(tmp_path, data, profile, 4) == []
    assert sorted(path.name for path in (resume / "runs").iterdir()) == ["GNN.json", "MF.json"]
