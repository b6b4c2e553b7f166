"""Shared fixtures: the tiny synthetic dataset (built once per session) and the local CiteULike copy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hetcomp_tf.config import get_profile
from hetcomp_tf.data import make_synthetic, split_dataset

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_dataset():
    cfg = get_profile("tiny").data
    return split_dataset(make_synthetic(cfg.synthetic_users, cfg.synthetic_items, cfg.seed), cfg, "synthetic")


@pytest.fixture(scope="session")
def citeulike_path() -> Path:
    """The shared users.dat ($HETCOMP_DATA_DIR first, then ../shared/datasets beside the checkout)."""
    candidates = [REPO_ROOT.parent / "shared" / "datasets" / "citeulike" / "users.dat"]
    if os.environ.get("HETCOMP_DATA_DIR"):
        candidates.insert(0, Path(os.environ["HETCOMP_DATA_DIR"]) / "citeulike" / "users.dat")
    for path in candidates:
        if path.is_file():
            return path
    pytest.skip("CiteULike users.dat is not available here (set HETCOMP_DATA_DIR)")
