"""The KFP v2 spec `hetcomp kubeflow` writes, executed: every task's own container command and arguments (TFX's
v2 entrypoint, `python -m tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor`), in DAG order on the
tiny profile, by tests/kfp_local.py (no Kubernetes, Docker or KFP SDK here; `kfp` is not installed, only
`kfp-pipeline-spec`). The image's `python` is replaced by this venv's interpreter, and the worktree is put on
PYTHONPATH as the image installs the repository. A second job on the same pipeline root shows the compiled
latest-blessed-model resolver finding the first job's student through ML Metadata-style queries.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
import tensorflow as tf

from components import keys, storage
from components.artifacts import METRICS_FILE
from hetcomp_tf.config import TEACHER_NAMES
from pipeline.pipeline import BASELINE_RESOLVER
from tests.helpers import run_cli
from tests.kfp_local import LocalBackend, dag_levels, dag_order

pytestmark = pytest.mark.slow  # end to end (training, processes, servers): `make test`, not `make check`

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_RESOLVER = f"{BASELINE_RESOLVER}-model-resolver"


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kfp-run")
    root, spec_file = tmp / "root", tmp / "pipeline.json"
    compiled = run_cli(
        [
            "kubeflow",
            "--data",
            "synthetic",
            "--profile",
            "tiny",
            "--image",
            "hetcomp-tf:local",
            "--pipeline-root",
            str(root),
            "--out",
            str(spec_file),
        ]
    )
    assert compiled.code == 0, compiled.stderr
    job = json.loads(spec_file.read_text())
    backend = LocalBackend(root=str(root), env={"PYTHONPATH": REPO})
    started = time.perf_counter()
    first = backend.run(job)
    first_seconds = time.perf_counter() - started
    second = backend.run(job)
    return job, root, first, second, first_seconds


def _blessing(execution) -> dict:
    return storage.read_json(execution.outputs[keys.EVALUATION_KEY][0]["uri"], METRICS_FILE)["blessing"]


@pytest.mark.slow
def test_every_task_runs_in_dag_order_and_the_student_is_pushed(jobs):
    job, root, first, _, seconds = jobs
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    assert set(first) == set(tasks) and list(first) == dag_order(tasks)
    containers = {
        n
        for n, t in tasks.items()
        if "container"
        in job["pipelineSpec"]["deploymentSpec"]["executors"][
            job["pipelineSpec"]["components"][t["componentRef"]["name"]]["executorLabel"]
        ]
    }
    assert {n for n, e in first.items() if e.state == "complete"} == containers
    assert first[MODEL_RESOLVER].outputs == {"model": []}  # nothing blessed yet on this root
    verdict = _blessing(first["RankingEvaluator"])
    assert verdict["blessed"] and verdict["baseline"] is None
    pushed = first["Pusher"].outputs[keys.PUSHED_MODEL_KEY][0]["metadata"]
    assert pushed["pushed"] == 1.0 and os.path.dirname(pushed["pushed_destination"]) == str(root / "serving")
    served = tf.saved_model.load(pushed["pushed_destination"]).signatures["serving_default"]
    data = storage.read_dataset(first["InteractionExampleGen"].outputs[keys.DATASET_KEY][0]["uri"])
    answer = served(user_id=tf.constant(data.user_vocab[:3].astype(str)), k=tf.constant(10))
    assert answer["item_ids"].shape == (3, 10) and np.all(np.diff(answer["scores"].numpy(), axis=1) <= 0)
    teachers = [first[f"TeacherTrainer.{teacher}"] for teacher in TEACHER_NAMES]
    for teacher, execution in zip(TEACHER_NAMES, teachers):
        assert execution.outputs[keys.TRAJECTORY_KEY][0]["metadata"]["teacher"] == teacher
    spans = sorted((e.started, e.started + e.seconds) for e in teachers)
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))  # independent tasks overlapped
    print(f"\nKFP spec, {len(containers)} container tasks run locally in {seconds:.0f}s")


@pytest.mark.slow
def test_a_second_job_resolves_the_served_student_as_the_baseline(jobs):
    _, root, first, second, _ = jobs
    model = first["StudentTrainer"].outputs[keys.MODEL_KEY][0]
    assert second[MODEL_RESOLVER].outputs[keys.MODEL_KEY][0]["name"] == model["name"]
    assert {n for n, e in second.items() if e.state == "complete"} == {"RankingEvaluator", "Pusher"}
    change = _blessing(second["RankingEvaluator"])["baseline"]
    assert change["model"] == model["uri"] and change["diff"] == 0.0 and change["passed"]
    assert second["Pusher"].outputs[keys.PUSHED_MODEL_KEY][0]["metadata"]["pushed"] == 0.0  # already the served model
    assert len(os.listdir(root / "serving")) == 1


def test_the_compiled_resolver_queries_find_the_latest_blessed_model(tmp_path):
    """The two filters TFX compiles the Resolver to, run over a store where the newest model was not blessed."""
    spec_file = tmp_path / "pipeline.json"
    assert run_cli(["kubeflow", "--image", "i", "--pipeline-root", str(tmp_path), "--out", str(spec_file)]).code == 0
    spec = json.loads(spec_file.read_text())["pipelineSpec"]
    model_type = {"instanceSchema": "title: tfx.Model\ntype: object\n"}
    blessing_type = {"instanceSchema": "title: tfx.ModelBlessing\ntype: object\n"}
    backend = LocalBackend(
        root=str(tmp_path),
        artifacts=[
            {"name": "m1", "uri": "u1", "type": model_type, "metadata": {}},
            {"name": "b1", "uri": "ub1", "type": blessing_type, "metadata": {"blessed": 1.0, "current_model_id": "m1"}},
            {"name": "m2", "uri": "u2", "type": model_type, "metadata": {}},
            {"name": "b2", "uri": "ub2", "type": blessing_type, "metadata": {"blessed": 0.0, "current_model_id": "m2"}},
        ],
    )
    executors, components = spec["deploymentSpec"]["executors"], spec["components"]

    def resolver(task):
        return executors[components[task]["executorLabel"]]["resolver"]

    blessings = backend._resolve(resolver(f"{BASELINE_RESOLVER}-model-blessing-resolver"), {})
    assert [a["name"] for a in blessings["model_blessing"]] == ["b1"]
    models = backend._resolve(resolver(MODEL_RESOLVER), {"input": blessings["model_blessing"]})
    assert [a["name"] for a in models["model"]] == ["m1"]
    with pytest.raises(ValueError, match="unsupported resolver filter clause"):
        backend._resolve({"outputArtifactQueries": {"model": {"filter": "create_time > 0"}}}, {})


def test_dag_order_puts_producers_first_and_refuses_a_cycle():
    tasks = {
        "b": {"inputs": {"artifacts": {"x": {"taskOutputArtifact": {"producerTask": "a"}}}}},
        "a": {},
        "c": {"dependentTasks": ["b"]},
        "d": {},
        "e": {"dependentTasks": ["a", "d"]},
    }
    assert dag_levels(tasks) == [["a", "d"], ["b", "e"], ["c"]]  # a wave's tasks may run at the same time
    assert dag_order(tasks) == ["a", "d", "b", "e", "c"]
    with pytest.raises(ValueError, match="cycle"):
        dag_order({"a": {"dependentTasks": ["b"]}, "b": {"dependentTasks": ["a"]}})
