"""Configs check themselves when built (without TensorFlow): a bad profile, --set or JSON fails at once, in one
line naming the field and its choices."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys

import pytest

from hetcomp_tf.config import (
    METHOD_NAMES,
    PROFILES,
    TEACHER_CONFIGS,
    TEACHER_NAMES,
    CMLConfig,
    DataConfig,
    DistillConfig,
    ItemAEConfig,
    LightGCNConfig,
    MFConfig,
    NeuMFConfig,
    Profile,
    TeacherConfig,
    VAEConfig,
    from_dict,
    get_profile,
    override,
    override_teachers,
)
from hetcomp_tf.errors import HetCompError

# What each teacher's model read in every profile when one TeacherConfig served all six (layers: DL's mlp_layers,
# GNN's (n_layers,), the autoencoders' hidden), copied from the profiles of that code: the per-teacher configs
# give exactly these values, so the same commands train the same teachers.
PROFILE_TEACHERS = {
    "tiny": {
        "MF": {
            "dim": 16,
            "epochs": 12,
            "batch_size": 256,
            "learning_rate": 0.005,
            "optimizer": "adam",
            "l2": 1e-05,
            "eval_every": 1,
            "patience": 4,
            "eval_users": 0,
            "distribute": "none",
            "n_negatives": 1,
        },
        "ML": {
            "dim": 16,
            "epochs": 12,
            "batch_size": 256,
            "learning_rate": 0.02,
            "optimizer": "adam",
            "l2": 1e-05,
            "eval_every": 1,
            "patience": 4,
            "eval_users": 0,
            "distribute": "none",
            "n_negatives": 1,
            "margin": 0.5,
        },
        "DL": {
            "dim": 16,
            "epochs": 12,
            "batch_size": 256,
            "learning_rate": 0.005,
            "optimizer": "adam",
            "l2": 1e-05,
            "eval_every": 1,
            "patience": 4,
            "eval_users": 0,
            "distribute": "none",
            "n_negatives": 1,
            "mlp_layers": (16, 8),
        },
        "GNN": {
            "dim": 16,
            "epochs": 12,
            "batch_size": 256,
            "learning_rate": 0.005,
            "optimizer": "adam",
            "l2": 1e-05,
            "eval_every": 1,
            "patience": 4,
            "eval_users": 0,
            "distribute": "none",
            "n_negatives": 1,
            "n_layers": 2,
        },
        "AE": {
            "dim": 16,
            "epochs": 12,
            "batch_size": 64,
            "learning_rate": 0.01,
            "optimizer": "adam",
            "l2": 1e-05,
            "eval_every": 1,
            "patience": 4,
            "eval_users": 0,
            "distribute": "none",
            "hidden": (32,),
            "dropout": 0.2,
            "kl_cap": 0.2,
            "kl_anneal_epochs": 20,
        },
        "I-AE": {
            "dim": 16,
            "epochs": 12,
            "batch_size": 16,
            "learning_rate": 0.01,
            "optimizer": "adam",
            "l2": 1e-05,
            "eval_every": 1,
            "patience": 4,
            "eval_users": 0,
            "distribute": "none",
            "hidden": (32,),
            "dropout": 0.2,
            "positive_weight": 10.0,
        },
    },
    "quickstart": {
        "MF": {
            "dim": 32,
            "epochs": 6,
            "batch_size": 1024,
            "learning_rate": 0.02,
            "optimizer": "adam",
            "l2": 0.001,
            "eval_every": 3,
            "patience": 2,
            "eval_users": 0,
            "distribute": "none",
            "n_negatives": 1,
        },
        "ML": {
            "dim": 32,
            "epochs": 6,
            "batch_size": 1024,
            "learning_rate": 0.02,
            "optimizer": "adam",
            "l2": 0.0,
            "eval_every": 3,
            "patience": 2,
            "eval_users": 0,
            "distribute": "none",
            "n_negatives": 5,
            "margin": 0.5,
        },
        "DL": {
            "dim": 16,
            "epochs": 4,
            "batch_size": 1024,
            "learning_rate": 0.01,
            "optimizer": "adam",
            "l2": 0.001,
            "eval_every": 2,
            "patience": 2,
            "eval_users": 0,
            "distribute": "none",
            "n_negatives": 4,
            "mlp_layers": (8,),
        },
        "GNN": {
            "dim": 32,
            "epochs": 6,
            "batch_size": 4096,
            "learning_rate": 0.02,
            "optimizer": "adam",
            "l2": 0.0001,
            "eval_every": 3,
            "patience": 2,
            "eval_users": 0,
            "distribute": "none",
            "n_negatives": 1,
            "n_layers": 2,
        },
        "AE": {
            "dim": 32,
            "epochs": 6,
            "batch_size": 64,
            "learning_rate": 0.01,
            "optimizer": "adam",
            "l2": 0.0001,
            "eval_every": 3,
            "patience": 2,
            "eval_users": 0,
            "distribute": "none",
            "hidden": (64,),
            "dropout": 0.5,
            "kl_cap": 0.2,
            "kl_anneal_epochs": 20,
        },
        "I-AE": {
            "dim": 32,
            "epochs": 4,
            "batch_size": 64,
            "learning_rate": 0.01,
            "optimizer": "adam",
            "l2": 1e-05,
            "eval_every": 2,
            "patience": 2,
            "eval_users": 0,
            "distribute": "none",
            "hidden": (64,),
            "dropout": 0.5,
            "positive_weight": 10.0,
        },
    },
    "paper": {
        "MF": {
            "dim": 200,
            "epochs": 300,
            "batch_size": 1024,
            "learning_rate": 0.005,
            "optimizer": "adam",
            "l2": 0.01,
            "eval_every": 3,
            "patience": 5,
            "eval_users": 0,
            "distribute": "none",
            "n_negatives": 1,
        },
        "ML": {
            "dim": 200,
            "epochs": 300,
            "batch_size": 1024,
            "learning_rate": 0.005,
            "optimizer": "adam",
            "l2": 0.0,
            "eval_every": 3,
            "patience": 5,
            "eval_users": 0,
            "distribute": "none",
            "n_negatives": 10,
            "margin": 0.5,
        },
        "DL": {
            "dim": 64,
            "epochs": 150,
            "batch_size": 1024,
            "learning_rate": 0.005,
            "optimizer": "adam",
            "l2": 0.001,
            "eval_every": 2,
            "patience": 4,
            "eval_users": 0,
            "distribute": "none",
            "n_negatives": 4,
            "mlp_layers": (64, 32),
        },
        "GNN": {
            "dim": 128,
            "epochs": 300,
            "batch_size": 1024,
            "learning_rate": 0.005,
            "optimizer": "adam",
            "l2": 0.001,
            "eval_every": 3,
            "patience": 5,
            "eval_users": 0,
            "distribute": "none",
            "n_negatives": 1,
            "n_layers": 2,
        },
        "AE": {
            "dim": 200,
            "epochs": 200,
            "batch_size": 256,
            "learning_rate": 0.001,
            "optimizer": "adam",
            "l2": 0.0001,
            "eval_every": 3,
            "patience": 5,
            "eval_users": 0,
            "distribute": "none",
            "hidden": (600,),
            "dropout": 0.5,
            "kl_cap": 0.2,
            "kl_anneal_epochs": 20,
        },
        "I-AE": {
            "dim": 200,
            "epochs": 200,
            "batch_size": 256,
            "learning_rate": 0.001,
            "optimizer": "adam",
            "l2": 1e-05,
            "eval_every": 3,
            "patience": 5,
            "eval_users": 0,
            "distribute": "none",
            "hidden": (600,),
            "dropout": 0.5,
            "positive_weight": 10.0,
        },
    },
    "large": {
        "MF": {
            "dim": 200,
            "epochs": 300,
            "batch_size": 1024,
            "learning_rate": 0.005,
            "optimizer": "lazy_adam",
            "l2": 0.01,
            "eval_every": 3,
            "patience": 5,
            "eval_users": 5000,
            "distribute": "none",
            "n_negatives": 1,
        },
        "ML": {
            "dim": 200,
            "epochs": 300,
            "batch_size": 1024,
            "learning_rate": 0.005,
            "optimizer": "lazy_adam",
            "l2": 0.0,
            "eval_every": 3,
            "patience": 5,
            "eval_users": 5000,
            "distribute": "none",
            "n_negatives": 10,
            "margin": 0.5,
        },
        "DL": {
            "dim": 64,
            "epochs": 150,
            "batch_size": 1024,
            "learning_rate": 0.005,
            "optimizer": "lazy_adam",
            "l2": 0.001,
            "eval_every": 2,
            "patience": 4,
            "eval_users": 5000,
            "distribute": "none",
            "n_negatives": 4,
            "mlp_layers": (64, 32),
        },
        "GNN": {
            "dim": 64,
            "epochs": 300,
            "batch_size": 8192,
            "learning_rate": 0.01,
            "optimizer": "adam",
            "l2": 0.001,
            "eval_every": 3,
            "patience": 5,
            "eval_users": 5000,
            "distribute": "none",
            "n_negatives": 1,
            "n_layers": 2,
        },
        "AE": {
            "dim": 200,
            "epochs": 200,
            "batch_size": 256,
            "learning_rate": 0.001,
            "optimizer": "adam",
            "l2": 0.0001,
            "eval_every": 3,
            "patience": 5,
            "eval_users": 5000,
            "distribute": "none",
            "hidden": (600,),
            "dropout": 0.5,
            "kl_cap": 0.2,
            "kl_anneal_epochs": 20,
        },
        "I-AE": {
            "dim": 200,
            "epochs": 200,
            "batch_size": 256,
            "learning_rate": 0.001,
            "optimizer": "adam",
            "l2": 1e-05,
            "eval_every": 3,
            "patience": 5,
            "eval_users": 5000,
            "distribute": "none",
            "hidden": (600,),
            "dropout": 0.5,
            "positive_weight": 10.0,
        },
    },
}

# The tiny profile's teachers as JSON in the shared TeacherConfig's shape (every field for every teacher), as runs
# before the per-teacher configs wrote them (teachers' resume fingerprints, teacher.json, execution properties).
SHARED_SHAPE_TINY = {
    name: {
        "dim": 16,
        "epochs": 12,
        "batch_size": 256,
        "learning_rate": 0.005,
        "optimizer": "adam",
        "l2": 1e-05,
        "eval_every": 1,
        "patience": 4,
        "eval_users": 0,
        "n_negatives": 1,
        "layers": [],
        "dropout": 0.0,
        "margin": 1.0,
        "kl_cap": 0.2,
        "kl_anneal_epochs": 20,
        "positive_weight": 1.0,
        "distribute": "none",
        **own,
    }
    for name, own in {
        "MF": {},
        "ML": {"learning_rate": 0.02, "margin": 0.5},
        "DL": {"layers": [16, 8]},
        "GNN": {"layers": [2]},
        "AE": {"batch_size": 64, "learning_rate": 0.01, "layers": [32], "dropout": 0.2},
        "I-AE": {"batch_size": 16, "learning_rate": 0.01, "layers": [32], "dropout": 0.2, "positive_weight": 10.0},
    }.items()
}


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"targets": "best"}, "distill config: targets='best' must be one of equal, fitted"),
        ({"batching": "items"}, "distill config: batching='items' must be one of interactions, users"),
        ({"dkc_distance": "l2"}, "distill config: dkc_distance='l2' must be one of paper, authors"),
        ({"method": "nope"}, "unknown distillation method 'nope': choose one of wo_kd, ensemble_kd"),
        ({"epochs": 0, "learning_rate": 0.0}, "distill config: epochs=0, learning_rate=0.0 must be > 0"),
        ({"l2": -1.0}, "distill config: l2=-1.0, weight_decay=0.0 and fit_users=0 must be >= 0"),
        ({"dcd_ucd_epsilon": 0.0}, "distill config: dcd_ucd_epsilon=0.0 must be > 0, or None"),
    ],
)
def test_a_distill_config_is_checked_when_built(changes, message):
    with pytest.raises(HetCompError) as error:
        dataclasses.replace(DistillConfig(), **changes)
    assert str(error.value).startswith(message)


def test_data_configs_check_their_choices():
    with pytest.raises(HetCompError, match="split_protocol 'random': choose one of authors, iterative, per_user"):
        DataConfig(split_protocol="random")
    with pytest.raises(HetCompError, match="targets='x'"):
        from_dict(DistillConfig, {"targets": "x"})  # a TFX execution property's JSON too


@pytest.mark.parametrize(
    "cls, changes, message",
    [
        (
            TeacherConfig,
            {"distribute": "gpus"},
            "TeacherConfig: distribute='gpus': choose one of none, mirrored, multi_",
        ),
        (MFConfig, {"optimizer": "sgd"}, "MFConfig of teacher MF: optimizer='sgd': choose one of adam, lazy_adam"),
        (
            MFConfig,
            {"epochs": 0, "eval_every": 0},
            "MFConfig of teacher MF: epochs=0 must be >= 1; eval_every=0 must be",
        ),
        (
            MFConfig,
            {"eval_users": -1, "l2": -0.1},
            "MFConfig of teacher MF: eval_users=-1 must be >= 0; l2=-0.1 must be",
        ),
        (MFConfig, {"learning_rate": 0.0}, "MFConfig of teacher MF: learning_rate=0.0 must be > 0"),
        (MFConfig, {"n_negatives": 0}, "MFConfig of teacher MF: n_negatives=0 must be >= 1"),
        (CMLConfig, {"margin": 0.0}, "CMLConfig of teacher ML: margin=0.0 must be > 0"),
        (
            NeuMFConfig,
            {"mlp_layers": ()},
            "NeuMFConfig of teacher DL: mlp_layers=() must be a non-empty tuple of sizes",
        ),
        (NeuMFConfig, {"mlp_layers": (8, 0)}, "NeuMFConfig of teacher DL: mlp_layers=(8, 0) must be a non-empty tuple"),
        (
            LightGCNConfig,
            {"n_layers": 0, "dim": 0},
            "LightGCNConfig of teacher GNN: dim=0 must be >= 1; n_layers=0 must",
        ),
        (VAEConfig, {"hidden": (0,)}, "VAEConfig of teacher AE: hidden=(0,) must be a tuple of sizes >= 1"),
        (VAEConfig, {"dropout": 1.0}, "VAEConfig of teacher AE: dropout=1.0 must be in [0, 1)"),
        (VAEConfig, {"kl_cap": -0.1, "kl_anneal_epochs": -1}, "VAEConfig of teacher AE: kl_cap=-0.1 must be >= 0; kl_"),
        (ItemAEConfig, {"dropout": -0.5}, "ItemAEConfig of teacher I-AE: dropout=-0.5 must be in [0, 1)"),
        (ItemAEConfig, {"positive_weight": 0.0}, "ItemAEConfig of teacher I-AE: positive_weight=0.0 must be > 0"),
    ],
)
def test_a_teacher_config_checks_every_field_when_built(cls, changes, message):
    with pytest.raises(HetCompError) as error:
        cls(**changes)
    assert str(error.value).startswith(message)


def test_each_teacher_has_a_config_class_with_only_the_fields_its_model_reads():
    assert tuple(TEACHER_CONFIGS) == TEACHER_NAMES
    common = [f.name for f in dataclasses.fields(TeacherConfig)]
    for name, cls in TEACHER_CONFIGS.items():
        assert cls.teacher == name and issubclass(cls, TeacherConfig)
        fields = [f.name for f in dataclasses.fields(cls)]
        assert fields[: len(common)] == common
        assert set(fields) == set(PROFILE_TEACHERS["tiny"][name])
        cls()  # its defaults pass its checks


@pytest.mark.parametrize("profile", PROFILES)
def test_the_profiles_give_each_teacher_the_values_its_model_read_before(profile):
    teachers = get_profile(profile).teachers
    assert list(teachers) == list(TEACHER_NAMES)
    for name, cfg in teachers.items():
        assert type(cfg) is TEACHER_CONFIGS[name]
        assert dataclasses.asdict(cfg) == PROFILE_TEACHERS[profile][name], name


@pytest.mark.parametrize("profile", PROFILES)
def test_a_profile_survives_json_with_each_teacher_in_its_class(profile):
    built = get_profile(profile)
    read = from_dict(Profile, json.loads(json.dumps(built.to_dict())))
    assert read == built
    assert [type(cfg) for cfg in read.teachers.values()] == list(TEACHER_CONFIGS.values())


def test_a_field_another_teacher_has_is_an_error_naming_the_teacher_and_the_field():
    gnn = get_profile("tiny").teachers["GNN"]
    with pytest.raises(HetCompError, match=r"LightGCNConfig of teacher GNN: unknown field\(s\) margin \(its fields: "):
        from_dict(LightGCNConfig, {**dataclasses.asdict(gnn), "margin": 0.5})
    as_json = json.loads(json.dumps(get_profile("tiny").to_dict()))
    as_json["teachers"]["MF"]["hidden"] = [8]
    with pytest.raises(HetCompError, match=r"MFConfig of teacher MF: unknown field\(s\) hidden"):
        from_dict(Profile, as_json)
    with pytest.raises(HetCompError, match=r"--set 'margin=0.5': expected FIELD=VALUE.* LightGCNConfig of teacher GNN"):
        override(gnn, ["margin=0.5"])
    assert override(gnn, ["n_layers=3", "learning_rate=1e-2"]) == dataclasses.replace(
        gnn, n_layers=3, learning_rate=1e-2
    )
    with pytest.raises(HetCompError, match="teacher GNN takes a LightGCNConfig, got a MFConfig"):
        dataclasses.replace(get_profile("tiny"), teachers={"GNN": MFConfig()})
    with pytest.raises(HetCompError, match="unknown teacher 'XX'"):
        from_dict(Profile, {**as_json, "teachers": {"XX": {}}})


def test_teacher_configs_in_the_shared_shape_older_runs_wrote_are_read():
    """Before the per-teacher configs one TeacherConfig held every teacher's fields: `layers` becomes what it meant
    for the teacher, the fields its model never read are dropped, anything else is still checked."""
    tiny = get_profile("tiny")
    as_json = json.loads(json.dumps(tiny.to_dict()))
    assert from_dict(Profile, {**as_json, "teachers": SHARED_SHAPE_TINY}) == tiny
    for name, values in SHARED_SHAPE_TINY.items():
        assert from_dict(TEACHER_CONFIGS[name], values) == tiny.teachers[name]
    with pytest.raises(HetCompError, match=r"LightGCNConfig of teacher GNN: layers=\(2, 3\) of the shared Teacher"):
        from_dict(LightGCNConfig, {**SHARED_SHAPE_TINY["GNN"], "layers": [2, 3]})
    with pytest.raises(HetCompError, match=r"NeuMFConfig of teacher DL: mlp_layers=\(\) must be a non-empty"):
        from_dict(NeuMFConfig, {**SHARED_SHAPE_TINY["DL"], "layers": []})
    with pytest.raises(HetCompError, match=r"unknown field\(s\) widths"):
        from_dict(MFConfig, {**SHARED_SHAPE_TINY["MF"], "widths": [3]})


def test_set_assigns_a_choice_field_and_checks_its_value():
    cfg = get_profile("paper").distill
    assert override(cfg, ["targets=fitted", "rest_kernel=dense"]).targets == "fitted"
    with pytest.raises(HetCompError, match="rest_kernel='gpu' must be one of auto, fused, dense"):
        override(cfg, ["rest_kernel=gpu"])
    with pytest.raises(HetCompError, match="targets takes a str"):
        override(cfg, ["targets=3"])


def test_fit_users_is_checked_and_no_profile_samples_or_fits_the_papers_targets():
    with pytest.raises(HetCompError, match="fit_users=-1 must be >= 0"):
        override(get_profile("paper").distill, ["fit_users=-1"])
    profiles = {name: get_profile(name).distill for name in ("tiny", "quickstart", "paper", "large")}
    assert {name: cfg.fit_users for name, cfg in profiles.items()} == dict.fromkeys(profiles, 0)
    targets = {name: cfg.targets for name, cfg in profiles.items()}
    assert targets == {"tiny": "equal", "quickstart": "fitted", "paper": "equal", "large": "fitted"}


def test_teacher_set_assigns_one_teacher_or_all_and_checks_each():
    teachers = get_profile("paper").teachers
    changed = override_teachers(teachers, ["MF.optimizer=lazy_adam", "all.eval_users=1000", "GNN.n_layers=3"])
    assert changed["MF"].optimizer == "lazy_adam" and teachers["MF"].optimizer == "adam"
    assert {cfg.eval_users for cfg in changed.values()} == {1000}
    assert changed["GNN"].n_layers == 3 and changed["ML"] == dataclasses.replace(teachers["ML"], eval_users=1000)
    for text, message in [
        ("MF=1", "expected TEACHER.FIELD=VALUE, TEACHER one of MF, ML, DL, GNN, AE, I-AE or all"),
        ("XX.dim=3", "expected TEACHER.FIELD=VALUE"),
        ("AE.n_negatives=2", "--teacher-set 'AE.n_negatives=2': expected FIELD=VALUE, FIELD one of"),
        ("all.dim=ten", "--teacher-set 'all.dim=ten': dim takes an int"),
        ("MF.optimizer=sgd", "optimizer='sgd': choose one of adam, lazy_adam"),
    ]:
        with pytest.raises(HetCompError, match=re.escape(message)):
            override_teachers(teachers, [text])


def test_the_method_names_are_the_distillers_methods_and_checking_needs_no_tensorflow():
    from hetcomp_tf.distill.methods import METHODS

    assert METHOD_NAMES == tuple(METHODS)
    probe = (
        "import sys; from hetcomp_tf.config import DistillConfig, get_profile; "
        "[get_profile(p) for p in ('tiny', 'quickstart', 'paper', 'large')]; "
        "assert 'tensorflow' not in sys.modules, 'config imported TensorFlow'"
    )
    subprocess.run([sys.executable, "-c", probe], check=True)
