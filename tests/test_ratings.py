"""A user's own explicit ratings, a MovieLens-style ratings.csv, through `teachers`, `benchmark` and `run`:
`--min-rating` binarises them on every command (the pipeline's ingestion included); without it, one line on
stderr says that every rating counted as a positive."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from components import storage
from hetcomp_tf.cli import main
from hetcomp_tf.config import get_profile
from hetcomp_tf.data.dataset import Dataset
from hetcomp_tf.data.loading import load_dataset
from hetcomp_tf.data.readers import make_synthetic
from pipeline.local_runner import latest_run
from tests.helpers import run_cli

pytestmark = pytest.mark.slow  # end to end (training, processes, servers): `make test`, not `make check`

TINY = get_profile("tiny")
BINARISED = ["--format", "csv", "--min-rating", "4", "--profile", "tiny"]


@pytest.fixture(scope="module")
def ratings(tmp_path_factory) -> Path:
    """userId,movieId,rating,timestamp: every synthetic interaction rated 4 to 5 stars, plus as many rows rated
    0.5 to 3.5 on other items (what --min-rating 4 must drop)."""
    inter = make_synthetic(300, 200, seed=1)
    rng = np.random.default_rng(0)
    liked = set(zip(inter.users.tolist(), inter.items.tolist()))
    disliked = set()
    while len(disliked) < len(liked):
        pair = (int(rng.integers(inter.n_users)), int(rng.integers(inter.n_items)))
        if pair not in liked:
            disliked.add(pair)
    rows = [(u, i, rng.choice([4.0, 4.5, 5.0])) for u, i in sorted(liked)]
    rows += [(u, i, rng.choice(np.arange(0.5, 4.0, 0.5))) for u, i in sorted(disliked)]
    order = rng.permutation(len(rows))
    lines = ["userId,movieId,rating,timestamp"]
    lines += [f"{rows[k][0] + 1},{rows[k][1] + 1},{rows[k][2]:g},{964982703 + int(k)}" for k in order]
    path = tmp_path_factory.mktemp("movielens") / "ratings.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def expected(ratings) -> Dataset:
    return load_dataset(str(ratings), "csv", dataclasses.replace(TINY.data, min_rating=4.0))


def assert_same_split(got: Dataset, want: Dataset) -> None:
    assert got.sizes() == want.sizes()
    np.testing.assert_array_equal(got.user_vocab, want.user_vocab)
    for split in ("train", "valid", "test"):
        np.testing.assert_array_equal(got.split(split).indices, want.split(split).indices)


def test_the_file_needs_binarising(ratings, expected):
    everything = load_dataset(str(ratings), "csv", TINY.data)
    assert everything.train.nnz > 1.5 * expected.train.nnz


def test_teachers_binarise_the_ratings(ratings, expected, tmp_path):
    result = run_cli(["teachers", "--data", str(ratings), *BINARISED, "--teachers", "MF", "--out", str(tmp_path)])
    assert result.code == 0, result.stderr
    assert_same_split(Dataset.load(tmp_path / "dataset.npz"), expected)
    assert "kept as positives" not in result.stderr


def test_benchmark_binarises_the_ratings_for_its_teachers(ratings, expected, tmp_path):
    result = run_cli(
        [
            "benchmark",
            "--data",
            str(ratings),
            *BINARISED,
            "--seeds",
            "1",
            "--methods",
            "hetcomp",
            "--student-dims",
            "8",
            "--out",
            str(tmp_path),
        ]
    )
    assert result.code == 0, result.stderr
    assert_same_split(Dataset.load(tmp_path / "dataset.npz"), expected)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["dataset"] == {"name": "ratings", **expected.sizes()}
    assert 0 < results["methods"]["student:hetcomp"]["test"]["recall@50"] <= 1


@pytest.mark.slow
def test_the_pipeline_ingests_binarised_ratings(ratings, expected, tmp_path):
    result = run_cli(
        ["run", "--data", str(ratings), *BINARISED, "--teachers", "MF,ML", "--set", "epochs=10", "--out", str(tmp_path)]
    )
    assert result.code == 0, result.stderr[-3000:]
    nodes = latest_run(str(tmp_path / "metadata.sqlite"))
    assert_same_split(storage.read_dataset(nodes["InteractionExampleGen"].uri("dataset")), expected)
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["methods"]) == {"teacher:MF", "teacher:ML", "ensemble", "student:hetcomp"}


def test_without_min_rating_one_line_says_every_rating_counted(ratings, capsys):
    copy = ratings.parent / "mine.csv"  # a file no other test read in this process
    copy.write_text(ratings.read_text())
    n_rows = len(ratings.read_text().splitlines()) - 1
    for _ in range(2):
        assert main(["data", "info", "--data", str(copy), "--profile", "tiny"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "kept as positives" in line]
    assert len(notes) == 1 and f"all {n_rows:,} rated rows" in notes[0] and "--min-rating X binarises" in notes[0]
