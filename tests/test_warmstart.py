"""Warm start (warmstart.py): every teacher and the student take an earlier snapshot's rows by id and keep fresh rows
for new ids; the teacher loop and the distiller start from them."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest

from hetcomp_tf.config import TEACHER_NAMES, get_profile
from hetcomp_tf.distill.loop import distill
from hetcomp_tf.distill.student import Student
from hetcomp_tf.models import build_teacher
from hetcomp_tf.teachers.training import train_teacher
from hetcomp_tf.warmstart import WarmStart, stand_in
from tests.test_models import randomize, small_cfg

pytestmark = pytest.mark.slow  # end to end (training, processes, servers): `make test`, not `make check`

TINY = get_profile("tiny")


@pytest.fixture(scope="module")
def previous(tiny_dataset):
    """An earlier snapshot's vocabularies: most of today's ids in another order, one id gone since."""
    rng = np.random.default_rng(5)
    users = np.append(rng.permutation(tiny_dataset.user_vocab)[: tiny_dataset.n_users - 30], "gone-user")
    items = np.append(rng.permutation(tiny_dataset.item_vocab)[: tiny_dataset.n_items - 20], "gone-item")
    return users, items


def rows_of(vocab, ids) -> np.ndarray:
    return np.array([int(np.flatnonzero(vocab == i)[0]) for i in ids])


def assert_warm_started(model, fresh_values, base, base_vocab, data, summary):
    """Shared ids carry the base rows, new ids the fresh model's, every other variable the base's values."""
    shared = {kind: np.intersect1d(base_vocab[kind], getattr(data, f"{kind}_vocab")) for kind in ("user", "item")}
    new = {kind: np.setdiff1d(getattr(data, f"{kind}_vocab"), base_vocab[kind]) for kind in ("user", "item")}
    axes = {variable.ref(): (axis, kind) for variable, axis, kind in model.id_axes()}
    assert len(axes) == summary["mapped"] > 0 and summary["copied"] == len(model.variables) - len(axes)
    for variable, fresh, previous in zip(model.variables, fresh_values, base.variables, strict=True):
        if variable.ref() not in axes:
            np.testing.assert_array_equal(variable.numpy(), previous.numpy())
            continue
        axis, kind = axes[variable.ref()]
        vocab = getattr(data, f"{kind}_vocab")
        np.testing.assert_array_equal(
            np.take(variable.numpy(), rows_of(vocab, shared[kind]), axis),
            np.take(previous.numpy(), rows_of(base_vocab[kind], shared[kind]), axis),
        )
        np.testing.assert_array_equal(
            np.take(variable.numpy(), rows_of(vocab, new[kind]), axis), np.take(fresh, rows_of(vocab, new[kind]), axis)
        )
    assert (summary["users"], summary["new_users"]) == (shared["user"].size, new["user"].size) == (370, 30)
    assert summary["fresh"] == [] and summary["new_items"] == new["item"].size > 0


@pytest.mark.parametrize("name", TEACHER_NAMES)
def test_every_teacher_takes_the_previous_rows_by_id_and_keeps_fresh_rows_for_new_ids(tiny_dataset, previous, name):
    users, items = previous
    cfg = small_cfg(name)
    base = build_teacher(name, stand_in(users, items), cfg, seed=1)
    randomize(base, seed=2)
    model = build_teacher(name, tiny_dataset, cfg, seed=3)
    fresh_values = [v.numpy() for v in model.variables]
    summary = WarmStart(base, users, items, source="base").apply(model, tiny_dataset)
    assert_warm_started(model, fresh_values, base, {"user": users, "item": items}, tiny_dataset, summary)


def test_the_student_warm_starts_and_a_changed_shape_stays_fresh(tiny_dataset, previous):
    users, items = previous
    base = Student(len(users), len(items), dim=8, seed=1)
    randomize(base, seed=2)
    student = Student(tiny_dataset.n_users, tiny_dataset.n_items, dim=8, seed=3)
    fresh_values = [v.numpy() for v in student.variables]
    summary = WarmStart(base, users, items).apply(student, tiny_dataset)
    assert_warm_started(student, fresh_values, base, {"user": users, "item": items}, tiny_dataset, summary)

    wider = Student(tiny_dataset.n_users, tiny_dataset.n_items, dim=16, seed=3)
    before = [v.numpy() for v in wider.variables]
    summary = WarmStart(base, users, items).apply(wider, tiny_dataset)
    assert summary["mapped"] == summary["copied"] == 0 and len(summary["fresh"]) == 2
    assert all(np.array_equal(v.numpy(), b) for v, b in zip(wider.variables, before))


def first_valid(history) -> float:
    return next(h["valid"]["recall@50"] for h in history if "valid" in h)


def test_a_warm_started_teacher_and_student_start_where_the_earlier_run_ended(tiny_dataset):
    """One epoch from the earlier run's model scores about its best and far above one cold epoch."""
    cfg = TINY.teachers["MF"]
    cold = train_teacher("MF", tiny_dataset, cfg, TINY.trajectory, seed=0, progress=None)
    vocab = (tiny_dataset.user_vocab, tiny_dataset.item_vocab)
    warm = train_teacher(
        "MF",
        tiny_dataset,
        dataclasses.replace(cfg, epochs=1),
        TINY.trajectory,
        seed=1,
        progress=None,
        warm_start=WarmStart(cold.teacher, *vocab, source="cold MF"),
    )
    assert cold.warm_start is None and warm.to_dict()["warm_start"]["source"] == "cold MF"
    assert first_valid(warm.history) > 0.9 * cold.valid["recall@50"] > 1.2 * first_valid(cold.history)

    student_cfg = dataclasses.replace(TINY.distill, method="wo_kd", epochs=20, eval_every=1, learning_rate=3e-3)
    cold_student = distill(tiny_dataset, None, student_cfg, progress=None)
    warm_student = distill(
        tiny_dataset,
        None,
        dataclasses.replace(student_cfg, epochs=1),
        progress=None,
        warm_start=WarmStart(cold_student.student, *vocab),
    )
    assert cold_student.warm_start is None and warm_student.warm_start["mapped"] == 2
    assert (
        first_valid(warm_student.history)
        > 0.9 * cold_student.valid["recall@50"]
        > 1.2 * first_valid(cold_student.history)
    )


# ------------------------------------------------------------------------------------------- the pipeline, twice

WARM_TEACHERS = ("MF", "DL", "AE")  # id tables only, an MLP over them, an autoencoder over items


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    """`hetcomp run --warm-start` on 80 % of every user's interactions, then on all of them, into one --out."""
    from pipeline.local_runner import latest_run
    from tests.helpers import run_cli
    from tests.test_data import synthetic_users_dat

    root = tmp_path_factory.mktemp("snapshots")
    full = synthetic_users_dat(root, n_users=400, n_items=1000)  # rare items: some first occur in the full data
    snap = run_cli(["data", "snapshot", "--in", str(full), "--out", str(root / "snap80.dat"), "--fraction", "0.8"])
    assert snap.code == 0, snap.stderr
    lines = (root / "snap80.dat").read_text().splitlines()  # the last 20 users join after the first snapshot
    (root / "snap80.dat").write_text("\n".join(lines[:-20] + ["0"] * 20) + "\n")
    out, runs = root / "out", []
    for data in (root / "snap80.dat", full):
        result = run_cli(
            [
                "run",
                "--data",
                str(data),
                "--profile",
                "tiny",
                "--teachers",
                ",".join(WARM_TEACHERS),
                "--warm-start",
                "--out",
                str(out),
            ]
        )
        assert result.code == 0, result.stderr[-3000:]
        result.report = json.loads((out / "report.json").read_text())
        result.nodes = latest_run(str(out / "metadata.sqlite"))
        runs.append(result)
    return SimpleNamespace(out=out, first=runs[0], second=runs[1])


@pytest.mark.slow
def test_the_second_snapshot_extends_the_first_ones_vocabularies(snapshots):
    from components import keys, storage

    node = "InteractionExampleGen"
    first, second = (
        storage.read_dataset(run.nodes[node].uri(keys.DATASET_KEY)) for run in (snapshots.first, snapshots.second)
    )
    np.testing.assert_array_equal(second.user_vocab[: first.n_users], first.user_vocab)
    np.testing.assert_array_equal(second.item_vocab[: first.n_items], first.item_vocab)
    assert second.train.nnz > first.train.nnz and second.n_items > first.n_items  # more data, new items
    assert set(second.user_vocab[first.n_users :]) == {str(u) for u in range(380, 400)}  # the users who joined
    props = snapshots.second.nodes[node].outputs[keys.DATASET_KEY][0].custom_properties
    assert (props["new_users"].int_value, props["new_items"].int_value) == (
        second.n_users - first.n_users,
        second.n_items - first.n_items,
    )
    assert "new_items" not in snapshots.first.nodes[node].outputs[keys.DATASET_KEY][0].custom_properties
    assert all(run.state == "complete" for run in snapshots.first.nodes.values())  # empty Resolvers do not fail


@pytest.mark.slow
def test_ml_metadata_records_each_warm_start_as_an_input_of_the_second_run(snapshots):
    """The second run's StudentTrainer execution has an INPUT event `base_model` on the first run's student, each
    TeacherTrainer one on its own first model, InteractionExampleGen one `previous_dataset` on the first dataset."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    from pipeline.local_runner import metadata_config

    store = metadata_store.MetadataStore(metadata_config(str(snapshots.out / "metadata.sqlite")))
    expected = {
        ("StudentTrainer", "model", "base_model"),
        ("InteractionExampleGen", "dataset", "previous_dataset"),
        *((f"TeacherTrainer.{t}", "model", "base_model") for t in WARM_TEACHERS),
    }
    for node, output, key in expected:
        artifact = snapshots.first.nodes[node].outputs[output][0]
        inputs = [
            e
            for e in store.get_events_by_artifact_ids([artifact.id])
            if e.type == metadata_store_pb2.Event.INPUT and e.path.steps[0].key == key
        ]
        assert len(inputs) == 1, (node, inputs)
        contexts = {c.name for c in store.get_contexts_by_execution(inputs[0].execution_id)}
        assert f"hetcomp.{node}" in contexts, contexts  # consumed by the same node ...
        run_2 = {
            c.name
            for e in store.get_events_by_artifact_ids([snapshots.second.nodes[node].outputs[output][0].id])
            if e.type == metadata_store_pb2.Event.OUTPUT
            for c in store.get_contexts_by_execution(e.execution_id)
        }
        assert contexts & run_2 - {f"hetcomp.{node}", "hetcomp"}, (contexts, run_2)  # ... in the second run
    assert snapshots.first.report["warm_start"] == {}
    assert snapshots.second.report["warm_start"] == {
        node: snapshots.first.nodes[node].uri(output) for node, output, _ in expected
    }
    assert all(run.state == "complete" for run in snapshots.second.nodes.values())


@pytest.mark.slow
def test_the_warm_started_models_start_from_the_first_runs(snapshots):
    from components import keys, storage
    from components.artifacts import METRICS_FILE

    first, second = snapshots.first.nodes, snapshots.second.nodes
    runs = [
        storage.read_json(nodes["StudentTrainer"].uri(keys.MODEL_RUN_KEY), METRICS_FILE) for nodes in (first, second)
    ]
    carried = runs[1]["warm_start"]
    assert runs[0]["warm_start"] is None and carried["source"] == first["StudentTrainer"].uri(keys.MODEL_KEY)
    assert carried["mapped"] == 2 and carried["new_items"] > 0 and carried["fresh"] == []
    print(
        f"student first valid recall@50: cold {first_valid(runs[0]['history']):.4f}, "
        f"warm {first_valid(runs[1]['history']):.4f}; first run's best {runs[0]['valid']['recall@50']:.4f}"
    )
    assert first_valid(runs[1]["history"]) > 0.9 * runs[0]["valid"]["recall@50"] > 1.2 * first_valid(runs[0]["history"])
    curves = snapshots.second.report["curves"]  # report.json's curves are the trainers' evaluations
    assert curves["student:hetcomp"] == [
        [h["epoch"], h["valid"]["recall@50"]] for h in runs[1]["history"] if "valid" in h
    ]
    for teacher in WARM_TEACHERS:
        node = f"TeacherTrainer.{teacher}"
        metrics = storage.read_json(second[node].uri(keys.TRAJECTORY_KEY), METRICS_FILE)
        assert metrics["warm_start"]["source"] == first[node].uri(keys.MODEL_KEY)
        assert metrics["warm_start"]["fresh"] == []
        assert max(value for _, value in curves[f"teacher:{teacher}"]) == metrics["valid"]["recall@50"]
        assert [epoch for epoch, _ in curves[f"teacher:{teacher}"]][-1] <= metrics["epochs"]
        assert storage.read_json(first[node].uri(keys.TRAJECTORY_KEY), METRICS_FILE)["warm_start"] is None


def test_a_warm_started_pipeline_has_its_resolvers_and_does_not_compile_for_kubeflow(tmp_path):
    from hetcomp_tf.errors import HetCompError
    from pipeline.configs import PipelineConfig
    from pipeline.kubeflow_runner import compile_pipeline
    from pipeline.pipeline import DATASET_RESOLVER, create_components, resolver_ids, teacher_resolver

    config = PipelineConfig(
        out_dir=str(tmp_path), data="synthetic", profile="tiny", teachers=("MF", "AE"), warm_start=True
    )
    ids = {component.id for component in create_components(config)}
    assert (
        resolver_ids(config)
        == {DATASET_RESOLVER, teacher_resolver("MF"), teacher_resolver("AE"), "latest_blessed_model_resolver"}
        <= ids
    )
    assert resolver_ids(dataclasses.replace(config, warm_start=False)) == {"latest_blessed_model_resolver"}
    with pytest.raises(HetCompError, match="local runner only"):
        compile_pipeline(config, "image", str(tmp_path / "spec.json"))
