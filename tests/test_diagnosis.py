"""The curriculum read back from run records: catch-up epochs, per-update rows, and the stage plot."""

from __future__ import annotations

import pytest

from hetcomp_tf.bench import diagnosis


def update(moved, reproduced, caught_up, drifted, shares, d_next, threshold=1.04):
    stats = {
        "threshold": threshold,
        "moved": moved,
        "moved_reproduced": reproduced,
        "moved_caught_up": caught_up,
        "moved_drifted": drifted,
        "advanced": 7,
    }
    for stage, (share, d) in enumerate(zip(shares, d_next)):
        stats[f"stage_{stage}/share"] = share
        if share:
            stats[f"stage_{stage}/d_next"], stats[f"stage_{stage}/moved"] = d, 0.5
    return stats


HETCOMP = {
    "method": "hetcomp",
    "dim": 6,
    "seed": 0,
    "switch_epoch": 31,
    "curve": [[1, 0.05], [11, 0.10], [21, 0.18], [31, 0.22], [41, 0.25]],
    "stage_curve": [[11, {"A": 0.0, "B": 1.0}], [21, {"A": 1.0, "B": 2.0}]],
    "dkc_curve": [
        [11, update(0.25, 0.0, 0.25, 0.0, [0.5, 0.5, 0.0], [0.8, 0.6, None])],
        [21, update(0.5, 0.1, 0.3, 0.1, [0.0, 0.5, 0.5], [None, 0.4, 0.3])],
    ],
}
BASELINE = {
    "method": "ensemble_kd",
    "dim": 6,
    "seed": 0,
    "switch_epoch": None,
    "curve": [[1, 0.06], [11, 0.15], [21, 0.20], [31, 0.21]],
    "stage_curve": [],
    "dkc_curve": [],
}


def test_epochs_to_reach_and_value_at():
    assert diagnosis.epochs_to_reach(HETCOMP["curve"], 0.18) == 21
    assert diagnosis.epochs_to_reach(HETCOMP["curve"], 0.26) is None
    assert diagnosis.value_at(HETCOMP["curve"], 35) == 0.22 and diagnosis.value_at(HETCOMP["curve"], 0) is None


def test_catch_up_rows_compare_with_the_baseline_best():
    (row,) = diagnosis.catch_up_rows([HETCOMP, BASELINE, {**BASELINE, "seed": 1}])
    # B = 0.21: 50 % = 0.105 (hetcomp 21, baseline 11), 90 % = 0.189 (31 vs 21), 100 % (31 vs 31)
    assert row == ["6", "0", "0.2100", "21 vs 11", "31 vs 21", "31 vs 31", "31", "0.2200 vs 0.2100"]


def test_curriculum_rows_and_markdown():
    rows = diagnosis.curriculum_rows(HETCOMP)
    assert rows[0] == ["11", "1.040", "25.0 %", "0.0 %", "25.0 %", "0.0 %", "0.50", "0.50 / 0.800", "0.50 / 0.600", "-"]
    assert rows[1][6] == "1.50" and rows[1][7] == "-" and rows[1][9] == "0.50 / 0.300"
    text = diagnosis.diagnosis_markdown([HETCOMP, BASELINE])
    assert "### DKC updates of hetcomp (dim 6, seed 0)" in text and "| 6 | 0 | 0.2100 | 21 vs 11 |" in text
    assert "ensemble_kd (dim" not in text
    assert diagnosis.diagnosis_markdown([BASELINE]) == ""


def test_stage_plot_written_only_for_dkc_runs(tmp_path):
    assert not diagnosis.plot_stage_curves([BASELINE], tmp_path / "none.png", "t")
    assert not (tmp_path / "none.png").exists()
    assert diagnosis.plot_stage_curves([HETCOMP, BASELINE], tmp_path / "stages.png", "t")
    assert (tmp_path / "stages.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("level", [0.0, 0.05])
def test_first_evaluation_counts(level):
    assert diagnosis.epochs_to_reach(HETCOMP["curve"], level) == 1
