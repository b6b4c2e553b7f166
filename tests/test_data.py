"""Readers, bad input, the paper's split, containers and the CiteULike copy."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from hetcomp_tf.config import DataConfig
from hetcomp_tf.data import readers
from hetcomp_tf.data.datafiles import CITEULIKE_SHA256
from hetcomp_tf.data.dataset import CSR, Dataset, Interactions, rows_to_mask
from hetcomp_tf.data.loading import load_dataset
from hetcomp_tf.data.readers import make_synthetic, read_citeulike, read_csv
from hetcomp_tf.data.split import split_dataset
from hetcomp_tf.errors import HetCompError
from tests.helpers import run_cli


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def pairs(inter: Interactions) -> set[tuple[str, str]]:
    return set(zip(inter.user_vocab[inter.users], inter.item_vocab[inter.items]))


def split_pairs(data: Dataset, split: str) -> set[tuple[str, str]]:
    csr = getattr(data, split)
    return set(zip(data.user_vocab[csr.row_ids()], data.item_vocab[csr.indices]))


# ------------------------------------------------------------------------------------------- containers


def test_csr_views_and_mask():
    csr = CSR.from_pairs(np.array([2, 0, 0, 2, 2]), np.array([5, 3, 1, 0, 4]), n_rows=4)
    assert csr.indptr.dtype == np.int64 and csr.indices.dtype == np.int32
    np.testing.assert_array_equal(csr.lengths(), [2, 0, 3, 0])
    np.testing.assert_array_equal(csr.row(2), [0, 4, 5])
    np.testing.assert_array_equal(csr.padded(), [[1, 3, -1], [-1, -1, -1], [0, 4, 5], [-1, -1, -1]])
    np.testing.assert_array_equal(csr.padded(width=2, pad=9), [[1, 3], [9, 9], [0, 4], [9, 9]])
    assert csr.to_ragged().to_list() == [[1, 3], [], [0, 4, 5], []]
    ordered = CSR.from_rows([[7, 2], [], [1]])
    np.testing.assert_array_equal(ordered.padded(), [[7, 2], [-1, -1], [1, -1]])  # row order kept
    union = csr.union(CSR.from_pairs(np.array([0, 1, 2]), np.array([3, 6, 2]), n_rows=4))
    assert union.to_ragged().to_list() == [[1, 3], [6], [0, 2, 4, 5], []]


def test_rows_to_mask_matches_dense():
    rng = np.random.default_rng(0)
    dense = rng.random((20, 33)) < 0.2
    csr = CSR.from_pairs(*np.nonzero(dense), n_rows=20)
    users = np.array([3, 0, 19, 3, 7], dtype=np.int32)
    mask = rows_to_mask(csr.to_ragged(), tf.constant(users), 33).numpy()
    np.testing.assert_array_equal(mask, dense[users])
    np.testing.assert_array_equal(csr.to_dense(33), dense)


def test_dataset_save_load_round_trip(tmp_path, tiny_dataset):
    path = tmp_path / "sub" / "data.bin"  # any name: saved exactly there
    tiny_dataset.save(path)
    loaded = Dataset.load(path)
    assert loaded.name == tiny_dataset.name and loaded.sizes() == tiny_dataset.sizes()
    for field in ("user_vocab", "item_vocab"):
        a, b = getattr(loaded, field), getattr(tiny_dataset, field)
        assert a.dtype.kind == "U" and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    for split in ("train", "valid", "test"):
        for arr in ("indptr", "indices"):
            a, b = getattr(getattr(loaded, split), arr), getattr(getattr(tiny_dataset, split), arr)
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)


def test_dataset_load_bad_files(tmp_path, tiny_dataset):
    with pytest.raises(HetCompError, match="does not exist"):
        Dataset.load(tmp_path / "nope.npz")
    with pytest.raises(HetCompError, match="not a readable .npz"):
        Dataset.load(write(tmp_path, "text.npz", "hello"))
    arrays = dict(np.load(_saved(tmp_path, tiny_dataset)))
    del arrays["valid_indices"]
    np.savez(tmp_path / "partial.npz", **arrays)
    with pytest.raises(HetCompError, match="lacks the array 'valid_indices'"):
        Dataset.load(tmp_path / "partial.npz")


def _saved(tmp_path, dataset) -> Path:
    dataset.save(tmp_path / "full.npz")
    return tmp_path / "full.npz"


# ------------------------------------------------------------------------------------------- users.dat


def test_read_citeulike_small(tmp_path):
    path = write(tmp_path, "users.dat", "3 10 2 10\n0\n2 7 2\n")  # user 0 saves item 10 twice; user 1 nothing
    inter = read_citeulike(path, verify_sha256=False)
    assert list(inter.user_vocab) == ["0", "1", "2"]
    assert list(inter.item_vocab) == ["2", "7", "10"]  # numeric order of the original ids
    assert pairs(inter) == {("0", "10"), ("0", "2"), ("2", "7"), ("2", "2")}
    assert len(inter) == 4 and inter.users.dtype == np.int32 and inter.items.dtype == np.int32


@pytest.mark.parametrize(
    "text,message",
    [
        ("", r"users.dat file .* is empty"),
        ("2 1 2\n\n1 3\n", r"line 2: empty line"),
        ("2 1 2\n1 x\n", r"line 2: item id 'x' is not an integer"),
        ("2 1 2\ntwo 1 2\n", r"line 2: count N 'two' is not an integer"),
        ("2 1 2\n1 3\n3 4 5\n", r"line 3: count N = 3 but the line has 2 item ids"),
        ("2 1 -4\n", r"line 1: negative item id -4"),
        ("-1\n", r"line 1: negative count N -1"),
        (
            "2 0 99999999999999999999\n",
            r"line 1: item id 99999999999999999999 does not fit in int64 " r"\(at most 9223372036854775807\)",
        ),
        ("1 3\n1 9223372036854775808\n", r"line 2: item id 9223372036854775808 does not fit in int64"),  # max + 1
        ("99999999999999999999 1\n", r"line 1: count N 99999999999999999999 does not fit in int64"),
        ("1 -99999999999999999999\n", r"line 1: negative item id -99999999999999999999"),
        ("2 1_0 3\n", r"line 1: item id '1_0' is not an integer"),  # int() would read 10
        ("1 \u0661\n", r"line 1: item id '\u0661' is not an integer"),  # an Arabic-Indic 1, which int() reads as 1
    ],
)
def test_read_citeulike_bad_input(tmp_path, text, message):
    with pytest.raises(HetCompError, match=message):
        read_citeulike(write(tmp_path, "users.dat", text), verify_sha256=False)


def test_the_largest_int64_item_id_is_read_as_it_is(tmp_path):
    inter = read_citeulike(write(tmp_path, "users.dat", "2 9223372036854775807 +5\n"), verify_sha256=False)
    assert list(inter.item_vocab) == ["5", "9223372036854775807"]


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "1 4\n2 0 99999999999999999999\n",
            "line 2: item id 99999999999999999999 does not fit in int64 (at most 9223372036854775807)",
        ),
        ("1 4\n1 -3\n", "line 2: negative item id -3"),
    ],
)
def test_data_info_on_an_id_that_does_not_fit_is_one_line_and_exit_2(tmp_path, text, message):
    path = write(tmp_path, "users.dat", text)
    result = run_cli(["data", "info", "--data", str(path), "--format", "citeulike"])
    assert (result.code, result.stdout, result.stderr) == (2, "", f"hetcomp: error: {path} {message}\n")


def test_read_citeulike_missing_file(tmp_path):
    with pytest.raises(HetCompError, match=r"users.dat file .*absent.dat does not exist"):
        read_citeulike(tmp_path / "absent.dat")


def test_read_citeulike_checks_sha256(tmp_path):
    path = write(tmp_path, "users.dat", "1 1\n")
    got = hashlib.sha256(b"1 1\n").hexdigest()
    with pytest.raises(HetCompError) as err:
        read_citeulike(path)
    message = str(err.value)
    assert got in message and CITEULIKE_SHA256 in message
    assert "verify_sha256=False" in message and "--format citeulike" in message and "\n" not in message
    assert len(read_citeulike(path, verify_sha256=False)) == 1


# ------------------------------------------------------------------------------------------- CSV / TSV


def test_read_csv_header_ratings_and_string_ids(tmp_path):
    path = write(
        tmp_path,
        "log.csv",
        "userId,movieId,rating,timestamp\n" "alice,m:1,4.5,100\nbob,m:2,2,101\nalice,m:2,5,102\nalice,m:1,3,103\n",
    )
    inter = read_csv(path)
    assert pairs(inter) == {("alice", "m:1"), ("bob", "m:2"), ("alice", "m:2")}  # deduplicated
    assert list(inter.user_vocab) == ["alice", "bob"]
    assert pairs(read_csv(path, min_rating=4)) == {("alice", "m:1"), ("alice", "m:2")}


def test_csv_ids_are_strings_so_ids_beyond_int64_and_negative_ones_are_kept_verbatim(tmp_path):
    """A log's ids are opaque strings (the tf.Examples carry them as bytes, the model's vocabularies as strings):
    nothing converts them to a number, so a 20-digit or a negative id fits and is kept character for character."""
    big, negative = "99999999999999999999", "-4"
    inter = read_csv(write(tmp_path, "log.csv", f"user,item\n{big},{negative}\n{negative},{big}\n{big},007\n"))
    assert pairs(inter) == {(big, negative), (negative, big), (big, "007")}


def test_read_csv_tab_without_header(tmp_path):
    inter = read_csv(write(tmp_path, "log.tsv", "7\t100\n7\t101\n\n8\t100\n"))
    assert pairs(inter) == {("7", "100"), ("7", "101"), ("8", "100")}


def test_read_csv_header_detected_by_rating_column(tmp_path):
    inter = read_csv(write(tmp_path, "log.csv", "who,what,score\na,x,1\nb,y,0\n"))
    assert pairs(inter) == {("a", "x"), ("b", "y")}


@pytest.mark.parametrize(
    "text,kwargs,message",
    [
        ("", {}, r"interaction log file .* is empty"),
        ("user,item\na,x\nb,y,3\n", {}, r"line 3: 3 fields, expected 2"),
        ("a,x,4\nb,y,high\n", {}, r"line 2: rating 'high' is not a number"),
        ("a,x\n", {"min_rating": 3.0}, r"min_rating=3.0 given but the file has no rating column"),
        ("a,x,1\nb,y,2\n", {"min_rating": 3.0}, r"no interaction has rating >= min_rating=3.0"),
        ("a,x\n,y\n", {}, r"line 2: empty user id"),
        ("a\n", {}, r"line 1: 1 fields, expected user,item"),
        ("user,item\n", {}, r"holds a header but no interactions"),
    ],
)
def test_read_csv_bad_input(tmp_path, text, kwargs, message):
    with pytest.raises(HetCompError, match=message):
        read_csv(write(tmp_path, "log.csv", text), **kwargs)


# ------------------------------------------------------------------------------------------- synthetic + split


def test_make_synthetic_is_deterministic_and_structured():
    a, b, c = make_synthetic(120, 90, seed=3), make_synthetic(120, 90, seed=3), make_synthetic(120, 90, seed=4)
    assert pairs(a) == pairs(b) and pairs(a) != pairs(c)
    counts = np.bincount(a.users, minlength=120)
    assert counts.min() >= 10 and a.n_items == 90
    with pytest.raises(HetCompError, match="at least 2 users and 40 items"):
        make_synthetic(10, 5, seed=0)


def test_split_properties(tiny_dataset):
    cfg = DataConfig()
    inter = make_synthetic(cfg.synthetic_users, cfg.synthetic_items, cfg.seed)
    data = tiny_dataset
    train, valid, test = (split_pairs(data, s) for s in ("train", "valid", "test"))
    assert not (train & valid) and not (train & test) and not (valid & test)
    assert (train | valid | test) <= pairs(inter)  # nothing invented, ids map back to the originals
    for csr in (data.train, data.valid, data.test):
        assert csr.n_rows == data.n_users and (csr.lengths() > 0).all()
        assert all((np.diff(csr.row(u)) > 0).all() for u in range(0, data.n_users, 37))  # ascending rows
    in_train = np.zeros(data.n_items, bool)
    in_train[data.train.indices] = True
    assert in_train.all()  # every item of the vocabulary occurs in train, so valid/test items do too
    total = data.train.nnz + data.valid.nnz + data.test.nnz
    assert data.train.nnz / total == pytest.approx(0.6, abs=0.06)
    assert data.valid.nnz / total == pytest.approx(0.2, abs=0.03)
    assert data.test.nnz / total == pytest.approx(0.2, abs=0.03)


def test_split_counts_per_user_follow_the_paper():
    """Dense data (every held-out item also in some train row): test = floor(0.2 n), valid = floor(0.2 n)."""
    rng = np.random.default_rng(0)
    n = rng.integers(5, 30, size=60)
    users = np.repeat(np.arange(60), n)
    items = np.concatenate([rng.choice(40, size=k, replace=False) for k in n])
    inter = readers._interactions(users, items, np.arange(60).astype(str), np.arange(40).astype(str))
    data = split_dataset(inter, DataConfig(), "dense")
    assert data.n_users == 60 and data.n_items == 40
    np.testing.assert_array_equal(data.test.lengths(), n // 5)
    np.testing.assert_array_equal(data.valid.lengths(), n // 5)
    np.testing.assert_array_equal(data.train.lengths(), n - 2 * (n // 5))


def test_split_is_seeded():
    inter = make_synthetic(200, 150, seed=0)
    a = split_dataset(inter, DataConfig(seed=1), "s")
    b = split_dataset(inter, DataConfig(seed=1), "s")
    c = split_dataset(inter, DataConfig(seed=2), "s")
    assert split_pairs(a, "test") == split_pairs(b, "test") and split_pairs(a, "valid") == split_pairs(b, "valid")
    assert split_pairs(a, "test") != split_pairs(c, "test")


def test_split_filters_users_and_unseen_items():
    # p0..p7 save the same 5 items, u3 has 4 (below the filter), u4 has 5 items nobody else has
    rows = {**{f"p{k}": "abcde" for k in range(8)}, "u3": "abcd", "u4": "vwxyz"}
    users = [u for u, its in rows.items() for _ in its]
    items = [i for its in rows.values() for i in its]
    u_vocab, u_idx = np.unique(users, return_inverse=True)
    i_vocab, i_idx = np.unique(items, return_inverse=True)
    data = split_dataset(readers._interactions(u_idx, i_idx, u_vocab, i_vocab), DataConfig(seed=0), "pool")
    assert data.n_users > 0 and all(u.startswith("p") for u in data.user_vocab)  # u3 filtered; u4's
    assert set(data.item_vocab) <= set("abcde")  # held-out items never occur in train, so u4 is dropped
    assert (data.valid.lengths() > 0).all() and (data.test.lengths() > 0).all()


def test_split_bad_input():
    inter = make_synthetic(50, 60, seed=0)
    with pytest.raises(HetCompError, match="no user has >= 100 interactions"):
        split_dataset(inter, DataConfig(min_user_interactions=100), "syn")
    with pytest.raises(HetCompError, match="split_ratios"):
        split_dataset(inter, DataConfig(split_ratios=(0.5, 0.5, 0.5)), "syn")
    disjoint = readers._interactions(
        np.repeat([0, 1], 5), np.arange(10), np.array(["a", "b"]), np.arange(10).astype(str)
    )
    with pytest.raises(HetCompError, match="'tiny2': no user left after the split"):
        split_dataset(disjoint, DataConfig(), "tiny2")


# ------------------------------------------------------------------------------------------- load_dataset


def test_load_dataset_paths_and_formats(tmp_path, tiny_dataset):
    cfg = DataConfig()
    assert load_dataset("synthetic", None, cfg).sizes() == tiny_dataset.sizes()
    rows = "".join(f"u{u},i{(u * 7 + k) % 30}\n" for u in range(40) for k in range(8))
    from_csv = load_dataset(str(write(tmp_path, "log.csv", rows)), None, cfg)
    assert from_csv.name == "log" and from_csv.n_users > 0
    dat = "".join(f"8 {' '.join(str((u * 7 + k) % 30) for k in range(8))}\n" for u in range(40))
    other = write(tmp_path, "mine.txt", dat)  # a users.dat-format file under another name: no sha256 check
    assert load_dataset(str(other), "citeulike", cfg).n_users > 0
    tiny_dataset.save(tmp_path / "prepared.npz")
    assert load_dataset(str(tmp_path / "prepared.npz"), None, cfg).sizes() == tiny_dataset.sizes()
    with pytest.raises(HetCompError, match="cannot tell the format .* '.bin'"):
        load_dataset(str(write(tmp_path, "x.bin", "1 1\n")), None, cfg)
    with pytest.raises(HetCompError, match="neither 'synthetic', 'citeulike' nor an existing file"):
        load_dataset(str(tmp_path / "missing.csv"), None, cfg)
    with pytest.raises(HetCompError, match="unknown data format 'parquet'"):
        load_dataset(str(other), "parquet", cfg)


def test_dataset_named_as_the_user_knows_it(tmp_path):
    """Results, plots and tables show data.name: a users.dat path is its folder's data set, not "users"."""
    dat = "".join(f"8 {' '.join(str((u * 7 + k) % 30) for k in range(8))}\n" for u in range(40))
    (tmp_path / "citeulike").mkdir()
    users = write(tmp_path / "citeulike", "users.dat", dat)
    assert load_dataset(str(users), None, DataConfig()).name == "citeulike"
    assert load_dataset(str(write(tmp_path, "mine.dat", dat)), None, DataConfig()).name == "mine"
    rows = "user,item,rating\n" + "".join(f"u{u},i{(u * 7 + k) % 30},5\n" for u in range(40) for k in range(8))
    assert load_dataset(str(write(tmp_path / "citeulike", "ratings.csv", rows)), None, DataConfig()).name == "ratings"


def test_load_citeulike_altered(tmp_path, monkeypatch):
    monkeypatch.setenv("HETCOMP_DATA_DIR", str(tmp_path))
    (tmp_path / "citeulike").mkdir()
    dat = "".join(f"8 {' '.join(str((u * 7 + k) % 30) for k in range(8))}\n" for u in range(40))
    write(tmp_path / "citeulike", "users.dat", dat)
    with pytest.raises(HetCompError, match="differs from the expected CiteULike sha256"):
        load_dataset("citeulike", None, DataConfig())
    assert load_dataset("citeulike", None, DataConfig(), verify_sha256=False).name == "citeulike"


def iterative_split_reference(lines: list[str], seed: int = 0) -> dict[str, set[tuple[int, int]]]:
    """The `iterative` protocol (DataConfig's defaults: 5+ items, 60/20/20) in plain Python from its description:
    each kept user's distinct items, in ascending id order and users in line order, draw one key each from
    `default_rng(seed).random`; sorted by key, the first n // 5 are test, the next n // 5 valid; then users left
    without valid or test items go, with their train items, and held-out items no longer in anyone's train go,
    until nothing changes. Returns {split: {(line index, item id)}}."""
    rows = {user: sorted({int(t) for t in line.split()[1:]}) for user, line in enumerate(lines)}
    kept = {user: items for user, items in rows.items() if len(items) >= 5}
    keys = iter(np.random.default_rng(seed).random(sum(len(items) for items in kept.values())).tolist())
    part = {}
    for user, items in kept.items():
        user_keys = [next(keys) for _ in items]
        held = len(items) // 5
        for position, (_, item) in enumerate(sorted(zip(user_keys, items))):
            part[user, item] = "test" if position < held else "valid" if position < 2 * held else "train"
    alive = set(kept)
    while True:
        seen = {item for (user, item), p in part.items() if p == "train" and user in alive}
        left = {(user, item): p for (user, item), p in part.items() if user in alive and (p == "train" or item in seen)}
        parts_of = {user: set() for user in alive}
        for (user, _), p in left.items():
            parts_of[user].add(p)
        still = {user for user in alive if {"valid", "test"} <= parts_of[user]}
        if still == alive:
            return {split: {pair for pair, p in left.items() if p == split} for split in ("train", "valid", "test")}
        alive = still


def test_citeulike_local_copy(citeulike_path, monkeypatch):
    inter = read_citeulike(citeulike_path)
    assert (inter.n_users, inter.n_items, len(inter)) == (7947, 25584, 134860)
    assert int((np.bincount(inter.users, minlength=inter.n_users) >= 5).sum()) == 5219
    monkeypatch.setenv("HETCOMP_DATA_DIR", str(citeulike_path.parent.parent))
    data = load_dataset("citeulike", None, DataConfig())
    # the default (iterative) split's sizes, first derived with iterative_split_reference
    assert (data.n_users, data.n_items) == (4670, 21761)
    assert (data.train.nnz, data.valid.nnz, data.test.nnz) == (76240, 20718, 20640)
    assert (data.valid.lengths() > 0).all() and (data.test.lengths() > 0).all()
    reference = iterative_split_reference(citeulike_path.read_text().splitlines())
    for split, pairs in reference.items():
        assert {(int(u), int(i)) for u, i in split_pairs(data, split)} == pairs, split


# ------------------------------------------------------------------------------------- the authors' split


def authors_split_reference(lines: list[str], seed: int = 0, ratio: float = 0.2):
    """A line-by-line transcription of the HetComp authors' `load_data` (dicts and their legacy global-seed
    shuffle): users.dat lines in, (train, valid, test) as sets of (line index, original item id) out."""
    np.random.seed(seed)
    rows = [[int(t) for t in line.split()[1:]] for line in lines]
    kept = {u: items for u, items in enumerate(rows) if len(items) >= 5}
    train, valid, test = {}, {}, {}
    for user, items in kept.items():
        items = list(dict.fromkeys(items))
        np.random.shuffle(items)
        n = int(len(items) * ratio)
        test[user], valid[user], train[user] = set(items[:n]), set(items[n : 2 * n]), set(items[2 * n :])
    seen = set().union(*train.values())
    for user in list(valid):
        valid[user] &= seen
        if not valid[user]:
            del valid[user], test[user]
    for user in list(test):
        test[user] &= seen
        if not test[user]:
            del test[user], valid[user]
    flat = lambda split: {(u, i) for u, items in split.items() for i in items}  # noqa: E731
    return flat(train), flat(valid), flat(test), len(kept), len({i for items in kept.values() for i in items})


def as_int_pairs(data: Dataset, split: str) -> set[tuple[int, int]]:
    return {(int(u), int(i)) for u, i in split_pairs(data, split)}


@pytest.mark.parametrize("seed", [0, 3])
def test_authors_split_equals_their_procedure_on_random_data(tmp_path, seed):
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(120):  # sparse rows of 1..14 items (some below the filter), sorted as on CiteULike lines
        items = np.sort(rng.choice(300, size=rng.integers(1, 15), replace=False) * 7 + 1)
        lines.append(" ".join(map(str, [len(items), *items])))
    path = write(tmp_path, "users.dat", "\n".join(lines) + "\n")
    data = split_dataset(
        read_citeulike(path, verify_sha256=False), DataConfig(split_protocol="authors", seed=seed), "random"
    )
    train, valid, test, n_users, n_items = authors_split_reference(lines, seed)
    assert (as_int_pairs(data, "train"), as_int_pairs(data, "valid"), as_int_pairs(data, "test")) == (
        train,
        valid,
        test,
    )
    assert (data.n_users, data.n_items) == (n_users, n_items)  # every kept user, the full catalogue
    evaluated = (data.valid.lengths() > 0) & (data.test.lengths() > 0)
    assert evaluated.any() and not evaluated.all()  # some users only train, as in their code
    assert ((data.valid.lengths() > 0) == evaluated).all() and ((data.test.lengths() > 0) == evaluated).all()


def test_authors_split_on_citeulike_has_their_sizes(citeulike_path):
    lines = citeulike_path.read_text().splitlines()
    assert all(line.split()[1:] == sorted(line.split()[1:], key=int) for line in lines)  # file order = id order
    data = split_dataset(read_citeulike(citeulike_path), DataConfig(split_protocol="authors"), "citeulike")
    assert (data.n_users, data.n_items, data.train.nnz) == (5219, 25181, 78958)
    assert int(((data.valid.lengths() > 0) & (data.test.lengths() > 0)).sum()) == 4719
    train, valid, test, _, _ = authors_split_reference(lines)
    assert as_int_pairs(data, "test") == test and as_int_pairs(data, "valid") == valid
    assert as_int_pairs(data, "train") == train


def test_split_protocol_is_checked():
    with pytest.raises(HetCompError, match="split_protocol 'nope': choose one of authors, iterative"):
        split_dataset(make_synthetic(50, 60, seed=0), DataConfig(split_protocol="nope"), "syn")


# ------------------------------------------------------------------------------------------- snapshots


def synthetic_users_dat(tmp_path: Path, n_users: int = 60, n_items: int = 80, seed: int = 3) -> Path:
    """make_synthetic's interactions as a users.dat (line u = user u, item indices as ids)."""
    inter = make_synthetic(n_users, n_items, seed)
    lines = [
        " ".join(map(str, [len(row), *row])) for row in (inter.items[inter.users == u].tolist() for u in range(n_users))
    ]
    return write(tmp_path, "users.dat", "\n".join(lines) + "\n")


def test_snapshot_keeps_every_user_and_a_seeded_per_user_prefix(tmp_path):
    full_path = synthetic_users_dat(tmp_path)
    full = read_citeulike(full_path, verify_sha256=False)
    snap80 = read_citeulike(readers.write_snapshot(full_path, tmp_path / "s80.dat", 0.8, seed=1), verify_sha256=False)
    snap50 = read_citeulike(readers.write_snapshot(full_path, tmp_path / "s50.dat", 0.5, seed=1), verify_sha256=False)
    assert len(full.user_vocab) == len(snap80.user_vocab) == len(snap50.user_vocab)  # every line kept
    counts = {
        s: np.bincount(inter.users, minlength=full.n_users)
        for s, inter in (("full", full), ("80", snap80), ("50", snap50))
    }
    np.testing.assert_array_equal(counts["80"], np.floor(0.8 * counts["full"] + 1e-9).astype(int))
    assert pairs(snap50) <= pairs(snap80) <= pairs(full)  # smaller fractions keep subsets
    again = readers.write_snapshot(full_path, tmp_path / "again.dat", 0.8, seed=1)
    assert again.read_text() == (tmp_path / "s80.dat").read_text()
    assert pairs(
        read_citeulike(readers.write_snapshot(full_path, tmp_path / "s.dat", 0.8, seed=2), verify_sha256=False)
    ) != pairs(snap80)
    assert readers.write_snapshot(full_path, tmp_path / "all.dat", 1.0).read_text() == full_path.read_text()


@pytest.mark.parametrize(
    "fraction, text, out, message",
    [
        (0.0, "2 1 2\n", "s.dat", r"fraction 0 must be in \(0, 1\]"),
        (1.5, "2 1 2\n", "s.dat", r"fraction 1.5 must be in \(0, 1\]"),
        (0.8, "2 1 2\n1 x\n", "s.dat", r"line 2: item id 'x' is not an integer"),
        (0.8, "2 1 2\n", "users.dat", r"is the input file"),
    ],
)
def test_snapshot_bad_input_writes_nothing(tmp_path, fraction, text, out, message):
    source = write(tmp_path, "users.dat", text)
    with pytest.raises(HetCompError, match=message):
        readers.write_snapshot(source, tmp_path / out, fraction)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["users.dat"] and source.read_text() == text


def test_extended_vocabularies_keep_previous_indices_and_the_split(tiny_dataset):
    cut = tiny_dataset.n_users // 2
    previous_users = np.concatenate([tiny_dataset.user_vocab[cut:][::-1], ["gone"]])  # another order, an absent id
    previous_items = tiny_dataset.item_vocab[: tiny_dataset.n_items - 7][::-1]
    grown = tiny_dataset.extend_vocabularies(previous_users, previous_items)
    np.testing.assert_array_equal(grown.user_vocab[: len(previous_users)], previous_users)
    np.testing.assert_array_equal(grown.item_vocab[: len(previous_items)], previous_items)
    np.testing.assert_array_equal(grown.user_vocab[len(previous_users) :], tiny_dataset.user_vocab[:cut])  # appended
    np.testing.assert_array_equal(grown.item_vocab[len(previous_items) :], tiny_dataset.item_vocab[-7:])
    assert grown.n_users == tiny_dataset.n_users + 1 and grown.n_items == tiny_dataset.n_items
    assert grown.train.row(len(previous_users) - 1).size == 0  # "gone" keeps its index, with no interactions
    for split in ("train", "valid", "test"):
        assert split_pairs(grown, split) == split_pairs(tiny_dataset, split), split  # the very same split
    unchanged = tiny_dataset.extend_vocabularies(tiny_dataset.user_vocab, tiny_dataset.item_vocab)
    np.testing.assert_array_equal(unchanged.train.indices, tiny_dataset.train.indices)
    with pytest.raises(HetCompError, match="previous user vocabulary holds an id twice"):
        tiny_dataset.extend_vocabularies(["u1", "u1"], previous_items)


def test_restricted_keeps_only_the_given_ids_and_their_interactions(tiny_dataset):
    users, items = tiny_dataset.user_vocab[::2], tiny_dataset.item_vocab[5:]
    small = tiny_dataset.restricted(np.append(users, "unknown"), items)
    np.testing.assert_array_equal(small.user_vocab, users)
    np.testing.assert_array_equal(small.item_vocab, items)
    for split in ("train", "valid", "test"):
        assert split_pairs(small, split) == {
            (u, i) for u, i in split_pairs(tiny_dataset, split) if u in set(users) and i in set(items)
        }, split
