"""The pipeline report's warm-start table (pipeline/report.py) and the script that prints it from two runs."""

from __future__ import annotations

import json
import subprocess
import sys

from pipeline.report import warm_start_table
from tests.conftest import REPO_ROOT

COLD = {
    "curves": {"teacher:MF": [[2, 0.10], [4, 0.30], [6, 0.30], [8, 0.25]], "student:hetcomp": [[1, 0.05], [3, 0.2]]}
}
WARM = {"curves": {"teacher:MF": [[2, 0.28], [4, 0.31], [6, 0.29]], "student:hetcomp": [[1, 0.15], [3, 0.18]]}}


def test_the_table_reads_first_best_and_the_epoch_each_run_reaches_the_cold_best():
    rows = warm_start_table(COLD, WARM).splitlines()
    assert rows[2:] == [
        "| teacher:MF | 0.1000 → 0.3000 (4) | 0.2800 (2) | 4, 4 | 0.3100 (4) |",  # the first of the equal bests
        "| student:hetcomp | 0.0500 → 0.2000 (3) | 0.1500 (1) | 3, not reached | 0.1800 (3) |",
    ]


def test_the_script_prints_the_table_of_two_outputs_and_names_a_missing_report(tmp_path):
    for name, report in (("cold", COLD), ("warm", WARM)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.json").write_text(json.dumps(report))
    script = [sys.executable, str(REPO_ROOT / "tools" / "warm-start-table")]
    done = subprocess.run([*script, str(tmp_path / "cold"), str(tmp_path / "warm")], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == warm_start_table(COLD, WARM) + "\n"
    missing = subprocess.run([*script, str(tmp_path / "cold"), str(tmp_path / "none")], capture_output=True, text=True)
    assert missing.returncode == 1 and missing.stderr.strip().startswith("warm-start-table: cannot read")
    assert f"{tmp_path / 'none'}:" in missing.stderr and missing.stdout == ""  # the path as given
