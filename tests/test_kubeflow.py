"""`hetcomp kubeflow` compiles the same DAG to a KFP v2 job spec: every component a task on the given image,
the teachers independent of each other, custom artifact types named, and the Dockerfile's entrypoint the one
the tasks are launched with."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

from components.keys import trajectory_key
from hetcomp_tf.cli import main
from hetcomp_tf.config import DEFAULT_PROFILE, TEACHER_NAMES
from hetcomp_tf.data.datafiles import CITEULIKE_SHA256
from pipeline.configs import DEFAULT_CHANGE_RELATIVE, DEFAULT_MIN_SHARE
from pipeline.pipeline import BASELINE_RESOLVER

REPO = Path(__file__).resolve().parents[1]
KUBEFLOW_TFX_CMD = list(kubeflow_v2_dag_runner.KUBEFLOW_TFX_CMD)  # the container command of every task
IMAGE = "registry.example.com/hetcomp-tf:1.0"
ROOT = "gs://hetcomp-test-bucket/root"
TEACHER_TASKS = {f"TeacherTrainer.{t}" for t in TEACHER_NAMES}
RESOLVER_TASKS = {f"{BASELINE_RESOLVER}-model-blessing-resolver", f"{BASELINE_RESOLVER}-model-resolver"}
CONTAINER_TASKS = {
    "InteractionExampleGen",
    "StatisticsGen",
    "SchemaGen",
    "ExampleValidator",
    "KnowledgeBuilder",
    "StudentTrainer",
    "RankingEvaluator",
    "Pusher",
    *TEACHER_TASKS,
}
TASKS = CONTAINER_TASKS | RESOLVER_TASKS


def compile_spec(tmp_path, *extra) -> tuple[int, str, Path]:
    out = tmp_path / "pipeline.json"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["kubeflow", "--out", str(out), "--image", IMAGE, *extra])
    return code, err.getvalue(), out


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    code, err, out = compile_spec(
        tmp_path_factory.mktemp("kfp"),
        "--pipeline-root",
        ROOT,
        "--method",
        "rrd",
        "--set",
        "epochs=7",
        "--set",
        "tau=2.5",
        "--min-rating",
        "4",
    )
    assert code == 0, err
    return json.loads(out.read_text())["pipelineSpec"]


def test_every_component_is_a_task_on_the_image(spec):
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == TASKS
    executors = spec["deploymentSpec"]["executors"]
    for name in CONTAINER_TASKS:
        task = tasks[name]
        executor = executors[spec["components"][task["componentRef"]["name"]]["executorLabel"]]
        assert executor["container"]["image"] == IMAGE, name
        assert executor["container"]["command"] == KUBEFLOW_TFX_CMD, name
    custom = {
        executors[spec["components"][tasks[t]["componentRef"]["name"]]["executorLabel"]]["container"]["args"][1]
        for t in (
            "InteractionExampleGen",
            "TeacherTrainer.MF",
            "KnowledgeBuilder",
            "StudentTrainer",
            "RankingEvaluator",
        )
    }
    assert custom == {
        "components.ingestion.executor.Executor",
        "components.teacher_trainer.executor.Executor",
        "components.knowledge_builder.executor.Executor",
        "components.student_trainer.executor.Executor",
        "components.ranking_evaluator.executor.Executor",
    }


def test_the_served_model_is_resolved_as_the_evaluators_baseline(spec):
    """TFX compiles the LatestBlessedModelStrategy Resolver to two ML Metadata queries the orchestrator runs."""
    tasks, executors = spec["root"]["dag"]["tasks"], spec["deploymentSpec"]["executors"]

    def query(task, key):
        label = spec["components"][tasks[task]["componentRef"]["name"]]["executorLabel"]
        return executors[label]["resolver"]["outputArtifactQueries"][key]["filter"]

    blessing_task, model_task = sorted(RESOLVER_TASKS)
    assert 'schema_title="tfx.ModelBlessing"' in query(blessing_task, "model_blessing")
    assert "metadata.blessed.number_value=1" in query(blessing_task, "model_blessing")
    assert "metadata['current_model_id']" in query(model_task, "model")
    source = tasks["RankingEvaluator"]["inputs"]["artifacts"]["baseline_model"]["taskOutputArtifact"]
    assert source == {"producerTask": model_task, "outputArtifactKey": "model"}
    pusher = spec["components"][tasks["Pusher"]["componentRef"]["name"]]["executorLabel"]
    assert executors[pusher]["container"]["args"][1] == "components.pusher.executor.Executor"


def test_teachers_run_in_parallel_and_feed_the_knowledge_builder(spec):
    tasks = spec["root"]["dag"]["tasks"]
    for name in TEACHER_TASKS:
        assert set(tasks[name]["dependentTasks"]) == {"InteractionExampleGen", "ExampleValidator"}, name
    inputs = tasks["KnowledgeBuilder"]["inputs"]["artifacts"]
    for teacher in TEACHER_NAMES:
        source = inputs[trajectory_key(teacher)]["taskOutputArtifact"]
        assert source == {"producerTask": f"TeacherTrainer.{teacher}", "outputArtifactKey": "trajectory"}
    schema = spec["components"][tasks["KnowledgeBuilder"]["componentRef"]["name"]]["outputDefinitions"]
    assert "title: components.KnowledgeArtifact" in schema["artifacts"]["knowledge"]["artifactType"]["instanceSchema"]


def test_settings_reach_the_tasks(spec):
    tasks = spec["root"]["dag"]["tasks"]

    def parameter(task, key):
        return tasks[task]["inputs"]["parameters"][key]["runtimeValue"]["constantValue"]["stringValue"]

    assert json.loads(parameter("InteractionExampleGen", "data_config"))["min_rating"] == 4.0
    # CiteULike (the default data) is fingerprinted by its sha256: compiling needs no local copy, a task fetches it
    assert parameter("InteractionExampleGen", "data") == "citeulike"
    assert parameter("InteractionExampleGen", "data_fingerprint") == f"citeulike sha256:{CITEULIKE_SHA256}"
    custom = json.loads(parameter("StudentTrainer", "custom_config"))
    distill_config = custom["distill_config"]
    assert (distill_config["method"], distill_config["epochs"], distill_config["tau"]) == ("rrd", 7, 2.5)
    assert (custom["workers"], distill_config["distribute"]) == (1, "none")
    tau = tasks["KnowledgeBuilder"]["inputs"]["parameters"]["tau"]["runtimeValue"]["constantValue"]
    assert tau["doubleValue"] == 2.5
    thresholds = json.loads(parameter("RankingEvaluator", "thresholds"))
    assert thresholds["min_share_of_ensemble"] == DEFAULT_MIN_SHARE[DEFAULT_PROFILE]
    assert (thresholds["change_relative"], thresholds["change_absolute"]) == (DEFAULT_CHANGE_RELATIVE, None)
    assert json.loads(parameter("Pusher", "push_destination"))["filesystem"]["base_directory"] == f"{ROOT}/serving"
    assert set(tasks["Pusher"]["inputs"]["artifacts"]) == {"model", "model_blessing"}


def test_change_thresholds_reach_the_evaluator(tmp_path):
    code, err, out = compile_spec(
        tmp_path, "--pipeline-root", ROOT, "--change-relative", "none", "--change-absolute", "-0.01"
    )
    assert code == 0, err
    task = json.loads(out.read_text())["pipelineSpec"]["root"]["dag"]["tasks"]["RankingEvaluator"]
    thresholds = json.loads(task["inputs"]["parameters"]["thresholds"]["runtimeValue"]["constantValue"]["stringValue"])
    assert (thresholds["change_relative"], thresholds["change_absolute"]) == (None, -0.01)


def test_student_workers_reach_the_student_trainer(tmp_path):
    """KFP v2 runs a task as one pod: the spec records the request (the StudentTrainer's workers and its
    multi-worker strategy), and its run_fn checks that the cluster TF_CONFIG describes has that many workers."""
    code, err, out = compile_spec(tmp_path, "--pipeline-root", ROOT, "--student-workers", "3")
    assert code == 0, err
    task = json.loads(out.read_text())["pipelineSpec"]["root"]["dag"]["tasks"]["StudentTrainer"]
    custom = json.loads(task["inputs"]["parameters"]["custom_config"]["runtimeValue"]["constantValue"]["stringValue"])
    assert (custom["workers"], custom["distill_config"]["distribute"]) == (3, "multi_worker")


def test_teacher_workers_reach_every_teacher_trainer(tmp_path):
    code, err, out = compile_spec(tmp_path, "--pipeline-root", ROOT, "--teacher-workers", "2")
    assert code == 0, err
    tasks = json.loads(out.read_text())["pipelineSpec"]["root"]["dag"]["tasks"]
    teachers = {name: task for name, task in tasks.items() if name.startswith("TeacherTrainer.")}
    assert len(teachers) == len(TEACHER_NAMES)
    for task in teachers.values():
        parameters = task["inputs"]["parameters"]
        config = json.loads(parameters["teacher_config"]["runtimeValue"]["constantValue"]["stringValue"])
        assert (parameters["workers"]["runtimeValue"]["constantValue"]["intValue"], config["distribute"]) == (
            "2",
            "multi_worker",
        )
    custom = json.loads(
        tasks["StudentTrainer"]["inputs"]["parameters"]["custom_config"]["runtimeValue"]["constantValue"]["stringValue"]
    )
    assert custom["workers"] == 1 and custom["distill_config"]["distribute"] == "none"


def test_sharded_data_is_ingested_with_beam_on_the_runner_given(tmp_path):
    """--split-protocol per_user makes the ingestion a Beam executor: its container gets the Beam options, the ones
    given after the DirectRunner defaults, which they override."""
    for k in range(2):
        (tmp_path / f"part-{k}.csv").write_text("u1,i1\n")
    code, err, out = compile_spec(
        tmp_path,
        "--pipeline-root",
        ROOT,
        "--data",
        str(tmp_path / "part-*.csv"),
        "--split-protocol",
        "per_user",
        "--beam-arg=--runner=DataflowRunner",
    )
    assert code == 0, err
    spec = json.loads(out.read_text())["pipelineSpec"]
    parameters = spec["root"]["dag"]["tasks"]["InteractionExampleGen"]["inputs"]["parameters"]
    data_config = json.loads(parameters["data_config"]["runtimeValue"]["constantValue"]["stringValue"])
    assert data_config["split_protocol"] == "per_user"
    assert "num_files:2" in parameters["data_fingerprint"]["runtimeValue"]["constantValue"]["stringValue"]
    args = spec["deploymentSpec"]["executors"]["InteractionExampleGen_executor"]["container"]["args"]
    assert args[-4:] == [
        "--runner=DirectRunner",
        "--direct_num_workers=1",
        "--direct_running_mode=in_memory",
        "--runner=DataflowRunner",
    ]


def test_beam_knowledge_makes_the_knowledge_builder_a_beam_task_on_the_runner_given(tmp_path):
    code, err, out = compile_spec(
        tmp_path, "--pipeline-root", ROOT, "--beam-knowledge", "--beam-arg=--runner=DataflowRunner"
    )
    assert code == 0, err
    spec = json.loads(out.read_text())["pipelineSpec"]
    parameters = spec["root"]["dag"]["tasks"]["KnowledgeBuilder"]["inputs"]["parameters"]
    assert parameters["beam_build"]["runtimeValue"]["constantValue"]["intValue"] == "1"
    args = spec["deploymentSpec"]["executors"]["KnowledgeBuilder_executor"]["container"]["args"]
    assert args[-1] == "--runner=DataflowRunner"
    code, err, out = compile_spec(tmp_path / "default", "--pipeline-root", ROOT)
    parameters = json.loads(out.read_text())["pipelineSpec"]["root"]["dag"]["tasks"]["KnowledgeBuilder"]["inputs"]
    assert code == 0 and parameters["parameters"]["beam_build"]["runtimeValue"]["constantValue"]["intValue"] == "0"


def test_a_pipeline_root_is_required(tmp_path, monkeypatch):
    monkeypatch.delenv("HETCOMP_PIPELINE_ROOT", raising=False)
    code, err, out = compile_spec(tmp_path)
    assert code == 2 and "--pipeline-root" in err and not out.exists()


@pytest.mark.parametrize(
    "option, message",
    [
        (["--set", "epochs"], "expected FIELD=VALUE"),
        (["--set", "epoch=3"], "FIELD one of student_dim, epochs"),
        (["--set", "method=rrd"], "FIELD one of student_dim, epochs"),
        (["--set", "epochs=1.5"], "epochs takes an int"),
        (["--teachers", "MF,XX"], "unknown teacher 'XX'"),
        (["--method", "nope"], "unknown distillation method 'nope'"),
        (["--change-relative", "5%"], "--change-relative: '5%' is neither a number nor 'none'"),
        (["--student-workers", "0"], "student workers must be >= 1, got 0"),
        (["--teacher-workers", "0"], "teacher workers must be >= 1, got 0"),
        (
            ["--student-workers", "2", "--set", "distribute=mirrored"],
            "more than one worker needs distribute='multi_worker'",
        ),
    ],
)
def test_bad_settings_fail_with_one_line(tmp_path, option, message):
    code, err, out = compile_spec(tmp_path, "--pipeline-root", ROOT, *option)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and not out.exists()


def test_dockerfile_entrypoint_is_the_task_command():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.M)
    entrypoint = re.search(r"^ENTRYPOINT (\[.*\])$", dockerfile, re.M)
    assert entrypoint and json.loads(entrypoint.group(1)) == KUBEFLOW_TFX_CMD
    for needed in ("requirements/requirements.lock", "requirements/no-deps.txt", "uv pip install --system --no-deps ."):
        assert needed in dockerfile
