"""Data as the CLI and the pipeline name it ("synthetic", "citeulike" or a path), read and split in one call:
the one place that picks a reader (readers.py) and the split (split.py) for a `--data` and `--format`.
"""

from __future__ import annotations

from pathlib import Path

from hetcomp_tf.config import DataConfig
from hetcomp_tf.data.datafiles import file_format, locate
from hetcomp_tf.data.dataset import Dataset
from hetcomp_tf.data.readers import make_synthetic, read_citeulike, read_csv
from hetcomp_tf.data.split import split_dataset


def load_dataset(data: str, fmt: str | None, cfg: DataConfig, verify_sha256: bool = True) -> Dataset:
    """The Dataset `--data` names, read and split.

    Args:
        data: "synthetic" (`make_synthetic(cfg.synthetic_users, cfg.synthetic_items, cfg.seed)`), "citeulike"
            (`datafiles.citeulike_path()`: found or fetched, sha256-checked) or a path.
        fmt: a path's format: users.dat-style ("citeulike"), "csv" (also .tsv/.txt) or "npz" (a saved Dataset,
            used as is); None: told by its suffix.
        cfg: the data config (filtering, split protocol and ratios, seed, synthetic sizes, min_rating).
        verify_sha256: check the canonical "citeulike" data against its sha256 (a path never is).

    Returns:
        The split `Dataset`.

    Raises:
        HetCompError: data that cannot be located, read, parsed or split.
    """
    path = locate(data)
    if path is None:
        return split_dataset(make_synthetic(cfg.synthetic_users, cfg.synthetic_items, cfg.seed), cfg, "synthetic")
    if data == "citeulike":
        return split_dataset(read_citeulike(path, verify_sha256=verify_sha256), cfg, "citeulike")
    fmt = file_format(path, fmt)
    if fmt == "npz":
        return Dataset.load(path)
    inter = read_citeulike(path, verify_sha256=False) if fmt == "citeulike" else read_csv(path, cfg.min_rating)
    return split_dataset(inter, cfg, dataset_name(path, fmt))


def dataset_name(path: Path, fmt: str) -> str:
    """The name result files, plots and tables show, as the user knows the data: every users.dat has that file
    name, so one is named by its folder (citeulike/users.dat -> "citeulike"); any other file by its stem.

    Args:
        path: the data file.
        fmt: its format.

    Returns:
        The dataset's name.
    """
    folder = path.resolve().parent.name
    return folder if fmt == "citeulike" and path.name == "users.dat" and folder else path.stem
