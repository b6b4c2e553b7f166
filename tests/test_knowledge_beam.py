"""The Beam knowledge build (components/knowledge_beam.py) against `EnsembleKnowledge.from_trajectories` of the same
trajectories, array for array; several user ranges and shards; bad input as one line. Each Beam run is a
DirectRunner pipeline over a few dozen users."""

from __future__ import annotations

import json

import apache_beam as beam
import numpy as np
import pytest

from components import knowledge_beam
from hetcomp_tf.distill.ensemble import EnsembleKnowledge
from hetcomp_tf.errors import HetCompError
from tests.test_ensemble import make_trajectory

N_USERS, N_ITEMS = 23, 60


def saved_trajectories(tmp_path, rng, teachers=("MF", "GNN", "AE"), n_checkpoints=3):
    """Trajectories of `teachers` saved under tmp_path/<teacher> (users with 0 to 9 train items), and their dirs."""
    rows = [rng.choice(N_ITEMS, size=int(rng.integers(0, 10)), replace=False) for _ in range(N_USERS)]
    trajectories = {name: make_trajectory(rng, name, n_checkpoints, N_USERS, 8, N_ITEMS, rows) for name in teachers}
    for name, trajectory in trajectories.items():
        trajectory.save(tmp_path / name)
    return trajectories, {name: str(tmp_path / name) for name in teachers}


def build(directories, out, **kwargs):
    knowledge_beam.run(beam.Pipeline(argv=["--runner=DirectRunner"]), directories, 4.0, str(out), **kwargs)
    return knowledge_beam.read_knowledge(str(out))


def test_beam_knowledge_equals_the_in_memory_build(tmp_path):
    trajectories, directories = saved_trajectories(tmp_path, np.random.default_rng(3))
    knowledge = build(directories, tmp_path / "out", users_per_range=5, num_shards=3)
    want = EnsembleKnowledge.from_trajectories(trajectories, tau=4.0)
    assert (knowledge.teachers, knowledge.n_items, knowledge.tau) == (("MF", "GNN", "AE"), N_ITEMS, 4.0)
    np.testing.assert_array_equal(knowledge.rankings, want.rankings)
    np.testing.assert_array_equal(knowledge.observed, want.observed)
    assert len(list((tmp_path / "out").glob("knowledge-*-of-00003.gz"))) == 3
    assert knowledge_beam.is_sharded(str(tmp_path / "out")) and not knowledge_beam.is_sharded(str(tmp_path))


def test_bad_trajectories_and_shards_fail_in_one_line(tmp_path):
    rng = np.random.default_rng(4)
    _, directories = saved_trajectories(tmp_path / "a", rng, ("MF", "GNN"))
    _, other = saved_trajectories(tmp_path / "b", rng, ("AE",), n_checkpoints=2)
    with pytest.raises(HetCompError, match="trajectories of AE .* and MF .* differ"):
        build({**directories, **other}, tmp_path / "out")
    with pytest.raises(HetCompError, match="no teacher trajectory"):
        build({}, tmp_path / "out")
    np.save(tmp_path / "a" / "GNN" / "rankings.npy", np.zeros((3, N_USERS - 1, 8), np.int32))
    with pytest.raises(HetCompError, match=r"GNN/rankings.npy: an array of shape \(3, 22, 8\), its manifest says"):
        build(directories, tmp_path / "out2")
    assert not (tmp_path / "out2" / "manifest.json").exists()  # a failed build leaves no manifest

    _, directories = saved_trajectories(tmp_path / "c", rng, ("MF",))
    build(directories, tmp_path / "out3", users_per_range=4, num_shards=2)
    next((tmp_path / "out3").glob("knowledge-00001-of-00002.gz")).unlink()
    with pytest.raises(HetCompError, match="out3: .* of 23 users have no complete knowledge example"):
        knowledge_beam.read_knowledge(str(tmp_path / "out3"))
    manifest = tmp_path / "out3" / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "format_version": 99}))
    with pytest.raises(HetCompError, match="format_version 99"):
        knowledge_beam.read_knowledge(str(tmp_path / "out3"))
    manifest.unlink()
    with pytest.raises(HetCompError, match="out3/manifest.json: missing"):
        knowledge_beam.read_knowledge(str(tmp_path / "out3"))


def test_beam_knowledge_of_a_weighted_ensemble_equals_the_in_memory_build(tmp_path):
    trajectories, directories = saved_trajectories(tmp_path, np.random.default_rng(4))
    weights = (0.5, 0.0, 2.0)
    knowledge = build(directories, tmp_path / "out", users_per_range=7, teacher_weights=weights)
    want = EnsembleKnowledge.from_trajectories(trajectories, tau=4.0, teacher_weights=weights)
    assert knowledge.teacher_weights == weights
    np.testing.assert_array_equal(knowledge.observed, want.observed)
    np.testing.assert_array_equal(knowledge.rankings, want.rankings)
