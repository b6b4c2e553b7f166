"""`hetcomp benchmark` end to end on tiny synthetic data (teachers reused from the session's run), resuming,
the teachers-reuse rule, and bad input."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import multiprocessing
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from hetcomp_tf.bench.benchmark import (
    PARTIAL,
    _fingerprint_difference,
    ensure_teachers,
    knowledge_sha256,
    teachers_reusable,
)
from hetcomp_tf.bench.results import paired_differences
from hetcomp_tf.bench.runs import ABLATIONS, RunKey, plan_runs
from hetcomp_tf.cli import main
from hetcomp_tf.config import TEACHER_NAMES, get_profile
from hetcomp_tf.data.dataset import Dataset
from hetcomp_tf.data.loading import load_dataset
from hetcomp_tf.distill.methods import METHODS
from hetcomp_tf.teachers.trajectories import load_trajectories, trajectories_dir
from hetcomp_tf.util.workers import exit_with_parent
from tests.test_distill import shared_teachers

pytestmark = pytest.mark.slow  # end to end (training, processes, servers): `make test`, not `make check`

TINY = get_profile("tiny")
TEACHER_FILES = ("dataset.npz", "teachers.json", "trajectories")


def copy_teachers(source: Path, target: Path) -> None:
    target.mkdir(parents=True)
    for name in TEACHER_FILES:
        (shutil.copytree if (source / name).is_dir() else shutil.copy2)(source / name, target / name)


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(argv)
    return code, stdout.getvalue(), capsys.readouterr().err


def mtimes(directory: Path) -> dict[str, int]:
    return {str(p.relative_to(directory)): p.stat().st_mtime_ns for p in sorted(directory.rglob("*"))}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "out"
    copy_teachers(shared_teachers(tmp_path_factory), out)
    before = mtimes(out)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["benchmark", "--data", "synthetic", "--profile", "tiny", "--seeds", "2", "--out", str(out)])
    return code, out, stdout.getvalue(), before


def test_benchmark_writes_every_method_sweep_and_curves(bench):
    code, out, stdout, teacher_mtimes = bench
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    teachers = json.loads((out / "teachers.json").read_text())
    students = [f"student:{m}" for m in METHODS]
    assert list(results["methods"]) == [
        *(f"teacher:{t}" for t in TEACHER_NAMES),
        "ensemble",
        "ensemble:fitted",
        *students,
    ]
    fitted = results["methods"]["ensemble:fitted"]
    assert (fitted["test"], fitted["tau"]) == (
        teachers["ensemble_weighted"]["test"],
        teachers["ensemble_weighted"]["tau"],
    )
    assert results["ensemble_params"] == sum(t["params"] for t in teachers["teachers"].values())
    assert results["methods"]["ensemble"]["test"] == teachers["ensemble"]["test"]
    assert results["teachers_reused"] is True and results["wall_seconds"] > 0
    runs = results["runs"]
    assert sorted((r["method"], r["dim"], r["seed"]) for r in runs) == sorted(
        (k.method, k.dim, k.seed) for k in plan_runs(list(METHODS), 2, 8, [4, 8])
    )
    for method in METHODS:
        entry = results["methods"][f"student:{method}"]
        mine = [r for r in runs if r["method"] == method and r["dim"] == 8]
        for metric in entry["test"]:
            values = np.array([r["test"][metric] for r in mine])
            assert entry["test"][metric] == pytest.approx(values.mean()) and 0 < values.mean() <= 1
            assert entry["test_std"][metric] == pytest.approx(values.std())
        assert entry["params"] == (teachers["dataset"]["n_users"] + teachers["dataset"]["n_items"]) * 8
        assert entry["train_seconds"] > 0 and entry["seeds"] == (1 if method in ABLATIONS else 2)
    assert set(results["student_dims"]) == {"4", "8"}
    assert set(results["student_dims"]["4"]) == {"wo_kd", "ensemble_kd", "hetcomp"}
    assert set(results["student_dims"]["8"]) == set(METHODS)
    assert results["student_dims"]["8"]["hetcomp"]["test"] == results["methods"]["student:hetcomp"]["test"]
    assert results["student_dims"]["4"]["hetcomp"]["params"] == results["methods"]["student:hetcomp"]["params"] // 2
    hetcomp = [r for r in runs if r["method"] == "hetcomp"]
    assert all(r["switch_epoch"] is not None for r in hetcomp), "ADT switches in every tiny hetcomp run"
    markdown = (out / "results.md").read_text()
    hetcomp_test, hetcomp_std = (results["methods"]["student:hetcomp"][k]["recall@50"] for k in ("test", "test_std"))
    assert f"{hetcomp_test:.4f} ± {hetcomp_std:.4f}" in markdown.split("| student:hetcomp |")[1].splitlines()[0]
    planned = len(plan_runs(list(METHODS), 2, 8, [4, 8]))
    assert "| 4 | hetcomp |" in markdown and f"0 of {planned} runs were finished before it." in markdown
    assert [entry["seconds"] for entry in results["invocations"]] == [results["wall_seconds"]]
    assert results["wall_seconds_total"] == results["wall_seconds"] and "invocations on this --out" not in markdown
    paired = results["paired"]["ensemble_kd"]
    by_seed = {r["seed"]: r["test"]["recall@50"] for r in runs if r["dim"] == 8 and r["method"] == "ensemble_kd"}
    ours = {r["seed"]: r["test"]["recall@50"] for r in runs if r["dim"] == 8 and r["method"] == "hetcomp"}
    assert paired["seeds"] == [0, 1] and paired["recall@50"]["mean"] == pytest.approx(
        np.mean([ours[s] - by_seed[s] for s in (0, 1)])
    )
    first, second = (ours[s] - by_seed[s] for s in (0, 1))
    assert first != second  # two seeds' runs differ, so the t-test has a p
    # two pairs: t = mean / (sd / √2) = |d0 + d1| / |d0 − d1| with 1 degree of freedom, whose two-sided p is
    # 1 − 2·atan(|t|)/π (Student's t with 1 df is the Cauchy distribution)
    expected_p = 1 - 2 * math.atan(abs(first + second) / abs(first - second)) / math.pi
    assert paired["recall@50"]["p"] == pytest.approx(expected_p, rel=1e-6)
    assert paired["recall@50"]["per_seed"] == pytest.approx([ours[s] - by_seed[s] for s in (0, 1)])
    per_seed = ", ".join(f"{ours[s] - by_seed[s]:+.4f}" for s in (0, 1))
    assert f"± {paired['recall@50']['std']:.4f} ({per_seed}) |" in markdown.split("| hetcomp − ensemble_kd | 0, 1 |")[1]
    assert results["paired"]["hetcomp_no_adt"]["seeds"] == [0] and "| hetcomp − dcd | 0, 1 |" in markdown
    png = (out / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    dkc_runs = [r for r in runs if r["dkc_curve"]]
    assert "hetcomp" in {r["method"] for r in dkc_runs} <= {"hetcomp", "hetcomp_no_adt", "hetcomp_no_dkc"}
    assert "### What the curriculum costs in epochs\n" in markdown and "### DKC updates of hetcomp (dim 8" in markdown
    assert (out / "stages.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {k: v for k, v in mtimes(out).items() if k in teacher_mtimes} == teacher_mtimes  # teachers untouched
    rows = {line.split()[0]: line.split()[1:] for line in stdout.splitlines() if line.startswith("student:")}
    assert list(rows) == students
    assert float(rows["student:hetcomp"][4]) == pytest.approx(
        results["methods"]["student:hetcomp"]["test"]["recall@50"], abs=5e-5
    )


def test_second_invocation_reuses_teachers_and_resumes_finished_runs_in_two_workers(bench, capsys):
    _, out, _, _ = bench
    partial = json.loads((out / PARTIAL).read_text())
    dropped = [RunKey("hetcomp", 8, 1).name, RunKey("wo_kd", 8, 0).name]
    kept = {name: partial["runs"].pop(name) for name in dropped}
    (out / PARTIAL).write_text(json.dumps(partial))  # as if the runs had crashed before finishing
    before = mtimes(out / "trajectories") | {"teachers.json": (out / "teachers.json").stat().st_mtime_ns}

    code, stdout, stderr = run_cli(
        [
            "benchmark",
            "--data",
            "synthetic",
            "--profile",
            "tiny",
            "--seeds",
            "2",
            "--methods",
            "wo_kd,hetcomp",
            "--student-dims",
            "8",
            "--jobs",
            "2",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0
    assert "reusing the teachers" in stderr and "training the teachers" not in stderr
    assert "resuming: 2 of 4 runs already finished" in stderr and "benchmark run 2/2" in stderr
    assert "in 2 worker processes" in stderr
    assert mtimes(out / "trajectories") | {"teachers.json": (out / "teachers.json").stat().st_mtime_ns} == before
    results = json.loads((out / "results.json").read_text())
    assert list(results["methods"])[-2:] == ["student:wo_kd", "student:hetcomp"]
    reruns = json.loads((out / PARTIAL).read_text())["runs"]
    for name in dropped:  # a worker process with one thread retrains the same seed to the same student
        assert reruns[name]["test"] == kept[name]["test"], name
    assert results["teachers_reused"] is True and results["jobs"] == 2
    first, second = results["invocations"]  # the fixture's invocation, then this one
    assert second["seconds"] == results["wall_seconds"] and first["seconds"] > 0
    assert results["wall_seconds_total"] == pytest.approx(first["seconds"] + second["seconds"])
    assert (
        f"Over the 2 invocations on this --out: {results['wall_seconds_total']:.0f} s "
        f"({first['seconds']:.0f} + {second['seconds']:.0f} s;"
    ) in (out / "results.md").read_text()
    assert f"s over 2 invocations on {out}" in stdout


def test_a_benchmark_split_by_seed_over_two_outputs_pools_into_one(bench, tmp_path, capsys):
    _, source, _, _ = bench
    first, second = tmp_path / "first", tmp_path / "second"
    copy_teachers(source, first)
    copy_teachers(source, second)
    common = [
        "benchmark",
        "--data",
        "synthetic",
        "--profile",
        "tiny",
        "--seeds",
        "2",
        "--methods",
        "wo_kd",
        "--student-dims",
        "8",
    ]
    code, _, stderr = run_cli([*common, "--only-seeds", "1", "--out", str(first)], capsys)
    assert code == 0 and "benchmark run 1/1" in stderr and "resuming" not in stderr
    assert "1 unfinished run(s) left to other invocations (not of --only-seeds/--only-runs)" in stderr
    alone = json.loads((first / "results.json").read_text())
    assert [(r["method"], r["seed"]) for r in alone["runs"]] == [("wo_kd", 1)]
    assert "1 of 2 planned runs finished" in (first / "results.md").read_text()

    code, _, stderr = run_cli(
        [*common, "--only-seeds", "0", "--import-runs", str(first / PARTIAL), "--out", str(second)], capsys
    )
    assert code == 0 and "imported 1 finished run(s)" in stderr and "benchmark run 1/1" in stderr
    assert "resuming: 1 of 2 runs already finished" in stderr
    pooled = json.loads((second / "results.json").read_text())
    assert pooled["runs_imported"] == 1 and len(pooled["invocations"]) == 1
    assert "1 of 2 runs were finished before it; 1 imported by --import-runs" in (second / "results.md").read_text()
    by_seed = {r["seed"]: r for r in pooled["runs"]}
    assert sorted(by_seed) == [0, 1] and by_seed[1] == alone["runs"][0]
    original = {
        r["seed"]: r["test"]
        for r in json.loads((source / "results.json").read_text())["runs"]
        if r["method"] == "wo_kd" and r["dim"] == 8
    }
    assert {s: r["test"] for s, r in by_seed.items()} == original  # the same seeds train the same students
    assert by_seed[0]["code"] and pooled["methods"]["student:wo_kd"]["seeds"] == 2
    assert sorted(json.loads((second / PARTIAL).read_text())["runs"]) == sorted(
        RunKey("wo_kd", 8, s).name for s in (0, 1)
    )

    before = mtimes(second)
    code, _, stderr = run_cli(
        [*common, "--set", "epochs=2", "--import-runs", str(first / PARTIAL), "--out", str(second)], capsys
    )
    lines = stderr.strip().splitlines()
    assert code == 2 and lines[-1] == (
        f"hetcomp: error: --import-runs {first / PARTIAL}: its runs cannot be pooled "
        f"with these: distill config epochs={TINY.distill.epochs} there, 2 here"
    )
    assert mtimes(second) == before


def test_only_runs_trains_just_the_named_runs(bench, tmp_path, capsys):
    _, source, _, _ = bench
    out = tmp_path / "out"
    copy_teachers(source, out)
    code, _, stderr = run_cli(
        [
            "benchmark",
            "--data",
            "synthetic",
            "--profile",
            "tiny",
            "--seeds",
            "2",
            "--methods",
            "wo_kd,ensemble_kd",
            "--student-dims",
            "8",
            "--only-runs",
            "ensemble_kd:8:1,wo_kd:8:0",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0 and "2 unfinished run(s) left to other invocations" in stderr
    assert stderr.index("benchmark run 1/2 (ensemble_kd|dim=8|seed=1") < stderr.index("benchmark run 2/2 (wo_kd|")

    def tests_by_run(path):  # the partial keeps every run (another test rewrites the source's results.json)
        return {(r["method"], r["dim"], r["seed"]): r["test"] for r in json.loads(path.read_text())["runs"].values()}

    runs, full = tests_by_run(out / PARTIAL), tests_by_run(source / PARTIAL)
    assert sorted(runs) == [("ensemble_kd", 8, 1), ("wo_kd", 8, 0)]
    assert runs == {key: full[key] for key in runs}  # the same seeds train the same students


def test_another_distill_config_starts_the_runs_and_their_wall_time_afresh(bench, tmp_path, capsys):
    _, source, _, _ = bench
    out = tmp_path / "out"
    copy_teachers(source, out)
    common = [
        "benchmark",
        "--data",
        "synthetic",
        "--profile",
        "tiny",
        "--seeds",
        "1",
        "--methods",
        "wo_kd",
        "--student-dims",
        "8",
        "--out",
        str(out),
    ]
    assert run_cli(common, capsys)[0] == 0
    code, _, stderr = run_cli([*common, "--set", "epochs=3"], capsys)
    assert code == 0 and "starting the runs afresh" in stderr and "benchmark run 1/1" in stderr
    results = json.loads((out / "results.json").read_text())
    assert len(results["invocations"]) == 1 and results["runs"][0]["epochs"] <= 3


def test_knowledge_fingerprint_follows_the_trajectories_not_the_teachers_json(bench, tmp_path):
    _, source, _, _ = bench
    copy_teachers(source, tmp_path / "copy")
    summary = json.loads((tmp_path / "copy" / "teachers.json").read_text())
    summary["teachers"]["MF"]["train_seconds"] += 100.0  # another session's timing
    (tmp_path / "copy" / "teachers.json").write_text(json.dumps(summary))
    assert knowledge_sha256(tmp_path / "copy") == knowledge_sha256(source)
    trajectory = load_trajectories(tmp_path / "copy", ["GNN"])["GNN"]
    trajectory.rankings[0, 0, [0, 1]] = trajectory.rankings[0, 0, [1, 0]]  # one user's top two swapped, once
    trajectory.save(trajectories_dir(tmp_path / "copy") / "GNN")
    assert knowledge_sha256(tmp_path / "copy") != knowledge_sha256(source)


def test_records_without_a_later_config_field_pool_only_while_it_keeps_its_default():
    ours = {
        "profile": "paper",
        "knowledge_sha256": "abc",
        "distill": {**dataclasses.asdict(TINY.distill), "dcd_period": 3},
    }
    older = {**ours, "distill": {k: v for k, v in ours["distill"].items() if k != "dcd_period"}}
    assert _fingerprint_difference(older, ours) is None  # dcd_period is at its default: the older behaviour
    changed = {**ours, "distill": {**ours["distill"], "dcd_period": 5}}
    assert _fingerprint_difference(older, changed) == "distill config dcd_period='(absent)' there, 5 here"
    assert _fingerprint_difference(ours, changed) == "distill config dcd_period=3 there, 5 here"
    assert (
        _fingerprint_difference({**ours, "knowledge_sha256": "xyz"}, ours) == "knowledge_sha256 'xyz' there, 'abc' here"
    )
    assert (
        _fingerprint_difference({**ours, "distill": {**ours["distill"], "gone": 1}}, ours)
        == "distill config gone=1 there, '(absent)' here"
    )


def _orphan(interval: float) -> None:
    exit_with_parent(-1, interval)  # a pid that is never this process's parent: as if the parent had died
    time.sleep(60)


def test_a_worker_whose_parent_is_gone_exits_instead_of_training_on():
    process = multiprocessing.get_context("spawn").Process(target=_orphan, args=(0.05,))
    process.start()
    process.join(timeout=50)
    alive = process.is_alive()
    if alive:
        process.kill()
    assert not alive and process.exitcode == 1


def test_plan_runs_sweeps_only_the_sweep_methods_and_never_twice():
    keys = plan_runs(["wo_kd", "rrd", "hetcomp_no_adt", "hetcomp"], 3, 64, [32, 64, 128], extra_seeds=2)
    # headline 3 methods x 3 seeds, the ablation at 2 seeds, wo_kd and hetcomp at 2 other dims x 2 seeds
    assert len(keys) == len(set(keys)) == 3 * 3 + 2 + 2 * 2 * 2
    assert {k.method for k in keys if k.dim != 64} == {"wo_kd", "hetcomp"}
    assert {k.seed for k in keys if k.method == "hetcomp_no_adt" or k.dim != 64} == {0, 1}
    first = [(k.method, k.seed) for k in keys[:4]]  # seed 0 of everything first: a partial run is comparable
    assert first == [("wo_kd", 0), ("rrd", 0), ("hetcomp", 0), ("hetcomp_no_adt", 0)]


# Student's sleep data (Biometrika 6, 1908; R's datasets::sleep): extra hours of sleep of 10 patients under two
# drugs. R's `t.test(extra ~ group, data = sleep, paired = TRUE)` prints t = -4.0621, df = 9, p-value = 0.002833
# (an unpaired t-test gives p = 0.0794 on the same numbers).
SLEEP_DRUG_1 = (0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0)
SLEEP_DRUG_2 = (1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4)


def test_paired_t_test_gives_the_textbook_p_value_of_students_sleep_data():
    runs = [
        {"method": method, "dim": 8, "seed": seed, "test": {"recall@50": value, "ndcg@50": -value}}
        for method, values in (("hetcomp", SLEEP_DRUG_2), ("wo_kd", SLEEP_DRUG_1))
        for seed, value in enumerate(values)
    ]
    runs.append({"method": "rrd", "dim": 8, "seed": 0, "test": {"recall@50": 0.5, "ndcg@50": 0.5}})
    paired = paired_differences(runs, dim=8)
    assert paired["wo_kd"]["seeds"] == list(range(10))
    for metric in ("recall@50", "ndcg@50"):  # HetComp ahead, then behind: a two-sided p either way
        entry = paired["wo_kd"][metric]
        sign = 1 if metric == "recall@50" else -1
        assert entry["per_seed"] == pytest.approx([sign * (b - a) for a, b in zip(SLEEP_DRUG_1, SLEEP_DRUG_2)])
        assert entry["mean"] == pytest.approx(sign * 1.58)
        # by hand: the squared deviations from 1.58 sum to 13.616, so the std over 10 is √1.3616, and
        # t = 1.58 / √(13.616 / 9 / 10) = 4.0621 with 9 degrees of freedom
        assert entry["std"] == pytest.approx(1.3616**0.5)
        assert entry["p"] == pytest.approx(0.002833, abs=5e-7)  # R prints 4 significant digits
    assert paired["rrd"]["seeds"] == [0] and paired["rrd"]["recall@50"]["p"] is None  # one pair: no test


def test_teachers_are_retrained_for_another_profile_or_split(tmp_path_factory, tmp_path):
    source = shared_teachers(tmp_path_factory)
    data = load_dataset("synthetic", None, TINY.data)
    assert teachers_reusable(tmp_path / "none", data, TINY) == "no teachers run there yet"
    copy_teachers(source, tmp_path / "copy")
    assert teachers_reusable(tmp_path / "copy", data, TINY) is None
    assert "profile 'tiny'" in teachers_reusable(tmp_path / "copy", data, get_profile("paper"))
    other = Dataset.load(source / "dataset.npz")
    other = Dataset(other.name, other.user_vocab, other.item_vocab, other.valid, other.train, other.test)
    assert teachers_reusable(tmp_path / "copy", other, TINY) == "its dataset split differs from this data"
    summary = json.loads((tmp_path / "copy" / "teachers.json").read_text())
    del summary["teachers"]["GNN"]
    (tmp_path / "copy" / "teachers.json").write_text(json.dumps(summary))
    assert teachers_reusable(tmp_path / "copy", data, TINY) == "teachers GNN are missing"


def test_a_subset_of_finished_teachers_is_reused_without_training_any(tmp_path_factory, tmp_path, monkeypatch, capsys):
    """`benchmark --teachers MF,GNN` on an --out holding all six: the subset is not the run there, so it is written
    again, from the finished teachers (none trained), with only those two in teachers.json and trajectories/."""
    from hetcomp_tf.teachers import workflow

    source = shared_teachers(tmp_path_factory)
    data = load_dataset("synthetic", None, TINY.data)
    copy_teachers(source, tmp_path / "copy")
    names = ("MF", "GNN")
    assert teachers_reusable(tmp_path / "copy", data, TINY, names) == (
        "it also holds teachers ML, DL, AE, I-AE, which --teachers leaves out"
    )
    assert workflow.finished_teachers(tmp_path / "copy", data, TINY, seed=0) == sorted(TINY.teachers)
    trained = []
    monkeypatch.setattr(workflow, "train_teacher", lambda name, *a, **k: trained.append(name))
    assert ensure_teachers("synthetic", None, TINY, tmp_path / "copy", names=names) is False
    assert trained == [] and "keeping MF, GNN from" in capsys.readouterr().err
    summary = json.loads((tmp_path / "copy" / "teachers.json").read_text())
    assert list(summary["teachers"]) == list(names) and set(summary["ensemble_weighted"]["weights"]) == set(names)
    assert list(load_trajectories(tmp_path / "copy")) == list(names)
    original = load_trajectories(source, names)
    for name, trajectory in load_trajectories(tmp_path / "copy").items():
        np.testing.assert_array_equal(trajectory.rankings, original[name].rankings)
    assert teachers_reusable(tmp_path / "copy", data, TINY, names) is None
    assert ensure_teachers("synthetic", None, TINY, tmp_path / "copy", names=names) is True


def test_teachers_trained_with_other_settings_are_not_reused(tmp_path_factory, tmp_path):
    """teachers.json records every teacher's config: a `hetcomp teachers --teacher-set` run is not the profile's."""
    source = shared_teachers(tmp_path_factory)
    data = load_dataset("synthetic", None, TINY.data)
    copy_teachers(source, tmp_path / "copy")
    summary = json.loads((tmp_path / "copy" / "teachers.json").read_text())
    assert summary["teacher_configs"]["MF"] == json.loads(json.dumps(dataclasses.asdict(TINY.teachers["MF"])))
    summary["teacher_configs"]["MF"]["optimizer"] = "lazy_adam"
    (tmp_path / "copy" / "teachers.json").write_text(json.dumps(summary))
    assert teachers_reusable(tmp_path / "copy", data, TINY) == (
        "teachers MF were trained with other settings than profile 'tiny''s"
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--data", "/nonexistent/users.csv"], "/nonexistent/users.csv"),
        (["--data", "synthetic", "--methods", "wo_kd,nope"], "unknown distillation method 'nope'"),
        (["--data", "synthetic", "--student-dims", "8,x"], "--student-dims"),
        (["--data", "synthetic", "--seeds", "0"], "seeds (0)"),
        (["--data", "synthetic", "--jobs", "0"], "jobs (0)"),
        (["--data", "synthetic", "--set", "seed=3"], "FIELD one of student_dim, epochs"),
        (["--data", "synthetic", "--seeds", "2", "--only-seeds", "2"], "--only-seeds [2] must name seeds of 0..1"),
        (["--data", "synthetic", "--only-seeds", "0,-1"], "--only-seeds"),
        (["--data", "synthetic", "--only-runs", "wo_kd:8"], "--only-runs: 'wo_kd:8' is not a comma-separated list"),
        (["--data", "synthetic", "--only-runs", "wo_kd:8:0,wo_kd:8:0"], "--only-runs"),
        (
            ["--data", "synthetic", "--methods", "wo_kd", "--only-runs", "hetcomp:8:0"],
            "--only-runs hetcomp:8:0 is not a run of this plan",
        ),
        (
            ["--data", "synthetic", "--import-runs", "/nonexistent/results.partial.json"],
            "--import-runs /nonexistent/results.partial.json: no such file",
        ),
    ],
)
def test_benchmark_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, message):
    code, _, err = run_cli(["benchmark", "--profile", "tiny", *argv, "--out", str(tmp_path / "out")], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hetcomp: error: ") and message in lines[0]
    assert not (tmp_path / "out").exists()


def test_a_student_of_fitted_targets_distils_the_ensemble_fitted_on_valid(tmp_path_factory, tmp_path, capsys):
    """`--set targets=fitted`: the run's record names teachers.json's valid fit, and its targets are that
    ensemble's top-K (the first DKC stage ensemble of `hetcomp_no_dkc`'s final checkpoints)."""
    teachers = shared_teachers(tmp_path_factory)
    fit = json.loads((teachers / "teachers.json").read_text())["ensemble_weighted"]
    code, _, err = run_cli(
        [
            "distill",
            "--teachers-dir",
            str(teachers),
            "--profile",
            "tiny",
            "--method",
            "ensemble_kd",
            "--set",
            "targets=fitted",
            "--set",
            "epochs=2",
            "--out",
            str(tmp_path / "s"),
        ],
        capsys,
    )
    assert code == 0, err
    record = json.loads((tmp_path / "s" / "distill.json").read_text())
    assert record["config"]["targets"] == "fitted"
    assert record["ensemble"] == {"tau": fit["tau"], "teacher_weights": fit["weights"]}
    code, _, err = run_cli(
        [
            "distill",
            "--teachers-dir",
            str(teachers),
            "--profile",
            "tiny",
            "--method",
            "wo_kd",
            "--set",
            "targets=fitted",
            "--set",
            "epochs=2",
            "--out",
            str(tmp_path / "w"),
        ],
        capsys,
    )
    assert code == 0, err
    assert json.loads((tmp_path / "w" / "distill.json").read_text())["ensemble"] is None
    code, _, err = run_cli(
        [
            "distill",
            "--teachers-dir",
            str(teachers),
            "--profile",
            "tiny",
            "--method",
            "hetcomp",
            "--set",
            "targets=best",
            "--out",
            str(tmp_path / "x"),
        ],
        capsys,
    )
    assert code == 2 and "targets='best' must be one of equal, fitted" in err
