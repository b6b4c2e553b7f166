"""Configs check themselves when built (without TensorFlow): a bad profile, --set or JSON fails at once, in one
line naming the field and its choices."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from hetcomp_tf.config import (METHOD_NAMES, DataConfig, DistillConfig, TeacherConfig, from_dict, get_profile,
                               override)
from hetcomp_tf.errors import HetCompError


@pytest.mark.parametrize("changes, message", [
    ({"targets": "best"}, "distill config: targets='best' must be one of equal, fitted"),
    ({"batching": "items"}, "distill config: batching='items' must be one of interactions, users"),
    ({"dkc_distance": "l2"}, "distill config: dkc_distance='l2' must be one of paper, authors"),
    ({"method": "nope"}, "unknown distillation method 'nope': choose one of wo_kd, ensemble_kd"),
    ({"epochs": 0, "learning_rate": 0.0}, "distill config: epochs=0, learning_rate=0.0 must be > 0"),
    ({"l2": -1.0}, "distill config: l2=-1.0 and weight_decay=0.0 must be >= 0"),
    ({"dcd_ucd_epsilon": 0.0}, "distill config: dcd_ucd_epsilon=0.0 must be > 0, or None"),
])
def test_a_distill_config_is_checked_when_built(changes, message):
    with pytest.raises(HetCompError) as error:
        dataclasses.replace(DistillConfig(), **changes)
    assert str(error.value).startswith(message)


def test_data_and_teacher_configs_check_their_choices():
    with pytest.raises(HetCompError, match="split_protocol 'random': choose one of authors, iterative, per_user"):
        DataConfig(split_protocol="random")
    with pytest.raises(HetCompError, match="distribute='gpus': choose one of none, mirrored, multi_worker"):
        TeacherConfig(distribute="gpus")
    with pytest.raises(HetCompError, match=r"teacher config: epochs=0, eval_every=0 must be >= 1 \(eval_users >= 0\)"):
        TeacherConfig(epochs=0, eval_every=0)
    with pytest.raises(HetCompError, match="teacher config: eval_users=-1 must be"):
        TeacherConfig(eval_users=-1)
    with pytest.raises(HetCompError, match="targets='x'"):
        from_dict(DistillConfig, {"targets": "x"})  # a TFX execution property's JSON too


def test_set_assigns_a_choice_field_and_checks_its_value():
    cfg = get_profile("paper").distill
    assert override(cfg, ["targets=fitted", "rest_kernel=dense"]).targets == "fitted"
    with pytest.raises(HetCompError, match="rest_kernel='gpu' must be one of auto, fused, dense"):
        override(cfg, ["rest_kernel=gpu"])
    with pytest.raises(HetCompError, match="targets takes a str"):
        override(cfg, ["targets=3"])


def test_the_method_names_are_the_distillers_methods_and_checking_needs_no_tensorflow():
    from hetcomp_tf.distill.methods import METHODS

    assert METHOD_NAMES == tuple(METHODS)
    probe = ("import sys; from hetcomp_tf.config import DistillConfig, get_profile; "
             "[get_profile(p) for p in ('tiny', 'quickstart', 'paper')]; "
             "assert 'tensorflow' not in sys.modules, 'config imported TensorFlow'")
    subprocess.run([sys.executable, "-c", probe], check=True)
