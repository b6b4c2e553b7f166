"""Shared fixtures: the tiny synthetic dataset and a tiny `hetcomp run` (each built once per session), and the
local CiteULike copy."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hetcomp_tf.config import get_profile
from hetcomp_tf.data.datafiles import find_citeulike
from hetcomp_tf.data.readers import make_synthetic
from hetcomp_tf.data.split import split_dataset
from hetcomp_tf.distill.fused import kernel_dir
from tests.helpers import run_cli

REPO_ROOT = Path(__file__).resolve().parents[1]
# The fused kernel is built once for the session (and every CLI subprocess), wherever a test points the user cache.
os.environ.setdefault("HETCOMP_KERNEL_DIR", str(kernel_dir()))


# The files that take longest, collected first: `make test` hands a whole file to a worker (xdist's loadfile), and a
# long file handed out last keeps one worker busy after the others have run out of work.
LONGEST_FIRST = (
    "test_kfp_spec.py",
    "test_faults.py",
    "test_benchmark.py",
    "test_distribute.py",
    "test_cli_teachers.py",
    "test_cost_model.py",
    "test_warmstart.py",
    "test_pipeline.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: place for place, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # a stable sort: the others keep their order


@pytest.fixture(scope="session")
def tiny_dataset():
    cfg = get_profile("tiny").data
    return split_dataset(make_synthetic(cfg.synthetic_users, cfg.synthetic_items, cfg.seed), cfg, "synthetic")


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory):
    """`hetcomp run --data synthetic --profile tiny` as a user types it: exit code, stdout, stderr, the output
    directory `out`, its `report` and the ML Metadata `nodes` (the pipeline and TensorBoard tests read it)."""
    from pipeline.local_runner import latest_run

    out = tmp_path_factory.mktemp("pipeline")
    result = run_cli(["run", "--data", "synthetic", "--profile", "tiny", "--out", str(out)])
    assert result.code == 0, result.stderr[-3000:]
    result.out, result.report = out, json.loads((out / "report.json").read_text())
    result.nodes = latest_run(str(out / "metadata.sqlite"))
    return result


@pytest.fixture(scope="session")
def citeulike_path() -> Path:
    """The local users.dat where `--data citeulike` finds it ($HETCOMP_DATA_DIR, ../shared/datasets, the cache)."""
    path = find_citeulike()
    if path is None:
        pytest.skip("CiteULike users.dat is not available here (fetch it with `hetcomp data fetch citeulike`)")
    return path
