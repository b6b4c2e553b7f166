"""The TFX pipeline end to end on the tiny profile (SQLite ML Metadata; teachers side by side with --jobs 2), its
cache, blessing against the served model, and bad data.

The session's tiny `hetcomp run` (conftest.py) is rerun three times into the same directory (unchanged, with an
unreachable threshold, with a student that cannot learn); the tests read what the runs left behind (report.json,
ML Metadata, the artifacts, the pushed SavedModel) and run the next steps it printed.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import multiprocessing
import os
import shlex
import subprocess
from types import SimpleNamespace

import numpy as np
import portpicker
import pytest
import tensorflow as tf
from tensorflow_data_validation.utils import stats_util
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.dsl.components.base import executor_spec

from components import keys, storage
from components.artifacts import METRICS_FILE, STUDENT_DIR
from components.data_gate import require_valid_examples
from components.ingestion.component import InteractionExampleGen, data_fingerprint
from components.interaction_examples import EXAMPLES_FILE, SPLITS
from components.ranking_evaluator.executor import BLESSED_KEY
from hetcomp_tf.config import METRIC_KS, TEACHER_NAMES, DataConfig, DistillConfig, Profile, from_dict, get_profile
from hetcomp_tf.distill.student import load_student
from hetcomp_tf.errors import HetCompError
from pipeline.configs import DEFAULT_MIN_SHARE, PipelineConfig
from pipeline.local_runner import latest_run
from pipeline.pipeline import BASELINE_RESOLVER, create_components, create_pipeline
from tests.helpers import anomalies_artifact, run_cli, wait_for_line

pytestmark = pytest.mark.slow  # end to end (training, processes, servers): `make test`, not `make check`

METRIC_NAMES = {f"{m}@{k}" for k in METRIC_KS for m in ("recall", "ndcg")}
NODES = {
    "InteractionExampleGen",
    "StatisticsGen",
    "SchemaGen",
    "ExampleValidator",
    "KnowledgeBuilder",
    "StudentTrainer",
    "RankingEvaluator",
    "Pusher",
    BASELINE_RESOLVER,
    *(f"TeacherTrainer.{t}" for t in TEACHER_NAMES),
}
UPSTREAM = NODES - {BASELINE_RESOLVER, "RankingEvaluator", "Pusher"}  # what a comparison with the served model reuses


def _rerun(argv) -> SimpleNamespace:
    result = run_cli(argv)
    assert result.code == 0, result.stderr[-3000:]
    out = argv[argv.index("--out") + 1]
    result.report = json.loads(open(os.path.join(out, "report.json")).read())
    result.nodes = latest_run(os.path.join(out, "metadata.sqlite"))
    return result


@pytest.fixture(scope="module")
def runs(tiny_pipeline):
    """The tiny run, its unchanged rerun, a rerun with an unreachable blessing threshold, and one whose student
    cannot learn (learning rate 1e-9: it stays at its random initialisation) with the value threshold off."""
    out = tiny_pipeline.out
    argv = ["run", "--data", "synthetic", "--profile", "tiny", "--out", str(out)]
    second = _rerun(argv)
    strict = _rerun([*argv, "--min-share", "1000"])  # no student reaches 1000 x the ensemble
    worse = _rerun([*argv, "--min-share", "0", "--set", "learning_rate=1e-9"])
    return SimpleNamespace(out=out, first=tiny_pipeline, second=second, strict=strict, worse=worse)


@pytest.mark.slow
def test_report_compares_every_teacher_the_ensemble_and_the_student(runs):
    report = runs.first.report
    assert set(report["methods"]) == {f"teacher:{t}" for t in TEACHER_NAMES} | {"ensemble", "student:hetcomp"}
    assert report["dataset"] == "synthetic"
    for name, method in report["methods"].items():
        test = method["test"]
        assert set(test) == METRIC_NAMES, name
        assert all(0.0 <= v <= 1.0 for v in test.values()), (name, test)
        assert test["recall@10"] <= test["recall@20"] <= test["recall@50"], (name, test)
    # The evaluator scored the exported SavedModel; the trainer's own numbers come from the in-memory student.
    trained = storage.read_json(runs.first.nodes["StudentTrainer"].uri(keys.MODEL_RUN_KEY), METRICS_FILE)
    for metric, value in trained["test"].items():
        assert report["methods"]["student:hetcomp"]["test"][metric] == pytest.approx(value, abs=1e-5), metric
    student, ensemble = (report["methods"][m]["test"]["recall@50"] for m in ("student:hetcomp", "ensemble"))
    assert report["blessed"] == (student >= DEFAULT_MIN_SHARE["tiny"] * ensemble)
    assert report["blessed"], "the tiny student should clear the lenient tiny threshold"
    assert report["blessing"]["baseline"] is None  # nothing served yet: blessed on the value threshold alone
    assert report["served_model"] == report["pushed_model"] is not None
    assert "tensorboard --logdir_spec" in runs.first.stdout and "student-hetcomp:" in runs.first.stdout
    assert list(report["teachers"]) == list(TEACHER_NAMES)
    for name, ending in report["teachers"].items():  # how each teacher's training ended, a capped one named
        assert ending["converged"] == (ending["ended_by"] == "early stop") and ending["epochs"] >= 1, name
        assert report["methods"][f"teacher:{name}"]["ended_by"] == ending["ended_by"], name
        capped = f"teacher:{name} (capped at {ending['epochs']} epochs)"
        assert (capped in runs.first.stdout) == (not ending["converged"]), name
    assert "estimate: ~" in runs.first.stderr  # printed before training, from the committed fits


@pytest.mark.slow
def test_pushed_model_loads_and_serves_the_trained_student(runs, tiny_dataset):
    pushed = runs.first.report["pushed_model"]
    assert os.path.dirname(pushed) == str(runs.out / "serving") and os.path.basename(pushed).isdigit()
    users = tiny_dataset.user_vocab[:5].astype(str)
    served = tf.saved_model.load(pushed).signatures["serving_default"](user_id=tf.constant(users), k=tf.constant(10))
    items = served["item_ids"].numpy().astype(str)
    scores = served["scores"].numpy()
    assert items.shape == scores.shape == (5, 10)
    assert np.all(np.diff(scores, axis=1) <= 0)

    model_uri = runs.first.nodes["StudentTrainer"].uri(keys.MODEL_KEY)
    student = load_student(os.path.join(model_uri, STUDENT_DIR))
    all_scores = student.score_all(tf.range(5)).numpy()
    for u in range(5):
        train = set(tiny_dataset.train.row(u).tolist())
        served_items = [int(np.flatnonzero(tiny_dataset.item_vocab == i)[0]) for i in items[u]]
        assert not train & set(served_items)
        np.testing.assert_allclose(scores[u], all_scores[u, served_items], rtol=1e-5, atol=1e-5)
        unseen = np.array([i for i in range(tiny_dataset.n_items) if i not in train])
        best = np.sort(all_scores[u, unseen])[::-1][:10]
        np.testing.assert_allclose(scores[u], best, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_the_printed_next_steps_serve_the_model_and_answer_a_real_user(runs, tmp_path):
    """`serve` and `query` exactly as printed (on a free port instead of 8500, which may be taken here)."""
    first = runs.first
    steps = first.report["next_steps"]
    assert [line.strip() for line in first.stdout.splitlines()[-len(steps) :]] == steps
    serve, query, tensorboard = steps
    assert serve.split()[1:] == ["serve", "--model", str(runs.out / "serving"), "--port", "8500"]
    assert tensorboard.split()[1] == "--logdir_spec"
    user = shlex.split(query)[shlex.split(query).index("--user") + 1]
    data = storage.read_dataset(first.nodes["InteractionExampleGen"].uri(keys.DATASET_KEY))
    assert user in data.user_vocab
    port = str(portpicker.pick_unused_port())
    server = subprocess.Popen(
        shlex.split(serve)[:-1] + [port], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    try:
        wait_for_line(server, "serving ", 120)
        answer = subprocess.run(
            shlex.split(query.replace(":8500", f":{port}")), capture_output=True, text=True, timeout=120
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
        server.stderr.close()
    assert answer.returncode == 0, answer.stderr
    recommended = json.loads(answer.stdout.splitlines()[0])
    assert recommended["user"] == user and len(recommended["item_ids"]) == 10
    assert set(recommended["item_ids"]) <= set(data.item_vocab)


@pytest.mark.slow
def test_examples_are_the_dataset_and_statistics_saw_them(runs):
    nodes = runs.first.nodes
    data = storage.read_dataset(nodes["InteractionExampleGen"].uri(keys.DATASET_KEY))
    examples_uri = nodes["InteractionExampleGen"].uri(keys.EXAMPLES_KEY)
    spec = {
        "user": tf.io.FixedLenFeature([], tf.int64),
        "item": tf.io.FixedLenFeature([], tf.int64),
        "user_id": tf.io.FixedLenFeature([], tf.string),
        "item_id": tf.io.FixedLenFeature([], tf.string),
    }
    statistics_uri = nodes["StatisticsGen"].uri("statistics")
    for split in SPLITS:
        path = os.path.join(examples_uri, f"Split-{split}", EXAMPLES_FILE)
        serialized = tf.concat(list(tf.data.TFRecordDataset(path, "GZIP").batch(1 << 16)), axis=0)
        records = {key: value.numpy() for key, value in tf.io.parse_example(serialized, spec).items()}
        csr = data.split(split)
        assert sorted(zip(records["user"].tolist(), records["item"].tolist())) == sorted(
            zip(csr.row_ids().tolist(), csr.indices.tolist())
        ), split
        np.testing.assert_array_equal(records["user_id"].astype(str), data.user_vocab[records["user"]])
        np.testing.assert_array_equal(records["item_id"].astype(str), data.item_vocab[records["item"]])
        split_stats = stats_util.load_stats_binary(os.path.join(statistics_uri, f"Split-{split}", "FeatureStats.pb"))
        assert split_stats.datasets[0].num_examples == csr.nnz, split


@pytest.mark.slow
def test_every_component_reports_progress_and_the_rerun_is_served_from_the_cache(runs):
    first, second = runs.first, runs.second
    assert set(first.nodes) == NODES == set(second.nodes)
    assert all(run.state == "complete" for run in first.nodes.values())
    assert {n for n, r in second.nodes.items() if r.state == "cached"} == UPSTREAM, {
        n: r.state for n, r in second.nodes.items()
    }
    assert not first.report["all_cached"] and not second.report["all_cached"]
    for node in UPSTREAM:
        assert f"component {node} started" in first.stderr
        assert f"component {node} finished in" in first.stderr
        assert f"component {node} cached in" in second.stderr
        assert second.report["components"][node]["state"] == "cached"
    for node in NODES - UPSTREAM:
        assert f"component {node} finished in" in first.stderr and f"component {node} finished in" in second.stderr
    for name, log_dir in first.report["tensorboard_logs"].items():
        assert glob.glob(os.path.join(log_dir, "**", "events.out.tfevents.*"), recursive=True), name


@pytest.mark.slow
def test_teachers_in_worker_processes_train_as_they_do_one_after_another(tmp_path, tiny_pipeline, monkeypatch):
    from components.knowledge_builder import executor as knowledge_executor

    workers_alive, build = [], knowledge_executor.Executor.Do

    def counting_build(self, *args, **kwargs):  # KnowledgeBuilder runs alone, in this process
        workers_alive.append(len(multiprocessing.active_children()))
        return build(self, *args, **kwargs)

    monkeypatch.setattr(knowledge_executor.Executor, "Do", counting_build)
    out = tmp_path / "jobs2"
    result = run_cli(
        ["run", "--data", "synthetic", "--profile", "tiny", "--teachers", "MF,GNN", "--jobs", "2", "--out", str(out)]
    )
    assert result.code == 0, result.stderr[-3000:]
    assert workers_alive == [0]  # the teachers' workers ended before it: their memory is not held beside it
    nodes = latest_run(str(out / "metadata.sqlite"))
    assert all(run.state == "complete" for run in nodes.values()), {n: r.state for n, r in nodes.items()}
    for teacher in ("MF", "GNN"):  # the two teachers, ready together, ran side by side
        assert f"component TeacherTrainer.{teacher} started (in a worker process)" in result.stderr
    assert "component KnowledgeBuilder started\n" in result.stderr  # alone: in this process, on every core
    report = json.loads((out / "report.json").read_text())
    assert report["pushed_model"] is not None
    for teacher in ("MF", "GNN"):
        # Each teacher trains on its own whatever else runs; a one-thread worker against the session's run on
        # every core can only change the order of float sums (seen equal here; 1e-6 on metrics in [0, 1]).
        ours, sequential = (r["methods"][f"teacher:{teacher}"]["test"] for r in (report, tiny_pipeline.report))
        assert ours == pytest.approx(sequential, abs=1e-6), teacher


@pytest.mark.slow
def test_teachers_from_run_takes_the_pipelines_teachers_without_training_them(runs, tmp_path):
    """The latest run in runs.out served its teachers from the cache: `hetcomp teachers --from-run` takes those
    executions' artifacts, trains nothing, and its ensemble is the one the pipeline's KnowledgeBuilder measured."""
    out = tmp_path / "teachers"
    argv = ["teachers", "--data", "synthetic", "--profile", "tiny", "--from-run", str(runs.out), "--out", str(out)]
    result = run_cli(argv)
    assert result.code == 0, result.stderr[-3000:]
    assert f"taken from {runs.out}: {', '.join(TEACHER_NAMES)}; to train: none" in result.stderr
    summary = json.loads((out / "teachers.json").read_text())
    for teacher in TEACHER_NAMES:
        trajectory_uri = runs.worse.nodes[f"TeacherTrainer.{teacher}"].uri(keys.TRAJECTORY_KEY)
        trained = storage.read_json(trajectory_uri, METRICS_FILE)
        assert summary["teachers"][teacher]["train_seconds"] == trained["train_seconds"], teacher  # not retrained
        ranked = np.load(os.path.join(trajectory_uri, "trajectory", "rankings.npy"))
        np.testing.assert_array_equal(np.load(out / "trajectories" / teacher / "rankings.npy"), ranked)
    # The same function over the same trajectories and split: equal up to float summation order.
    assert summary["ensemble"]["test"] == pytest.approx(runs.worse.report["methods"]["ensemble"]["test"], abs=1e-9)

    other = run_cli([*argv[:-1], str(tmp_path / "other"), "--teacher-set", "MF.dim=3"])
    assert other.code == 2
    assert other.stderr.strip().endswith(
        "(TeacherTrainer.MF): MF was trained with dim=16; profile 'tiny' (with --teacher-set) has dim=3"
    )
    assert not (tmp_path / "other").exists()  # nothing half-written
    empty = run_cli([*argv[:6], str(tmp_path), "--out", str(tmp_path / "none")])
    assert empty.code == 2 and "no metadata.sqlite there; give the --out of a `hetcomp run`" in empty.stderr


@pytest.mark.slow
def test_the_unchanged_rerun_compares_the_served_model_with_itself_and_pushes_nothing_new(runs):
    """The cached StudentTrainer's model is the served one: the Resolver hands it back as the baseline, the change
    is exactly 0, it is blessed, and the Pusher does not copy it to a second version."""
    first, second = runs.first, runs.second
    model_uri = first.nodes["StudentTrainer"].uri(keys.MODEL_KEY)
    change = second.report["blessing"]["baseline"]
    assert change["model"] == model_uri == second.nodes["StudentTrainer"].uri(keys.MODEL_KEY)
    assert change["candidate"] == change["baseline"] == first.report["methods"]["student:hetcomp"]["valid"]["recall@50"]
    assert change["diff"] == 0.0 and change["passed"] and second.report["blessed"]
    assert second.report["pushed_model"] is None and second.report["served_model"] == first.report["pushed_model"]
    assert os.listdir(runs.out / "serving") == [os.path.basename(first.report["pushed_model"])]


@pytest.mark.slow
def test_an_unblessed_student_is_not_pushed(runs):
    report = runs.strict.report
    assert not report["blessed"] and report["pushed_model"] is None
    assert report["blessing"]["required"] == pytest.approx(1000 * report["blessing"]["ensemble"])
    # valid decides, for the student and the ensemble alike
    assert report["blessing"]["ensemble"] == report["methods"]["ensemble"]["valid"]["recall@50"]
    assert report["blessing"]["student"] == report["methods"]["student:hetcomp"]["valid"]["recall@50"]
    assert report["blessing"]["baseline"]["passed"]  # the served model itself: only the value threshold failed
    rerun = {node for node, c in report["components"].items() if c["state"] == "complete"}
    assert rerun == NODES - UPSTREAM  # only the threshold changed: the rest comes from the cache
    assert os.listdir(runs.out / "serving") == [os.path.basename(runs.first.report["pushed_model"])]
    assert report["served_model"] == runs.first.report["pushed_model"]


@pytest.mark.slow
def test_a_candidate_worse_than_the_served_model_is_not_pushed(runs):
    first, worse = runs.first, runs.worse
    verdict = worse.report["blessing"]
    served_valid = first.report["methods"]["student:hetcomp"]["valid"]["recall@50"]
    candidate_valid = worse.report["methods"]["student:hetcomp"]["valid"]["recall@50"]
    # the value threshold (share 0 of the ensemble) passes; the comparison with the served student fails it
    assert verdict["min_share_of_ensemble"] == 0.0 and verdict["student"] > 0.0
    change = verdict["baseline"]
    assert (
        change["model"]
        == first.nodes["StudentTrainer"].uri(keys.MODEL_KEY)
        != worse.nodes["StudentTrainer"].uri(keys.MODEL_KEY)
    )
    assert change["baseline"] == pytest.approx(served_valid, abs=1e-6) and change["candidate"] == candidate_valid
    assert change["ratio"] == pytest.approx((candidate_valid - served_valid) / served_valid)
    assert change["ratio"] < change["relative"] == -0.05 and not change["passed"]
    assert not worse.report["blessed"] and worse.report["pushed_model"] is None
    blessing_artifact = worse.nodes["RankingEvaluator"].outputs[keys.BLESSING_KEY][0]
    assert blessing_artifact.custom_properties[BLESSED_KEY].int_value == 0
    assert blessing_artifact.custom_properties["baseline_model"].string_value == change["model"]
    assert worse.nodes["Pusher"].outputs[keys.PUSHED_MODEL_KEY][0].custom_properties["pushed"].int_value == 0
    assert os.listdir(runs.out / "serving") == [os.path.basename(first.report["pushed_model"])]
    assert worse.report["served_model"] == first.report["pushed_model"]
    assert "FAILED" in worse.stdout and "NOT blessed" in worse.stdout


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("empty.csv", "", "is empty"),
        ("broken.dat", "2 10 11\n3 5 6\n", "line 2"),
    ],
)
def test_bad_data_fails_at_ingestion_and_pushes_nothing(tmp_path, name, content, expected):
    data = tmp_path / name
    data.write_text(content)
    out = tmp_path / "out"
    result = run_cli(["run", "--data", str(data), "--profile", "tiny", "--out", str(out)])
    assert result.code == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("hetcomp: error: ") and str(data) in last and expected in last, last
    assert "component InteractionExampleGen failed" in result.stderr
    assert "Traceback" not in result.stderr
    nodes = latest_run(str(out / "metadata.sqlite"))
    assert {n: r.state for n, r in nodes.items()} == {"InteractionExampleGen": "failed"}
    assert not (out / "serving").exists() and not (out / "report.json").exists()


def test_a_changed_data_file_is_not_served_from_the_cache(tmp_path):
    data = tmp_path / "log.csv"
    data.write_text("user,item\nu1,i1\n")
    before = InteractionExampleGen(data=str(data), data_format=None, data_config=DataConfig())
    data.write_text("user,item\nu1,i1\nu1,i2\n")
    after = InteractionExampleGen(data=str(data), data_format=None, data_config=DataConfig())
    assert before.exec_properties["data_fingerprint"] != after.exec_properties["data_fingerprint"]
    assert "total_bytes:0" in data_fingerprint(str(tmp_path / "missing.csv"))  # fails later, at ingestion


def test_example_validator_anomalies_stop_training(tmp_path):
    clean = anomalies_artifact(
        tmp_path / "clean", {"train": anomalies_pb2.Anomalies(), "valid": anomalies_pb2.Anomalies()}
    )
    require_valid_examples([clean])
    bad = anomalies_pb2.Anomalies()
    bad.anomaly_info["item"].short_description = "Out-of-range values"
    broken = anomalies_artifact(tmp_path / "broken", {"train": anomalies_pb2.Anomalies(), "valid": bad})
    with pytest.raises(HetCompError, match=r"1 anomalies .*valid/item: Out-of-range values"):
        require_valid_examples([broken])


def test_artifact_directories_round_trip_through_remote_storage():
    with storage.writable_dir("ram://hetcomp-test/artifact") as directory:
        assert storage.is_local(directory)
        os.makedirs(os.path.join(directory, "sub"))
        with open(os.path.join(directory, "sub", "values.txt"), "w") as f:
            f.write("1 2 3")
    with storage.readable_dir("ram://hetcomp-test/artifact") as directory:
        with open(os.path.join(directory, "sub", "values.txt")) as f:
            assert f.read() == "1 2 3"
    storage.write_json("ram://hetcomp-test/metrics", METRICS_FILE, {"methods": {"a": {"test": {"recall@50": 0.5}}}})
    assert storage.read_json("ram://hetcomp-test/metrics", METRICS_FILE)["methods"]["a"]["test"]["recall@50"] == 0.5


def test_the_report_says_how_each_teacher_ended_and_its_table_names_a_capped_one(tmp_path, capsys):
    from hetcomp_tf.commands.run import print_summary
    from pipeline.report import teacher_ending

    storage.write_json(str(tmp_path / "MF"), METRICS_FILE, {"teacher": "MF", "epochs": 6, "ended_by": "epoch cap"})
    trainer = SimpleNamespace(uri={keys.TRAJECTORY_KEY: str(tmp_path / "MF")}.get)
    assert teacher_ending(trainer) == {"epochs": 6, "ended_by": "epoch cap", "converged": False}
    metrics = {"test": {name: 0.1 for name in METRIC_NAMES}}
    report = {
        "methods": {name: metrics for name in ("teacher:MF", "teacher:GNN", "ensemble", "student:hetcomp")},
        "teachers": {"MF": teacher_ending(trainer), "GNN": {"epochs": 3, "ended_by": "early stop", "converged": True}},
        "blessing": {
            "metric": "recall@50",
            "student": 0.1,
            "required": 0.05,
            "min_share_of_ensemble": 0.5,
            "ensemble": 0.1,
            "baseline": None,
        },
        "blessed": True,
        "pushed_model": "serving/1",
        "warm_start": {},
        "components": {},
        "next_steps": [],
    }
    print_summary(report)
    rows = [line.split("  ")[0].strip() for line in capsys.readouterr().out.splitlines()[2:6]]
    assert rows == ["teacher:MF (capped at 6 epochs)", "teacher:GNN", "ensemble", "student:hetcomp"]
    del report["teachers"]  # a report written before it said how teachers ended
    print_summary(report)
    assert "capped" not in capsys.readouterr().out


def test_configs_survive_json_execution_properties():
    for name in ("tiny", "paper"):
        profile = get_profile(name)
        as_json = json.loads(json.dumps(profile.to_dict()))
        assert from_dict(Profile, as_json) == profile
        assert from_dict(DistillConfig, as_json["distill"]) == profile.distill
    with pytest.raises(HetCompError, match="unknown field"):
        from_dict(DistillConfig, {"methd": "hetcomp"})


def test_split_protocol_and_beam_options_reach_the_ingestion(tmp_path):
    from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

    config = PipelineConfig(
        out_dir=str(tmp_path),
        data="synthetic",
        profile="tiny",
        split_protocol="per_user",
        beam_pipeline_args=("--runner=FlinkRunner", "--direct_num_workers=2"),
    )
    assert config.data_config() == dataclasses.replace(get_profile("tiny").data, split_protocol="per_user")
    options = PipelineOptions(create_pipeline(config).beam_pipeline_args)
    assert options.view_as(StandardOptions).runner == "FlinkRunner"
    assert options.view_as(DirectOptions).direct_num_workers == 2
    ingestion = next(c for c in create_components(config) if c.id == "InteractionExampleGen")
    assert json.loads(ingestion.exec_properties["data_config"])["split_protocol"] == "per_user"
    assert isinstance(ingestion.executor_spec, executor_spec.BeamExecutorSpec)
    assert PipelineConfig(out_dir=str(tmp_path), profile="paper").data_config().split_protocol == "authors"
