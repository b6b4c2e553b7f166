"""The Beam ingestion (components/interaction_beam.py) against the in-memory split of the same data: every (user,
item) of every split, the vocabularies and the indices, on input shards of mixed layouts; sharded outputs; bad input
as one line. Each Beam run is a DirectRunner pipeline over a few hundred rows."""

from __future__ import annotations

import gzip
import os

import apache_beam as beam
import numpy as np
import pytest

from components import interaction_beam
from components.interaction_beam import Source
from components.interaction_examples import SHARD_PREFIX, SPLITS, VOCABULARY_FILES, read_dataset
from hetcomp_tf.config import DataConfig
from hetcomp_tf.data.loading import load_dataset
from hetcomp_tf.errors import HetCompError
from tests.test_user_split import dataset_as_ids, random_pairs

CFG = DataConfig(split_protocol="per_user", seed=5, min_rating=3.0)


def ingest(tmp_path, source: Source, cfg: DataConfig = CFG, **kwargs):
    examples, vocabulary = str(tmp_path / "examples"), str(tmp_path / "vocabulary")
    interaction_beam.run(beam.Pipeline(argv=["--runner=DirectRunner"]), source, cfg, examples, vocabulary, **kwargs)
    return read_dataset(examples, vocabulary, "beam")


def assert_same_dataset(got, want):
    assert dataset_as_ids(got) == dataset_as_ids(want)
    np.testing.assert_array_equal(got.user_vocab, want.user_vocab)
    np.testing.assert_array_equal(got.item_vocab, want.item_vocab)
    for split in SPLITS:
        np.testing.assert_array_equal(got.split(split).indptr, want.split(split).indptr)
        np.testing.assert_array_equal(got.split(split).indices, want.split(split).indices)


@pytest.fixture(scope="module")
def rated_log(tmp_path_factory):
    """The random pairs with ratings 1-5 (some below min_rating), duplicates, as one CSV and as three shards: a CSV
    with a header, a headerless TSV, a gzipped CSV, and an empty shard."""
    root = tmp_path_factory.mktemp("log")
    rng = np.random.default_rng(0)
    pairs = sorted(random_pairs(7))
    rows = [(u, i, int(rng.integers(1, 6))) for u, i in pairs]
    rows += [(u, i, 5) for u, i in pairs[::9]]  # the same pair again, rated 5: kept once
    order = rng.permutation(len(rows))
    rows = [rows[k] for k in order]
    (root / "whole.csv").write_text("user,item,rating\n" + "".join(f"{u},{i},{r}\n" for u, i, r in rows))
    shards = root / "shards"
    shards.mkdir()
    third = len(rows) // 3
    (shards / "part-0.csv").write_text("user,item,rating\n" + "".join(f"{u},{i},{r}\n" for u, i, r in rows[:third]))
    (shards / "part-1.csv").write_text("".join(f"{u}\t{i}\t{r}\n" for u, i, r in rows[third : 2 * third]))
    with gzip.open(shards / "part-2.csv.gz", "wt") as f:
        f.write("".join(f"{u},{i},{r}\n" for u, i, r in rows[2 * third :]))
    (shards / "part-3.csv").write_text("")
    return root


def test_three_shards_give_the_in_memory_split(tmp_path, rated_log):
    files = tuple(sorted(str(p) for p in (rated_log / "shards").iterdir()))
    got = ingest(tmp_path, Source(fmt="csv", files=files, where="shards/*"), num_shards=3)
    assert_same_dataset(got, load_dataset(str(rated_log / "whole.csv"), "csv", CFG))
    for split in SPLITS:
        shards = sorted(os.listdir(tmp_path / "examples" / f"Split-{split}"))
        assert shards == [f"{SHARD_PREFIX}-{k:05d}-of-00003.gz" for k in range(3)], split
    assert sorted(os.listdir(tmp_path / "vocabulary")) == sorted(VOCABULARY_FILES.values())


def test_a_users_dat_with_a_previous_vocabulary_is_the_in_memory_warm_start(tmp_path):
    rng = np.random.default_rng(3)
    lines = [sorted(rng.choice(80, size=int(rng.integers(0, 20)), replace=False).tolist()) for _ in range(60)]
    path = tmp_path / "users.dat"
    path.write_text("".join(f"{len(items)} {' '.join(map(str, items))}\n" for items in lines))
    cfg = DataConfig(split_protocol="per_user", seed=1)
    previous = (np.array(["0", "gone", "12"]), np.array(["7", "999"]))
    got = ingest(
        tmp_path, Source(fmt="citeulike", files=(str(path),), where=str(path)), cfg, previous_vocabularies=previous
    )
    want = load_dataset(str(path), "citeulike", cfg).extend_vocabularies(*previous)
    assert_same_dataset(got, want)
    assert got.user_vocab[:3].tolist() == ["0", "gone", "12"] and got.train.lengths()[1] == 0


def test_no_interaction_at_all_is_one_line(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("user,item,rating\nu1,i1,1\n")
    with pytest.raises(HetCompError) as err:
        ingest(tmp_path, Source(fmt="csv", files=(str(empty),), where="logs/*.csv"))
    assert str(err.value) == "logs/*.csv: no interaction with rating >= min_rating=3.0"


def test_a_users_dat_input_is_one_file():
    with pytest.raises(HetCompError, match="a users.dat-format input is one file .* this matches 2"):
        Source(fmt="citeulike", files=("a/users.dat", "b/users.dat"), where="*/users.dat")


def test_a_users_dat_id_beyond_int64_fails_the_beam_ingestion_in_one_line_naming_file_and_line(tmp_path):
    path = tmp_path / "users.dat"
    path.write_text("1 4\n2 0 99999999999999999999\n")
    with pytest.raises(HetCompError) as err:
        ingest(tmp_path, Source(fmt="citeulike", files=(str(path),), where=str(path)))
    assert str(err.value) == (
        f"{path} line 2: item id 99999999999999999999 does not fit in int64 " "(at most 9223372036854775807)"
    )


def test_csv_ids_beyond_int64_and_negative_reach_the_beam_ingestion_verbatim(tmp_path):
    """CSV ids are strings in the Beam path as in memory (tests/test_data.py): the worker's reader keeps them."""
    path = tmp_path / "log.tsv"
    path.write_text("99999999999999999999\t-4\n-4\t99999999999999999999\n")
    assert list(interaction_beam.file_pairs(str(path), "csv", None)) == [
        ("99999999999999999999", "-4"),
        ("-4", "99999999999999999999"),
    ]
