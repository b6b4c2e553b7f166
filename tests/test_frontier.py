"""The frontier (hetcomp_tf/bench/frontier.py) on hand-made results whose verdicts are known, and in a tiny benchmark
with models trained directly at the students' sizes."""

from __future__ import annotations

import json

import pytest

from hetcomp_tf.bench.frontier import best_teacher, frontier_markdown, frontier_rows, latency_by_form
from hetcomp_tf.errors import HetCompError

pytestmark = pytest.mark.slow  # end to end (training, processes, servers): `make test`, not `make check`


def metrics(recall, ndcg):
    return {"recall@50": recall, "ndcg@50": ndcg}


RESULTS = {
    "methods": {
        "teacher:MF": {"test": metrics(0.25, 0.10), "params": 1000},
        "teacher:GNN": {"test": metrics(0.30, 0.14), "params": 600},
        "ensemble": {"test": metrics(0.29, 0.13)},
    },
    "ensemble_params": 5000,
    "student_dims": {
        "6": {"hetcomp": {"test": metrics(0.28, 0.12), "test_std": metrics(0.001, 0.001), "params": 60, "seeds": 3}},
        "16": {
            "hetcomp": {"test": metrics(0.31, 0.146), "test_std": metrics(0.002, 0.002), "params": 160, "seeds": 3},
            "ensemble_kd": {"test": metrics(0.305, 0.15), "test_std": metrics(0.004, 0.001), "params": 160, "seeds": 3},
        },
        "64": {"hetcomp": {"test": metrics(0.35, 0.2), "test_std": metrics(0.0, 0.0), "params": 640, "seeds": 1}},
    },
    "direct": [{"method": "direct:GNN", "dim": 16, "seed": 0, "test": metrics(0.27, 0.11), "params": 160}],
}
LATENCY = {
    "models": {
        "student:d6": {"latency": {"batch_1": {"p50_ms": 0.8}, "batch_64": {"p50_ms": 3.0}}},
        "student:d16": {"latency": {"batch_1": {"p50_ms": 1.0}}},
        "teacher:GNN": {"latency": {"batch_1": {"p50_ms": 1.9}}},
        "ensemble": {"latency": {"batch_1": {"p50_ms": 200.0}}},
    }
}


def test_rows_take_each_models_numbers_and_latency_by_serving_form():
    rows = {row["model"]: row for row in frontier_rows(RESULTS, latency_by_form(LATENCY))}
    assert set(rows) == {
        "hetcomp d6",
        "hetcomp d16",
        "ensemble_kd d16",
        "hetcomp d64",
        "GNN d16",
        "teacher:MF",
        "teacher:GNN",
        "ensemble",
    }
    assert rows["hetcomp d16"]["p50_ms"] == 1.0 and rows["GNN d16"]["p50_ms"] == 1.0  # both dim-16 tables
    assert rows["hetcomp d64"]["p50_ms"] is None and rows["teacher:MF"]["p50_ms"] is None  # not timed
    assert rows["ensemble"]["params"] == 5000 and rows["ensemble"]["p50_ms"] == 200.0
    assert rows["GNN d16"]["kind"] == "direct" and rows["GNN d16"]["test_std"] == metrics(0.0, 0.0)
    assert best_teacher(list(rows.values()))["model"] == "teacher:GNN"


def test_the_verdict_names_who_beats_the_best_teacher_at_no_more_of_its_cost():
    text = frontier_markdown(frontier_rows(RESULTS))
    assert "Best single teacher: teacher:GNN (test recall@50 0.3000, 600 params)" in text
    # d16 hetcomp: +0.010 (> 2 x 0.002) and +0.006 (> 2 x 0.002): clear. ensemble_kd d16: +0.005 is not > 2 x 0.004.
    assert "hetcomp d16: Δ recall@50 +0.0100, Δ ndcg@50 +0.0060: beats it by more than 2 std on both" in text
    assert "ensemble_kd d16: Δ recall@50 +0.0050, Δ ndcg@50 +0.0100: above it on both, not by 2 std" in text
    assert "hetcomp d6: Δ recall@50 -0.0200, Δ ndcg@50 -0.0200: does not beat it" in text
    assert "hetcomp d64" not in text.split("Best single teacher")[1]  # 640 params > the teacher's 600
    assert "p50 ms" not in text  # no latency given, no column


def test_a_latency_file_of_another_shape_is_one_line():
    with pytest.raises(HetCompError, match="latency file: not `hetcomp latency` output"):
        latency_by_form({"student": {"p50_ms": 1.0}})


def test_a_benchmark_with_direct_models_writes_the_frontier(tmp_path_factory, tmp_path):
    from hetcomp_tf.cli import main
    from tests.test_benchmark import copy_teachers
    from tests.test_distill import shared_teachers

    out = tmp_path / "bench"
    copy_teachers(shared_teachers(tmp_path_factory), out)
    latency = tmp_path / "latency.json"  # a real `hetcomp latency` file gives the frontier its cost axis
    assert (
        main(
            [
                "latency",
                "--data",
                "synthetic",
                "--profile",
                "tiny",
                "--requests",
                "3",
                "--student-dims",
                "4,8",
                "--out",
                str(latency),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "benchmark",
                "--data",
                "synthetic",
                "--profile",
                "tiny",
                "--seeds",
                "1",
                "--methods",
                "ensemble_kd",
                "--direct",
                "GNN,MF",
                "--set",
                "epochs=4",
                "--latency",
                str(latency),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    sizes = results["dataset"]["n_users"] + results["dataset"]["n_items"]
    assert sorted((r["method"], r["dim"]) for r in results["direct"]) == [
        ("direct:GNN", 4),
        ("direct:GNN", 8),
        ("direct:MF", 4),
        ("direct:MF", 8),
    ]
    for record in results["direct"]:
        assert record["params"] == sizes * record["dim"]  # both are two embedding tables of the run's dim
        assert record["ended_by"] in ("early stop", "epoch cap") and 0 < record["test"]["recall@50"] <= 1
    assert {r["method"] for r in results["runs"]} == {"ensemble_kd"}
    rows = {row["model"]: row for row in results["frontier"]}
    assert set(rows) >= {"GNN d4", "MF d8", "ensemble_kd d8", "teacher:GNN", "ensemble"}
    timed = json.loads(latency.read_text())["models"]
    assert (
        rows["MF d8"]["p50_ms"]
        == rows["ensemble_kd d8"]["p50_ms"]
        == timed["student:d8"]["latency"]["batch_1"]["p50_ms"]
    )  # both serve as dim-8 tables
    assert rows["teacher:GNN"]["p50_ms"] == timed["teacher:GNN"]["latency"]["batch_1"]["p50_ms"]
    assert "## Quality against serving cost" in (out / "results.md").read_text()
    assert (out / "frontier.png").stat().st_size > 0
    assert main(["benchmark", "--data", "synthetic", "--profile", "tiny", "--direct", "DL", "--out", str(out)]) == 2


def test_only_runs_names_a_direct_model_and_extra_seeds_plans_more_sizes():
    from hetcomp_tf.bench.runs import plan_runs
    from hetcomp_tf.commands.benchmark import _run_key

    assert _run_key("direct:GNN:16:0") == ("direct:GNN", 16, 0)
    assert _run_key("hetcomp:6:2") == ("hetcomp", 6, 2)
    keys = {(k.method, k.dim, k.seed) for k in plan_runs(["hetcomp"], 3, 6, [6, 16], extra_seeds=3)}
    assert keys == {("hetcomp", d, s) for d in (6, 16) for s in range(3)}
