"""The Pusher executor: a blessed model pushed as a version whole, the served one not pushed again."""

from __future__ import annotations

import os

import tensorflow as tf
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import path_utils, proto_utils

from components import keys
from components.pusher import executor as pusher
from components.testing import make


class TestPusher:
    @staticmethod
    def push(root, name, model, blessed: int, baseline_uri: str | None, serving_name: str | None = None):
        blessing = make(standard_artifacts.ModelBlessing, root, f"{name}-blessing")
        blessing.set_int_custom_property("blessed", blessed)
        blessing.set_string_custom_property("current_model", model.uri)
        if baseline_uri is not None:
            blessing.set_string_custom_property("baseline_model", baseline_uri)
        pushed = make(standard_artifacts.PushedModel, root, f"{name}-pushed")
        serving = root / f"{serving_name or name}-serving"
        destination = pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(serving))
        )
        pusher.Executor().Do(
            {keys.MODEL_KEY: [model], keys.MODEL_BLESSING_KEY: [blessing]},
            {keys.PUSHED_MODEL_KEY: [pushed]},
            {keys.PUSH_DESTINATION_KEY: proto_utils.proto_to_json(destination)},
        )
        return pushed.mlmd_artifact.custom_properties, serving

    def test_a_blessed_new_model_is_pushed_as_a_version(self, root, student, untrained):
        properties, serving = self.push(root, "new", student.model, 1, untrained.uri)
        assert properties["pushed"].int_value == 1
        version = properties["pushed_version"].string_value
        assert os.listdir(serving) == [version] and version.isdigit()
        assert "score_items" in tf.saved_model.load(str(serving / version)).signatures
        assert pusher.same_tree(path_utils.serving_model_path(student.model.uri), str(serving / version))

    def test_an_unblessed_model_is_not_pushed(self, root, student):
        properties, serving = self.push(root, "unblessed", student.model, 0, None)
        assert properties["pushed"].int_value == 0 and not serving.exists()

    def test_the_served_model_itself_is_not_pushed_again_but_a_newer_one_is(self, root, student, untrained):
        first, serving = self.push(root, "served-1", student.model, 1, untrained.uri, "served")
        again, _ = self.push(root, "served-2", student.model, 1, student.model.uri, "served")
        assert again["pushed"].int_value == 0 and os.listdir(serving) == [first["pushed_version"].string_value]
        newer, _ = self.push(root, "served-3", untrained, 1, student.model.uri, "served")
        # within the same second as the first push: one above it, so TF Serving's latest policy serves it
        assert int(newer["pushed_version"].string_value) > int(first["pushed_version"].string_value)
        assert sorted(os.listdir(serving)) == [
            first["pushed_version"].string_value,
            newer["pushed_version"].string_value,
        ]

    def test_a_blessed_model_whose_push_never_happened_is_pushed_on_the_rerun(self, root, student):
        """The rerun after a push that failed (full disk, kill): the Resolver's latest blessed model is this very
        model, so the blessing compares it with itself, but no version holds it yet."""
        properties, serving = self.push(root, "retry", student.model, 1, student.model.uri)
        assert properties["pushed"].int_value == 1
        assert os.listdir(serving) == [properties["pushed_version"].string_value]

    def test_a_stage_left_by_a_killed_push_is_removed_by_the_next(self, root, student, untrained):
        serving = root / "stale-serving"
        stale = serving / f"{pusher.STAGING_PREFIX}killed"
        os.makedirs(stale / "variables")
        (stale / "variables" / "variables.index").write_bytes(b"half")
        properties, _ = self.push(root, "stale", student.model, 1, untrained.uri, "stale")
        assert os.listdir(serving) == [properties["pushed_version"].string_value]

    def test_a_remote_destination_is_pushed_by_tfx_even_when_the_blessing_compares_the_model_with_itself(
        self, root, student
    ):
        """Where the newest version cannot be compared cheaply (a remote base directory: here TensorFlow's in-memory
        ram:// filesystem), the failed push's rerun must not be skipped: TFX's rule, a blessed model is pushed."""
        blessing = make(standard_artifacts.ModelBlessing, root, "remote-blessing")
        blessing.set_int_custom_property("blessed", 1)
        for key in ("current_model", "baseline_model"):
            blessing.set_string_custom_property(key, student.model.uri)
        pushed = make(standard_artifacts.PushedModel, root, "remote-pushed")
        destination = pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory="ram://serving")
        )
        pusher.Executor().Do(
            {keys.MODEL_KEY: [student.model], keys.MODEL_BLESSING_KEY: [blessing]},
            {keys.PUSHED_MODEL_KEY: [pushed]},
            {keys.PUSH_DESTINATION_KEY: proto_utils.proto_to_json(destination)},
        )
        assert pushed.mlmd_artifact.custom_properties["pushed"].int_value == 1
        version = pushed.mlmd_artifact.custom_properties["pushed_version"].string_value
        assert tf.io.gfile.exists(f"ram://serving/{version}/saved_model.pb")
