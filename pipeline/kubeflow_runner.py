"""Compiles the same DAG to a Kubeflow Pipelines v2 job spec (JSON) for a container image built from
the repository's Dockerfile; every node becomes one task running TFX's v2 container entrypoint."""

from __future__ import annotations

import os

from tfx import v1 as tfx

from hetcomp_tf.errors import HetCompError
from pipeline.configs import PipelineConfig
from pipeline.pipeline import create_pipeline


def compile_pipeline(config: PipelineConfig, image: str, output_file: str) -> dict:
    """Compiles the pipeline to a Kubeflow Pipelines v2 job spec.

    Args:
        config: the pipeline's config; `config.root()` should be a URI every task can reach, e.g. gs://bucket/hetcomp.
        image: the container image every task runs.
        output_file: where the JSON spec is written.

    Returns:
        The spec as a dict.

    Raises:
        HetCompError: `config.warm_start` (warm starts run on the local runner only).
    """
    if config.warm_start:  # the v2 compiler's resolvers filter by artifact type only, not by producer
        raise HetCompError(
            "warm starts run on the local runner only: the Kubeflow v2 compiler cannot resolve one "
            "teacher's latest model among all models"
        )
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=os.path.dirname(os.path.abspath(output_file)),
        output_filename=os.path.basename(output_file),
    )
    return runner.run(create_pipeline(config), write_out=True)
