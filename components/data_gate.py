"""Makes ExampleValidator a gate: training refuses data whose statistics broke the schema.

TFX's ExampleValidator only records anomalies (per split, with a `blessed` custom property); the first
consumer of the data checks that record and fails with a one-line `HetCompError` naming the split, the
feature and the anomaly, so bad data stops the pipeline before any model is trained or pushed.
"""

from __future__ import annotations

import os

from tensorflow_data_validation.utils import anomalies_util
from tfx.types import artifact_utils

from hetcomp_tf.errors import HetCompError

ANOMALIES_FILE = "SchemaDiff.pb"  # ExampleValidator's per-split output


def anomaly_descriptions(anomalies_artifact) -> list[str]:
    """'split/feature: description' for every anomaly ExampleValidator found, in split order."""
    found = []
    for split in artifact_utils.decode_split_names(anomalies_artifact.split_names):
        path = os.path.join(artifact_utils.get_split_uri([anomalies_artifact], split), ANOMALIES_FILE)
        anomalies = anomalies_util.load_anomalies_binary(path)
        if anomalies.HasField("dataset_anomaly_info"):
            found.append(f"{split}: {anomalies.dataset_anomaly_info.description}")
        for feature, info in sorted(anomalies.anomaly_info.items()):
            found.append(f"{split}/{feature}: {info.short_description or info.description}")
    return found


def require_valid_examples(anomalies_artifacts: list) -> None:
    found = anomaly_descriptions(artifact_utils.get_single_instance(anomalies_artifacts))
    if found:
        raise HetCompError(f"ExampleValidator found {len(found)} anomalies in the examples: {'; '.join(found)}")
