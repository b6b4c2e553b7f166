"""A run's estimate from the cost model's fits: the fit file, teachers and students priced at their caps, the line
the commands print, and the whole-run ETA of the teachers' progress lines."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from types import SimpleNamespace

import pytest

from hetcomp_tf.bench import estimate
from hetcomp_tf.bench.work import TEACHER_WORK, Shape, steps_per_epoch
from hetcomp_tf.config import PROFILES, TEACHER_NAMES, get_profile
from hetcomp_tf.teachers import workflow

TINY = get_profile("tiny")
SHAPE = Shape(users=1000, items=2000, train=15_000, valid_users=1000)
EPOCH, EVALUATE = {"driver": "-", "c0": 0.1, "c1": 1e-9}, {"driver": "-", "c0": 0.2, "c1": 2e-10}
STEP, SCORING = {"driver": "items", "c0": 0.01, "c1": 1e-6}, {"driver": "users_x_items", "c0": 0.1, "c1": 1e-9}


def fits_entry(teachers=TEACHER_NAMES) -> dict:
    return {
        "cpu": "Test CPU 9000",
        "threads": 2,
        "student_sizes": [],
        "teacher_sizes": [],
        "student": {"step_seconds": STEP, "dkc_update_seconds": SCORING},
        "teachers": {name: {"epoch": EPOCH, "evaluate": EVALUATE} for name in teachers},
    }


@pytest.fixture
def fits_file(tmp_path, monkeypatch):
    """A fit file with the tiny profile's entry, the default of every estimate."""
    path = estimate.write_fits(fits_entry(), "tiny", tmp_path / "cost_fits.json")
    monkeypatch.setattr(estimate, "FITS_FILE", path)
    return path


def test_durations_read_as_a_person_plans():
    assert [estimate.duration(s) for s in (40, 600, 3 * 3600 + 720, 4.5 * 86400)] == [
        "40s",
        "10 min",
        "3.2 h",
        "4.5 days",
    ]


def test_a_teacher_is_priced_at_its_epoch_cap_with_every_evaluation():
    cfg, work = TINY.teachers["MF"], TEACHER_WORK["MF"]
    epoch = 0.1 + 1e-9 * work.epoch(cfg, SHAPE)
    full = 0.2 + 2e-10 * work.evaluate(cfg, SHAPE, SHAPE.users)
    fits = fits_entry()
    # 12 epochs evaluated every epoch, then the test evaluation
    assert estimate.teacher_seconds(fits, "MF", cfg, TINY.trajectory, SHAPE) == pytest.approx(12 * epoch + 13 * full)
    # a sample of 100 users at every 3rd epoch, every user ranked at the 4 checkpoints, then the test evaluation
    sampled = dataclasses.replace(cfg, eval_users=100, eval_every=3)
    sample = 0.2 + 2e-10 * work.evaluate(cfg, SHAPE, 100)
    assert estimate.teacher_seconds(fits, "MF", sampled, TINY.trajectory, SHAPE) == pytest.approx(
        12 * epoch + 4 * sample + 5 * full
    )
    # a sample as large as the valid users is no sample
    whole = dataclasses.replace(sampled, eval_users=SHAPE.valid_users)
    assert estimate.teacher_seconds(fits, "MF", whole, TINY.trajectory, SHAPE) == pytest.approx(12 * epoch + 5 * full)
    assert estimate.teacher_seconds(fits_entry(["GNN"]), "MF", cfg, TINY.trajectory, SHAPE) is None


def test_a_negative_fitted_constant_prices_nothing_below_zero():
    fits = fits_entry()
    fits["teachers"]["MF"] = {"epoch": {"driver": "-", "c0": -5.0, "c1": 0.0}, "evaluate": EVALUATE}
    cfg = TINY.teachers["MF"]
    assert estimate.teacher_seconds(fits, "MF", cfg, TINY.trajectory, SHAPE) == pytest.approx(
        13 * (0.2 + 2e-10 * TEACHER_WORK["MF"].evaluate(cfg, SHAPE, SHAPE.users))
    )


def test_a_student_is_priced_at_its_epoch_cap_with_its_evaluations_and_dkc_updates():
    cfg = TINY.distill  # 60 epochs, valid every 5 (after epoch 0 too: 13), DKC every 2 from epoch 2 (29)
    steps = steps_per_epoch(SHAPE, cfg)
    assert steps == math.ceil(SHAPE.train / cfg.batch_size)
    step, scoring = 0.01 + 1e-6 * SHAPE.items, 0.1 + 1e-9 * SHAPE.users * SHAPE.items
    assert estimate.student_seconds(fits_entry(), cfg, SHAPE) == pytest.approx(60 * steps * step + (13 + 29) * scoring)
    by_users = dataclasses.replace(cfg, batching="users", batch_size=100)
    assert steps_per_epoch(SHAPE, by_users) == 10


def test_the_estimate_sums_the_runs_and_says_what_it_is(fits_file):
    got = estimate.estimate_run(TINY, SHAPE, ["MF", "GNN", "GNN"], student_runs=3)
    teachers = [
        estimate.teacher_seconds(fits_entry(), n, TINY.teachers[n], TINY.trajectory, SHAPE)
        for n in ("MF", "GNN", "GNN")
    ]
    student = estimate.student_seconds(fits_entry(), TINY.distill, SHAPE)
    assert got.seconds == pytest.approx(sum(teachers) + 3 * student)
    line = got.describe()
    assert line.startswith(f"estimate: ~{estimate.duration(got.seconds)} (3 teacher runs ")
    assert "3 student runs" in line and "upper bound at the epoch caps" in line
    assert "early stopping usually ends sooner" in line and "fitted on CPU Test CPU 9000 with 2 threads" in line
    assert estimate.estimate_run(TINY, SHAPE, ["MF"]).student == 0.0


def test_runs_side_by_side_are_scheduled_longest_first_each_on_its_share_of_the_cores(monkeypatch):
    monkeypatch.setattr(estimate, "threads_per_worker", lambda jobs: 2 // jobs)  # two cores, as here
    got = estimate.Estimate((("AE", 600.0), ("MF", 100.0), ("GNN", 300.0)), 50.0, 2, "Test CPU", 2)
    slow = 74 / 55  # one thread of two (THREAD_EXPONENT's measurement)
    assert estimate.thread_slowdown(2, 1) == pytest.approx(slow)
    assert got.wall_seconds(1) == got.seconds == 1100.0
    # AE and GNN start together; MF follows GNN beside AE; AE ends last; then the two students side by side.
    assert got.wall_seconds(2) == pytest.approx(max(600, 300 + 100) * slow + 50 * slow)
    line = got.describe(2)
    assert line.startswith(f"estimate: ~{estimate.duration(got.wall_seconds(2))} with 2 at a time (3 teacher runs ")
    assert "2 student runs 2 min of work;" in line


def test_no_estimate_without_the_profiles_or_a_teachers_fits(fits_file, tmp_path):
    assert "holds no fits for profile 'paper'" in estimate.estimate_run(get_profile("paper"), SHAPE, ["MF"])
    estimate.write_fits(fits_entry(["MF"]), "tiny", fits_file)
    assert (
        estimate.estimate_run(TINY, SHAPE, ["MF", "GNN", "AE"])
        == "cost_fits.json holds no fits for teacher(s) AE, GNN in profile 'tiny'"
    )
    assert "no fits for profile" in estimate.estimate_run(TINY, SHAPE, ["MF"], path=tmp_path / "none.json")


def test_writing_a_profiles_fits_keeps_the_others(tmp_path):
    path = tmp_path / "fits.json"
    estimate.write_fits({"cpu": "a"}, "paper", path)
    estimate.write_fits(fits_entry(), "tiny", path)
    estimate.write_fits({"cpu": "b"}, "paper", path)
    assert json.loads(path.read_text())["profiles"] == {"paper": {"cpu": "b"}, "tiny": fits_entry()}
    assert estimate.profile_fits("tiny", path) == fits_entry() and estimate.profile_fits("large", path) is None


def test_the_committed_fits_price_every_profile_and_name_their_cpu():
    for name in PROFILES:
        fits = estimate.profile_fits(name)
        assert fits is not None, f"{estimate.FITS_FILE} has no entry for profile {name}"
        assert fits["cpu"] and fits["threads"] >= 1 and set(fits["teachers"]) == set(TEACHER_NAMES), name
        got = estimate.estimate_run(get_profile(name), SHAPE, TEACHER_NAMES, student_runs=1)
        assert isinstance(got, estimate.Estimate) and got.seconds > 0, (name, got)


def test_the_teachers_after_each_one_are_summed_while_all_are_known():
    assert workflow.seconds_after(["A", "B", "C"], {"A": 1.0, "B": 2.0, "C": 3.0}) == {"C": 0.0, "B": 3.0, "A": 5.0}
    assert workflow.seconds_after(["A", "B", "C"], {"A": 1.0, "B": None, "C": 3.0}) == {"C": 0.0, "B": 3.0}
    assert workflow.seconds_after([], {}) == {}


def test_a_teachers_progress_line_carries_the_eta_of_all_teachers(capsys):
    progress = workflow.TeachersProgress("MF epoch", 4, run_started=time.time() - 130, later_seconds=600.0)
    progress.start -= 10  # 10 s into MF: 2 of 4 epochs done, 10 s to go
    progress.update(2, "loss 0.5000")
    line = capsys.readouterr().err.strip()
    assert (
        "MF epoch 2/4 loss 0.5000 [10s elapsed, ETA 10s; all teachers: 2 min elapsed, ETA ~10 min at the "
        "epoch caps]" in line
    )


def _minutes(text: str) -> float:
    """A `duration` back in minutes."""
    value, unit = re.fullmatch(r"([\d.]+) ?(s|min|h|days)", text).groups()
    return float(value) * {"s": 1 / 60, "min": 1, "h": 60, "days": 1440}[unit]


@pytest.mark.slow
def test_training_the_teachers_reports_the_eta_of_all_of_them(tiny_dataset, tmp_path, fits_file, capsys):
    """MF's lines add GNN's estimate (12 epochs of 100 s: 20 min) to MF's own ETA; GNN's, the last teacher's, are
    its own ETA."""
    fits = fits_entry()
    fits["teachers"]["GNN"] = {
        "epoch": {"driver": "-", "c0": 100.0, "c1": 0.0},
        "evaluate": {"driver": "-", "c0": 0.0, "c1": 0.0},
    }
    estimate.write_fits(fits, "tiny", fits_file)
    workflow.train_teachers(tiny_dataset, TINY, tmp_path / "out", ["MF", "GNN"])
    lines = capsys.readouterr().err.splitlines()
    for name, later in (("MF", 1200), ("GNN", 0)):
        epochs = [line for line in lines if f"{name} epoch " in line]
        assert epochs, name
        for line in epochs:
            own, whole = re.search(r"ETA (\d+)s; all teachers: .* elapsed, ETA ~(.+) at the epoch caps]", line).groups()
            assert abs(_minutes(whole) - (int(own) + later) / 60) <= 1, line


@pytest.mark.slow
def test_the_teachers_command_prints_its_estimate_before_training(fits_file, tmp_path):
    from tests.helpers import run_cli

    done = run_cli(
        ["teachers", "--data", "synthetic", "--profile", "tiny", "--teachers", "MF", "--out", str(tmp_path / "out")]
    )
    assert done.code == 0, done.stderr
    line = next(line for line in done.stderr.splitlines() if "estimate: ~" in line)
    assert done.stderr.index(line) < done.stderr.index("MF epoch 1/") and "(1 teacher run " in line
    fits_file.write_text(json.dumps({"profiles": {}}))
    done = run_cli(
        ["teachers", "--data", "synthetic", "--profile", "tiny", "--teachers", "MF", "--out", str(tmp_path / "again")]
    )
    assert "no estimate of the run's time: cost_fits.json holds no fits for profile 'tiny'" in done.stderr


def test_the_run_and_benchmark_estimates_count_what_they_train(fits_file, tmp_path, capsys):
    from hetcomp_tf.bench.benchmark import BenchmarkPlan
    from hetcomp_tf.commands.benchmark import log_plan_estimate
    from hetcomp_tf.commands.run import log_run_estimate

    args = SimpleNamespace(
        data="synthetic", format=None, profile="tiny", set=[], min_rating=None, split_protocol=None, jobs=1
    )
    log_run_estimate(args, ("MF", "ML"))
    assert "(2 teacher runs " in capsys.readouterr().err
    log_run_estimate(SimpleNamespace(**{**vars(args), "data": str(tmp_path / "part-*.csv")}), ("MF",))
    assert "no estimate of the run's time: --data is a glob of shards" in capsys.readouterr().err

    plan = BenchmarkPlan.from_options(
        "synthetic", None, TINY, 2, ["wo_kd", "hetcomp"], [4, 8], tmp_path / "bench", direct=["GNN"]
    )
    log_plan_estimate(plan)  # 6 teachers + GNN at dims 4 and 8; wo_kd, hetcomp at seeds 0, 1 and at dim 4
    line = capsys.readouterr().err
    assert "(8 teacher runs " in line and "6 student runs" in line
    only = dataclasses.replace(plan, only_seeds=[1])
    log_plan_estimate(only)
    assert "(6 teacher runs " in capsys.readouterr().err


def test_a_resumed_benchmarks_estimate_counts_only_the_runs_left(fits_file, tmp_path, capsys, monkeypatch):
    """Teachers in out/ and two runs finished under the plan's fingerprint: the estimate prices the other runs only;
    runs finished under another fingerprint (another distill config) are priced again."""
    from hetcomp_tf.bench import benchmark
    from hetcomp_tf.bench.benchmark import PARTIAL, BenchmarkPlan
    from hetcomp_tf.commands.benchmark import log_plan_estimate
    from hetcomp_tf.util.files import write_json

    plan = BenchmarkPlan.from_options("synthetic", None, TINY, 2, ["wo_kd", "hetcomp"], [4], tmp_path / "bench")
    monkeypatch.setattr(benchmark, "teachers_reusable", lambda *args: None)
    monkeypatch.setattr(benchmark, "knowledge_sha256", lambda out: "abc")
    (tmp_path / "bench").mkdir()
    finished = {key.name: {} for key in plan.keys[:2]}
    write_json(tmp_path / "bench" / PARTIAL, {"fingerprint": benchmark.benchmark_fingerprint(plan), "runs": finished})
    log_plan_estimate(plan)
    assert f"({len(plan.keys) - 2} student runs " in capsys.readouterr().err
    other = dataclasses.replace(
        plan, profile=dataclasses.replace(TINY, distill=dataclasses.replace(TINY.distill, tau=3.0))
    )
    log_plan_estimate(other)
    assert f"({len(plan.keys)} student runs " in capsys.readouterr().err
