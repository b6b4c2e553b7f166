"""`hetcomp ensemble` on a tiny teachers run: both ensembles written and printed, bad input one line."""

from __future__ import annotations

import json

import pytest

from hetcomp_tf.config import get_profile
from hetcomp_tf.data.dataset import Dataset
from hetcomp_tf.distill.ensemble import EnsembleKnowledge, evaluate_ensemble
from hetcomp_tf.teachers.trajectories import load_trajectories
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def teachers_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("teachers") / "out"
    done = run_cli(["teachers", "--data", "synthetic", "--profile", "tiny", "--teachers", "MF,GNN", "--out", str(out)])
    assert done.code == 0, done.stderr
    return out


def test_the_ensembles_are_written_evaluated_and_printed(teachers_dir, tmp_path):
    done = run_cli(
        [
            "ensemble",
            "--teachers-dir",
            str(teachers_dir),
            "--profile",
            "tiny",
            "--set",
            "fit_users=20",
            "--out",
            str(tmp_path / "e.json"),
        ]
    )
    assert done.code == 0, done.stderr
    result = json.loads((tmp_path / "e.json").read_text())
    data = Dataset.load(teachers_dir / "dataset.npz")
    equal = EnsembleKnowledge.from_trajectories(load_trajectories(teachers_dir), tau=get_profile("tiny").distill.tau)
    assert result["equal"]["test"] == pytest.approx(evaluate_ensemble(equal, data, "test"))
    fitted = result["fitted"]
    assert fitted["fit_users"] == 20 and set(fitted["weights"]) == {"MF", "GNN"}
    again = evaluate_ensemble(
        EnsembleKnowledge.from_trajectories(load_trajectories(teachers_dir), tau=fitted["tau"]),
        data,
        "test",
        teacher_weights=list(fitted["weights"].values()),
    )
    assert fitted["test"] == pytest.approx(again)
    assert "Ensemble-fitted" in done.stdout and "GNN" in done.stdout


def test_the_ensemble_of_a_subset_leaves_the_other_teachers_out(teachers_dir, tmp_path):
    """--teachers GNN: what the ensemble is worth without MF; the table shows GNN's row, not MF's."""
    out = tmp_path / "e.json"
    done = run_cli(
        ["ensemble", "--teachers-dir", str(teachers_dir), "--profile", "tiny", "--teachers", "GNN", "--out", str(out)]
    )
    assert done.code == 0, done.stderr
    result = json.loads(out.read_text())
    data = Dataset.load(teachers_dir / "dataset.npz")
    alone = EnsembleKnowledge.from_trajectories(
        load_trajectories(teachers_dir, ["GNN"]), tau=get_profile("tiny").distill.tau
    )
    assert result["teachers"] == ["GNN"] and list(result["fitted"]["weights"]) == ["GNN"]
    assert result["equal"]["test"] == pytest.approx(evaluate_ensemble(alone, data, "test"))
    labels = [line.split()[0] for line in done.stdout.splitlines()[2:]]
    assert "GNN" in done.stdout and not any(label.startswith("MF") for label in labels)


@pytest.mark.parametrize("teachers, message", [("AE", "no trajectory of AE (it holds GNN, MF)"), ("XX", "unknown")])
def test_a_teacher_the_directory_lacks_is_one_line(teachers_dir, tmp_path, teachers, message):
    argv = ["ensemble", "--teachers-dir", str(teachers_dir), "--teachers", teachers, "--out", str(tmp_path / "e.json")]
    done = run_cli(argv)
    assert done.code == 2 and done.stderr.strip().count("\n") == 0 and message in done.stderr
    assert not (tmp_path / "e.json").exists()


def test_a_directory_without_teachers_is_one_line(tmp_path):
    done = run_cli(
        ["ensemble", "--teachers-dir", str(tmp_path), "--profile", "tiny", "--out", str(tmp_path / "e.json")]
    )
    assert done.code == 2 and done.stderr.strip().count("\n") == 0 and "no dataset.npz" in done.stderr
    assert not (tmp_path / "e.json").exists()
