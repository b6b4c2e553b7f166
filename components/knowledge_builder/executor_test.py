"""The KnowledgeBuilder executor, in memory and as a Beam build, with equal and fitted targets."""

from __future__ import annotations

import os

import numpy as np
import pytest

from components import keys, knowledge_beam, storage
from components.artifacts import KNOWLEDGE_DIR, METRICS_FILE, TRAJECTORY_DIR, KnowledgeArtifact, RankingMetrics
from components.knowledge_builder import executor as knowledge_builder
from components.testing import DISTILL, TEACHERS, knowledge_inputs, make
from hetcomp_tf.distill import ensemble
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.teachers.trajectories import Trajectory


class TestKnowledgeBuilder:
    def test_the_knowledge_stacks_the_wired_teachers_and_the_table_holds_them_and_the_ensemble(
        self, knowledge, teachers, ingested
    ):
        built = ensemble.EnsembleKnowledge.load(os.path.join(knowledge.knowledge.uri, KNOWLEDGE_DIR))
        assert built.teachers == tuple(TEACHERS) and built.tau == DISTILL.tau
        for index, run in enumerate(teachers.values()):
            trajectory = Trajectory.load(os.path.join(run.trajectory.uri, TRAJECTORY_DIR))
            np.testing.assert_array_equal(built.final_rankings[index], trajectory.rankings[-1])
        methods = storage.read_json(knowledge.metrics.uri, METRICS_FILE)["methods"]
        assert set(methods) == {"teacher:MF", "teacher:ML", "ensemble"}
        for name, run in teachers.items():
            trained = storage.read_json(run.trajectory.uri, METRICS_FILE)
            assert methods[f"teacher:{name}"]["test"] == trained["test"]
            assert (methods[f"teacher:{name}"]["epochs"], methods[f"teacher:{name}"]["ended_by"]) == (
                trained["epochs"],
                trained["ended_by"],
            )  # how its training ended, for the report's table
        assert methods["ensemble"]["test"] == pytest.approx(ensemble.evaluate_ensemble(built, ingested.data, "test"))

    def test_the_beam_build_writes_the_same_knowledge_sharded_and_the_same_table(
        self, root, ingested, teachers, knowledge
    ):
        outputs = {
            keys.KNOWLEDGE_KEY: [make(KnowledgeArtifact, root, "knowledge-beam")],
            keys.METRICS_KEY: [make(RankingMetrics, root, "km-beam")],
        }
        knowledge_builder.Executor().Do(
            knowledge_inputs(ingested, teachers), outputs, {keys.TAU_KEY: DISTILL.tau, keys.BEAM_BUILD_KEY: 1}
        )
        directory = os.path.join(outputs[keys.KNOWLEDGE_KEY][0].uri, KNOWLEDGE_DIR)
        assert knowledge_beam.is_sharded(directory) and sorted(os.listdir(outputs[keys.KNOWLEDGE_KEY][0].uri)) == [
            KNOWLEDGE_DIR
        ]  # the staging directory is gone
        got = knowledge_beam.load_knowledge(directory)  # as the StudentTrainer reads it
        want = ensemble.EnsembleKnowledge.load(os.path.join(knowledge.knowledge.uri, KNOWLEDGE_DIR))
        assert (got.teachers, got.tau, got.n_items) == (want.teachers, want.tau, want.n_items)
        np.testing.assert_array_equal(got.rankings, want.rankings)
        np.testing.assert_array_equal(got.observed, want.observed)
        assert storage.read_json(outputs[keys.METRICS_KEY][0].uri, METRICS_FILE) == storage.read_json(
            knowledge.metrics.uri, METRICS_FILE
        )

    @pytest.mark.parametrize("beam_build", [0, 1])
    def test_fitted_targets_are_the_ensemble_fitted_on_valid_in_both_layouts(
        self, tmp_path, ingested, teachers, knowledge, beam_build
    ):
        outputs = {
            keys.KNOWLEDGE_KEY: [make(KnowledgeArtifact, tmp_path, "k")],
            keys.METRICS_KEY: [make(RankingMetrics, tmp_path, "m")],
        }
        knowledge_builder.Executor().Do(
            knowledge_inputs(ingested, teachers),
            outputs,
            {keys.TAU_KEY: DISTILL.tau, keys.BEAM_BUILD_KEY: beam_build, keys.TARGETS_KEY: "fitted"},
        )
        got = knowledge_beam.load_knowledge(os.path.join(outputs[keys.KNOWLEDGE_KEY][0].uri, KNOWLEDGE_DIR))
        equal = ensemble.EnsembleKnowledge.load(os.path.join(knowledge.knowledge.uri, KNOWLEDGE_DIR))
        tau, weights, _ = ensemble.fit_ensemble(equal, ingested.data)
        assert got.tau == tau and got.teacher_weights == tuple(weights[name] for name in got.teachers)
        metrics = storage.read_json(outputs[keys.METRICS_KEY][0].uri, METRICS_FILE)
        assert metrics["targets"] == {"kind": "fitted", "tau": tau, "teacher_weights": weights}
        assert (
            metrics["methods"]["ensemble"]
            == storage.read_json(knowledge.metrics.uri, METRICS_FILE)["methods"]["ensemble"]
        )  # the paper's equal-weight row stays
        assert metrics["methods"]["ensemble:fitted"]["test"] == pytest.approx(
            ensemble.evaluate_ensemble(got, ingested.data, "test")
        )

    def test_no_trajectory_is_an_error(self, tmp_path, ingested):
        outputs = {
            keys.KNOWLEDGE_KEY: [make(KnowledgeArtifact, tmp_path, "k")],
            keys.METRICS_KEY: [make(RankingMetrics, tmp_path, "m")],
        }
        with pytest.raises(HetCompError, match="no teacher trajectory"):
            knowledge_builder.Executor().Do({keys.DATASET_KEY: [ingested.dataset]}, outputs, {keys.TAU_KEY: 10.0})
